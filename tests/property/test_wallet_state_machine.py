"""A state machine over a SIM wallet, a PSAM and the issuer's keys (card.md §2-§5).

Rules: loads, purchases, torn purchases and torn loads (the card processed DEBIT/CREDIT and the
answer was lost, or the card was pulled before it saw the command; recovered with GET
TRANSACTION PROVE), power cycles and junk APDUs. The model counts what the terminal knows:
completed transactions and torn ones the card proves happened. Invariants: the card's balance
is initial + loads - purchases, within 0..ceiling; counters only go up and match the model;
the newest log record is the last transaction; the PSAM's serial only goes up.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.domain.issuance import new_psam_image, new_sim_image
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.wallet import WalletState
from paycore import issuer_keys, pboc
from paycore.purse import (
    BALANCE_CEILING_FEN,
    PSAM_AID,
    PURCHASE_LIMIT_FEN,
    WALLET_AID,
    InitLoadResponse,
    LogRecord,
)
from paycore.sw import SW
from pos_terminal.adapters.sim_reader import LoseAnswerReader, SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import (
    CardGone,
    CardRefused,
    FlowError,
    PurchaseDone,
    TornPurchase,
)

KEYS = issuer_keys.generate(random.Random(7).randbytes, two_level=True)
ASN = bytes.fromhex("8888000000000042")
TERMINAL_ID = bytes.fromhex("A1A2A3A4A5A6")
NOW = datetime(2024, 5, 17, 9, 15, 0)
INITIAL_FEN = 20_000
INS_CREDIT, INS_DEBIT = 0x52, 0x54
#: What the rules did over the whole run (checked at the end: every path was taken).
TALLY: Counter[str] = Counter()

amounts = st.one_of(
    st.integers(1, 60_000),
    st.sampled_from((0, 1, PURCHASE_LIMIT_FEN - 1, PURCHASE_LIMIT_FEN, BALANCE_CEILING_FEN)),
)
junk = st.binary(max_size=40).filter(lambda a: not (len(a) > 1 and a[1] == 0x70 and a[0] < 0x80))


@dataclass
class IssuerAuthority:
    def authorise_load(
        self,
        asn: bytes,
        init: InitLoadResponse,
        amount_fen: int,
        terminal_id: bytes,
        date_bcd: bytes,
        time_bcd: bytes,
    ) -> bytes:
        return issuer.load_mac2(KEYS, asn, init, amount_fen, terminal_id, date_bcd, time_bcd)


class PullBeforeReader:
    """Pulls the card before the command with INS ``ins`` reaches it."""

    def __init__(self, reader: SimReader, ins: int) -> None:
        self._reader = reader
        self._ins = ins

    def transmit(self, apdu: bytes) -> bytes:
        if len(apdu) > 1 and apdu[1] == self._ins:
            self._reader.pull()
        return self._reader.transmit(apdu)


class WalletMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        image = new_sim_image(KEYS, ASN, today=date(2024, 5, 17), balance_fen=INITIAL_FEN)
        self.sim_card = bootstrap.memory_card(image, random.Random(1).randbytes)
        self.psam_card = bootstrap.memory_card(new_psam_image(KEYS, TERMINAL_ID))
        self.sim = SimReader(self.sim_card)
        self.psam_reader = SimReader(self.psam_card)
        self.sim.present()
        self.psam_reader.present()
        self.psam = card_flows.open_psam(self.psam_reader, KEYS.issuer_factor)
        # The model: what the terminal knows happened.
        self.loads_fen = 0
        self.purchases_fen = 0
        self.online = 0
        self.offline = 0
        self.last: tuple[int, int, int] | None = None  # (type, amount, counter after)
        self.seen_online = self.seen_offline = self.seen_serial = 0
        self.minute = 0

    # --- helpers -----------------------------------------------------------------------------

    @property
    def balance_fen(self) -> int:
        return INITIAL_FEN + self.loads_fen - self.purchases_fen

    def _now(self) -> datetime:
        self.minute += 1
        return NOW.replace(hour=9 + self.minute // 60 % 10, minute=self.minute % 60)

    def _can_load(self, amount: int) -> bool:
        return amount > 0 and self.balance_fen + amount <= BALANCE_CEILING_FEN

    def _can_purchase(self, amount: int) -> bool:
        return 0 < amount < PURCHASE_LIMIT_FEN and amount <= self.balance_fen

    def _booked_load(self, amount: int) -> None:
        self.loads_fen += amount
        self.online += 1
        self.last = (pboc.TYPE_EP_LOAD, amount, self.online)

    def _booked_purchase(self, done: PurchaseDone) -> None:
        purchase = pboc.Purchase(
            done.amount_fen, TERMINAL_ID, done.terminal_serial, done.date_bcd, done.time_bcd
        )
        assert issuer.purchase_tac_ok(KEYS, ASN, purchase, done.tac)
        assert done.counter == self.offline
        self.purchases_fen += done.amount_fen
        self.offline += 1
        self.last = (pboc.TYPE_EP_PURCHASE, done.amount_fen, self.offline)

    def _load_tac_ok(self, amount: int, when: datetime, tac: bytes) -> bool:
        d, t = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
        return issuer.load_tac_ok(
            KEYS, ASN, self.balance_fen + amount, self.online, pboc.Load(amount, TERMINAL_ID),
            bytes.fromhex(d), bytes.fromhex(t), tac,
        )  # fmt: skip

    # --- rules -------------------------------------------------------------------------------

    @rule(amount=amounts)
    def load(self, amount: int) -> None:
        when = self._now()
        try:
            done = card_flows.load(self.sim, IssuerAuthority(), amount, TERMINAL_ID, when)
        except CardRefused as refused:
            TALLY["load refused"] += 1
            assert not self._can_load(amount)
            assert (refused.step, refused.sw) == ("INITIALIZE FOR LOAD", SW.LIMIT_EXCEEDED)
            return
        assert self._can_load(amount)
        assert done.balance_after_fen == self.balance_fen + amount
        assert done.counter == self.online
        assert self._load_tac_ok(amount, when, done.tac)
        self._booked_load(amount)
        TALLY["load"] += 1

    @rule(amount=amounts)
    def purchase(self, amount: int) -> None:
        try:
            done = card_flows.purchase(self.sim, self.psam, amount, self._now())
        except CardRefused:
            raise
        except FlowError:
            TALLY["purchase refused"] += 1
            assert not self._can_purchase(amount)
            return
        assert self._can_purchase(amount)
        assert isinstance(done, PurchaseDone)
        assert done.mac2_verified
        assert done.balance_after_fen == self.balance_fen - amount
        self._booked_purchase(done)
        TALLY["purchase"] += 1

    @precondition(lambda self: self.balance_fen > 0)
    @rule(data=st.data(), answer_lost=st.booleans())
    def torn_purchase(self, data: st.DataObject, answer_lost: bool) -> None:
        amount = data.draw(st.integers(1, min(self.balance_fen, PURCHASE_LIMIT_FEN - 1)))
        link = (
            LoseAnswerReader(self.sim, INS_DEBIT)
            if answer_lost
            else PullBeforeReader(self.sim, INS_DEBIT)
        )
        torn = card_flows.purchase(link, self.psam, amount, self._now())
        assert isinstance(torn, TornPurchase)
        assert torn.counter == self.offline
        self.sim.present()  # the same card again
        recovered = card_flows.recover_purchase(self.sim, torn)
        assert (recovered is not None) == answer_lost
        TALLY[f"torn purchase, answer lost {answer_lost}"] += 1
        if recovered is not None:
            self._booked_purchase(recovered)

    @precondition(lambda self: self.balance_fen < BALANCE_CEILING_FEN)
    @rule(data=st.data(), answer_lost=st.booleans())
    def torn_load(self, data: st.DataObject, answer_lost: bool) -> None:
        amount = data.draw(st.integers(1, BALANCE_CEILING_FEN - self.balance_fen))
        link = (
            LoseAnswerReader(self.sim, INS_CREDIT)
            if answer_lost
            else PullBeforeReader(self.sim, INS_CREDIT)
        )
        when = self._now()
        try:
            card_flows.load(link, IssuerAuthority(), amount, TERMINAL_ID, when)
        except CardGone:
            pass
        else:
            raise AssertionError("the load should have been torn")
        self.sim.present()
        proof = card_flows.recover(self.sim, ASN, pboc.TYPE_EP_LOAD, self.online)
        assert (proof is not None) == answer_lost
        TALLY[f"torn load, answer lost {answer_lost}"] += 1
        if proof is not None:
            assert self._load_tac_ok(amount, when, proof.tac)
            self._booked_load(amount)

    @rule()
    def power_cycle(self) -> None:
        TALLY["power cycle"] += 1
        self.sim.pull()
        self.psam_reader.pull()
        self.sim.present()
        self.psam_reader.present()
        self.psam = card_flows.open_psam(self.psam_reader, KEYS.issuer_factor)

    @rule(apdu=junk, to_psam=st.booleans())
    def junk_apdu(self, apdu: bytes, to_psam: bool) -> None:
        response = (self.psam_reader if to_psam else self.sim).transmit(apdu)
        assert len(response) >= 2
        TALLY["junk"] += 1
        if to_psam:  # junk may have deselected the PSAM application
            self.psam = card_flows.open_psam(self.psam_reader, KEYS.issuer_factor)

    # --- invariants --------------------------------------------------------------------------

    def _wallet(self) -> WalletState:
        state = self.sim_card.image.state_of(WALLET_AID)
        assert isinstance(state, WalletState)
        return state

    @invariant()
    def balance_is_loads_minus_purchases(self) -> None:
        state = self._wallet()
        assert 0 <= state.balance_fen <= state.ceiling_fen == BALANCE_CEILING_FEN
        assert state.balance_fen == self.balance_fen

    @invariant()
    def counters_only_go_up(self) -> None:
        state = self._wallet()
        assert state.online_counter >= self.seen_online
        assert state.offline_counter >= self.seen_offline
        assert (state.online_counter, state.offline_counter) == (self.online, self.offline)
        self.seen_online, self.seen_offline = state.online_counter, state.offline_counter
        psam = self.psam_card.image.state_of(PSAM_AID)
        assert isinstance(psam, PsamState)
        assert psam.serial >= self.seen_serial
        self.seen_serial = psam.serial

    @invariant()
    def newest_log_record_is_the_last_transaction(self) -> None:
        log = self._wallet().log
        if self.last is None:
            assert log == ()
            return
        newest = LogRecord.decode(log[0])
        assert (newest.tx_type, newest.amount_fen, newest.counter) == self.last
        assert newest.terminal_id == TERMINAL_ID
        assert len(log) == min(10, self.online + self.offline)


MACHINE = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_wallet_state_machine() -> None:
    TALLY.clear()
    run_state_machine_as_test(WalletMachine, settings=MACHINE)
    print(dict(TALLY))
    for path in (
        "load", "load refused", "purchase", "purchase refused", "power cycle", "junk",
        "torn purchase, answer lost True", "torn purchase, answer lost False",
        "torn load, answer lost True", "torn load, answer lost False",
    ):  # fmt: skip
        assert TALLY[path] >= 20, (path, dict(TALLY))
