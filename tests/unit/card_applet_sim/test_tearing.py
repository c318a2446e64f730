"""Power cuts at every write point and card pulls between every two APDUs (card.md §1
persistence, §4 recovery).

After each cut the card is reloaded from its store (a fresh ``file_card`` for the file store)
and must hold exactly the old or exactly the new state (balance, counter, log record and proof
together); GET TRANSACTION PROVE for counter + 1 answers 9000 iff the balance changed, and then
its TAC verifies with the issuer's keys; the PSAM's serial never goes backwards; and no fen is
created or lost: balance == initial + proven loads - proven purchases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.adapters.stores import WRITE_POINTS, MemoryStore
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import Proof, WalletState
from card_applet_sim.ports import CardStore
from paycore import pboc
from paycore.issuer_keys import IssuerKeys
from paycore.purse import PSAM_AID, WALLET_AID, InitLoadResponse, LogRecord
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import CardGone, LoadDone, PurchaseDone, TornPurchase
from pos_terminal.ports import ApduLink
from tests.unit.card_applet_sim.cardkit import (
    ASN,
    NOW,
    TERMINAL_ID,
    PowerCut,
    date_time,
    det_random,
    psam_image,
    sim_image,
)

INITIAL_FEN = 10_000
LOAD_FEN = 2_000
PURCHASE_FEN = 1_234
TX_MAX = 3  # transactions per run; the cut hits the n-th write of its point
LOAD_APDUS = 5  # SELECT, READ BINARY, GET BALANCE, INITIALIZE, CREDIT
PURCHASE_APDUS = 7  # SELECT, READ BINARY, GET BALANCE, INITIALIZE, INIT SAM, DEBIT, CREDIT SAM
MEMORY_WRITE_POINTS = ("tmp-written", "renamed")

Outcome = LoadDone | PurchaseDone | TornPurchase | CardGone


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


class Bench:
    """A SIM and a PSAM on stores (files or memory) in readers, and the terminal's ledger of
    what it knows happened."""

    def __init__(
        self,
        tmp_path: Path,
        keys: IssuerKeys,
        *,
        memory: bool = False,
        sim_hook: PowerCut | None = None,
        psam_hook: PowerCut | None = None,
    ) -> None:
        self.keys = keys
        self.memory = memory
        self.sim_path = tmp_path / "sim.card"
        self.psam_path = tmp_path / "psam.card"
        self.sim_store: CardStore
        self.psam_store: CardStore
        if memory:
            self.sim_store = MemoryStore(sim_image(keys, balance_fen=INITIAL_FEN), _hook(sim_hook))
            self.psam_store = MemoryStore(psam_image(keys), _hook(psam_hook))
        else:
            bootstrap.save_new_image(self.sim_path, sim_image(keys, balance_fen=INITIAL_FEN))
            bootstrap.save_new_image(self.psam_path, psam_image(keys))
            self.sim_store = bootstrap.file_store(self.sim_path, fsync=False, hook=sim_hook)
            self.psam_store = bootstrap.file_store(self.psam_path, fsync=False, hook=psam_hook)
        self.sim = SimReader(bootstrap.card_on_store(self.sim_store, "sim", det_random(1)))
        self.psam_reader = SimReader(bootstrap.card_on_store(self.psam_store, "psam"))
        self.sim.present()
        self.psam_reader.present()
        self.psam = card_flows.open_psam(self.psam_reader)
        self.authority = IssuerAuthority(keys)
        self.loads_fen = 0
        self.purchases_fen = 0
        self.serials_seen: list[int] = []

    # --- the committed truth, read afresh as a new process would ---------------------------

    def fresh_sim(self) -> Card:
        if self.memory:
            return bootstrap.card_on_store(self.sim_store, "sim", det_random(2))
        return bootstrap.file_card(self.sim_path, fsync=False, random_bytes=det_random(2))

    def fresh_psam(self) -> Card:
        if self.memory:
            return bootstrap.card_on_store(self.psam_store, "psam")
        return bootstrap.file_card(self.psam_path, fsync=False)

    def wallet(self) -> WalletState:
        state = self.sim_store.load().state_of(WALLET_AID)
        assert isinstance(state, WalletState)
        return state

    def psam_serial(self) -> int:
        state = self.psam_store.load().state_of(PSAM_AID)
        assert isinstance(state, PsamState)
        return state.serial

    # --- transactions ------------------------------------------------------------------------

    def load(self, link: ApduLink | None = None) -> Outcome:
        try:
            return card_flows.load(
                link or self.sim, self.authority, LOAD_FEN, TERMINAL_ID, NOW
            )  # fmt: skip
        except CardGone as gone:
            return gone

    def purchase(self, link: ApduLink | None = None, psam_link: ApduLink | None = None) -> Outcome:
        psam = self.psam if psam_link is None else dataclasses.replace(self.psam, link=psam_link)
        try:
            result = card_flows.purchase(link or self.sim, psam, PURCHASE_FEN, NOW)
        except CardGone as gone:
            return gone
        self.serials_seen.append(result.terminal_serial)
        return result

    def book(self, kind: str, outcome: Outcome) -> None:
        """A transaction the terminal saw complete."""
        if kind == "load":
            assert isinstance(outcome, LoadDone)
            self.loads_fen += LOAD_FEN
        else:
            assert isinstance(outcome, PurchaseDone)
            assert outcome.mac2_verified
            self.purchases_fen += PURCHASE_FEN


def _hook(cut: PowerCut | None) -> Callable[[str], None]:
    return cut if cut is not None else (lambda point: None)


# --- the checks after a cut -----------------------------------------------------------------


def _split(proofs: tuple[Proof, ...], tx_type: int) -> tuple[list[Proof], list[Proof]]:
    return [p for p in proofs if p.tx_type == tx_type], [p for p in proofs if p.tx_type != tx_type]


def old_or_new(before: WalletState, after: WalletState, kind: str) -> bool:
    """True if ``after`` is exactly ``before`` plus the one transaction, False if it is exactly
    ``before``; anything else (a mix) fails."""
    if after == before:
        return False
    d, t = date_time()
    if kind == "load":
        tx_type, counter = pboc.TYPE_EP_LOAD, before.online_counter + 1
        changes: dict[str, object] = {
            "balance_fen": before.balance_fen + LOAD_FEN, "online_counter": counter,
        }  # fmt: skip
        amount = LOAD_FEN
    else:
        tx_type, counter = pboc.TYPE_EP_PURCHASE, before.offline_counter + 1
        changes = {"balance_fen": before.balance_fen - PURCHASE_FEN, "offline_counter": counter}
        amount = PURCHASE_FEN
    record = LogRecord(counter, 0, amount, tx_type, TERMINAL_ID, d, t).encode()
    expected = dataclasses.replace(before, log=(record, *before.log)[:10], **changes)  # type: ignore[arg-type]
    assert dataclasses.replace(after, proofs=()) == dataclasses.replace(expected, proofs=()), (
        "a mix of the old and the new state"
    )
    new_proofs, other_after = _split(after.proofs, tx_type)
    _, other_before = _split(before.proofs, tx_type)
    assert other_after == other_before
    assert [(p.tx_type, p.counter) for p in new_proofs] == [(tx_type, counter)]
    return True


def check_after_cut(bench: Bench, kind: str, before: WalletState, psam_before: int,
                    outcome: Outcome) -> None:  # fmt: skip
    fresh = bench.fresh_sim()
    if not bench.memory:
        assert not bench.sim_path.with_name(bench.sim_path.name + ".tmp").exists()
    after = bench.wallet()
    assert fresh.image == bench.sim_store.load()
    happened = old_or_new(before, after, kind)
    assert happened == (after.balance_fen != before.balance_fen)

    # card.md §4: the same card again, GET TRANSACTION PROVE for the counter + 1.
    reader = SimReader(fresh)
    reader.present()
    if kind == "load":
        proof = card_flows.recover(reader, ASN, pboc.TYPE_EP_LOAD, before.online_counter)
    else:
        proof = card_flows.recover(reader, ASN, pboc.TYPE_EP_PURCHASE, before.offline_counter)
    assert (proof is not None) == happened
    d, t = date_time()
    if kind == "load":
        if isinstance(outcome, LoadDone):
            assert happened
        if proof is not None:
            assert proof.mac2 == bench.authority.issued[-1]
            assert issuer.load_tac_ok(
                bench.keys, ASN, before.balance_fen + LOAD_FEN, before.online_counter,
                pboc.Load(LOAD_FEN, TERMINAL_ID), d, t, proof.tac,
            )  # fmt: skip
            if isinstance(outcome, LoadDone):
                assert outcome.tac == proof.tac
        bench.loads_fen += LOAD_FEN if happened else 0
    else:
        if isinstance(outcome, CardGone):
            # The terminal got no TornPurchase, so it cannot recover: the card must not have
            # debited.
            assert not happened, "the card debited but the terminal lost the purchase"
        if isinstance(outcome, PurchaseDone):
            assert happened
        if isinstance(outcome, TornPurchase):
            recovered = card_flows.recover_purchase(reader, outcome)
            assert (recovered is not None) == happened
            if recovered is not None:
                assert proof is not None
                assert recovered.tac == proof.tac
        if proof is not None:
            assert isinstance(outcome, PurchaseDone | TornPurchase)
            purchase = pboc.Purchase(PURCHASE_FEN, TERMINAL_ID, outcome.terminal_serial, d, t)
            assert issuer.purchase_tac_ok(bench.keys, ASN, purchase, proof.tac)
            if isinstance(outcome, PurchaseDone):
                assert outcome.tac == proof.tac
        bench.purchases_fen += PURCHASE_FEN if happened else 0

    # No fen created or lost.
    assert after.balance_fen == INITIAL_FEN + bench.loads_fen - bench.purchases_fen
    # The PSAM's serial never goes backwards.
    psam_after = bench.psam_serial()
    assert psam_after in (psam_before, psam_before + 1)
    assert psam_after >= max(bench.serials_seen, default=0)

    # Both cards go on working: a purchase on the fresh cards gets a new, higher serial.
    psam_reader = SimReader(bench.fresh_psam())
    psam_reader.present()
    psam = card_flows.open_psam(psam_reader)
    result = card_flows.purchase(reader, psam, 1, NOW)
    assert isinstance(result, PurchaseDone)
    assert result.mac2_verified
    assert result.terminal_serial == psam_after + 1
    assert result.terminal_serial > max(bench.serials_seen, default=0)
    assert bench.wallet().balance_fen == after.balance_fen - 1


def run_until_cut(bench: Bench, kind: str, cut: PowerCut) -> None:
    for _ in range(TX_MAX):
        before, psam_before = bench.wallet(), bench.psam_serial()
        outcome = bench.load() if kind == "load" else bench.purchase()
        if cut.fired:
            check_after_cut(bench, kind, before, psam_before, outcome)
            return
        bench.book(kind, outcome)
    pytest.fail(f"the power cut at {cut.point} #{cut.n} never happened")


# --- power cuts at every write point --------------------------------------------------------


@pytest.mark.parametrize("n", range(1, TX_MAX + 1))
@pytest.mark.parametrize("point", WRITE_POINTS)
def test_load_torn_at_every_file_write_point(
    tmp_path: Path, keys: IssuerKeys, point: str, n: int
) -> None:
    cut = PowerCut(point, n)
    run_until_cut(Bench(tmp_path, keys, sim_hook=cut), "load", cut)


@pytest.mark.parametrize("n", range(1, TX_MAX + 1))
@pytest.mark.parametrize("point", WRITE_POINTS)
@pytest.mark.parametrize("target", ["sim", "psam"])
def test_purchase_torn_at_every_file_write_point(
    tmp_path: Path, keys: IssuerKeys, target: str, point: str, n: int
) -> None:
    cut = PowerCut(point, n)
    if target == "sim":
        bench = Bench(tmp_path, keys, sim_hook=cut)
    else:
        bench = Bench(tmp_path, keys, psam_hook=cut)
    run_until_cut(bench, "purchase", cut)


@pytest.mark.parametrize("n", range(1, TX_MAX + 1))
@pytest.mark.parametrize("point", MEMORY_WRITE_POINTS)
@pytest.mark.parametrize("kind", ["load", "purchase-sim", "purchase-psam"])
def test_torn_at_every_memory_write_point(
    tmp_path: Path, keys: IssuerKeys, kind: str, point: str, n: int
) -> None:
    cut = PowerCut(point, n)
    if kind == "load":
        run_until_cut(Bench(tmp_path, keys, memory=True, sim_hook=cut), "load", cut)
    elif kind == "purchase-sim":
        run_until_cut(Bench(tmp_path, keys, memory=True, sim_hook=cut), "purchase", cut)
    else:
        run_until_cut(Bench(tmp_path, keys, memory=True, psam_hook=cut), "purchase", cut)


def test_a_commit_passes_every_write_point_in_order(tmp_path: Path, keys: IssuerKeys) -> None:
    """The parametrisations above cover every write point of both stores."""
    seen: list[str] = []
    path = tmp_path / "sim.card"
    bootstrap.save_new_image(path, sim_image(keys))
    store = bootstrap.file_store(path, fsync=True, hook=seen.append)
    store.commit(store.load())
    assert tuple(seen) == WRITE_POINTS
    seen.clear()
    memory = MemoryStore(sim_image(keys), seen.append)
    memory.commit(memory.load())
    assert tuple(seen) == MEMORY_WRITE_POINTS


# --- cards pulled between every two APDUs ---------------------------------------------------


class Cutter:
    """Counts the APDUs of a flow over all its links and pulls the addressed card at the k-th:
    before the card sees it, or after the card processed it (the answer is lost)."""

    def __init__(self, k: int, *, lose_answer: bool) -> None:
        self.k = k
        self.lose_answer = lose_answer
        self.count = 0

    def link(self, reader: SimReader) -> ApduLink:
        return _CutLink(self, reader)


@dataclass
class _CutLink:
    cutter: Cutter
    reader: SimReader

    def transmit(self, apdu: bytes) -> bytes:
        self.cutter.count += 1
        if self.cutter.count != self.cutter.k:
            return self.reader.transmit(apdu)
        if self.cutter.lose_answer:
            self.reader.transmit(apdu)
        self.reader.pull()
        raise CardGone("pulled")


def warm_up(bench: Bench) -> None:
    """One load and one purchase first, so the old state has a log and both proofs."""
    bench.book("load", bench.load())
    bench.book("purchase", bench.purchase())


@pytest.mark.parametrize("lose_answer", [False, True], ids=["pull-before", "answer-lost"])
@pytest.mark.parametrize("k", range(1, LOAD_APDUS + 1))
def test_load_pulled_at_every_apdu(
    tmp_path: Path, keys: IssuerKeys, k: int, lose_answer: bool
) -> None:
    bench = Bench(tmp_path, keys)
    warm_up(bench)
    before, psam_before = bench.wallet(), bench.psam_serial()
    cutter = Cutter(k, lose_answer=lose_answer)
    outcome = bench.load(cutter.link(bench.sim))
    assert isinstance(outcome, CardGone)
    check_after_cut(bench, "load", before, psam_before, outcome)


@pytest.mark.parametrize("lose_answer", [False, True], ids=["pull-before", "answer-lost"])
@pytest.mark.parametrize("k", range(1, PURCHASE_APDUS + 1))
def test_purchase_pulled_at_every_apdu(
    tmp_path: Path, keys: IssuerKeys, k: int, lose_answer: bool
) -> None:
    bench = Bench(tmp_path, keys)
    warm_up(bench)
    before, psam_before = bench.wallet(), bench.psam_serial()
    cutter = Cutter(k, lose_answer=lose_answer)
    outcome = bench.purchase(cutter.link(bench.sim), cutter.link(bench.psam_reader))
    assert cutter.count == k
    check_after_cut(bench, "purchase", before, psam_before, outcome)


def test_flow_apdu_counts(tmp_path: Path, keys: IssuerKeys) -> None:
    """The parametrisations above cover every APDU of the flows."""
    bench = Bench(tmp_path, keys)
    counter = Cutter(0, lose_answer=False)
    assert isinstance(bench.load(counter.link(bench.sim)), LoadDone)
    assert counter.count == LOAD_APDUS
    counter = Cutter(0, lose_answer=False)
    outcome = bench.purchase(counter.link(bench.sim), counter.link(bench.psam_reader))
    assert isinstance(outcome, PurchaseDone)
    assert counter.count == PURCHASE_APDUS
