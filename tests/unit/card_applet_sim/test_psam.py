"""The PSAM (card.md §5): terminal ID, INIT SAM FOR PURCHASE with a persisted serial,
CREDIT SAM FOR PURCHASE."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from card_applet_sim import bootstrap
from card_applet_sim.domain.image import CardImage, Instance
from card_applet_sim.domain.psam import SERIAL_MAX
from card_applet_sim.domain.runtime import Card
from paycore import pboc
from paycore.issuer_keys import IssuerKeys
from paycore.purse import (
    PSAM_AID,
    SamInitRequest,
    SamInitResponse,
    sam_credit_purchase,
    sam_init_purchase,
    sam_read_terminal_id,
    select_aid,
)
from paycore.sw import SW
from tests.unit.card_applet_sim.cardkit import (
    ASN,
    TERMINAL_ID,
    date_time,
    make_keys,
    ok,
    psam_card,
    psam_image,
    psam_state,
    send,
    sw_of,
)

CARD_RANDOM = bytes.fromhex("11223344")


def request(keys: IssuerKeys, **changes: object) -> SamInitRequest:
    d, t = date_time()
    base = SamInitRequest(
        CARD_RANDOM, 7, 1_000, pboc.TYPE_EP_PURCHASE, d, t, keys.key_version, 0x00, ASN,
        keys.issuer_factor,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def init(psam: Card, req: SamInitRequest) -> SamInitResponse:
    return SamInitResponse.decode(ok(psam, sam_init_purchase(req)))


def test_select_returns_an_fci_naming_the_aid(keys: IssuerKeys) -> None:
    card = bootstrap.memory_card(psam_image(keys))
    card.power_on()
    assert ok(card, select_aid(PSAM_AID)) == bytes([0x6F, 10, 0x84, 8]) + PSAM_AID


def test_read_binary_terminal_id(psam: Card) -> None:
    assert ok(psam, sam_read_terminal_id()) == TERMINAL_ID
    assert ok(psam, "00B0960006") == TERMINAL_ID  # card.md §5, byte for byte
    assert ok(psam, "00B0960000") == TERMINAL_ID  # Le 00
    assert ok(psam, "00B0960200") == TERMINAL_ID[2:]
    assert ok(psam, "00B0960003") == TERMINAL_ID[:3]
    assert sw_of(psam, "00B0960600") == SW.WRONG_P1P2_OFFSET
    assert sw_of(psam, "00B0950000") == SW.FILE_NOT_FOUND
    assert sw_of(psam, "00B0160000") == SW.FILE_NOT_FOUND
    assert sw_of(psam, "00B096000100") == SW.WRONG_LENGTH


def test_init_sam_returns_serial_and_mac1(psam: Card, keys: IssuerKeys) -> None:
    req = request(keys)
    response = init(psam, req)
    assert response.terminal_serial == 1
    dpk = pboc.card_key(keys.mpk, ASN)
    sespk = pboc.purchase_session_key(dpk, CARD_RANDOM, 7, 1)
    purchase = pboc.Purchase(1_000, TERMINAL_ID, 1, req.date_bcd, req.time_bcd)
    assert response.mac1 == pboc.purchase_mac1(sespk, purchase)
    assert ok(psam, sam_credit_purchase(pboc.purchase_mac2(sespk, 1_000))) == b""


def test_init_sam_with_the_issuer_factor_lc_24() -> None:
    keys = make_keys(3, two_level=True)
    assert keys.issuer_factor is not None
    psam = psam_card(keys)
    command = sam_init_purchase(request(keys))
    assert command.encode()[4] == 0x24
    response = SamInitResponse.decode(ok(psam, command))
    dpk = pboc.card_key(keys.mpk, ASN, keys.issuer_factor)
    sespk = pboc.purchase_session_key(dpk, CARD_RANDOM, 7, response.terminal_serial)
    d, t = date_time()
    purchase = pboc.Purchase(1_000, TERMINAL_ID, response.terminal_serial, d, t)
    assert response.mac1 == pboc.purchase_mac1(sespk, purchase)


def test_serial_increments_on_every_init(psam: Card, keys: IssuerKeys) -> None:
    serials = [init(psam, request(keys)).terminal_serial for _ in range(5)]
    assert serials == [1, 2, 3, 4, 5]
    assert psam_state(psam).serial == 5


def test_serial_is_persisted_in_the_file(tmp_path: Path, keys: IssuerKeys) -> None:
    path = tmp_path / "psam.card"
    bootstrap.save_new_image(path, psam_image(keys))
    card = bootstrap.file_card(path, expect_kind="psam")
    card.power_on()
    ok(card, select_aid(PSAM_AID))
    assert [init(card, request(keys)).terminal_serial for _ in range(3)] == [1, 2, 3]
    card.power_off()
    card.power_on()  # the same object reloads its store
    ok(card, select_aid(PSAM_AID))
    assert init(card, request(keys)).terminal_serial == 4
    reloaded = bootstrap.file_card(path, expect_kind="psam")  # a fresh process
    reloaded.power_on()
    ok(reloaded, select_aid(PSAM_AID))
    assert psam_state(reloaded).serial == 4
    assert init(reloaded, request(keys)).terminal_serial == 5
    assert bootstrap.file_store(path).load().state_of(PSAM_AID) == psam_state(reloaded)


def test_a_refused_init_does_not_use_a_serial(psam: Card, keys: IssuerKeys) -> None:
    assert sw_of(psam, sam_init_purchase(request(keys, key_version=9))) == (SW.KEY_INDEX_NOT_FOUND)
    assert init(psam, request(keys)).terminal_serial == 1


@pytest.mark.parametrize(
    ("changes", "sw"),
    [
        ({"key_version": 2}, SW.KEY_INDEX_NOT_FOUND),
        ({"key_version": 0}, SW.KEY_INDEX_NOT_FOUND),
        ({"alg_id": 1}, SW.KEY_INDEX_NOT_FOUND),
        ({"tx_type": pboc.TYPE_EP_LOAD}, SW.WRONG_DATA),
        ({"amount_fen": 0}, SW.WRONG_DATA),
    ],
)
def test_init_sam_refusals(
    psam: Card, keys: IssuerKeys, changes: dict[str, object], sw: int
) -> None:
    assert sw_of(psam, sam_init_purchase(request(keys, **changes))) == sw
    assert psam_state(psam).serial == 0


def test_init_sam_ed_purchase_is_accepted(psam: Card, keys: IssuerKeys) -> None:
    assert init(psam, request(keys, tx_type=pboc.TYPE_ED_PURCHASE)).terminal_serial == 1


@pytest.mark.parametrize("length", [0, 1, 27, 29, 35, 37, 255])
def test_init_sam_bad_lengths_answer_6700(psam: Card, keys: IssuerKeys, length: int) -> None:
    full = request(keys, issuer_factor=bytes(8)).encode() + bytes(255)
    data = full[:length]
    apdu = bytes.fromhex("80700000") + (bytes([length]) + data if length else b"") + b"\x08"
    assert sw_of(psam, apdu) == SW.WRONG_LENGTH
    assert psam_state(psam).serial == 0


def test_init_sam_bad_p1_p2(psam: Card, keys: IssuerKeys) -> None:
    raw = bytearray(sam_init_purchase(request(keys)).encode())
    raw[3] = 0x01
    assert sw_of(psam, bytes(raw)) == SW.WRONG_P1P2


def test_serial_at_its_maximum_answers_9402(keys: IssuerKeys) -> None:
    state = psam_image(keys).instances[0].state
    at_max = dataclasses.replace(state, serial=SERIAL_MAX)  # type: ignore[type-var]
    card = bootstrap.memory_card(CardImage("psam", (Instance(PSAM_AID, "psam", at_max),)))
    card.power_on()
    ok(card, select_aid(PSAM_AID))
    assert sw_of(card, sam_init_purchase(request(keys))) == SW.LIMIT_EXCEEDED
    assert psam_state(card).serial == SERIAL_MAX


def test_credit_sam_without_init_answers_6985(psam: Card, keys: IssuerKeys) -> None:
    assert sw_of(psam, sam_credit_purchase(bytes(4))) == SW.CONDITIONS_NOT_SATISFIED
    init(psam, request(keys))
    ok(psam, sam_read_terminal_id())  # an intervening command ends the session
    assert sw_of(psam, sam_credit_purchase(bytes(4))) == SW.CONDITIONS_NOT_SATISFIED
    init(psam, request(keys))
    psam.reset()
    ok(psam, select_aid(PSAM_AID))
    assert sw_of(psam, sam_credit_purchase(bytes(4))) == SW.CONDITIONS_NOT_SATISFIED


def test_credit_sam_bad_mac2_answers_9302_once(psam: Card, keys: IssuerKeys) -> None:
    response = init(psam, request(keys))
    sespk = pboc.purchase_session_key(
        pboc.card_key(keys.mpk, ASN), CARD_RANDOM, 7, response.terminal_serial
    )
    good = pboc.purchase_mac2(sespk, 1_000)
    bad = bytes([good[0] ^ 0x80]) + good[1:]
    assert sw_of(psam, sam_credit_purchase(bad)) == SW.MAC_INVALID
    assert sw_of(psam, sam_credit_purchase(good)) == SW.CONDITIONS_NOT_SATISFIED  # consumed


def test_credit_sam_format_errors(psam: Card, keys: IssuerKeys) -> None:
    init(psam, request(keys))
    assert sw_of(psam, "8072000003000000") == SW.WRONG_LENGTH
    init(psam, request(keys))
    assert sw_of(psam, "8072010004" + "00" * 4) == SW.WRONG_P1P2


def test_other_commands(psam: Card) -> None:
    assert sw_of(psam, "805C000204") == SW.INS_NOT_SUPPORTED
    assert sw_of(psam, "00B201C417") == SW.INS_NOT_SUPPORTED
    assert sw_of(psam, "847000001C" + "00" * 28) == SW.CLA_NOT_SUPPORTED
    assert send(psam, "80A4040000").sw == SW.INS_NOT_SUPPORTED
