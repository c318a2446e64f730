"""Whole messages: a full 0200 purchase, the §5 request table, the typed accessors."""

from __future__ import annotations

import pytest

from paycore.errors import DecodeError
from paycore.iso8583.fields import (
    CURRENCY_CNY,
    ENTRY_MODE_CHIP_NO_PIN,
    SERVICE_CONDITION_EPURSE,
    EpurseData,
    EpurseSet,
    Field60,
    Field61,
    NetworkCode,
    ProcessingCode,
    ReversalReason,
    TypeCode,
    decode_epurse_data,
    encode_epurse_data,
    encode_field60,
    encode_field61,
)
from paycore.iso8583.frame import Header, Tpdu, decode_frame, encode_frame
from paycore.iso8583.mac import encode_signed_message, verify_message_mac
from paycore.iso8583.message import (
    ECHO_FIELDS,
    REQUESTS,
    FieldValue,
    Message,
    MissingFieldError,
    RequestKind,
    UnknownRequestError,
    classify_request,
    decode_message,
    echoes,
    encode_message,
)

MAK = bytes.fromhex("55036372B17543ECB173730768B8D6C4")
EPURSE = EpurseData(
    asn=bytes.fromhex("8888880000000012"),
    balance_before_fen=10_000,
    card_counter=7,
    key_version=1,
    alg_id=0,
    transaction_type=0x06,
    psam_terminal_id=bytes.fromhex("112233445566"),
)
PURCHASE_FIELDS: dict[int, FieldValue] = {
    2: "8888880000000012",
    3: ProcessingCode.PURCHASE,
    4: "000000000150",
    11: "000123",
    22: ENTRY_MODE_CHIP_NO_PIN,
    25: SERVICE_CONDITION_EPURSE,
    41: "POS00001",
    42: "898310048160001",
    49: CURRENCY_CNY,
    58: encode_epurse_data(EPURSE),
    60: encode_field60(Field60(TypeCode.PURCHASE, 1, NetworkCode.FINANCIAL)),
}

PURCHASE_HEX = (
    "0200"
    "7020048000C08051"  # bitmap: 2 3 4 11 22 25 41 42 49 58 60 64
    "16"
    "8888880000000012"  # 2: LLVAR, 16 digits
    "000000"  # 3
    "000000000150"  # 4
    "000123"  # 11
    "9620"  # 22: left-aligned
    "91"  # 25
    "504F533030303031"  # 41
    "383938333130303438313630303031"  # 42
    "313536"  # 49
    "0044"  # 58: LLLVAR, 44 bytes
    "DF01088888880000000012"
    "DF020400002710"
    "DF03020007"
    "DF040101"
    "DF050100"
    "DF060106"
    "DF0706112233445566"
    "0012"
    "220000010006"  # 60: LLLVAR, 12 digits
)


def test_full_0200_purchase_request_round_trip() -> None:
    raw = encode_signed_message(MAK, "0200", PURCHASE_FIELDS)
    assert raw[:-8].hex().upper() == PURCHASE_HEX
    assert verify_message_mac(MAK, raw)
    message = decode_message(raw)
    assert message.mti == "0200"
    assert {n: v for n, v in message.fields.items() if n != 64} == PURCHASE_FIELDS
    shape = classify_request(message.mti, message.fields)
    assert shape.kind is RequestKind.PURCHASE
    assert shape.has_mac
    assert decode_epurse_data(message.binary(58), shape.epurse) == EPURSE
    assert message.encode() == raw
    # and through a frame
    framed = encode_frame(Tpdu(0x0001, 0x0002), Header(), raw)
    assert decode_message(decode_frame(framed).message) == message


def test_message_unpacks_as_mti_and_fields() -> None:
    mti, fields = decode_message(encode_message("0800", {11: "000001"}))
    assert mti == "0800"
    assert fields == {11: "000001"}
    with pytest.raises(TypeError):
        fields[12] = "x"  # type: ignore[index]


def test_typed_accessors() -> None:
    message = decode_message(encode_message("0810", {39: "00", 62: bytes(60)}))
    assert message.text(39) == "00"
    assert message.binary(62) == bytes(60)
    assert message.has(39) and not message.has(12)
    with pytest.raises(MissingFieldError) as excinfo:
        message.text(12)
    assert str(excinfo.value) == "ISO 8583 field 12: missing, this 0810 needs it (at byte 3)"
    assert excinfo.value.field == 12
    with pytest.raises(TypeError, match="binary"):
        message.text(62)
    with pytest.raises(TypeError, match="text"):
        message.binary(39)


def test_repr_masks_the_card_number() -> None:
    text = repr(Message("0200", {2: "8888880000000012", 11: "000001"}))
    assert "8888880000000012" not in text
    assert "888888******0012" in text
    assert "'*****'" in repr(Message("0200", {2: "12345"}))


# --- the request table of §5 ------------------------------------------------------------------


def f60(type_code: str, network: str, capability: str | None = "6") -> str:
    return encode_field60(Field60(type_code, 1, network, capability))


COMMON: dict[int, FieldValue] = {11: "000001", 41: "POS00001", 42: "898310048160001"}
REFUND_FIELDS = PURCHASE_FIELDS | {
    3: ProcessingCode.REFUND,
    37: "000000000001",
    60: f60(TypeCode.REFUND, NetworkCode.FINANCIAL),
    61: encode_field61(Field61(1, 122, "1231")),
    64: b"MACMACMA",
}
COMPLETION_FIELDS = {n: v for n, v in PURCHASE_FIELDS.items() if n != 22} | {
    37: "000000000001",
    64: b"MACMACMA",
}

CASES: list[tuple[str, dict[int, FieldValue], RequestKind]] = [
    ("0800", COMMON | {60: f60("00", "004", None), 63: "01 "}, RequestKind.SIGN_ON),
    ("0820", {n: COMMON[n] for n in (41, 42)} | {60: f60("00", "301")}, RequestKind.ECHO),
    ("0820", COMMON | {60: f60("00", "002")}, RequestKind.SIGN_OFF),
    ("0200", PURCHASE_FIELDS | {64: b"MACMACMA"}, RequestKind.PURCHASE),
    (
        "0200",
        PURCHASE_FIELDS | {3: "600000", 60: f60("45", "000"), 64: b"MACMACMA"},
        RequestKind.LOAD,
    ),
    ("0200", REFUND_FIELDS, RequestKind.REFUND),
    ("0220", COMPLETION_FIELDS, RequestKind.PURCHASE_COMPLETION),
    ("0220", COMPLETION_FIELDS | {3: "600000", 60: f60("45", "000")}, RequestKind.LOAD_COMPLETION),
    (
        "0220",
        COMPLETION_FIELDS | {3: "200000", 60: f60("25", "000")},
        RequestKind.REFUND_COMPLETION,
    ),
    (
        "0400",
        PURCHASE_FIELDS | {39: ReversalReason.NO_ANSWER, 64: b"MACMACMA"},
        RequestKind.PURCHASE_REVERSAL,
    ),
    ("0400", REFUND_FIELDS | {39: ReversalReason.MAC_ERROR}, RequestKind.REFUND_REVERSAL),
    (
        "0500",
        COMMON | {48: "0" * 62, 49: "156", 60: f60("00", "201"), 63: "01 "},
        RequestKind.SETTLEMENT,
    ),
    (
        "0320",
        {n: v for n, v in COMPLETION_FIELDS.items() if n != 64} | {60: f60("22", "201")},
        RequestKind.BATCH_UPLOAD,
    ),
    ("0320", COMMON | {48: "0001", 60: f60("00", "202")}, RequestKind.BATCH_UPLOAD_END),
]


@pytest.mark.parametrize(("mti", "fields", "kind"), CASES, ids=[c[2].value for c in CASES])
def test_classify_request(mti: str, fields: dict[int, FieldValue], kind: RequestKind) -> None:
    message = decode_message(encode_message(mti, fields))
    shape = classify_request(message.mti, message.fields)
    assert shape.kind is kind
    assert shape.required <= set(fields)


def test_every_kind_is_covered() -> None:
    assert {c[2] for c in CASES} | {RequestKind.LOAD_REVERSAL} == set(RequestKind)
    assert set(REQUESTS) == set(RequestKind)


def test_request_table_matches_section_5() -> None:
    purchase = REQUESTS[RequestKind.PURCHASE]
    assert purchase.required == {2, 3, 4, 11, 22, 25, 41, 42, 49, 58, 60, 64}
    assert purchase.response_fields == {2, 3, 4, 11, 25, 41, 42, 49, 60, 12, 13, 15, 37, 38, 39, 64}
    assert REQUESTS[RequestKind.REFUND].required == purchase.required | {37, 61}
    assert REQUESTS[RequestKind.LOAD].response_epurse is EpurseSet.LOAD_RESPONSE
    assert 58 in REQUESTS[RequestKind.LOAD].response_fields
    assert REQUESTS[RequestKind.PURCHASE_REVERSAL].required == purchase.required | {39}
    assert REQUESTS[RequestKind.BATCH_UPLOAD].epurse is EpurseSet.COMPLETION
    assert not REQUESTS[RequestKind.BATCH_UPLOAD].has_mac
    assert REQUESTS[RequestKind.SIGN_ON].response_fields == {11, 12, 13, 37, 39, 41, 42, 60, 62}
    assert {2, 3, 4, 11, 25, 41, 42, 49, 60} == ECHO_FIELDS


@pytest.mark.parametrize(
    ("mti", "fields", "error", "message"),
    [
        (
            "0200",
            {n: v for n, v in PURCHASE_FIELDS.items() if n != 3},
            MissingFieldError,
            "ISO 8583 field 3: missing, a 0200 needs it (at byte 2)",
        ),
        (
            "0200",
            {n: v for n, v in PURCHASE_FIELDS.items() if n not in (4, 22)},
            MissingFieldError,
            "ISO 8583 field 4: missing, a purchase 0200 needs it (at byte 2)",
        ),
        (
            "0200",
            PURCHASE_FIELDS,
            MissingFieldError,
            "ISO 8583 field 64: missing, a purchase 0200 needs it (at byte 9)",
        ),
        (
            "0800",
            COMMON,
            MissingFieldError,
            "ISO 8583 field 60: missing, a 0800 needs it (at byte 9)",
        ),
        (
            "0100",
            COMMON,
            UnknownRequestError,
            "ISO 8583 MTI: 0100 is not a request of this profile (at byte 0)",
        ),
        (
            "0210",
            COMMON,
            UnknownRequestError,
            "ISO 8583 MTI: 0210 is not a request of this profile (at byte 0)",
        ),
        (
            "0200",
            PURCHASE_FIELDS | {3: "310000"},
            UnknownRequestError,
            "ISO 8583 field 3: processing code 310000 is not one of 0200 (at byte 0)",
        ),
        (
            "0820",
            COMMON | {60: f60("00", "999")},
            UnknownRequestError,
            "ISO 8583 field 60: 60.3 999 is not one of 0820 (at byte 4)",
        ),
        (
            "0200",
            PURCHASE_FIELDS | {60: f60("45", "000"), 64: b"MACMACMA"},
            UnknownRequestError,
            "ISO 8583 field 60: 60.1 45 is not 22 (purchase) (at byte 0)",
        ),
        (
            "0200",
            PURCHASE_FIELDS | {25: "00", 64: b"MACMACMA"},
            UnknownRequestError,
            "ISO 8583 field 25: service condition '00' is not 91 (at byte 0)",
        ),
        (
            "0800",
            COMMON | {60: "0000"},
            DecodeError,
            "ISO 8583 field 60: needs at least 11 digits, got 4 (at byte 0)",
        ),
    ],
)
def test_classify_request_errors(
    mti: str, fields: dict[int, FieldValue], error: type[DecodeError], message: str
) -> None:
    with pytest.raises(error) as excinfo:
        classify_request(mti, fields)
    assert isinstance(excinfo.value, DecodeError)  # the host answers 30 to all of them
    assert str(excinfo.value) == message


def test_echoes() -> None:
    request = PURCHASE_FIELDS | {64: b"MACMACMA"}
    assert echoes(request) == {n: request[n] for n in (2, 3, 4, 11, 25, 41, 42, 49, 60)}
    assert echoes({41: "POS00001", 63: "01 "}) == {41: "POS00001"}
