"""The journal's state machine (``pos_terminal.domain.journal_model``) under random sequences of
events (hypothesis): a paid transaction is never reversed and its completion never dropped,
final states stay final, A0 ends nothing, reversals stop after the try limit, and what is owed
is forwarded reversals first."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pos_terminal.domain import journal_model as jm
from pos_terminal.domain.journal_model import Entry, Kind, Reason, State, TransitionError

AT = datetime(2026, 3, 1, 12, 0, 0)
TRIES_MAX = 3
CODES = st.sampled_from(["00", "05", "25", "51", "94", "96", "A0"])

#: The transitions as the design states them (docs/pos-terminal.md): event -> from-states.
ALLOWED: dict[str, frozenset[State]] = {
    "auth_answered": frozenset({State.AUTH_SENT}),
    "auth_unanswered": frozenset({State.AUTH_SENT}),
    "card_done": frozenset({State.AUTHORISED, State.TORN}),
    "card_torn": frozenset({State.AUTHORISED}),
    "card_not_done": frozenset({State.AUTHORISED, State.TORN}),
    "abandoned": frozenset({State.TORN}),
    "forward_answered": frozenset({State.COMPLETION_PENDING, State.REVERSAL_PENDING}),
    "forward_unanswered": frozenset({State.COMPLETION_PENDING, State.REVERSAL_PENDING}),
}


def new_entry(entry_id: int, kind: Kind, amount_fen: int, batch_no: int) -> Entry:
    return Entry(entry_id, kind, State.AUTH_SENT, amount_fen, entry_id, batch_no, AT)


def apply(entry: Entry, event: str, code: str, reason: Reason) -> Entry:
    if event == "auth_answered":
        return jm.auth_answered(entry, code, rrn="000000000001", business_date_mmdd="0301")
    if event == "auth_unanswered":
        return jm.auth_unanswered(entry, reason)
    if event == "card_done":
        return jm.card_done(entry, "01020304", 100)
    if event == "card_torn":
        return jm.card_torn(entry)
    if event == "card_not_done":
        return jm.card_not_done(entry, "refused")
    if event == "abandoned":
        return jm.abandoned(entry, "gone")
    if event == "forward_answered":
        return jm.forward_answered(entry, code, TRIES_MAX)
    return jm.forward_unanswered(entry, TRIES_MAX)


class JournalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[int, Entry] = {}
        self.paid: set[int] = set()  # entries whose card paid (ground truth)

    @rule(
        kind=st.sampled_from(list(Kind)),
        amount_fen=st.integers(1, 49_999),
        batch_no=st.integers(1, 2),
    )
    def start(self, kind: Kind, amount_fen: int, batch_no: int) -> None:
        entry_id = len(self.entries) + 1
        self.entries[entry_id] = new_entry(entry_id, kind, amount_fen, batch_no)

    @precondition(lambda self: bool(self.entries))
    @rule(
        pick=st.integers(0, 10_000),
        event=st.sampled_from(sorted(ALLOWED)),
        code=CODES,
        reason=st.sampled_from(list(Reason)),
    )
    def step(self, pick: int, event: str, code: str, reason: Reason) -> None:
        entry_id = sorted(self.entries)[pick % len(self.entries)]
        before = self.entries[entry_id]
        if before.state not in ALLOWED[event]:
            with pytest.raises(TransitionError):
                apply(before, event, code, reason)
            return
        after = apply(before, event, code, reason)
        self.check_step(before, after, event, code)
        if event == "card_done":
            self.paid.add(entry_id)
        self.entries[entry_id] = after

    def check_step(self, before: Entry, after: Entry, event: str, code: str) -> None:
        assert (after.entry_id, after.kind, after.amount_fen, after.stan, after.batch_no) == (
            before.entry_id, before.kind, before.amount_fen, before.stan, before.batch_no,
        )  # fmt: skip
        if event == "forward_answered" and code == jm.MAC_ERROR:
            assert after.tries == before.tries + 1  # A0 is a try, not an answer
            if before.state is State.COMPLETION_PENDING:
                assert after.state is State.COMPLETION_PENDING
        if event == "forward_answered" and code == jm.DUPLICATE:
            assert after.review
        if event == "forward_unanswered" and before.state is State.REVERSAL_PENDING:
            expected = State.MANUAL if before.tries + 1 >= TRIES_MAX else State.REVERSAL_PENDING
            assert after.state is expected and after.tries == before.tries + 1
        if event == "auth_answered":
            assert after.state is (State.AUTHORISED if code == "00" else State.DECLINED)

    @invariant()
    def a_paid_transaction_is_never_reversed_nor_dropped(self) -> None:
        for entry_id, entry in self.entries.items():
            if entry_id in self.paid:
                assert entry.card_paid
                assert entry.state in (State.COMPLETION_PENDING, State.COMPLETED)
            else:
                assert not entry.card_paid
                assert entry.state not in (State.COMPLETION_PENDING, State.COMPLETED)

    @invariant()
    def reversals_respect_the_try_limit(self) -> None:
        for entry in self.entries.values():
            if entry.state is State.REVERSAL_PENDING:
                assert entry.reason is not None and entry.tries < TRIES_MAX
            if entry.state is State.MANUAL:
                assert entry.review

    @invariant()
    def what_is_owed_is_forwarded_reversals_first(self) -> None:
        owed = jm.to_forward(self.entries.values())
        assert {e.entry_id for e in owed} == {
            e.entry_id for e in self.entries.values() if e.state in jm.FORWARD_STATES
        }
        states = [e.state for e in owed]
        assert states == sorted(states, key=lambda s: s is not State.REVERSAL_PENDING)

    @invariant()
    def totals_count_exactly_what_the_card_paid(self) -> None:
        for batch_no in (1, 2):
            totals = jm.batch_totals(self.entries.values(), batch_no)
            paid = [
                e
                for e in self.entries.values()
                if e.entry_id in self.paid and e.batch_no == batch_no
            ]
            sales = [e.amount_fen for e in paid if e.kind is Kind.SALE]
            loads = [e.amount_fen for e in paid if e.kind is Kind.LOAD]
            refunds = [e.amount_fen for e in paid if e.kind is Kind.REFUND]
            assert (totals.purchase_amount_fen, totals.purchase_count) == (sum(sales), len(sales))
            assert (totals.load_amount_fen, totals.load_count) == (sum(loads), len(loads))
            assert (totals.refund_amount_fen, totals.refund_count) == (
                sum(refunds), len(refunds),
            )  # fmt: skip

    @invariant()
    def blocking_is_unanswered_owed_reversals_and_torn(self) -> None:
        blocking = {e.entry_id for e in jm.blocking(self.entries.values())}
        assert blocking == {
            e.entry_id
            for e in self.entries.values()
            if e.state in (State.AUTH_SENT, State.REVERSAL_PENDING, State.TORN)
        }


JournalMachine.TestCase.settings = settings(
    suppress_health_check=[HealthCheck.too_slow], deadline=None
)  # a machine shared with other work: no timing
TestJournalMachine = JournalMachine.TestCase


def test_final_states_stay_final() -> None:
    entry = new_entry(1, Kind.SALE, 100, 1)
    declined = jm.auth_answered(entry, "51")
    for event in ALLOWED:
        with pytest.raises(TransitionError):
            apply(declined, event, "00", Reason.OTHER)


def test_a_completion_is_never_given_up() -> None:
    entry = jm.card_done(jm.auth_answered(new_entry(1, Kind.SALE, 100, 1), "00"), "00" * 4, 0)
    for _ in range(jm.COMPLETION_TRIES_REVIEW + 5):
        entry = jm.forward_unanswered(entry, TRIES_MAX)
    assert entry.state is State.COMPLETION_PENDING and entry.review
