"""Bearer tokens and roles of the OTA API (the pattern of the host's API, kept separate: the
components are independent).

Tokens JSON (``NFCPAY_OTA_API_TOKENS``, or the file ``NFCPAY_OTA_API_TOKENS_FILE`` names)::

    {"tokens": [{"name": "ota-desk", "role": "operator", "sha256": "<64 hex digits>"}]}

Only SHA-256 digests are stored; a presented token is hashed and compared with every entry
with ``hmac.compare_digest``. Roles: ``admin`` may do everything; ``operator`` reads (GET)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from ota.domain.errors import OtaError

TOKENS_ENV: Final = "NFCPAY_OTA_API_TOKENS"
TOKENS_FILE_ENV: Final = "NFCPAY_OTA_API_TOKENS_FILE"
TOKENS_MAX: Final = 1_000
TOKENS_BYTES_MAX: Final = 256 * 1024
TOKEN_CHARS_MAX: Final = 256
TOKEN_PREFIX: Final = "nfcpay_ota_"  # noqa: S105 - a prefix, not a secret
_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.@-]{0,63}")
_BEARER = re.compile(r"Bearer +([0-9A-Za-z._~+/-]{16,256}=*) *", re.IGNORECASE)
READ_METHODS: Final = frozenset({"GET", "HEAD"})


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"


class TokenFileError(OtaError):
    """A tokens document that cannot be used; never quotes a token."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    role: Role
    sha256: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if _NAME.fullmatch(self.name) is None:
            raise TokenFileError("token name must be 1..64 letters, digits, _ . @ or -")
        if len(self.sha256) != 32:
            raise TokenFileError(f"token {self.name}: sha256 must be 32 bytes")


def permits(role: Role, method: str) -> bool:
    return role is Role.ADMIN or method.upper() in READ_METHODS


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None or len(authorization) > TOKEN_CHARS_MAX + 16:
        return None
    match = _BEARER.fullmatch(authorization)
    return None if match is None else match.group(1)


def token_sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenAuth:
    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        if len(entries) > TOKENS_MAX:
            raise TokenFileError(f"at most {TOKENS_MAX} tokens")
        if len({e.name for e in entries}) != len(entries):
            raise TokenFileError("token names must be unique")
        self._entries = tuple(entries)

    def __repr__(self) -> str:
        return f"TokenAuth(<{len(self._entries)} tokens>)"

    def authenticate(self, token: str | None) -> TokenEntry | None:
        """Every entry is compared, in constant time each, whether or not one matched."""
        if token is None:
            return None
        digest = token_sha256(token)
        found: TokenEntry | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found

    @classmethod
    def from_json(cls, text: str, *, source: str = "tokens") -> TokenAuth:
        if len(text) > TOKENS_BYTES_MAX:
            raise TokenFileError(f"{source}: larger than {TOKENS_BYTES_MAX} bytes")
        try:
            obj: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TokenFileError(f"{source}: not valid JSON at character {exc.pos}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise TokenFileError(f'{source}: must be {{"tokens": [...]}}')
        entries = []
        for index, item in enumerate(obj["tokens"]):
            try:
                entries.append(
                    TokenEntry(str(item["name"]), Role(item["role"]), bytes.fromhex(item["sha256"]))
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise TokenFileError(f"{source}: tokens[{index}] is malformed ({exc})") from None
        return cls(entries)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TokenAuth:
        env = os.environ if environ is None else environ
        text = env.get(TOKENS_ENV)
        if text:
            return cls.from_json(text, source=TOKENS_ENV)
        path = env.get(TOKENS_FILE_ENV)
        if path:
            try:
                return cls.from_json(Path(path).read_text(encoding="utf-8"), source=path)
            except OSError as exc:
                raise TokenFileError(f"cannot read tokens file {path}: {exc.strerror}") from None
        raise TokenFileError(f"no API tokens: set {TOKENS_ENV} or {TOKENS_FILE_ENV}")


def mint_token(
    name: str, role: Role, random_bytes: Callable[[int], bytes] = os.urandom
) -> tuple[str, TokenEntry]:
    """A new token (show it once) and the entry to keep."""
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(random_bytes(32)).decode().rstrip("=")
    return token, TokenEntry(name, role, token_sha256(token))


def dump_tokens(entries: Sequence[TokenEntry]) -> str:
    items = [{"name": e.name, "role": e.role.value, "sha256": e.sha256.hex()} for e in entries]
    return json.dumps({"tokens": items}, indent=1) + "\n"
