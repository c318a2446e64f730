"""Data encryption keys (ota.md §1): how keys travel inside STORE DATA (DGI 8001) and PUT KEY.

Over SCP02 the session DEK in 3DES-ECB; over SCP03 the static DEK in AES-CBC with a zero IV;
over OTA key 3 of the SCP80 key set in that set's algorithm. Key component blocks follow GP
Card Spec v2.3.1 §11.8.2.3: a block that is a multiple of the cipher block is the encrypted
key alone (Table 11-71); otherwise its first byte is the clear key length and the key was
zero-padded before encryption (Table 11-70).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from paycore import crypto
from paycore.errors import BadKeyError, DecodeError, EncodeError

DekAlgorithm = Literal["3des-ecb", "aes-cbc"]
ALGORITHMS: tuple[DekAlgorithm, ...] = ("3des-ecb", "aes-cbc")
KEY_TYPE_DES = 0x80  # GP Card Spec v2.3 Table 11-16
KEY_TYPE_AES = 0x88
KCV_LEN = 3


@dataclass(frozen=True, slots=True)
class Dek:
    algorithm: DekAlgorithm
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise BadKeyError(f"unknown DEK algorithm {self.algorithm!r}")
        if self.algorithm == "3des-ecb" and len(self.key) not in (16, 24):
            raise BadKeyError("a 3DES DEK needs 16 or 24 bytes")
        if self.algorithm == "aes-cbc" and len(self.key) not in (16, 24, 32):
            raise BadKeyError("an AES DEK needs 16, 24 or 32 bytes")

    @property
    def block(self) -> int:
        return crypto.DES_BLOCK if self.algorithm == "3des-ecb" else crypto.AES_BLOCK

    def encrypt(self, data: bytes) -> bytes:
        if self.algorithm == "3des-ecb":
            return crypto.des_ecb_encrypt(self.key, data)
        return crypto.aes_cbc_encrypt(self.key, data)

    def decrypt(self, data: bytes) -> bytes:
        """Raises ValueError when the data is not whole blocks."""
        if self.algorithm == "3des-ecb":
            return crypto.des_ecb_decrypt(self.key, data)
        return crypto.aes_cbc_decrypt(self.key, data)


def encode_key_component(dek: Dek, key: bytes) -> bytes:
    if not key or len(key) > 0x7F:
        raise EncodeError(f"a key component of {len(key)} bytes cannot be sent")
    if len(key) % dek.block == 0:
        return dek.encrypt(key)
    return bytes([len(key)]) + dek.encrypt(key + bytes(-len(key) % dek.block))


def decode_key_component(dek: Dek, block: bytes) -> bytes:
    """The clear key of a key component block; DecodeError when its length is inconsistent."""
    if not block:
        raise DecodeError("key component block", 0, "empty")
    if len(block) % dek.block == 0:
        return dek.decrypt(block)
    length, body = block[0], block[1:]
    if not body or len(body) % dek.block or not 0 < length <= len(body):
        raise DecodeError("key component block", 0, f"clear length {length} does not fit")
    return dek.decrypt(body)[:length]


def kcv(key_type: int, key: bytes) -> bytes:
    """GP key check value: DES 3DES_K(00 x 8)[:3], AES AES_K(01 x 16)[:3]."""
    if key_type == KEY_TYPE_DES:
        return crypto.kcv_des(key)
    if key_type == KEY_TYPE_AES:
        return crypto.kcv_aes(key)
    raise BadKeyError(f"no key check value for key type {key_type:02X}")
