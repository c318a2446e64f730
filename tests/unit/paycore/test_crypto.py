"""paycore.crypto: block-cipher recipes. Published vectors are in test_vectors.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from paycore import crypto
from paycore.errors import BadKeyError, PaycoreError

K1 = bytes.fromhex("0123456789ABCDEF")
K2 = bytes.fromhex("FEDCBA9876543210")
K3 = bytes.fromhex("89ABCDEF01234567")
KEY16 = K1 + K2
BLOCK = bytes.fromhex("4E6F772069732074")


def des_cbc_mac_reference(key8: bytes, data: bytes) -> bytes:
    """CBC-MAC spelled out block by block with single-DES ECB (reference for the tests)."""
    chain = bytes(8)
    for i in range(0, len(data), 8):
        chain = crypto.des_ecb_encrypt(key8, crypto.xor(chain, data[i : i + 8]))
    return chain


# --- DES / 3DES ---------------------------------------------------------------------------


def test_des_key_expansion() -> None:
    data = BLOCK * 3
    assert crypto.des_ecb_encrypt(K1, data) == crypto.des_ecb_encrypt(K1 * 3, data)
    assert crypto.des_ecb_encrypt(KEY16, data) == crypto.des_ecb_encrypt(KEY16 + K1, data)
    # Two-key 3DES with equal halves is single DES (EDE collapses).
    assert crypto.des_ecb_encrypt(K1 + K1, data) == crypto.des_ecb_encrypt(K1, data)


def test_3des_is_ede() -> None:
    e1 = crypto.des_ecb_encrypt(K1, BLOCK)
    d2 = crypto.des_ecb_decrypt(K2, e1)
    assert crypto.des_ecb_encrypt(K1 + K2 + K3, BLOCK) == crypto.des_ecb_encrypt(K3, d2)
    assert crypto.des_ecb_encrypt(KEY16, BLOCK) == crypto.des_ecb_encrypt(K1, d2)


def test_des_ecb_is_per_block() -> None:
    two = crypto.des_ecb_encrypt(KEY16, BLOCK + K3)
    assert two == crypto.des_ecb_encrypt(KEY16, BLOCK) + crypto.des_ecb_encrypt(KEY16, K3)


@pytest.mark.parametrize("key", [K1, KEY16, KEY16 + K3])
def test_des_round_trips(key: bytes) -> None:
    data = bytes(range(40))
    iv = bytes.fromhex("1234567890ABCDEF")
    assert crypto.des_ecb_decrypt(key, crypto.des_ecb_encrypt(key, data)) == data
    assert crypto.des_cbc_decrypt(key, crypto.des_cbc_encrypt(key, data, iv), iv) == data
    assert crypto.des_cbc_decrypt(key, crypto.des_cbc_encrypt(key, data)) == data


def test_des_cbc_chains() -> None:
    p1, p2 = BLOCK, K3
    c = crypto.des_cbc_encrypt(KEY16, p1 + p2)
    c1 = crypto.des_ecb_encrypt(KEY16, p1)
    assert c[:8] == c1
    assert c[8:] == crypto.des_ecb_encrypt(KEY16, crypto.xor(c1, p2))
    iv = bytes.fromhex("1234567890ABCDEF")
    assert crypto.des_cbc_encrypt(KEY16, p1, iv) == crypto.des_ecb_encrypt(
        KEY16, crypto.xor(iv, p1)
    )


def test_empty_data() -> None:
    assert crypto.des_ecb_encrypt(KEY16, b"") == b""
    assert crypto.des_cbc_encrypt(KEY16, b"") == b""


DES_FUNCS: list[Callable[[bytes, bytes], bytes]] = [
    crypto.des_ecb_encrypt,
    crypto.des_ecb_decrypt,
    crypto.des_cbc_encrypt,
    crypto.des_cbc_decrypt,
]


@pytest.mark.parametrize("length", [0, 1, 7, 9, 15, 17, 32])
@pytest.mark.parametrize("func", DES_FUNCS)
def test_des_refuses_key_lengths(length: int, func: Callable[[bytes, bytes], bytes]) -> None:
    with pytest.raises(BadKeyError) as excinfo:
        func(bytes(range(1, length + 1)), bytes(8))
    assert str(excinfo.value) == f"DES key must be 8, 16 or 24 bytes, got {length}"
    assert isinstance(excinfo.value, PaycoreError)


@pytest.mark.parametrize("length", [0, 7, 32])
def test_kcv_des_refuses_key_lengths(length: int) -> None:
    with pytest.raises(BadKeyError, match=f"^DES key must be 8, 16 or 24 bytes, got {length}$"):
        crypto.kcv_des(bytes(length))


def test_key_errors_name_no_key_material() -> None:
    key = bytes.fromhex("0123456789ABCDEF0123")
    with pytest.raises(BadKeyError) as excinfo:
        crypto.des_ecb_encrypt(key, bytes(8))
    text = str(excinfo.value).upper()
    assert "0123456789" not in text
    assert key.hex().upper() not in text


@pytest.mark.parametrize("length", [1, 7, 9, 12, 15])
def test_des_refuses_partial_blocks(length: int) -> None:
    for func in DES_FUNCS:
        with pytest.raises(ValueError) as excinfo:
            func(KEY16, bytes(length))
        assert str(excinfo.value) == f"data length {length} is not a multiple of 8"


# --- AES ----------------------------------------------------------------------------------


def test_aes_fips197_c1() -> None:
    # FIPS-197 Appendix C.1 (AES-128).
    key = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    plain = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    assert crypto.aes_ecb_encrypt(key, plain) == bytes.fromhex("69C4E0D86A7B0430D8CDB78070B4C55A")


def test_aes_cbc_sp800_38a_first_block() -> None:
    # NIST SP 800-38A F.2.1 CBC-AES128.Encrypt, block #1.
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    iv = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    plain = bytes.fromhex("6BC1BEE22E409F96E93D7E117393172A")
    cipher = bytes.fromhex("7649ABAC8119B246CEE98E9B12E9197D")
    assert crypto.aes_cbc_encrypt(key, plain, iv) == cipher
    assert crypto.aes_cbc_decrypt(key, cipher, iv) == plain


@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_aes_cbc_round_trip_and_chaining(key_len: int) -> None:
    key = bytes(range(key_len))
    data = bytes(range(48))
    c = crypto.aes_cbc_encrypt(key, data)
    assert crypto.aes_cbc_decrypt(key, c) == data
    assert c[:16] == crypto.aes_ecb_encrypt(key, data[:16])
    assert c[16:32] == crypto.aes_ecb_encrypt(key, crypto.xor(c[:16], data[16:32]))


@pytest.mark.parametrize("length", [1, 8, 15, 17])
def test_aes_refuses_partial_blocks(length: int) -> None:
    key = bytes(16)
    for func in (crypto.aes_ecb_encrypt, crypto.aes_cbc_encrypt, crypto.aes_cbc_decrypt):
        with pytest.raises(ValueError) as excinfo:
            func(key, bytes(length))
        assert str(excinfo.value) == f"data length {length} is not a multiple of 16"


def test_aes_cmac_length_and_key_sensitivity() -> None:
    mac = crypto.aes_cmac(bytes(16), b"abc")
    assert len(mac) == 16
    assert mac != crypto.aes_cmac(bytes(15) + b"\x01", b"abc")
    assert mac != crypto.aes_cmac(bytes(16), b"abd")


# --- padding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_hex", "block", "padded_hex"),
    [
        ("", 8, "8000000000000000"),
        ("01", 8, "0180000000000000"),
        ("01020304050607", 8, "0102030405060780"),
        ("0102030405060708", 8, "01020304050607088000000000000000"),
        ("00", 8, "0080000000000000"),
        ("", 16, "80" + "00" * 15),
        ("0102030405060708", 16, "01020304050607088000000000000000"),
    ],
)
def test_pad80(data_hex: str, block: int, padded_hex: str) -> None:
    data, padded = bytes.fromhex(data_hex), bytes.fromhex(padded_hex)
    assert crypto.pad80(data, block) == padded
    assert crypto.unpad80(padded) == data


def test_pad80_default_block_is_8() -> None:
    assert crypto.pad80(b"\x11" * 9) == b"\x11" * 9 + b"\x80" + bytes(6)


@pytest.mark.parametrize("padded_hex", ["", "00", "0000000000000000", "0102", "8001", "80FF"])
def test_unpad80_refuses(padded_hex: str) -> None:
    with pytest.raises(ValueError, match=r"^no 80 padding marker$"):
        crypto.unpad80(bytes.fromhex(padded_hex))


def test_unpad80_keeps_data_zeros() -> None:
    assert crypto.unpad80(bytes.fromhex("0000800000")) == b"\x00\x00"


# --- MACs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 15, 16, 23, 40])
def test_pboc_des_mac_is_left_half_of_cbc_mac(length: int) -> None:
    data = bytes(range(0x40, 0x40 + length))
    padded = data + b"\x80" + bytes(-(length + 1) % 8)
    assert len(padded) % 8 == 0
    assert crypto.pboc_des_mac(K1, data) == des_cbc_mac_reference(K1, padded)[:4]


def test_pboc_des_mac_pads_a_whole_block_when_aligned() -> None:
    data = bytes(8)
    with_block = des_cbc_mac_reference(K1, data + bytes.fromhex("8000000000000000"))[:4]
    without_block = crypto.des_ecb_encrypt(K1, data)[:4]
    assert crypto.pboc_des_mac(K1, data) == with_block
    assert with_block != without_block


@pytest.mark.parametrize("length", [0, 7, 9, 16, 24])
def test_pboc_des_mac_refuses_key_lengths(length: int) -> None:
    with pytest.raises(BadKeyError) as excinfo:
        crypto.pboc_des_mac(bytes(length), b"")
    assert str(excinfo.value) == f"DES-MAC key must be 8 bytes, got {length}"


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 16, 30])
def test_retail_mac_structure(length: int) -> None:
    data = bytes(range(0x20, 0x20 + length))
    padded = crypto.pad80(data)
    cbc_last = des_cbc_mac_reference(K1, padded)
    expected = crypto.des_ecb_encrypt(K1, crypto.des_ecb_decrypt(K2, cbc_last))
    assert crypto.retail_mac(KEY16, data) == expected


def test_retail_mac_single_block_is_3des() -> None:
    data = b"\x01\x02\x03"
    assert crypto.retail_mac(KEY16, data) == crypto.des_ecb_encrypt(KEY16, crypto.pad80(data))


def test_retail_mac_equal_halves_is_des_cbc_mac() -> None:
    data = bytes(range(20))
    assert crypto.retail_mac(K1 + K1, data) == des_cbc_mac_reference(K1, crypto.pad80(data))


def test_retail_mac_iv() -> None:
    iv = bytes.fromhex("1122334455667788")
    data = b"\x01\x02\x03"
    first = crypto.des_ecb_encrypt(K1, crypto.xor(iv, crypto.pad80(data)))
    expected = crypto.des_ecb_encrypt(K1, crypto.des_ecb_decrypt(K2, first))
    assert crypto.retail_mac(KEY16, data, iv) == expected


@pytest.mark.parametrize("length", [8, 24])
def test_retail_mac_refuses_key_lengths(length: int) -> None:
    with pytest.raises(BadKeyError) as excinfo:
        crypto.retail_mac(bytes(length), b"")
    assert str(excinfo.value) == f"MAC algorithm 3 key must be 16 bytes, got {length}"


def test_des3_cbc_mac() -> None:
    data = bytes(range(13))
    padded = crypto.pad80(data)
    assert crypto.des3_cbc_mac(KEY16, data) == crypto.des_cbc_encrypt(KEY16, padded)[-8:]
    iv = bytes.fromhex("0102030405060708")
    assert crypto.des3_cbc_mac(KEY16, data, iv) == crypto.des_cbc_encrypt(KEY16, padded, iv)[-8:]
    assert crypto.des3_cbc_mac(K1 + K1, data) == des_cbc_mac_reference(K1, padded)


# --- KCV, xor, compare --------------------------------------------------------------------


@pytest.mark.parametrize("key", [K1, KEY16, KEY16 + K3])
def test_kcv_des(key: bytes) -> None:
    assert crypto.kcv_des(key) == crypto.des_ecb_encrypt(key, bytes(8))[:3]
    assert len(crypto.kcv_des(key)) == 3


@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_kcv_aes(key_len: int) -> None:
    key = bytes(range(key_len))
    assert crypto.kcv_aes(key) == crypto.aes_ecb_encrypt(key, b"\x01" * 16)[:3]
    assert crypto.kcv_aes(key) != crypto.aes_ecb_encrypt(key, bytes(16))[:3]


def test_xor() -> None:
    assert crypto.xor(b"\x0f\xf0", b"\xff\xff") == b"\xf0\x0f"
    assert crypto.xor(b"", b"") == b""
    with pytest.raises(ValueError, match=r"^xor of unequal lengths$"):
        crypto.xor(b"\x00", b"\x00\x00")


def test_mac_equal() -> None:
    assert crypto.mac_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x04")
    assert not crypto.mac_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x05")
    assert not crypto.mac_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03")
    assert crypto.mac_equal(b"", b"")
