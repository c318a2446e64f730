"""The clearing run (clearing.md §7, docs/clearing-run.md): one business date, one database
transaction, all or nothing.

lock → fingerprint (same as the completed run: no-op, the files are written again from the
stored rows, byte for byte; different: refused) → the set-based stages in SQL → the 7:2:1
split per group (a small reduce, in Python with the domain) → partner shares → ledger →
every invariant of §6 (a broken one raises and rolls everything back) → file bytes and their
SHA-256 in the run row → commit → files written atomically.

The files are written after the commit: a crash between the two leaves a completed run whose
files are missing or old, and the next run of the date (a no-op) writes them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

from clearing.domain.files import (
    FileKind,
    exceptions_csv,
    file_name,
    merchant_settlement_csv,
    partner_statement_csv,
    party_settlement_csv,
)
from clearing.domain.partners import (
    EXPANSION_FEE_MAX_FEN,
    EXPANSION_FEE_MIN_FEN,
    expansion_eligible_on,
    month_end,
)
from clearing.domain.split import split_commission
from clearing.domain.tac import TacReport
from clearing.domain.tac import check as check_tac
from clearing.ports import (
    ADJUSTMENT_SQL_STAGES,
    ADJUSTMENT_SQL_STAGES_AFTER_SPLIT,
    DAILY_SQL_STAGES,
    DAILY_SQL_STAGES_AFTER_SPLIT,
    MONTH_END_SQL_STAGES,
    RELEASE_KEYS_MAX,
    ClearingStore,
    GroupShares,
    InvariantBroken,
    PartnerFeeLine,
    ReferenceData,
    RunKind,
    RunOptions,
    RunRecord,
    RunRefused,
    RunUnit,
)
from paycore.issuer_keys import IssuerKeys

#: Called after each stage with its name (the CLI's progress display; tests inject faults).
StageHook = Callable[[str], None]
FileWriter = Callable[[Path, str, bytes], str]
Clock = Callable[[], datetime]
NETWORK_ID_MAX: Final = 32


@dataclass(frozen=True, slots=True)
class RunResult:
    record: RunRecord
    no_op: bool
    files: dict[str, Path]


def _no_hook(_stage: str) -> None:
    return None


class ClearingService:
    def __init__(
        self, store: ClearingStore, write_file: FileWriter, clock: Clock, out_dir: Path
    ) -> None:
        self._store = store
        self._write = write_file
        self._clock = clock
        self._out = out_dir

    def run(self, options: RunOptions, hook: StageHook = _no_hook) -> RunResult:
        _check_options(options)
        if not self._out.is_dir():
            raise RunRefused(f"output folder {self._out} does not exist")
        with self._store.run_unit(options) as unit:
            unit.lock()
            hook("lock")
            if options.kind is RunKind.DAILY:
                result = self._daily(unit, options, hook)
            elif options.kind is RunKind.MONTH_END:
                result = self._month_end(unit, options, hook)
            else:
                result = self._adjustment(unit, options, hook)
            record, files, no_op = result
        written = {name: self._out / name for name in files}
        for name, data in files.items():
            digest = self._write(self._out, name, data)
            if digest != record.files.get(name):
                raise RunRefused(f"{name}: written bytes do not match the recorded SHA-256")
        hook("written")
        return RunResult(record, no_op, written)

    # --- daily -------------------------------------------------------------------------------

    def _daily(
        self, unit: RunUnit, options: RunOptions, hook: StageHook
    ) -> tuple[RunRecord, dict[str, bytes], bool]:
        fingerprint = unit.daily_fingerprint()
        hook("fingerprint")
        previous = unit.find_run(options.business_date, RunKind.DAILY)
        if previous is not None:
            return self._same_or_refused(unit, previous, fingerprint, hook)
        latest = unit.latest_daily_date()
        if latest is not None and latest > options.business_date:
            raise RunRefused(
                f"{latest.isoformat()} is already cleared: dates are cleared in order (items "
                f"carried from {options.business_date.isoformat()} would have nowhere to go)"
            )
        run_id = unit.begin(1, fingerprint, self._clock())
        self._stages(unit, DAILY_SQL_STAGES, DAILY_SQL_STAGES_AFTER_SPLIT, hook)
        self._check(unit)
        hook("invariants")
        files = self._daily_files(unit, run_id, options.business_date)
        record = unit.finish(unit.counts(), _digests(files), self._clock())
        hook("files")
        return record, files, False

    @staticmethod
    def _stages(
        unit: RunUnit, before: tuple[str, ...], after: tuple[str, ...], hook: StageHook
    ) -> None:
        """The SQL stages, the 7:2:1 split per group in Python, the stages after it."""
        for stage in before:
            unit.stage(stage)
            hook(stage)
        shares = []
        for flows in unit.group_flows():
            split = split_commission(flows.commission_fen)
            shares.append(
                GroupShares(flows, split.issuer_fen, split.acquirer_fen, split.network_fen)
            )
        unit.insert_split(shares)
        hook("split")
        for stage in after:
            unit.stage(stage)
            hook(stage)

    def _files_of(self, unit: RunUnit, record: RunRecord) -> dict[str, bytes]:
        if record.kind is RunKind.DAILY:
            return self._daily_files(unit, record.run_id, record.business_date)
        if record.kind is RunKind.ADJUSTMENT:
            return self._adjustment_files(unit, record.run_id, record.business_date, record.seq)
        return self._month_end_files(unit, record.run_id, record.business_date)

    def _same_or_refused(
        self, unit: RunUnit, previous: RunRecord, fingerprint: str, hook: StageHook
    ) -> tuple[RunRecord, dict[str, bytes], bool]:
        if previous.fingerprint != fingerprint:
            raise RunRefused(
                f"{previous.business_date.isoformat()} is closed ({previous.kind.value} run "
                f"{previous.seq}) and its input has changed since: late items go to the next "
                "date, held items are released by an adjustment"
            )
        files = self._files_of(unit, previous)
        if _digests(files) != previous.files:
            raise RunRefused(
                f"{previous.business_date.isoformat()}: the stored rows no longer give the "
                "recorded files (run `clearing verify`)"
            )
        hook("files")
        return previous, files, True

    def _daily_files(self, unit: RunUnit, run_id: int, day: date) -> dict[str, bytes]:
        return {
            file_name(FileKind.MERCHANT_SETTLEMENT, day): merchant_settlement_csv(
                unit.merchant_rows(run_id)
            ),
            file_name(FileKind.PARTY_SETTLEMENT, day): party_settlement_csv(
                unit.party_rows(run_id)
            ),
            file_name(FileKind.EXCEPTIONS, day): exceptions_csv(unit.exception_rows(run_id)),
        }

    # --- month end ---------------------------------------------------------------------------

    def _month_end(
        self, unit: RunUnit, options: RunOptions, hook: StageHook
    ) -> tuple[RunRecord, dict[str, bytes], bool]:
        day = options.business_date
        if day != month_end(day):
            raise RunRefused(f"{day.isoformat()} is not the last day of its month")
        if unit.find_run(day, RunKind.DAILY) is None:
            raise RunRefused(f"run the DAILY clearing of {day.isoformat()} before its month end")
        fees = month_end_fees(day, unit.reference_data(), unit.expansion_paid())
        fingerprint = unit.month_end_fingerprint(fees)
        hook("fingerprint")
        previous = unit.find_run(day, RunKind.MONTH_END)
        if previous is not None:
            return self._same_or_refused(unit, previous, fingerprint, hook)
        run_id = unit.begin(1, fingerprint, self._clock())
        unit.insert_partner_fees(fees)
        hook("month_end_fees")
        for stage in MONTH_END_SQL_STAGES:
            unit.stage(stage)
            hook(stage)
        self._check(unit)
        hook("invariants")
        files = self._month_end_files(unit, run_id, day)
        record = unit.finish(unit.counts(), _digests(files), self._clock())
        hook("files")
        return record, files, False

    def _month_end_files(self, unit: RunUnit, run_id: int, day: date) -> dict[str, bytes]:
        return {
            file_name(FileKind.PARTNER_STATEMENT, day): partner_statement_csv(
                unit.partner_rows(run_id)
            )
        }

    # --- adjustment --------------------------------------------------------------------------

    def _adjustment(
        self, unit: RunUnit, options: RunOptions, hook: StageHook
    ) -> tuple[RunRecord, dict[str, bytes], bool]:
        """Release held items (clearing.md §5): each named item, held by a completed DAILY run
        of an earlier date and not released yet, settles on this date: its hold is reversed
        and the sale (or load) posted, its commission split 7:2:1 and shared with the
        partner. Its own seq per date; the same release again is a no-op."""
        day = options.business_date
        if not options.release:
            raise RunRefused(
                "an adjustment names the held items it releases: --release TERMINAL:BATCH:STAN"
            )
        if len(options.release) > RELEASE_KEYS_MAX:
            raise RunRefused(f"at most {RELEASE_KEYS_MAX} held items per adjustment")
        if len(set(options.release)) != len(options.release):
            raise RunRefused("a held item is named twice")
        if unit.find_run(month_end(day), RunKind.MONTH_END) is not None:
            raise RunRefused(f"{day:%Y-%m} is closed by its month-end run")
        fingerprint = unit.adjustment_fingerprint()
        hook("fingerprint")
        done = unit.completed_runs(RunKind.ADJUSTMENT)
        for previous in done:
            if previous.fingerprint == fingerprint:
                return self._same_or_refused(unit, previous, fingerprint, hook)
        seq = max((r.seq for r in done), default=0) + 1
        run_id = unit.begin(seq, fingerprint, self._clock())
        self._stages(unit, ADJUSTMENT_SQL_STAGES, ADJUSTMENT_SQL_STAGES_AFTER_SPLIT, hook)
        self._check(unit)
        hook("invariants")
        files = self._adjustment_files(unit, run_id, day, seq)
        record = unit.finish(unit.counts(), _digests(files), self._clock())
        hook("files")
        return record, files, False

    def _adjustment_files(
        self, unit: RunUnit, run_id: int, day: date, seq: int
    ) -> dict[str, bytes]:
        return {
            adjustment_file_name(FileKind.MERCHANT_SETTLEMENT, day, seq): merchant_settlement_csv(
                unit.merchant_rows(run_id)
            ),
            adjustment_file_name(FileKind.PARTY_SETTLEMENT, day, seq): party_settlement_csv(
                unit.party_rows(run_id)
            ),
        }

    # --- checks ------------------------------------------------------------------------------

    @staticmethod
    def _check(unit: RunUnit) -> None:
        problems = unit.invariant_problems()
        if problems:
            raise InvariantBroken("ledger invariant broken: " + "; ".join(problems))

    # --- read side ---------------------------------------------------------------------------

    def runs_of(self, day: date) -> list[RunRecord]:
        return self._store.runs_of(day)

    def verify(self, day: date) -> list[str]:
        """Problems found re-checking every completed run of ``day``: the §6 invariants on the
        stored rows and postings, the files regenerated from them against the recorded
        SHA-256, and the files on disk. Empty when all is well."""
        problems: list[str] = []
        for record in self._store.runs_of(day):
            options = RunOptions(day, record.kind, network_id=record.network_id)
            with self._store.read_unit(options) as unit:
                unit.attach(record.run_id, record.seq)
                problems += [f"{record.kind.value}: {p}" for p in unit.invariant_problems()]
                files = self._files_of(unit, record)
            for name, digest in _digests(files).items():
                if record.files.get(name) != digest:
                    problems.append(f"{name}: stored rows no longer give the recorded SHA-256")
                path = self._out / name
                if not path.is_file():
                    problems.append(f"{name}: missing from {self._out}")
                elif _sha256(path.read_bytes()) != record.files.get(name):
                    problems.append(f"{name}: bytes on disk differ from the recorded SHA-256")
        return problems

    def verify_tacs(self, day: date, keys: dict[str, IssuerKeys]) -> TacReport:
        """Recompute the TAC of every completion of ``day`` with the issuers' master keys
        (``clearing.domain.tac``) and compare with the verdicts the host recorded."""
        report = TacReport()
        for proof in self._store.completions(day):
            report.add(proof, check_tac(proof, keys))
        return report


def adjustment_file_name(kind: FileKind, day: date, seq: int) -> str:
    """``merchant_settlement_<YYYYMMDD>_adj<seq>.csv`` and the like (never a daily name)."""
    return file_name(kind, day).removesuffix(".csv") + f"_adj{seq}.csv"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: _sha256(data) for name, data in files.items()}


def _check_options(options: RunOptions) -> None:
    network = options.network_id
    if not network or len(network) > NETWORK_ID_MAX or not network.isascii():
        raise RunRefused("network id must be 1..32 ASCII characters")
    if not isinstance(options.kind, RunKind):
        raise RunRefused("unknown run kind")


def month_end_fees(day: date, ref: ReferenceData, already_paid: set[str]) -> list[PartnerFeeLine]:
    """EXPANSION and MAINTENANCE lines of the month-end run of ``day``'s month (clearing.md §4).

    Expansion: the merchant's signing partner's contract in force on the onboarding date;
    eligible on onboarded_on + retention_days, paid when that date is in this month, the
    merchant is active (its current status) and never paid before. Maintenance: every terminal
    deployed on or before the month's last day and not returned by then, to its maintaining
    partner whose maintenance contract is in force that day, at the contract's monthly fee."""
    last = month_end(day)
    first = last.replace(day=1)
    acquirer = {m.merchant_id: m.acquirer_id for m in ref.merchants}

    def in_force(partner_id: str, kind: str, on: date) -> list[int]:
        found = [
            n
            for n, c in enumerate(ref.contracts)
            if c.partner_id == partner_id
            and c.kind == kind
            and c.effective_from <= on
            and (c.effective_to is None or on < c.effective_to)
        ]
        return sorted(found, key=lambda n: ref.contracts[n].effective_from)[-1:]

    fees: list[PartnerFeeLine] = []
    for m in ref.merchants:
        if m.signing_partner_id is None or m.merchant_id in already_paid:
            continue
        for n in in_force(m.signing_partner_id, "signing", m.onboarded_on):
            c = ref.contracts[n]
            fee = c.expansion_fee_fen
            if fee is None or not EXPANSION_FEE_MIN_FEN <= fee <= EXPANSION_FEE_MAX_FEN:
                continue
            eligible = expansion_eligible_on(m.onboarded_on, c.retention_days or 0)
            if first <= eligible <= last and m.status == "active":
                fees.append(
                    PartnerFeeLine(c.partner_id, "EXPANSION", m.merchant_id, m.acquirer_id, fee)
                )
    for t in ref.terminals:
        if t.maintaining_partner_id is None:
            continue
        if not (t.deployed_on <= last and (t.returned_on is None or last < t.returned_on)):
            continue
        for n in in_force(t.maintaining_partner_id, "maintenance", last):
            c = ref.contracts[n]
            fees.append(
                PartnerFeeLine(
                    c.partner_id,
                    "MAINTENANCE",
                    t.terminal_id,
                    acquirer.get(t.merchant_id, "UNKNOWN"),
                    c.monthly_fee_fen or 0,
                )
            )
    return sorted(fees, key=lambda f: (f.partner_id, f.kind, f.reference))
