"""Block-cipher recipes on top of ``cryptography`` (card.md §3, ota.md). Pure functions.

Keys are bytes; errors never include key material. DES keys of 8 bytes (single DES) and 16
bytes (two-key 3DES, K1 K2 K1) are expanded to the 24-byte form before they reach the library.
"""

from __future__ import annotations

import functools
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES

from paycore.errors import BadKeyError

DES_BLOCK = 8
_CIPHER_CACHE_MAX = 256
AES_BLOCK = 16


@functools.lru_cache(maxsize=_CIPHER_CACHE_MAX)
def _des_algorithm(key24: bytes) -> TripleDES:
    """Key schedules are reused for long-lived keys (card and master keys); bounded cache."""
    return TripleDES(key24)


def _des_key24(key: bytes) -> bytes:
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise BadKeyError(f"DES key must be 8, 16 or 24 bytes, got {len(key)}")


def _check_blocks(data: bytes, block: int) -> None:
    if len(data) % block:
        raise ValueError(f"data length {len(data)} is not a multiple of {block}")


def des_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """DES (8-byte key) or 3DES (16/24-byte key) in ECB mode."""
    _check_blocks(data, DES_BLOCK)
    enc = Cipher(_des_algorithm(_des_key24(key)), modes.ECB()).encryptor()  # noqa: S305 - protocol
    return enc.update(data) + enc.finalize()


def des_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, DES_BLOCK)
    dec = Cipher(_des_algorithm(_des_key24(key)), modes.ECB()).decryptor()  # noqa: S305 - protocol
    return dec.update(data) + dec.finalize()


def des_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(DES_BLOCK)) -> bytes:
    _check_blocks(data, DES_BLOCK)
    enc = Cipher(_des_algorithm(_des_key24(key)), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def des_cbc_decrypt(key: bytes, data: bytes, iv: bytes = bytes(DES_BLOCK)) -> bytes:
    _check_blocks(data, DES_BLOCK)
    dec = Cipher(_des_algorithm(_des_key24(key)), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, AES_BLOCK)
    enc = Cipher(AES(key), modes.ECB()).encryptor()  # noqa: S305 - protocol
    return enc.update(data) + enc.finalize()


def aes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(AES_BLOCK)) -> bytes:
    _check_blocks(data, AES_BLOCK)
    enc = Cipher(AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = bytes(AES_BLOCK)) -> bytes:
    _check_blocks(data, AES_BLOCK)
    dec = Cipher(AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def pad80(data: bytes, block: int = DES_BLOCK) -> bytes:
    """ISO/IEC 9797-1 padding method 2: always append 80, then 00 to a whole block."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block)


def unpad80(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise ValueError("no 80 padding marker")
    return stripped[:-1]


def pboc_des_mac(key8: bytes, data: bytes) -> bytes:
    """PBOC DES-MAC (card.md §3): single-DES CBC-MAC, IV 0, pad 80 00.., left 4 bytes."""
    if len(key8) != 8:
        raise BadKeyError(f"DES-MAC key must be 8 bytes, got {len(key8)}")
    return des_cbc_encrypt(key8, pad80(data))[-DES_BLOCK:][:4]


def retail_mac(key16: bytes, data: bytes, iv: bytes = bytes(DES_BLOCK)) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (retail MAC), padding method 2, full 8-byte result.

    Single-DES CBC with K1 over all blocks, then decrypt with K2 and encrypt with K1 on the last.
    """
    if len(key16) != 16:
        raise BadKeyError(f"MAC algorithm 3 key must be 16 bytes, got {len(key16)}")
    k1, k2 = key16[:8], key16[8:]
    last = des_cbc_encrypt(k1, pad80(data), iv)[-DES_BLOCK:]
    return des_ecb_encrypt(k1, des_ecb_decrypt(k2, last))


def des3_cbc_mac(key16: bytes, data: bytes, iv: bytes = bytes(DES_BLOCK)) -> bytes:
    """Full 3DES CBC-MAC with padding method 2 (GlobalPlatform SCP02 card cryptograms)."""
    return des_cbc_encrypt(key16, pad80(data), iv)[-DES_BLOCK:]


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B / RFC 4493), full 16 bytes."""
    mac = cmac.CMAC(AES(key))
    mac.update(data)
    return mac.finalize()


def kcv_des(key: bytes) -> bytes:
    """Key check value of a DES/3DES key: 3DES_K(00 x 8), first 3 bytes."""
    return des_ecb_encrypt(key, bytes(DES_BLOCK))[:3]


def kcv_aes(key: bytes) -> bytes:
    """Key check value of an AES key as GlobalPlatform SCP03 uses it: AES_K(01 x 16)[:3]."""
    return aes_ecb_encrypt(key, b"\x01" * AES_BLOCK)[:3]


def xor(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError("xor of unequal lengths")
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def mac_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison for MACs, cryptograms and KCVs."""
    return hmac.compare_digest(a, b)
