"""Encryption at rest for the OTA server's SIM keys (SCP80 KIc, KID, DEK): AES-256-GCM.

The vault key is 32 bytes, from the environment variable ``NFCPAY_OTA_KEY`` (64 hex digits or
standard base64) or from a key file named by ``NFCPAY_OTA_KEY_FILE`` (the same text; the file must
not be readable by group or others). Each ciphertext is bound to its row by associated data
(``purpose``: ICCID and key name, e.g. ``"sim:8986...:kic"``), so a ciphertext copied
to another row or key does not decrypt. (A copy of acquiring's vault: components are independent.)

Stored form: ``01 ‖ nonce (12) ‖ ciphertext ‖ tag (16)``; a fresh random nonce per encryption
(at most a few million encryptions per vault key in this system, far below the 2^32 bound of
random 96-bit nonces). Errors name the purpose and the cause, never key bytes.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ota.domain.errors import KeyVaultError

KEY_ENV: Final = "NFCPAY_OTA_KEY"
KEY_FILE_ENV: Final = "NFCPAY_OTA_KEY_FILE"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
FORMAT_V1: Final = b"\x01"
#: Limit on what the vault encrypts: keys and key files, never bulk data.
PLAINTEXT_BYTES_MAX: Final = 4_096
KEY_FILE_BYTES_MAX: Final = 1_024
_AAD_PREFIX: Final = b"nfcpay/ota-keyvault/v1:"
PURPOSE_CHARS_MAX: Final = 128


def parse_key(text: str) -> bytes:
    """A 32-byte vault key from 64 hex digits or base64 text (surrounding spaces ignored)."""
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 2 * KEY_BYTES:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != KEY_BYTES:
        raise KeyVaultError(
            f"the vault key must be {KEY_BYTES} bytes as {2 * KEY_BYTES} hex digits or base64"
        )
    return raw


def new_key_text() -> str:
    """A fresh random vault key as hex text (for ``NFCPAY_OTA_KEY``)."""
    return os.urandom(KEY_BYTES).hex()


class KeyVault:
    """Encrypts and decrypts small secrets bound to a purpose string."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise KeyVaultError(f"the vault key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "KeyVault(<key hidden>)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyVault:
        """From ``NFCPAY_OTA_KEY``, else from the file named by ``NFCPAY_OTA_KEY_FILE``."""
        env = os.environ if environ is None else environ
        text = env.get(KEY_ENV)
        if text:
            try:
                return cls(parse_key(text))
            except KeyVaultError as exc:
                raise KeyVaultError(f"{KEY_ENV}: {exc}") from None
        path = env.get(KEY_FILE_ENV)
        if path:
            return cls.from_file(Path(path))
        raise KeyVaultError(
            f"no vault key: set {KEY_ENV} (64 hex digits, e.g. from `openssl rand -hex 32`) "
            f"or {KEY_FILE_ENV} (a file holding it, mode 0600)"
        )

    @classmethod
    def from_file(cls, path: Path) -> KeyVault:
        try:
            info = path.stat()
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyVaultError(f"vault key file {path} is readable by others: chmod 600 it")
            if info.st_size > KEY_FILE_BYTES_MAX:
                raise KeyVaultError(f"vault key file {path} is too large to be a key")
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
            raise KeyVaultError(f"cannot read vault key file {path}: {reason}") from None
        try:
            return cls(parse_key(text))
        except KeyVaultError as exc:
            raise KeyVaultError(f"vault key file {path}: {exc}") from None

    def encrypt(self, plaintext: bytes, purpose: str) -> bytes:
        if not 0 < len(plaintext) <= PLAINTEXT_BYTES_MAX:
            raise KeyVaultError(f"{purpose}: secret must be 1..{PLAINTEXT_BYTES_MAX} bytes")
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, _aad(purpose))

    def decrypt(self, blob: bytes, purpose: str) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + TAG_BYTES + 1 or blob[:1] != FORMAT_V1:
            raise KeyVaultError(f"{purpose}: stored secret is damaged or of an unknown format")
        nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, _aad(purpose))
        except InvalidTag:
            raise KeyVaultError(
                f"{purpose}: stored secret does not decrypt: the vault key ({KEY_ENV}) is not "
                "the one it was stored under, or the value was moved from another row"
            ) from None


def _aad(purpose: str) -> bytes:
    if not 0 < len(purpose) <= PURPOSE_CHARS_MAX or not purpose.isprintable():
        raise KeyVaultError("purpose must be 1..128 printable characters")
    return _AAD_PREFIX + purpose.encode("utf-8")
