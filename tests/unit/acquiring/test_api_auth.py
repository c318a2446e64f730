"""Tokens and roles of the admin API (acquiring.adapters.api_auth): the tokens file format,
hashing, constant-time lookup, the role policy, minting, and that no token text is ever kept."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from acquiring.adapters.api_auth import (
    TOKENS_ENV,
    TOKENS_FILE_ENV,
    Principal,
    Role,
    TokenAuth,
    TokenEntry,
    TokenFileError,
    add_token_to_file,
    bearer_token,
    dump_tokens,
    mint_token,
    parse_tokens,
    permits,
    token_sha256,
)

TOKEN = "nfcpay_correct-horse-battery-staple"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def doc(*entries: tuple[str, str, str]) -> str:
    return json.dumps({"tokens": [{"name": n, "role": r, "sha256": d} for n, r, d in entries]})


def counting(start: int = 0) -> Callable[[int], bytes]:
    state = [start]

    def random_bytes(n: int) -> bytes:
        state[0] += 1
        return bytes([state[0] % 256]) * n

    return random_bytes


# --- the file format -----------------------------------------------------------------------


def test_a_tokens_document_round_trips() -> None:
    text = doc(("ops", "operations", sha(TOKEN)), ("root", "admin", "AB" * 32))
    entries = parse_tokens(text)
    assert entries == [
        TokenEntry("ops", Role.OPERATIONS, bytes.fromhex(sha(TOKEN))),
        TokenEntry("root", Role.ADMIN, bytes.fromhex("AB" * 32)),
    ]
    assert parse_tokens(dump_tokens(entries)) == entries


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "tokens: not valid JSON at character 1"),
        ("[]", 'tokens: must be {"tokens": [...]}'),
        ('{"tokens": {}}', 'tokens: must be {"tokens": [...]}'),
        ('{"tokens": [], "extra": 1}', 'tokens: must be {"tokens": [...]}'),
        ('{"tokens": [1]}', "tokens: tokens[0] must have name, role and sha256"),
        (
            '{"tokens": [{"name": "a", "role": "admin"}]}',
            "tokens: tokens[0] must have name, role and sha256",
        ),
        (doc(("a", "root", "00" * 32)), "tokens: tokens[0].role must be one of admin, op"),
        (doc(("a", "admin", "00" * 31)), "tokens: tokens[0].sha256 must be 64 hex digits"),
        (doc(("a", "admin", "zz" * 32)), "tokens: tokens[0].sha256 must be 64 hex digits"),
        (doc(("", "admin", "00" * 32)), "tokens: tokens[0]: token name must be 1..64"),
        (doc(("a b", "admin", "00" * 32)), "tokens: tokens[0]: token name must be 1..64"),
    ],
)
def test_a_malformed_tokens_document_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(TokenFileError) as caught:
        parse_tokens(text)
    assert str(caught.value).startswith(message)


def test_names_and_tokens_are_unique() -> None:
    with pytest.raises(TokenFileError, match="token names must be unique"):
        TokenAuth.from_json(doc(("a", "admin", "00" * 32), ("a", "clearing", "11" * 32)))
    with pytest.raises(TokenFileError, match="the same token is listed twice"):
        TokenAuth.from_json(doc(("a", "admin", "00" * 32), ("b", "clearing", "00" * 32)))


def test_the_token_count_is_limited() -> None:
    many = [(f"n{i}", "clearing", f"{i:064x}") for i in range(1_001)]
    with pytest.raises(TokenFileError, match="at most 1000 tokens"):
        TokenAuth.from_json(doc(*many))


def test_the_digest_is_not_in_repr() -> None:
    entry = TokenEntry("ops", Role.OPERATIONS, token_sha256(TOKEN))
    assert "sha256" not in repr(entry) and sha(TOKEN) not in repr(entry)
    assert repr(TokenAuth([entry])) == "TokenAuth(<1 tokens>)"


# --- authentication ------------------------------------------------------------------------


def test_a_listed_token_authenticates_as_its_holder() -> None:
    auth = TokenAuth.from_json(doc(("ops", "operations", sha(TOKEN)), ("x", "admin", "00" * 32)))
    assert auth.authenticate(TOKEN) == Principal("ops", Role.OPERATIONS)
    assert auth.authenticate(TOKEN + "x") is None
    assert auth.authenticate(TOKEN.upper()) is None
    assert auth.authenticate("") is None
    assert auth.authenticate(None) is None


def test_every_entry_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = TokenAuth.from_json(
        doc(("a", "admin", sha(TOKEN)), ("b", "clearing", "11" * 32), ("c", "admin", "22" * 32))
    )
    assert auth.authenticate(TOKEN) == Principal("a", Role.ADMIN)
    assert len(calls) == 3  # no early exit on the first (matching) entry


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),
        (f"Bearer  {TOKEN} ", TOKEN),
        (None, None),
        ("", None),
        (TOKEN, None),
        (f"Basic {TOKEN}", None),
        ("Bearer ", None),
        ("Bearer short", None),
        (f"Bearer {TOKEN} extra", None),
        (f"Bearer {TOKEN}\x00", None),
        ("Bearer " + "a" * 300, None),
    ],
)
def test_the_bearer_header_is_parsed_strictly(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        (Role.ADMIN, "POST", "/v1/terminals", True),
        (Role.ADMIN, "DELETE", "/v1/cards/1000000000000001/hot-list", True),
        (Role.ADMIN, "GET", "/v1/transactions", True),
        (Role.OPERATIONS, "GET", "/v1/merchants", True),
        (Role.OPERATIONS, "GET", "/v1/issuers/ISS1", True),
        (Role.OPERATIONS, "POST", "/v1/merchants", False),
        (Role.OPERATIONS, "PATCH", "/v1/terminals/T0000001", False),
        (Role.OPERATIONS, "PUT", "/v1/cards/1000000000000001/hot-list", False),
        (Role.CLEARING, "GET", "/v1/transactions", True),
        (Role.CLEARING, "GET", "/v1/counters", True),
        (Role.CLEARING, "GET", "/v1/transactions/7", True),
        (Role.CLEARING, "GET", "/v1/transactionsx", False),
        (Role.CLEARING, "GET", "/v1/merchants", False),
        (Role.CLEARING, "POST", "/v1/transactions", False),
    ],
)
def test_the_role_policy(role: Role, method: str, path: str, allowed: bool) -> None:
    assert permits(role, method, path) is allowed


# --- minting -------------------------------------------------------------------------------


def test_a_minted_token_is_random_prefixed_and_stored_only_hashed() -> None:
    token, entry = mint_token("ops", Role.OPERATIONS, lambda n: b"\xfb" * n)
    assert token.startswith("nfcpay_") and len(token) == len("nfcpay_") + 43
    assert bearer_token(f"Bearer {token}") == token
    assert entry == TokenEntry("ops", Role.OPERATIONS, token_sha256(token))
    assert token not in json.dumps(entry.to_json())
    assert TokenAuth([entry]).authenticate(token) == Principal("ops", Role.OPERATIONS)


def test_tokens_are_added_to_a_file_that_keeps_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    random_bytes = counting()
    admin = add_token_to_file(path, "root", Role.ADMIN, random_bytes)
    clearing = add_token_to_file(path, "clearing-batch", Role.CLEARING, random_bytes)
    assert admin != clearing
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert admin not in text and clearing not in text
    auth = TokenAuth.from_file(path)
    assert auth.authenticate(admin) == Principal("root", Role.ADMIN)
    assert auth.authenticate(clearing) == Principal("clearing-batch", Role.CLEARING)
    with pytest.raises(TokenFileError, match="a token named root exists already"):
        add_token_to_file(path, "root", Role.OPERATIONS, random_bytes)
    assert TokenAuth.from_file(path).entries == auth.entries  # unchanged by the refusal
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]  # no temp file left


def test_loading_from_the_environment(tmp_path: Path) -> None:
    text = doc(("ops", "operations", sha(TOKEN)))
    assert TokenAuth.from_env({TOKENS_ENV: text}).authenticate(TOKEN) is not None
    path = tmp_path / "tokens.json"
    path.write_text(text)
    assert TokenAuth.from_env({TOKENS_FILE_ENV: str(path)}).authenticate(TOKEN) is not None
    with pytest.raises(TokenFileError, match=f"no API tokens: set {TOKENS_ENV}"):
        TokenAuth.from_env({})
    with pytest.raises(TokenFileError, match=f"{TOKENS_ENV}: not valid JSON"):
        TokenAuth.from_env({TOKENS_ENV: "nope"})
    with pytest.raises(TokenFileError, match="cannot read tokens file"):
        TokenAuth.from_env({TOKENS_FILE_ENV: str(tmp_path / "missing.json")})
