"""The settlement files of clearing.md §7, byte for byte: hand-written expected bytes for small
cases, sorting, the TOTAL line, quoting of odd characters, negative amounts, and the named
error for every kind of bad field."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from clearing.domain.errors import InvalidInput
from clearing.domain.files import (
    ExceptionFileRow,
    FileKind,
    MerchantSettlementRow,
    PartnerStatementRow,
    PartySettlementRow,
    exceptions_csv,
    file_name,
    merchant_settlement_csv,
    partner_statement_csv,
    party_settlement_csv,
)
from clearing.domain.reconciliation import ExceptionCode, ExceptionRow

DAY = date(2026, 3, 15)
M1 = "898310048990001"
M2 = "898310048990002"


def merchant(mid: str, **kw: int) -> MerchantSettlementRow:
    values = {
        "txn_count": 0,
        "gross_fen": 0,
        "commission_fen": 0,
        "refund_fen": 0,
        "load_fen": 0,
        "deposit_fen": 0,
    } | kw
    net = (
        values["gross_fen"]
        - values["refund_fen"]
        - values["commission_fen"]
        - values["load_fen"]
        - values["deposit_fen"]
    )
    return MerchantSettlementRow(mid, DAY, **values, net_fen=net)


def exc(
    code: str, terminal: str, batch: int | None, stan: int | None, **kw: object
) -> ExceptionFileRow:
    values: dict[str, object] = {
        "rrn": None,
        "asn": None,
        "amount_fen": None,
        "other_amount_fen": None,
        "effect": "reported",
        "reason": None,
    } | kw
    return ExceptionFileRow(code, terminal, batch, stan, **values)  # type: ignore[arg-type]


# --- file names ---------------------------------------------------------------------------


def test_file_names() -> None:
    assert file_name(FileKind.MERCHANT_SETTLEMENT, DAY) == "merchant_settlement_20260315.csv"
    assert file_name("party_settlement", DAY) == "party_settlement_20260315.csv"
    assert file_name("exceptions", date(2026, 1, 2)) == "exceptions_20260102.csv"
    assert file_name("partner_statement", date(2026, 2, 28)) == "partner_statement_202602.csv"


def test_file_name_refuses_unknown_kind_and_datetimes() -> None:
    with pytest.raises(InvalidInput, match=r"file_name\.kind"):
        file_name("ledger", DAY)
    with pytest.raises(InvalidInput, match="business_date_or_month"):
        file_name("exceptions", datetime(2026, 3, 15, 1, 2))


# --- merchant settlement ------------------------------------------------------------------


def test_merchant_settlement_bytes_sorted_with_total() -> None:
    rows = [
        merchant(M2, txn_count=2, gross_fen=5_000, commission_fen=50),
        # the worked values of clearing.md §2: 1000 bp on 3,850 -> 385; a deposit netted
        merchant(M1, txn_count=1, gross_fen=3_850, commission_fen=385, deposit_fen=100_000),
    ]
    assert merchant_settlement_csv(rows) == (
        b"merchant_id,business_date,txn_count,gross_fen,commission_fen,refund_fen,load_fen,"
        b"deposit_fen,net_fen\n"
        b"898310048990001,2026-03-15,1,3850,385,0,0,100000,-96535\n"
        b"898310048990002,2026-03-15,2,5000,50,0,0,0,4950\n"
        b"TOTAL,,3,8850,435,0,0,100000,-91585\n"
    )


def test_merchant_settlement_negative_commission_refunds_loads_and_returned_deposit() -> None:
    rows = [
        merchant(M1, refund_fen=1_250, commission_fen=-13, load_fen=10_000, deposit_fen=-100_000)
    ]
    assert merchant_settlement_csv(rows).splitlines()[1:] == [
        b"898310048990001,2026-03-15,0,0,-13,1250,10000,-100000,88763",
        b"TOTAL,,0,0,-13,1250,10000,-100000,88763",
    ]


def test_empty_files_have_header_and_total() -> None:
    assert merchant_settlement_csv([]).splitlines() == [
        b"merchant_id,business_date,txn_count,gross_fen,commission_fen,refund_fen,load_fen,"
        b"deposit_fen,net_fen",
        b"TOTAL,,0,0,0,0,0,0,0",
    ]
    assert exceptions_csv([]).splitlines()[-1] == b"TOTAL,,,,,,0,0,,"
    assert partner_statement_csv([]).splitlines()[-1] == b"TOTAL,,,0"
    assert party_settlement_csv([]).splitlines()[-1] == b"TOTAL,,,,0,0"


def test_files_end_in_lf_without_cr() -> None:
    data = merchant_settlement_csv([merchant(M1, txn_count=1, gross_fen=1)])
    assert data.endswith(b"\n")
    assert b"\r" not in data


def test_merchant_net_must_add_up() -> None:
    with pytest.raises(InvalidInput, match=r"merchant_settlement_row\.net_fen"):
        MerchantSettlementRow(M1, DAY, 1, 1_000, 10, 0, 0, 0, 991)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("merchant_id", ""),
        ("merchant_id", "8983100489900011"),  # 16 characters
        ("merchant_id", "TOTAL"),
        ("merchant_id", "bad\nid"),
        ("merchant_id", 898310048990001),
        ("txn_count", -1),
        ("txn_count", True),
        ("gross_fen", -1),
        ("refund_fen", -5),
        ("load_fen", 1.5),
        ("deposit_fen", 10**15),
    ],
)
def test_merchant_row_fields_are_checked(field: str, value: object) -> None:
    good = {
        "merchant_id": M1,
        "business_date": DAY,
        "txn_count": 0,
        "gross_fen": 0,
        "commission_fen": 0,
        "refund_fen": 0,
        "load_fen": 0,
        "deposit_fen": 0,
        "net_fen": 0,
    }
    with pytest.raises(InvalidInput) as info:
        MerchantSettlementRow(**(good | {field: value}))  # type: ignore[arg-type]
    assert info.value.field == field


def test_merchant_business_date_must_be_a_date() -> None:
    with pytest.raises(InvalidInput, match="business_date"):
        MerchantSettlementRow(M1, datetime(2026, 3, 15), 0, 0, 0, 0, 0, 0, 0)


def test_one_line_per_merchant_and_one_date_per_file() -> None:
    with pytest.raises(InvalidInput, match="appears twice"):
        merchant_settlement_csv([merchant(M1), merchant(M1, txn_count=1, gross_fen=5)])
    other_day = MerchantSettlementRow(M2, date(2026, 3, 16), 0, 0, 0, 0, 0, 0, 0)
    with pytest.raises(InvalidInput, match="one business date"):
        merchant_settlement_csv([merchant(M1), other_day])


def test_encoder_refuses_rows_of_another_kind() -> None:
    with pytest.raises(InvalidInput, match="rows"):
        merchant_settlement_csv([PartySettlementRow("network", "CUP", DAY, 1, 1, 1)])  # type: ignore[list-item]


# --- party settlement ---------------------------------------------------------------------


def test_party_settlement_role_order_then_id_and_total() -> None:
    # clearing.md §3: C = 385 -> 270 / 77 / 38
    rows = [
        PartySettlementRow("network", "CUPNET", DAY, 385, 38, 38),
        PartySettlementRow("acquirer", "ACQ1", DAY, 385, 77, 77),
        PartySettlementRow("issuer", "ISS2", DAY, 0, 0, 0),
        PartySettlementRow("issuer", "ISS1", DAY, 385, 270, 3_580),
    ]
    assert party_settlement_csv(rows) == (
        b"party_role,party_id,business_date,commission_base_fen,share_fen,payable_fen\n"
        b"issuer,ISS1,2026-03-15,385,270,3580\n"
        b"issuer,ISS2,2026-03-15,0,0,0\n"
        b"acquirer,ACQ1,2026-03-15,385,77,77\n"
        b"network,CUPNET,2026-03-15,385,38,38\n"
        b"TOTAL,,,,385,3695\n"
    )


def test_party_negative_split() -> None:
    rows = [PartySettlementRow("issuer", "ISS1", DAY, -13, -9, -1_241)]
    assert party_settlement_csv(rows).splitlines()[1] == b"issuer,ISS1,2026-03-15,-13,-9,-1241"


def test_party_fields_are_checked() -> None:
    with pytest.raises(InvalidInput, match="party_role"):
        PartySettlementRow("partner", "P1", DAY, 0, 0, 0)
    with pytest.raises(InvalidInput, match="payable_fen"):
        PartySettlementRow("acquirer", "ACQ1", DAY, 385, 77, 78)
    with pytest.raises(InvalidInput, match="party_id"):
        PartySettlementRow("issuer", "", DAY, 0, 0, 0)
    with pytest.raises(InvalidInput, match="appears twice"):
        party_settlement_csv(
            [
                PartySettlementRow("issuer", "ISS1", DAY, 0, 0, 0),
                PartySettlementRow("issuer", "ISS1", DAY, 1, 1, 1),
            ]
        )


# --- partner statement --------------------------------------------------------------------


def test_partner_statement_sorted_by_partner_kind_reference() -> None:
    rows = [
        PartnerStatementRow("P2", "SHARE", "2026-03-02", -3),
        PartnerStatementRow("P1", "SHARE", "2026-03-02", 40),
        PartnerStatementRow("P1", "MAINTENANCE", "T0000002", 5_500),
        PartnerStatementRow("P1", "SHARE", "2026-03-01", 25),
        PartnerStatementRow("P1", "EXPANSION", M1, 20_000),
    ]
    assert partner_statement_csv(rows) == (
        b"partner_id,kind,reference,amount_fen\n"
        b"P1,EXPANSION,898310048990001,20000\n"
        b"P1,MAINTENANCE,T0000002,5500\n"
        b"P1,SHARE,2026-03-01,25\n"
        b"P1,SHARE,2026-03-02,40\n"
        b"P2,SHARE,2026-03-02,-3\n"
        b"TOTAL,,,25562\n"
    )


@pytest.mark.parametrize(
    ("kind", "reference", "amount_fen", "field"),
    [
        ("BONUS", "x", 1, "kind"),
        ("SHARE", "2026-3-1", 1, "reference"),
        ("SHARE", "20260301", 1, "reference"),
        ("EXPANSION", M1, 19_999, "amount_fen"),
        ("EXPANSION", M1, 200_001, "amount_fen"),
        ("MAINTENANCE", "T0000001", -5_500, "amount_fen"),
        ("MAINTENANCE", "T00000011", 5_500, "reference"),
    ],
)
def test_partner_fields_are_checked(kind: str, reference: str, amount_fen: int, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        PartnerStatementRow("P1", kind, reference, amount_fen)
    assert info.value.field == field


# --- exceptions ---------------------------------------------------------------------------


def test_exceptions_sorted_by_code_terminal_batch_stan_with_batch_row_first() -> None:
    rows = [
        exc("TERMINAL_TOTAL_MISMATCH", "T0000001", 3, None, amount_fen=500, other_amount_fen=400,
            reason="purchase: difference 100 fen"),
        exc("NO_COMPLETION", "T0000002", 1, 7, rrn="000000000012", asn="8888000000000002",
            amount_fen=1_250, effect="held+carried"),
        exc("NO_COMPLETION", "T0000001", 1, 9, rrn="000000000011", asn="8888000000000001",
            amount_fen=100, effect="held+carried"),
        exc("AMOUNT_MISMATCH", "T0000001", 1, 10, rrn="000000000010", asn="8888000000000001",
            amount_fen=3_850, other_amount_fen=3_800, effect="held",
            reason="authorised 3850, completed 3800"),
    ]  # fmt: skip
    assert exceptions_csv(rows) == (
        b"code,terminal_id,batch,stan,rrn,asn,amount_fen,other_amount_fen,effect,reason\n"
        b"AMOUNT_MISMATCH,T0000001,1,10,000000000010,8888000000000001,3850,3800,held,"
        b'"authorised 3850, completed 3800"\n'
        b"NO_COMPLETION,T0000001,1,9,000000000011,8888000000000001,100,,held+carried,\n"
        b"NO_COMPLETION,T0000002,1,7,000000000012,8888000000000002,1250,,held+carried,\n"
        b"TERMINAL_TOTAL_MISMATCH,T0000001,3,,,,500,400,reported,purchase: difference 100 fen\n"
        b"TOTAL,,,,,,5700,4200,,\n"
    )


def test_exceptions_same_key_rows_have_a_fixed_order() -> None:
    a = exc("DUPLICATE", "T0000001", 1, 5, rrn="000000000002", amount_fen=10, effect="rejected")
    b = exc("DUPLICATE", "T0000001", 1, 5, rrn="000000000001", amount_fen=20, effect="rejected")
    assert exceptions_csv([a, b]) == exceptions_csv([b, a])
    assert exceptions_csv([a, b]).splitlines()[1].split(b",")[4] == b"000000000001"


def test_exception_from_reconciliation_row() -> None:
    row = ExceptionRow(
        ExceptionCode.TERMINAL_TOTAL_MISMATCH, "T0000001", 2, None, "", "", 7, 5, "diff 2"
    )
    line = ExceptionFileRow.from_exception_row(row)
    assert (line.rrn, line.asn, line.effect, line.batch) == (None, None, "reported", 2)
    assert exceptions_csv([line]).splitlines()[1] == (
        b"TERMINAL_TOTAL_MISMATCH,T0000001,2,,,,7,5,reported,diff 2"
    )


@pytest.mark.parametrize(
    ("code", "kw", "field"),
    [
        ("MATCHED", {}, "code"),
        ("NOPE", {}, "code"),
        ("HOST_ONLY", {"effect": "held"}, "effect"),
        ("HOST_ONLY", {"effect": "reported+settled"}, "effect"),  # not the fixed order
        ("HOST_ONLY", {"effect": ""}, "effect"),
        ("HOST_ONLY", {"amount_fen": -1}, "amount_fen"),
        ("HOST_ONLY", {"rrn": "0000000000123"}, "rrn"),
        ("HOST_ONLY", {"reason": "line\rbreak"}, "reason"),
    ],
)
def test_exception_fields_are_checked(code: str, kw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        exc(code, "T0000001", 1, 1, **({"effect": "settled+reported"} | kw))
    assert info.value.field == field


def test_exception_stan_and_batch_ranges() -> None:
    with pytest.raises(InvalidInput, match="stan"):
        exc("COUNTER_GAP", "T0000001", 1, 0)
    with pytest.raises(InvalidInput, match="batch"):
        exc("COUNTER_GAP", "T0000001", 1_000_000, 1)


# --- quoting ------------------------------------------------------------------------------


def test_odd_characters_are_quoted_and_utf8() -> None:
    row = exc(
        "TERMINAL_ONLY",
        'T,"1"',
        1,
        1,
        rrn="a,b",
        asn='"q"',
        amount_fen=1,
        reason="商户 'x', \"y\" ; <z> \\",
    )
    line = exceptions_csv([row]).splitlines()[1]
    assert line == (
        b'TERMINAL_ONLY,"T,""1""",1,1,"a,b","""q""",1,,reported,'
        + '"商户 \'x\', ""y"" ; <z> \\"'.encode()
    )


def test_leading_and_trailing_spaces_are_kept() -> None:
    rows = [PartnerStatementRow(" P1 ", "MAINTENANCE", "T1 ", 0)]
    assert partner_statement_csv(rows).splitlines()[1] == b" P1 ,MAINTENANCE,T1 ,0"
