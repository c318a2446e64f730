"""Pure pieces of the run: the cumulative form of the refund rule used in SQL equals the
domain's sequential rule; the cut-off instant; the month-end fees from reference data."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.adapters.sql.run import cutoff_instant
from clearing.domain.commission import returned_commission_fen
from clearing.ports import RefContract, ReferenceData, RefMerchant, RefTerminal
from clearing.service import month_end_fees


def cumulative_returns(a: int, c: int, refunds: list[int]) -> list[int]:
    """The SQL's form: R_i = c when the refunds reach a, else min(c, sum of proportional
    returns so far); each refund returns R_i - R_(i-1)."""
    out, total_r, total_p, previous = [], 0, 0, 0
    for r in refunds:
        total_r += r
        total_p += (2 * c * r + a) // (2 * a)
        now = c if total_r >= a else min(c, total_p)
        out.append(now - previous)
        previous = now
    return out


@st.composite
def refund_cases(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    a = draw(st.integers(1, 49_999))
    c = draw(st.integers(0, a))
    refunds: list[int] = []
    left = a
    while left > 0 and len(refunds) < 6:
        r = draw(st.integers(1, left))
        refunds.append(r)
        left -= r
        if draw(st.booleans()):
            break
    return a, c, refunds


@settings(max_examples=500)
@given(refund_cases())
def test_cumulative_refund_rule_equals_the_sequential_one(case: tuple[int, int, list[int]]) -> None:
    a, c, refunds = case
    expected, before_r, before_c = [], 0, 0
    for r in refunds:
        got = returned_commission_fen(
            original_amount_fen=a,
            original_commission_fen=c,
            refund_fen=r,
            refunded_before_fen=before_r,
            returned_before_fen=before_c,
        )
        expected.append(got)
        before_r += r
        before_c += got
    assert cumulative_returns(a, c, refunds) == expected


def test_cutoff_is_shanghai_time_on_the_next_day() -> None:
    assert cutoff_instant(date(2026, 3, 1), time(0, 0)) == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert cutoff_instant(date(2026, 3, 1), time(2, 30)) == datetime(2026, 3, 1, 18, 30, tzinfo=UTC)


def test_month_end_fees() -> None:
    ref = ReferenceData(
        merchants=(
            RefMerchant("M1", "A1", date(2025, 12, 1), "active", "P1"),  # eligible 2026-03-01
            RefMerchant("M2", "A1", date(2025, 12, 2), "closed", "P1"),  # closed: no fee
            RefMerchant("M3", "A1", date(2026, 1, 1), "active", "P1"),  # eligible in April
            RefMerchant("M4", "A1", date(2025, 12, 3), "active", "P1"),  # already paid
        ),
        terminals=(
            RefTerminal("T1", "M1", date(2026, 3, 31), None, "active", "P2"),  # last day: full fee
            RefTerminal("T2", "M1", date(2025, 1, 1), date(2026, 3, 31), "returned", "P2"),
            RefTerminal("T3", "M3", date(2025, 1, 1), None, "active", None),
        ),
        contracts=(
            RefContract("P1", "signing", date(2025, 1, 1), None, 5000, 50_000, 90, None),
            RefContract("P2", "maintenance", date(2025, 1, 1), None, None, None, None, 5_500),
        ),
    )
    fees = month_end_fees(date(2026, 3, 31), ref, {"M4"})
    assert [(f.partner_id, f.kind, f.reference, f.amount_fen) for f in fees] == [
        ("P1", "EXPANSION", "M1", 50_000),
        ("P2", "MAINTENANCE", "T1", 5_500),
    ]
