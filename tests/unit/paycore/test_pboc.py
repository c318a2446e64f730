"""paycore.pboc: the purse recipes of card.md §3. Published values are in test_vectors.py."""

from __future__ import annotations

import dataclasses

import pytest

from paycore import pboc
from paycore.crypto import des_ecb_encrypt, pboc_des_mac
from paycore.errors import BadKeyError

MASTER = bytes.fromhex("11223344556677888877665544332211")
ASN = bytes.fromhex("0000000000000001")
F_ISSUER = bytes.fromhex("A1A2A3A4A5A6A7A8")
DTK = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
SESSION = bytes.fromhex("003238ABC57659DD")
TERMINAL = bytes.fromhex("001122334455")
DATE = bytes.fromhex("20120229")
TIME = bytes.fromhex("135100")


def test_transaction_types() -> None:
    # card.md §2: 01 ED load, 02 EP load, 05 ED purchase, 06 EP purchase.
    assert pboc.TYPE_ED_LOAD == 0x01
    assert pboc.TYPE_EP_LOAD == 0x02
    assert pboc.TYPE_ED_PURCHASE == 0x05
    assert pboc.TYPE_EP_PURCHASE == 0x06


# --- diversification ----------------------------------------------------------------------


def test_diversify_halves() -> None:
    key = pboc.diversify(MASTER, ASN)
    assert len(key) == 16
    assert key[:8] == des_ecb_encrypt(MASTER, ASN)
    assert key[8:] == des_ecb_encrypt(MASTER, bytes(b ^ 0xFF for b in ASN))


def test_card_key_one_level() -> None:
    assert pboc.card_key(MASTER, ASN) == pboc.diversify(MASTER, ASN)
    assert pboc.card_key(MASTER, ASN, None) == pboc.diversify(MASTER, ASN)


def test_card_key_two_levels_upper_factor_first() -> None:
    two_level = pboc.card_key(MASTER, ASN, F_ISSUER)
    assert two_level == pboc.diversify(pboc.diversify(MASTER, F_ISSUER), ASN)
    assert two_level != pboc.diversify(pboc.diversify(MASTER, ASN), F_ISSUER)
    assert two_level != pboc.card_key(MASTER, ASN)


@pytest.mark.parametrize("length", [0, 8, 15, 17, 24])
def test_diversify_refuses_master_lengths(length: int) -> None:
    with pytest.raises(BadKeyError) as excinfo:
        pboc.diversify(bytes(length), ASN)
    assert str(excinfo.value) == f"master key must be 16 bytes, got {length}"


@pytest.mark.parametrize("length", [0, 7, 9, 16])
def test_diversify_refuses_factor_lengths(length: int) -> None:
    with pytest.raises(ValueError) as excinfo:
        pboc.diversify(MASTER, bytes(length))
    assert str(excinfo.value) == f"diversification factor must be 8 bytes, got {length}"


def test_card_key_refuses_bad_issuer_factor() -> None:
    with pytest.raises(ValueError, match=r"^diversification factor must be 8 bytes, got 4$"):
        pboc.card_key(MASTER, ASN, bytes(4))


# --- session keys -------------------------------------------------------------------------


def test_purchase_session_key_block() -> None:
    random4 = bytes.fromhex("DEADBEEF")
    sespk = pboc.purchase_session_key(MASTER, random4, 0x0102, 0x0A0B0C0D)
    assert sespk == des_ecb_encrypt(MASTER, random4 + bytes.fromhex("0102") + bytes.fromhex("0C0D"))
    assert len(sespk) == 8


def test_purchase_session_key_uses_low_two_bytes_of_serial() -> None:
    random4 = bytes.fromhex("11223344")
    low = pboc.purchase_session_key(MASTER, random4, 0, 0x0001)
    assert pboc.purchase_session_key(MASTER, random4, 0, 0x12340001) == low
    assert pboc.purchase_session_key(MASTER, random4, 0, 0x0002) != low
    assert pboc.purchase_session_key(MASTER, random4, 1, 0x0001) != low


def test_load_session_key_block() -> None:
    random4 = bytes.fromhex("F9CABA91")
    seslk = pboc.load_session_key(MASTER, random4, 0xFFFE)
    assert seslk == des_ecb_encrypt(MASTER, random4 + bytes.fromhex("FFFE8000"))
    assert len(seslk) == 8


@pytest.mark.parametrize("length", [0, 3, 5, 8])
def test_session_keys_refuse_random_lengths(length: int) -> None:
    message = f"^card random must be 4 bytes, got {length}$"
    with pytest.raises(ValueError, match=message):
        pboc.purchase_session_key(MASTER, bytes(length), 0, 1)
    with pytest.raises(ValueError, match=message):
        pboc.load_session_key(MASTER, bytes(length), 0)


# --- TAC key ------------------------------------------------------------------------------


def test_tac_key_xors_halves() -> None:
    assert pboc.tac_key(DTK) == bytes.fromhex("8888888888888888")
    assert pboc.tac_key(MASTER) == bytes.fromhex("9955551111555599")
    assert pboc.tac_key(bytes(8) + b"\x01" * 8) == b"\x01" * 8


@pytest.mark.parametrize("length", [0, 8, 24])
def test_tac_key_refuses_lengths(length: int) -> None:
    with pytest.raises(BadKeyError) as excinfo:
        pboc.tac_key(bytes(length))
    assert str(excinfo.value) == f"TAC key must be 16 bytes, got {length}"


# --- purchase MACs and TAC ----------------------------------------------------------------


def make_purchase(**changes: object) -> pboc.Purchase:
    purchase = pboc.Purchase(
        amount_fen=0x1000,
        terminal_id=TERMINAL,
        terminal_serial=0x00000001,
        date_bcd=DATE,
        time_bcd=TIME,
    )
    return dataclasses.replace(purchase, **changes)  # type: ignore[arg-type]


def test_purchase_defaults_to_ep() -> None:
    assert make_purchase().tx_type == pboc.TYPE_EP_PURCHASE


def test_purchase_mac1_fields() -> None:
    p = make_purchase(amount_fen=0x01020304, tx_type=pboc.TYPE_ED_PURCHASE)
    data = bytes.fromhex("0102030405") + TERMINAL + DATE + TIME
    assert pboc.purchase_mac1(SESSION, p) == pboc_des_mac(SESSION, data)


def test_purchase_mac1_ignores_the_serial() -> None:
    assert pboc.purchase_mac1(SESSION, make_purchase(terminal_serial=7)) == pboc.purchase_mac1(
        SESSION, make_purchase()
    )


def test_purchase_mac2_fields() -> None:
    assert pboc.purchase_mac2(SESSION, 0x01020304) == pboc_des_mac(
        SESSION, bytes.fromhex("01020304")
    )


def test_purchase_tac_fields() -> None:
    p = make_purchase(terminal_serial=0x0A0B0C0D)
    data = bytes.fromhex("0000100006") + TERMINAL + bytes.fromhex("0A0B0C0D") + DATE + TIME
    assert pboc.purchase_tac(DTK, p) == pboc_des_mac(bytes.fromhex("8888888888888888"), data)


@pytest.mark.parametrize(
    "change",
    [
        {"amount_fen": 0x1001},
        {"terminal_id": bytes.fromhex("001122334456")},
        {"terminal_serial": 2},
        {"date_bcd": bytes.fromhex("20120301")},
        {"time_bcd": bytes.fromhex("135101")},
        {"tx_type": pboc.TYPE_ED_PURCHASE},
    ],
)
def test_purchase_tac_covers_every_field(change: dict[str, object]) -> None:
    assert pboc.purchase_tac(DTK, make_purchase(**change)) != pboc.purchase_tac(
        DTK, make_purchase()
    )


def test_purchase_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_purchase().amount_fen = 1  # type: ignore[misc]


def test_purchase_tac_refuses_short_dtk() -> None:
    with pytest.raises(BadKeyError, match=r"^TAC key must be 16 bytes, got 8$"):
        pboc.purchase_tac(bytes(8), make_purchase())


def test_purchase_mac_refuses_16_byte_session_key() -> None:
    with pytest.raises(BadKeyError, match=r"^DES-MAC key must be 8 bytes, got 16$"):
        pboc.purchase_mac1(MASTER, make_purchase())


# --- load MACs and TAC --------------------------------------------------------------------


def test_load_defaults_to_ep() -> None:
    assert pboc.Load(1, TERMINAL).tx_type == pboc.TYPE_EP_LOAD


def test_load_mac1_fields() -> None:
    ld = pboc.Load(0x00002000, TERMINAL, pboc.TYPE_ED_LOAD)
    data = bytes.fromhex("0000FFFF0000200001") + TERMINAL
    assert pboc.load_mac1(SESSION, 0xFFFF, ld) == pboc_des_mac(SESSION, data)


def test_load_mac2_fields() -> None:
    ld = pboc.Load(0x00002000, TERMINAL)
    data = bytes.fromhex("0000200002") + TERMINAL + DATE + TIME
    assert pboc.load_mac2(SESSION, ld, DATE, TIME) == pboc_des_mac(SESSION, data)


def test_load_tac_fields() -> None:
    ld = pboc.Load(0x00002000, TERMINAL)
    data = bytes.fromhex("0000300000070000200002") + TERMINAL + DATE + TIME
    tac = pboc.load_tac(DTK, 0x3000, 7, ld, DATE, TIME)
    assert tac == pboc_des_mac(bytes.fromhex("8888888888888888"), data)
    assert tac != pboc.load_tac(DTK, 0x3000, 8, ld, DATE, TIME)
    assert tac != pboc.load_tac(DTK, 0x3001, 7, ld, DATE, TIME)


def test_macs_are_four_bytes() -> None:
    ld = pboc.Load(1, TERMINAL)
    p = make_purchase()
    assert len(pboc.load_mac1(SESSION, 0, ld)) == 4
    assert len(pboc.load_mac2(SESSION, ld, DATE, TIME)) == 4
    assert len(pboc.load_tac(DTK, 1, 0, ld, DATE, TIME)) == 4
    assert len(pboc.purchase_mac1(SESSION, p)) == 4
    assert len(pboc.purchase_mac2(SESSION, 1)) == 4
    assert len(pboc.purchase_tac(DTK, p)) == 4
