"""CLI of the acquiring host (`nfcpay host ...`): create the store, serve ISO 8583 over TCP, and
register what an operator needs to try the host by hand (issuer, merchant, terminal, card).

The vault key comes from ``NFCPAY_KEY`` (or ``NFCPAY_KEY_FILE``); the database URL from
``--db`` or ``NFCPAY_DB``. Errors are raised as ``HostCliError`` (one line, exit code 2 in
nfcpay.cli). The only key ever printed is a terminal's new TMK, once, when it is registered.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from acquiring.domain.errors import AcquiringError
from acquiring.domain.model import (
    CARD_DAILY_AMOUNT_LIMIT_FEN_DEFAULT,
    CARD_DAILY_COUNT_LIMIT_DEFAULT,
    CardAccount,
    Issuer,
    Merchant,
    Terminal,
)
from acquiring.domain.rules import SHANGHAI
from acquiring.ports import PAGE_LIMIT_MAX, TxnQuery, TxnSummary
from paycore import issuer_keys
from paycore.iso8583.mac import key_check_value
from paycore.money import format_fen, parse_yuan

if TYPE_CHECKING:
    from acquiring.adapters.sql.store import SqlStore

# The database stack (SQLAlchemy, Alembic, the store) is imported by the commands that use it:
# every `nfcpay` command line loads this module, and most never touch the host's store.

app = typer.Typer(
    help="The acquiring host: ISO 8583 over TCP and the capture store.", no_args_is_help=True
)
merchant_app = typer.Typer(help="Merchants.", no_args_is_help=True)
terminal_app = typer.Typer(help="POS terminals and their master keys.", no_args_is_help=True)
card_app = typer.Typer(help="Cards the host authorises.", no_args_is_help=True)
issuer_app = typer.Typer(help="Card issuers and their master keys.", no_args_is_help=True)
app.add_typer(merchant_app, name="merchant")
app.add_typer(terminal_app, name="terminal")
app.add_typer(card_app, name="card")
app.add_typer(issuer_app, name="issuer")

TMK_BYTES: Final = 16
KEY_FILE_BYTES_MAX: Final = 4_096

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="NFCPAY_DB",
        help="Database URL: sqlite:///FILE or postgresql+psycopg://USER@HOST/DB.",
    ),
]


class HostCliError(ValueError):
    """Bad input or an unusable store, as one line for the operator (exit code 2)."""


@contextmanager
def _host_errors() -> Iterator[None]:
    """The CLI boundary of the host: its errors and the database's become one line."""
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - see the imports

    try:
        yield
    except AcquiringError as exc:
        raise HostCliError(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise HostCliError(f"database: {reason[0] if reason else type(exc).__name__}") from None


@contextmanager
def _store(db: str) -> Iterator[SqlStore]:
    from acquiring import bootstrap  # noqa: PLC0415 - see the imports

    with _host_errors():
        try:
            store = bootstrap.open_store(db)
        except ValueError as exc:  # an unsupported URL (sqlalchemy.make_url, make_engine)
            raise HostCliError(str(exc)) from None
        try:
            yield store
        finally:
            store.close()


def _today() -> datetime:
    return datetime.now(UTC).astimezone(SHANGHAI)


@app.command("init")
def init(db: DbOpt) -> None:
    """Create the capture store (or bring its schema up to date) and bind it to the vault key."""
    with _store(db):
        pass
    typer.echo(f"capture store ready at {_safe_url(db)}")


@app.command("new-vault-key")
def new_vault_key() -> None:
    """Print a fresh vault key for NFCPAY_KEY (keep it: the stored keys need it)."""
    from acquiring.adapters.keyvault import new_key_text  # noqa: PLC0415 - see the imports

    typer.echo(new_key_text())


@app.command("serve")
def serve(
    db: DbOpt,
    iso_port: Annotated[
        int, typer.Option("--iso-port", min=0, max=65535, help="ISO 8583 TCP port (0: any).")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, max=256, help="Writer threads (default: 1 SQLite, 4 PostgreSQL)."
        ),
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(
            "--api-port",
            min=0,
            max=65535,
            help="Also serve the admin API (docs/api.md) here; tokens from NFCPAY_API_TOKENS_FILE.",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="Host processes sharing the ISO port (SO_REUSEPORT); the API runs in the first.",
        ),
    ] = 1,
    cutoff: Annotated[
        str,
        typer.Option(
            "--cutoff", help="Business-date cut-off, HH:MM Asia/Shanghai (clearing.md §1)."
        ),
    ] = "00:00",
    group_max: Annotated[
        int | None,
        typer.Option(
            "--group-max",
            min=1,
            max=1024,
            help="Requests per commit at most (default: 64 SQLite, 32 PostgreSQL).",
        ),
    ] = None,
    group_wait_ms: Annotated[
        float | None,
        typer.Option(
            "--group-wait-ms",
            min=0,
            max=1000,
            help="Wait this long for a fuller group before committing (default 0).",
        ),
    ] = None,
) -> None:
    """Serve ISO 8583 (host_protocol.md), and the admin API with --api-port, until SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations: only what matters

    from acquiring import bootstrap  # noqa: PLC0415 - see the imports

    def listening(address: str, port: int) -> None:
        print(f"listening on {address}:{port}", flush=True)

    def api_listening(address: str, port: int) -> None:
        print(f"admin API on http://{address}:{port}/docs", flush=True)

    options = bootstrap.ServeOptions(
        workers=workers,
        group_max=group_max,
        group_wait_ms=group_wait_ms,
        cutoff=parse_cutoff(cutoff),
        processes=processes,
    )
    with _host_errors():
        try:
            bootstrap.serve(
                db,
                host,
                iso_port,
                options=options,
                on_listening=listening,
                api_port=api_port,
                on_api_listening=api_listening,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise HostCliError(str(exc)) from None


def parse_cutoff(text: str) -> time:
    """``--cutoff``: HH:MM, a local time of day (00:00 .. 23:59)."""
    try:
        hours, minutes = text.split(":")
        if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise HostCliError(f"--cutoff must be HH:MM (00:00 to 23:59), got {text!r}") from None


@merchant_app.command("add")
def merchant_add(
    db: DbOpt,
    mid: Annotated[str, typer.Option("--mid", help="Merchant ID (field 42), 15 characters.")],
    name: Annotated[str, typer.Option("--name")],
    mcc: Annotated[str, typer.Option("--mcc", help="Merchant category code.")] = "5999",
    acquirer: Annotated[str, typer.Option("--acquirer")] = "ACQ1",
    daily_limit: Annotated[
        str | None, typer.Option("--daily-limit", help="Purchases per business date, yuan.")
    ] = None,
) -> None:
    """Register a merchant."""
    limit_fen = None if daily_limit is None else parse_yuan(daily_limit)
    with _store(db) as store, _host_errors():
        merchant = Merchant(mid, name, mcc, acquirer, _today().date(), daily_limit_fen=limit_fen)
        with store.admin() as uow:
            uow.add_merchant(merchant)
    typer.echo(f"merchant {mid} registered: {name}")


def _parse_tmk(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != TMK_BYTES:
        raise HostCliError(f"--tmk must be {2 * TMK_BYTES} hex digits")
    return raw


@terminal_app.command("add")
def terminal_add(
    db: DbOpt,
    tid: Annotated[str, typer.Option("--tid", help="Terminal ID (field 41), 8 characters.")],
    mid: Annotated[str, typer.Option("--mid", help="Its merchant.")],
    tmk: Annotated[
        str | None,
        typer.Option("--tmk", help="TMK from a key ceremony (32 hex); default: a new random one."),
    ] = None,
) -> None:
    """Register a terminal. A new TMK is printed here, once: inject it into the terminal."""
    key = os.urandom(TMK_BYTES) if tmk is None else _parse_tmk(tmk)
    with _store(db) as store, _host_errors(), store.admin() as uow:
        uow.add_terminal(Terminal(tid, mid, _today().date()), key)
    kcv = key_check_value(key).hex().upper()
    typer.echo(f"terminal {tid} registered for merchant {mid}, batch 000001")
    if tmk is None:
        typer.echo(f"TMK {key.hex().upper()} (KCV {kcv}): shown once, inject it now")
    else:
        typer.echo(f"TMK from the key ceremony stored (KCV {kcv})")


@card_app.command("add")
def card_add(
    db: DbOpt,
    asn: Annotated[str, typer.Option("--asn", help="Application serial number, 16 digits.")],
    issuer: Annotated[str, typer.Option("--issuer", help="Issuer ID (registered first).")],
    daily_limit: Annotated[
        str, typer.Option("--daily-limit", help="Purchases per business date, yuan.")
    ] = format_fen(CARD_DAILY_AMOUNT_LIMIT_FEN_DEFAULT),
    daily_count: Annotated[
        int, typer.Option("--daily-count", min=0, max=1_000_000)
    ] = CARD_DAILY_COUNT_LIMIT_DEFAULT,
) -> None:
    """Register a card (its ASN) with its issuer and daily purchase limits."""
    with _store(db) as store, _host_errors():
        card = CardAccount(asn, issuer, daily_amount_limit_fen=parse_yuan(daily_limit),
                           daily_count_limit=daily_count)  # fmt: skip
        with store.admin() as uow:
            uow.add_card(card)
    typer.echo(f"card {asn[:6]}******{asn[-4:]} registered with issuer {issuer}")


@issuer_app.command("add")
def issuer_add(
    db: DbOpt,
    issuer: Annotated[str, typer.Option("--issuer", help="Issuer ID.")],
    keys: Annotated[
        Path, typer.Option("--keys", dir_okay=False, help="Issuer key file (card.md §6).")
    ],
    name: Annotated[str | None, typer.Option("--name")] = None,
) -> None:
    """Register an issuer with its master keys (stored encrypted under the vault key)."""
    if keys.stat().st_size > KEY_FILE_BYTES_MAX:
        raise HostCliError(f"{keys} is too large to be an issuer key file")
    parsed = issuer_keys.parse(keys.read_text(encoding="utf-8"))
    with _store(db) as store, _host_errors(), store.admin() as uow:
        uow.add_issuer(Issuer(issuer, name or issuer), parsed)
    typer.echo(f"issuer {issuer} registered with key version {parsed.key_version}")


@app.command("txns")
def txns(
    db: DbOpt,
    terminal: Annotated[str | None, typer.Option("--terminal", help="Only this TID.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=PAGE_LIMIT_MAX)] = 50,
) -> None:
    """List captured transactions, oldest first (card numbers masked)."""
    with _store(db) as store, _host_errors(), store.admin(readonly=True) as uow:
        page = uow.search_transactions(TxnQuery(terminal_id=terminal, limit=limit))
    Console().print(transactions_table(page.items))


def transactions_table(items: Sequence[TxnSummary]) -> Table:
    """A compact table of ``TxnSummary`` items (also printed by the demo)."""
    table = Table(
        "kind", "TID", "batch/STAN", "RRN", "card", "yuan", "39", "state", "TAC", "day",
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    for item in items:
        a = item.authorisation
        state = (
            "reversed"
            if item.reversal_reason is not None
            else "completed"
            if item.completion_amount_fen is not None
            else "authorised"
        )
        table.add_row(
            a.kind.value, a.key.terminal_id, f"{a.key.batch_no}/{a.key.stan}",
            a.rrn.lstrip("0") or "0", "*" + a.asn[-4:],
            format_fen(a.amount_fen), a.response_code.value, state,
            "" if item.tac_verdict is None else item.tac_verdict.value,
            a.business_date.strftime("%m-%d"),
        )  # fmt: skip
    return table


def _safe_url(db: str) -> str:
    """The URL without its password."""
    from sqlalchemy import make_url  # noqa: PLC0415 - see the imports

    return make_url(db).render_as_string(hide_password=True)


token_app = typer.Typer(help="Admin API tokens (docs/api.md).", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("add")
def token_add(
    tokens_file: Annotated[
        Path, typer.Option("--file", dir_okay=False, help="Tokens file (only hashes are kept).")
    ],
    name: Annotated[str, typer.Option("--name", help="Who holds the token.")],
    role: Annotated[str, typer.Option("--role", help="admin, operations or clearing.")],
) -> None:
    """Mint an API token: printed once here, only its SHA-256 is stored in the file."""
    from acquiring.adapters.api_auth import Role, add_token_to_file  # noqa: PLC0415

    try:
        chosen = Role(role)
    except ValueError:
        raise HostCliError(f"role must be one of {', '.join(r.value for r in Role)}") from None
    with _host_errors():
        typer.echo(add_token_to_file(tokens_file, name, chosen))
