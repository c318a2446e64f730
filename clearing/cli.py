"""`nfcpay clearing`: run, show and verify the nightly clearing of a business date.

    nfcpay clearing run --date 2026-03-01 --db URL --out DIR [--kind daily|month-end]
                        [--cutoff HH:MM] [--network CUP]
    nfcpay clearing run --kind adjustment --date 2026-03-02 --release T0000001:1:7 ...
    nfcpay clearing show --date 2026-03-01 --db URL
    nfcpay clearing verify --date 2026-03-01 --db URL --out DIR [--issuer-keys ISS=FILE ...]

Errors are one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Final

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from clearing.bootstrap import open_service
from clearing.domain.errors import ClearingError
from clearing.domain.tac import TacOutcome
from clearing.ports import (
    NETWORK_ID_DEFAULT,
    ReleaseKey,
    RunKind,
    RunOptions,
    all_stage_names,
)
from paycore import issuer_keys
from paycore.errors import DecodeError
from paycore.issuer_keys import IssuerKeys

app = typer.Typer(
    help="Nightly clearing and settlement (clearing.md).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
KINDS: Final = {
    "daily": RunKind.DAILY,
    "month-end": RunKind.MONTH_END,
    "adjustment": RunKind.ADJUSTMENT,
}
KEY_FILE_MAX_BYTES: Final = 4_096
TERMINAL_ID_MAX: Final = 8
DB_HELP: Final = "Database URL (sqlite:///path or postgresql+psycopg://...), or NFCPAY_DB."


class ClearingCliError(ValueError):
    """Bad input or a refused run, as one line (exit code 2)."""


def _fail(message: str) -> typer.Exit:
    line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"nfcpay: error: {line}", file=sys.stderr)
    return typer.Exit(2)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (ClearingError, ClearingCliError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc)
        raise _fail(f"database: {reason}") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text) if len(text) == 10 else date.fromisoformat("x")
    except ValueError:
        raise ClearingCliError(f"--date: {text!r} is not YYYY-MM-DD") from None


def _cutoff(text: str) -> time:
    try:
        parsed = datetime.strptime(text, "%H:%M")
    except ValueError:
        raise ClearingCliError(f"--cutoff: {text!r} is not HH:MM") from None
    return parsed.time()


def _out(text: str, *, create: bool) -> Path:
    folder = Path(text)
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise ClearingCliError(f"--out: {folder} is not a folder")
    return folder


def _release_key(text: str) -> ReleaseKey:
    parts = text.split(":")
    if (
        len(parts) != 3
        or not 1 <= len(parts[0]) <= TERMINAL_ID_MAX
        or not parts[0].isascii()
        or not all(p.isdigit() and len(p) <= 6 and 1 <= int(p) <= 999_999 for p in parts[1:])
    ):
        raise ClearingCliError(f"--release: {text!r} is not TERMINAL:BATCH:STAN")
    return ReleaseKey(parts[0], int(parts[1]), int(parts[2]))


@app.command("run")
def run(
    day: str = typer.Option(..., "--date", help="Business date, YYYY-MM-DD."),
    db: str = typer.Option(..., "--db", envvar="NFCPAY_DB", help=DB_HELP),
    out: str = typer.Option(..., "--out", help="Folder for the settlement files."),
    kind: str = typer.Option("daily", "--kind", help="daily | month-end | adjustment."),
    cutoff: str = typer.Option("00:00", "--cutoff", help="Cut-off, Asia/Shanghai, HH:MM."),
    network: str = typer.Option(NETWORK_ID_DEFAULT, "--network", help="Network party id."),
    release: list[str] = typer.Option(  # noqa: B008 - typer's idiom
        [],
        "--release",
        help="adjustment: a held item to release, TERMINAL:BATCH:STAN (repeatable).",
    ),
) -> None:
    """Clear one business date: one transaction, all or nothing; the same input twice is a
    no-op with byte-identical files. An adjustment releases held items of earlier dates."""
    console = Console(stderr=True)
    with _errors():
        if kind not in KINDS:
            raise ClearingCliError(f"--kind: {kind!r} is not daily, month-end or adjustment")
        if release and KINDS[kind] is not RunKind.ADJUSTMENT:
            raise ClearingCliError("--release is for --kind adjustment")
        keys = tuple(_release_key(item) for item in release)
        options = RunOptions(_date(day), KINDS[kind], _cutoff(cutoff), network, keys)
        service, store = open_service(db, _out(out, create=True))
        try:
            stages = list(all_stage_names(options.kind))
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            ) as progress:
                task = progress.add_task("clearing", total=len(stages))

                def hook(stage: str) -> None:
                    progress.update(task, advance=1, description=f"clearing: {stage} done")

                result = service.run(options, hook)
        finally:
            store.close()
    record = result.record
    table = Table(title=f"clearing {record.business_date} {record.kind.value} run {record.seq}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("outcome", "no-op (same input)" if result.no_op else "completed")
    c = record.counts
    for label, value in (
        ("transactions", c.txn_count),
        ("settled", c.settled_count),
        ("held", c.held_count),
        ("carried", c.carried_count),
        ("rejected", c.rejected_count),
        ("exception rows", c.exception_count),
    ):
        table.add_row(label, str(value))
    for name, digest in sorted(record.files.items()):
        table.add_row(name, digest[:16])
    Console().print(table)


@app.command("show")
def show(
    day: str = typer.Option(..., "--date", help="Business date, YYYY-MM-DD."),
    db: str = typer.Option(..., "--db", envvar="NFCPAY_DB", help=DB_HELP),
) -> None:
    """The runs of a business date and their file hashes."""
    with _errors():
        service, store = open_service(db, Path("."))
        try:
            runs = service.runs_of(_date(day))
        finally:
            store.close()
    if not runs:
        raise _fail(f"no clearing run for {day}")
    console = Console()
    for r in runs:
        c = r.counts
        console.print(
            f"{r.business_date} {r.kind.value} seq {r.seq} {r.status} "
            f"txns {c.txn_count} settled {c.settled_count} held {c.held_count} "
            f"carried {c.carried_count} rejected {c.rejected_count} "
            f"exceptions {c.exception_count} fingerprint {r.fingerprint[:16]}"
        )
        for name, digest in sorted(r.files.items()):
            console.print(f"  {name} sha256 {digest}")


def _issuer_keys(items: list[str]) -> dict[str, IssuerKeys]:
    """``ISSUER=FILE`` options: the issuer key files of card.md §6 (keys never printed)."""
    keys: dict[str, IssuerKeys] = {}
    for item in items:
        issuer, sep, path = item.partition("=")
        if not sep or not issuer or not path:
            raise ClearingCliError(f"--issuer-keys: {item!r} is not ISSUER=FILE")
        if issuer in keys:
            raise ClearingCliError(f"--issuer-keys: {issuer} given twice")
        file = Path(path)
        if not file.is_file() or file.stat().st_size > KEY_FILE_MAX_BYTES:
            raise ClearingCliError(f"--issuer-keys: {file} is not an issuer key file")
        try:
            keys[issuer] = issuer_keys.parse(file.read_text(encoding="utf-8"))
        except (DecodeError, UnicodeDecodeError):
            raise ClearingCliError(f"--issuer-keys: {file} is not an issuer key file") from None
    return keys


@app.command("verify")
def verify(
    day: str = typer.Option(..., "--date", help="Business date, YYYY-MM-DD."),
    db: str = typer.Option(..., "--db", envvar="NFCPAY_DB", help=DB_HELP),
    out: str = typer.Option(..., "--out", help="Folder holding the settlement files."),
    keys: list[str] = typer.Option(  # noqa: B008 - typer's idiom
        [],
        "--issuer-keys",
        help="ISSUER=FILE (card.md §6 key file), repeatable: re-verify every completion's TAC.",
    ),
) -> None:
    """Re-check the ledger invariants of the date's runs and the files' SHA-256; with
    --issuer-keys also recompute every completion's TAC and compare it with the host's
    recorded verdict."""
    with _errors():
        business_date = _date(day)
        issuers = _issuer_keys(keys)
        service, store = open_service(db, _out(out, create=False))
        try:
            if not service.runs_of(business_date):
                raise ClearingCliError(f"no clearing run for {day}")
            problems = service.verify(business_date)
            tacs = service.verify_tacs(business_date, issuers) if issuers else None
        finally:
            store.close()
    if tacs is not None:
        problems += tacs.mismatches
        mismatched = tacs.counts[TacOutcome.MISMATCH]
        if mismatched > len(tacs.mismatches):
            problems.append(f"{mismatched - len(tacs.mismatches)} more TAC mismatches")
    if problems:
        raise _fail(f"{len(problems)} problem(s): " + " | ".join(problems))
    console = Console()
    console.print(f"{day}: ledger invariants hold, files match their recorded SHA-256")
    if tacs is None:
        console.print("TACs were not re-verified (give --issuer-keys ISSUER=FILE)")
    else:
        console.print(tacs.summary())
