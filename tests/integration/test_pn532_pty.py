"""The terminal's PN532 reader over a real pty, the simulated PN532 with a simulated SIM on the
other end (pcsc.md "Serial NFC reader (PN532 over UART)"; docs/pn532.md).

The PSAM sits in-process (SimReader). Card removal is tried at every card APDU of a purchase and
of a load, both before the card sees the APDU and after it processed it (the answer lost); then,
with the card back, recovery must tell the truth the card's committed state tells.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

if importlib.util.find_spec("serial") is None:  # the [pcsc] extra; make test installs it
    _REASON = "pyserial not installed (pip install -e '.[pcsc]')"
    if os.environ.get("CI") == "true":
        pytest.fail(_REASON + "; CI=true requires it", pytrace=False)
    pytest.skip(_REASON, allow_module_level=True)

import select
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import serial

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.adapters.pn532_sim import DEFAULT_ATS, DEFAULT_NFCID1, Pn532Simulator
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from paycore import pboc, pn532
from paycore.issuer_keys import IssuerKeys
from paycore.purse import InitLoadResponse
from pos_terminal.adapters.pn532_reader import Pn532Error, Pn532Reader, Pn532Timeout
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import CardGone, LoadDone, PurchaseDone, TornPurchase
from tests.unit.card_applet_sim.cardkit import (
    ASN,
    NOW,
    TERMINAL_ID,
    PowerCut,
    date_time,
    det_random,
    make_keys,
    psam_image,
    sim_image,
    wallet_state,
)

pytestmark = pytest.mark.timeout(30)

ACK_TIMEOUT_S = 0.05
RESPONSE_TIMEOUT_S = 0.2
QUIET_S = 0.05
#: How long a test waits for something it expects (only a failing test waits that long).
WAIT_S = 2.0
PURCHASE_FEN = 1_234
LOAD_FEN = 2_000
#: Card APDUs of a purchase (SELECT, READ BINARY, GET BALANCE, INITIALIZE, DEBIT) and of a
#: load (SELECT, READ BINARY, GET BALANCE, INITIALIZE, CREDIT); the PSAM's are in-process.
PURCHASE_CARD_APDUS = 5
LOAD_CARD_APDUS = 5


@dataclass
class IssuerAuthority:
    keys: IssuerKeys
    issued: list[bytes] = field(default_factory=list)

    def authorise_load(
        self,
        asn: bytes,
        init: InitLoadResponse,
        amount_fen: int,
        terminal_id: bytes,
        date_bcd: bytes,
        time_bcd: bytes,
    ) -> bytes:
        mac2 = issuer.load_mac2(self.keys, asn, init, amount_fen, terminal_id, date_bcd, time_bcd)
        self.issued.append(mac2)
        return mac2


@pytest.fixture
def keys() -> IssuerKeys:
    return make_keys()


@pytest.fixture
def sim_card(keys: IssuerKeys) -> Card:
    return bootstrap.memory_card(sim_image(keys), det_random(1))


@pytest.fixture
def pn532_sim(sim_card: Card) -> Iterator[Pn532Simulator]:
    with Pn532Simulator(sim_card) as sim:
        yield sim


@pytest.fixture
def reader(pn532_sim: Pn532Simulator) -> Iterator[Pn532Reader]:
    with Pn532Reader(
        pn532_sim.port, ack_timeout_s=ACK_TIMEOUT_S, response_timeout_s=RESPONSE_TIMEOUT_S
    ) as r:
        yield r


@pytest.fixture
def psam(keys: IssuerKeys) -> card_flows.Psam:
    link = SimReader(bootstrap.memory_card(psam_image(keys), det_random(99)))
    link.present()
    return card_flows.open_psam(link)


class RawLink:
    """The host side spoken by hand with pyserial and the codec."""

    def __init__(self, port: str) -> None:
        self.serial = serial.Serial(port, 115200, timeout=0.01, exclusive=True)
        self.decoder = pn532.FrameDecoder()

    def send(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def read_quiet(self, expect_bytes: int = 0, quiet_s: float = QUIET_S) -> bytes:
        """What arrives: at least ``expect_bytes`` (waiting up to WAIT_S for them), then
        everything until the line has been quiet for ``quiet_s``."""
        out = bytearray()
        deadline = time.monotonic() + WAIT_S
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if len(out) >= expect_bytes and now - last >= quiet_s:
                return bytes(out)
            if len(out) < expect_bytes and now >= deadline:
                return bytes(out)
            data = self.serial.read(4096)
            if data:
                out += data
                last = time.monotonic()

    def read_frames(self, frames: int) -> list[pn532.Frame | pn532.BadFrame]:
        """At least ``frames`` frames (waiting up to WAIT_S), and any that follow at once."""
        out: list[pn532.Frame | pn532.BadFrame] = []
        deadline = time.monotonic() + WAIT_S
        while len(out) < frames and time.monotonic() < deadline:
            out += self.decoder.feed(self.serial.read(4096))
        return out + self.decoder.feed(self.read_quiet())

    def exchange(
        self, command: pn532.Command, frames: int = 2
    ) -> list[pn532.Frame | pn532.BadFrame]:
        self.send(pn532.encode_command(command))
        return self.read_frames(frames)

    def close(self) -> None:
        self.serial.close()


@pytest.fixture
def raw(pn532_sim: Pn532Simulator) -> Iterator[RawLink]:
    link = RawLink(pn532_sim.port)
    yield link
    link.close()


def response(code: int, frames: list[pn532.Frame | pn532.BadFrame]) -> pn532.Response:
    assert len(frames) == 2, frames
    assert frames[0] == pn532.Ack()
    assert isinstance(frames[1], pn532.InformationFrame)
    return pn532.decode_response(frames[1], code)


# --- the PN532 itself ------------------------------------------------------------------------


def test_get_firmware_version_known_answer(raw: RawLink) -> None:
    # pcsc.md: host 00 00 FF 02 FE D4 02 2A 00, answer (after ACK) 00 00 FF 06 FA D5 03 32 01 06 07
    # E8 00.
    raw.send(pn532.WAKE_UP)
    raw.send(bytes.fromhex("0000FF02FED4022A00"))
    answer = pn532.ACK + bytes.fromhex("0000FF06FAD50332010607E800")
    assert raw.read_quiet(len(answer)) == answer


def test_reader_opens_with_wake_up_sam_configuration_and_firmware_check(
    reader: Pn532Reader, pn532_sim: Pn532Simulator
) -> None:
    assert pn532_sim.awake
    assert reader.firmware == pn532.FirmwareVersion(0x32, 0x01, 0x06, 0x07)


def test_asleep_until_woken(raw: RawLink, pn532_sim: Pn532Simulator) -> None:
    assert raw.exchange(pn532.GetFirmwareVersion(), frames=0) == []
    assert not pn532_sim.awake
    raw.send(pn532.WAKE_UP)
    assert response(0x14, raw.exchange(pn532.SamConfiguration())) == pn532.SamConfigured()


def test_bad_checksum_frame_is_dropped(raw: RawLink, pn532_sim: Pn532Simulator) -> None:
    raw.send(pn532.WAKE_UP)
    raw.send(bytes.fromhex("0000FF02FED4022B00"))  # DCS 2B instead of 2A
    assert raw.read_quiet() == b""
    raw.send(bytes.fromhex("0000FF02FDD4022A00"))  # LCS FD instead of FE
    assert raw.read_quiet() == b""
    assert pn532_sim.frames_dropped == 2
    assert response(0x02, raw.exchange(pn532.GetFirmwareVersion())) == pn532.FirmwareVersion(
        0x32, 1, 6, 7
    )


def test_extended_frame_is_dropped(raw: RawLink, pn532_sim: Pn532Simulator) -> None:
    raw.send(pn532.WAKE_UP + bytes.fromhex("0000FFFFFF0002FED4022A00"))
    assert raw.read_quiet() == b""
    assert pn532_sim.frames_dropped == 1


def test_unknown_command_gets_the_error_frame(raw: RawLink) -> None:
    raw.send(pn532.WAKE_UP)
    raw.send(pn532.encode_frame(pn532.TFI_HOST, b"\x60"))
    assert raw.read_frames(2) == [pn532.Ack(), pn532.ErrorFrame()]
    raw.send(pn532.encode_frame(pn532.TFI_HOST, b"\x4a\x01\x03"))  # BrTy 03: not supported
    assert raw.read_frames(2) == [pn532.Ack(), pn532.ErrorFrame()]


def test_nack_repeats_the_last_response(raw: RawLink) -> None:
    raw.send(pn532.WAKE_UP)
    first = raw.exchange(pn532.GetFirmwareVersion())
    raw.send(pn532.NACK)
    assert raw.read_frames(1) == first[1:]


def test_data_exchange_status_without_and_after_a_target(
    raw: RawLink, pn532_sim: Pn532Simulator
) -> None:
    raw.send(pn532.WAKE_UP)
    select = bytes.fromhex("00A4040009A00000000386980701")
    never = response(0x40, raw.exchange(pn532.InDataExchange(1, select)))
    assert never == pn532.DataExchangeResult(pn532.STATUS_NO_TARGET)
    listed = response(0x4A, raw.exchange(pn532.InListPassiveTarget(1)))
    assert listed == pn532.ListedTargets(
        (pn532.TargetA(1, bytes.fromhex("0004"), 0x20, DEFAULT_NFCID1, DEFAULT_ATS),)
    )
    ok = response(0x40, raw.exchange(pn532.InDataExchange(1, select)))
    assert isinstance(ok, pn532.DataExchangeResult)
    assert ok.status == 0 and ok.data[-2:] == b"\x90\x00"
    pn532_sim.take_card_away()
    gone = response(0x40, raw.exchange(pn532.InDataExchange(1, select)))
    assert gone == pn532.DataExchangeResult(pn532.STATUS_TIMEOUT)
    pn532_sim.put_card_back()  # back, but not listed again: still no answer from the card
    stale = response(0x40, raw.exchange(pn532.InDataExchange(1, select)))
    assert stale == pn532.DataExchangeResult(pn532.STATUS_TIMEOUT)


def test_in_release(raw: RawLink) -> None:
    raw.send(pn532.WAKE_UP)
    assert response(0x52, raw.exchange(pn532.InRelease(1))) == pn532.ReleaseResult(0x27)
    response(0x4A, raw.exchange(pn532.InListPassiveTarget(1)))
    assert response(0x52, raw.exchange(pn532.InRelease(1))) == pn532.ReleaseResult(0x00)
    after = response(0x40, raw.exchange(pn532.InDataExchange(1, b"\x00\xb0\x95\x00\x00")))
    assert after == pn532.DataExchangeResult(pn532.STATUS_TIMEOUT)


def test_host_ack_aborts_a_pending_list(raw: RawLink, pn532_sim: Pn532Simulator) -> None:
    raw.send(pn532.WAKE_UP)
    pn532_sim.take_card_away()
    assert raw.exchange(pn532.InListPassiveTarget(1), frames=1) == [pn532.Ack()]  # waits
    assert pn532_sim.waiting_for_card
    raw.send(pn532.ACK)  # abort
    deadline = time.monotonic() + WAIT_S
    while pn532_sim.waiting_for_card and time.monotonic() < deadline:
        time.sleep(0.002)
    assert not pn532_sim.waiting_for_card
    pn532_sim.put_card_back()
    assert raw.read_quiet() == b""  # the aborted command is not answered


# --- the reader --------------------------------------------------------------------------------


def test_exclusive_refuses_a_second_opener(reader: Pn532Reader, pn532_sim: Pn532Simulator) -> None:
    with pytest.raises(serial.SerialException):
        serial.Serial(pn532_sim.port, 115200, exclusive=True)
    second = Pn532Reader(pn532_sim.port, ack_timeout_s=ACK_TIMEOUT_S)
    with pytest.raises(Pn532Error, match="cannot open the PN532 port"):
        second.open()


def test_reader_times_out_when_nothing_answers() -> None:
    master, slave = os.openpty()  # a cable with no PN532 on the other end
    try:
        silent = Pn532Reader(os.ttyname(slave), ack_timeout_s=0.03, response_timeout_s=0.05)
        with pytest.raises(Pn532Timeout, match="did not acknowledge SamConfiguration"):
            silent.open()
    finally:
        os.close(slave)
        os.close(master)


def test_wait_for_card_times_out_then_sees_the_card(
    reader: Pn532Reader, pn532_sim: Pn532Simulator
) -> None:
    pn532_sim.take_card_away()
    started = time.monotonic()
    with pytest.raises(CardGone, match="no card on the PN532"):
        reader.wait_for_card(0.1)
    assert time.monotonic() - started < 1.0
    timer = threading.Timer(0.05, pn532_sim.put_card_back)
    timer.start()
    try:
        target = reader.wait_for_card(1.0)
    finally:
        timer.join()
    assert target.iso14443_4 and target.nfcid1 == DEFAULT_NFCID1


def test_transmit_without_a_card_and_after_release(reader: Pn532Reader) -> None:
    with pytest.raises(CardGone, match="no card listed"):
        reader.transmit(bytes.fromhex("00A4040000"))
    reader.wait_for_card(1.0)
    reader.release()
    with pytest.raises(CardGone):
        reader.transmit(bytes.fromhex("00A4040000"))


class EchoCard:
    """A card that answers every APDU with ``n`` bytes of pattern and 9000 (n = P1 P2)."""

    atr = b"\x3b\x00"

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def power_on(self) -> bytes:
        return self.atr

    def reset(self) -> bytes:
        return self.atr

    def power_off(self) -> None:
        pass

    def transmit(self, apdu: bytes) -> bytes:
        self.seen.append(apdu)
        n = int.from_bytes(apdu[2:4], "big")
        return bytes(i & 0xFF for i in range(n)) + b"\x90\x00"


@pytest.mark.parametrize(("command_len", "answer_len"), [(5, 256), (261, 10), (261, 252), (5, 0)])
def test_long_apdus_are_chained_both_ways(command_len: int, answer_len: int) -> None:
    card = EchoCard()
    with (
        Pn532Simulator(card) as sim,
        Pn532Reader(sim.port, ack_timeout_s=ACK_TIMEOUT_S) as reader,
    ):
        reader.wait_for_card(1.0)
        apdu = b"\x80\x01" + answer_len.to_bytes(2, "big") + bytes(command_len - 4)
        answer = reader.transmit(apdu)
    assert card.seen == [apdu]
    assert answer == bytes(i & 0xFF for i in range(answer_len)) + b"\x90\x00"


# --- the flows through the PN532 ----------------------------------------------------------------


def test_whole_purchase_and_load(
    reader: Pn532Reader, psam: card_flows.Psam, sim_card: Card, keys: IssuerKeys
) -> None:
    reader.wait_for_card(1.0)
    before = wallet_state(sim_card)
    done = card_flows.purchase(reader, psam, PURCHASE_FEN, NOW)
    assert isinstance(done, PurchaseDone)
    assert done.mac2_verified
    assert done.asn == ASN
    assert done.balance_after_fen == before.balance_fen - PURCHASE_FEN
    d, t = date_time()
    purchase = pboc.Purchase(PURCHASE_FEN, TERMINAL_ID, done.terminal_serial, d, t)
    assert issuer.purchase_tac_ok(keys, ASN, purchase, done.tac)
    loaded = card_flows.load(reader, IssuerAuthority(keys), LOAD_FEN, TERMINAL_ID, NOW)
    assert isinstance(loaded, LoadDone)
    assert wallet_state(sim_card).balance_fen == before.balance_fen - PURCHASE_FEN + LOAD_FEN


def put_back(sim: Pn532Simulator, reader: Pn532Reader) -> None:
    assert not sim.card_present, "the scheduled pull never happened"
    sim.put_card_back()
    reader.wait_for_card(1.0)


def check_cards_go_on(
    reader: Pn532Reader, psam: card_flows.Psam, sim_card: Card, before: WalletState
) -> None:
    balance = wallet_state(sim_card).balance_fen
    again = card_flows.purchase(reader, psam, 1, NOW)
    assert isinstance(again, PurchaseDone)
    assert wallet_state(sim_card).balance_fen == balance - 1
    assert balance in (before.balance_fen, before.balance_fen - PURCHASE_FEN,
                       before.balance_fen + LOAD_FEN)  # fmt: skip


@pytest.mark.parametrize("after_processing", [False, True], ids=["before", "answer-lost"])
@pytest.mark.parametrize("k", range(1, PURCHASE_CARD_APDUS + 1))
def test_card_removed_at_every_purchase_apdu(
    k: int,
    after_processing: bool,
    reader: Pn532Reader,
    pn532_sim: Pn532Simulator,
    psam: card_flows.Psam,
    sim_card: Card,
    keys: IssuerKeys,
) -> None:
    reader.wait_for_card(1.0)
    before = wallet_state(sim_card)
    pn532_sim.pull_at_apdu(k, after_processing=after_processing)
    try:
        outcome: PurchaseDone | TornPurchase | CardGone = card_flows.purchase(
            reader, psam, PURCHASE_FEN, NOW
        )
    except CardGone as exc:
        outcome = exc
    assert isinstance(outcome, CardGone | TornPurchase)
    assert isinstance(outcome, TornPurchase) == (k == PURCHASE_CARD_APDUS)
    put_back(pn532_sim, reader)

    after = wallet_state(sim_card)
    happened = after.balance_fen != before.balance_fen
    assert happened == (k == PURCHASE_CARD_APDUS and after_processing)
    assert after.balance_fen == before.balance_fen - (PURCHASE_FEN if happened else 0)
    proof = card_flows.recover(reader, ASN, pboc.TYPE_EP_PURCHASE, before.offline_counter)
    assert (proof is not None) == happened
    if isinstance(outcome, TornPurchase):
        recovered = card_flows.recover_purchase(reader, outcome)
        assert (recovered is not None) == happened
        if recovered is not None:
            assert proof is not None and recovered.tac == proof.tac
            assert recovered.balance_after_fen == after.balance_fen
            d, t = date_time()
            purchase = pboc.Purchase(PURCHASE_FEN, TERMINAL_ID, outcome.terminal_serial, d, t)
            assert issuer.purchase_tac_ok(keys, ASN, purchase, recovered.tac)
    check_cards_go_on(reader, psam, sim_card, before)


@pytest.mark.parametrize("after_processing", [False, True], ids=["before", "answer-lost"])
@pytest.mark.parametrize("k", range(1, LOAD_CARD_APDUS + 1))
def test_card_removed_at_every_load_apdu(
    k: int,
    after_processing: bool,
    reader: Pn532Reader,
    pn532_sim: Pn532Simulator,
    psam: card_flows.Psam,
    sim_card: Card,
    keys: IssuerKeys,
) -> None:
    reader.wait_for_card(1.0)
    before = wallet_state(sim_card)
    authority = IssuerAuthority(keys)
    pn532_sim.pull_at_apdu(k, after_processing=after_processing)
    with pytest.raises(CardGone):
        card_flows.load(reader, authority, LOAD_FEN, TERMINAL_ID, NOW)
    put_back(pn532_sim, reader)

    after = wallet_state(sim_card)
    happened = after.balance_fen != before.balance_fen
    assert happened == (k == LOAD_CARD_APDUS and after_processing)
    assert after.balance_fen == before.balance_fen + (LOAD_FEN if happened else 0)
    proof = card_flows.recover(reader, ASN, pboc.TYPE_EP_LOAD, before.online_counter)
    assert (proof is not None) == happened
    if proof is not None:
        d, t = date_time()
        assert proof.mac2 == authority.issued[-1]
        assert issuer.load_tac_ok(
            keys, ASN, before.balance_fen + LOAD_FEN, before.online_counter,
            pboc.Load(LOAD_FEN, TERMINAL_ID), d, t, proof.tac,
        )  # fmt: skip
    check_cards_go_on(reader, psam, sim_card, before)


def test_recover_refuses_another_card(
    reader: Pn532Reader, pn532_sim: Pn532Simulator, psam: card_flows.Psam, sim_card: Card
) -> None:
    reader.wait_for_card(1.0)
    before = wallet_state(sim_card)
    with pytest.raises(card_flows.FlowError, match="not the card"):
        card_flows.recover(reader, b"\x99" * 8, pboc.TYPE_EP_PURCHASE, before.offline_counter)


# --- the reader against a scripted PN532 (faults the simulator does not make) ------------------


class ScriptedPn532:
    """The PN532 end of a pty answering each host frame with what ``answer`` returns."""

    def __init__(self, answer: Callable[[pn532.Frame], bytes]) -> None:
        self.answer = answer
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.received: list[pn532.Frame] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        decoder = pn532.FrameDecoder()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.005)
            if not ready:
                continue
            for frame in decoder.feed(os.read(self.master, 4096)):
                assert not isinstance(frame, pn532.BadFrame)
                self.received.append(frame)
                os.write(self.master, self.answer(frame))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)


FIRMWARE_ANSWER = pn532.encode_response(pn532.FirmwareVersion(0x32, 1, 6, 7))
CORRUPTED_FIRMWARE_ANSWER = FIRMWARE_ANSWER[:-2] + b"\x00\x00"  # bad DCS


def well_behaved(frame: pn532.Frame) -> bytes:
    """ACK and a sensible answer to SAMConfiguration and GetFirmwareVersion; None otherwise."""
    if not isinstance(frame, pn532.InformationFrame):
        return b""
    if frame.code == pn532.CMD_SAM_CONFIGURATION:
        return pn532.ACK + pn532.encode_response(pn532.SamConfigured())
    if frame.code == pn532.CMD_GET_FIRMWARE_VERSION:
        return pn532.ACK + FIRMWARE_ANSWER
    if frame.code == pn532.CMD_IN_LIST_PASSIVE_TARGET:
        target = pn532.TargetA(1, bytes.fromhex("0004"), 0x20, DEFAULT_NFCID1, DEFAULT_ATS)
        return pn532.ACK + pn532.encode_response(pn532.ListedTargets((target,)))
    return b""


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[pn532.Frame], bytes]], ScriptedPn532]]:
    peers: list[ScriptedPn532] = []

    def make(answer: Callable[[pn532.Frame], bytes]) -> ScriptedPn532:
        peers.append(ScriptedPn532(answer))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


ScriptedFactory = Callable[[Callable[[pn532.Frame], bytes]], ScriptedPn532]


def test_reader_nacks_a_corrupted_response(scripted: ScriptedFactory) -> None:
    nacked: list[pn532.Frame] = []

    def answer(frame: pn532.Frame) -> bytes:
        if isinstance(frame, pn532.Nack):
            nacked.append(frame)
            return FIRMWARE_ANSWER
        if isinstance(frame, pn532.InformationFrame) and frame.code == 0x02:
            return pn532.ACK + CORRUPTED_FIRMWARE_ANSWER
        return well_behaved(frame)

    peer = scripted(answer)
    with Pn532Reader(peer.port, ack_timeout_s=ACK_TIMEOUT_S, response_timeout_s=0.2) as reader:
        assert reader.firmware == pn532.FirmwareVersion(0x32, 1, 6, 7)
    assert len(nacked) == 1


def test_reader_gives_up_after_repeated_corruption(scripted: ScriptedFactory) -> None:
    def answer(frame: pn532.Frame) -> bytes:
        if isinstance(frame, pn532.Nack):
            return CORRUPTED_FIRMWARE_ANSWER
        if isinstance(frame, pn532.InformationFrame) and frame.code == 0x02:
            return pn532.ACK + CORRUPTED_FIRMWARE_ANSWER
        return well_behaved(frame)

    peer = scripted(answer)
    reader = Pn532Reader(peer.port, ack_timeout_s=ACK_TIMEOUT_S, response_timeout_s=0.2)
    with pytest.raises(Pn532Error, match="data checksum"):
        reader.open()
    assert peer.received.count(pn532.Nack()) == 2


def test_reader_refuses_another_chip(scripted: ScriptedFactory) -> None:
    def answer(frame: pn532.Frame) -> bytes:
        if isinstance(frame, pn532.InformationFrame) and frame.code == 0x02:
            return pn532.ACK + pn532.encode_response(pn532.FirmwareVersion(0x31, 1, 6, 7))
        return well_behaved(frame)

    reader = Pn532Reader(scripted(answer).port, ack_timeout_s=ACK_TIMEOUT_S)
    with pytest.raises(Pn532Error, match="IC 31 is not a PN532"):
        reader.open()


def test_reader_reports_the_error_frame(scripted: ScriptedFactory) -> None:
    def answer(frame: pn532.Frame) -> bytes:
        if isinstance(frame, pn532.InformationFrame) and frame.code == 0x14:
            return pn532.ACK + pn532.ERROR_FRAME
        return well_behaved(frame)

    reader = Pn532Reader(scripted(answer).port, ack_timeout_s=ACK_TIMEOUT_S)
    with pytest.raises(Pn532Error, match="answered SamConfiguration with an error frame"):
        reader.open()


def test_silent_data_exchange_is_aborted_and_is_card_gone(scripted: ScriptedFactory) -> None:
    peer = scripted(lambda frame: pn532.ACK if _is_exchange(frame) else well_behaved(frame))
    with Pn532Reader(peer.port, ack_timeout_s=ACK_TIMEOUT_S, response_timeout_s=0.05) as reader:
        reader.wait_for_card(1.0)
        with pytest.raises(CardGone, match="no answer to InDataExchange"):
            reader.transmit(bytes.fromhex("00A4040000"))
        assert reader.target is None
        deadline = time.monotonic() + 1.0
        while pn532.Ack() not in peer.received and time.monotonic() < deadline:
            time.sleep(0.005)
    assert pn532.Ack() in peer.received  # the host ACK aborted the command


def test_pn532_that_never_lists_a_card_is_card_gone(scripted: ScriptedFactory) -> None:
    def answer(frame: pn532.Frame) -> bytes:
        if isinstance(frame, pn532.InformationFrame) and frame.code == 0x4A:
            return pn532.ACK + pn532.encode_response(pn532.ListedTargets(()))  # finite retries
        return well_behaved(frame)

    with (
        Pn532Reader(scripted(answer).port, ack_timeout_s=ACK_TIMEOUT_S) as reader,
        pytest.raises(CardGone, match="no card"),
    ):
        reader.wait_for_card(0.1)


def _is_exchange(frame: pn532.Frame) -> bool:
    return isinstance(frame, pn532.InformationFrame) and frame.code == pn532.CMD_IN_DATA_EXCHANGE


@pytest.mark.parametrize("point", ["tmp-written", "renamed"])
def test_power_cut_in_the_card_through_the_pn532(
    point: str, keys: IssuerKeys, psam: card_flows.Psam
) -> None:
    """The card loses power during DEBIT (a purchase's one commit), before or after its commit:
    the PN532 answers status 01, the flow returns TornPurchase, and recovery with the card back
    tells what the card committed."""
    cut = PowerCut(point)
    armed = False

    def hook(at: str) -> None:
        if armed:
            cut(at)

    card = bootstrap.memory_card(sim_image(keys), det_random(1), hook=hook)
    with (
        Pn532Simulator(card) as sim,
        Pn532Reader(sim.port, ack_timeout_s=ACK_TIMEOUT_S) as reader,
    ):
        reader.wait_for_card(1.0)
        before = wallet_state(card)
        armed = True
        outcome = card_flows.purchase(reader, psam, PURCHASE_FEN, NOW)
        armed = False
        assert cut.fired
        assert isinstance(outcome, TornPurchase)
        put_back(sim, reader)
        happened = wallet_state(card).balance_fen != before.balance_fen
        assert happened == (point == "renamed")
        recovered = card_flows.recover_purchase(reader, outcome)
        assert (recovered is not None) == happened
        check_cards_go_on(reader, psam, card, before)


def test_configuration_limits(sim_card: Card) -> None:
    with pytest.raises(ValueError, match="timeouts"):
        Pn532Reader("/dev/null", ack_timeout_s=0)
    with pytest.raises(ValueError, match="timeouts"):
        Pn532Reader("/dev/null", response_timeout_s=61)
    with pytest.raises(ValueError, match="NFCID1"):
        Pn532Simulator(sim_card, nfcid1=b"\x08\x12")
    with pytest.raises(ValueError, match="ATS"):
        Pn532Simulator(sim_card, ats=b"\x03\x78")
