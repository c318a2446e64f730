"""TCP framing of host_protocol.md §1: length, TPDU, header, the response swap, the limit."""

from __future__ import annotations

import pytest

from paycore.errors import DecodeError, EncodeError
from paycore.iso8583.frame import (
    FRAME_LENGTH_MAX,
    PROCESSING_SIGN_ON_AGAIN,
    STATUS_TEST,
    Frame,
    FrameReader,
    Header,
    Tpdu,
    decode_frame,
    encode_frame,
)

MESSAGE = (
    bytes.fromhex("0820" + "0000000000800010") + b"12345678" + bytes.fromhex("0012220000013010")
)
TPDU = Tpdu(destination=0x0001, source=0x0203)


def test_encode_frame_layout() -> None:
    raw = encode_frame(TPDU, Header(), MESSAGE)
    length = 5 + 6 + len(MESSAGE)
    assert raw[:2] == length.to_bytes(2, "big")  # covers TPDU + header + message
    assert raw[2:7] == bytes.fromhex("6000010203")
    assert raw[7:13] == bytes.fromhex("603100310000")
    assert raw[13:] == MESSAGE


def test_decode_frame_round_trip() -> None:
    raw = encode_frame(TPDU, Header(), MESSAGE)
    assert decode_frame(raw) == Frame(TPDU, Header(), MESSAGE)
    assert Frame(TPDU, Header(), MESSAGE).encode() == raw


def test_response_swaps_destination_and_source() -> None:
    request = decode_frame(encode_frame(Tpdu(0x0001, 0x8888), Header(), MESSAGE))
    response = encode_frame(request.tpdu.swapped(), Header(), MESSAGE)
    assert response[2:7] == bytes.fromhex("6088880001")
    assert request.tpdu.swapped().swapped() == request.tpdu


def test_header_nibbles() -> None:
    header = Header(status=STATUS_TEST, processing=PROCESSING_SIGN_ON_AGAIN)
    assert header.encode() == bytes.fromhex("603113310000")
    assert header.sign_on_again
    assert not Header().sign_on_again
    assert Header.decode(bytes.fromhex("603103310000")) == Header(processing=3)
    # version and sub-version are carried, not checked
    assert Header.decode(bytes.fromhex("603200320000")) == Header()


def test_frame_repr_hides_the_message() -> None:
    text = repr(Frame(TPDU, Header(), b"8888880000000012"))
    assert "8888" not in text.replace("0x", "")
    assert "<16 bytes>" in text


def test_limit_is_on_the_length_prefix() -> None:
    biggest = bytes(FRAME_LENGTH_MAX - 11)
    raw = encode_frame(TPDU, Header(), biggest)
    assert raw[:2] == (2048).to_bytes(2, "big")
    assert decode_frame(raw).message == biggest
    with pytest.raises(EncodeError, match=r"^frame length 2049 is over 2048$"):
        encode_frame(TPDU, Header(), biggest + b"\x00")


@pytest.mark.parametrize(
    ("raw_hex", "message"),
    [
        ("", "ISO 8583 frame: needs 2 length bytes, got 0 (at byte 0)"),
        ("00", "ISO 8583 frame: needs 2 length bytes, got 1 (at byte 0)"),
        ("0801", "ISO 8583 frame: length 2049 is over 2048 (at byte 0)"),
        ("FFFF", "ISO 8583 frame: length 65535 is over 2048 (at byte 0)"),
        ("000A", "ISO 8583 frame: length 10 is shorter than TPDU + header (11) (at byte 0)"),
        (
            "000C" + "6000010203" + "603100310000",
            "ISO 8583 frame: length prefix says 12 bytes, 11 follow (at byte 13)",
        ),
        (
            "000B" + "6000010203" + "603100310000" + "00",
            "ISO 8583 frame: length prefix says 11 bytes, 12 follow (at byte 13)",
        ),
        ("000B" + "7000010203" + "603100310000", "ISO 8583 TPDU: ID 70 is not 60 (at byte 2)"),
        (
            "000B" + "6000010203" + "613100310000",
            "ISO 8583 header: application 61 is not 60 (at byte 7)",
        ),
    ],
)
def test_decode_frame_errors(raw_hex: str, message: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_frame(bytes.fromhex(raw_hex))
    assert str(excinfo.value) == message


def test_tpdu_and_header_values_are_checked() -> None:
    with pytest.raises(EncodeError, match=r"^TPDU source 65536 does not fit in 2 bytes$"):
        Tpdu(0, 0x10000)
    with pytest.raises(EncodeError, match=r"^header status 16 is not a nibble$"):
        Header(status=16)


# --- the incremental reader -------------------------------------------------------------------


def test_reader_yields_frames_across_chunks() -> None:
    first = encode_frame(TPDU, Header(), MESSAGE)
    second = encode_frame(TPDU.swapped(), Header(processing=3), b"\x08\x10" + bytes(8))
    stream = first + second
    reader = FrameReader()
    assert reader.feed(stream[:1]) == []
    assert reader.pending
    assert reader.feed(stream[1:20]) == []
    frames = reader.feed(stream[20:])
    assert frames == [decode_frame(first), decode_frame(second)]
    assert not reader.pending
    assert reader.buffered == 0


def test_reader_keeps_a_partial_frame_pending() -> None:
    raw = encode_frame(TPDU, Header(), MESSAGE)
    reader = FrameReader()
    assert reader.feed(raw + raw[:5]) == [decode_frame(raw)]
    assert reader.pending and reader.buffered == 5
    assert reader.feed(raw[5:]) == [decode_frame(raw)]


def test_reader_refuses_an_oversized_length_at_once_and_stays_broken() -> None:
    good = encode_frame(TPDU, Header(), MESSAGE)
    reader = FrameReader()
    assert reader.feed(good) == [decode_frame(good)]
    with pytest.raises(DecodeError) as excinfo:
        reader.feed(b"\x08\x01")  # no body needed to know it is too long
    assert str(excinfo.value) == f"ISO 8583 frame: length 2049 is over 2048 (at byte {len(good)})"
    with pytest.raises(DecodeError) as again:
        reader.feed(good)
    assert again.value is excinfo.value


def test_reader_offsets_count_from_the_start_of_the_stream() -> None:
    good = encode_frame(TPDU, Header(), MESSAGE)
    bad_tpdu = b"\x00\x0b" + bytes.fromhex("7000010203603100310000")
    with pytest.raises(DecodeError) as excinfo:
        FrameReader().feed(good + bad_tpdu)
    assert str(excinfo.value) == f"ISO 8583 TPDU: ID 70 is not 60 (at byte {len(good) + 2})"
