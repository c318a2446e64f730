"""The terminal (``pos_terminal.service.Terminal``) through its readers against the real host on
loopback: the in-process reader and the PN532 simulator on a real pty, opened by their reader
specs (``readers.open_reader``). A whole sale and a load with their receipts; then the card taken
away at every card APDU of a sale and of a load, before the card sees the APDU and after it
processed it (answer lost): never a crash, a CardGone is a refused or torn outcome, and with the
same card back the terminal tells the truth the card committed (card.md §4), the host agrees,
and the next sale goes through. (The same through real pcscd: test_pcsc_terminal.py.)"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain.runtime import Card
from paycore.money import format_fen
from pos_terminal.adapters.readers import CardReader, open_reader
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain.card_flows import CardGone
from pos_terminal.domain.receipt import ReceiptHeader, txn_receipt
from pos_terminal.service import Terminal, TerminalCode, TxnOutcome
from tests.integration.acquiring.host_env import MID, TerminalSetup
from tests.integration.pos_readers import pos_env
from tests.integration.pos_readers.pos_env import OPENING_BALANCE_FEN, Host
from tests.unit.card_applet_sim.cardkit import wallet_state

pytestmark = pytest.mark.timeout(120)

HAVE_SERIAL = importlib.util.find_spec("serial") is not None
if not HAVE_SERIAL and os.environ.get("CI") == "true":
    pytest.fail("pyserial not installed; CI=true requires it", pytrace=False)

SALE_FEN = 1_234
LOAD_FEN = 2_000
#: Card APDUs of a sale (SELECT, READ EF15, GET BALANCE, INITIALIZE, DEBIT) and of a load
#: (SELECT, READ EF15, GET BALANCE, INITIALIZE FOR LOAD, CREDIT); the PSAM's are apart.
CARD_APDUS = 5
CARD_WAIT_S = 2.0


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    with pos_env.running_host(tmp_path_factory.mktemp("host")) as running:
        yield running


class InProcessRig:
    def __init__(self, card: Card) -> None:
        self.card = card
        self.sim = SimReader(card)
        self._hand: tuple[int, bool] | None = None
        self._seen = 0
        self._pulled = False
        self.link: CardReader = self
        self.name = "in-process"
        self.sim.present()

    def pull_at(self, apdu_index: int, *, after_processing: bool) -> None:
        self._hand, self._seen, self._pulled = (apdu_index, after_processing), 0, False

    def pulled(self) -> bool:
        return self._pulled

    def put_back(self) -> None:
        assert not self.sim.in_field
        self.sim.present()
        self.sim.wait_for_card(CARD_WAIT_S)

    # the reader the terminal sees
    def wait_for_card(self, timeout_s: float) -> object:
        return self.sim.wait_for_card(timeout_s)

    def transmit(self, apdu: bytes) -> bytes:
        self._seen += 1
        if self._hand is None or self._seen != self._hand[0]:
            return self.sim.transmit(apdu)
        after = self._hand[1]
        self._hand, self._pulled = None, True
        if after:
            self.sim.transmit(apdu)  # the card processes it (and may commit) ...
        self.sim.pull()  # ... and leaves before its answer reaches the terminal
        raise CardGone("the card left the field")

    def close(self) -> None:
        self.sim.close()


class Pn532Rig:
    def __init__(self, card: Card) -> None:
        from card_applet_sim.adapters.pn532_sim import Pn532Simulator

        self.card = card
        self.sim = Pn532Simulator(card)
        self.sim.start()
        try:
            self.link = open_reader(f"serial:{self.sim.port}")
            self.link.wait_for_card(CARD_WAIT_S)
        except BaseException:
            self.sim.stop()
            raise

    def pull_at(self, apdu_index: int, *, after_processing: bool) -> None:
        self.sim.pull_at_apdu(apdu_index, after_processing=after_processing)

    def pulled(self) -> bool:
        return not self.sim.card_present

    def put_back(self) -> None:
        self.sim.put_card_back()
        self.link.wait_for_card(CARD_WAIT_S)

    def close(self) -> None:
        try:
            self.link.close()
        finally:
            self.sim.stop()


READERS = [
    "in-process",
    pytest.param(
        "pn532", marks=pytest.mark.skipif(not HAVE_SERIAL, reason="pyserial not installed")
    ),
]


@pytest.fixture(params=READERS)
def setup_and_rig(
    request: pytest.FixtureRequest, host: Host
) -> Iterator[tuple[TerminalSetup, InProcessRig | Pn532Rig]]:
    setup = host.take()
    card = card_bootstrap.memory_card(pos_env.sim_image(setup))
    rig: InProcessRig | Pn532Rig = (
        InProcessRig(card) if request.param == "in-process" else Pn532Rig(card)
    )
    try:
        yield setup, rig
    finally:
        rig.close()


def psam_link(setup: TerminalSetup) -> SimReader:
    reader = SimReader(card_bootstrap.memory_card(pos_env.psam_image(setup)))
    reader.present()
    return reader


def check_agreement(host: Host, setup: TerminalSetup, card: Card) -> None:
    """The card's balance moved exactly as the host's completed transactions say."""
    balance = wallet_state(card).balance_fen
    assert balance - OPENING_BALANCE_FEN == host.card_delta_fen(setup.terminal_id)


def test_sale_and_load_with_receipts(
    host: Host, setup_and_rig: tuple[TerminalSetup, InProcessRig | Pn532Rig], tmp_path: Path
) -> None:
    setup, rig = setup_and_rig
    with pos_env.terminal(host, setup, tmp_path, rig.link, psam_link(setup)) as t:
        assert t.sign_on().ok
        sold = t.sale(SALE_FEN)
        assert sold.approved, sold
        assert sold.code == "00" and sold.tac is not None and sold.rrn
        assert sold.balance_after_fen == OPENING_BALANCE_FEN - SALE_FEN
        loaded = t.load(LOAD_FEN)
        assert loaded.approved, loaded
        assert loaded.balance_after_fen == OPENING_BALANCE_FEN - SALE_FEN + LOAD_FEN
        assert t.flush() == 0
    assert wallet_state(rig.card).balance_fen == OPENING_BALANCE_FEN - SALE_FEN + LOAD_FEN
    check_agreement(host, setup, rig.card)
    header = ReceiptHeader("Noodle House", MID, setup.terminal_id)
    receipt = txn_receipt(sold, header)
    assert f"SALE                    APPROVED\nCARD            {setup.asn[:6]}******" in receipt
    assert f"RRN {sold.rrn:>28}\n" in receipt
    assert f"TAC {sold.tac.hex().upper():>28}\n" in receipt
    assert f"BALANCE CNY {format_fen(OPENING_BALANCE_FEN - SALE_FEN):>20}\n" in receipt
    assert setup.asn not in receipt


def _outcome_after_pull(
    t: Terminal, kind: str, rig: InProcessRig | Pn532Rig, k: int, after: bool
) -> TxnOutcome:
    rig.pull_at(k, after_processing=after)
    outcome = t.sale(SALE_FEN) if kind == "sale" else t.load(LOAD_FEN)
    assert rig.pulled(), "the scheduled pull never happened"
    return outcome


@pytest.mark.parametrize("after", [False, True], ids=["before", "answer-lost"])
@pytest.mark.parametrize("k", range(1, CARD_APDUS + 1))
@pytest.mark.parametrize("kind", ["sale", "load"])
def test_card_taken_away_at_every_apdu(
    kind: str,
    k: int,
    after: bool,
    host: Host,
    setup_and_rig: tuple[TerminalSetup, InProcessRig | Pn532Rig],
    tmp_path: Path,
) -> None:
    setup, rig = setup_and_rig
    amount_fen = SALE_FEN if kind == "sale" else LOAD_FEN
    sign = -1 if kind == "sale" else 1
    with pos_env.terminal(host, setup, tmp_path, rig.link, psam_link(setup)) as t:
        before_fen = wallet_state(rig.card).balance_fen
        outcome = _outcome_after_pull(t, kind, rig, k, after)
        assert not outcome.approved
        last = k == CARD_APDUS  # DEBIT / CREDIT: only there may the card have paid
        assert outcome.code == (TerminalCode.TORN if last else TerminalCode.CARD), outcome
        happened = wallet_state(rig.card).balance_fen != before_fen
        assert happened == (last and after)

        rig.put_back()  # the same card again
        if last:
            recovered = t.recover()
            assert recovered is not None
            assert recovered.code == TerminalCode.RECOVERED
            assert recovered.approved == happened, recovered
            if happened:
                assert recovered.tac is not None
                assert recovered.balance_after_fen == before_fen + sign * amount_fen
        assert t.recover() is None  # nothing torn any more
        again = t.sale(100)
        assert again.approved, again
        assert t.flush() == 0
        assert all(e.final for e in t.history(10))
    expected = before_fen + (sign * amount_fen if happened else 0) - 100
    assert wallet_state(rig.card).balance_fen == expected
    check_agreement(host, setup, rig.card)


def test_a_torn_sale_waits_for_its_card_and_refuses_another(host: Host, tmp_path: Path) -> None:
    """While a sale is torn, a different card is refused (WRONG_CARD) and changes nothing; the
    right card then finishes it."""
    setup, other = host.take(), host.take()
    card = card_bootstrap.memory_card(pos_env.sim_image(setup))
    rig = InProcessRig(card)
    stranger = card_bootstrap.memory_card(pos_env.sim_image(other))
    with pos_env.terminal(host, setup, tmp_path, rig, psam_link(setup)) as t:
        torn = _outcome_after_pull(t, "sale", rig, CARD_APDUS, True)
        assert torn.code == TerminalCode.TORN
        rig.sim.card = stranger
        rig.sim.present()
        wrong = t.sale(500)
        assert wrong.code == TerminalCode.WRONG_CARD and not wrong.approved
        assert wallet_state(stranger).balance_fen == OPENING_BALANCE_FEN
        rig.sim.card = card
        rig.sim.present()
        finished = t.sale(500)  # the next tap of the right card finishes the torn sale first
        assert finished.code == TerminalCode.RECOVERED and finished.approved
        assert finished.amount_fen == SALE_FEN
    check_agreement(host, setup, card)
