"""The vpcd frame codec: 2-byte big-endian length, then the payload."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from card_applet_sim.adapters.vpcd import (
    PAYLOAD_LEN_MAX,
    FrameDecoder,
    decode_frame,
    encode_frame,
)
from paycore.errors import DecodeError, EncodeError

payloads = st.binary(min_size=1, max_size=PAYLOAD_LEN_MAX)
small_payloads = st.binary(min_size=1, max_size=300)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, in order)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# --- encode ----------------------------------------------------------------------------------


def test_encode_known_frames() -> None:
    assert encode_frame(b"\x04") == bytes.fromhex("000104")
    assert encode_frame(bytes.fromhex("00A4040000")) == bytes.fromhex("000500A4040000")
    assert encode_frame(b"\xaa" * 0x1234)[:2] == b"\x12\x34"


def test_encode_rejects_empty_and_oversize_payloads() -> None:
    with pytest.raises(EncodeError, match="payload is empty"):
        encode_frame(b"")
    assert len(encode_frame(b"\x00" * 0xFFFF)) == 0x10001
    with pytest.raises(EncodeError, match="65536 bytes, the 2-byte length allows 65535"):
        encode_frame(b"\x00" * 0x10000)


# --- decode_frame: exactly one frame ------------------------------------------------------------


@given(payloads)
def test_decode_frame_inverts_encode_frame(payload: bytes) -> None:
    assert decode_frame(encode_frame(payload)) == payload


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "vpcd frame: header needs 2 bytes, got 0 (at byte 0)"),
        (b"\x00", "vpcd frame: header needs 2 bytes, got 1 (at byte 1)"),
        (b"\x00\x00", "vpcd frame: payload length is 0 (at byte 0)"),
        (b"\x10\x01", "vpcd frame: payload length 4097 exceeds the limit of 4096 (at byte 0)"),
        (
            b"\x00\x03\x01\x02",
            "vpcd frame: payload truncated: 3 bytes announced, 2 present (at byte 4)",
        ),
        (b"\x00\x01\x04\x00", "vpcd frame: 1 trailing bytes after the frame (at byte 3)"),
    ],
)
def test_decode_frame_errors_name_the_offset(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_frame(raw)
    assert str(caught.value) == message
    assert caught.value.what == "vpcd frame"


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=0xFFFF))
def test_decode_frame_raises_only_decode_error(raw: bytes, limit: int) -> None:
    try:
        payload = decode_frame(raw, limit)
    except DecodeError as exc:
        assert 0 <= exc.offset <= len(raw)
    else:
        assert 1 <= len(payload) <= limit
        assert encode_frame(payload) == raw


# --- FrameDecoder: a stream ------------------------------------------------------------------


@given(st.lists(small_payloads, max_size=8), st.lists(st.integers(min_value=0), max_size=20))
def test_stream_round_trip_at_any_split(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(frame) for frame in frames)
    decoder = FrameDecoder()
    decoded: list[bytes] = []
    for chunk in split(stream, cuts):
        decoded += decoder.feed(chunk)
    assert decoded == frames
    assert decoder.idle
    assert decoder.offset == len(stream)


@given(st.lists(small_payloads, min_size=1, max_size=4))
def test_reading_bytes_wanted_never_reads_past_a_frame(frames: list[bytes]) -> None:
    """The socket loop reads ``bytes_wanted`` at a time: header and payload separately."""
    stream = b"".join(encode_frame(frame) for frame in frames)
    decoder = FrameDecoder()
    position = 0
    reads: list[int] = []
    decoded: list[bytes] = []
    while position < len(stream):
        wanted = decoder.bytes_wanted
        reads.append(wanted)
        decoded += decoder.feed(stream[position : position + wanted])
        position += wanted
    assert decoded == frames
    assert reads == [n for frame in frames for n in (2, len(frame))]


@given(
    st.binary(max_size=600), st.lists(st.integers(min_value=0), max_size=10), st.integers(1, 600)
)
def test_decoder_raises_only_decode_error(raw: bytes, cuts: list[int], limit: int) -> None:
    decoder = FrameDecoder(limit)
    try:
        for chunk in split(raw, cuts):
            for payload in decoder.feed(chunk):
                assert 1 <= len(payload) <= limit
    except DecodeError as exc:
        assert exc.what == "vpcd frame"
        assert 0 <= exc.offset < len(raw)
        with pytest.raises(DecodeError) as again:
            decoder.feed(b"\x00\x01\x04")
        assert again.value is exc  # the stream stays out of step
    assert decoder.bytes_wanted >= 1


@given(st.integers(min_value=1, max_value=0xFFFF), st.integers(min_value=1, max_value=0xFFFF))
def test_payload_limit(length: int, limit: int) -> None:
    header = length.to_bytes(2, "big")
    decoder = FrameDecoder(limit)
    if length <= limit:
        assert decoder.feed(header) == []
        assert decoder.bytes_wanted == length
    else:
        with pytest.raises(DecodeError, match=f"payload length {length} exceeds the limit"):
            decoder.feed(header)


def test_decoder_error_offset_counts_from_the_stream_start() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(bytes.fromhex("000104 0002")) == [b"\x04"]
    with pytest.raises(DecodeError) as caught:
        decoder.feed(bytes.fromhex("9000 0000"))
    assert str(caught.value) == "vpcd frame: payload length is 0 (at byte 7)"


def test_decoder_rejects_a_limit_the_header_cannot_express() -> None:
    with pytest.raises(ValueError, match=r"payload_len_max must be 1\.\.65535"):
        FrameDecoder(0x10000)
