"""paycore.tlv: BER-TLV with 1-3 byte tags and definite lengths of up to 3 length bytes."""

from __future__ import annotations

from typing import cast

import pytest

from paycore import tlv
from paycore.errors import DecodeError, EncodeError
from paycore.tlv import LENGTH_MAX, OBJECTS_MAX, Tlv

WALLET_AID = bytes.fromhex("A00000000386980701")
EF15 = bytes(range(30))


def wallet_fci() -> bytes:
    """The wallet FCI of card.md §2: 6F L 84 09 <AID> A5 L 9F08 02 0102 9F0C 1E <EF15>."""
    proprietary = tlv.encode_one(0x9F08, b"\x01\x02") + tlv.encode_one(0x9F0C, EF15)
    return tlv.encode_one(
        0x6F, tlv.encode_one(0x84, WALLET_AID) + tlv.encode_one(0xA5, proprietary)
    )


# --- tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "raw_hex"),
    [
        (0x01, "01"),
        (0x4F, "4F"),
        (0x6F, "6F"),
        (0x84, "84"),
        (0xA5, "A5"),
        (0xFE, "FE"),
        (0x5F20, "5F20"),
        (0x9F08, "9F08"),
        (0xBF0C, "BF0C"),
        (0x1F00, "1F00"),
        (0x9F7F, "9F7F"),
        (0x9F8101, "9F8101"),
        (0xDFFF7F, "DFFF7F"),
    ],
)
def test_encode_tag(tag: int, raw_hex: str) -> None:
    assert tlv.encode_tag(tag) == bytes.fromhex(raw_hex)


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (0, "tag 0x0 is not a 1-3 byte BER tag"),
        (-1, "tag -0x1 is not a 1-3 byte BER tag"),
        (0x1000000, "tag 0x1000000 is not a 1-3 byte BER tag"),
        (0x9F, "tag 9F: first byte and length disagree"),
        (0x1F, "tag 1F: first byte and length disagree"),
        (0x8408, "tag 8408: first byte and length disagree"),
        (0x6F0102, "tag 6F0102: first byte and length disagree"),
        (0x9F81, "tag 9F81: bad continuation bit in byte 1"),
        (0x9F0101, "tag 9F0101: bad continuation bit in byte 1"),
        (0x9F8181, "tag 9F8181: bad continuation bit in byte 2"),
        (0xFF, "tag FF: FF is not a first tag byte"),
        (0xFF01, "tag FF01: FF is not a first tag byte"),
        (0xFF8101, "tag FF8101: FF is not a first tag byte"),
    ],
)
def test_encode_tag_refuses(tag: int, message: str) -> None:
    with pytest.raises(EncodeError) as excinfo:
        tlv.encode_tag(tag)
    assert str(excinfo.value) == message


# --- lengths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "raw_hex"),
    [
        (0, "00"),
        (1, "01"),
        (0x7F, "7F"),
        (0x80, "8180"),
        (0xFF, "81FF"),
        (0x100, "820100"),
        (0xFFFF, "82FFFF"),
        (0x10000, "83010000"),
        (LENGTH_MAX, "83FFFFFF"),
    ],
)
def test_encode_length(length: int, raw_hex: str) -> None:
    assert tlv.encode_length(length) == bytes.fromhex(raw_hex)


@pytest.mark.parametrize("length", [-1, LENGTH_MAX + 1])
def test_encode_length_refuses(length: int) -> None:
    with pytest.raises(EncodeError) as excinfo:
        tlv.encode_length(length)
    assert str(excinfo.value) == f"TLV length {length} out of range"


# --- objects ------------------------------------------------------------------------------


def test_encode_one_and_tlv_encode() -> None:
    assert tlv.encode_one(0x84, b"\xaa\xbb") == bytes.fromhex("8402AABB")
    assert Tlv(0x9F08, b"\x01\x02").encode() == bytes.fromhex("9F08020102")
    assert Tlv(0x84, b"").encode() == bytes.fromhex("8400")
    assert Tlv(0x84, bytes(200)).encode() == bytes.fromhex("8481C8") + bytes(200)
    assert Tlv(0x84, bytes(300)).encode() == bytes.fromhex("8482012C") + bytes(300)


def test_encode_sequence() -> None:
    objects = [Tlv(0x84, b"\x01"), Tlv(0x9F08, b"\x01\x02")]
    assert tlv.encode(objects) == bytes.fromhex("8401019F08020102")
    assert tlv.encode([]) == b""


def test_tlv_encode_refuses_bad_tag() -> None:
    with pytest.raises(EncodeError, match=r"^tag 9F: first byte and length disagree$"):
        Tlv(0x9F, b"").encode()


@pytest.mark.parametrize(
    ("tag", "constructed"),
    [(0x6F, True), (0xA5, True), (0xBF0C, True), (0x70, True), (0x84, False), (0x9F08, False)],
)
def test_constructed(tag: int, constructed: bool) -> None:
    assert Tlv(tag, b"").constructed is constructed


# --- decoding -----------------------------------------------------------------------------


def test_decode_wallet_fci() -> None:
    raw = wallet_fci()
    assert raw[:2] == bytes.fromhex("6F33")
    (fci,) = tlv.decode(raw)
    assert fci.tag == 0x6F
    assert fci.constructed
    df_name = fci.find(0x84)
    assert df_name == Tlv(0x84, WALLET_AID)
    prop = fci.find(0xA5)
    assert prop is not None
    assert prop.children() == (Tlv(0x9F08, b"\x01\x02"), Tlv(0x9F0C, EF15))
    assert prop.find(0x9F0C) == Tlv(0x9F0C, EF15)
    assert prop.find(0x9F0D) is None
    assert tlv.encode([fci]) == raw


def test_decode_empty() -> None:
    assert tlv.decode(b"") == ()


def test_decode_sequence_and_find() -> None:
    objects = tlv.decode(bytes.fromhex("8401018401029F0800"))
    assert objects == (Tlv(0x84, b"\x01"), Tlv(0x84, b"\x02"), Tlv(0x9F08, b""))
    assert tlv.find(objects, 0x84) == Tlv(0x84, b"\x01")  # the first one
    assert tlv.find(objects, 0x9F08) == Tlv(0x9F08, b"")
    assert tlv.find(objects, 0x85) is None
    assert tlv.find([], 0x84) is None


@pytest.mark.parametrize(
    ("raw_hex", "expected"),
    [
        ("8481AA" + "00" * 0xAA, Tlv(0x84, bytes(0xAA))),
        ("84820100" + "00" * 0x100, Tlv(0x84, bytes(0x100))),
        ("8483000002" + "ABCD", Tlv(0x84, b"\xab\xcd")),
        ("848101AA", Tlv(0x84, b"\xaa")),  # BER, not DER: a longer length form is accepted
        ("9F810100", Tlv(0x9F8101, b"")),
        ("1F000155", Tlv(0x1F00, b"\x55")),
    ],
)
def test_decode_lengths_and_tags(raw_hex: str, expected: Tlv) -> None:
    assert tlv.decode(bytes.fromhex(raw_hex)) == (expected,)


def test_decode_returns_bytes_values_from_bytearray() -> None:
    (obj,) = tlv.decode(cast(bytes, bytearray.fromhex("8402AABB")))
    assert type(obj.value) is bytes


def test_decode_object_limit() -> None:
    assert len(tlv.decode(b"\x84\x00" * OBJECTS_MAX)) == OBJECTS_MAX
    with pytest.raises(DecodeError) as excinfo:
        tlv.decode(b"\x84\x00" * (OBJECTS_MAX + 1))
    assert str(excinfo.value) == "BER-TLV: more than 4096 objects (at byte 8192)"


@pytest.mark.parametrize(
    ("raw_hex", "offset", "message"),
    [
        ("00", 0, "BER-TLV: 00 is not a tag (at byte 0)"),
        ("FF", 0, "BER-TLV: FF is not a tag (at byte 0)"),
        ("84010100", 3, "BER-TLV: 00 is not a tag (at byte 3)"),
        ("840101FFFF", 3, "BER-TLV: FF is not a tag (at byte 3)"),
        ("9F", 1, "BER-TLV: tag runs past the end (at byte 1)"),
        ("9F81", 2, "BER-TLV: tag runs past the end (at byte 2)"),
        ("9F818101", 0, "BER-TLV: tag longer than 3 bytes (at byte 0)"),
        ("8401009F81818100", 3, "BER-TLV: tag longer than 3 bytes (at byte 3)"),
        ("84", 1, "BER-TLV: length missing (at byte 1)"),
        ("9F08", 2, "BER-TLV: length missing (at byte 2)"),
        ("8480", 1, "BER-TLV: indefinite length is not allowed (at byte 1)"),
        ("6F808401000000", 1, "BER-TLV: indefinite length is not allowed (at byte 1)"),
        ("848400000001AA", 1, "BER-TLV: 4-byte length field is over 3 (at byte 1)"),
        ("84FF", 1, "BER-TLV: 127-byte length field is over 3 (at byte 1)"),
        ("8481", 1, "BER-TLV: length field runs past the end (at byte 1)"),
        ("848301", 1, "BER-TLV: length field runs past the end (at byte 1)"),
        ("84030102", 2, "BER-TLV: tag 84 length 3 runs past the end (at byte 2)"),
        ("9F0802", 3, "BER-TLV: tag 9F08 length 2 runs past the end (at byte 3)"),
        ("8483FFFFFF00", 5, "BER-TLV: tag 84 length 16777215 runs past the end (at byte 5)"),
    ],
)
def test_decode_refuses(raw_hex: str, offset: int, message: str) -> None:
    with pytest.raises(DecodeError) as excinfo:
        tlv.decode(bytes.fromhex(raw_hex))
    assert str(excinfo.value) == message
    assert excinfo.value.what == "BER-TLV"
    assert excinfo.value.offset == offset


def test_children_of_primitive_refused() -> None:
    with pytest.raises(DecodeError) as excinfo:
        Tlv(0x84, b"\x84\x00").children()
    assert str(excinfo.value) == "BER-TLV: tag 84 is primitive, it has no children (at byte 0)"
    with pytest.raises(DecodeError):
        Tlv(0x9F08, b"").find(0x84)


def test_children_of_malformed_value_refused() -> None:
    # Offsets inside children() count from the start of the parent's value.
    with pytest.raises(DecodeError) as excinfo:
        Tlv(0xA5, bytes.fromhex("8401018402AA")).children()
    assert str(excinfo.value) == "BER-TLV: tag 84 length 2 runs past the end (at byte 5)"


def test_nested_depth_on_demand() -> None:
    inner = Tlv(0x84, b"\x01")
    raw = inner.encode()
    for _ in range(20):
        raw = tlv.encode_one(0xA5, raw)
    (obj,) = tlv.decode(raw)
    for _ in range(20):
        (obj,) = obj.children()
    assert obj == inner
