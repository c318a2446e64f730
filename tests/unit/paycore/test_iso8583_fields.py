"""Fields 48, 58, 60, 61 and the code values of host_protocol.md §2, §4, §5."""

from __future__ import annotations

import dataclasses

import pytest

from paycore import tlv
from paycore.errors import DecodeError, EncodeError
from paycore.iso8583.fields import (
    EPURSE_MANDATORY,
    EPURSE_TAGS,
    EpurseData,
    EpurseSet,
    Field60,
    Field61,
    Mti,
    NetworkCode,
    ProcessingCode,
    ResponseCode,
    ReversalReason,
    SettlementResult,
    SettlementTotals,
    TypeCode,
    check_epurse_mandatory,
    decode_batch_count,
    decode_epurse_data,
    decode_field60,
    decode_field61,
    decode_settlement_totals,
    encode_batch_count,
    encode_epurse_data,
    encode_field60,
    encode_field61,
    encode_settlement_totals,
    response_mti,
)

FULL = EpurseData(
    asn=bytes.fromhex("0000000000000012"),
    balance_before_fen=10_000,
    card_counter=7,
    key_version=1,
    alg_id=0,
    transaction_type=0x06,
    psam_terminal_id=bytes.fromhex("112233445566"),
    terminal_serial=0x1234,
    date_time_bcd=bytes.fromhex("20240102030405"),
    tac=bytes.fromhex("A1A2A3A4"),
    mac1=bytes.fromhex("B1B2B3B4"),
    mac2=bytes.fromhex("C1C2C3C4"),
    card_random=bytes.fromhex("D1D2D3D4"),
)

PURCHASE = dataclasses.replace(
    FULL, terminal_serial=None, date_time_bcd=None, tac=None, mac1=None, mac2=None, card_random=None
)


# --- field 58 ---------------------------------------------------------------------------------


def test_field_58_bytes() -> None:
    raw = encode_epurse_data(EpurseData(asn=bytes(range(8)), balance_before_fen=0x0102))
    assert raw == bytes.fromhex("DF0108" + "0001020304050607" + "DF0204" + "00000102")


def test_field_58_round_trip_all_tags_in_order() -> None:
    raw = encode_epurse_data(FULL)
    assert [o.tag for o in tlv.decode(raw)] == list(range(0xDF01, 0xDF0E))
    assert decode_epurse_data(raw) == FULL
    assert encode_epurse_data(EpurseData()) == b""
    assert decode_epurse_data(b"") == EpurseData()


def test_field_58_tag_table() -> None:
    assert [(t.tag, t.length) for t in EPURSE_TAGS] == [
        (0xDF01, 8), (0xDF02, 4), (0xDF03, 2), (0xDF04, 1), (0xDF05, 1), (0xDF06, 1),
        (0xDF07, 6), (0xDF08, 4), (0xDF09, 7), (0xDF0A, 4), (0xDF0B, 4), (0xDF0C, 4),
        (0xDF0D, 4),
    ]  # fmt: skip


def test_field_58_unknown_tags_are_ignored() -> None:
    raw = (
        tlv.encode_one(0xDF20, b"\x01\x02")
        + encode_epurse_data(PURCHASE)
        + tlv.encode_one(0x9F02, b"")
    )
    assert decode_epurse_data(raw, EpurseSet.PURCHASE_REQUEST) == PURCHASE


def test_field_58_long_length_form_is_accepted() -> None:
    raw = bytes.fromhex("DF018108" + "0000000000000012") + bytes.fromhex("DF0101AA")
    with pytest.raises(DecodeError) as excinfo:
        decode_epurse_data(raw)
    # the offset of the repeat accounts for the 2-byte length of the first object
    assert str(excinfo.value) == "ISO 8583 field 58: tag DF01 is repeated (at byte 12)"


@pytest.mark.parametrize(
    ("raw_hex", "message"),
    [
        ("DF0601AA" + "DF0601BB", "ISO 8583 field 58: tag DF06 is repeated (at byte 4)"),
        ("DF2001AA" + "DF2100" + "DF2001BB", "ISO 8583 field 58: tag DF20 is repeated (at byte 7)"),
        (
            "DF0207" + "00" * 7,
            "ISO 8583 field 58: tag DF02 (balance before) needs 4 bytes, got 7 (at byte 3)",
        ),
        (
            "DF0206" + "00" * 6 + "DF0100",
            "ISO 8583 field 58: tag DF02 (balance before) needs 4 bytes, got 6 (at byte 3)",
        ),
        ("DF0100", "ISO 8583 field 58: tag DF01 (ASN) needs 8 bytes, got 0 (at byte 3)"),
        ("DF0105AA", "ISO 8583 field 58: tag DF01 length 5 runs past the end (at byte 3)"),
        ("DF", "ISO 8583 field 58: tag runs past the end (at byte 1)"),
        ("00", "ISO 8583 field 58: 00 is not a tag (at byte 0)"),
    ],
)
def test_field_58_format_errors(raw_hex: str, message: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_epurse_data(bytes.fromhex(raw_hex))
    assert str(excinfo.value) == message


def test_field_58_mandatory_sets() -> None:
    assert EPURSE_MANDATORY[EpurseSet.PURCHASE_REQUEST] == tuple(range(0xDF01, 0xDF08))
    assert EPURSE_MANDATORY[EpurseSet.COMPLETION] == (
        0xDF01, 0xDF03, 0xDF06, 0xDF07, 0xDF08, 0xDF09, 0xDF0A,
    )  # fmt: skip
    assert EPURSE_MANDATORY[EpurseSet.LOAD_REQUEST] == (*range(0xDF01, 0xDF08), 0xDF0B, 0xDF0D)
    assert EPURSE_MANDATORY[EpurseSet.LOAD_RESPONSE] == (0xDF09, 0xDF0C)
    for required in EpurseSet:
        check_epurse_mandatory(FULL, required)


@pytest.mark.parametrize(
    ("data", "required", "message"),
    [
        (
            dataclasses.replace(PURCHASE, asn=None),
            EpurseSet.PURCHASE_REQUEST,
            "tag DF01 (ASN) is missing, mandatory in purchase 0200",
        ),
        (
            dataclasses.replace(PURCHASE, psam_terminal_id=None),
            EpurseSet.PURCHASE_REQUEST,
            "tag DF07 (PSAM terminal ID) is missing, mandatory in purchase 0200",
        ),
        (
            PURCHASE,
            EpurseSet.LOAD_REQUEST,
            "tag DF0B (load MAC1) is missing, mandatory in load/refund 0200",
        ),
        (
            dataclasses.replace(FULL, mac1=None, card_random=None, tac=None),
            EpurseSet.COMPLETION,
            "tag DF0A (TAC) is missing, mandatory in completion 0220",
        ),
        (
            EpurseData(date_time_bcd=bytes(7)),
            EpurseSet.LOAD_RESPONSE,
            "tag DF0C (load MAC2) is missing, mandatory in load/refund 0210",
        ),
    ],
)
def test_field_58_missing_mandatory_tag(
    data: EpurseData, required: EpurseSet, message: str
) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_epurse_data(encode_epurse_data(data), required)
    assert excinfo.value.what == "ISO 8583 field 58"
    assert excinfo.value.reason == message


def test_field_58_purchase_set_passes() -> None:
    assert decode_epurse_data(encode_epurse_data(PURCHASE), EpurseSet.PURCHASE_REQUEST) == PURCHASE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (EpurseData(asn=bytes(7)), "field 58 tag DF01 (ASN) needs 8 bytes, got 7"),
        (
            EpurseData(balance_before_fen=1 << 32),
            "field 58 tag DF02 (balance before): 4294967296 is not a 4-byte number",
        ),
        (
            EpurseData(card_counter=-1),
            "field 58 tag DF03 (card counter): -1 is not a 2-byte number",
        ),
    ],
)
def test_field_58_encode_errors(data: EpurseData, message: str) -> None:
    with pytest.raises(EncodeError) as excinfo:
        encode_epurse_data(data)
    assert str(excinfo.value) == message


def test_field_58_repr_hides_the_asn() -> None:
    assert "asn" not in repr(FULL)


# --- field 48 ---------------------------------------------------------------------------------

TOTALS = SettlementTotals(
    purchase_amount_fen=123_456,
    purchase_count=12,
    refund_amount_fen=500,
    refund_count=1,
    load_amount_fen=100_000,
    load_count=3,
)
TOTALS_TEXT = "00000012345601200000000050000100000001000000030000000000000000"


def test_field_48_settlement_totals() -> None:
    assert len(TOTALS_TEXT) == 62
    assert encode_settlement_totals(TOTALS) == TOTALS_TEXT
    assert decode_settlement_totals(TOTALS_TEXT) == TOTALS


def test_field_48_result_flags_of_the_0510() -> None:
    answer = dataclasses.replace(
        TOTALS, first_result=SettlementResult.BALANCED, second_result=SettlementResult.NOT_BALANCED
    )
    text = encode_settlement_totals(answer)
    assert text[30] == "1" and text[61] == "2"
    assert text[:30] == TOTALS_TEXT[:30] and text[31:61] == TOTALS_TEXT[31:61]
    decoded = decode_settlement_totals(text)
    assert decoded == answer
    assert not decoded.balanced
    assert dataclasses.replace(answer, second_result=SettlementResult.BALANCED).balanced


def test_field_48_limits() -> None:
    biggest = SettlementTotals(10**12 - 1, 999, 10**12 - 1, 999, 10**12 - 1, 999)
    assert decode_settlement_totals(encode_settlement_totals(biggest)) == biggest
    with pytest.raises(EncodeError, match=r"^purchase count 1000 does not fit in 3 digits$"):
        encode_settlement_totals(dataclasses.replace(TOTALS, purchase_count=1000))
    with pytest.raises(EncodeError, match=r"^load amount -1 does not fit in 12 digits$"):
        encode_settlement_totals(dataclasses.replace(TOTALS, load_amount_fen=-1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            TOTALS_TEXT[:-1],
            "ISO 8583 field 48: settlement totals need 62 digits, got 61 (at byte 0)",
        ),
        (
            TOTALS_TEXT[:30] + "3" + TOTALS_TEXT[31:],
            "ISO 8583 field 48: result digit 31 is '3', not 0, 1 or 2 (at byte 15)",
        ),
        (
            TOTALS_TEXT[:61] + "9",
            "ISO 8583 field 48: result digit 62 is '9', not 0, 1 or 2 (at byte 30)",
        ),
        (
            TOTALS_TEXT[:50] + "1" + TOTALS_TEXT[51:],
            "ISO 8583 field 48: reserved digit 51 is not 0 (at byte 25)",
        ),
        ("A" + TOTALS_TEXT[1:], "ISO 8583 field 48: 'A' is not a decimal digit (at byte 0)"),
    ],
)
def test_field_48_decode_errors(text: str, message: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_settlement_totals(text)
    assert str(excinfo.value) == message


def test_field_48_batch_upload_count() -> None:
    assert encode_batch_count(5) == "0005"
    assert decode_batch_count("0005") == 5
    assert decode_batch_count("9999") == 9999
    with pytest.raises(EncodeError, match=r"^batch-upload count 10000 does not fit in 4 digits$"):
        encode_batch_count(10_000)
    with pytest.raises(DecodeError, match=r"needs 4 digits, got 3"):
        decode_batch_count("005")


# --- fields 60 and 61 -------------------------------------------------------------------------


def test_field_60() -> None:
    purchase = Field60(TypeCode.PURCHASE, 1, NetworkCode.FINANCIAL)
    assert encode_field60(purchase) == "220000010006"
    assert decode_field60("220000010006") == purchase
    sign_on = Field60(TypeCode.NETWORK_MANAGEMENT, 42, NetworkCode.SIGN_ON, read_capability=None)
    assert encode_field60(sign_on) == "00000042004"
    assert decode_field60("00000042004") == sign_on
    longer = Field60("22", 1, "000", "6", reserved="00001")
    assert decode_field60(encode_field60(longer)) == longer


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Field60("2", 1, "000"), "field 60.1 type must be 2 digits, got '2'"),
        (Field60("22", 1_000_000, "000"), "60.2 batch 1000000 does not fit in 6 digits"),
        (Field60("22", 1, "0000"), "field 60.3 network code must be 3 digits, got '0000'"),
        (Field60("22", 1, "000", "66"), "field 60.4 must be 1 digit, got '66'"),
        (Field60("22", 1, "000", None, "1"), "field 60: digits after 60.4 need 60.4"),
        (Field60("22", 1, "000", "6", "123456"), "field 60 is 18 digits, over 17"),
    ],
)
def test_field_60_encode_errors(value: Field60, message: str) -> None:
    with pytest.raises(EncodeError) as excinfo:
        encode_field60(value)
    assert str(excinfo.value) == message


def test_field_60_decode_errors() -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_field60("2200000100")
    assert str(excinfo.value) == "ISO 8583 field 60: needs at least 11 digits, got 10 (at byte 0)"


def test_field_61() -> None:
    original = Field61(original_batch=1, original_trace=123, original_date_mmdd="1231")
    assert encode_field61(original) == "0000010001231231"
    assert decode_field61("0000010001231231") == original
    with pytest.raises(DecodeError, match=r"needs at least 16 digits, got 15"):
        decode_field61("000001000123123")
    with pytest.raises(
        EncodeError, match=r"^field 61 original date must be 4 digits MMDD, got '131'$"
    ):
        encode_field61(Field61(1, 1, "131"))


# --- code values ------------------------------------------------------------------------------


def test_response_codes_of_section_5() -> None:
    assert {c.value for c in ResponseCode} == {
        "00", "03", "05", "12", "13", "14", "25", "30", "51", "54", "58", "61", "62", "64",
        "65", "94", "96", "97", "A0",
    }  # fmt: skip
    assert ResponseCode.FORMAT_ERROR.value == "30"
    assert ResponseCode.MAC_ERROR.value == "A0"
    assert {r.value for r in ReversalReason} == {"98", "A0", "06"}


def test_message_type_and_processing_codes() -> None:
    assert ProcessingCode.PURCHASE.value == "000000"
    assert ProcessingCode.LOAD.value == "600000"
    assert ProcessingCode.REFUND.value == "200000"
    assert {t.value for t in TypeCode} == {"00", "22", "45", "25"}
    assert NetworkCode.SIGN_ON.value == "004" and NetworkCode.ECHO.value == "301"
    assert NetworkCode.SIGN_OFF.value == "002" and NetworkCode.SETTLEMENT.value == "201"
    assert NetworkCode.BATCH_UPLOAD.value == "201" and NetworkCode.BATCH_UPLOAD_END.value == "202"


@pytest.mark.parametrize(
    ("request_mti", "response"),
    [
        ("0800", "0810"),
        ("0820", "0830"),
        ("0200", "0210"),
        ("0220", "0230"),
        ("0320", "0330"),
        ("0400", "0410"),
        ("0500", "0510"),
    ],
)
def test_response_mti(request_mti: str, response: str) -> None:
    assert response_mti(request_mti) == response
    assert Mti(response)


def test_response_mti_of_a_response_is_an_error() -> None:
    with pytest.raises(EncodeError, match=r"^'0210' is not a request MTI$"):
        response_mti("0210")
