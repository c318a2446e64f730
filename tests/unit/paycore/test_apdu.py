"""paycore.apdu: ISO/IEC 7816-4 short command and response APDUs."""

from __future__ import annotations

import dataclasses
from typing import cast

import pytest

from paycore.apdu import (
    COMMAND_LEN_MAX,
    DATA_LEN_MAX,
    LE_MAX,
    CommandApdu,
    ResponseApdu,
    decode_command,
    decode_response,
)
from paycore.errors import DecodeError, EncodeError, PaycoreError

WALLET_AID = bytes.fromhex("A00000000386980701")


# --- encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("apdu", "raw_hex", "case"),
    [
        (CommandApdu(0x00, 0x70, 0x00, 0x01), "00700001", 1),
        (CommandApdu(0x80, 0x5C, 0x00, 0x02, le=4), "805C000204", 2),
        (CommandApdu(0x00, 0xB2, 0x01, 0xC4, le=256), "00B201C400", 2),
        (CommandApdu(0x00, 0xB0, 0x95, 0x00, le=255), "00B09500FF", 2),
        (CommandApdu(0x00, 0x20, 0x00, 0x00, bytes.fromhex("1234")), "00200000021234", 3),
        (CommandApdu(0x00, 0xA4, 0x04, 0x00, WALLET_AID, 256), "00A4040009A0000000038698070100", 4),
        (
            CommandApdu(0x80, 0x50, 0x01, 0x02, bytes.fromhex("0100001000001122334455"), 0x0F),
            "805001020B01000010000011223344550F",
            4,
        ),
    ],
)
def test_encode_decode_known_commands(apdu: CommandApdu, raw_hex: str, case: int) -> None:
    raw = bytes.fromhex(raw_hex)
    assert apdu.case == case
    assert apdu.encode() == raw
    assert decode_command(raw) == apdu


def test_defaults() -> None:
    apdu = CommandApdu(0x00, 0xA4, 0x04, 0x00)
    assert apdu.data == b""
    assert apdu.le is None
    assert apdu.case == 1


def test_largest_short_apdu() -> None:
    apdu = CommandApdu(0x00, 0xD6, 0x00, 0x00, bytes(range(255)), LE_MAX)
    raw = apdu.encode()
    assert len(raw) == COMMAND_LEN_MAX == 261
    assert raw[4] == DATA_LEN_MAX
    assert raw[-1] == 0x00
    assert decode_command(raw) == apdu


def test_decode_le_00_means_256() -> None:
    assert decode_command(bytes.fromhex("00B0950000")).le == 256
    assert decode_command(bytes.fromhex("00A404000100" + "00")).le == 256


def test_decode_accepts_bytearray_and_returns_bytes_data() -> None:
    apdu = decode_command(cast(bytes, bytearray.fromhex("0020000002123400")))
    assert type(apdu.data) is bytes
    assert apdu == CommandApdu(0x00, 0x20, 0x00, 0x00, b"\x12\x34", 256)


def test_command_is_frozen() -> None:
    apdu = CommandApdu(0x00, 0xA4, 0x04, 0x00)
    with pytest.raises(dataclasses.FrozenInstanceError):
        apdu.ins = 0xB0  # type: ignore[misc]


# --- construction refusals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cla": 0x100}, "APDU cla must be one byte, got 256"),
        ({"ins": -1}, "APDU ins must be one byte, got -1"),
        ({"p1": 0x1FF}, "APDU p1 must be one byte, got 511"),
        ({"p2": 256}, "APDU p2 must be one byte, got 256"),
        ({"data": bytes(256)}, "APDU data is 256 bytes, short APDUs carry at most 255"),
        ({"le": 0}, "APDU Le must be 1..256 or absent, got 0"),
        ({"le": 257}, "APDU Le must be 1..256 or absent, got 257"),
        ({"le": -1}, "APDU Le must be 1..256 or absent, got -1"),
    ],
)
def test_command_refuses_out_of_range_fields(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"cla": 0, "ins": 0xA4, "p1": 4, "p2": 0}
    fields.update(kwargs)
    with pytest.raises(EncodeError) as excinfo:
        CommandApdu(**fields)  # type: ignore[arg-type]
    assert str(excinfo.value) == message
    assert isinstance(excinfo.value, PaycoreError)


# --- malformed commands -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_hex", "offset", "message"),
    [
        ("", 0, "APDU: header needs 4 bytes, got 0 (at byte 0)"),
        ("00", 1, "APDU: header needs 4 bytes, got 1 (at byte 1)"),
        ("00A404", 3, "APDU: header needs 4 bytes, got 3 (at byte 3)"),
        ("00A4040000A0", 4, "APDU: extended length is not supported (at byte 4)"),
        ("00A40400000009A0", 4, "APDU: extended length is not supported (at byte 4)"),
        ("00A40400050102", 7, "APDU: Lc says 5 data bytes, only 2 present (at byte 7)"),
        ("00A4040009A0000000", 9, "APDU: Lc says 9 data bytes, only 4 present (at byte 9)"),
        ("00A4040002010200FF", 8, "APDU: 1 trailing bytes after Le (at byte 8)"),
        ("00A4040002010200FFFF", 8, "APDU: 2 trailing bytes after Le (at byte 8)"),
        ("00A4040001AA00" + "00" * 300, 7, "APDU: 300 trailing bytes after Le (at byte 7)"),
    ],
)
def test_decode_command_refuses(raw_hex: str, offset: int, message: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_command(bytes.fromhex(raw_hex))
    assert str(excinfo.value) == message
    assert excinfo.value.what == "APDU"
    assert excinfo.value.offset == offset


def test_decode_error_attributes() -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_command(b"\x00\xa4")
    err = excinfo.value
    assert (err.what, err.offset, err.reason) == ("APDU", 2, "header needs 4 bytes, got 2")
    assert isinstance(err, PaycoreError)
    assert isinstance(err, ValueError)


# --- responses ----------------------------------------------------------------------------


def test_response_ok() -> None:
    resp = decode_response(b"\x90\x00")
    assert resp == ResponseApdu(b"", 0x9000)
    assert resp.ok
    assert (resp.sw1, resp.sw2) == (0x90, 0x00)
    assert resp.encode() == b"\x90\x00"


def test_response_with_data() -> None:
    raw = bytes.fromhex("000003E89000")
    resp = decode_response(raw)
    assert resp.data == bytes.fromhex("000003E8")
    assert resp.sw == 0x9000
    assert resp.encode() == raw


@pytest.mark.parametrize("sw", [0x6A82, 0x6C10, 0x63C2, 0x9401, 0x9000 ^ 0x0001])
def test_response_not_ok(sw: int) -> None:
    resp = decode_response(sw.to_bytes(2, "big"))
    assert not resp.ok
    assert resp.sw1 == sw >> 8
    assert resp.sw2 == sw & 0xFF


def test_response_largest() -> None:
    raw = bytes(range(256)) + b"\x90\x00"
    resp = decode_response(raw)
    assert len(resp.data) == 256
    assert resp.encode() == raw


def test_response_decode_accepts_bytearray() -> None:
    resp = decode_response(cast(bytes, bytearray(b"\x01\x02\x90\x00")))
    assert type(resp.data) is bytes
    assert resp.data == b"\x01\x02"


@pytest.mark.parametrize(
    ("raw", "offset", "message"),
    [
        (b"", 0, "response APDU: needs SW1 SW2, got 0 bytes (at byte 0)"),
        (b"\x90", 1, "response APDU: needs SW1 SW2, got 1 bytes (at byte 1)"),
        (bytes(259), 258, "response APDU: 259 bytes is over 258 (at byte 258)"),
        (bytes(1000), 258, "response APDU: 1000 bytes is over 258 (at byte 258)"),
    ],
)
def test_decode_response_refuses(raw: bytes, offset: int, message: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_response(raw)
    assert str(excinfo.value) == message
    assert excinfo.value.what == "response APDU"
    assert excinfo.value.offset == offset
