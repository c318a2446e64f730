"""BER-TLV (ISO/IEC 8825-1 as used by ISO 7816-4 and EMV): tags of 1-3 bytes, definite lengths
of up to 3 length bytes (non-minimal long forms accepted, as BER allows), nested constructed
objects decoded on demand, one level per call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from paycore.errors import DecodeError, EncodeError

TAG_BYTES_MAX = 3
LENGTH_MAX = 0xFFFFFF
OBJECTS_MAX = 4096


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        return bool(_first_tag_byte(self.tag) & 0x20)

    def children(self) -> tuple[Tlv, ...]:
        if not self.constructed:
            raise DecodeError("BER-TLV", 0, f"tag {self.tag:X} is primitive, it has no children")
        return decode(self.value)

    def find(self, tag: int) -> Tlv | None:
        return find(self.children(), tag)

    def encode(self) -> bytes:
        return encode_one(self.tag, self.value)


def _first_tag_byte(tag: int) -> int:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")[0]


def encode_tag(tag: int) -> bytes:
    if tag <= 0 or tag.bit_length() > 8 * TAG_BYTES_MAX:
        raise EncodeError(f"tag {tag:#x} is not a 1-3 byte BER tag")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    if raw[0] == 0xFF:  # ISO/IEC 7816-4: 00 and FF are never the first byte of a tag
        raise EncodeError(f"tag {tag:X}: FF is not a first tag byte")
    multi = (raw[0] & 0x1F) == 0x1F
    if multi != (len(raw) > 1):
        raise EncodeError(f"tag {tag:X}: first byte and length disagree")
    for i, b in enumerate(raw[1:], start=1):
        last = i == len(raw) - 1
        if bool(b & 0x80) == last:
            raise EncodeError(f"tag {tag:X}: bad continuation bit in byte {i}")
    return raw


def encode_length(length: int) -> bytes:
    if length < 0 or length > LENGTH_MAX:
        raise EncodeError(f"TLV length {length} out of range")
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def encode_one(tag: int, value: bytes) -> bytes:
    return encode_tag(tag) + encode_length(len(value)) + value


def encode(objects: Iterable[Tlv]) -> bytes:
    return b"".join(o.encode() for o in objects)


def decode(raw: bytes) -> tuple[Tlv, ...]:
    """Decode a sequence of BER-TLV objects filling ``raw`` exactly (one level: constructed
    objects are decoded on demand by ``Tlv.children``, so nesting costs the caller, not us).

    Padding bytes 00 and FF between objects are not accepted: trailing garbage is an error.
    """
    out: list[Tlv] = []
    i, n = 0, len(raw)
    while i < n:
        if len(out) >= OBJECTS_MAX:
            raise DecodeError("BER-TLV", i, f"more than {OBJECTS_MAX} objects")
        tag, i = _decode_tag(raw, i)
        length, i = _decode_length(raw, i)
        if i + length > n:
            raise DecodeError("BER-TLV", i, f"tag {tag:X} length {length} runs past the end")
        out.append(Tlv(tag, bytes(raw[i : i + length])))
        i += length
    return tuple(out)


def _decode_tag(raw: bytes, i: int) -> tuple[int, int]:
    start = i
    first = raw[i]
    if first in (0x00, 0xFF):
        raise DecodeError("BER-TLV", i, f"{first:02X} is not a tag")
    tag = first
    i += 1
    if first & 0x1F == 0x1F:
        while True:
            if i >= len(raw):
                raise DecodeError("BER-TLV", i, "tag runs past the end")
            if i - start >= TAG_BYTES_MAX:
                raise DecodeError("BER-TLV", start, f"tag longer than {TAG_BYTES_MAX} bytes")
            b = raw[i]
            tag = (tag << 8) | b
            i += 1
            if not b & 0x80:
                break
    return tag, i


def _decode_length(raw: bytes, i: int) -> tuple[int, int]:
    if i >= len(raw):
        raise DecodeError("BER-TLV", i, "length missing")
    first = raw[i]
    if first < 0x80:
        return first, i + 1
    size = first & 0x7F
    if size == 0:
        raise DecodeError("BER-TLV", i, "indefinite length is not allowed")
    if size > 3:
        raise DecodeError("BER-TLV", i, f"{size}-byte length field is over 3")
    if i + 1 + size > len(raw):
        raise DecodeError("BER-TLV", i, "length field runs past the end")
    return int.from_bytes(raw[i + 1 : i + 1 + size], "big"), i + 1 + size


def find(objects: Iterable[Tlv], tag: int) -> Tlv | None:
    for obj in objects:
        if obj.tag == tag:
            return obj
    return None
