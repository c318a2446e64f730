"""CLI of the card simulator: issuer test keys, SIM and PSAM images, APDUs, serving on vpcd.

Errors are raised as exceptions; the root CLI (nfcpay.cli) turns them into one line and exit
code 2. Keys are never printed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from card_applet_sim import bootstrap
from card_applet_sim.adapters import vpcd
from card_applet_sim.adapters.keyfile import read_keys, write_keys
from card_applet_sim.domain import issuance
from card_applet_sim.domain.image import CardImage
from card_applet_sim.domain.isd_state import IsdState
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from paycore import issuer_keys
from paycore.money import format_fen, parse_yuan
from paycore.purse import Ef15, Ef16, LogRecord

keys_app = typer.Typer(help="Issuer test keys (card.md §6).", no_args_is_help=True)
card_app = typer.Typer(help="Simulated SIM cards carrying the wallet applet.", no_args_is_help=True)
psam_app = typer.Typer(help="Simulated PSAMs (the terminal's SAM).", no_args_is_help=True)

APDU_ARGS_MAX = 64

OutOpt = Annotated[Path, typer.Option("--out", help="File to write.", dir_okay=False)]
KeysOpt = Annotated[Path, typer.Option("--keys", help="Issuer key file.", dir_okay=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")]


class CliInputError(ValueError):
    """Bad input given on the command line (one line, exit code 2)."""


@keys_app.command("new")
def keys_new(
    out: OutOpt,
    two_level: Annotated[
        bool, typer.Option("--two-level", help="Add an issuer factor (level-2 keys).")
    ] = False,
    key_version: Annotated[int, typer.Option(min=0, max=255)] = 1,
    force: ForceOpt = False,
) -> None:
    """Write new random issuer test keys (MPK, MLK, MTK) to a 0600 JSON file."""
    try:
        write_keys(
            out, issuer_keys.generate(os.urandom, key_version, two_level=two_level), overwrite=force
        )
    except FileExistsError:
        raise CliInputError(f"{out} already exists (use --force to overwrite)") from None
    typer.echo(f"wrote issuer keys (version {key_version}) to {out}")


@card_app.command("new")
def card_new(
    out: OutOpt,
    keys: Annotated[
        Path | None, typer.Option("--keys", help="Issuer key file.", dir_okay=False)
    ] = None,
    asn: Annotated[
        str | None, typer.Option("--asn", help="Application serial number, 16 digits.")
    ] = None,
    balance: Annotated[str, typer.Option("--balance", help="Initial balance in yuan.")] = "0",
    pin: Annotated[str | None, typer.Option("--pin", help="Turn the load PIN check on.")] = None,
    iccid: Annotated[str | None, typer.Option("--iccid", help="ICCID digits for EF16.")] = None,
    msisdn: Annotated[str, typer.Option("--msisdn", help="MSISDN digits for EF16.")] = "",
    force: ForceOpt = False,
    blank: Annotated[
        bool,
        typer.Option(
            "--blank",
            help="A blank SIM: the issuer security domain only, with test key sets; "
            "the wallet comes over the air (ota.md).",
        ),
    ] = False,
) -> None:
    """Issue a personalised SIM image: EF15, EF16 and the diversified DPK/DLK/DTK."""
    if blank:
        if keys is not None or asn is not None or pin is not None or balance != "0":
            raise CliInputError("--blank takes no --keys, --asn, --balance or --pin")
        _save(out, issuance.new_blank_sim_image(), force)
        typer.echo(f"wrote a blank SIM (issuer security domain, test keys) to {out}")
        return
    if keys is None or asn is None:
        raise CliInputError("--keys and --asn are needed (or --blank)")
    asn_bcd = issuance.parse_asn(asn)
    balance_fen = parse_yuan(balance)
    pin_bcd = issuance.parse_pin(pin) if pin is not None else None
    image = issuance.new_sim_image(
        read_keys(keys),
        asn_bcd,
        today=date.today(),
        balance_fen=balance_fen,
        pin_bcd=pin_bcd,
        iccid=iccid,
        msisdn=msisdn,
    )
    _save(out, image, force)
    typer.echo(f"wrote SIM {asn} with balance {format_fen(balance_fen)} yuan to {out}")


@psam_app.command("new")
def psam_new(
    keys: KeysOpt,
    terminal_id: Annotated[str, typer.Option("--terminal-id", help="Terminal ID, 12 hex digits.")],
    out: OutOpt,
    force: ForceOpt = False,
) -> None:
    """Issue a PSAM image holding the purchase master key and the terminal ID."""
    image = issuance.new_psam_image(read_keys(keys), issuance.parse_terminal_id(terminal_id))
    _save(out, image, force)
    typer.echo(f"wrote PSAM for terminal {terminal_id.upper()} to {out}")


def _save(out: Path, image: CardImage, force: bool) -> None:
    try:
        bootstrap.save_new_image(out, image, overwrite=force)
    except FileExistsError:
        raise CliInputError(f"{out} already exists (use --force to overwrite)") from None


def _parse_apdu_hex(text: str) -> bytes:
    cleaned = text.replace(" ", "").replace(":", "")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise CliInputError(f"not hex: {text!r}") from None
    if not raw:
        raise CliInputError("empty APDU")
    return raw


@card_app.command("apdu")
def card_apdu(
    card: Annotated[Path, typer.Option("--card", help="Card image (SIM or PSAM).", dir_okay=False)],
    apdus: Annotated[list[str], typer.Argument(help="Command APDUs in hex, sent in order.")],
) -> None:
    """Send APDUs to a card image in-process, in one power session; print the responses."""
    if len(apdus) > APDU_ARGS_MAX:
        raise CliInputError(f"at most {APDU_ARGS_MAX} APDUs per call")
    commands = [_parse_apdu_hex(a) for a in apdus]
    sim = bootstrap.file_card(card)
    sim.power_on()
    for command in commands:
        response = sim.transmit(command)
        typer.echo(f">> {command.hex().upper()}")
        data, sw = response[:-2].hex().upper(), response[-2:].hex().upper()
        typer.echo(f"<< {data} {sw}" if data else f"<< {sw}")
    sim.power_off()


def _show(card: Card) -> None:
    for inst in card.image.instances:
        state = inst.state
        if isinstance(state, WalletState) and state.life != "personalized":
            typer.echo(f"wallet {inst.aid.hex().upper()}  {state.life}, not personalised yet")
        elif isinstance(state, IsdState):
            sets = " ".join(f"{k.kvn:02X}:{k.scp}" for k in state.key_sets)
            typer.echo(
                f"isd {inst.aid.hex().upper()}  card {state.card_life}  key sets {sets}  "
                f"load files {len(state.load_files)}"
            )
        elif isinstance(state, WalletState):
            ef15, ef16 = Ef15.decode(state.ef15), Ef16.decode(state.ef16)
            typer.echo(f"wallet {inst.aid.hex().upper()}  ASN {ef15.asn.hex()}  ICCID {ef16.iccid}")
            typer.echo(
                f"  balance {format_fen(state.balance_fen)} yuan  status {state.status}  "
                f"online counter {state.online_counter}  offline counter {state.offline_counter}  "
                f"PIN {'on' if state.pin_bcd else 'off'}"
            )
            for n, raw in enumerate(state.log, start=1):
                typer.echo("  " + describe_log_record(n, LogRecord.decode(raw)))
        elif isinstance(state, PsamState):
            typer.echo(
                f"psam {inst.aid.hex().upper()}  terminal {state.terminal_id.hex().upper()}  "
                f"serial {state.serial}  key version {state.key_version}"
            )


def describe_log_record(n: int, r: LogRecord) -> str:
    kind = {0x01: "ED load", 0x02: "load", 0x05: "ED purchase", 0x06: "purchase"}.get(
        r.tx_type, f"type {r.tx_type:02X}"
    )
    d, t = r.date_bcd.hex(), r.time_bcd.hex()
    when = f"{d[:4]}-{d[4:6]}-{d[6:]} {t[:2]}:{t[2:4]}:{t[4:]}"
    return (
        f"#{n:<2} {when}  {kind:<8} {format_fen(r.amount_fen):>9} yuan  counter {r.counter}  "
        f"terminal {r.terminal_id.hex().upper()}"
    )


@card_app.command("show")
def card_show(card: Annotated[Path, typer.Option("--card", dir_okay=False)]) -> None:
    """Print the card's balance, counters and log (never its keys)."""
    _show(bootstrap.file_card(card))


@psam_app.command("show")
def psam_show(psam: Annotated[Path, typer.Option("--psam", dir_okay=False)]) -> None:
    """Print the PSAM's terminal ID and serial (never its key)."""
    _show(bootstrap.file_card(psam, expect_kind="psam"))


def _serve(path: Path, host: str, port: int, kind: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    card = bootstrap.file_card(path, expect_kind=kind)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    typer.echo(f"serving {kind} {path} on vpcd {host}:{port} (Ctrl-C to stop)")
    vpcd.serve(card, host=host, port=port, stop=stop)
    typer.echo("stopped")


HostOpt = Annotated[str, typer.Option("--host", help="Where pcscd's vpcd listens.")]


@card_app.command("serve")
def card_serve(
    card: Annotated[Path, typer.Option("--card", dir_okay=False)],
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 35963,
    host: HostOpt = "127.0.0.1",
) -> None:
    """Put the SIM in vpcd's reader (slot 0) until stopped; state is saved at every commit."""
    _serve(card, host, port, "sim")


@psam_app.command("serve")
def psam_serve(
    psam: Annotated[Path, typer.Option("--psam", dir_okay=False)],
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 35964,
    host: HostOpt = "127.0.0.1",
) -> None:
    """Put the PSAM in vpcd's second reader (slot 1) until stopped."""
    _serve(psam, host, port, "psam")
