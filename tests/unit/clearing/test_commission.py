"""Clearing's commission (clearing.md §2): the worked values, each rule kind, caps, the discount
derivation, refunds returning commission, and rule selection by date and version."""

from __future__ import annotations

from datetime import date

import pytest

from clearing.domain.commission import (
    CommissionRule,
    RuleKind,
    commission_fen,
    discount_rate_bp,
    rate_fen,
    returned_commission_fen,
    rule_in_force,
)
from clearing.domain.errors import InvalidInput

MID = "898310048990001"
JAN = date(2026, 1, 1)


@pytest.mark.parametrize(
    ("rate_bp", "amount_fen", "expected_fen"),
    [
        (1000, 3_850, 385),  # fast-food chain, 10%
        (100, 1_250, 13),  # 12.5 -> 13, not 12
        (100, 50, 1),  # 0.5 -> 1
        (100, 49, 0),  # 0.49 -> 0
        (2500, 3_599, 900),  # the cinema's equivalent rate: 899.75 -> 900
    ],
)
def test_worked_values(rate_bp: int, amount_fen: int, expected_fen: int) -> None:
    assert rate_fen(amount_fen, rate_bp) == expected_fen
    rule = CommissionRule.percent(MID, 1, JAN, rate_bp=rate_bp)
    assert commission_fen(rule, amount_fen) == expected_fen


def test_cinema_discount_is_2500_bp_and_charges_900_on_3599() -> None:
    assert discount_rate_bp(8000, 6000) == 2500
    rule = CommissionRule.discount(MID, 1, JAN, user_bp=8000, settle_bp=6000)
    assert rule.kind is RuleKind.DISCOUNT
    assert rule.rate_bp == 2500
    assert commission_fen(rule, 3_599) == 900
    assert 3_599 - commission_fen(rule, 3_599) == 2_699


@pytest.mark.parametrize(("user_bp", "settle_bp"), [(7000, 6000), (3000, 1000), (9999, 1)])
def test_a_discount_whose_rate_is_not_whole_is_refused(user_bp: int, settle_bp: int) -> None:
    with pytest.raises(InvalidInput, match="not a whole number of bp") as info:
        CommissionRule.discount(MID, 1, JAN, user_bp=user_bp, settle_bp=settle_bp)
    assert info.value.field == "settle_bp"


def test_a_discount_with_a_rate_other_than_the_derived_one_is_refused() -> None:
    with pytest.raises(InvalidInput, match="derived rate 2500"):
        CommissionRule(MID, RuleKind.DISCOUNT, 1, JAN, rate_bp=2400, user_bp=8000, settle_bp=6000)


def test_discount_settle_above_user_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"settle_bp: must be 0\.\.8000"):
        discount_rate_bp(8000, 8001)


def test_percent_min_and_max_per_transaction() -> None:
    rule = CommissionRule.percent(MID, 1, JAN, rate_bp=100, min_fen=5, max_fen=200)
    assert commission_fen(rule, 100) == 5  # 1 -> floor 5
    assert commission_fen(rule, 3) == 3  # the floor never takes more than the amount
    assert commission_fen(rule, 10_000) == 100
    assert commission_fen(rule, 49_999) == 200  # 500 -> cap 200


def test_fixed_fee_is_capped_at_the_amount() -> None:
    rule = CommissionRule.fixed(MID, 1, JAN, fee_fen=30)
    assert commission_fen(rule, 1_000) == 30
    assert commission_fen(rule, 20) == 20


def test_zero_rule_charges_nothing() -> None:
    rule = CommissionRule.zero(MID, 1, JAN)  # supermarkets, the light-rail line
    assert commission_fen(rule, 49_999) == 0


@pytest.mark.parametrize("amount_fen", [0, 50_000, -1])
def test_amounts_outside_1_to_49999_are_refused(amount_fen: int) -> None:
    rule = CommissionRule.percent(MID, 1, JAN, rate_bp=100)
    with pytest.raises(InvalidInput, match="amount_fen"):
        commission_fen(rule, amount_fen)


def test_fields_of_another_kind_are_refused() -> None:
    with pytest.raises(InvalidInput, match="fee_fen: does not apply to a percent rule"):
        CommissionRule(MID, RuleKind.PERCENT, 1, JAN, rate_bp=100, fee_fen=3)


def test_min_above_max_is_refused() -> None:
    with pytest.raises(InvalidInput, match="max_fen: must not be below min_fen"):
        CommissionRule.percent(MID, 1, JAN, rate_bp=100, min_fen=10, max_fen=5)


def test_rate_above_10000_bp_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"rate_bp: must be 0\.\.10000, not 10001"):
        CommissionRule.percent(MID, 1, JAN, rate_bp=10_001)


def test_a_bool_is_not_an_amount() -> None:
    with pytest.raises(InvalidInput, match="must be an integer"):
        rate_fen(True, 100)


# --- refunds ------------------------------------------------------------------------------------


def test_a_full_refund_returns_all_of_the_commission() -> None:
    assert (
        returned_commission_fen(
            original_amount_fen=3_850, original_commission_fen=385, refund_fen=3_850
        )
        == 385
    )


def test_a_partial_refund_returns_its_proportion_half_up() -> None:
    # 385 x 1,925 / 3,850 = 192.5 -> 193
    assert (
        returned_commission_fen(
            original_amount_fen=3_850, original_commission_fen=385, refund_fen=1_925
        )
        == 193
    )


def test_the_refund_completing_the_original_returns_what_is_left() -> None:
    first = returned_commission_fen(
        original_amount_fen=3_850, original_commission_fen=385, refund_fen=1_925
    )
    second = returned_commission_fen(
        original_amount_fen=3_850,
        original_commission_fen=385,
        refund_fen=1_925,
        refunded_before_fen=1_925,
        returned_before_fen=first,
    )
    assert (first, second) == (193, 192)


def test_partial_refunds_never_return_more_than_is_left() -> None:
    # c = 1 on a = 3: each 1-fen refund alone would return (2 + 3) // 6 = 0; with c = 2 on a = 3
    # each returns (4 + 3) // 6 = 1, and the third returns what is left: 0.
    kwargs = {"original_amount_fen": 3, "original_commission_fen": 2}
    r1 = returned_commission_fen(**kwargs, refund_fen=1)
    r2 = returned_commission_fen(
        **kwargs, refund_fen=1, refunded_before_fen=1, returned_before_fen=r1
    )
    r3 = returned_commission_fen(
        **kwargs, refund_fen=1, refunded_before_fen=2, returned_before_fen=r1 + r2
    )
    assert (r1, r2, r3) == (1, 1, 0)


def test_refunds_beyond_the_original_are_refused() -> None:
    with pytest.raises(InvalidInput, match="refunded_before_fen"):
        returned_commission_fen(
            original_amount_fen=100,
            original_commission_fen=1,
            refund_fen=60,
            refunded_before_fen=50,
        )


# --- rule selection -----------------------------------------------------------------------------


def test_the_highest_version_in_force_on_the_date_applies() -> None:
    v1 = CommissionRule.percent(MID, 1, JAN, rate_bp=100)
    v2 = CommissionRule.percent(
        MID, 2, date(2026, 3, 1), rate_bp=200, effective_to=date(2026, 4, 1)
    )
    rules = [v2, v1]
    assert rule_in_force(rules, date(2026, 2, 28)) is v1
    assert rule_in_force(rules, date(2026, 3, 1)) is v2  # from is inclusive
    assert rule_in_force(rules, date(2026, 3, 31)) is v2
    assert rule_in_force(rules, date(2026, 4, 1)) is v1  # to is exclusive
    assert rule_in_force(rules, date(2025, 12, 31)) is None


def test_a_version_given_twice_is_refused() -> None:
    a = CommissionRule.percent(MID, 1, JAN, rate_bp=100)
    b = CommissionRule.zero(MID, 1, date(2026, 2, 1))
    with pytest.raises(InvalidInput, match="version 1 twice"):
        rule_in_force([a, b], JAN)


def test_rules_of_two_merchants_are_refused() -> None:
    a = CommissionRule.percent(MID, 1, JAN, rate_bp=100)
    b = CommissionRule.zero("898310048990002", 2, JAN)
    with pytest.raises(InvalidInput, match="several merchants"):
        rule_in_force([a, b], JAN)


def test_an_empty_period_is_refused() -> None:
    with pytest.raises(InvalidInput, match="effective_to: must be after effective_from"):
        CommissionRule.zero(MID, 1, JAN, effective_to=JAN)
