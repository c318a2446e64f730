"""The card runtime (card.md §1): ATR, power, APDU decoding, CLA checks, SELECT, logical
channels, Le handling and the 6F00 answer to an internal error."""

from __future__ import annotations

import dataclasses
from functools import reduce
from operator import xor
from typing import Any

import pytest

from card_applet_sim import bootstrap
from card_applet_sim.adapters.stores import MemoryStore
from card_applet_sim.domain.applet import Applet, RandomSource, Reply, SelectReply
from card_applet_sim.domain.atr import PSAM_ATR, SIM_ATR, build_atr
from card_applet_sim.domain.image import CardImage, Instance
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletApplet
from paycore import pboc
from paycore.apdu import CommandApdu
from paycore.issuer_keys import IssuerKeys
from paycore.purse import (
    PSAM_AID,
    WALLET_AID,
    CreditForLoadRequest,
    DebitRequest,
    SamInitRequest,
    SamInitResponse,
    credit_for_load,
    debit_for_purchase,
    get_balance,
    read_binary,
    sam_credit_purchase,
    sam_init_purchase,
    select_aid,
)
from paycore.sw import SW
from tests.unit.card_applet_sim.cardkit import (
    ASN,
    START_BALANCE_FEN,
    TERMINAL_ID,
    date_time,
    det_random,
    do_load,
    init_load,
    init_purchase,
    load_mac2,
    make_keys,
    ok,
    psam_image,
    send,
    sim_image,
    start_purchase,
    sw_of,
    wallet_state,
)

SELECT_WALLET = "00A4040009" + WALLET_AID.hex()
GET_BALANCE = "805C000204"
OTHER_WALLET_AID = bytes.fromhex("A00000000386980702")


def ef15(card: Card) -> bytes:
    return wallet_state(card).ef15


def expected_fci(card: Card, aid: bytes = WALLET_AID) -> bytes:
    """card.md §2: 6F L 84 09 <AID> A5 L 9F08 02 0102 9F0C 1E <EF15>."""
    proprietary = bytes.fromhex("9F08020102") + bytes.fromhex("9F0C1E") + ef15(card)
    inner = bytes([0x84, len(aid)]) + aid + bytes([0xA5, len(proprietary)]) + proprietary
    return bytes([0x6F, len(inner)]) + inner


def off_card(keys: IssuerKeys, image: CardImage | None = None) -> Card:
    return bootstrap.memory_card(image or sim_image(keys), det_random(3))


def on_card(keys: IssuerKeys, image: CardImage | None = None) -> Card:
    card = off_card(keys, image)
    card.power_on()
    return card


def two_applet_card(keys: IssuerKeys) -> Card:
    """A SIM carrying the wallet and a PSAM application (for logical channels)."""
    wallet = sim_image(keys).instances[0]
    psam = psam_image(keys).instances[0]
    return on_card(keys, CardImage("sim", (wallet, psam)))


def two_wallet_card(keys: IssuerKeys) -> Card:
    """Two wallets whose AIDs share the 8-byte prefix (for SELECT next occurrence)."""
    wallet = sim_image(keys).instances[0]
    other_state = dataclasses.replace(wallet.state, balance_fen=1)  # type: ignore[type-var]
    other = Instance(OTHER_WALLET_AID, "wallet", other_state)
    return on_card(keys, CardImage("sim", (wallet, other)))


# --- ATR and power --------------------------------------------------------------------------


@pytest.mark.parametrize(("atr", "name"), [(SIM_ATR, b"nfcpay-SIM"), (PSAM_ATR, b"nfcpay-SAM")])
def test_atr_is_t1_with_a_correct_tck(atr: bytes, name: bytes) -> None:
    assert atr[0] == 0x3B  # direct convention
    t0, td1, td2 = atr[1], atr[2], atr[3]
    historical_len = t0 & 0x0F
    # 3B 8n 80 01: the PC/SC part 3 form of a contactless card's ATR, protocol T=1.
    assert t0 & 0xF0 == 0x80  # only TD1 follows
    assert td1 == 0x80  # TD2 follows
    assert td2 == 0x01  # T=1, no more interface bytes
    historical = atr[4 : 4 + historical_len]
    assert historical == bytes([0x80, 0x50 | len(name)]) + name
    assert len(atr) == 4 + historical_len + 1  # TCK present because T=1 is offered
    # ISO/IEC 7816-3 §8.2.5: the XOR of T0 up to and including TCK is zero.
    assert reduce(xor, atr[1:], 0) == 0


def test_atr_name_limits() -> None:
    with pytest.raises(ValueError, match=r"1\.\.13 bytes"):
        build_atr(b"")
    with pytest.raises(ValueError, match=r"1\.\.13 bytes"):
        build_atr(b"x" * 14)
    assert reduce(xor, build_atr(b"x" * 13)[1:], 0) == 0


def test_power_on_and_reset_return_the_atr(keys: IssuerKeys) -> None:
    card = off_card(keys)
    assert not card.powered
    assert card.power_on() == SIM_ATR == card.atr
    assert card.powered
    assert card.reset() == SIM_ATR
    psam = bootstrap.memory_card(psam_image(keys))
    assert psam.power_on() == PSAM_ATR


def test_transmit_before_power_on_answers_6f00(keys: IssuerKeys) -> None:
    card = off_card(keys)
    assert card.transmit(bytes.fromhex(SELECT_WALLET)) == b"\x6f\x00"
    card.power_on()
    ok(card, SELECT_WALLET)
    card.power_off()
    assert not card.powered
    assert card.transmit(bytes.fromhex(GET_BALANCE)) == b"\x6f\x00"


@pytest.mark.parametrize("how", ["power-cycle", "warm-reset", "cold-reset"])
def test_power_cycle_clears_selection_sessions_and_channels(keys: IssuerKeys, how: str) -> None:
    card = two_applet_card(keys)
    ok(card, SELECT_WALLET)
    assert ok(card, "0070000001") == b"\x01"
    ok(card, "01A4040008" + PSAM_AID.hex())
    init_purchase(card, 100)  # an open INITIALIZE session
    if how == "power-cycle":
        card.power_off()
        card.power_on()
    elif how == "warm-reset":
        card.reset()
    else:
        card.power_on()
    assert sw_of(card, GET_BALANCE) == SW.INS_NOT_SUPPORTED  # nothing selected
    assert sw_of(card, "01B0960006") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED  # channel 1 closed
    ok(card, SELECT_WALLET)
    debit = "805401000F" + "000000012024051710301500000000" + "08"
    assert sw_of(card, debit) == SW.CONDITIONS_NOT_SATISFIED  # the session is gone
    assert wallet_state(card).balance_fen == START_BALANCE_FEN


# --- malformed APDUs and CLA ----------------------------------------------------------------


@pytest.mark.parametrize(
    "apdu",
    [
        "",  # nothing
        "00",
        "00A404",  # short header
        "00A4040009A000",  # Lc says 9, 2 present
        "805C00020000",  # Lc 00: extended length
        "805C0002040000000001",  # trailing bytes after Le
    ],
)
def test_undecodable_apdus_answer_6700(keys: IssuerKeys, apdu: str) -> None:
    card = on_card(keys)
    ok(card, SELECT_WALLET)
    assert card.transmit(bytes.fromhex(apdu)) == b"\x67\x00"
    assert ok(card, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")


@pytest.mark.parametrize(
    ("cla", "sw"),
    [
        (0xFF, SW.CLA_NOT_SUPPORTED),
        (0x40, SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
        (0x41, SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
        (0xC0, SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
        (0x10, SW.COMMAND_CHAINING_NOT_SUPPORTED),
        (0x90, SW.COMMAND_CHAINING_NOT_SUPPORTED),
        (0x20, SW.CLA_NOT_SUPPORTED),
    ],
)
def test_cla_errors(keys: IssuerKeys, cla: int, sw: int) -> None:
    card = on_card(keys)
    ok(card, SELECT_WALLET)
    assert sw_of(card, bytes([cla]) + bytes.fromhex("5C000204")) == sw
    assert sw_of(card, bytes([cla]) + bytes.fromhex(SELECT_WALLET)[1:]) == sw


def test_ins_and_class_mismatches(sim: Card) -> None:
    assert sw_of(sim, "80FF0000") == SW.INS_NOT_SUPPORTED
    assert sw_of(sim, "00FF0000") == SW.INS_NOT_SUPPORTED
    assert sw_of(sim, "005C000204") == SW.CLA_NOT_SUPPORTED  # purse INS with CLA 00
    assert sw_of(sim, "80B0950000") == SW.CLA_NOT_SUPPORTED  # ISO INS with CLA 80
    assert sw_of(sim, "845C000204") == SW.CLA_NOT_SUPPORTED  # no secure messaging


def test_commands_with_nothing_selected(keys: IssuerKeys) -> None:
    card = on_card(keys)
    assert sw_of(card, GET_BALANCE) == SW.INS_NOT_SUPPORTED
    assert sw_of(card, read_binary(0x15)) == SW.FILE_NOT_FOUND
    assert sw_of(card, "00B201C417") == SW.FILE_NOT_FOUND


# --- SELECT ---------------------------------------------------------------------------------


def test_select_by_full_aid_returns_the_fci(keys: IssuerKeys) -> None:
    card = on_card(keys)
    fci = ok(card, SELECT_WALLET + "00")
    assert fci == expected_fci(card)
    assert fci[:13] == bytes.fromhex("6F3384 09") + WALLET_AID
    assert fci[13:15] == bytes.fromhex("A526")
    assert fci[-30:][12:20] == ASN
    assert ok(card, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")


@pytest.mark.parametrize("prefix_len", [5, 7, 8])
def test_select_by_partial_aid(keys: IssuerKeys, prefix_len: int) -> None:
    card = on_card(keys)
    assert ok(card, select_aid(WALLET_AID[:prefix_len])) == expected_fci(card)
    assert ok(card, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")


def test_select_next_occurrence(keys: IssuerKeys) -> None:
    card = two_wallet_card(keys)
    prefix = WALLET_AID[:8].hex()
    first = ok(card, "00A4040008" + prefix)
    assert first[4:13] == WALLET_AID
    assert ok(card, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")
    second = ok(card, "00A4040208" + prefix)  # P2 02: next occurrence
    assert second[4:13] == OTHER_WALLET_AID
    assert ok(card, GET_BALANCE) == (1).to_bytes(4, "big")
    assert sw_of(card, "00A4040208" + prefix) == SW.FILE_NOT_FOUND  # no third one
    assert ok(card, GET_BALANCE) == (1).to_bytes(4, "big")  # selection kept
    assert ok(card, "00A4040008" + prefix)[4:13] == WALLET_AID  # first occurrence again


def test_select_p2_0c_returns_no_fci(keys: IssuerKeys) -> None:
    card = on_card(keys)
    response = send(card, "00A4040C09" + WALLET_AID.hex())
    assert (response.data, response.sw) == (b"", SW.OK)
    assert ok(card, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")


def test_select_unknown_aid_answers_6a82_and_keeps_nothing_selected(keys: IssuerKeys) -> None:
    card = on_card(keys)
    assert sw_of(card, "00A4040007A0000000041010") == SW.FILE_NOT_FOUND
    assert sw_of(card, select_aid(WALLET_AID + b"\x01")) == SW.FILE_NOT_FOUND  # longer AID
    assert sw_of(card, GET_BALANCE) == SW.INS_NOT_SUPPORTED


def test_select_too_long_aid_answers_6700(keys: IssuerKeys) -> None:
    card = on_card(keys)
    assert sw_of(card, "00A4040011" + (WALLET_AID + bytes(8)).hex()) == SW.WRONG_LENGTH


@pytest.mark.parametrize("p2", [0x01, 0x03, 0x10, 0xF0])
def test_select_aid_bad_p2_answers_6a86(keys: IssuerKeys, p2: int) -> None:
    card = on_card(keys)
    assert sw_of(card, f"00A404{p2:02X}09" + WALLET_AID.hex()) == SW.WRONG_P1P2


def test_select_by_fid(keys: IssuerKeys) -> None:
    card = on_card(keys)
    assert ok(card, "00A40000021001") == expected_fci(card)
    assert ok(card, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")
    assert ok(card, "00A4000C021001") == b""  # no FCI asked
    ok(card, "00A40000023F00")  # the MF: the wallet is deselected
    assert sw_of(card, GET_BALANCE) == SW.INS_NOT_SUPPORTED
    assert sw_of(card, read_binary(0x15)) == SW.FILE_NOT_FOUND
    assert sw_of(card, "00A40000022F00") == SW.FILE_NOT_FOUND  # unknown FID
    assert sw_of(card, "00A4000001") == SW.WRONG_LENGTH
    assert sw_of(card, "00A400000310") == SW.WRONG_LENGTH
    assert sw_of(card, "00A4000003100100") == SW.WRONG_LENGTH
    ok(card, "00A40000021001")
    # An EF FID inside the selected wallet: EFs are read by SFI only.
    assert sw_of(card, "00A40000020015") == SW.FILE_NOT_FOUND


# --- logical channels -----------------------------------------------------------------------


def test_manage_channel_open_auto_until_none_left(keys: IssuerKeys) -> None:
    card = on_card(keys)
    assert ok(card, "0070000001") == b"\x01"
    assert ok(card, "0070000001") == b"\x02"
    assert ok(card, "0070000001") == b"\x03"
    assert sw_of(card, "0070000001") == SW.FUNCTION_NOT_SUPPORTED  # 6A81: no more channels
    ok(card, "00708002")  # close 2
    assert ok(card, "0070000001") == b"\x02"  # the lowest free one again


def test_manage_channel_open_specific_and_close(keys: IssuerKeys) -> None:
    card = on_card(keys)
    assert ok(card, "00700002") == b""
    assert sw_of(card, "00700002") == SW.CONDITIONS_NOT_SATISFIED  # already open
    assert sw_of(card, "00700004") == SW.WRONG_P1P2  # channels 1-3 only
    assert sw_of(card, "02A4040009" + WALLET_AID.hex()) == SW.OK  # CLA 02 works
    assert sw_of(card, "01A4040009" + WALLET_AID.hex()) == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    ok(card, "02708000")  # closes itself (P2 00 = the channel of the CLA)
    assert sw_of(card, "825C000204") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert sw_of(card, "00708000") == SW.WRONG_P1P2  # channel 0 cannot be closed
    assert sw_of(card, "01708000") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED  # 1 is not open
    assert sw_of(card, "00708003") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED  # 3 is not open
    assert sw_of(card, "00708004") == SW.WRONG_P1P2
    assert sw_of(card, "00704000") == SW.WRONG_P1P2  # P1 neither open nor close
    assert sw_of(card, "0070000001AA") == SW.WRONG_LENGTH  # no data allowed


def test_applets_on_several_channels(keys: IssuerKeys) -> None:
    card = two_applet_card(keys)
    ok(card, SELECT_WALLET)
    assert ok(card, "0070000001") == b"\x01"
    assert ok(card, "0070000001") == b"\x02"
    assert sw_of(card, "01A4040008" + PSAM_AID.hex()) == SW.OK
    assert sw_of(card, "815C000204") == SW.INS_NOT_SUPPORTED  # channel 1 holds the PSAM
    assert ok(card, "01B0960006") == TERMINAL_ID
    assert ok(card, "805C000204") == START_BALANCE_FEN.to_bytes(4, "big")  # channel 0: wallet
    ok(card, "00700003")
    assert sw_of(card, "03B0960006") == SW.FILE_NOT_FOUND  # channel 3 open, nothing selected
    ok(card, "00708001")  # close 1 from the basic channel
    assert sw_of(card, "01B0960006") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert ok(card, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")


def test_a_purchase_with_the_psam_on_another_channel_of_the_same_card(
    keys: IssuerKeys,
) -> None:
    """Commands on channel 1 do not end the wallet's INITIALIZE session on channel 0."""
    card = two_applet_card(keys)
    ok(card, SELECT_WALLET)
    ok(card, "0070000001")
    ok(card, "01A4040008" + PSAM_AID.hex())
    init = init_purchase(card, 250)
    d, t = date_time()
    sam_request = SamInitRequest(
        init.random4, init.offline_counter, 250, pboc.TYPE_EP_PURCHASE, d, t,
        init.key_version, init.alg_id, ASN,
    )  # fmt: skip
    on_channel_1 = dataclasses.replace(sam_init_purchase(sam_request), cla=0x81)
    sam = SamInitResponse.decode(ok(card, on_channel_1))
    debit = ok(card, debit_for_purchase(DebitRequest(sam.terminal_serial, d, t, sam.mac1)))
    ok(card, dataclasses.replace(sam_credit_purchase(debit[4:]), cla=0x81))
    assert wallet_state(card).balance_fen == START_BALANCE_FEN - 250


def test_wallet_is_not_multi_selectable(keys: IssuerKeys) -> None:
    card = on_card(keys)
    ok(card, SELECT_WALLET)
    ok(card, "0070000001")
    assert sw_of(card, "01A4040009" + WALLET_AID.hex()) == SW.CONDITIONS_NOT_SATISFIED
    assert sw_of(card, "01A40000021001") == SW.CONDITIONS_NOT_SATISFIED
    assert sw_of(card, "815C000204") == SW.INS_NOT_SUPPORTED  # nothing selected there
    ok(card, "00A40000023F00")  # leave it on channel 0 ...
    ok(card, "01A4040009" + WALLET_AID.hex())  # ... and it can be selected on channel 1
    assert ok(card, "815C000204") == START_BALANCE_FEN.to_bytes(4, "big")
    assert sw_of(card, SELECT_WALLET) == SW.CONDITIONS_NOT_SATISFIED


def test_closing_a_channel_ends_its_session(keys: IssuerKeys) -> None:
    card = on_card(keys)
    ok(card, "0070000001")
    ok(card, "01A4040009" + WALLET_AID.hex())
    ok(card, "81500102" + "0B" + "01" + "00000064" + TERMINAL_ID.hex() + "0F")
    ok(card, "00708001")
    ok(card, "0070000001")
    ok(card, "01A4040009" + WALLET_AID.hex())
    debit = "815401000F" + "000000012024051710301500000000" + "08"
    assert sw_of(card, debit) == SW.CONDITIONS_NOT_SATISFIED


# --- Le -------------------------------------------------------------------------------------


def test_short_explicit_le_on_a_read_only_command_answers_6cxx(sim: Card) -> None:
    assert send(sim, "805C000202").sw == 0x6C04
    assert send(sim, "805C000201").sw == 0x6C04
    response = send(sim, "805C000204")
    assert (response.data, response.sw) == (START_BALANCE_FEN.to_bytes(4, "big"), SW.OK)
    assert send(sim, SELECT_WALLET + "10").sw == 0x6C00 | len(expected_fci(sim))


def test_le_00_or_absent_returns_all_data(sim: Card) -> None:
    assert ok(sim, "805C000200") == START_BALANCE_FEN.to_bytes(4, "big")
    assert ok(sim, "805C0002") == START_BALANCE_FEN.to_bytes(4, "big")
    assert ok(sim, "805C0002FF") == START_BALANCE_FEN.to_bytes(4, "big")
    assert len(ok(sim, "00B0950000")) == 30
    assert len(ok(sim, "00B09500")) == 30
    assert ok(sim, SELECT_WALLET + "00") == expected_fci(sim)


def test_read_binary_honours_a_short_le(sim: Card) -> None:
    # READ BINARY reads Le bytes from the offset (ISO 7816-4): no 6Cxx needed.
    assert ok(sim, "00B095000A") == wallet_state(sim).ef15[:10]
    assert ok(sim, "00B0950C08") == ASN


def test_a_committed_result_is_never_withheld_for_a_short_le(sim: Card, keys: IssuerKeys) -> None:
    init = init_load(sim, 500)
    d, t = date_time()
    command = credit_for_load(CreditForLoadRequest(d, t, load_mac2(keys, init, 500)))
    response = send(sim, dataclasses.replace(command, le=2))
    assert response.sw == SW.OK
    assert len(response.data) == 4  # the TAC, although Le asked for 2
    assert wallet_state(sim).balance_fen == START_BALANCE_FEN + 500


# --- internal errors ------------------------------------------------------------------------


def test_internal_error_in_an_applet_answers_6f00_with_the_state_unchanged(
    sim: Card, psam: Card, keys: IssuerKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sim.image
    start = start_purchase(sim, psam, 700)

    def broken(*args: Any) -> bytes:
        raise RuntimeError("simulated fault")

    monkeypatch.setattr(pboc, "purchase_tac", broken)  # fails after MAC1 verified
    assert sim.transmit(start.debit_command().encode()) == b"\x6f\x00"
    assert sim.image is before
    assert wallet_state(sim).balance_fen == START_BALANCE_FEN
    assert sw_of(sim, start.debit_command()) == SW.CONDITIONS_NOT_SATISFIED  # session gone
    monkeypatch.undo()
    assert ok(sim, GET_BALANCE) == START_BALANCE_FEN.to_bytes(4, "big")
    do_load(sim, keys, 100)  # the card still works
    assert wallet_state(sim).balance_fen == START_BALANCE_FEN + 100


class _Broken:
    """An applet whose every command blows up after returning from select."""

    def __init__(self, aid: bytes, random_bytes: RandomSource) -> None:
        self._inner = WalletApplet(aid, random_bytes)

    def select(self, state: Any) -> SelectReply:
        return self._inner.select(state)

    def deselect(self) -> None:
        self._inner.deselect()

    def process(self, state: Any, apdu: CommandApdu) -> Reply:
        if apdu.ins == 0x5C:
            raise ZeroDivisionError("broken applet")
        return self._inner.process(state, apdu)


def test_an_injected_broken_applet_type_answers_6f00(keys: IssuerKeys) -> None:
    def factory(aid: bytes, random_bytes: RandomSource) -> Applet:
        return _Broken(aid, random_bytes)

    types = dict(bootstrap.APPLET_TYPES)
    types["wallet"] = dataclasses.replace(types["wallet"], factory=factory)
    image = sim_image(keys)
    card = Card(MemoryStore(image), atr=SIM_ATR, applet_types=types, random_bytes=det_random(1))
    card.power_on()
    ok(card, SELECT_WALLET)
    assert card.transmit(bytes.fromhex(GET_BALANCE)) == b"\x6f\x00"
    assert card.image is image
    assert len(ok(card, read_binary(0x15))) == 30  # the card goes on answering


class _FailingStore(MemoryStore):
    def __init__(self, image: CardImage) -> None:
        super().__init__(image)
        self.failing = True

    def commit(self, image: CardImage) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        super().commit(image)


def test_a_store_that_cannot_commit_answers_6f00_and_nothing_changes(keys: IssuerKeys) -> None:
    store = _FailingStore(sim_image(keys))
    card = bootstrap.card_on_store(store, "sim", det_random(5))
    card.power_on()
    ok(card, SELECT_WALLET)
    before = card.image
    init = init_purchase(card, 100)
    assert init.balance_fen == START_BALANCE_FEN
    init_l = init_load(card, 300)
    d, t = date_time()
    credit = credit_for_load(CreditForLoadRequest(d, t, load_mac2(keys, init_l, 300)))
    assert card.transmit(credit.encode()) == b"\x6f\x00"
    assert card.image is before
    assert ok(card, get_balance()) == START_BALANCE_FEN.to_bytes(4, "big")
    store.failing = False
    do_load(card, keys, 300)
    assert store.load().state_of(WALLET_AID) == wallet_state(card)
    assert wallet_state(card).balance_fen == START_BALANCE_FEN + 300


def test_other_keys_make_other_cards() -> None:
    # A sanity check of the fixtures: the deterministic keys are stable and distinct.
    assert make_keys(1) == make_keys(1)
    assert make_keys(1) != make_keys(2)
