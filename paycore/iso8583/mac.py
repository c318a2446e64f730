"""The CUP ECB MAC of field 64 and the working keys of field 62 (host_protocol.md §3).

Pure functions: keys come in as bytes and never appear in an error message or a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from paycore.crypto import DES_BLOCK, des_ecb_decrypt, des_ecb_encrypt, mac_equal, xor
from paycore.errors import BadKeyError, DecodeError, PaycoreError
from paycore.iso8583.message import Fields, encode_message
from paycore.iso8583.spec import BITMAP_BYTES, MAC_BYTES, MAC_FIELD, MTI_BYTES

KEY_BYTES: Final = 16
KCV_BYTES: Final = 4
WORKING_KEYS_BYTES: Final = 3 * (KEY_BYTES + KCV_BYTES)
F62: Final = "ISO 8583 field 62"
_MAC_PLACEHOLDER: Final = bytes(MAC_BYTES)


def _des_key(key: bytes, name: str) -> bytes:
    """§3: a double-length key whose second half is all zero is used as single DES."""
    if len(key) == DES_BLOCK:
        return key
    if len(key) != KEY_BYTES:
        raise BadKeyError(f"{name} must be 8 or {KEY_BYTES} bytes, got {len(key)}")
    if key[DES_BLOCK:] == bytes(DES_BLOCK):
        return key[:DES_BLOCK]
    return key


# --- the MAC ------------------------------------------------------------------------------------


def xor_blocks(data: bytes) -> bytes:
    """Step 1 of the CUP ECB MAC: zero-pad to a multiple of 8 and XOR the 8-byte blocks."""
    padded = data + bytes(-len(data) % DES_BLOCK)
    result = bytes(DES_BLOCK)
    for i in range(0, len(padded), DES_BLOCK):
        result = xor(result, padded[i : i + DES_BLOCK])
    return result


def cup_mac(mak: bytes, data: bytes) -> bytes:
    """CUP ECB MAC (§3) over ``data``; the 8 ASCII bytes that go into field 64.

    XOR the blocks, expand to 16 upper-case hex characters, encrypt the first 8 with the MAK,
    XOR with the last 8, encrypt again, expand to hex, keep the first 8 characters.
    """
    key = _des_key(mak, "MAK")
    expanded = xor_blocks(data).hex().upper().encode("ascii")
    left = des_ecb_encrypt(key, expanded[:DES_BLOCK])
    final = des_ecb_encrypt(key, xor(left, expanded[DES_BLOCK:]))
    return final.hex().upper()[:MAC_BYTES].encode("ascii")


def mac_input(message: bytes) -> bytes:
    """MTI .. field 63 with bit 64 set: an encoded message that carries field 64, minus the
    field's 8 bytes (field 64 is fixed-length and always last)."""
    head = MTI_BYTES + BITMAP_BYTES
    if len(message) >= head and not message[head - 1] & 1:
        raise DecodeError("ISO 8583 bitmap", head - 1, f"field {MAC_FIELD} (MAC) is not present")
    if len(message) < head + MAC_BYTES:
        raise DecodeError("ISO 8583 message", len(message), "too short to carry field 64")
    return message[:-MAC_BYTES]


def message_mac(mak: bytes, message: bytes) -> bytes:
    """The MAC an encoded message (with field 64 present, any content) should carry."""
    return cup_mac(mak, mac_input(message))


def encode_signed_message(mak: bytes, mti: str, fields: Fields) -> bytes:
    """Encode with field 64 = the MAC: bit 64 is set by encoding an 8-byte placeholder, the MAC
    is computed over everything before it, then put in its place."""
    with_placeholder = dict(fields)
    with_placeholder[MAC_FIELD] = _MAC_PLACEHOLDER
    placeholder_encoded = encode_message(mti, with_placeholder)
    head = placeholder_encoded[:-MAC_BYTES]
    signed = head + cup_mac(mak, head)
    assert len(signed) == len(placeholder_encoded)
    return signed


def verify_message_mac(mak: bytes, message: bytes) -> bool:
    """True when field 64 of an encoded message is the MAC of the rest (constant-time)."""
    return mac_equal(message_mac(mak, message), message[-MAC_BYTES:])


# --- field 62: working keys -------------------------------------------------------------------


def key_check_value(key: bytes) -> bytes:
    """§3 KCV: first 4 bytes of 3DES_key(00 x 8); a key whose second half is zero is single
    DES (our reading for CUP-style MAK(8) || 00 x 8: its check value is the single-DES one)."""
    return des_ecb_encrypt(_des_key(key, "key"), bytes(DES_BLOCK))[:KCV_BYTES]


class KeyCheckError(PaycoreError):
    """A working key of field 62 whose check value does not match (wrong TMK or corruption).
    ``key_name`` is "PIK", "MAK" or "TDK"; ``offset`` is the KCV's byte in field 62."""

    def __init__(self, key_name: str, offset: int) -> None:
        self.key_name = key_name
        self.offset = offset
        super().__init__(f"{F62}: {key_name} check value does not match (at byte {offset})")


@dataclass(frozen=True, slots=True)
class WorkingKeys:
    """The clear working keys of one sign-on. The repr shows no key material."""

    pik: bytes = field(repr=False)
    mak: bytes = field(repr=False)
    tdk: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name, key in (("PIK", self.pik), ("MAK", self.mak), ("TDK", self.tdk)):
            if len(key) != KEY_BYTES:
                raise BadKeyError(f"{name} must be {KEY_BYTES} bytes, got {len(key)}")


_KEY_NAMES: Final = ("PIK", "MAK", "TDK")


def _need_tmk(tmk: bytes) -> None:
    if len(tmk) != KEY_BYTES:
        raise BadKeyError(f"TMK must be {KEY_BYTES} bytes, got {len(tmk)}")


def encode_working_keys(tmk: bytes, keys: WorkingKeys) -> bytes:
    """Field 62 of the 0810 (host side): PIK ‖ KCV ‖ MAK ‖ KCV ‖ TDK ‖ KCV, each key 3DES-ECB
    encrypted under the TMK, each KCV of the clear key."""
    _need_tmk(tmk)
    out = b"".join(
        des_ecb_encrypt(tmk, key) + key_check_value(key) for key in (keys.pik, keys.mak, keys.tdk)
    )
    assert len(out) == WORKING_KEYS_BYTES
    return out


def decode_working_keys(tmk: bytes, raw: bytes) -> WorkingKeys:
    """Field 62 of the 0810 (terminal side): decrypt under the TMK and check every KCV.

    Raises ``DecodeError`` if the field is not 60 bytes, ``KeyCheckError`` on a KCV mismatch.
    """
    _need_tmk(tmk)
    if len(raw) != WORKING_KEYS_BYTES:
        raise DecodeError(F62, 0, f"needs {WORKING_KEYS_BYTES} bytes, got {len(raw)}")
    clear: list[bytes] = []
    for index, name in enumerate(_KEY_NAMES):
        start = index * (KEY_BYTES + KCV_BYTES)
        key = des_ecb_decrypt(tmk, raw[start : start + KEY_BYTES])
        kcv = raw[start + KEY_BYTES : start + KEY_BYTES + KCV_BYTES]
        if not mac_equal(key_check_value(key), kcv):
            raise KeyCheckError(name, start + KEY_BYTES)
        clear.append(key)
    return WorkingKeys(pik=clear[0], mak=clear[1], tdk=clear[2])
