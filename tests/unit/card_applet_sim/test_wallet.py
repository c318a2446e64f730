"""The wallet applet (card.md §2-§4): every command of the table and every status word."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.domain.image import CardImage, Instance
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from paycore import bcd, pboc
from paycore.issuer_keys import IssuerKeys
from paycore.purse import (
    BALANCE_CEILING_FEN,
    KEY_INDEX,
    PURCHASE_LIMIT_FEN,
    WALLET_AID,
    CreditForLoadRequest,
    DebitResponse,
    Ef15,
    Ef16,
    InitRequest,
    LogRecord,
    ProveResponse,
    SamInitRequest,
    credit_for_load,
    get_balance,
    get_transaction_prove,
    initialize_for_load,
    initialize_for_purchase,
    read_binary,
    read_record,
    sam_credit_purchase,
    sam_init_purchase,
    select_aid,
    verify_pin,
)
from paycore.sw import SW
from tests.unit.card_applet_sim.cardkit import (
    ASN,
    NOW,
    PIN_BCD,
    PIN_TEXT,
    START_BALANCE_FEN,
    TERMINAL_ID,
    date_time,
    det_random,
    do_load,
    do_purchase,
    init_load,
    init_purchase,
    load_mac2,
    load_tac_ok,
    make_keys,
    ok,
    psam_card,
    send,
    sim_card,
    sim_image,
    start_purchase,
    sw_of,
    wallet_state,
)

MAC_ZERO = bytes(4)


def balance(card: Card) -> int:
    return int.from_bytes(ok(card, get_balance()), "big")


def card_with(keys: IssuerKeys, **changes: object) -> Card:
    """A powered SIM whose wallet state differs from a fresh one by ``changes``."""
    image = sim_image(keys)
    state = image.instances[0].state
    assert isinstance(state, WalletState)
    new_state = dataclasses.replace(state, **changes)  # type: ignore[arg-type]
    card = bootstrap.memory_card(
        CardImage("sim", (Instance(WALLET_AID, "wallet", new_state),)), det_random(11)
    )
    card.power_on()
    return card


def credit(card: Card, mac2: bytes) -> int:
    d, t = date_time()
    return sw_of(card, credit_for_load(CreditForLoadRequest(d, t, mac2)))


def init_sw(card: Card, p1: int, amount_fen: int, key_index: int = KEY_INDEX) -> int:
    request = InitRequest(key_index, amount_fen, TERMINAL_ID)
    command = initialize_for_load(request) if p1 == 0 else initialize_for_purchase(request)
    return sw_of(card, command)


# --- GET BALANCE ----------------------------------------------------------------------------


def test_get_balance(sim: Card) -> None:
    assert send(sim, "805C000204").data == START_BALANCE_FEN.to_bytes(4, "big")
    assert sw_of(sim, "805C000104") == SW.WRONG_P1P2  # ED balance is not offered
    assert sw_of(sim, "805C010204") == SW.WRONG_P1P2
    assert sw_of(sim, "805C00020100") == SW.WRONG_LENGTH


# --- load -----------------------------------------------------------------------------------


def test_load_with_the_issuer_mac2(keys: IssuerKeys) -> None:
    keys = dataclasses.replace(keys, key_version=3)
    card = sim_card(keys)
    before = wallet_state(card)
    init = init_load(card, 2_500)
    assert init.balance_fen == START_BALANCE_FEN
    assert init.online_counter == 0
    assert init.key_version == 3
    assert init.alg_id == 0x00
    result = do_load(card, keys, 2_500)  # issuer.load_mac2 verifies the card's MAC1
    assert len(result.tac) == 4
    assert load_tac_ok(keys, result, 2_500)
    assert balance(card) == START_BALANCE_FEN + 2_500
    after = wallet_state(card)
    assert after.online_counter == 1
    assert after.offline_counter == before.offline_counter == 0
    record = LogRecord.decode(ok(card, read_record(1)))
    d, t = date_time()
    assert record == LogRecord(1, 0, 2_500, pboc.TYPE_EP_LOAD, TERMINAL_ID, d, t)
    proof = ProveResponse.decode(ok(card, get_transaction_prove(pboc.TYPE_EP_LOAD, 1)))
    assert proof == ProveResponse(result.mac2, result.tac)


def test_load_tac_fails_with_other_issuer_keys(sim: Card, keys: IssuerKeys) -> None:
    result = do_load(sim, keys, 100)
    assert not load_tac_ok(make_keys(2), result, 100)
    assert not load_tac_ok(keys, result, 101)


def test_load_mac1_refused_by_the_issuer_for_another_card(sim: Card) -> None:
    init = init_load(sim, 100)
    with pytest.raises(issuer.LoadRefused):
        load_mac2(make_keys(2), init, 100)


def test_bad_mac2_answers_9302_and_ends_the_session(sim: Card, keys: IssuerKeys) -> None:
    before = sim.image
    init = init_load(sim, 1_000)
    good = load_mac2(keys, init, 1_000)
    bad = bytes([good[0] ^ 1]) + good[1:]
    assert credit(sim, bad) == SW.MAC_INVALID
    assert credit(sim, good) == SW.CONDITIONS_NOT_SATISFIED  # the session is gone
    assert sim.image is before
    assert balance(sim) == START_BALANCE_FEN
    assert wallet_state(sim).online_counter == 0


def test_credit_needs_its_initialize_directly_before(sim: Card, keys: IssuerKeys) -> None:
    assert credit(sim, MAC_ZERO) == SW.CONDITIONS_NOT_SATISFIED  # no INITIALIZE
    init = init_load(sim, 1_000)
    mac2 = load_mac2(keys, init, 1_000)
    balance(sim)  # an intervening command
    assert credit(sim, mac2) == SW.CONDITIONS_NOT_SATISFIED
    init = init_load(sim, 1_000)
    mac2 = load_mac2(keys, init, 1_000)
    sim.reset()
    ok(sim, select_aid(WALLET_AID))
    assert credit(sim, mac2) == SW.CONDITIONS_NOT_SATISFIED  # reset ends the session
    init_purchase(sim, 10)  # a purchase session does not allow a CREDIT
    assert credit(sim, mac2) == SW.CONDITIONS_NOT_SATISFIED
    assert balance(sim) == START_BALANCE_FEN


def test_load_command_format_errors(sim: Card) -> None:
    assert sw_of(sim, "8050000201" + "00") == SW.WRONG_LENGTH
    assert sw_of(sim, "805000020C" + "01" + "000003E8" + TERMINAL_ID.hex() + "00") == (
        SW.WRONG_LENGTH
    )
    assert sw_of(sim, "8050000110") == SW.WRONG_P1P2
    assert sw_of(sim, "805002020B01000003E8" + TERMINAL_ID.hex()) == SW.WRONG_P1P2
    assert sw_of(sim, "805000000B01000003E8" + TERMINAL_ID.hex()) == SW.WRONG_P1P2
    init_load(sim, 1)
    assert sw_of(sim, "8052000004" + "00000000") == SW.WRONG_LENGTH
    init_load(sim, 1)
    assert sw_of(sim, "805201000B" + "00" * 11) == SW.WRONG_P1P2


# --- purchase -------------------------------------------------------------------------------


def test_purchase_through_the_psam(sim: Card, psam: Card, keys: IssuerKeys) -> None:
    init = init_purchase(sim, 1_234)
    assert (init.balance_fen, init.offline_counter, init.overdraft_limit_fen) == (
        START_BALANCE_FEN, 0, 0,
    )  # fmt: skip
    assert (init.key_version, init.alg_id) == (keys.key_version, 0x00)
    start, debit = do_purchase(sim, psam, 1_234)  # the PSAM verifies MAC2
    assert issuer.purchase_tac_ok(keys, ASN, start.purchase(1_234), debit.tac)
    assert not issuer.purchase_tac_ok(keys, ASN, start.purchase(1_235), debit.tac)
    assert not issuer.purchase_tac_ok(make_keys(2), ASN, start.purchase(1_234), debit.tac)
    assert balance(sim) == START_BALANCE_FEN - 1_234
    state = wallet_state(sim)
    assert (state.offline_counter, state.online_counter) == (1, 0)
    d, t = date_time()
    record = LogRecord.decode(ok(sim, read_record(1)))
    assert record == LogRecord(1, 0, 1_234, pboc.TYPE_EP_PURCHASE, TERMINAL_ID, d, t)


def test_purchase_of_the_whole_balance(keys: IssuerKeys, psam: Card) -> None:
    card = sim_card(keys, balance_fen=777)
    do_purchase(card, psam, 777)
    assert balance(card) == 0
    assert init_sw(card, 1, 1) == SW.INSUFFICIENT_BALANCE


def test_insufficient_balance_answers_9401(sim: Card) -> None:
    assert init_sw(sim, 1, START_BALANCE_FEN + 1) == SW.INSUFFICIENT_BALANCE
    assert init_sw(sim, 1, 0xFFFFFFFF) == SW.INSUFFICIENT_BALANCE
    assert init_sw(sim, 1, START_BALANCE_FEN) == SW.OK


def test_purchase_limits_answer_9402(keys: IssuerKeys, psam: Card) -> None:
    card = sim_card(keys, balance_fen=60_000)
    assert init_sw(card, 1, PURCHASE_LIMIT_FEN) == SW.LIMIT_EXCEEDED
    assert init_sw(card, 1, 0) == SW.LIMIT_EXCEEDED
    do_purchase(card, psam, PURCHASE_LIMIT_FEN - 1)
    assert balance(card) == 60_000 - PURCHASE_LIMIT_FEN + 1


def test_load_limits_answer_9402(sim: Card, keys: IssuerKeys) -> None:
    assert init_sw(sim, 0, 0) == SW.LIMIT_EXCEEDED
    room = BALANCE_CEILING_FEN - START_BALANCE_FEN
    assert init_sw(sim, 0, room + 1) == SW.LIMIT_EXCEEDED
    assert init_sw(sim, 0, 0xFFFFFFFF) == SW.LIMIT_EXCEEDED
    do_load(sim, keys, room)
    assert balance(sim) == BALANCE_CEILING_FEN
    assert init_sw(sim, 0, 1) == SW.LIMIT_EXCEEDED


def test_counters_at_ffff_answer_9402(keys: IssuerKeys, psam: Card) -> None:
    card = card_with(keys, online_counter=0xFFFF, offline_counter=0xFFFF)
    ok(card, select_aid(WALLET_AID))
    assert init_sw(card, 0, 1) == SW.LIMIT_EXCEEDED
    assert init_sw(card, 1, 1) == SW.LIMIT_EXCEEDED
    card = card_with(keys, online_counter=0xFFFE, offline_counter=0xFFFE)
    ok(card, select_aid(WALLET_AID))
    do_load(card, keys, 1)
    do_purchase(card, psam, 1)
    state = wallet_state(card)
    assert (state.online_counter, state.offline_counter) == (0xFFFF, 0xFFFF)
    assert LogRecord.decode(ok(card, read_record(1))).counter == 0xFFFF
    assert init_sw(card, 0, 1) == SW.LIMIT_EXCEEDED
    assert init_sw(card, 1, 1) == SW.LIMIT_EXCEEDED


@pytest.mark.parametrize("p1", [0, 1])
@pytest.mark.parametrize("key_index", [0x00, 0x02, 0xFF])
def test_unknown_key_index_answers_9403(sim: Card, p1: int, key_index: int) -> None:
    assert init_sw(sim, p1, 100, key_index) == SW.KEY_INDEX_NOT_FOUND


def test_debit_needs_its_initialize_directly_before(sim: Card, psam: Card) -> None:
    debit = "805401000F" + "000000012024051710301500000000" + "08"
    assert sw_of(sim, debit) == SW.CONDITIONS_NOT_SATISFIED  # no INITIALIZE
    start = start_purchase(sim, psam, 100)
    balance(sim)  # an intervening command
    assert sw_of(sim, start.debit_command()) == SW.CONDITIONS_NOT_SATISFIED
    start = start_purchase(sim, psam, 100)
    assert init_sw(sim, 0, 5) == SW.OK  # another INITIALIZE replaces the session
    assert sw_of(sim, start.debit_command()) == SW.CONDITIONS_NOT_SATISFIED
    start = start_purchase(sim, psam, 100)
    sim.power_off()
    sim.power_on()
    ok(sim, select_aid(WALLET_AID))
    assert sw_of(sim, start.debit_command()) == SW.CONDITIONS_NOT_SATISFIED
    assert balance(sim) == START_BALANCE_FEN


def test_bad_mac1_answers_9302_and_ends_the_session(sim: Card, psam: Card) -> None:
    before = sim.image
    start = start_purchase(sim, psam, 500)
    assert sw_of(sim, start.debit_command(MAC_ZERO)) == SW.MAC_INVALID
    assert sw_of(sim, start.debit_command()) == SW.CONDITIONS_NOT_SATISFIED
    assert sim.image is before
    assert balance(sim) == START_BALANCE_FEN


def test_debit_command_format_errors(sim: Card, psam: Card) -> None:
    start = start_purchase(sim, psam, 500)
    assert sw_of(sim, start.debit_command().encode()[:-6] + b"\x08") == SW.WRONG_LENGTH
    start = start_purchase(sim, psam, 500)
    raw = bytearray(start.debit_command().encode())
    raw[2] = 0x00
    assert sw_of(sim, bytes(raw)) == SW.WRONG_P1P2
    assert balance(sim) == START_BALANCE_FEN


def test_sam_refuses_a_wrong_mac2(sim: Card, psam: Card) -> None:
    start = start_purchase(sim, psam, 500)
    debit = DebitResponse.decode(ok(sim, start.debit_command()))
    assert sw_of(psam, sam_credit_purchase(bytes(4))) == SW.MAC_INVALID
    assert debit.mac2 != bytes(4)


# --- GET TRANSACTION PROVE ------------------------------------------------------------------


def test_get_transaction_prove(sim: Card, psam: Card, keys: IssuerKeys) -> None:
    assert sw_of(sim, get_transaction_prove(pboc.TYPE_EP_PURCHASE, 1)) == SW.MAC_UNAVAILABLE
    start, debit = do_purchase(sim, psam, 300)
    counter = start.init.offline_counter + 1
    proof = ok(sim, get_transaction_prove(pboc.TYPE_EP_PURCHASE, counter))
    assert proof == debit.mac2 + debit.tac
    assert sw_of(sim, get_transaction_prove(pboc.TYPE_EP_PURCHASE, counter - 1)) == (
        SW.MAC_UNAVAILABLE
    )
    assert sw_of(sim, get_transaction_prove(pboc.TYPE_EP_PURCHASE, counter + 1)) == (
        SW.MAC_UNAVAILABLE
    )
    for other_type in (pboc.TYPE_ED_PURCHASE, pboc.TYPE_EP_LOAD, pboc.TYPE_ED_LOAD):
        assert sw_of(sim, get_transaction_prove(other_type, counter)) == SW.MAC_UNAVAILABLE
    # A load's proof is kept next to the last purchase's.
    loaded = do_load(sim, keys, 900)
    load_proof = ok(sim, get_transaction_prove(pboc.TYPE_EP_LOAD, 1))
    assert load_proof == loaded.mac2 + loaded.tac
    assert ok(sim, get_transaction_prove(pboc.TYPE_EP_PURCHASE, counter)) == proof
    # Only the last purchase can be proven.
    start2, debit2 = do_purchase(sim, psam, 200)
    assert start2.init.offline_counter + 1 == counter + 1
    assert sw_of(sim, get_transaction_prove(pboc.TYPE_EP_PURCHASE, counter)) == (SW.MAC_UNAVAILABLE)
    assert ok(sim, get_transaction_prove(pboc.TYPE_EP_PURCHASE, counter + 1)) == (
        debit2.mac2 + debit2.tac
    )
    assert ok(sim, get_transaction_prove(pboc.TYPE_EP_LOAD, 1)) == load_proof


@pytest.mark.parametrize("p2", [0x00, 0x03, 0x04, 0x07, 0xFF])
def test_get_transaction_prove_bad_type_answers_6a86(sim: Card, p2: int) -> None:
    assert sw_of(sim, f"805A00{p2:02X}02000108") == SW.WRONG_P1P2


def test_get_transaction_prove_format_errors(sim: Card) -> None:
    assert sw_of(sim, "805A010602000108") == SW.WRONG_P1P2
    assert sw_of(sim, "805A0006010108") == SW.WRONG_LENGTH
    assert sw_of(sim, "805A000608") == SW.WRONG_LENGTH


# --- the log (EF 0x18) ----------------------------------------------------------------------


def test_log_is_cyclic_newest_first(keys: IssuerKeys, psam: Card) -> None:
    card = sim_card(keys, balance_fen=50_000)
    assert sw_of(card, read_record(1)) == SW.RECORD_NOT_FOUND  # empty log
    done: list[tuple[int, int, int]] = []  # (type, amount, counter after)
    for n in range(12):
        amount = 100 + n
        if n % 3 == 2:
            result = do_load(card, keys, amount)
            done.append((pboc.TYPE_EP_LOAD, amount, result.init.online_counter + 1))
        else:
            start, _ = do_purchase(card, psam, amount)
            done.append((pboc.TYPE_EP_PURCHASE, amount, start.init.offline_counter + 1))
        record = LogRecord.decode(ok(card, read_record(1)))
        assert (record.tx_type, record.amount_fen, record.counter) == done[-1]
    records = [LogRecord.decode(ok(card, read_record(n))) for n in range(1, 11)]
    expected = list(reversed(done))[:10]
    assert [(r.tx_type, r.amount_fen, r.counter) for r in records] == expected
    d, t = date_time()
    assert all(r.terminal_id == TERMINAL_ID and r.overdraft_limit_fen == 0 for r in records)
    assert all((r.date_bcd, r.time_bcd) == (d, t) for r in records)
    assert sw_of(card, read_record(11)) == SW.RECORD_NOT_FOUND
    assert sw_of(card, "00B200C417") == SW.WRONG_P1P2
    assert sw_of(card, "00B2FFC417") == SW.RECORD_NOT_FOUND


def test_read_record_errors(sim: Card, psam: Card) -> None:
    do_purchase(sim, psam, 1)
    assert len(ok(sim, "00B201C400")) == 23  # Le 00: the whole record
    assert sw_of(sim, "00B202C417") == SW.RECORD_NOT_FOUND  # only one record so far
    assert sw_of(sim, read_record(1, sfi=0x15)) == SW.FILE_NOT_FOUND
    assert sw_of(sim, read_record(1, sfi=0x17)) == SW.FILE_NOT_FOUND
    assert sw_of(sim, "00B201C017") == SW.WRONG_P1P2  # P2 low bits not 100
    assert sw_of(sim, "00B201C40100") == SW.WRONG_LENGTH


# --- EF15 / EF16 ----------------------------------------------------------------------------


def test_read_binary_ef15(sim: Card) -> None:
    raw = ok(sim, read_binary(0x15))
    assert len(raw) == 30
    assert raw[12:20] == ASN
    ef15 = Ef15.decode(raw)
    assert ef15.asn == ASN
    assert ef15.start_date_bcd == bcd.encode(NOW.strftime("%Y%m%d"))
    assert ef15.expiry_date_bcd[:2] == bcd.encode(str(NOW.year + 5))
    assert ok(sim, read_binary(0x15, 12)) == raw[12:]
    assert ok(sim, read_binary(0x15, 29)) == raw[29:]


def test_read_binary_ef16(sim: Card) -> None:
    raw = ok(sim, read_binary(0x16))
    assert len(raw) == 20
    ef16 = Ef16.decode(raw)
    assert ef16.iccid == "8986" + ASN.hex()[:15]
    assert ef16.msisdn == ""


@pytest.mark.parametrize(("sfi", "offset"), [(0x15, 30), (0x15, 0xFF), (0x16, 20)])
def test_read_binary_offset_past_the_end_answers_6b00(sim: Card, sfi: int, offset: int) -> None:
    assert sw_of(sim, read_binary(sfi, offset)) == SW.WRONG_P1P2_OFFSET


@pytest.mark.parametrize("p1", [0x81, 0x97, 0x98, 0x9F, 0x15, 0x00, 0xB5, 0xD5])
def test_read_binary_unknown_file_answers_6a82(sim: Card, p1: int) -> None:
    assert sw_of(sim, f"00B0{p1:02X}0000") == SW.FILE_NOT_FOUND


def test_read_binary_with_data_answers_6700(sim: Card) -> None:
    assert sw_of(sim, "00B095000100") == SW.WRONG_LENGTH


# --- PIN ------------------------------------------------------------------------------------


def test_pin_guards_loads(keys: IssuerKeys, psam: Card) -> None:
    card = sim_card(keys, pin_bcd=PIN_BCD)
    assert init_sw(card, 0, 100) == SW.SECURITY_STATUS_NOT_SATISFIED
    assert sw_of(card, "0020000000") == 0x63C3  # tries left, nothing verified
    ok(card, verify_pin(PIN_TEXT))
    assert sw_of(card, "00200000") == SW.OK  # verified
    do_load(card, keys, 100)
    do_load(card, keys, 100)  # still verified until reset
    do_purchase(card, psam, 50)  # purchases never need the PIN
    card.reset()
    ok(card, select_aid(WALLET_AID))
    assert init_sw(card, 0, 100) == SW.SECURITY_STATUS_NOT_SATISFIED
    assert balance(card) == START_BALANCE_FEN + 150


def test_wrong_pins_block_and_the_block_persists(keys: IssuerKeys) -> None:
    card = sim_card(keys, pin_bcd=PIN_BCD)
    assert sw_of(card, verify_pin("0000")) == 0x63C2
    assert wallet_state(card).pin_tries_left == 2
    assert sw_of(card, verify_pin("9999")) == 0x63C1
    assert sw_of(card, verify_pin("123456")) == SW.AUTH_METHOD_BLOCKED
    assert wallet_state(card).pin_tries_left == 0
    assert sw_of(card, verify_pin(PIN_TEXT)) == SW.AUTH_METHOD_BLOCKED
    assert init_sw(card, 0, 100) == SW.SECURITY_STATUS_NOT_SATISFIED
    card.power_off()
    card.power_on()
    ok(card, select_aid(WALLET_AID))
    assert sw_of(card, verify_pin(PIN_TEXT)) == SW.AUTH_METHOD_BLOCKED
    assert sw_of(card, "00200000") == SW.AUTH_METHOD_BLOCKED
    assert init_sw(card, 0, 100) == SW.SECURITY_STATUS_NOT_SATISFIED


def test_blocked_pin_persists_in_the_file(keys: IssuerKeys, tmp_path: Path) -> None:
    path = tmp_path / "sim.card"
    bootstrap.save_new_image(path, sim_image(keys, pin_bcd=PIN_BCD))
    card = bootstrap.file_card(path, fsync=False)
    card.power_on()
    ok(card, select_aid(WALLET_AID))
    for _ in range(3):
        send(card, verify_pin("0000"))
    card.power_off()
    again = bootstrap.file_card(path, fsync=False)
    again.power_on()
    ok(again, select_aid(WALLET_AID))
    assert sw_of(again, verify_pin(PIN_TEXT)) == SW.AUTH_METHOD_BLOCKED


def test_right_pin_resets_the_tries(keys: IssuerKeys) -> None:
    card = sim_card(keys, pin_bcd=PIN_BCD)
    assert sw_of(card, verify_pin("0000")) == 0x63C2
    assert sw_of(card, verify_pin("0000")) == 0x63C1
    before = card.image
    ok(card, verify_pin(PIN_TEXT))
    assert wallet_state(card).pin_tries_left == 3
    assert card.image is not before  # the reset counter is committed
    assert sw_of(card, verify_pin("0000")) == 0x63C2
    assert init_sw(card, 0, 100) == SW.SECURITY_STATUS_NOT_SATISFIED  # a wrong PIN unverifies
    ok(card, verify_pin(PIN_TEXT))
    full = card.image
    ok(card, verify_pin(PIN_TEXT))
    assert card.image is full  # nothing to commit when the tries are already full
    assert init_sw(card, 0, 100) == SW.OK


def test_verify_format_errors(keys: IssuerKeys) -> None:
    card = sim_card(keys, pin_bcd=PIN_BCD)
    assert sw_of(card, "0020000001" + "12") == SW.WRONG_LENGTH
    assert sw_of(card, "0020000007" + "12345678901234") == SW.WRONG_LENGTH
    assert sw_of(card, "0020000102" + "1234") == SW.WRONG_P1P2
    assert sw_of(card, "0020800002" + "1234") == SW.WRONG_P1P2
    assert wallet_state(card).pin_tries_left == 3


def test_verify_without_a_pin_answers_6a88(sim: Card, keys: IssuerKeys) -> None:
    assert sw_of(sim, verify_pin(PIN_TEXT)) == SW.REFERENCED_DATA_NOT_FOUND
    assert sw_of(sim, "00200000") == SW.REFERENCED_DATA_NOT_FOUND
    do_load(sim, keys, 100)  # no PIN check for loads by default


# --- application life cycle -----------------------------------------------------------------


def test_locked_wallet_answers_9303(keys: IssuerKeys) -> None:
    card = card_with(keys, status="locked")
    response = send(card, select_aid(WALLET_AID))
    assert (response.data, response.sw) == (b"", SW.APPLICATION_LOCKED)
    assert sw_of(card, get_balance()) == SW.APPLICATION_LOCKED
    assert init_sw(card, 0, 100) == SW.APPLICATION_LOCKED
    assert init_sw(card, 1, 100) == SW.APPLICATION_LOCKED
    assert sw_of(card, "805401000F" + "00" * 15) == SW.APPLICATION_LOCKED
    assert sw_of(card, "805200000B" + "00" * 11) == SW.APPLICATION_LOCKED
    assert sw_of(card, get_transaction_prove(pboc.TYPE_EP_PURCHASE, 1)) == SW.APPLICATION_LOCKED
    assert sw_of(card, verify_pin(PIN_TEXT)) == SW.APPLICATION_LOCKED


def test_blocked_wallet_refuses_selection_with_6999(keys: IssuerKeys) -> None:
    card = card_with(keys, status="blocked")
    assert sw_of(card, select_aid(WALLET_AID)) == SW.SELECTED_FILE_INVALIDATED
    assert sw_of(card, "00A40000021001") == SW.SELECTED_FILE_INVALIDATED
    assert sw_of(card, get_balance()) == SW.INS_NOT_SUPPORTED  # nothing got selected


# --- two-level keys -------------------------------------------------------------------------


def test_two_level_keys_end_to_end() -> None:
    keys = make_keys(5, two_level=True)
    assert keys.issuer_factor is not None
    card = sim_card(keys)
    psam = psam_card(keys)
    state = wallet_state(card)
    assert state.dpk == pboc.card_key(keys.mpk, ASN, keys.issuer_factor)
    assert state.dpk != pboc.card_key(keys.mpk, ASN)
    loaded = do_load(card, keys, 4_000)  # the issuer uses the factor for MAC1 and MAC2
    assert load_tac_ok(keys, loaded, 4_000)
    start, debit = do_purchase(card, psam, 1_500, keys.issuer_factor)
    assert issuer.purchase_tac_ok(keys, ASN, start.purchase(1_500), debit.tac)
    assert balance(card) == START_BALANCE_FEN + 4_000 - 1_500
    # Without the factor (Lc 1C) the PSAM derives the one-level key: MAC1 is refused.
    start = start_purchase(card, psam, 100)
    assert sw_of(card, start.debit_command()) == SW.MAC_INVALID
    assert balance(card) == START_BALANCE_FEN + 2_500


def test_two_level_sam_request_uses_lc_24(keys: IssuerKeys) -> None:
    d, t = date_time()
    factor = bytes(range(8))
    request = SamInitRequest(bytes(4), 0, 1, 6, d, t, 1, 0, ASN, factor)
    assert sam_init_purchase(request).encode()[4] == 0x24
    request = dataclasses.replace(request, issuer_factor=None)
    assert sam_init_purchase(request).encode()[4] == 0x1C
