"""The fault matrix: each message of a sale, a load, a refund and a settlement, by each fault of
the proxy, run against any terminal that offers ``Driver``, then the three-way agreement.

One case, step by step:
1. sign on; a refund or a settlement first makes a clean sale (the original / the batch);
2. the fault is scripted for the case's message (a 0400 case first swallows the 0200, so a
   reversal is owed; in a 0320 case the host gets a purchase of another card under the
   terminal's ID that the terminal does not know, so the settlement does not balance and the
   terminal uploads);
3. the flow runs (a 0400 case then flushes, so the owed reversal meets its fault); the fault
   must have been applied, or the case tested nothing;
4. the fault is cleared, the terminal flushes (a settlement case settles again if its batch did
   not close), a clean 1.00 sale proves the terminal works again, a last flush;
5. card, journal and host agree (agreement.py); the case's own transaction ended as the fault
   implies (absent, completed, or reversed with the right reason); a settlement closed batch 1
   exactly once and the terminal's batch is the host's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pytest

from card_applet_sim import bootstrap as card_bootstrap
from pos_terminal.adapters.host_link import HostLink, online_purchase
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.journal_model import Entry, State
from tests.integration.acquiring.host_env import MID
from tests.integration.pos_faults import agreement
from tests.integration.pos_faults.fault_proxy import Fault, Predicate, Seen
from tests.integration.pos_faults.world import (
    LATE_S,
    Rig,
    World,
    new_psam_image,
    new_sim_image,
    terminal_clock,
)

AMOUNT_FEN = {"sale": 1_500, "load": 2_000, "refund": 700, "settle": 3_000}
ORIGINAL_SALE_FEN = 3_000
FINAL_SALE_FEN = 100
#: A purchase the host has in the batch and the terminal does not (the 0320 cases).
AROUND_SALE_FEN = 4_321
AROUND_STAN = 900_000
PROCESSING_CODE = {"sale": "000000", "load": "600000", "refund": "200000"}
MESSAGES = {
    "sale": ("0200", "0220", "0400"),
    "load": ("0200", "0220", "0400"),
    "refund": ("0200", "0220", "0400"),
    "settle": ("0500", "0320"),
}


class Driver(Protocol):
    """What the matrix needs of a terminal."""

    @property
    def batch_no(self) -> int: ...

    def sign_on(self) -> None: ...

    def sale(self, amount_fen: int) -> object: ...

    def load(self, amount_fen: int) -> object: ...

    def refund(self, amount_fen: int, original_rrn: str) -> object: ...

    def flush(self) -> int: ...

    def settle(self) -> object: ...

    def journal(self) -> list[Entry]: ...

    def working_keys_field(self) -> bytes | None: ...


@dataclass(frozen=True)
class Case:
    flow: str
    mti: str
    fault: Fault

    @property
    def id(self) -> str:
        return f"{self.flow}-{self.mti}-{self.fault.value}"


CASES = [
    Case(flow, mti, fault)
    for flow, messages in MESSAGES.items()
    for mti in messages
    for fault in Fault
]


def params(cases: list[Case] = CASES) -> list[object]:
    return [pytest.param(case, id=case.id) for case in cases]


def _of_flow(flow: str) -> Predicate:
    code = PROCESSING_CODE.get(flow)

    def matches(seen: Seen) -> bool:
        return code is None or seen.processing_code == code

    return matches


Outcome = tuple[str, str | None] | None
COMPLETED: Outcome = ("completed", None)


def expected_outcomes(case: Case) -> set[Outcome]:
    """What may become of the case's own transaction at the host: (state, reversal reason),
    or None when the host never approved it (no row). A dropped connection may be retried
    once on a new one (the host replays, §6): then the transaction goes through."""
    if case.flow == "settle" or case.mti == "0220":
        return {COMPLETED}
    if case.mti == "0400":
        return {("reversed", "98")}  # the swallowed 0200, whatever happened to its 0400
    by_fault: dict[Fault, set[Outcome]] = {
        Fault.REFUSE: {None},
        Fault.DROP_BEFORE: {None, COMPLETED},
        Fault.DROP_AFTER: {("reversed", "98"), COMPLETED},
        Fault.SWALLOW: {("reversed", "98")},
        Fault.DELAY: {("reversed", "98")},
        Fault.CORRUPT_MAC: {("reversed", "A0")},
        Fault.DUPLICATE: {COMPLETED},
    }
    return by_fault[case.fault]


def _last_rrn(driver: Driver) -> str:
    done = [e for e in driver.journal() if e.state is State.COMPLETED and e.rrn]
    assert done, "the original sale did not complete"
    rrn = max(done, key=lambda e: e.entry_id).rrn
    assert rrn is not None
    return rrn


def run_case(case: Case, driver: Driver, rig: Rig) -> None:
    proxy = rig.proxy
    driver.sign_on()
    original_rrn = ""
    if case.flow in ("refund", "settle"):
        driver.sale(ORIGINAL_SALE_FEN)
        if case.flow == "refund":
            original_rrn = _last_rrn(driver)
    if case.mti == "0320":
        purchase_around(driver, rig)
    matches = _of_flow(case.flow)
    if case.mti == "0400":
        proxy.inject("0200", Fault.SWALLOW, when=matches)
    delay_s = LATE_S if case.fault is Fault.DELAY else 0.0
    proxy.inject(case.mti, case.fault, delay_s=delay_s, when=matches)

    if case.flow == "sale":
        driver.sale(AMOUNT_FEN["sale"])
    elif case.flow == "load":
        driver.load(AMOUNT_FEN["load"])
    elif case.flow == "refund":
        driver.refund(AMOUNT_FEN["refund"], original_rrn)
    else:
        driver.settle()
    if case.mti == "0400":
        driver.flush()
    applied = [e for e in proxy.faults_applied() if e.request.mti == case.mti]
    assert any(e.fault is case.fault for e in applied), (
        f"the {case.fault.value} fault on the {case.mti} never applied: the case tested "
        f"nothing\n{proxy.transcript()}"
    )

    proxy.clear()
    driver.flush()
    if case.flow == "settle" and driver.batch_no == 1:
        driver.settle()
    driver.sale(FINAL_SALE_FEN)
    driver.flush()

    journal = driver.journal()
    last = journal[-1] if journal else None
    assert last is not None and last.amount_fen == FINAL_SALE_FEN, journal
    assert last.state is State.COMPLETED, (
        f"{case.id}: the sale after the faults did not go through: "
        f"{agreement.journal_line(last)}\n{proxy.transcript()}"
    )
    rig.check_agreement(journal)
    _check_own_transaction(case, rig)
    if case.flow == "settle":
        _check_settled(case, driver, rig)


def purchase_around(driver: Driver, rig: Rig) -> None:
    """A purchase the host has in the terminal's batch and the terminal does not: the host's
    totals then differ from the terminal's. Its card is left out of the agreement."""
    keys = driver.working_keys_field()
    assert keys is not None, "the terminal has not signed on"
    rig.other_asns.add(
        purchase_around_terminal(rig.world, rig.terminal_id, rig.setup.tmk, keys, driver.batch_no)
    )


def purchase_around_terminal(
    world: World, terminal_id: str, tmk: bytes, working_keys_field: bytes, batch_no: int
) -> str:
    """A purchase with another card under the terminal's ID, working keys and batch, straight
    to the host (not through the terminal, nor a proxy). Returns that card's ASN."""
    other = world.take()
    sim = SimReader(card_bootstrap.memory_card(new_sim_image(other)))
    psam_reader = SimReader(card_bootstrap.memory_card(new_psam_image(other)))
    sim.present()
    psam_reader.present()
    link = HostLink(world.address, terminal_id, MID, tmk, stan=AROUND_STAN)
    link.adopt_working_keys(working_keys_field)
    link.batch_no = batch_no
    with link:
        done = online_purchase(
            link, sim, card_flows.open_psam(psam_reader), AROUND_SALE_FEN, terminal_clock()
        )
    assert done.completion is not None and done.completion.approved, done
    return other.asn


def _check_own_transaction(case: Case, rig: Rig) -> None:
    host = agreement.host_rows(rig.world.store, rig.terminal_id)
    kind = {"sale": "purchase", "settle": "purchase"}.get(case.flow, case.flow)
    own = [
        r
        for r in host
        if r.kind == kind
        and r.auth_amount_fen == AMOUNT_FEN[case.flow]
        and r.asn not in rig.other_asns
    ]
    allowed = expected_outcomes(case)
    got: Outcome = None
    if own:
        assert len(own) == 1, f"{case.id}: several host rows for the case's transaction: {own}"
        got = (own[0].state, own[0].reversal_reason)
    assert got in allowed, (
        f"{case.id}: the host has {got} for the case's transaction, expected one of {allowed}\n"
        + "\n".join(str(r) for r in host)
        + "\n"
        + rig.proxy.transcript()
    )


def _check_settled(case: Case, driver: Driver, rig: Rig) -> None:
    store, tid = rig.world.store, rig.terminal_id
    settlements = agreement.host_settlements(store, tid)
    assert [s.batch_no for s in settlements] == [1], f"settlements: {settlements}"
    if case.mti == "0500":
        assert settlements[0].verdict == "balanced", f"settlements: {settlements}"
    else:  # the 0320 case: not balanced by construction, so every completion was uploaded
        paid = sorted(
            (e.batch_no, e.stan, e.amount_fen)
            for e in driver.journal()
            if e.batch_no == 1 and e.card_paid
        )
        assert agreement.host_uploads(store, tid) == paid, rig.proxy.transcript()
    host_batch = agreement.host_batch_no(store, tid)
    assert driver.batch_no == host_batch == 2, (
        f"terminal batch {driver.batch_no}, host batch {host_batch}\n{rig.proxy.transcript()}"
    )
