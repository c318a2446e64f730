"""The field formats of host_protocol.md §2, byte-exact, through encode_message/decode_message.

Each case is one field alone in a 0200: MTI 02 00, the bitmap with that field's bit, then the
field bytes (prefix + data)."""

from __future__ import annotations

import pytest

from paycore.errors import DecodeError, EncodeError
from paycore.iso8583.message import FieldValue, decode_message, encode_message
from paycore.iso8583.spec import FIELD_FORMATS, SPEC, FieldKind, Prefix


def bitmap_hex(*numbers: int) -> str:
    bits = 0
    for n in numbers:
        bits |= 1 << (64 - n)
    return f"{bits:016X}"


def one_field(number: int, field_hex: str) -> bytes:
    return bytes.fromhex("0200" + bitmap_hex(number) + field_hex)


@pytest.mark.parametrize(
    ("number", "value", "field_hex"),
    [
        # n, LLVAR (1-byte BCD prefix counting digits), left-aligned
        (2, "8888880000000012", "16" + "8888880000000012"),
        (2, "123", "03" + "1230"),  # odd: trailing 0 nibble
        (2, "1234567890123456789", "19" + "12345678901234567890"),
        (2, "", "00"),
        # n fixed, right-aligned: the caller gives every digit
        (3, "600000", "600000"),
        (4, "000000000100", "000000000100"),
        (11, "000001", "000001"),
        (12, "235959", "235959"),
        (13, "1231", "1231"),
        (15, "0101", "0101"),
        (22, "962", "9620"),  # §2: field 22 is left-aligned too
        (22, "961", "9610"),
        (25, "91", "91"),
        # an / ans fixed: ASCII
        (37, "000000000123", "303030303030303030313233"),
        (38, "AB 123", "414220313233"),
        (39, "A0", "4130"),
        (41, "T-001 #1", "542D3030312023 31".replace(" ", "")),
        (42, "898310048160001", "383938333130303438313630303031"),
        (49, "156", "313536"),
        # n, LLLVAR (2-byte BCD prefix counting digits)
        (48, "0005", "0004" + "0005"),
        (48, "12345", "0005" + "123450"),
        (60, "22000001000", "0011" + "220000010000"),
        (60, "220000010006", "0012" + "220000010006"),
        (61, "0000010000121231", "0016" + "0000010000121231"),
        # ans LLLVAR (prefix counts bytes)
        (63, "CUP", "0003" + "435550"),
        (63, "", "0000"),
    ],
)
def test_text_field_bytes(number: int, value: str, field_hex: str) -> None:
    raw = one_field(number, field_hex)
    assert encode_message("0200", {number: value}) == raw
    message = decode_message(raw)
    assert message.mti == "0200"
    assert dict(message.fields) == {number: value}


@pytest.mark.parametrize(
    ("number", "value", "field_hex"),
    [
        (58, bytes.fromhex("DF010102"), "0004" + "DF010102"),
        (58, bytes(255), "0255" + "00" * 255),
        (62, bytes(range(60)), "0060" + bytes(range(60)).hex()),
        (62, bytes(512), "0512" + "00" * 512),
        (64, b"5FE058DB", "3546453035384442"),  # the MAC as 8 ASCII bytes
    ],
)
def test_binary_field_bytes(number: int, value: bytes, field_hex: str) -> None:
    raw = one_field(number, field_hex)
    assert encode_message("0200", {number: value}) == raw
    assert dict(decode_message(raw).fields) == {number: value}


def test_mti_and_bitmap_layout() -> None:
    raw = encode_message("0800", {11: "000001", 41: "12345678", 64: b"ABCDEFGH"})
    assert raw[:2] == b"\x08\x00"  # MTI n4 BCD
    assert raw[2:10] == bytes.fromhex("0020000000800001")  # primary bitmap only
    assert raw[10:13] == bytes.fromhex("000001")


def test_fields_are_encoded_in_number_order() -> None:
    raw = encode_message("0200", {39: "00", 3: "000000"})
    assert raw.hex().upper() == "0200" + bitmap_hex(3, 39) + "000000" + "3030"


def test_spec_has_the_table_of_section_2_and_no_secondary_bitmap() -> None:
    assert sorted(FIELD_FORMATS) == [
        2, 3, 4, 11, 12, 13, 15, 22, 25, 37, 38, 39, 41, 42, 48, 49, 58, 60, 61, 62, 63, 64,
    ]  # fmt: skip
    assert "1" not in SPEC
    assert SPEC["t"]["data_enc"] == "b" and SPEC["t"]["max_len"] == 2
    for number, fmt in FIELD_FORMATS.items():
        entry = SPEC[str(number)]
        assert entry["len_type"] == int(fmt.prefix)
        if fmt.prefix is not Prefix.FIXED:
            assert entry["len_enc"] == "bcd"
        if fmt.kind is FieldKind.N:
            assert entry["len_count"] == "nibbles" and entry["right_pad"] == "0"
    assert FIELD_FORMATS[2].prefix is Prefix.LLVAR
    assert FIELD_FORMATS[48].prefix is Prefix.LLLVAR


# --- decoding errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_hex", "message"),
    [
        ("", "ISO 8583 MTI: needs 2 bytes, got 0 (at byte 0)"),
        ("02", "ISO 8583 MTI: needs 2 bytes, got 1 (at byte 0)"),
        ("0A00" + "0000000000000000", "ISO 8583 MTI: nibble A is not a decimal digit (at byte 0)"),
        ("0200" + "00", "ISO 8583 bitmap: needs 8 bytes, got 1 (at byte 2)"),
        (
            "0200" + "8000000000000000" + "0000000000000000",
            "ISO 8583 bitmap: secondary bitmap (bit 1) is not allowed (at byte 2)",
        ),
        ("0200" + bitmap_hex(5), "ISO 8583 bitmap: field 5 is not in this profile (at byte 2)"),
        ("0200" + bitmap_hex(55), "ISO 8583 bitmap: field 55 is not in this profile (at byte 8)"),
        (
            "0200" + bitmap_hex(22) + "9621",
            "ISO 8583 field 22: Field data is 4 nibbles, expecting 3 (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(22) + "96",
            "ISO 8583 field 22: Field data is 2 nibbles, expecting 3 (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(2) + "03" + "1231",
            "ISO 8583 field 2: Field data is 4 nibbles, expecting 3 (at byte 11)",
        ),
        (
            "0200" + bitmap_hex(2) + "1A" + "1231",
            "ISO 8583 field 2: Failed to decode field length, invalid BCD data (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(2) + "20" + "12" * 10,
            "ISO 8583 field 2: Field data is 20 nibbles, larger than maximum 19 (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(4) + "0000000001A0",
            "ISO 8583 field 4: 'A' is not a decimal digit (at byte 15)",
        ),
        (
            "0200" + bitmap_hex(3, 4) + "000000" + "00000000",
            "ISO 8583 field 4: Field data is 8 nibbles, expecting 12 (at byte 13)",
        ),
        (
            "0200" + bitmap_hex(39) + "0130",
            "ISO 8583 field 39: '\\x01' is not alphanumeric (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(39) + "2D30",
            "ISO 8583 field 39: '-' is not alphanumeric (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(41) + "3132333435363780",
            "ISO 8583 field 41: Failed to decode field, invalid data (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(41) + "313233343536377F",
            "ISO 8583 field 41: '\\x7f' is not printable ASCII (at byte 17)",
        ),
        (
            "0200" + bitmap_hex(58) + "0003" + "DF01",
            "ISO 8583 field 58: Field data is 2 bytes, expecting 3 (at byte 12)",
        ),
        (
            "0200" + bitmap_hex(58) + "0256" + "00" * 256,
            "ISO 8583 field 58: Field data is 256 bytes, larger than maximum 255 (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(58) + "0A01" + "00",
            "ISO 8583 field 58: Failed to decode field length, invalid BCD data (at byte 10)",
        ),
        (
            "0200" + bitmap_hex(39) + "3030" + "FF",
            "ISO 8583 message: trailing bytes after the last field: 1 (at byte 12)",
        ),
        (
            "0200" + "0000000000000000" + "00",
            "ISO 8583 message: trailing bytes after the last field: 1 (at byte 10)",
        ),
    ],
)
def test_decode_errors_name_the_field_and_offset(raw_hex: str, message: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_message(bytes.fromhex(raw_hex))
    assert str(excinfo.value) == message


# --- encoding errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mti", "fields", "message"),
    [
        ("200", {}, "MTI must be 4 digits, got '200'"),
        ("02A0", {}, "MTI must be 4 digits, got '02A0'"),
        ("0200", {5: "1"}, "ISO 8583 field 5 is not in this profile"),
        ("0200", {65: "1"}, "ISO 8583 field 65 is not in this profile"),
        ("0200", {4: "100"}, "ISO 8583 field 4: needs 12 digits, got 3"),
        ("0200", {4: "00000000010A"}, "ISO 8583 field 4: 'A' is not a decimal digit"),
        ("0200", {4: 100}, "ISO 8583 field 4 needs str, got int"),
        ("0200", {22: "9620"}, "ISO 8583 field 22: needs 3 digits, got 4"),
        ("0200", {2: "1" * 20}, "ISO 8583 field 2: 20 digits is over the maximum 19"),
        ("0200", {39: "0"}, "ISO 8583 field 39: needs 2 characters, got 1"),
        ("0200", {39: "0_"}, "ISO 8583 field 39: '_' is not alphanumeric"),
        ("0200", {41: "1234567é"}, "ISO 8583 field 41: 'é' is not printable ASCII"),
        ("0200", {63: "x" * 164}, "ISO 8583 field 63: 164 characters is over the maximum 163"),
        ("0200", {58: "DF01"}, "ISO 8583 field 58 is binary: needs bytes, got str"),
        ("0200", {58: bytes(256)}, "ISO 8583 field 58: 256 bytes is over the maximum 255"),
        ("0200", {64: b"1234567"}, "ISO 8583 field 64: needs 8 bytes, got 7"),
    ],
)
def test_encode_errors_name_the_field(
    mti: str, fields: dict[int, FieldValue], message: str
) -> None:
    with pytest.raises(EncodeError) as excinfo:
        encode_message(mti, fields)
    assert str(excinfo.value) == message
