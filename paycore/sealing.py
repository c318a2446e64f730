"""Sealing small secrets at rest (AES-256-GCM), shared by every component's key vault.

Pure: the caller passes the nonce (from its random source) and a ``purpose`` that is bound to
the ciphertext as associated data (e.g. ``"tmk:T0000001"``), so a ciphertext copied to another
row or key name does not open. Blob format: ``01 || nonce (12) || ciphertext || tag (16)``.
Messages never contain secret material."""

from __future__ import annotations

import base64
import binascii
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paycore.errors import PaycoreError

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
FORMAT_V1: Final = b"\x01"
#: Limit on what is sealed: keys and key files, never bulk data.
PLAINTEXT_BYTES_MAX: Final = 4_096
PURPOSE_CHARS_MAX: Final = 128


class SealError(PaycoreError, ValueError):
    """A key of the wrong form, a secret out of bounds, or a blob that does not open."""


def parse_key(text: str) -> bytes:
    """A 32-byte sealing key from 64 hex digits or base64 text (surrounding spaces ignored)."""
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
        raise SealError(
            f"the vault key must be {KEY_BYTES} bytes as {2 * KEY_BYTES} hex digits or base64"
        )
    return raw


class Sealer:
    """Seals and opens small secrets bound to a purpose, under one key and one AAD prefix
    (each component its own prefix, so a blob of one never opens in another)."""

    __slots__ = ("_aad_prefix", "_aead")

    def __init__(self, key: bytes, aad_prefix: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise SealError(f"the vault key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self._aad_prefix = aad_prefix

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, plaintext: bytes, purpose: str, nonce: bytes) -> bytes:
        if not 0 < len(plaintext) <= PLAINTEXT_BYTES_MAX:
            raise SealError(f"{purpose}: secret must be 1..{PLAINTEXT_BYTES_MAX} bytes")
        if len(nonce) != NONCE_BYTES:
            raise SealError(f"nonce must be {NONCE_BYTES} bytes")
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, self._aad(purpose))

    def open(self, blob: bytes, purpose: str) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + TAG_BYTES + 1 or blob[:1] != FORMAT_V1:
            raise SealError(f"{purpose}: stored secret is damaged or of an unknown format")
        nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, self._aad(purpose))
        except InvalidTag:
            raise SealError(
                f"{purpose}: stored secret does not decrypt: the vault key is not the one it was "
                "stored under, or the value was moved from another row"
            ) from None

    def _aad(self, purpose: str) -> bytes:
        if not 0 < len(purpose) <= PURPOSE_CHARS_MAX or not purpose.isprintable():
            raise SealError(f"purpose must be 1..{PURPOSE_CHARS_MAX} printable characters")
        return self._aad_prefix + purpose.encode("utf-8")
