"""AES-GCM key vault: round trip, row binding, clear errors, no key material in messages."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from acquiring.adapters.keyvault import KeyVault, new_key_text, parse_key
from acquiring.domain.errors import KeyVaultError

KEY = bytes(range(32))
TMK = bytes.fromhex("CA5D92598DCA48CE8A4C76361A9269E9")


def test_round_trip_and_fresh_nonces() -> None:
    vault = KeyVault(KEY)
    first, second = vault.encrypt(TMK, "tmk:T0000001"), vault.encrypt(TMK, "tmk:T0000001")
    assert first != second  # random nonce
    assert TMK not in first
    assert vault.decrypt(first, "tmk:T0000001") == TMK
    assert vault.decrypt(second, "tmk:T0000001") == TMK


def test_a_ciphertext_moved_to_another_row_does_not_decrypt() -> None:
    vault = KeyVault(KEY)
    blob = vault.encrypt(TMK, "tmk:T0000001")
    with pytest.raises(KeyVaultError, match="tmk:T0000002: stored secret does not decrypt"):
        vault.decrypt(blob, "tmk:T0000002")


def test_wrong_vault_key_is_a_clear_error_without_key_bytes() -> None:
    blob = KeyVault(KEY).encrypt(TMK, "mak:T0000001")
    with pytest.raises(KeyVaultError) as info:
        KeyVault(bytes(32)).decrypt(blob, "mak:T0000001")
    message = str(info.value)
    assert "NFCPAY_KEY" in message
    assert KEY.hex() not in message.lower() and TMK.hex() not in message.lower()


def test_damaged_ciphertext() -> None:
    vault = KeyVault(KEY)
    blob = bytearray(vault.encrypt(TMK, "p"))
    blob[-1] ^= 1
    with pytest.raises(KeyVaultError, match="does not decrypt"):
        vault.decrypt(bytes(blob), "p")
    with pytest.raises(KeyVaultError, match="unknown format"):
        vault.decrypt(b"\x02" + bytes(40), "p")


def test_key_text_forms() -> None:
    assert parse_key(KEY.hex()) == KEY
    assert parse_key(KEY.hex().upper() + "\n") == KEY
    assert parse_key(base64.b64encode(KEY).decode()) == KEY
    assert len(parse_key(new_key_text())) == 32
    for bad in ["", "00" * 31, "zz" * 32, base64.b64encode(bytes(31)).decode()]:
        with pytest.raises(KeyVaultError, match="32 bytes"):
            parse_key(bad)


def test_from_env() -> None:
    assert (
        KeyVault.from_env({"NFCPAY_KEY": KEY.hex()}).decrypt(KeyVault(KEY).encrypt(TMK, "p"), "p")
        == TMK
    )
    with pytest.raises(KeyVaultError, match="no vault key: set NFCPAY_KEY"):
        KeyVault.from_env({})
    with pytest.raises(KeyVaultError, match="NFCPAY_KEY: the vault key must be 32 bytes"):
        KeyVault.from_env({"NFCPAY_KEY": "1234"})


def test_from_key_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.write_text(KEY.hex() + "\n")
    os.chmod(path, 0o600)
    assert (
        KeyVault.from_env({"NFCPAY_KEY_FILE": str(path)}).decrypt(
            KeyVault(KEY).encrypt(TMK, "p"), "p"
        )
        == TMK
    )
    os.chmod(path, 0o644)
    with pytest.raises(KeyVaultError, match="readable by others"):
        KeyVault.from_file(path)
    with pytest.raises(KeyVaultError, match="cannot read vault key file"):
        KeyVault.from_file(tmp_path / "missing.key")


def test_repr_hides_the_key() -> None:
    assert repr(KeyVault(KEY)) == "KeyVault(<key hidden>)"
    with pytest.raises(KeyVaultError):
        KeyVault(bytes(16))
