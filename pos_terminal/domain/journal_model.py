"""The terminal's journal as a pure state machine (host_protocol.md §6, docs/pos-terminal.md):
one ``Entry`` per online transaction, its state, and what the terminal must still send.

Life of an entry::

    AUTH_SENT --0210 00--> AUTHORISED --card done--> COMPLETION_PENDING --0230--> COMPLETED
        |       \\--0210 other--> DECLINED   |  \\--card torn--> TORN --proved--> COMPLETION_PENDING
        |                                   |                      \\--not done / abandoned
        \\--no answer / MAC--> REVERSAL_PENDING <--card did not pay----/         (abandoned: MANUAL)
                                  |  \\--0410--> REVERSED
                                  \\--tries_max unanswered--> MANUAL

- ``AUTH_SENT`` is the reversal record of §6: saved before the 0200 leaves, cleared by any
  response carrying a response code.
- A completion (0220) is forwarded until a response with a response code arrives; it has no
  try limit, because the card already paid (the count of tries is kept for the record).
- A reversal (0400) is forwarded up to ``tries_max`` times, then the entry is ``MANUAL``.
- A0 (the host could not check our MAC) is the one response code that clears nothing: the host
  did not act on the message; the terminal signs on again and sends it again.
- 94 on a 0230 / 0410 ends the entry like any code, flagged ``review`` for the merchant.

Pure: no clock, no I/O. The adapter (``pos_terminal.adapters.journal``) persists entries and
the service (``pos_terminal.service``) drives the transitions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

#: Our choice (§6 says "up to 3 attempts"): configurable per terminal, this is the default.
REVERSAL_TRIES_MAX_DEFAULT: Final = 3
#: A limit on everything: a completion still unanswered after this many tries stays pending
#: but is flagged for review (it is never dropped: the card paid).
COMPLETION_TRIES_REVIEW: Final = 20
APPROVED: Final = "00"
MAC_ERROR: Final = "A0"
DUPLICATE: Final = "94"


class Kind(enum.StrEnum):
    SALE = "sale"
    LOAD = "load"
    REFUND = "refund"


class State(enum.StrEnum):
    AUTH_SENT = "auth-sent"  # 0200 saved and (maybe) sent: reversal record
    DECLINED = "declined"  # 0210 with a code other than 00: nothing more to do
    AUTHORISED = "authorised"  # 0210 00: the card step comes next
    TORN = "torn"  # DEBIT / CREDIT unanswered: the same card must be presented again
    COMPLETION_PENDING = "completion-pending"  # card paid: 0220 to forward
    COMPLETED = "completed"  # 0230 received (any code but A0)
    REVERSAL_PENDING = "reversal-pending"  # 0400 to forward
    REVERSED = "reversed"  # 0410 received (any code but A0)
    MANUAL = "manual"  # given up on: for the merchant and the acquirer to settle by hand
    REFUSED = "refused"  # refused before any message left (amount, card, ...): a record only


FINAL_STATES: Final = frozenset(
    {State.DECLINED, State.COMPLETED, State.REVERSED, State.MANUAL, State.REFUSED}
)
#: States in which the terminal still owes the host a message.
FORWARD_STATES: Final = frozenset({State.COMPLETION_PENDING, State.REVERSAL_PENDING})


class Reason(enum.StrEnum):
    """Field 39 of a 0400 (host_protocol.md §5)."""

    NO_ANSWER = "98"
    MAC_ERROR = "A0"
    OTHER = "06"


class TransitionError(Exception):
    """An event that the entry's state does not allow (a bug in the caller)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One online transaction as the journal holds it. ``asn`` is 16 digits; ``tac`` hex."""

    entry_id: int
    kind: Kind
    state: State
    amount_fen: int
    stan: int
    batch_no: int
    at: datetime
    asn: str | None = None
    rrn: str | None = None
    auth_code: str | None = None
    business_date_mmdd: str | None = None
    code: str | None = None  # the last response code that concerned this entry
    tac: str | None = None
    balance_after_fen: int | None = None
    reason: Reason | None = None  # of the pending / sent reversal
    tries: int = 0  # forwarding tries of the pending 0220 / 0400
    review: bool = False  # the merchant should look (94, manual, long-unanswered completion)
    original_rrn: str | None = None  # refunds
    note: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def card_paid(self) -> bool:
        """The card's purse moved (a debit or a credit with a TAC)."""
        return self.tac is not None


def _need(entry: Entry, *states: State) -> None:
    if entry.state not in states:
        allowed = ", ".join(s.value for s in states)
        raise TransitionError(f"entry {entry.entry_id} is {entry.state.value}, not {allowed}")


# --- the 0200 ---------------------------------------------------------------------------------


def auth_answered(
    entry: Entry,
    code: str,
    *,
    rrn: str | None = None,
    auth_code: str | None = None,
    business_date_mmdd: str | None = None,
) -> Entry:
    """A 0210 with a response code (any code clears the reversal record, §6)."""
    _need(entry, State.AUTH_SENT)
    state = State.AUTHORISED if code == APPROVED else State.DECLINED
    return replace(
        entry, state=state, code=code, rrn=rrn, auth_code=auth_code,
        business_date_mmdd=business_date_mmdd,
    )  # fmt: skip


def auth_unanswered(entry: Entry, reason: Reason) -> Entry:
    """No 0210 (timeout, dropped link) or one whose MAC failed: reverse it (98 / A0)."""
    _need(entry, State.AUTH_SENT)
    return replace(entry, state=State.REVERSAL_PENDING, reason=reason, tries=0)


# --- the card ---------------------------------------------------------------------------------


def card_done(entry: Entry, tac: str, balance_after_fen: int) -> Entry:
    """DEBIT / CREDIT answered (or proved by GET TRANSACTION PROVE): the 0220 is owed."""
    _need(entry, State.AUTHORISED, State.TORN)
    return replace(
        entry, state=State.COMPLETION_PENDING, tac=tac, balance_after_fen=balance_after_fen,
        tries=0,
    )  # fmt: skip


def card_torn(entry: Entry) -> Entry:
    """DEBIT / CREDIT sent and unanswered: the card may or may not have paid."""
    _need(entry, State.AUTHORISED)
    return replace(entry, state=State.TORN)


def card_not_done(entry: Entry, note: str) -> Entry:
    """The card certainly did not pay (refused, or the proof says so): reverse (06)."""
    _need(entry, State.AUTHORISED, State.TORN)
    return replace(entry, state=State.REVERSAL_PENDING, reason=Reason.OTHER, tries=0, note=note)


def abandoned(entry: Entry, note: str) -> Entry:
    """A torn entry whose card will not come back: for manual handling (neither a 0220 nor a
    0400 is safe without the card's word)."""
    _need(entry, State.TORN)
    return replace(entry, state=State.MANUAL, review=True, note=note)


# --- forwarding 0220 / 0400 -------------------------------------------------------------------


def forward_answered(entry: Entry, code: str, tries_max: int = REVERSAL_TRIES_MAX_DEFAULT) -> Entry:
    """A 0230 / 0410 with a response code. A0 clears nothing (the host did not check the
    message): it counts as a try."""
    _need(entry, *FORWARD_STATES)
    if code == MAC_ERROR:
        return forward_unanswered(entry, tries_max, code=code)
    state = State.COMPLETED if entry.state is State.COMPLETION_PENDING else State.REVERSED
    return replace(entry, state=state, code=code, review=entry.review or code == DUPLICATE)


def forward_unanswered(entry: Entry, tries_max: int, *, code: str | None = None) -> Entry:
    """One more try of a 0220 / 0400 that got no usable response. A reversal gives up after
    ``tries_max`` tries (MANUAL); a completion never does, it is flagged for review."""
    _need(entry, *FORWARD_STATES)
    if tries_max < 1:
        raise ValueError("tries_max is at least 1")
    tries = entry.tries + 1
    new_code = code if code is not None else entry.code
    if entry.state is State.REVERSAL_PENDING and tries >= tries_max:
        return replace(
            entry, state=State.MANUAL, tries=tries, code=new_code, review=True,
            note=f"reversal unanswered after {tries} tries",
        )  # fmt: skip
    review = entry.review or tries >= COMPLETION_TRIES_REVIEW
    return replace(entry, tries=tries, code=new_code, review=review)


# --- what next ------------------------------------------------------------------------------


def to_forward(entries: Iterable[Entry]) -> list[Entry]:
    """The entries the terminal owes the host a message for, in the order to send them:
    reversals first (§6: before the next online transaction), then completions, oldest
    first within each."""
    owed = [e for e in entries if e.state in FORWARD_STATES]
    return sorted(owed, key=lambda e: (e.state is not State.REVERSAL_PENDING, e.entry_id))


def blocking(entries: Iterable[Entry]) -> list[Entry]:
    """Entries that must be resolved before a new online transaction: an unanswered 0200
    (its reversal still owed) or a torn card step (the same card must come back)."""
    return [e for e in entries if e.state in (State.AUTH_SENT, State.REVERSAL_PENDING, State.TORN)]


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """The terminal side of field 48 (host_protocol.md §5): completed, unreversed, paid by
    the card."""

    purchase_amount_fen: int = 0
    purchase_count: int = 0
    refund_amount_fen: int = 0
    refund_count: int = 0
    load_amount_fen: int = 0
    load_count: int = 0


def batch_totals(entries: Iterable[Entry], batch_no: int) -> BatchTotals:
    """Totals of ``batch_no``: entries whose card paid and that were not reversed (COMPLETED,
    plus COMPLETION_PENDING, which settlement refuses to leave behind)."""
    amounts = dict.fromkeys(Kind, 0)
    counts = dict.fromkeys(Kind, 0)
    for e in entries:
        if e.batch_no != batch_no or not e.card_paid:
            continue
        if e.state not in (State.COMPLETED, State.COMPLETION_PENDING):
            continue
        amounts[e.kind] += e.amount_fen
        counts[e.kind] += 1
    return BatchTotals(
        amounts[Kind.SALE], counts[Kind.SALE], amounts[Kind.REFUND], counts[Kind.REFUND],
        amounts[Kind.LOAD], counts[Kind.LOAD],
    )  # fmt: skip
