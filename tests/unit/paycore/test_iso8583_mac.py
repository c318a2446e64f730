"""The CUP ECB MAC (field 64) and the sign-on working keys (field 62), host_protocol.md §3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paycore.crypto import des_ecb_decrypt, des_ecb_encrypt
from paycore.errors import BadKeyError, DecodeError
from paycore.iso8583.fields import decode_field60
from paycore.iso8583.mac import (
    KeyCheckError,
    WorkingKeys,
    cup_mac,
    decode_working_keys,
    encode_signed_message,
    encode_working_keys,
    key_check_value,
    mac_input,
    message_mac,
    verify_message_mac,
    xor_blocks,
)
from paycore.iso8583.message import FieldValue, decode_message, encode_message

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "host_protocol_vectors.json").read_text(
        encoding="utf-8"
    )
)


def records(group: str) -> list[dict[str, Any]]:
    found = VECTORS[group]
    assert found
    for record in found:
        assert record["source"] == "shared/design/host_protocol.md §3"
    return list(found)


MAC_VECTOR = records("mac")[0]
MAK = bytes.fromhex(MAC_VECTOR["mak"])
MAC_DATA = bytes.fromhex(MAC_VECTOR["message"])

TMK = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
KEYS = WorkingKeys(
    pik=bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
    mak=bytes.fromhex("1111111111111111AAAAAAAAAAAAAAAA"),
    tdk=bytes.fromhex("2222222222222222BBBBBBBBBBBBBBBB"),
)


# --- the public MAC check ---------------------------------------------------------------------


@pytest.mark.parametrize("vector", records("mac"), ids=lambda r: r["name"])
def test_mac_public_check(vector: dict[str, Any]) -> None:
    mak = bytes.fromhex(vector["mak"])
    data = bytes.fromhex(vector["message"])
    assert xor_blocks(data) == bytes.fromhex(vector["xor"])
    mac = cup_mac(mak, data)
    assert mac == vector["mac_text"].encode("ascii")
    assert mac == bytes.fromhex(vector["field64"])


def test_mac_vector_is_a_message_of_our_profile() -> None:
    """The vector is MTI..field 63 of an 0830 with bit 64 set: with its MAC appended it decodes,
    and ``mac_input`` / ``encode_signed_message`` rebuild exactly the vector's bytes."""
    signed = MAC_DATA + cup_mac(MAK, MAC_DATA)
    message = decode_message(signed)
    assert message.mti == "0830"
    assert sorted(message.fields) == [39, 41, 42, 60, 62, 64]
    assert message.text(39) == "00"
    assert decode_field60(message.text(60)).network_code == "372"
    assert message.binary(64) == b"5FE058DB"
    assert mac_input(signed) == MAC_DATA
    unsigned = {n: v for n, v in message.fields.items() if n != 64}
    assert encode_signed_message(MAK, "0830", unsigned) == signed
    assert verify_message_mac(MAK, signed)
    assert message_mac(MAK, signed) == b"5FE058DB"


def test_mac_steps_by_hand() -> None:
    """§3 step by step with the crypto primitives, to pin the recipe, not just the result."""
    expanded = b"1212B04E1227809C"
    left = des_ecb_encrypt(MAK, expanded[:8])
    final = des_ecb_encrypt(MAK, bytes(a ^ b for a, b in zip(left, expanded[8:], strict=True)))
    assert final.hex().upper()[:8] == "5FE058DB"


def test_xor_blocks_zero_pads() -> None:
    assert xor_blocks(b"") == bytes(8)
    assert xor_blocks(b"\x01") == b"\x01" + bytes(7)
    assert xor_blocks(bytes.fromhex("0102030405060708" + "01")) == bytes.fromhex("0002030405060708")


def test_mak_with_zero_second_half_is_single_des() -> None:
    single = bytes.fromhex("0123456789ABCDEF")
    assert cup_mac(single + bytes(8), b"data") == cup_mac(single, b"data")
    assert cup_mac(single + bytes(8), b"data") != cup_mac(single + b"\x01" + bytes(7), b"data")


def test_mac_key_length_is_checked_without_key_material() -> None:
    with pytest.raises(BadKeyError) as excinfo:
        cup_mac(bytes.fromhex("AABBCC"), b"x")
    assert str(excinfo.value) == "MAK must be 8 or 16 bytes, got 3"


# --- signing whole messages -------------------------------------------------------------------


def test_mac_input_is_the_message_without_field_64() -> None:
    fields: dict[int, FieldValue] = {3: "000000", 11: "000001", 64: b"XXXXXXXX"}
    raw = encode_message("0200", fields)
    assert mac_input(raw) == raw[:-8]
    assert mac_input(raw)[2:10] == bytes.fromhex("2020000000000001")  # bit 64 set


def test_mac_input_needs_field_64() -> None:
    raw = encode_message("0200", {3: "000000", 11: "000001"})
    with pytest.raises(DecodeError) as excinfo:
        mac_input(raw)
    assert str(excinfo.value) == "ISO 8583 bitmap: field 64 (MAC) is not present (at byte 9)"
    with pytest.raises(DecodeError, match=r"too short to carry field 64"):
        mac_input(b"\x02\x00")


def test_signed_message_verifies_and_detects_changes() -> None:
    fields: dict[int, FieldValue] = {3: "000000", 4: "000000000100", 11: "000123", 64: b"ignored!"}
    signed = encode_signed_message(MAK, "0200", fields)
    assert decode_message(signed).binary(64) == cup_mac(MAK, signed[:-8])
    assert verify_message_mac(MAK, signed)
    tampered = signed[:-9] + bytes([signed[-9] ^ 1]) + signed[-8:]
    assert not verify_message_mac(MAK, tampered)
    assert not verify_message_mac(bytes(15) + b"\x01", signed)


# --- field 62: working keys -------------------------------------------------------------------


@pytest.mark.parametrize("vector", records("sign_on"), ids=lambda r: r["name"])
def test_sign_on_public_check(vector: dict[str, Any]) -> None:
    key = des_ecb_decrypt(bytes.fromhex(vector["tmk"]), bytes.fromhex(vector["encrypted_key"]))
    assert key_check_value(key) == bytes.fromhex(vector["kcv"])


def test_public_check_as_field_62() -> None:
    """The public PIK with its KCV in the PIK slot of a field 62 decodes under the TMK."""
    vector = records("sign_on")[0]
    tmk = bytes.fromhex(vector["tmk"])
    pik_slot = bytes.fromhex(vector["encrypted_key"] + vector["kcv"])
    rest = encode_working_keys(tmk, KEYS)[20:]
    keys = decode_working_keys(tmk, pik_slot + rest)
    assert key_check_value(keys.pik) == bytes.fromhex("8D0A74B8")
    assert keys.mak == KEYS.mak and keys.tdk == KEYS.tdk


def test_working_keys_layout_and_round_trip() -> None:
    raw = encode_working_keys(TMK, KEYS)
    assert len(raw) == 60
    assert raw[0:16] == des_ecb_encrypt(TMK, KEYS.pik)
    assert raw[16:20] == des_ecb_encrypt(KEYS.pik, bytes(8))[:4]
    assert raw[20:36] == des_ecb_encrypt(TMK, KEYS.mak)
    assert raw[36:40] == des_ecb_encrypt(KEYS.mak, bytes(8))[:4]
    assert raw[40:56] == des_ecb_encrypt(TMK, KEYS.tdk)
    assert raw[56:60] == des_ecb_encrypt(KEYS.tdk, bytes(8))[:4]
    assert decode_working_keys(TMK, raw) == KEYS


@pytest.mark.parametrize(("name", "kcv_offset"), [("PIK", 16), ("MAK", 36), ("TDK", 56)])
def test_kcv_mismatch_names_the_key(name: str, kcv_offset: int) -> None:
    raw = bytearray(encode_working_keys(TMK, KEYS))
    raw[kcv_offset] ^= 0x01
    with pytest.raises(KeyCheckError) as excinfo:
        decode_working_keys(TMK, bytes(raw))
    assert excinfo.value.key_name == name
    assert str(excinfo.value) == (
        f"ISO 8583 field 62: {name} check value does not match (at byte {kcv_offset})"
    )


def test_wrong_tmk_fails_the_first_kcv() -> None:
    raw = encode_working_keys(TMK, KEYS)
    with pytest.raises(KeyCheckError) as excinfo:
        decode_working_keys(bytes(16), raw)
    assert excinfo.value.key_name == "PIK"


def test_field_62_length() -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_working_keys(TMK, bytes(59))
    assert str(excinfo.value) == "ISO 8583 field 62: needs 60 bytes, got 59 (at byte 0)"


def test_cup_style_single_length_mak() -> None:
    """A MAK(8) || 00 x 8: used as single DES, its KCV the single-DES one (our reading)."""
    keys = WorkingKeys(pik=KEYS.pik, mak=bytes.fromhex("0123456789ABCDEF") + bytes(8), tdk=KEYS.tdk)
    raw = encode_working_keys(TMK, keys)
    assert raw[36:40] == des_ecb_encrypt(bytes.fromhex("0123456789ABCDEF"), bytes(8))[:4]
    assert decode_working_keys(TMK, raw) == keys


def test_keys_never_in_reprs_or_errors() -> None:
    text = repr(KEYS)
    for key in (KEYS.pik, KEYS.mak, KEYS.tdk):
        assert key.hex() not in text.lower()
        assert repr(key) not in text
    assert text == "WorkingKeys()"
    with pytest.raises(BadKeyError) as excinfo:
        WorkingKeys(pik=KEYS.pik, mak=KEYS.mak[:15], tdk=KEYS.tdk)
    assert str(excinfo.value) == "MAK must be 16 bytes, got 15"
    with pytest.raises(BadKeyError, match=r"^TMK must be 16 bytes, got 8$"):
        encode_working_keys(TMK[:8], KEYS)
