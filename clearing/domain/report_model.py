"""What the day's human report shows (clearing.md §7: "a human report (HTML, with charts)
summarising the day"): the run, the settlement rows of the files, and the hourly volume. Pure
data, checked on construction; the HTML is drawn by ``clearing.adapters.report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, NamedTuple

from clearing.domain.errors import InvalidInput, check_int
from clearing.domain.files import (
    AMOUNT_ABS_MAX_FEN,
    COUNT_MAX,
    ExceptionFileRow,
    MerchantSettlementRow,
    PartnerStatementRow,
    PartySettlementRow,
)

RUN_KINDS: Final = ("DAILY", "MONTH_END", "ADJUSTMENT")
HOURS_PER_DAY: Final = 24
NAME_MAX: Final = 80
ROWS_MAX: Final = 1_000_000


class HourBucket(NamedTuple):
    """Purchases authorised in one local hour (0..23) of the business date: their count,
    amount and commission (fee). Any ``(hour, count, amount_fen, fee_fen)`` tuple is one."""

    hour: int
    txn_count: int
    amount_fen: int
    fee_fen: int


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One run's day. ``merchant_names`` maps merchant_id to a display name (missing: the id is
    shown alone); ``hourly`` has at most one bucket per hour (missing hours are drawn as 0)."""

    business_date: date
    run_id: str
    run_kind: str
    fingerprint: str
    merchants: tuple[MerchantSettlementRow, ...]
    parties: tuple[PartySettlementRow, ...]
    exceptions: tuple[ExceptionFileRow, ...]
    hourly: tuple[tuple[int, int, int, int], ...]
    partners: tuple[PartnerStatementRow, ...] = ()
    merchant_names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = "day_summary"
        if isinstance(self.business_date, datetime) or not isinstance(self.business_date, date):
            raise InvalidInput(r, "business_date", "must be a date")
        for name in ("run_id", "fingerprint"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 1 <= len(value) <= 128:
                raise InvalidInput(r, name, "must be text of 1..128 characters")
        if self.run_kind not in RUN_KINDS:
            raise InvalidInput(r, "run_kind", f"must be one of {', '.join(RUN_KINDS)}")
        for name, kind in (
            ("merchants", MerchantSettlementRow),
            ("parties", PartySettlementRow),
            ("exceptions", ExceptionFileRow),
            ("partners", PartnerStatementRow),
        ):
            rows = tuple(getattr(self, name))
            if len(rows) > ROWS_MAX:
                raise InvalidInput(r, name, f"more than {ROWS_MAX} rows")
            if not all(isinstance(row, kind) for row in rows):
                raise InvalidInput(r, name, f"must hold {kind.__name__} only")
            object.__setattr__(self, name, rows)
        buckets = tuple(HourBucket(*bucket) for bucket in self.hourly)
        seen: set[int] = set()
        for bucket in buckets:
            check_int(r, "hourly.hour", bucket.hour, 0, HOURS_PER_DAY - 1)
            check_int(r, "hourly.txn_count", bucket.txn_count, 0, COUNT_MAX)
            check_int(r, "hourly.amount_fen", bucket.amount_fen, 0, AMOUNT_ABS_MAX_FEN)
            check_int(r, "hourly.fee_fen", bucket.fee_fen, -AMOUNT_ABS_MAX_FEN, AMOUNT_ABS_MAX_FEN)
            if bucket.hour in seen:
                raise InvalidInput(r, "hourly.hour", f"hour {bucket.hour} appears twice")
            seen.add(bucket.hour)
        object.__setattr__(self, "hourly", tuple(sorted(buckets)))
        names = dict(self.merchant_names)
        for key, value in names.items():
            if not isinstance(key, str) or not isinstance(value, str) or len(value) > NAME_MAX:
                raise InvalidInput(r, "merchant_names", f"bad entry for {key!r}")
        object.__setattr__(self, "merchant_names", names)

    def hours(self) -> tuple[HourBucket, ...]:
        """All 24 hours, missing ones as zero buckets."""
        by_hour = {b[0]: HourBucket(*b) for b in self.hourly}
        return tuple(by_hour.get(h, HourBucket(h, 0, 0, 0)) for h in range(HOURS_PER_DAY))
