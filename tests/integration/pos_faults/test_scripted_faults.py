"""The fault matrix (scenarios.py) with the yardstick terminal (scripted_terminal.py) against
the real host over real TCP: proves the host's half of host_protocol.md §6 under every fault of
the sale's messages and the 0500, and that the harness's agreement checks can be met."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pos_terminal.domain.journal_model import Entry
from tests.integration.pos_faults import scenarios
from tests.integration.pos_faults.fault_proxy import Fault
from tests.integration.pos_faults.scenarios import Case
from tests.integration.pos_faults.scripted_terminal import ScriptedTerminal
from tests.integration.pos_faults.world import Rig, terminal_clock


class ScriptedDriver:
    def __init__(self, terminal: ScriptedTerminal) -> None:
        self.terminal = terminal

    @property
    def batch_no(self) -> int:
        return self.terminal.link.batch_no

    def sign_on(self) -> None:
        assert self.terminal.link.sign_on().approved

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
        return self.terminal.entries

    def working_keys_field(self) -> bytes | None:
        return self.terminal.link.working_keys_field


@pytest.fixture
def driven(a_rig: Rig) -> Iterator[tuple[ScriptedDriver, Rig]]:
    terminal = ScriptedTerminal(a_rig.link(), a_rig.sim, a_rig.psam, terminal_clock)
    try:
        yield ScriptedDriver(terminal), a_rig
    finally:
        terminal.close()


#: The yardstick runs the sale's rows and the 0500's (load and refund share the sale's
#: messages; the Terminal runs them all): the package stays within its time budget.
YARDSTICK_CASES = [c for c in scenarios.CASES if c.flow == "sale" or c.mti == "0500"]


@pytest.mark.parametrize("case", scenarios.params(YARDSTICK_CASES))
def test_fault_matrix(case: Case, driven: tuple[ScriptedDriver, Rig]) -> None:
    driver, a_rig = driven
    scenarios.run_case(case, driver, a_rig)


def test_an_unforced_disagreement_is_caught(driven: tuple[ScriptedDriver, Rig]) -> None:
    """The harness can fail: a purchase the card made but the host never heard of (its 0220
    never forwarded) is reported, with the card move, the journal entry and the wire."""
    driver, a_rig = driven
    driver.sign_on()
    a_rig.proxy.inject("0220", Fault.DROP_BEFORE, times=2)  # the link tries twice
    driver.sale(1_234)
    with pytest.raises(AssertionError) as caught:
        a_rig.check_agreement(driver.journal())
    text = str(caught.value)
    assert "card offline #1 -1234: not captured by the host" in text
    assert "completion-pending" in text and "still unfinished" in text
    assert "0220 STAN" in text and "[drop-before]" in text
