"""Random schedules (hypothesis) of sales, loads, refunds, flushes and settlements, each step
with or without a fault on one of its messages, against the real ``Terminal`` and the real
host; then the faults are cleared, the terminal flushes and sells once more, and the card, the
journal and the host must agree (agreement.py). Deterministic (``derandomize``) and bounded,
so the package stays fast; the fixed matrix (test_terminal_faults.py) covers each fault once.

A reversal may be left for manual handling after ``reversal_tries_max`` unanswered tries
(§6), which the agreement reports: schedules give a 0400 at most two faults."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pos_terminal.domain.journal_model import Kind, State
from tests.integration.pos_faults.fault_proxy import Fault
from tests.integration.pos_faults.test_terminal_faults import terminal_driver
from tests.integration.pos_faults.world import LATE_S, World, rig

OPERATIONS = ("sale", "load", "refund", "flush", "settle")
MESSAGES_OF = {
    "sale": ("0200", "0220", "0400"),
    "load": ("0200", "0220", "0400"),
    "refund": ("0200", "0220", "0400"),
    "flush": ("0220", "0400"),
    "settle": ("0500", "0320", "0220", "0400"),
}
Step = tuple[str, int, tuple[str, Fault] | None]


@st.composite
def steps(draw: st.DrawFn) -> Step:
    operation = draw(st.sampled_from(OPERATIONS))
    amount_fen = draw(st.integers(min_value=1, max_value=2_000))
    fault = draw(
        st.none() | st.tuples(st.sampled_from(MESSAGES_OF[operation]), st.sampled_from(Fault))
    )
    return (operation, amount_fen, fault)


@settings(
    max_examples=16,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(schedule=st.lists(steps(), min_size=1, max_size=6))
def test_random_fault_schedules_keep_the_three_way_agreement(
    world: World, schedule: list[Step]
) -> None:
    assume(sum(1 for _, _, f in schedule if f is not None and f[0] == "0400") <= 2)
    with rig(world) as a_rig, tempfile.TemporaryDirectory() as folder:
        driver, terminal, journal = terminal_driver(a_rig, Path(folder))
        try:
            driver.sign_on()
            for operation, amount_fen, fault in schedule:
                if fault is not None:
                    mti, kind = fault
                    delay_s = LATE_S if kind is Fault.DELAY else 0.0
                    a_rig.proxy.inject(mti, kind, delay_s=delay_s)
                if operation == "sale":
                    driver.sale(amount_fen)
                elif operation == "load":
                    driver.load(amount_fen)
                elif operation == "refund":
                    sales = [
                        e
                        for e in journal.recent(100)
                        if e.kind is Kind.SALE and e.state is State.COMPLETED and e.rrn
                    ]
                    if sales and sales[0].rrn is not None:
                        driver.refund(min(amount_fen, sales[0].amount_fen), sales[0].rrn)
                elif operation == "flush":
                    driver.flush()
                else:
                    driver.settle()
                a_rig.proxy.clear()  # a fault its step did not reach is not carried over
            driver.flush()
            driver.sale(100)
            driver.flush()
            a_rig.check_agreement(driver.journal())
        finally:
            terminal.close()
            journal.close()
