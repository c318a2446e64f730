"""What the clearing service needs from the outside world (style.md: ports name no adapter).

A run is one database transaction (``RunUnit``): everything it writes commits together or not
at all. The SQL adapter (``clearing.adapters.sql.run``) does the per-transaction work as
INSERT ... SELECT; the service drives the stages, does the small reduces (the 7:2:1 split per
group, the month-end fees) with the pure domain, and writes the files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Final, Protocol

from clearing.domain.errors import ClearingError
from clearing.domain.files import (
    ExceptionFileRow,
    MerchantSettlementRow,
    PartnerStatementRow,
    PartySettlementRow,
)
from clearing.domain.tac import CompletionProof

NETWORK_ID_DEFAULT: Final = "CUP"
CUTOFF_DEFAULT: Final = time(0, 0)


class RunKind(StrEnum):
    DAILY = "DAILY"
    MONTH_END = "MONTH_END"
    ADJUSTMENT = "ADJUSTMENT"


class RunRefused(ClearingError):  # noqa: N818 - a verdict, as domain.errors.InvalidInput
    """The run may not go ahead: another run of the date holds the lock, the date is closed
    with a different input, a precondition is missing. Nothing was written."""


class InvariantBroken(ClearingError):  # noqa: N818 - a verdict
    """A ledger invariant of clearing.md §6 failed at the end of a run; the run rolled back."""


@dataclass(frozen=True, slots=True, order=True)
class ReleaseKey:
    """A held item an ADJUSTMENT run releases: the transaction's terminal, batch and STAN."""

    terminal_id: str
    batch_no: int
    stan: int

    def __str__(self) -> str:
        return f"{self.terminal_id}:{self.batch_no}:{self.stan}"


#: The most held items one adjustment releases.
RELEASE_KEYS_MAX: Final = 10_000


@dataclass(frozen=True, slots=True)
class RunOptions:
    business_date: date
    kind: RunKind = RunKind.DAILY
    cutoff: time = CUTOFF_DEFAULT  # Asia/Shanghai, on the day after business_date
    network_id: str = NETWORK_ID_DEFAULT
    release: tuple[ReleaseKey, ...] = ()  # ADJUSTMENT only


@dataclass(frozen=True, slots=True)
class RunCounts:
    txn_count: int = 0
    settled_count: int = 0
    held_count: int = 0
    carried_count: int = 0
    rejected_count: int = 0
    exception_count: int = 0


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as recorded in ``clr_runs``; ``files`` maps file name to SHA-256 hex."""

    run_id: int
    business_date: date
    kind: RunKind
    seq: int
    status: str
    fingerprint: str
    network_id: str
    cutoff: str
    counts: RunCounts
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupFlows:
    """One split group's settled flows (fen): C (charged minus returned commission) and the
    issuer's purchases, refunds and loads."""

    issuer_id: str
    acquirer_id: str
    commission_fen: int
    purchase_fen: int
    refund_fen: int
    load_fen: int


@dataclass(frozen=True, slots=True)
class GroupShares:
    flows: GroupFlows
    issuer_fen: int
    acquirer_fen: int
    network_fen: int


@dataclass(frozen=True, slots=True)
class RefMerchant:
    merchant_id: str
    acquirer_id: str
    onboarded_on: date
    status: str
    signing_partner_id: str | None


@dataclass(frozen=True, slots=True)
class RefTerminal:
    terminal_id: str
    merchant_id: str
    deployed_on: date
    returned_on: date | None
    status: str
    maintaining_partner_id: str | None


@dataclass(frozen=True, slots=True)
class RefContract:
    partner_id: str
    kind: str  # signing | maintenance
    effective_from: date
    effective_to: date | None
    share_bp: int | None
    expansion_fee_fen: int | None
    retention_days: int | None
    monthly_fee_fen: int | None


@dataclass(frozen=True, slots=True)
class ReferenceData:
    merchants: tuple[RefMerchant, ...]
    terminals: tuple[RefTerminal, ...]
    contracts: tuple[RefContract, ...]


@dataclass(frozen=True, slots=True)
class PartnerFeeLine:
    """A month-end fee: EXPANSION (reference = merchant) or MAINTENANCE (reference = terminal),
    paid by the acquirer of the merchant concerned."""

    partner_id: str
    kind: str
    reference: str
    acquirer_id: str
    amount_fen: int


class RunUnit(Protocol):
    """One run's database transaction. Stage methods write; nothing is visible to others
    until the unit commits; an exception rolls everything back."""

    def lock(self) -> None:
        """Refuse (RunRefused) when another run of this date holds the lock."""

    def completed_runs(self, kind: RunKind) -> list[RunRecord]: ...

    def find_run(self, business_date: date, kind: RunKind) -> RunRecord | None: ...

    def latest_daily_date(self) -> date | None:
        """The latest business date with a completed DAILY run."""

    def daily_fingerprint(self) -> str: ...

    def month_end_fingerprint(self, fees: Sequence[PartnerFeeLine]) -> str: ...

    def adjustment_fingerprint(self) -> str:
        """Over the released keys and the held rows they name (whether released yet or not),
        so that the same adjustment again is recognised as a no-op."""

    def begin(self, seq: int, fingerprint: str, started_at: datetime) -> int: ...

    def attach(self, run_id: int, seq: int) -> None:
        """Point a read unit at a stored run (verify)."""

    def stage(self, name: str) -> None:
        """Run one set-based stage by name (see ``DAILY_SQL_STAGES``)."""

    def group_flows(self) -> list[GroupFlows]: ...

    def insert_split(self, shares: Sequence[GroupShares]) -> None: ...

    def reference_data(self) -> ReferenceData: ...

    def expansion_paid(self) -> set[str]: ...

    def insert_partner_fees(self, fees: Sequence[PartnerFeeLine]) -> None: ...

    def invariant_problems(self) -> list[str]: ...

    def counts(self) -> RunCounts: ...

    def merchant_rows(self, run_id: int) -> list[MerchantSettlementRow]: ...

    def party_rows(self, run_id: int) -> list[PartySettlementRow]: ...

    def exception_rows(self, run_id: int) -> list[ExceptionFileRow]: ...

    def partner_rows(self, month_end_run_id: int) -> list[PartnerStatementRow]: ...

    def finish(
        self, counts: RunCounts, files: dict[str, str], finished_at: datetime
    ) -> RunRecord: ...


class ClearingStore(Protocol):
    def run_unit(self, options: RunOptions) -> AbstractContextManager[RunUnit]:
        """A new run transaction; commits when the block ends without an exception."""

    def read_unit(self, options: RunOptions) -> AbstractContextManager[RunUnit]:
        """A read-only transaction (show, verify)."""

    def runs_of(self, business_date: date) -> list[RunRecord]: ...

    def completions(self, business_date: date) -> Iterator[CompletionProof]:
        """Every completion of the date's transactions, streamed (bounded memory)."""

    def close(self) -> None: ...


#: The set-based stages of a daily run, in order (each one INSERT ... SELECT).
DAILY_SQL_STAGES: Final = (
    "rules",
    "counters",
    "detail",
    "refunds",
    "exceptions",
    "carried",
    "merchant_days",
)
DAILY_SQL_STAGES_AFTER_SPLIT: Final = ("partner_shares", "ledger")
MONTH_END_SQL_STAGES: Final = ("month_end_ledger",)
#: An ADJUSTMENT: the named held items settle on its date (docs/clearing-run.md).
ADJUSTMENT_SQL_STAGES: Final = ("release", "adjustment_merchant_days")
ADJUSTMENT_SQL_STAGES_AFTER_SPLIT: Final = ("partner_shares", "adjustment_ledger")


def all_stage_names(kind: RunKind) -> Iterator[str]:
    """Stage names as the progress display shows them."""
    yield "lock"
    yield "fingerprint"
    if kind is RunKind.DAILY:
        yield from DAILY_SQL_STAGES
        yield "split"
        yield from DAILY_SQL_STAGES_AFTER_SPLIT
    elif kind is RunKind.ADJUSTMENT:
        yield from ADJUSTMENT_SQL_STAGES
        yield "split"
        yield from ADJUSTMENT_SQL_STAGES_AFTER_SPLIT
    else:
        yield "month_end_fees"
        yield from MONTH_END_SQL_STAGES
    yield "invariants"
    yield "files"
