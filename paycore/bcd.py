"""Packed BCD as used on cards (dates, times, ASNs) and F-padded BCD (ICCID, MSISDN)."""

from __future__ import annotations

from datetime import datetime

from paycore.errors import DecodeError, EncodeError


def encode(digits: str, length: int | None = None) -> bytes:
    """Pack decimal digits two per byte; an odd count is left-padded with 0."""
    if not digits.isascii() or not digits.isdigit():
        raise EncodeError(f"BCD needs decimal digits, got {digits!r}")
    if len(digits) % 2:
        digits = "0" + digits
    raw = bytes.fromhex(digits)
    if length is not None:
        if len(raw) > length:
            raise EncodeError(f"{len(digits)} digits do not fit in {length} BCD bytes")
        raw = bytes(length - len(raw)) + raw
    return raw


def decode(raw: bytes, what: str = "BCD") -> str:
    text = raw.hex()
    for i, ch in enumerate(text):
        if not ch.isdigit():
            raise DecodeError(what, i // 2, f"nibble {ch.upper()} is not a decimal digit")
    return text


def encode_f_padded(digits: str, length: int) -> bytes:
    """Digits left-justified, padded with F nibbles to ``length`` bytes (ICCID/MSISDN style)."""
    if digits and (not digits.isascii() or not digits.isdigit()):
        raise EncodeError(f"BCD needs decimal digits, got {digits!r}")
    if len(digits) > 2 * length:
        raise EncodeError(f"{len(digits)} digits do not fit in {length} bytes")
    return bytes.fromhex(digits.ljust(2 * length, "f"))


def decode_f_padded(raw: bytes, what: str = "BCD") -> str:
    text = raw.hex()
    digits = text.rstrip("f")
    for i, ch in enumerate(digits):
        if not ch.isdigit():
            raise DecodeError(what, i // 2, f"nibble {ch.upper()} is not a decimal digit")
    return digits


def date_time(now: datetime) -> tuple[bytes, bytes]:
    """(YYYYMMDD, HHMMSS) in BCD, 4 and 3 bytes, from a datetime the caller supplies."""
    return encode(now.strftime("%Y%m%d")), encode(now.strftime("%H%M%S"))
