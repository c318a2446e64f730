"""Bearer tokens and roles of the admin API.

Tokens file (or the environment variable ``NFCPAY_API_TOKENS`` holding the same JSON)::

    {"tokens": [{"name": "ops-desk", "role": "operations", "sha256": "<64 hex digits>"}]}

Only the SHA-256 of each token is stored; a presented token is hashed and compared against
every entry with ``hmac.compare_digest`` (all entries, no early exit). A token is shown once,
when it is minted (``mint_token`` / ``add_token_to_file``), and never again.

Roles (``permits``, the one place that decides):
- ``admin``: everything;
- ``operations``: read-only, every ``GET`` under ``/v1``;
- ``clearing``: ``GET`` of ``/v1/transactions`` and ``/v1/counters`` only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from acquiring.domain.errors import AcquiringError

TOKENS_ENV: Final = "NFCPAY_API_TOKENS"
TOKENS_FILE_ENV: Final = "NFCPAY_API_TOKENS_FILE"
#: Limits: entries in a tokens file, its size, a token's and a name's length.
TOKENS_MAX: Final = 1_000
TOKENS_FILE_BYTES_MAX: Final = 256 * 1024
TOKEN_CHARS_MAX: Final = 256
TOKEN_CHARS_MIN: Final = 16
TOKEN_RANDOM_BYTES: Final = 32
TOKEN_PREFIX: Final = "nfcpay_"  # noqa: S105 - a prefix, not a secret
NAME_CHARS_MAX: Final = 64
SHA256_HEX_CHARS: Final = 64

_NAME = re.compile(rf"[0-9A-Za-z][0-9A-Za-z_.@-]{{0,{NAME_CHARS_MAX - 1}}}")
_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")
#: RFC 6750 b64token.
_TOKEN = re.compile(rf"[0-9A-Za-z._~+/-]{{{TOKEN_CHARS_MIN},{TOKEN_CHARS_MAX}}}=*")
_BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)

READ_METHODS: Final = frozenset({"GET", "HEAD"})
API_PREFIX: Final = "/v1"
#: What the clearing role may read.
CLEARING_PATHS: Final = ("/v1/transactions", "/v1/counters")


class Role(StrEnum):
    ADMIN = "admin"
    OPERATIONS = "operations"
    CLEARING = "clearing"


class TokenFileError(AcquiringError):
    """A tokens file or NFCPAY_API_TOKENS that cannot be used; the message says where and why
    and never contains a token."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One stored token: who holds it, its role, and the SHA-256 of the token text."""

    name: str
    role: Role
    sha256: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or _NAME.fullmatch(self.name) is None:
            raise TokenFileError(
                f"token name must be 1..{NAME_CHARS_MAX} letters, digits, _ . @ or -"
            )
        if not isinstance(self.role, Role):
            raise TokenFileError(f"role must be one of {', '.join(r.value for r in Role)}")
        if not isinstance(self.sha256, bytes) or len(self.sha256) != 32:
            raise TokenFileError(f"token {self.name}: sha256 must be 32 bytes")

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.value, "sha256": self.sha256.hex()}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from."""

    name: str
    role: Role


def token_sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def permits(role: Role, method: str, path: str) -> bool:
    """Whether ``role`` may call ``method`` on ``path`` (a path under /v1)."""
    if role is Role.ADMIN:
        return True
    if method.upper() not in READ_METHODS:
        return False
    if role is Role.OPERATIONS:
        return True
    assert role is Role.CLEARING
    return any(path == p or path.startswith(p + "/") for p in CLEARING_PATHS)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when the header is
    missing or not of that form (or the token is not a plausible one)."""
    if authorization is None or len(authorization) > TOKEN_CHARS_MAX + 16:
        return None
    match = _BEARER.fullmatch(authorization)
    if match is None or _TOKEN.fullmatch(match.group(1)) is None:
        return None
    return match.group(1)


class TokenAuth:
    """The set of valid tokens (hashed)."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        if len(entries) > TOKENS_MAX:
            raise TokenFileError(f"at most {TOKENS_MAX} tokens")
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise TokenFileError("token names must be unique")
        digests = [e.sha256 for e in entries]
        if len(set(digests)) != len(digests):
            raise TokenFileError("the same token is listed twice")
        self._entries = tuple(entries)

    def __repr__(self) -> str:
        return f"TokenAuth(<{len(self._entries)} tokens>)"

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        return self._entries

    def authenticate(self, token: str | None) -> Principal | None:
        """The holder of ``token``, or None when it is missing or not one of ours. Every entry
        is compared, in constant time each, whether or not one matched."""
        if token is None:
            return None
        digest = token_sha256(token)
        found: TokenEntry | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return None if found is None else Principal(found.name, found.role)

    # --- loading --------------------------------------------------------------------------

    @classmethod
    def from_json(cls, text: str, *, source: str = "tokens") -> TokenAuth:
        return cls(parse_tokens(text, source=source))

    @classmethod
    def from_file(cls, path: Path) -> TokenAuth:
        return cls.from_json(_read_tokens_file(path), source=str(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TokenAuth:
        """From ``NFCPAY_API_TOKENS`` (the JSON itself), else the file ``NFCPAY_API_TOKENS_FILE``
        names; refuses to start without either."""
        env = os.environ if environ is None else environ
        text = env.get(TOKENS_ENV)
        if text:
            return cls.from_json(text, source=TOKENS_ENV)
        path = env.get(TOKENS_FILE_ENV)
        if path:
            return cls.from_file(Path(path))
        raise TokenFileError(
            f"no API tokens: set {TOKENS_ENV} (the tokens JSON) or {TOKENS_FILE_ENV} (its file); "
            "mint one with acquiring.adapters.api_auth.add_token_to_file"
        )


def parse_tokens(text: str, *, source: str = "tokens") -> list[TokenEntry]:
    """The entries of a tokens JSON document; ``TokenFileError`` naming ``source`` and the
    entry when it is malformed."""
    if len(text) > TOKENS_FILE_BYTES_MAX:
        raise TokenFileError(f"{source}: larger than {TOKENS_FILE_BYTES_MAX} bytes")
    try:
        obj: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise TokenFileError(f"{source}: not valid JSON{where}") from None
    if not isinstance(obj, dict) or set(obj) != {"tokens"} or not isinstance(obj["tokens"], list):
        raise TokenFileError(f'{source}: must be {{"tokens": [...]}}')
    entries: list[TokenEntry] = []
    for index, item in enumerate(obj["tokens"]):
        if not isinstance(item, dict) or set(item) != {"name", "role", "sha256"}:
            raise TokenFileError(f"{source}: tokens[{index}] must have name, role and sha256")
        name, role, digest = item["name"], item["role"], item["sha256"]
        if not isinstance(role, str) or role not in {r.value for r in Role}:
            raise TokenFileError(
                f"{source}: tokens[{index}].role must be one of {', '.join(r.value for r in Role)}"
            )
        if not isinstance(digest, str) or _SHA256_HEX.fullmatch(digest) is None:
            raise TokenFileError(
                f"{source}: tokens[{index}].sha256 must be {SHA256_HEX_CHARS} hex digits"
            )
        try:
            entries.append(TokenEntry(name, Role(role), bytes.fromhex(digest)))
        except TokenFileError as exc:
            raise TokenFileError(f"{source}: tokens[{index}]: {exc}") from None
    if len(entries) > TOKENS_MAX:
        raise TokenFileError(f"{source}: at most {TOKENS_MAX} tokens")
    return entries


def dump_tokens(entries: Sequence[TokenEntry]) -> str:
    return json.dumps({"tokens": [e.to_json() for e in entries]}, indent=1) + "\n"


# --- minting --------------------------------------------------------------------------------


def mint_token(
    name: str, role: Role, random_bytes: Callable[[int], bytes] = os.urandom
) -> tuple[str, TokenEntry]:
    """A new token and the entry to store for it. Show the token to its holder once; keep only
    the entry."""
    raw = random_bytes(TOKEN_RANDOM_BYTES)
    assert len(raw) == TOKEN_RANDOM_BYTES
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    return token, TokenEntry(name, Role(role), token_sha256(token))


def add_token_to_file(
    path: Path, name: str, role: Role, random_bytes: Callable[[int], bytes] = os.urandom
) -> str:
    """Mint a token for ``name`` with ``role``, add its hash to the tokens file at ``path``
    (created when missing, mode 0600, replaced atomically) and return the token, the only copy
    of it: the caller prints it once. A taken name is refused."""
    entries = parse_tokens(_read_tokens_file(path), source=str(path)) if path.exists() else []
    if any(e.name == name for e in entries):
        raise TokenFileError(f"{path}: a token named {name} exists already")
    token, entry = mint_token(name, role, random_bytes)
    text = dump_tokens([*entries, entry])
    TokenAuth(parse_tokens(text, source=str(path)))  # the limits hold for the new file
    _write_atomically(path, text)
    return token


def _read_tokens_file(path: Path) -> str:
    try:
        if path.stat().st_size > TOKENS_FILE_BYTES_MAX:
            raise TokenFileError(f"{path}: larger than {TOKENS_FILE_BYTES_MAX} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise TokenFileError(f"cannot read tokens file {path}: {reason}") from None


def _write_atomically(path: Path, text: str) -> None:
    folder = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o600)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
