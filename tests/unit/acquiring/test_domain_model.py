"""The host's records check their own fields and keep keys out of their reprs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from acquiring.domain.errors import InvalidRecord
from acquiring.domain.model import (
    Authorisation,
    BatchTotals,
    CardAccount,
    ChannelPartner,
    Completion,
    ExchangeKey,
    ExchangeRecord,
    Merchant,
    PartnerContract,
    TacVerdict,
    Terminal,
    TerminalKeys,
    TerminalSettlement,
    TxnKey,
    TxnKind,
)
from paycore.iso8583.fields import ResponseCode

MID = "898310048990001"
TID = "T0000001"
ASN = "1000000000000001"
NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
KEY = TxnKey(TID, 1, 1)


def auth(**changes: object) -> Authorisation:
    base = Authorisation(
        kind=TxnKind.PURCHASE,
        key=KEY,
        merchant_id=MID,
        asn=ASN,
        amount_fen=1_000,
        rrn="000000000001",
        response_code=ResponseCode.APPROVED,
        business_date=date(2026, 3, 1),
        received_at=NOW,
        card_counter=0,
        key_version=1,
        psam_terminal_id=bytes(6),
        balance_before_fen=5_000,
        auth_code="123456",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("mid", ["89831004899000", "8983100489900011", "89831004899000-", ""])
def test_merchant_id_is_15_letters_or_digits(mid: str) -> None:
    with pytest.raises(InvalidRecord, match=r"merchant\.merchant_id: must be 15"):
        Merchant(mid, "Shop", "5411", "ACQ1", date(2026, 1, 1))


def test_merchant_fields() -> None:
    with pytest.raises(InvalidRecord, match="mcc"):
        Merchant(MID, "Shop", "541", "ACQ1", date(2026, 1, 1))
    with pytest.raises(InvalidRecord, match="name"):
        Merchant(MID, " Shop", "5411", "ACQ1", date(2026, 1, 1))
    with pytest.raises(InvalidRecord, match="daily_limit_fen"):
        Merchant(MID, "Shop", "5411", "ACQ1", date(2026, 1, 1), daily_limit_fen=0)


def test_terminal_fields() -> None:
    with pytest.raises(InvalidRecord, match="terminal_id"):
        Terminal("T000001", MID, date(2026, 1, 1))
    with pytest.raises(InvalidRecord, match="batch_no"):
        Terminal(TID, MID, date(2026, 1, 1), batch_no=0)
    with pytest.raises(InvalidRecord, match="batch_no"):
        Terminal(TID, MID, date(2026, 1, 1), batch_no=1_000_000)


def test_card_asn_is_16_digits() -> None:
    with pytest.raises(InvalidRecord, match="asn"):
        CardAccount("100000000000000A", "ISS1")


def test_keys_are_not_in_reprs() -> None:
    tmk, mak = bytes(range(16)), bytes(range(16, 32))
    keys = TerminalKeys(TID, tmk, mak)
    shown = repr(keys)
    assert tmk.hex() not in shown.lower() and "tmk" not in shown and "mak" not in shown
    record = ExchangeRecord(ExchangeKey(TID, 1, 1, "0200"), bytes(32), b"\x01\x02", NOW)
    assert "response" not in repr(record)


def test_terminal_keys_are_16_bytes() -> None:
    with pytest.raises(InvalidRecord, match="tmk: must be 16 bytes"):
        TerminalKeys(TID, bytes(8))
    with pytest.raises(InvalidRecord, match="mak: must be 16 bytes"):
        TerminalKeys(TID, bytes(16), bytes(15))


def test_approved_authorisation_needs_an_auth_code_and_an_amount_in_range() -> None:
    with pytest.raises(InvalidRecord, match="auth_code"):
        auth(auth_code=None)
    with pytest.raises(InvalidRecord, match="amount_fen"):
        auth(amount_fen=50_000)
    assert auth(kind=TxnKind.LOAD, amount_fen=100_000).approved


def test_declined_authorisation_keeps_any_amount_and_no_auth_code() -> None:
    declined = auth(response_code=ResponseCode.INVALID_AMOUNT, auth_code=None, amount_fen=50_000)
    assert not declined.approved
    with pytest.raises(InvalidRecord, match="auth_code"):
        auth(response_code=ResponseCode.INVALID_CARD)


def test_only_refunds_name_an_original() -> None:
    with pytest.raises(InvalidRecord, match="original_rrn"):
        auth(original_rrn="000000000009")
    with pytest.raises(InvalidRecord, match="original_rrn"):
        auth(kind=TxnKind.REFUND)
    assert auth(kind=TxnKind.REFUND, original_rrn="000000000009").original_rrn


def test_instants_are_aware_and_terminal_times_naive() -> None:
    with pytest.raises(InvalidRecord, match="received_at"):
        auth(received_at=datetime(2026, 3, 1, 2, 0))
    with pytest.raises(InvalidRecord, match="terminal_datetime"):
        Completion(KEY, 1, bytes(4), TacVerdict.OK, 0, 1, NOW, date(2026, 3, 1), NOW)


def test_settlement_verdicts_per_half() -> None:
    host = BatchTotals(3_000, 2, 500, 1, 10_000, 1)
    same = TerminalSettlement.of(TID, 1, host, host, date(2026, 3, 1), NOW)
    assert same.balanced
    loads_differ = dataclasses.replace(host, load_count=2)
    split = TerminalSettlement.of(TID, 1, loads_differ, host, date(2026, 3, 1), NOW)
    assert split.first_half_balanced and not split.second_half_balanced and not split.balanced
    with pytest.raises(InvalidRecord, match="second_half_balanced"):
        TerminalSettlement(TID, 1, loads_differ, host, True, True, date(2026, 3, 1), NOW)


def test_batch_totals_counts_are_n3() -> None:
    with pytest.raises(InvalidRecord, match="purchase_count"):
        BatchTotals(purchase_count=1_000)


def test_contract_terms_fit_the_kind() -> None:
    signing = PartnerContract.signing(
        "P1", date(2026, 1, 1), share_bp=3000, expansion_fee_fen=50_000
    )
    assert signing.retention_days == 90
    assert PartnerContract.maintenance("P1", date(2026, 1, 1)).monthly_fee_fen == 5_500
    with pytest.raises(InvalidRecord, match="expansion_fee_fen"):
        PartnerContract.signing("P1", date(2026, 1, 1), share_bp=3000, expansion_fee_fen=19_999)
    with pytest.raises(InvalidRecord, match="share_bp"):
        dataclasses.replace(PartnerContract.maintenance("P1", date(2026, 1, 1)), share_bp=1)
    with pytest.raises(InvalidRecord, match="partner_id"):
        ChannelPartner("bad id", "Partner")


def test_exchange_key_and_digest() -> None:
    with pytest.raises(InvalidRecord, match="mti"):
        ExchangeKey(TID, 1, 1, "200")
    record = ExchangeRecord(ExchangeKey(TID, 1, 1, "0200"), bytes(32), b"\x01", NOW)
    assert record.same_request(bytes(32)) and not record.same_request(b"\x01" * 32)
    with pytest.raises(InvalidRecord, match="response"):
        ExchangeRecord(ExchangeKey(TID, 1, 1, "0200"), bytes(32), bytes(2_049), NOW)
