"""The merchant's CLI (`nfcpay pos ...`, docs/pos-cli.md): sale, load, refund, balance, history,
sign-on, day-end settlement, and an interactive counter; a receipt for every transaction.

Settings come from a terminal config file (`nfcpay pos init`; ``--config``, ``NFCPAY_POS_CONFIG``
or ./pos.json) with any option on top. Exit codes: 0 approved / done, 1 declined or not
completed (the receipt says why), 2 bad input or an unusable reader, journal or config (one line
on stderr). Amounts are refused before any card is touched. The TMK is read from its file and
never printed.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from paycore.errors import PaycoreError
from paycore.money import format_fen, parse_yuan
from paycore.purse import PURCHASE_LIMIT_FEN
from pos_terminal import bootstrap
from pos_terminal.adapters.host_link import HostLinkError
from pos_terminal.adapters.journal import JournalError
from pos_terminal.adapters.readers import ReaderError
from pos_terminal.bootstrap import Overrides, PosConfigError, PosSession
from pos_terminal.domain.card_flows import CardGone, FlowError
from pos_terminal.domain.receipt import mask_asn, settlement_report, txn_receipt
from pos_terminal.service import TerminalCode, TerminalError, TxnOutcome

app = typer.Typer(
    help="The POS terminal: sales, top-ups, refunds, receipts, day-end settlement.",
    no_args_is_help=True,
)

#: Our choice: a load is refused above the card's ceiling (card.md §2) before the card is
#: touched; the card and the host refuse what would pass the ceiling with the balance.
LOAD_LIMIT_FEN: Final = 100_000
HISTORY_LIMIT_MAX: Final = 1_000
DEFAULT_CONFIG: Final = Path("pos.json")
EXIT_DECLINED: Final = 1
EXIT_BAD_INPUT: Final = 2

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="NFCPAY_POS_CONFIG",
        dir_okay=False,
        help="Terminal config file (default: ./pos.json when it exists).",
    ),
]
ReaderOpt = Annotated[
    str | None,
    typer.Option("--reader", help="Card reader: pcsc[:NAME], serial:/dev/ttyX or sim:CARDFILE."),
]
PsamOpt = Annotated[
    str | None, typer.Option("--psam", help="PSAM reader: pcsc[:NAME] (2nd reader) or sim:FILE.")
]
HostOpt = Annotated[str | None, typer.Option("--host", help="Acquiring host, HOST:PORT.")]
TidOpt = Annotated[str | None, typer.Option("--terminal-id", help="Terminal ID (8).")]
MidOpt = Annotated[str | None, typer.Option("--merchant-id", help="Merchant ID (15).")]
JournalOpt = Annotated[
    Path | None, typer.Option("--journal", dir_okay=False, help="Journal file (SQLite).")
]
TmkOpt = Annotated[
    Path | None,
    typer.Option("--tmk-file", dir_okay=False, help="File with the TMK, 32 hex digits (0600)."),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Seconds to wait for the card and for the host (default 30)."),
]


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    lines = message.strip().splitlines()
    print(f"nfcpay: error: {lines[0] if lines else 'failed'}", file=sys.stderr)
    raise typer.Exit(code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """The CLI boundary of the terminal: its errors become one line and exit code 2."""
    try:
        yield
    except (
        PosConfigError,
        ReaderError,
        JournalError,
        TerminalError,
        PaycoreError,
        OSError,
    ) as exc:
        _fail(str(exc))
    except CardGone as exc:
        _fail(str(exc), EXIT_DECLINED)
    except (FlowError, HostLinkError) as exc:
        _fail(str(exc), EXIT_DECLINED)


def _config_path(config: Path | None) -> Path | None:
    if config is not None:
        return config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _settings(
    config: Path | None,
    reader: str | None,
    psam: str | None,
    host: str | None,
    terminal_id: str | None,
    merchant_id: str | None,
    journal: Path | None,
    tmk_file: Path | None,
    timeout: float | None,
) -> bootstrap.PosSettings:
    overrides = Overrides(
        reader=reader, psam=psam, host=host, terminal_id=terminal_id, merchant_id=merchant_id,
        journal=journal, tmk_file=tmk_file, timeout_s=timeout,
    )  # fmt: skip
    return bootstrap.settings(_config_path(config), overrides)


def _amount(text: str, kind: str) -> int:
    """Parsed and checked before anything is opened: no card is touched for a bad amount."""
    amount_fen = parse_yuan(text)
    if amount_fen <= 0:
        _fail(f"amount {text}: must be more than 0.00 yuan")
    if kind in ("sale", "refund") and amount_fen >= PURCHASE_LIMIT_FEN:
        _fail(f"amount {format_fen(amount_fen)}: a {kind} must be under 500.00 yuan")
    if kind == "load" and amount_fen > LOAD_LIMIT_FEN:
        _fail(f"amount {format_fen(amount_fen)}: a load is at most 1000.00 yuan")
    return amount_fen


def _say(text: str) -> None:
    """Prompts and progress go to stderr; stdout carries receipts and reports only."""
    print(text, file=sys.stderr, flush=True)


def _tap(session: PosSession, what: str = "present the card") -> None:
    session.card.open()
    _say(f"{what} ({session.settings.timeout_s:g} s)...")
    session.card.wait_for_card(session.settings.timeout_s)


def _finish_torn(session: PosSession, outcome: TxnOutcome) -> TxnOutcome:
    """A card pulled during DEBIT / CREDIT: ask for the same card and let the terminal prove
    what the card did (card.md §4)."""
    if outcome.code != TerminalCode.TORN:
        return outcome
    _say("the card left during the payment: present the same card again")
    try:
        session.card.wait_for_card(session.settings.timeout_s)
    except CardGone:
        _say("the card did not come back: the transaction stays open until it does")
        return outcome
    recovered = session.terminal.recover()
    return outcome if recovered is None else recovered


def _print_receipt(session: PosSession, outcome: TxnOutcome) -> None:
    typer.echo(txn_receipt(outcome, session.settings.header, width=session.settings.receipt_width))
    if not outcome.approved:
        _say(f"{outcome.kind} not approved ({outcome.code}): {outcome.message}")
        raise typer.Exit(EXIT_DECLINED)


def _run_txn(
    settings: bootstrap.PosSettings, kind: str, amount_fen: int, original_rrn: str | None = None
) -> None:
    with _errors(), bootstrap.open_session(settings) as session:
        session.psam.open()  # a missing PSAM is a setup error: say so before the card
        _tap(session)
        if kind == "sale":
            outcome = session.terminal.sale(amount_fen)
        elif kind == "load":
            outcome = session.terminal.load(amount_fen)
        else:
            assert original_rrn is not None
            outcome = session.terminal.refund(amount_fen, original_rrn)
        if outcome.code == TerminalCode.RECOVERED:
            # The tap went to an earlier, interrupted transaction of this card: its receipt,
            # and nothing new was started.
            typer.echo(txn_receipt(outcome, session.settings.header,
                                   width=session.settings.receipt_width))  # fmt: skip
            _say(f"{outcome.message}; the {kind} of {format_fen(amount_fen)} yuan was not "
                 "started: run it again")  # fmt: skip
            raise typer.Exit(EXIT_DECLINED)
        _print_receipt(session, _finish_torn(session, outcome))


# --- commands ------------------------------------------------------------------------------


@app.command("init")
def init(
    config: Annotated[Path, typer.Option("--config", dir_okay=False)] = DEFAULT_CONFIG,
    reader: ReaderOpt = "pcsc",
    psam: PsamOpt = "pcsc",
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    merchant_name: Annotated[str, typer.Option("--merchant-name")] = "",
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
    width: Annotated[int | None, typer.Option("--width", help="Receipt columns.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the config.")] = False,
) -> None:
    """Write the terminal config file (and the TMK file, from stdin, when it is missing).

    A TMK file that does not exist yet is created (mode 0600) from the TMK typed (hidden) or
    piped on stdin, as `nfcpay host terminal add` showed it."""
    stem = config.with_suffix("")
    overrides = Overrides(
        reader=reader, psam=psam, host=host, terminal_id=terminal_id, merchant_id=merchant_id,
        merchant_name=merchant_name, journal=journal or Path(f"{stem}.journal"),
        tmk_file=tmk_file or Path(f"{stem}.tmk"), timeout_s=timeout, receipt_width=width,
    )  # fmt: skip
    with _errors():
        chosen = bootstrap.settings(None, overrides)
        if config.exists() and not force:
            _fail(f"{config} already exists (use --force to overwrite)")
        if not chosen.tmk_file.exists():
            if sys.stdin.isatty():
                entered = typer.prompt("TMK (32 hex digits)", hide_input=True)
            else:
                entered = sys.stdin.readline(bootstrap.TMK_FILE_BYTES_MAX)
            bootstrap.write_tmk(chosen.tmk_file, entered)
            _say(f"TMK stored in {chosen.tmk_file} (mode 0600)")
        bootstrap.read_tmk(chosen.tmk_file)
        bootstrap.write_config(config, chosen, overwrite=force)
    typer.echo(
        f"terminal {chosen.terminal_id} of merchant {chosen.merchant_id} configured in {config}"
    )


@app.command("signon")
def signon(
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Sign on: new working keys under the TMK, the host's batch number and clock."""
    with _errors():
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
        with bootstrap.open_session(chosen) as session:
            outcome = session.terminal.sign_on()
    if not outcome.ok:
        _fail(f"sign-on refused ({outcome.code}): {outcome.message}", EXIT_DECLINED)
    typer.echo(f"signed on: terminal {chosen.terminal_id}, batch {outcome.batch_no:06d}")


@app.command("sale")
def sale(
    amount: Annotated[str, typer.Argument(help="Yuan, e.g. 12.50 (under 500.00).")],
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """A purchase: tap the card, the host authorises, the card pays; prints the receipt."""
    with _errors():
        amount_fen = _amount(amount, "sale")
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
    _run_txn(chosen, "sale", amount_fen)


@app.command("load")
def load(
    amount: Annotated[str, typer.Argument(help="Yuan taken in cash, e.g. 100.")],
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """A top-up against cash: the host sends MAC2, the card is credited; prints the receipt."""
    with _errors():
        amount_fen = _amount(amount, "load")
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
    _run_txn(chosen, "load", amount_fen)


@app.command("refund")
def refund(
    amount: Annotated[str, typer.Argument(help="Yuan to give back, e.g. 12.50.")],
    rrn: Annotated[str, typer.Option("--rrn", help="RRN of the sale (on its receipt).")],
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Refund (part of) a sale of this terminal to the same card; prints the receipt."""
    with _errors():
        amount_fen = _amount(amount, "refund")
        if not (len(rrn) == 12 and rrn.isascii() and rrn.isalnum()):
            _fail(f"--rrn {rrn!r}: an RRN is 12 letters or digits (see the sale's receipt)")
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
    _run_txn(chosen, "refund", amount_fen, rrn)


@app.command("balance")
def balance(
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Read the card's balance (on the card; the host is not asked)."""
    with _errors():
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
        with bootstrap.open_session(chosen) as session:
            _tap(session)
            found = session.terminal.balance()
    typer.echo(f"card {mask_asn(found.asn)}  balance {format_fen(found.balance_fen)} yuan")


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, max=HISTORY_LIMIT_MAX)] = 20,
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """The terminal's journal, newest first (card numbers masked)."""
    with _errors():
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
        with bootstrap.open_session(chosen) as session:
            entries = session.terminal.history(limit)
    table = Table(
        "time", "kind", "yuan", "state", "39", "batch/STAN", "RRN", "card",
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    for e in entries:
        table.add_row(
            e.at.strftime("%m-%d %H:%M:%S"), e.kind.value, format_fen(e.amount_fen),
            e.state.value + (" !" if e.review else ""), e.code or "",
            f"{e.batch_no:06d}/{e.stan:06d}", e.rrn or "", mask_asn(e.asn) if e.asn else "",
        )  # fmt: skip
    Console(width=100).print(table)


@app.command("settle")
def settle(
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Day end: settle the batch with the host; prints the settlement report.

    The terminal's totals go in a 0500; when the host's differ, every completion of the batch
    is uploaded (0320)."""
    with _errors():
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
        with bootstrap.open_session(chosen) as session:
            outcome = session.terminal.settle()
    typer.echo(settlement_report(outcome, chosen.header, width=chosen.receipt_width))
    if not outcome.approved:
        _say(f"settlement not done ({outcome.code}): {outcome.message}")
        raise typer.Exit(EXIT_DECLINED)


@app.command("flush")
def flush(
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Send the completions and reversals the terminal still owes the host now."""
    with _errors():
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
        with bootstrap.open_session(chosen) as session:
            owed = session.terminal.flush()
    typer.echo(f"{owed} message(s) still owed to the host")
    if owed:
        raise typer.Exit(EXIT_DECLINED)


@app.command("counter")
def counter(
    config: ConfigOpt = None,
    reader: ReaderOpt = None,
    psam: PsamOpt = None,
    host: HostOpt = None,
    terminal_id: TidOpt = None,
    merchant_id: MidOpt = None,
    journal: JournalOpt = None,
    tmk_file: TmkOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """The counter, interactive: amount, tap the card, result and receipt; again and again.

    An empty line or q stops."""
    from rich.prompt import Prompt  # noqa: PLC0415 - this command only

    console = Console(stderr=True)
    with _errors():
        chosen = _settings(config, reader, psam, host, terminal_id, merchant_id, journal,
                           tmk_file, timeout)  # fmt: skip
        with bootstrap.open_session(chosen) as session:
            session.psam.open()
            while True:
                text = Prompt.ask("[bold]amount (yuan)[/bold], empty to stop", console=console)
                if text.strip().lower() in ("", "q", "quit"):
                    return
                try:
                    amount_fen = parse_yuan(text.strip())
                    if not 0 < amount_fen < PURCHASE_LIMIT_FEN:
                        raise PosConfigError("a sale is more than 0.00 and under 500.00 yuan")
                    _tap(session, f"{format_fen(amount_fen)} yuan: tap the card")
                    outcome = _finish_torn(session, session.terminal.sale(amount_fen))
                except (PaycoreError, PosConfigError, CardGone) as exc:
                    console.print(f"[red]{exc}[/red]")
                    continue
                verdict = "[green]APPROVED[/green]" if outcome.approved else "[red]DECLINED[/red]"
                console.print(f"{verdict} {outcome.code} {outcome.message}")
                typer.echo(txn_receipt(outcome, chosen.header, width=chosen.receipt_width))
