"""Encryption at rest for the host's keys (TMKs, MAKs, issuer master keys): AES-256-GCM.

The vault key is 32 bytes, from the environment variable ``NFCPAY_KEY`` (64 hex digits or
standard base64) or from a key file named by ``NFCPAY_KEY_FILE`` (the same text; the file must
not be readable by group or others). Each ciphertext is bound to its row by associated data
(``purpose``, e.g. ``"tmk:T0000001"``), so a ciphertext copied to another row does not decrypt.

Stored form: ``01 ‖ nonce (12) ‖ ciphertext ‖ tag (16)``; a fresh random nonce per encryption
(at most a few million encryptions per vault key in this system, far below the 2^32 bound of
random 96-bit nonces). Errors name the purpose and the cause, never key bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from acquiring.domain.errors import KeyVaultError
from paycore import sealing
from paycore.sealing import KEY_BYTES, NONCE_BYTES, SealError

KEY_ENV: Final = "NFCPAY_KEY"
KEY_FILE_ENV: Final = "NFCPAY_KEY_FILE"
KEY_FILE_BYTES_MAX: Final = 1_024
_AAD_PREFIX: Final = b"nfcpay/keyvault/v1:"
__all__ = ["KEY_BYTES", "NONCE_BYTES", "KeyVault", "new_key_text", "parse_key"]


def parse_key(text: str) -> bytes:
    """A 32-byte vault key from 64 hex digits or base64 text (paycore.sealing.parse_key)."""
    try:
        return sealing.parse_key(text)
    except SealError as exc:
        raise KeyVaultError(str(exc)) from None


def new_key_text() -> str:
    """A fresh random vault key as hex text (for ``NFCPAY_KEY``)."""
    return os.urandom(KEY_BYTES).hex()


class KeyVault:
    """Encrypts and decrypts small secrets bound to a purpose string: the key from the
    environment or a file, the nonce from os.urandom, the sealing in paycore.sealing."""

    __slots__ = ("_sealer",)

    def __init__(self, key: bytes) -> None:
        try:
            self._sealer = sealing.Sealer(key, _AAD_PREFIX)
        except SealError as exc:
            raise KeyVaultError(str(exc)) from None

    def __repr__(self) -> str:
        return "KeyVault(<key hidden>)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyVault:
        """From ``NFCPAY_KEY``, else from the file named by ``NFCPAY_KEY_FILE``."""
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
        try:
            return self._sealer.seal(plaintext, purpose, os.urandom(NONCE_BYTES))
        except SealError as exc:
            raise KeyVaultError(str(exc)) from None

    def decrypt(self, blob: bytes, purpose: str) -> bytes:
        try:
            return self._sealer.open(blob, purpose)
        except SealError as exc:
            raise KeyVaultError(f"{exc} ({KEY_ENV})") from None
