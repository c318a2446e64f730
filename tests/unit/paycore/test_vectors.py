"""Published test vectors (tests/vectors/*.json) checked against paycore.

Every record carries a ``source``; every value in a record is asserted by a test below, so a
typo in a vector file or a regression in paycore makes a test fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paycore import crypto, pboc

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors"

Record = dict[str, Any]


def load_vectors(file_name: str, group: str) -> list[Record]:
    """Records of one group of a vector file; each must name its source."""
    document = json.loads((VECTORS_DIR / file_name).read_text(encoding="utf-8"))
    records = document[group]
    assert isinstance(records, list)
    assert records, f"{file_name}: group {group!r} is empty"
    for record in records:
        assert isinstance(record, dict)
        assert isinstance(record.get("source"), str)
        assert record["source"], f"{file_name}: a record without a source"
    return records


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def num(text: str) -> int:
    return int(text, 16)


def ids(records: list[Record]) -> list[str]:
    return [str(r.get("name") or r["source"]) for r in records]


CARD_MD = "card_md_vectors.json"
RFC4493 = "rfc4493_aes_cmac.json"
DES_FILE = "des_tdes_published.json"

PURCHASES = load_vectors(CARD_MD, "purchase")
LOADS = load_vectors(CARD_MD, "load")
TAC_KEYS = load_vectors(CARD_MD, "tac_key")
PURCHASE_TACS = load_vectors(CARD_MD, "purchase_tac")
LOAD_TACS = load_vectors(CARD_MD, "load_tac")
DIVERSIFY = load_vectors(CARD_MD, "diversify")
CMAC_SUBKEYS = load_vectors(RFC4493, "subkeys")
CMACS = load_vectors(RFC4493, "cmac")
DES_ECB = load_vectors(DES_FILE, "ecb")
DES_CBC = load_vectors(DES_FILE, "cbc")


# --- the vector files themselves ----------------------------------------------------------


def test_card_md_files_hold_every_published_value() -> None:
    # card.md §3 publishes 1 purchase, 2 loads (one FMCOS), 2 regression TACs and 1 Div.
    assert len(PURCHASES) == 1
    assert len(LOADS) == 2
    assert len(PURCHASE_TACS) == 1
    assert len(LOAD_TACS) == 1
    assert len(DIVERSIFY) == 1
    assert sum(1 for r in LOADS if r["mac2"] is not None) == 1


def test_rfc4493_file_holds_the_four_examples() -> None:
    assert [len(h(r["message"])) for r in CMACS] == [0, 16, 40, 64]


@pytest.mark.parametrize("record", DES_ECB + DES_CBC, ids=ids(DES_ECB + DES_CBC))
def test_des_vector_ascii_matches_hex(record: Record) -> None:
    if record["plaintext_ascii"] is not None:
        assert record["plaintext_ascii"].encode("ascii") == h(record["plaintext"])


# --- card.md §3 ---------------------------------------------------------------------------


@pytest.mark.parametrize("v", PURCHASES, ids=ids(PURCHASES))
def test_purchase_session_key(v: Record) -> None:
    sespk = pboc.purchase_session_key(
        h(v["dpk"]), h(v["card_random"]), num(v["offline_counter"]), num(v["terminal_serial"])
    )
    assert sespk == h(v["sespk"])


@pytest.mark.parametrize("v", PURCHASES, ids=ids(PURCHASES))
def test_purchase_mac1_and_mac2(v: Record) -> None:
    purchase = pboc.Purchase(
        amount_fen=num(v["amount"]),
        terminal_id=h(v["terminal_id"]),
        terminal_serial=num(v["terminal_serial"]),
        date_bcd=h(v["date"]),
        time_bcd=h(v["time"]),
        tx_type=num(v["type"]),
    )
    sespk = h(v["sespk"])
    assert pboc.purchase_mac1(sespk, purchase) == h(v["mac1"])
    assert pboc.purchase_mac2(sespk, num(v["amount"])) == h(v["mac2"])


@pytest.mark.parametrize("v", PURCHASES, ids=ids(PURCHASES))
def test_purchase_macs_with_the_raw_des_mac(v: Record) -> None:
    # The field order of card.md §3, spelled out independently of pboc.Purchase.
    sespk = h(v["sespk"])
    mac1_data = v["amount"] + v["type"] + v["terminal_id"] + v["date"] + v["time"]
    assert crypto.pboc_des_mac(sespk, h(mac1_data)) == h(v["mac1"])
    assert crypto.pboc_des_mac(sespk, h(v["amount"])) == h(v["mac2"])


@pytest.mark.parametrize("v", LOADS, ids=ids(LOADS))
def test_load_session_key(v: Record) -> None:
    seslk = pboc.load_session_key(h(v["dlk"]), h(v["card_random"]), num(v["online_counter"]))
    assert seslk == h(v["seslk"])


@pytest.mark.parametrize("v", LOADS, ids=ids(LOADS))
def test_load_mac1(v: Record) -> None:
    load = pboc.Load(num(v["amount"]), h(v["terminal_id"]), num(v["type"]))
    assert pboc.load_mac1(h(v["seslk"]), num(v["balance"]), load) == h(v["mac1"])
    raw = v["balance"] + v["amount"] + v["type"] + v["terminal_id"]
    assert crypto.pboc_des_mac(h(v["seslk"]), h(raw)) == h(v["mac1"])


LOADS_WITH_MAC2 = [r for r in LOADS if r["mac2"] is not None]


@pytest.mark.parametrize("v", LOADS_WITH_MAC2, ids=ids(LOADS_WITH_MAC2))
def test_load_mac2(v: Record) -> None:
    load = pboc.Load(num(v["amount"]), h(v["terminal_id"]), num(v["type"]))
    mac2 = pboc.load_mac2(h(v["seslk"]), load, h(v["date"]), h(v["time"]))
    assert mac2 == h(v["mac2"])
    raw = v["amount"] + v["type"] + v["terminal_id"] + v["date"] + v["time"]
    assert crypto.pboc_des_mac(h(v["seslk"]), h(raw)) == h(v["mac2"])


@pytest.mark.parametrize("v", TAC_KEYS, ids=ids(TAC_KEYS))
def test_tac_key(v: Record) -> None:
    assert pboc.tac_key(h(v["dtk"])) == h(v["tac_key"])


@pytest.mark.parametrize("v", PURCHASE_TACS, ids=ids(PURCHASE_TACS))
def test_purchase_tac(v: Record) -> None:
    purchase = pboc.Purchase(
        amount_fen=num(v["amount"]),
        terminal_id=h(v["terminal_id"]),
        terminal_serial=num(v["terminal_serial"]),
        date_bcd=h(v["date"]),
        time_bcd=h(v["time"]),
        tx_type=num(v["type"]),
    )
    assert pboc.purchase_tac(h(v["dtk"]), purchase) == h(v["tac"])


@pytest.mark.parametrize("v", LOAD_TACS, ids=ids(LOAD_TACS))
def test_load_tac(v: Record) -> None:
    load = pboc.Load(num(v["amount"]), h(v["terminal_id"]), num(v["type"]))
    tac = pboc.load_tac(
        h(v["dtk"]),
        num(v["new_balance"]),
        num(v["online_counter"]),
        load,
        h(v["date"]),
        h(v["time"]),
    )
    assert tac == h(v["tac"])


@pytest.mark.parametrize("v", DIVERSIFY, ids=ids(DIVERSIFY))
def test_diversify(v: Record) -> None:
    assert pboc.diversify(h(v["master"]), h(v["factor"])) == h(v["key"])
    assert pboc.card_key(h(v["master"]), h(v["factor"])) == h(v["key"])


# --- RFC 4493 -----------------------------------------------------------------------------


def _cmac_double(block: bytes) -> bytes:
    """Multiplication by x in GF(2^128), RFC 4493 §2.3 (reference for the subkey vectors)."""
    shifted = int.from_bytes(block, "big") << 1
    if shifted >> 128:
        shifted = (shifted & ((1 << 128) - 1)) ^ 0x87
    return shifted.to_bytes(16, "big")


@pytest.mark.parametrize("v", CMAC_SUBKEYS, ids=ids(CMAC_SUBKEYS))
def test_rfc4493_subkeys(v: Record) -> None:
    aes_zero = crypto.aes_ecb_encrypt(h(v["key"]), bytes(16))
    assert aes_zero == h(v["aes_zero"])
    assert _cmac_double(aes_zero) == h(v["k1"])
    assert _cmac_double(h(v["k1"])) == h(v["k2"])


@pytest.mark.parametrize("v", CMACS, ids=ids(CMACS))
def test_rfc4493_aes_cmac(v: Record) -> None:
    assert crypto.aes_cmac(h(v["key"]), h(v["message"])) == h(v["mac"])


# --- DES / TDEA ---------------------------------------------------------------------------


@pytest.mark.parametrize("v", DES_ECB, ids=ids(DES_ECB))
def test_des_ecb_published(v: Record) -> None:
    assert crypto.des_ecb_encrypt(h(v["key"]), h(v["plaintext"])) == h(v["ciphertext"])
    assert crypto.des_ecb_decrypt(h(v["key"]), h(v["ciphertext"])) == h(v["plaintext"])


@pytest.mark.parametrize("v", DES_CBC, ids=ids(DES_CBC))
def test_des_cbc_published(v: Record) -> None:
    key, iv = h(v["key"]), h(v["iv"])
    assert crypto.des_cbc_encrypt(key, h(v["plaintext"]), iv) == h(v["ciphertext"])
    assert crypto.des_cbc_decrypt(key, h(v["ciphertext"]), iv) == h(v["plaintext"])
