"""A terminal that dies mid-transaction (a simulated power cut: an exception nothing in the
terminal catches, the journal left as it was on disk) and is started again over the same journal
file: the real host on SQLite over real TCP sees every owed 0220 / 0400 exactly once, the card
is never debited twice and no completion is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acquiring import bootstrap
from paycore.purse import INS_CREDIT_FOR_LOAD, INS_DEBIT_FOR_PURCHASE
from pos_terminal.adapters.journal import Journal
from pos_terminal.domain.journal_model import Reason, State
from pos_terminal.service import TerminalCode
from tests.integration.pos.pos_env import (
    CardFault,
    Crash,
    Faults,
    PosKit,
    counts,
    faulty_link,
    running_host,
)


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[PosKit]:
    with running_host(tmp_path) as host:
        made = PosKit(host, tmp_path, balance_fen=10_000)
        yield made
        made.close()


def host_counts(kit: PosKit) -> dict[str, int]:
    return counts(kit.host.store)


def test_a_crash_after_the_0200_left_reverses_it_after_the_restart(kit: PosKit) -> None:
    faults = Faults()
    faults.crash["0200"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    with pytest.raises(Crash):
        terminal.sale(800)
    assert Journal.open(kit.journal_path).unfinished()[0].state is State.AUTH_SENT

    again = kit.terminal()  # restart: the reversal record becomes an owed 0400 (98)
    (entry,) = again.pending()
    assert entry.state is State.REVERSAL_PENDING and entry.reason is Reason.NO_ANSWER
    assert again.sign_on().ok  # sign-on forwards what is owed
    assert again.pending() == [] and again.journal.get(entry.entry_id).state is State.REVERSED
    assert host_counts(kit)["reversals"] == 1 and again.balance().balance_fen == 10_000


def test_a_crash_before_the_0200_left_is_reversed_and_the_host_answers_25(kit: PosKit) -> None:
    faults = Faults()
    faults.block["0200"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    assert terminal.sale(800).code == TerminalCode.NO_ANSWER
    again = kit.terminal()
    assert again.flush() == 0
    (entry,) = again.history()
    assert entry.state is State.REVERSED and entry.code == "25"  # the host never saw it
    assert host_counts(kit)["authorisations"] == 0


def test_a_crash_during_debit_is_recovered_from_the_card_after_the_restart(kit: PosKit) -> None:
    card = CardFault(kit.reader, INS_DEBIT_FOR_PURCHASE, "crash_after")
    terminal = kit.terminal(card=card)
    with pytest.raises(Crash):
        terminal.sale(1_200)
    assert kit.reader.transmit(bytes.fromhex("00A4040000"))  # the card is still in the field

    again = kit.terminal()
    assert [e.state for e in again.pending()] == [State.TORN]
    outcome = again.sale(1_200)  # the same card: proved, completed, not debited again
    assert outcome.approved and outcome.code == TerminalCode.RECOVERED
    assert again.balance().balance_fen == 8_800
    assert host_counts(kit)["completions"] == 1


def test_a_crash_during_a_load_credit_is_recovered_after_the_restart(kit: PosKit) -> None:
    terminal = kit.terminal(card=CardFault(kit.reader, INS_CREDIT_FOR_LOAD, "crash_after"))
    with pytest.raises(Crash):
        terminal.load(3_000)
    again = kit.terminal()
    outcome = again.recover()
    assert outcome is not None and outcome.approved and outcome.balance_after_fen == 13_000
    assert host_counts(kit)["completions"] == 1


def test_a_crash_after_the_card_paid_keeps_the_completion(kit: PosKit) -> None:
    faults = Faults()
    faults.crash["0220"] = 1  # the host got the 0220; the terminal died before its answer
    terminal = kit.terminal(faulty_link(kit, faults))
    with pytest.raises(Crash):
        terminal.sale(600)
    again = kit.terminal()
    (entry,) = again.pending()
    assert entry.state is State.COMPLETION_PENDING
    assert again.flush() == 0  # sent again: the host replays its answer, applies nothing twice
    assert again.journal.get(entry.entry_id).state is State.COMPLETED
    assert again.journal.get(entry.entry_id).code == "00"
    assert host_counts(kit)["completions"] == 1 and again.balance().balance_fen == 9_400


def test_owed_messages_wait_for_the_host_across_both_restarts(kit: PosKit) -> None:
    """The host goes down with a completion owed; the terminal restarts and cannot reach it;
    the host comes back on the same database and port: the completion reaches it once."""
    faults = Faults()
    faults.block["0220"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    assert terminal.sale(600).approved
    stan = terminal.journal.stan
    host = kit.host
    port = host.address[1]
    host.server.stop()

    again = kit.terminal()
    assert again.flush() == 1  # no host: still owed
    assert again.journal.stan == stan
    assert again.pending()[0].state is State.COMPLETION_PENDING
    host.server = bootstrap.start_in_thread(host.store, host.url, port=port)
    assert again.flush() == 0
    assert counts(host.store)["completions"] == 1
    assert again.sale(100).stan == stan + 1
