"""The integer formulas of the run's SQL against the pure domain (clearing.md §2, §4), evaluated
by a real SQLite on random rules and amounts: half up, min / max / amount caps, fixed fees,
discount and zero rules, and the partner share rounded symmetrically around zero."""

from __future__ import annotations

import sqlite3
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.adapters.sql.run import _commission_sql  # the SQL text under test
from clearing.domain.commission import CommissionRule, commission_fen
from clearing.domain.partners import partner_share_fen

DAY = date(2026, 3, 1)
_DB = sqlite3.connect(":memory:")
_COMMISSION = (
    f"SELECT {_commission_sql('x.amount_fen')} FROM (SELECT :amount AS amount_fen) x, "
    "(SELECT :kind AS kind, :rate_bp AS rate_bp, :min_fen AS min_fen, :max_fen AS max_fen, "
    ":fee_fen AS fee_fen) r"
)
_SHARE = (
    "SELECT CASE WHEN :w >= 0 THEN (2 * :w + 50000) / 100000 "
    "ELSE -((2 * (-:w) + 50000) / 100000) END"
)


@st.composite
def rules(draw: st.DrawFn) -> CommissionRule:
    kind = draw(st.sampled_from(["percent", "fixed", "discount", "zero"]))
    if kind == "percent":
        low = draw(st.none() | st.integers(0, 2_000))
        high = draw(st.none() | st.integers(low or 0, 49_999))
        return CommissionRule.percent(
            "m", 1, DAY, rate_bp=draw(st.integers(0, 10_000)), min_fen=low, max_fen=high
        )
    if kind == "fixed":
        return CommissionRule.fixed("m", 1, DAY, fee_fen=draw(st.integers(0, 49_999)))
    if kind == "discount":
        user = draw(st.sampled_from([8000, 10000, 5000, 2000]))
        settle = draw(
            st.sampled_from([s for s in range(0, user + 1, 1000) if (user - s) * 10000 % user == 0])
        )
        return CommissionRule.discount("m", 1, DAY, user_bp=user, settle_bp=settle)
    return CommissionRule.zero("m", 1, DAY)


def sql_commission(rule: CommissionRule, amount_fen: int) -> int:
    row = _DB.execute(
        _COMMISSION,
        {
            "amount": amount_fen,
            "kind": rule.kind.value,
            "rate_bp": rule.rate_bp,
            "min_fen": rule.min_fen,
            "max_fen": rule.max_fen,
            "fee_fen": rule.fee_fen,
        },
    ).fetchone()
    assert row is not None
    return int(row[0])


@settings(max_examples=400, deadline=None)
@given(rules(), st.integers(1, 49_999))
def test_sql_commission_equals_the_domain(rule: CommissionRule, amount_fen: int) -> None:
    assert sql_commission(rule, amount_fen) == commission_fen(rule, amount_fen)


def test_clearing_md_worked_values_in_sql() -> None:
    p1000 = CommissionRule.percent("m", 1, DAY, rate_bp=1000)
    p100 = CommissionRule.percent("m", 1, DAY, rate_bp=100)
    cinema = CommissionRule.discount("m", 1, DAY, user_bp=8000, settle_bp=6000)
    assert sql_commission(p1000, 3_850) == 385
    assert sql_commission(p100, 1_250) == 13
    assert sql_commission(p100, 50) == 1
    assert sql_commission(p100, 49) == 0
    assert sql_commission(cinema, 3_599) == 900


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**9), 10**9), st.integers(0, 10_000))
def test_sql_partner_share_equals_the_domain(commission: int, share_bp: int) -> None:
    row = _DB.execute(_SHARE, {"w": commission * share_bp}).fetchone()
    assert row is not None
    assert int(row[0]) == partner_share_fen(commission, share_bp)
