"""Every response code path of the 0200 authorisation rules (acquiring.domain.rules)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from acquiring.domain.model import (
    Authorisation,
    CardAccount,
    CardStatus,
    DayTotals,
    Merchant,
    MerchantStatus,
    Terminal,
    TerminalStatus,
    TxnKey,
    TxnKind,
)
from acquiring.domain.rules import AuthContext, AuthRequest, Decision, authorise
from paycore.iso8583.fields import ResponseCode

MID = "898310048990001"
TID = "T0000001"
ASN = "1000000000000001"
DAY = date(2026, 3, 1)

MERCHANT = Merchant(MID, "Noodle House", "5814", "ACQ1", date(2026, 1, 1))
TERMINAL = Terminal(TID, MID, date(2026, 1, 2), signed_on=True)
CARD = CardAccount(ASN, "ISS1", daily_amount_limit_fen=10_000, daily_count_limit=3)
ORIGINAL = Authorisation(
    kind=TxnKind.PURCHASE,
    key=TxnKey(TID, 1, 7),
    merchant_id=MID,
    asn=ASN,
    amount_fen=3_000,
    rrn="000000000042",
    response_code=ResponseCode.APPROVED,
    business_date=DAY,
    received_at=datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
    card_counter=5,
    key_version=1,
    psam_terminal_id=bytes(6),
    balance_before_fen=10_000,
    auth_code="A00001",
)


def purchase(amount_fen: int = 1_000, **changes: object) -> AuthRequest:
    request = AuthRequest(TxnKind.PURCHASE, TID, MID, ASN, amount_fen)
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


def refund(amount_fen: int = 1_000, original_rrn: str | None = ORIGINAL.rrn) -> AuthRequest:
    return AuthRequest(TxnKind.REFUND, TID, MID, ASN, amount_fen, original_rrn)


def ctx(**changes: object) -> AuthContext:
    base = AuthContext(TERMINAL, MERCHANT, CARD)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def refund_ctx(**changes: object) -> AuthContext:
    return ctx(**({"original": ORIGINAL} | changes))


def code(request: AuthRequest, context: AuthContext) -> ResponseCode:
    return authorise(request, context).response_code


def test_purchase_approved() -> None:
    decision = authorise(purchase(), ctx())
    assert decision == Decision(ResponseCode.APPROVED, "approved")
    assert decision.approved and not decision.sign_on_again


def test_unknown_terminal_is_97() -> None:
    assert code(purchase(), ctx(terminal=None)) == ResponseCode.TERMINAL_NOT_REGISTERED


@pytest.mark.parametrize("status", [TerminalStatus.SUSPENDED, TerminalStatus.RETURNED])
def test_inactive_terminal_is_58(status: TerminalStatus) -> None:
    terminal = dataclasses.replace(TERMINAL, status=status)
    assert code(purchase(), ctx(terminal=terminal)) == ResponseCode.NOT_PERMITTED_ON_TERMINAL


def test_terminal_not_signed_on_is_a0_with_sign_on_again() -> None:
    decision = authorise(purchase(), ctx(terminal=dataclasses.replace(TERMINAL, signed_on=False)))
    assert decision.response_code == ResponseCode.MAC_ERROR
    assert decision.sign_on_again


def test_mid_not_the_terminals_is_03() -> None:
    assert code(purchase(merchant_id="898310048990002"), ctx()) == ResponseCode.INVALID_MERCHANT


def test_unknown_merchant_is_03() -> None:
    assert code(purchase(), ctx(merchant=None)) == ResponseCode.INVALID_MERCHANT


@pytest.mark.parametrize("status", [MerchantStatus.SUSPENDED, MerchantStatus.CLOSED])
def test_inactive_merchant_is_03(status: MerchantStatus) -> None:
    merchant = dataclasses.replace(MERCHANT, status=status)
    assert code(purchase(), ctx(merchant=merchant)) == ResponseCode.INVALID_MERCHANT


@pytest.mark.parametrize(
    ("kind", "amount_fen", "expected"),
    [
        (TxnKind.PURCHASE, 0, ResponseCode.INVALID_AMOUNT),
        (TxnKind.PURCHASE, -1, ResponseCode.INVALID_AMOUNT),
        (TxnKind.PURCHASE, 1, ResponseCode.APPROVED),
        (TxnKind.PURCHASE, 49_999, ResponseCode.APPROVED),
        (TxnKind.PURCHASE, 50_000, ResponseCode.INVALID_AMOUNT),
        (TxnKind.LOAD, 0, ResponseCode.INVALID_AMOUNT),
        (TxnKind.LOAD, 1, ResponseCode.APPROVED),
        (TxnKind.LOAD, 100_000, ResponseCode.APPROVED),
        (TxnKind.LOAD, 100_001, ResponseCode.INVALID_AMOUNT),
    ],
)
def test_amount_bounds(kind: TxnKind, amount_fen: int, expected: ResponseCode) -> None:
    big_card = dataclasses.replace(CARD, daily_amount_limit_fen=1_000_000)
    assert code(purchase(amount_fen, kind=kind), ctx(card=big_card)) == expected


@pytest.mark.parametrize(("amount_fen", "expected"), [(0, "13"), (50_000, "13"), (3_000, "00")])
def test_refund_amount_bounds(amount_fen: int, expected: str) -> None:
    original = dataclasses.replace(ORIGINAL, amount_fen=49_999)
    assert code(refund(amount_fen), refund_ctx(original=original)) == expected


def test_unknown_card_is_14() -> None:
    assert code(purchase(), ctx(card=None)) == ResponseCode.INVALID_CARD


def test_card_record_of_another_asn_is_14() -> None:
    other = dataclasses.replace(CARD, asn="1000000000000002")
    assert code(purchase(), ctx(card=other)) == ResponseCode.INVALID_CARD


@pytest.mark.parametrize("kind", list(TxnKind))
def test_hot_card_is_62_for_every_kind(kind: TxnKind) -> None:
    hot = dataclasses.replace(CARD, status=CardStatus.HOT)
    request = refund() if kind is TxnKind.REFUND else purchase(kind=kind)
    assert code(request, refund_ctx(card=hot)) == ResponseCode.CARD_BLOCKED


def test_card_daily_amount_limit_is_61() -> None:
    at_limit = ctx(card_day=DayTotals(9_000, 1))
    assert code(purchase(1_000), at_limit) == ResponseCode.APPROVED
    assert code(purchase(1_001), at_limit) == ResponseCode.OVER_DAILY_AMOUNT_LIMIT


def test_card_daily_count_limit_is_65() -> None:
    assert code(purchase(), ctx(card_day=DayTotals(2_000, 2))) == ResponseCode.APPROVED
    assert (
        code(purchase(), ctx(card_day=DayTotals(2_000, 3))) == ResponseCode.OVER_DAILY_COUNT_LIMIT
    )


def test_merchant_daily_limit_is_61() -> None:
    limited = dataclasses.replace(MERCHANT, daily_limit_fen=100_000)
    assert code(purchase(1_000), ctx(merchant=limited, merchant_day_fen=99_000)) == "00"
    over = ctx(merchant=limited, merchant_day_fen=99_001)
    assert code(purchase(1_000), over) == ResponseCode.OVER_DAILY_AMOUNT_LIMIT


def test_merchant_without_limit_is_not_limited() -> None:
    assert code(purchase(1_000), ctx(merchant_day_fen=10**11)) == ResponseCode.APPROVED


def test_daily_limits_do_not_apply_to_loads() -> None:
    exhausted = ctx(card_day=DayTotals(10_000, 3), merchant_day_fen=10**9)
    assert code(purchase(1_000, kind=TxnKind.LOAD), exhausted) == ResponseCode.APPROVED


def test_refund_approved() -> None:
    assert code(refund(1_000), refund_ctx(refunded_before_fen=2_000)) == ResponseCode.APPROVED


def test_refund_without_original_rrn_is_30() -> None:
    assert code(refund(original_rrn=None), refund_ctx()) == ResponseCode.FORMAT_ERROR


def test_refund_original_not_found_is_25() -> None:
    assert code(refund(), ctx(original=None)) == ResponseCode.ORIGINAL_NOT_FOUND


def test_refund_original_of_another_rrn_is_25() -> None:
    assert (
        code(refund(original_rrn="000000000099"), refund_ctx()) == ResponseCode.ORIGINAL_NOT_FOUND
    )


def test_refund_of_a_declined_original_is_25() -> None:
    declined = dataclasses.replace(
        ORIGINAL, response_code=ResponseCode.OVER_DAILY_AMOUNT_LIMIT, auth_code=None
    )
    assert code(refund(), refund_ctx(original=declined)) == ResponseCode.ORIGINAL_NOT_FOUND


def test_refund_of_a_reversed_original_is_25() -> None:
    assert code(refund(), refund_ctx(original_reversed=True)) == ResponseCode.ORIGINAL_NOT_FOUND


def test_refund_of_a_load_is_12() -> None:
    load = dataclasses.replace(ORIGINAL, kind=TxnKind.LOAD, card_random=bytes(4))
    assert code(refund(), refund_ctx(original=load)) == ResponseCode.INVALID_TRANSACTION


def test_refund_to_another_card_is_12() -> None:
    other_card = dataclasses.replace(ORIGINAL, asn="1000000000000009")
    assert code(refund(), refund_ctx(original=other_card)) == ResponseCode.INVALID_TRANSACTION


def test_refund_at_another_merchant_is_12() -> None:
    elsewhere = dataclasses.replace(ORIGINAL, merchant_id="898310048990009")
    assert code(refund(), refund_ctx(original=elsewhere)) == ResponseCode.INVALID_TRANSACTION


def test_refunds_beyond_the_original_are_64() -> None:
    assert code(refund(1_000), refund_ctx(refunded_before_fen=2_000)) == ResponseCode.APPROVED
    assert code(refund(1_001), refund_ctx(refunded_before_fen=2_000)) == "64"
    assert code(refund(3_001), refund_ctx()) == ResponseCode.AMOUNT_DIFFERS_FROM_ORIGINAL


def test_refunds_are_not_held_to_purchase_limits() -> None:
    exhausted = refund_ctx(card_day=DayTotals(10_000, 3))
    assert code(refund(), exhausted) == ResponseCode.APPROVED


def test_check_order_first_failure_answers() -> None:
    """An unregistered terminal wins over a bad amount, a bad amount over an unknown card,
    an unknown card over the hot list, and the hot list over limits."""
    assert code(purchase(0), ctx(terminal=None, card=None)) == "97"
    assert code(purchase(0), ctx(card=None)) == "13"
    assert code(purchase(), ctx(card=None, card_day=DayTotals(10**6, 99))) == "14"
    hot = dataclasses.replace(CARD, status=CardStatus.HOT)
    assert code(purchase(), ctx(card=hot, card_day=DayTotals(10**6, 99))) == "62"
