"""CLI of the OTA server (``nfcpay ota ...``): register SIMs, push jobs to a SIM in a PC/SC
reader (a real test SIM, or a simulated one served on vpcd with ``nfcpay card serve``), run
campaigns, show jobs, serve the API. The store is NFCPAY_OTA_DB (default SQLite file), its keys
are encrypted under NFCPAY_OTA_KEY. Errors are one line and exit code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ota.adapters.api_auth import Role, TokenAuth, TokenEntry, dump_tokens, mint_token
from ota.domain.errors import OtaError
from ota.domain.job import Job, JobParams
from ota.domain.script import JobKind
from ota.domain.sim import Scp80KeySet, SimRecord
from ota.ports import EnvelopeLink

app = typer.Typer(help="OTA server: SIM registry, GP jobs over SMS-PP, campaigns, API.",
                  no_args_is_help=True)  # fmt: skip
sim_app = typer.Typer(help="The SIM registry.", no_args_is_help=True)
campaign_app = typer.Typer(help="Campaigns over many SIMs.", no_args_is_help=True)
job_app = typer.Typer(help="Jobs.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(campaign_app, name="campaign")
app.add_typer(job_app, name="job")

DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL (default NFCPAY_OTA_DB or SQLite).")
]
ReaderOption = Annotated[str | None, typer.Option("--reader", help="PC/SC reader holding the SIM.")]


def _boot() -> Any:
    """``ota.bootstrap``, loaded when a command needs the store (SQLAlchemy), so that other
    ``nfcpay`` commands start without it."""
    from ota import bootstrap  # noqa: PLC0415 - see the docstring

    return bootstrap


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except OtaError as exc:
        print(f"nfcpay: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def _pcsc_links(reader: str | None) -> Callable[[str], EnvelopeLink]:
    """One connection to the reader, made when the first packet goes. A reader holds one SIM:
    packets for a second ICCID are refused rather than sent to the wrong card."""
    connected: dict[str, EnvelopeLink] = {}

    def link(iccid: str) -> EnvelopeLink:
        if reader is None:
            raise OtaError("--reader is needed to reach a SIM")
        if not connected:
            from ota.adapters.pcsc_link import PcscLink  # noqa: PLC0415 - the [pcsc] extra

            one = PcscLink(reader)
            one.connect()
            connected[iccid] = one
        if iccid not in connected:
            raise OtaError(f"{reader} holds SIM {next(iter(connected))}, not {iccid}")
        return connected[iccid]

    return link


def _job_text(job: Job) -> str:
    sw = f" sw={job.last_sw:04X}" if job.last_sw is not None else ""
    por = f" por={job.por_status:02X}" if job.por_status else ""
    counters = ",".join(map(str, job.counters)) or "-"
    line = (
        f"job {job.job_id} {job.kind.value} {job.iccid}: {job.state.value} "
        f"(attempts {job.attempts}/{job.attempts_max}, counters {counters}){sw}{por}"
    )
    if job.detail:
        line += f" {job.detail}"
    if job.result:
        line += f"\n  result {job.result.hex().upper()}"
    return line


@sim_app.command("add")
def sim_add(
    iccid: Annotated[str, typer.Option("--iccid")],
    imsi: Annotated[str, typer.Option("--imsi")],
    keys_file: Annotated[
        Path,
        typer.Option("--keys-file", help='JSON {"kic": hex, "kid": hex, "dek": hex} (mode 0600).'),
    ],
    msisdn: Annotated[str, typer.Option("--msisdn")] = "",
    key_version: Annotated[int, typer.Option("--key-version", min=1, max=15)] = 1,
    algorithm: Annotated[str, typer.Option("--algorithm", help="aes or 3des")] = "aes",
    counter: Annotated[int, typer.Option("--counter", min=0, help="Last counter used.")] = 0,
    db: DbOption = None,
) -> None:
    """Register a SIM with its SCP80 key set (keys read from a file, never shown)."""
    with _errors():
        try:
            raw: Any = json.loads(keys_file.read_text(encoding="utf-8"))
            keys = {k: bytes.fromhex(raw[k]) for k in ("kic", "kid", "dek")}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OtaError(f"{keys_file}: not a keys file ({type(exc).__name__})") from None
        if algorithm not in ("aes", "3des"):
            raise OtaError("--algorithm must be aes or 3des")
        key_set = Scp80KeySet(key_version, algorithm, **keys)  # type: ignore[arg-type]
        store = _boot().open_store(_boot().database_url(db))
        store.add_sim(SimRecord(iccid, imsi, msisdn, key_set, counter))
        print(f"SIM {iccid} registered (SCP80 key set {key_version:02X}, {algorithm})")


@sim_app.command("list")
def sim_list(db: DbOption = None) -> None:
    with _errors():
        for sim in _boot().open_store(_boot().database_url(db)).list_sims(1_000):
            asn = sim.asn.hex() if sim.asn else "-"
            print(f"{sim.iccid} imsi={sim.imsi} set={sim.keys.version:02X} "
                  f"counter={sim.counter_last} asn={asn}")  # fmt: skip


@app.command("push")
def push(
    kind: Annotated[JobKind, typer.Argument(help="What to do.")],
    iccid: Annotated[str, typer.Option("--iccid")],
    ceiling_fen: Annotated[int | None, typer.Option("--ceiling-fen", min=1)] = None,
    reader: ReaderOption = None,
    issuer_keys: Annotated[Path | None, typer.Option("--issuer-keys", help="Personalise.")] = None,
    db: DbOption = None,
) -> None:
    """Run one job on one SIM now (exit 1 when it fails)."""
    with _errors():
        store = _boot().open_store(_boot().database_url(db))
        keys = _boot().read_issuer_keys(issuer_keys)
        job = (
            _boot()
            .service(store, _pcsc_links(reader), keys)
            .push(iccid, kind, JobParams(ceiling_fen))
        )
        print(_job_text(job))
        if job.state.value != "done":
            raise typer.Exit(1)


@job_app.command("show")
def job_show(job_id: Annotated[int, typer.Argument()], db: DbOption = None) -> None:
    with _errors():
        print(_job_text(_boot().open_store(_boot().database_url(db)).get_job(job_id)))


@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Option("--name")],
    kind: Annotated[JobKind, typer.Option("--kind")],
    iccid: Annotated[list[str], typer.Option("--iccid", help="Repeat for each SIM.")],
    ceiling_fen: Annotated[int | None, typer.Option("--ceiling-fen", min=1)] = None,
    db: DbOption = None,
) -> None:
    with _errors():
        store = _boot().open_store(_boot().database_url(db))
        found = (
            _boot()
            .service(store, {}, None)
            .create_campaign(name, kind, iccid, JobParams(ceiling_fen))
        )
        print(f"campaign {found.campaign_id} {name}: {kind.value} on {len(found.iccids)} SIMs")


@campaign_app.command("run")
def campaign_run(
    campaign_id: Annotated[int, typer.Argument()],
    reader: ReaderOption = None,
    issuer_keys: Annotated[Path | None, typer.Option("--issuer-keys")] = None,
    db: DbOption = None,
) -> None:
    with _errors():
        store = _boot().open_store(_boot().database_url(db))
        keys = _boot().read_issuer_keys(issuer_keys)
        progress = _boot().service(store, _pcsc_links(reader), keys).run_campaign(campaign_id)
        print(f"campaign {campaign_id}: {progress.finished}/{progress.total} finished "
              f"{dict(progress.by_state)}")  # fmt: skip


@campaign_app.command("show")
def campaign_show(campaign_id: Annotated[int, typer.Argument()], db: DbOption = None) -> None:
    """Progress and the per-SIM report."""
    with _errors():
        service = _boot().service(_boot().open_store(_boot().database_url(db)), {}, None)
        progress = service.progress(campaign_id)
        print(f"campaign {campaign_id}: {progress.finished}/{progress.total} finished "
              f"{dict(progress.by_state)}")  # fmt: skip
        for line in service.report(campaign_id):
            print(f"  {line.iccid} job {line.job_id}: {line.state.value} "
                  f"(attempts {line.attempts}) {line.detail}".rstrip())  # fmt: skip


@app.command("token")
def token(
    name: Annotated[str, typer.Option("--name")],
    file: Annotated[Path, typer.Option("--file", help="Tokens file to add the token's hash to.")],
    role: Annotated[Role, typer.Option("--role")] = Role.OPERATOR,
) -> None:
    """Mint an API token: its hash goes to the file, the token is printed once."""
    with _errors():
        entries: list[TokenEntry] = []
        if file.exists():
            auth = TokenAuth.from_json(file.read_text(encoding="utf-8"), source=str(file))
            entries = list(auth._entries)
        text, entry = mint_token(name, role)
        TokenAuth([*entries, entry])  # names unique
        file.write_text(dump_tokens([*entries, entry]), encoding="utf-8")
        file.chmod(0o600)
        print(text)


@app.command("new-vault-key")
def new_vault_key() -> None:
    """A random vault key for NFCPAY_OTA_KEY (64 hex digits)."""
    from ota.adapters.keyvault import new_key_text  # noqa: PLC0415 - loaded when used

    print(new_key_text())


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8480,
    reader: ReaderOption = None,
    issuer_keys: Annotated[Path | None, typer.Option("--issuer-keys")] = None,
    db: DbOption = None,
) -> None:
    """Serve the API (tokens from NFCPAY_OTA_API_TOKENS or NFCPAY_OTA_API_TOKENS_FILE)."""
    import uvicorn  # noqa: PLC0415 - loaded only to serve

    from ota.adapters.api import create_app  # noqa: PLC0415 - loaded only to serve

    with _errors():
        store = _boot().open_store(_boot().database_url(db))
        service = _boot().service(store, _pcsc_links(reader), _boot().read_issuer_keys(issuer_keys))
        api = create_app(service, TokenAuth.from_env())
    uvicorn.run(api, host=host, port=port, access_log=False, log_config=None, server_header=False)
