"""Channel partners and POS deposits (clearing.md §4)."""

from __future__ import annotations

from datetime import date

import pytest

from clearing.domain.errors import InvalidInput
from clearing.domain.partners import (
    MAINTENANCE_FEE_FEN,
    POS_DEPOSIT_FEN,
    FeeKind,
    Merchant,
    MerchantPayout,
    PartnerContract,
    PartnerFee,
    PartnerRole,
    Terminal,
    contract_in_force,
    deposit_movements_fen,
    deposits_held_fen,
    expansion_eligible_on,
    expansion_fees_due,
    maintenance_fees_due,
    merchant_payout,
    month_end,
    partner_share_fen,
    partner_shares,
)

M1, M2, M3 = "898310048990001", "898310048990002", "898310048990003"
JAN = date(2026, 1, 1)


def signing(
    partner: str,
    merchant: str,
    share_bp: int = 5000,
    fee: int | None = 50_000,
    *,
    effective_from: date = JAN,
    effective_to: date | None = None,
    retention_days: int = 90,
) -> PartnerContract:
    return PartnerContract(
        partner,
        PartnerRole.SIGNING,
        merchant,
        effective_from,
        effective_to,
        share_bp=share_bp,
        expansion_fee_fen=fee,
        retention_days=retention_days,
    )


def maintaining(partner: str, terminal: str, start: date = JAN) -> PartnerContract:
    return PartnerContract(partner, PartnerRole.MAINTAINING, terminal, start)


# --- commission share ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commission_fen", "share_bp", "expected_fen"),
    [
        (385, 5000, 39),  # 20% x 50% x 385 = 38.5 -> 39
        (1_298, 10_000, 260),  # 259.6 -> 260
        (100, 2500, 5),  # exactly 5
        (1, 10_000, 0),  # 0.2 -> 0
        (0, 5000, 0),
    ],
)
def test_share_formula(commission_fen: int, share_bp: int, expected_fen: int) -> None:
    assert partner_share_fen(commission_fen, share_bp) == expected_fen
    assert (2 * commission_fen * share_bp + 50_000) // 100_000 == expected_fen
    assert partner_share_fen(-commission_fen, share_bp) == -expected_fen


def test_shares_are_rounded_once_per_partner_and_date() -> None:
    day = date(2026, 3, 2)
    contracts = [signing("P1", M1), signing("P1", M2), signing("P2", M3, share_bp=10_000)]
    # P1: 0.5 x 20% x (25 + 25) = 5 exactly; per merchant it would be 2.5 -> 3 twice = 6.
    lines = partner_shares(day, {M1: 25, M2: 25, M3: 13, "898310048990009": 1_000}, contracts)
    assert lines == [
        PartnerFee("P1", FeeKind.SHARE, "2026-03-02", 5),
        PartnerFee("P2", FeeKind.SHARE, "2026-03-02", 3),  # 2.6 -> 3
    ]


def test_share_follows_the_contract_in_force_on_the_date() -> None:
    old = signing("P1", M1, effective_to=date(2026, 3, 1))
    new = signing("P2", M1, effective_from=date(2026, 3, 1))
    assert partner_shares(date(2026, 2, 28), {M1: 100}, [old, new])[0].partner_id == "P1"
    assert partner_shares(date(2026, 3, 1), {M1: 100}, [old, new])[0].partner_id == "P2"


def test_two_contracts_in_force_at_once_are_refused() -> None:
    with pytest.raises(InvalidInput, match="two signing contracts"):
        contract_in_force(
            [signing("P1", M1), signing("P2", M1)], PartnerRole.SIGNING, M1, date(2026, 3, 1)
        )


def test_contract_limits() -> None:
    with pytest.raises(InvalidInput, match=r"expansion_fee_fen: must be 20000\.\.200000"):
        signing("P1", M1, fee=19_999)
    with pytest.raises(InvalidInput, match="no share or expansion fee"):
        PartnerContract("P1", PartnerRole.MAINTAINING, "10000001", JAN, share_bp=1)


# --- expansion fee ------------------------------------------------------------------------------


def test_eligibility_is_onboarding_plus_retention_days() -> None:
    assert expansion_eligible_on(date(2026, 1, 15), 90) == date(2026, 4, 15)


def test_expansion_fee_paid_in_the_month_it_becomes_eligible_and_never_twice() -> None:
    merchant = Merchant(M1, date(2026, 1, 15))
    contracts = [signing("P1", M1, fee=80_000)]
    assert expansion_fees_due(date(2026, 3, 31), [merchant], contracts, set()) == []
    due = expansion_fees_due(date(2026, 4, 30), [merchant], contracts, set())
    assert due == [PartnerFee("P1", FeeKind.EXPANSION, M1, 80_000)]
    assert expansion_fees_due(date(2026, 4, 30), [merchant], contracts, {M1}) == []
    assert expansion_fees_due(date(2026, 5, 31), [merchant], contracts, set()) == []


def test_no_expansion_fee_when_the_merchant_left_before_eligibility() -> None:
    contracts = [signing("P1", M1)]
    closed_on_the_day = Merchant(M1, date(2026, 1, 15), closed_on=date(2026, 4, 15))
    assert expansion_fees_due(date(2026, 4, 30), [closed_on_the_day], contracts, set()) == []
    closed_after = Merchant(M1, date(2026, 1, 15), closed_on=date(2026, 4, 16))
    assert len(expansion_fees_due(date(2026, 4, 30), [closed_after], contracts, set())) == 1


def test_custom_retention_and_no_fee_in_the_contract() -> None:
    merchant = Merchant(M1, date(2026, 1, 15))
    due = expansion_fees_due(
        date(2026, 2, 28), [merchant], [signing("P1", M1, retention_days=30)], set()
    )
    assert [f.amount_fen for f in due] == [50_000]
    assert (
        expansion_fees_due(date(2026, 4, 30), [merchant], [signing("P1", M1, fee=None)], set())
        == []
    )


def test_month_end_runs_need_the_last_day_of_a_month() -> None:
    with pytest.raises(InvalidInput, match="last day of a month"):
        expansion_fees_due(date(2026, 4, 29), [], [], set())
    with pytest.raises(InvalidInput, match="last day of a month"):
        maintenance_fees_due(date(2026, 2, 27), [], [])
    assert month_end(date(2028, 2, 3)) == date(2028, 2, 29)


# --- maintenance fee ----------------------------------------------------------------------------


def test_maintenance_fee_per_terminal_active_on_the_last_day() -> None:
    terminals = [
        Terminal("10000001", M1, date(2026, 3, 31)),  # deployed on the last day: a full fee
        Terminal("10000002", M1, JAN, returned_on=date(2026, 3, 31)),  # returned that day: none
        Terminal("10000003", M2, JAN, returned_on=date(2026, 4, 1)),  # returned next day: fee
        Terminal("10000004", M2, JAN),  # no maintaining partner: no fee
    ]
    contracts = [maintaining("P9", t.terminal_id) for t in terminals[:3]]
    assert maintenance_fees_due(date(2026, 3, 31), terminals, contracts) == [
        PartnerFee("P9", FeeKind.MAINTENANCE, "10000001", MAINTENANCE_FEE_FEN),
        PartnerFee("P9", FeeKind.MAINTENANCE, "10000003", 5_500),
    ]


# --- POS deposit --------------------------------------------------------------------------------


def test_deposit_owed_on_deployment_and_netted_back_on_return() -> None:
    t1 = Terminal("10000001", M1, date(2026, 3, 2), returned_on=date(2026, 6, 1))
    t2 = Terminal("10000002", M1, date(2026, 3, 2))
    t3 = Terminal("10000003", M2, date(2026, 3, 2), returned_on=date(2026, 3, 2))
    assert deposit_movements_fen(date(2026, 3, 2), [t1, t2, t3]) == {M1: 200_000}
    assert deposit_movements_fen(date(2026, 6, 1), [t1, t2, t3]) == {M1: -POS_DEPOSIT_FEN}
    assert deposits_held_fen(date(2026, 3, 2), [t1, t2, t3], M1) == 200_000
    assert deposits_held_fen(date(2026, 6, 1), [t1, t2, t3], M1) == 100_000
    assert deposits_held_fen(date(2026, 3, 2), [t1, t2, t3], M2) == 0


def test_a_deposit_larger_than_the_day_is_carried_as_a_receivable() -> None:
    # Day 1: 30,000 net of commission, 100,000 deposit -> owes 70,000.
    day1 = merchant_payout(30_000 - POS_DEPOSIT_FEN)
    assert day1 == MerchantPayout(0, 70_000)
    # Day 2: 90,000 -> 20,000 paid, nothing owed.
    assert merchant_payout(90_000, day1.receivable_fen) == MerchantPayout(20_000, 0)
    # Returned while still owed: the netted-back deposit clears the receivable first.
    assert merchant_payout(0 + POS_DEPOSIT_FEN, 70_000) == MerchantPayout(30_000, 0)
