"""paycore.sealing: AES-256-GCM sealing of small secrets bound to a purpose."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycore.sealing import NONCE_BYTES, Sealer, SealError, parse_key

KEY = bytes(range(32))
NONCE = bytes(NONCE_BYTES)


def test_round_trip_and_format() -> None:
    sealer = Sealer(KEY, b"test/v1:")
    blob = sealer.seal(b"secret", "tmk:T1", NONCE)
    assert blob[:1] == b"\x01" and blob[1:13] == NONCE and b"secret" not in blob
    assert sealer.open(blob, "tmk:T1") == b"secret"


def test_purpose_and_prefix_are_bound() -> None:
    blob = Sealer(KEY, b"a:").seal(b"secret", "tmk:T1", NONCE)
    with pytest.raises(SealError, match="tmk:T2: stored secret does not decrypt"):
        Sealer(KEY, b"a:").open(blob, "tmk:T2")
    with pytest.raises(SealError, match="does not decrypt"):
        Sealer(KEY, b"b:").open(blob, "tmk:T1")
    with pytest.raises(SealError, match="does not decrypt"):
        Sealer(bytes(32), b"a:").open(blob, "tmk:T1")


@pytest.mark.parametrize("blob", [b"", b"\x01" + bytes(28), b"\x02" + bytes(40)])
def test_damaged_blobs(blob: bytes) -> None:
    with pytest.raises(SealError, match="damaged or of an unknown format"):
        Sealer(KEY, b"a:").open(blob, "x")


def test_bounds() -> None:
    sealer = Sealer(KEY, b"a:")
    with pytest.raises(SealError, match=r"1\.\.4096 bytes"):
        sealer.seal(b"", "x", NONCE)
    with pytest.raises(SealError, match="nonce must be 12 bytes"):
        sealer.seal(b"k", "x", bytes(8))
    with pytest.raises(SealError, match="printable"):
        sealer.seal(b"k", "", NONCE)
    with pytest.raises(SealError, match="32 bytes"):
        Sealer(bytes(16), b"a:")
    assert "<key hidden>" in repr(sealer)


def test_parse_key_hex_and_base64() -> None:
    assert parse_key(KEY.hex()) == KEY
    assert parse_key(" " + base64.b64encode(KEY).decode() + "\n") == KEY
    for bad in ("", "00" * 31, "zz" * 32, base64.b64encode(bytes(31)).decode()):
        with pytest.raises(SealError, match="32 bytes as 64 hex digits or base64"):
            parse_key(bad)


@given(st.binary(min_size=1, max_size=256), st.binary(min_size=12, max_size=12))
def test_any_secret_round_trips(secret: bytes, nonce: bytes) -> None:
    sealer = Sealer(KEY, b"p:")
    assert sealer.open(sealer.seal(secret, "k", nonce), "k") == secret
