"""The fault matrix (scenarios.py) with the real POS terminal application
(``pos_terminal.service.Terminal`` over its SQLite journal) against the real host over real
TCP, through the fault proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pos_terminal.adapters.journal import Journal
from pos_terminal.domain.journal_model import Entry, State
from pos_terminal.service import Terminal, TerminalConfig
from tests.integration.acquiring.host_env import MID
from tests.integration.pos_faults import agreement, scenarios
from tests.integration.pos_faults.fault_proxy import Fault
from tests.integration.pos_faults.scenarios import Case
from tests.integration.pos_faults.world import TIMEOUT_S, Rig, World, rig, terminal_clock

#: Known defects of the Terminal, by case id: each is an xfail(strict) naming the bug.
KNOWN: dict[str, str] = {}


class TerminalDriver:
    def __init__(self, terminal: Terminal, journal: Journal) -> None:
        self.terminal = terminal
        self.journal_file = journal

    @property
    def batch_no(self) -> int:
        return self.journal_file.batch_no

    def sign_on(self) -> None:
        outcome = self.terminal.sign_on()
        assert outcome.ok, outcome

    def sale(self, amount_fen: int) -> object:
        return self.terminal.sale(amount_fen)

    def load(self, amount_fen: int) -> object:
        return self.terminal.load(amount_fen)

    def refund(self, amount_fen: int, original_rrn: str) -> object:
        return self.terminal.refund(amount_fen, original_rrn)

    def flush(self) -> int:
        return self.terminal.flush()

    def settle(self) -> object:
        return self.terminal.settle()

    def journal(self) -> list[Entry]:
        return list(reversed(self.journal_file.recent(1_000)))

    def working_keys_field(self) -> bytes | None:
        return self.journal_file.working_keys()


def config_for(a_rig: Rig) -> TerminalConfig:
    return TerminalConfig(
        terminal_id=a_rig.terminal_id,
        merchant_id=MID,
        merchant_name="Noodle House",
        host=a_rig.proxy.address,
        tmk=a_rig.setup.tmk,
        timeout_s=TIMEOUT_S,
    )


def terminal_driver(a_rig: Rig, folder: Path) -> tuple[TerminalDriver, Terminal, Journal]:
    journal = Journal.open(folder / f"journal-{a_rig.terminal_id}.db")
    terminal = Terminal(config_for(a_rig), journal, a_rig.sim, a_rig.psam_reader, terminal_clock)
    return TerminalDriver(terminal, journal), terminal, journal


@pytest.fixture
def driven(a_rig: Rig, tmp_path: Path) -> Iterator[tuple[TerminalDriver, Rig]]:
    driver, terminal, journal = terminal_driver(a_rig, tmp_path)
    try:
        yield driver, a_rig
    finally:
        terminal.close()
        journal.close()


def _params(cases: list[Case]) -> list[object]:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN[case.id])]
            if case.id in KNOWN
            else [],
        )
        for case in cases
    ]


@pytest.mark.parametrize("case", _params(scenarios.CASES))
def test_fault_matrix(case: Case, driven: tuple[TerminalDriver, Rig]) -> None:
    driver, a_rig = driven
    scenarios.run_case(case, driver, a_rig)


PG_CASES = [
    Case("sale", "0200", Fault.SWALLOW),
    Case("refund", "0220", Fault.DROP_AFTER),
    Case("load", "0400", Fault.CORRUPT_MAC),
    Case("settle", "0320", Fault.DROP_BEFORE),
]


@pytest.mark.parametrize("case", _params(PG_CASES))
def test_fault_matrix_on_each_database(case: Case, world_any: World, tmp_path: Path) -> None:
    with rig(world_any) as a_rig:
        driver, terminal, journal = terminal_driver(a_rig, tmp_path)
        try:
            scenarios.run_case(case, driver, a_rig)
        finally:
            terminal.close()
            journal.close()


def test_a_reversal_unanswered_three_times_is_left_for_manual_handling(
    driven: tuple[TerminalDriver, Rig],
) -> None:
    """§6: an unanswered 0200 is reversed up to 3 attempts, then kept for manual handling: the
    entry is MANUAL and flagged, no fourth 0400 leaves, the host keeps the authorisation
    (nothing completed it), the card was not debited, and the terminal sells again."""
    driver, a_rig = driven
    proxy = a_rig.proxy
    driver.sign_on()
    proxy.inject("0200", Fault.SWALLOW)
    # Each try is a request and its one resend on a new connection (host_link): 2 drops.
    proxy.inject("0400", Fault.DROP_BEFORE, times=6)
    driver.sale(1_500)
    for _ in range(3):
        driver.flush()
    proxy.clear()
    assert driver.flush() == 0
    driver.sale(100)

    reversals = proxy.requests("0400")
    assert len(reversals) == 6, proxy.transcript()  # no fourth try once the link is back
    journal = driver.journal()
    manual = [e for e in journal if e.amount_fen == 1_500]
    assert [(e.state, e.review, e.tries) for e in manual] == [(State.MANUAL, True, 3)], journal
    assert journal[-1].state is State.COMPLETED, journal
    host = agreement.host_rows(a_rig.world.store, a_rig.terminal_id)
    assert [(r.auth_amount_fen, r.state) for r in host] == [
        (1_500, "authorised"),
        (100, "completed"),
    ], host
    card = agreement.card_state(a_rig.sim)
    assert [m.signed_fen for m in card.moves] == [-100]
