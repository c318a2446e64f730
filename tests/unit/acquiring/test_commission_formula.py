"""Commission of clearing.md §2: every worked value, the rule kinds, caps, discount
derivation, refunds; and property tests against exact rational half-up arithmetic."""

from __future__ import annotations

import itertools
from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acquiring.domain.commission import (
    RuleKind,
    commission_fen,
    discount_rate_bp,
    percent_commission_fen,
    rate_fen,
    refund_commission_fen,
    rule_in_force,
)
from acquiring.domain.errors import InvalidRecord
from acquiring.domain.model import CommissionRule

MID = "898310048990001"
FROM = date(2026, 1, 1)


def half_up(value: Fraction) -> int:
    """Exact round-half-up of a non-negative rational."""
    return int(value + Fraction(1, 2))  # int() truncates toward zero = floor for value >= 0


@pytest.mark.parametrize(
    ("rate_bp", "amount_fen", "expected_fen"),
    [
        (1000, 3_850, 385),  # fast-food chain, 10%
        (100, 1_250, 13),  # 12.5 rounds half up to 13, not 12
        (100, 50, 1),  # 0.5 -> 1
        (100, 49, 0),  # 0.49 -> 0
        (2500, 3_599, 900),  # cinema's equivalent rate: 899.75 -> 900
    ],
)
def test_worked_values(rate_bp: int, amount_fen: int, expected_fen: int) -> None:
    assert rate_fen(amount_fen, rate_bp) == expected_fen
    rule = CommissionRule(MID, RuleKind.PERCENT, FROM, rate_bp=rate_bp)
    assert commission_fen(rule, amount_fen) == expected_fen


def test_cinema_discount_rate_is_2500_and_charges_900_on_3599() -> None:
    assert discount_rate_bp(8000, 6000) == 2500
    rule = CommissionRule.discount(MID, FROM, user_bp=8000, settle_bp=6000)
    assert rule.rate_bp == 2500
    assert commission_fen(rule, 3_599) == 900
    assert 3_599 - commission_fen(rule, 3_599) == 2_699  # merchant net


@pytest.mark.parametrize(("user_bp", "settle_bp"), [(7000, 6000), (3000, 1000), (9999, 1)])
def test_discount_with_a_fractional_rate_is_refused(user_bp: int, settle_bp: int) -> None:
    with pytest.raises(InvalidRecord, match="not a whole number"):
        discount_rate_bp(user_bp, settle_bp)
    with pytest.raises(InvalidRecord, match="settle_bp"):
        CommissionRule.discount(MID, FROM, user_bp=user_bp, settle_bp=settle_bp)


def test_discount_rule_with_a_rate_that_is_not_the_derived_one_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="derived rate 2500"):
        CommissionRule(MID, RuleKind.DISCOUNT, FROM, rate_bp=2000, user_bp=8000, settle_bp=6000)


@pytest.mark.parametrize(("user_bp", "settle_bp"), [(0, 0), (10_001, 0), (8000, 8001), (8000, -1)])
def test_discount_terms_out_of_range_are_refused(user_bp: int, settle_bp: int) -> None:
    with pytest.raises(InvalidRecord):
        discount_rate_bp(user_bp, settle_bp)


def test_percent_min_and_max_caps() -> None:
    assert percent_commission_fen(1_000, 100, min_fen=50) == 50  # 10 -> floor 50
    assert percent_commission_fen(40_000, 1000, max_fen=2_000) == 2_000  # 4000 -> cap 2000
    assert percent_commission_fen(1_000, 100, min_fen=5, max_fen=20) == 10  # inside
    assert percent_commission_fen(3, 100, min_fen=5) == 3  # never more than the amount


def test_fixed_fee_is_capped_at_the_amount() -> None:
    rule = CommissionRule(MID, RuleKind.FIXED, FROM, fee_fen=200)
    assert commission_fen(rule, 5_000) == 200
    assert commission_fen(rule, 150) == 150


def test_zero_rule_charges_nothing() -> None:
    rule = CommissionRule(MID, RuleKind.ZERO, FROM)
    assert commission_fen(rule, 49_999) == 0


def test_rule_terms_must_fit_the_kind() -> None:
    with pytest.raises(InvalidRecord, match="fee_fen: does not apply"):
        CommissionRule(MID, RuleKind.PERCENT, FROM, rate_bp=100, fee_fen=5)
    with pytest.raises(InvalidRecord, match="rate_bp"):
        CommissionRule(MID, RuleKind.PERCENT, FROM)
    with pytest.raises(InvalidRecord, match="rate_bp"):
        CommissionRule(MID, RuleKind.PERCENT, FROM, rate_bp=10_001)
    with pytest.raises(InvalidRecord, match="max_fen"):
        CommissionRule(MID, RuleKind.PERCENT, FROM, rate_bp=100, min_fen=10, max_fen=5)
    with pytest.raises(InvalidRecord, match="rate_bp: does not apply"):
        CommissionRule(MID, RuleKind.ZERO, FROM, rate_bp=0)
    with pytest.raises(InvalidRecord, match="effective_to"):
        CommissionRule(MID, RuleKind.ZERO, FROM, effective_to=FROM)


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(InvalidRecord, match="amount_fen"):
        rate_fen(-1, 100)


# --- refunds -----------------------------------------------------------------------------------


def test_refund_returns_proportional_commission_half_up() -> None:
    # a = 3,850, c = 385; refund 1,000 -> 100 exactly; refund 1,925 -> 192.5 -> 193
    assert (
        refund_commission_fen(
            original_amount_fen=3_850, original_commission_fen=385, refund_fen=1_000
        )
        == 100
    )
    assert (
        refund_commission_fen(
            original_amount_fen=3_850, original_commission_fen=385, refund_fen=1_925
        )
        == 193
    )


def test_the_refund_completing_the_original_returns_what_is_left() -> None:
    # 1,250 at 100 bp: c = 13. Refund 625 -> 6.5 -> 7; the rest (625) returns 13 - 7 = 6.
    first = refund_commission_fen(
        original_amount_fen=1_250, original_commission_fen=13, refund_fen=625
    )
    assert first == 7
    last = refund_commission_fen(
        original_amount_fen=1_250,
        original_commission_fen=13,
        refund_fen=625,
        refunded_before_fen=625,
        returned_before_fen=first,
    )
    assert last == 6
    assert first + last == 13


def test_many_small_refunds_never_return_more_than_the_commission() -> None:
    # a = 20, c = 10: each 1-fen refund is 0.5 -> rounds to 1; the cap stops at c.
    returned = 0
    for refunded in range(20):
        returned += refund_commission_fen(
            original_amount_fen=20,
            original_commission_fen=10,
            refund_fen=1,
            refunded_before_fen=refunded,
            returned_before_fen=returned,
        )
        assert returned <= 10
    assert returned == 10


def test_refunds_beyond_the_original_are_refused() -> None:
    with pytest.raises(InvalidRecord, match="exceed"):
        refund_commission_fen(
            original_amount_fen=100,
            original_commission_fen=1,
            refund_fen=60,
            refunded_before_fen=50,
        )


# --- rules in force ----------------------------------------------------------------------------


def test_rule_in_force_is_the_highest_version_covering_the_date() -> None:
    v1 = CommissionRule(MID, RuleKind.PERCENT, FROM, rate_bp=100, version=1)
    v2 = CommissionRule(
        MID, RuleKind.PERCENT, date(2026, 3, 1), date(2026, 4, 1), rate_bp=200, version=2
    )
    rules = [v2, v1]
    assert rule_in_force(rules, date(2025, 12, 31)) is None
    assert rule_in_force(rules, date(2026, 2, 28)) == v1
    assert rule_in_force(rules, date(2026, 3, 1)) == v2
    assert rule_in_force(rules, date(2026, 3, 31)) == v2
    assert rule_in_force(rules, date(2026, 4, 1)) == v1  # [from, to): the 1st is outside v2


# --- properties --------------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=49_999)
rates = st.one_of(
    st.sampled_from([0, 1, 50, 99, 100, 101, 250, 1000, 2500, 5000, 9999, 10_000]),
    st.integers(min_value=0, max_value=10_000),
)


@given(amount_fen=amounts, rate_bp=rates)
def test_integer_formula_is_exact_half_up(amount_fen: int, rate_bp: int) -> None:
    assert rate_fen(amount_fen, rate_bp) == half_up(Fraction(amount_fen * rate_bp, 10_000))


@given(amount_fen=amounts, rate_bp=rates)
def test_commission_never_exceeds_the_amount(amount_fen: int, rate_bp: int) -> None:
    rule = CommissionRule(MID, RuleKind.PERCENT, FROM, rate_bp=rate_bp)
    assert 0 <= commission_fen(rule, amount_fen) <= amount_fen


@given(data=st.data(), amount_fen=amounts, rate_bp=rates)
def test_refund_return_is_exact_half_up_and_sums_to_the_commission(
    data: st.DataObject, amount_fen: int, rate_bp: int
) -> None:
    """Refund the original in up to 9 parts (cut at random points): each partial refund returns
    the exact half-up proportional commission (capped by what is left), and all of them
    together return exactly the commission charged."""
    c = rate_fen(amount_fen, rate_bp)
    cuts = data.draw(
        st.lists(st.integers(1, amount_fen - 1), max_size=8, unique=True)
        if amount_fen > 1
        else st.just([]),
        label="cuts",
    )
    bounds = [0, *sorted(cuts), amount_fen]
    refunded = returned = 0
    for low, high in itertools.pairwise(bounds):
        r = high - low
        got = refund_commission_fen(
            original_amount_fen=amount_fen,
            original_commission_fen=c,
            refund_fen=r,
            refunded_before_fen=refunded,
            returned_before_fen=returned,
        )
        if high < amount_fen:
            assert got == min(half_up(Fraction(c * r, amount_fen)), c - returned)
        refunded += r
        returned += got
        assert 0 <= returned <= c
    assert returned == c
