"""The terminal application (``pos_terminal.service``) with an in-process SIM and PSAM against a
real host on loopback (SQLite): sale, load, refund, day end, the journal's states, torn card
steps, lost answers, reversals and their try limit, sign-on again."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from paycore.iso8583.fields import SettlementResult
from paycore.purse import INS_CREDIT_FOR_LOAD, INS_DEBIT_FOR_PURCHASE
from pos_terminal.domain.journal_model import Reason, State
from pos_terminal.service import Terminal, TerminalCode, TerminalError
from tests.integration.pos.pos_env import (
    CardFault,
    Faults,
    Host,
    PosKit,
    counts,
    faulty_link,
    new_card,
    running_host,
)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    with running_host(tmp_path) as running:
        yield running


@pytest.fixture
def kit(host: Host, tmp_path: Path) -> Iterator[PosKit]:
    made = PosKit(host, tmp_path, balance_fen=10_000)
    yield made
    made.close()


class CountingCard:
    def __init__(self, kit: PosKit) -> None:
        self.kit = kit
        self.commands = 0

    def transmit(self, apdu: bytes) -> bytes:
        self.commands += 1
        return self.kit.reader.transmit(apdu)


def balance_fen(terminal: Terminal) -> int:
    return terminal.balance().balance_fen


def test_a_day_load_sale_refund_and_a_balanced_settlement(kit: PosKit) -> None:
    terminal = kit.terminal()
    assert terminal.sign_on().ok
    loaded = terminal.load(5_000)
    assert loaded.approved and loaded.code == "00" and loaded.balance_after_fen == 15_000
    sold = terminal.sale(1_250)
    assert sold.approved and sold.rrn and sold.tac and len(sold.tac) == 4
    assert sold.asn == kit.setup.asn and sold.balance_after_fen == 13_750
    assert sold.business_date_mmdd is not None and sold.auth_code is not None
    refunded = terminal.refund(250, sold.rrn)
    assert refunded.approved and refunded.balance_after_fen == 14_000
    assert balance_fen(terminal) == 14_000
    assert [e.kind.value for e in terminal.history()] == ["refund", "sale", "load"]
    assert all(e.state is State.COMPLETED for e in terminal.history())
    assert terminal.pending() == []

    settled = terminal.settle()
    assert settled.approved and settled.balanced and settled.uploaded == 0
    assert settled.batch_no == 1 and settled.next_batch_no == 2
    totals = settled.terminal_totals
    assert (totals.purchase_amount_fen, totals.purchase_count) == (1_250, 1)
    assert (totals.refund_amount_fen, totals.refund_count) == (250, 1)
    assert (totals.load_amount_fen, totals.load_count) == (5_000, 1)
    assert terminal.journal.batch_no == 2
    assert terminal.sale(100).batch_no == 2  # the next batch
    assert counts(kit.host.store)["completions"] == 4


@pytest.mark.parametrize("amount_fen", [0, -1, 50_000, 99_999_999])
def test_a_sale_or_refund_out_of_range_is_refused_before_the_card(
    kit: PosKit, amount_fen: int
) -> None:
    card = CountingCard(kit)
    terminal = kit.terminal(card=card)
    for outcome in (terminal.sale(amount_fen), terminal.refund(amount_fen, "000000000001")):
        assert not outcome.approved and outcome.code == TerminalCode.AMOUNT
    assert card.commands == 0 and terminal.history() == []
    assert counts(kit.host.store)["authorisations"] == 0


def test_a_sale_above_the_balance_never_reaches_the_host(kit: PosKit) -> None:
    terminal = kit.terminal()
    outcome = terminal.sale(10_001)
    assert not outcome.approved and outcome.code == TerminalCode.BALANCE
    assert "100.00" in outcome.message
    assert counts(kit.host.store)["authorisations"] == 0 and terminal.history() == []


def test_a_card_answering_9401_at_debit_gets_the_authorisation_reversed(kit: PosKit) -> None:
    card = CardFault(kit.reader, INS_DEBIT_FOR_PURCHASE, "answer", 0x9401)
    terminal = kit.terminal(card=card)
    outcome = terminal.sale(1_000)
    assert not outcome.approved and outcome.code == TerminalCode.BALANCE
    (entry,) = terminal.history()
    assert entry.state is State.REVERSED and entry.reason is Reason.OTHER and entry.code == "00"
    assert counts(kit.host.store)["reversals"] == 1
    assert balance_fen(terminal) == 10_000


def test_a_torn_sale_is_completed_with_the_proof_of_the_same_card(kit: PosKit) -> None:
    terminal = kit.terminal(card=CardFault(kit.reader, INS_DEBIT_FOR_PURCHASE, "lose_answer"))
    torn = terminal.sale(1_500)
    assert not torn.approved and torn.code == TerminalCode.TORN
    assert "present card ...0001" in torn.message
    assert [e.state for e in terminal.pending()] == [State.TORN]

    kit.reader.present()
    again = terminal.sale(1_500)  # the merchant tries again: the card proves the first one
    assert again.approved and again.code == TerminalCode.RECOVERED
    assert again.stan == torn.stan and again.tac is not None
    assert balance_fen(terminal) == 8_500  # debited once
    assert counts(kit.host.store)["completions"] == 1
    assert terminal.pending() == [] and len(terminal.history()) == 1


def test_a_torn_sale_the_card_never_saw_is_reversed(kit: PosKit) -> None:
    terminal = kit.terminal(card=CardFault(kit.reader, INS_DEBIT_FOR_PURCHASE, "pull_before"))
    assert terminal.sale(700).code == TerminalCode.TORN
    kit.reader.present()
    outcome = terminal.recover()
    assert outcome is not None and not outcome.approved and outcome.code == TerminalCode.RECOVERED
    assert "did not happen" in outcome.message
    (entry,) = terminal.history()
    assert entry.state is State.REVERSED and entry.reason is Reason.OTHER
    assert counts(kit.host.store)["reversals"] == 1 and balance_fen(terminal) == 10_000
    assert terminal.recover() is None


def test_a_torn_load_is_completed_after_the_card_comes_back(kit: PosKit) -> None:
    terminal = kit.terminal(card=CardFault(kit.reader, INS_CREDIT_FOR_LOAD, "lose_answer"))
    assert terminal.load(2_000).code == TerminalCode.TORN
    kit.reader.present()
    outcome = terminal.recover()
    assert outcome is not None and outcome.approved and outcome.code == TerminalCode.RECOVERED
    assert outcome.balance_after_fen == 12_000 == balance_fen(terminal)
    assert counts(kit.host.store)["completions"] == 1


def test_another_card_cannot_take_over_a_torn_sale(kit: PosKit) -> None:
    other = new_card(kit.host.terminals[1].asn, 5_000)
    card = CardFault(kit.reader, INS_DEBIT_FOR_PURCHASE, "lose_answer")
    terminal = kit.terminal(card=card)
    assert terminal.sale(300).code == TerminalCode.TORN
    card.reader = other  # another customer's card in the field
    outcome = terminal.sale(300)
    assert outcome.code == TerminalCode.WRONG_CARD and "...0001" in outcome.message
    assert [e.state for e in terminal.pending()] == [State.TORN]
    assert terminal.settle().code == TerminalCode.PENDING  # not with a torn sale in the batch
    assert terminal.abandon_torn() == 1
    (entry,) = terminal.history()
    assert entry.state is State.MANUAL and entry.review
    assert terminal.sale(300).approved  # the other card pays now


def test_an_unanswered_0200_is_reversed_before_the_next_transaction(kit: PosKit) -> None:
    faults = Faults()
    faults.lose["0200"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    lost = terminal.sale(400)
    assert not lost.approved and lost.code == TerminalCode.NO_ANSWER
    (entry,) = terminal.pending()
    assert entry.state is State.REVERSAL_PENDING and entry.reason is Reason.NO_ANSWER
    assert balance_fen(terminal) == 10_000  # the card was never asked to pay

    nxt = terminal.sale(400)
    assert nxt.approved
    assert faults.sent == ["0800", "0200", "0400", "0200", "0220"]  # the 0400 first
    first = terminal.journal.get(entry.entry_id)
    assert first.state is State.REVERSED and first.code == "00"
    assert counts(kit.host.store)["reversals"] == 1


def test_a_reversal_is_tried_three_times_then_left_for_manual_handling(kit: PosKit) -> None:
    faults = Faults()
    faults.lose["0200"] = 1
    faults.block["0400"] = 3
    terminal = kit.terminal(faulty_link(kit, faults))
    assert terminal.sale(400).code == TerminalCode.NO_ANSWER
    assert terminal.sale(400).code == TerminalCode.PENDING
    assert terminal.pending()[0].tries == 1
    assert terminal.sale(400).code == TerminalCode.PENDING
    third = terminal.sale(400)  # the third try fails: MANUAL, and the sale goes ahead
    assert third.approved
    first = terminal.history()[-1]
    assert first.state is State.MANUAL and first.tries == 3 and first.review
    assert counts(kit.host.store)["reversals"] == 0


def test_a_completion_without_an_answer_is_kept_and_forwarded(kit: PosKit) -> None:
    faults = Faults()
    faults.lose["0220"] = 1
    faults.block["0220"] = 0
    terminal = kit.terminal(faulty_link(kit, faults))
    sold = terminal.sale(900)
    assert sold.approved and "later" in sold.message  # the card paid: it is a sale
    (entry,) = terminal.pending()
    assert entry.state is State.COMPLETION_PENDING and entry.tries == 1
    assert terminal.flush() == 0
    assert terminal.journal.get(entry.entry_id).state is State.COMPLETED
    assert counts(kit.host.store)["completions"] == 1  # the host applied it once


def test_a_completion_that_never_arrived_goes_before_the_next_sale(kit: PosKit) -> None:
    faults = Faults()
    faults.block["0220"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    assert terminal.sale(900).approved
    assert counts(kit.host.store)["completions"] == 0
    assert terminal.sale(100).approved
    assert counts(kit.host.store)["completions"] == 2 and terminal.pending() == []


def test_a0_makes_the_terminal_sign_on_again(kit: PosKit) -> None:
    first = kit.terminal()
    assert first.sign_on().ok
    second = kit.terminal()  # the same terminal restarted elsewhere: the host has a new MAK
    assert second.sign_on().ok
    sold = first.sale(100)  # A0, signed on again, a new 0200 with the card's same session
    assert sold.approved
    declined, completed = reversed(first.history())
    assert declined.state is State.DECLINED and declined.code == "A0"  # the record is cleared
    assert completed.state is State.COMPLETED and completed.stan == declined.stan + 2  # 0800
    assert counts(kit.host.store)["completions"] == 1 and balance_fen(first) == 9_900


def test_a_bad_response_mac_is_no_answer_and_reversed_with_a0(kit: PosKit) -> None:
    faults = Faults()
    faults.bad_mac["0210"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    outcome = terminal.sale(100)
    assert outcome.code == TerminalCode.NO_ANSWER and "MAC" in outcome.message
    assert balance_fen(terminal) == 10_000  # no DEBIT on an answer we cannot trust
    assert terminal.sale(100).approved  # signs on again, reverses, sells
    assert faults.sent == ["0800", "0200", "0800", "0400", "0200", "0220"]
    reversed_ = [e for e in terminal.history() if e.state is State.REVERSED]
    assert [e.reason for e in reversed_] == [Reason.MAC_ERROR] and reversed_[0].code == "00"
    assert counts(kit.host.store)["reversals"] == 1


def test_stan_batch_and_keys_survive_a_restart_and_no_clear_key_is_written(kit: PosKit) -> None:
    terminal = kit.terminal()
    assert terminal.sale(100).approved
    link = terminal._link
    assert link is not None and link.mak is not None
    mak = link.mak
    stan = terminal.journal.stan
    terminal.close()

    again = kit.terminal()
    assert again.journal.stan == stan
    nxt = again.sale(100)  # no sign-on: the stored working keys are used
    assert nxt.approved and nxt.stan == stan + 1
    raw = b"".join(p.read_bytes() for p in kit.journal_path.parent.glob("journal-*"))
    assert (
        mak not in raw and mak.hex().encode() not in raw and mak.hex().upper().encode() not in raw
    )


def test_an_unbalanced_day_uploads_every_completion(kit: PosKit) -> None:
    terminal = kit.terminal()
    assert terminal.sale(1_000).approved and terminal.sale(2_000).approved
    with sqlite3.connect(kit.journal_path) as conn:  # the terminal's count goes wrong
        conn.execute("UPDATE entries SET amount_fen = 1500 WHERE entry_id = 1")
    settled = terminal.settle()
    assert settled.approved and not settled.balanced and settled.uploaded == 2
    assert settled.terminal_totals.purchase_amount_fen == 3_500
    assert settled.host_totals is not None
    assert settled.host_totals.first_result is SettlementResult.NOT_BALANCED
    assert settled.next_batch_no == 2 == terminal.journal.batch_no
    assert counts(kit.host.store)["batch_uploads"] == 2


def test_a_refund_needs_the_original_sale_and_its_card(kit: PosKit) -> None:
    terminal = kit.terminal()
    assert terminal.refund(100, "999999999999").code == TerminalCode.ORIGINAL
    sold = terminal.sale(500)
    assert sold.rrn is not None
    card = CountingCard(kit)
    other = kit.terminal(card=new_card(kit.host.terminals[1].asn, 0))
    outcome = other.refund(100, sold.rrn)
    assert outcome.code == TerminalCode.WRONG_CARD and card.commands == 0
    assert counts(kit.host.store)["authorisations"] == 1


def test_no_host_means_nothing_is_journalled(kit: PosKit, host: Host) -> None:
    host.server.stop()
    terminal = kit.terminal()
    assert not terminal.sign_on().ok
    outcome = terminal.sale(100)
    assert outcome.code == TerminalCode.NO_HOST and terminal.history() == []
    assert balance_fen(terminal) == 10_000


def test_echo_and_no_card_in_the_field(kit: PosKit) -> None:
    terminal = kit.terminal()
    echoed = terminal.echo()
    assert echoed.ok and echoed.code == "00"
    kit.reader.pull()
    outcome = terminal.sale(100)
    assert not outcome.approved and outcome.code == TerminalCode.CARD
    assert "no card" in outcome.message and terminal.history() == []
    with pytest.raises(TerminalError, match="cannot read the card"):
        terminal.balance()


def test_a_lost_0510_is_asked_again_with_the_same_0500(kit: PosKit) -> None:
    faults = Faults()
    faults.lose["0500"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    assert terminal.sale(1_000).approved
    lost = terminal.settle()
    assert not lost.approved and lost.code == TerminalCode.NO_ANSWER
    assert terminal.journal.batch_no == 1
    nxt = terminal.sale(100)  # the host closed the batch: the day end is finished first
    assert nxt.approved and nxt.batch_no == 2  # by the host replaying its 0510
    assert faults.sent.count("0500") == 2
    assert counts(kit.host.store)["terminal_settlements"] == 1
    assert terminal.journal.settlement() is None


def test_uploads_that_could_not_be_sent_are_forwarded_later(kit: PosKit) -> None:
    faults = Faults()
    faults.block["0320"] = 1
    terminal = kit.terminal(faulty_link(kit, faults))
    assert terminal.sale(1_000).approved and terminal.sale(2_000).approved
    with sqlite3.connect(kit.journal_path) as conn:
        conn.execute("UPDATE entries SET amount_fen = 1500 WHERE entry_id = 1")
    settled = terminal.settle()
    assert settled.approved and not settled.balanced and settled.uploaded == 0
    assert "sent later" in settled.message and settled.next_batch_no == 2
    assert terminal.flush() == 0
    assert counts(kit.host.store)["batch_uploads"] == 2
    assert terminal.journal.settlement() is None
    assert faults.sent.count("0320") == 3  # two uploads and the end, once each
