"""The three-way agreement after faults: what the card says it did (balance and its log, EF 0x18),
what the terminal's journal says, and what the host captured (the ``clearing_transactions``
view, docs/clearing-view.md). ``problems`` lists every disagreement as one readable line.

The rules (host_protocol.md §6 and the issue's "no money or record lost"):
- the card's balance is its opening balance plus its credits minus its debits (its own log);
- every card debit / credit is captured by the host exactly once, as a completed transaction of
  the same amount (matched by counter: the card's log holds INITIALIZE's counter + 1, the view's
  ``txn_counter``), and the host has no completed transaction the card did not make;
- a reversed authorisation is never completed, and nothing is left merely ``authorised``;
- the journal's completed entries are the host's completed rows (batch, STAN, kind, amount, TAC,
  RRN), every entry whose card paid is completed, and nothing is still owed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, text

from acquiring.adapters.sql import schema
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.sql.views import clearing_transactions
from paycore import pboc
from paycore.purse import LogRecord, read_record
from paycore.sw import SW
from pos_terminal.domain.card_flows import read_card
from pos_terminal.domain.journal_model import Entry, Kind, State
from pos_terminal.ports import ApduLink

LOG_RECORDS_MAX = 10  # card.md §2: the cyclic log holds 10 records
KIND_OF_JOURNAL = {Kind.SALE: "purchase", Kind.LOAD: "load", Kind.REFUND: "refund"}
UNFINISHED = frozenset(
    {
        State.AUTH_SENT,
        State.AUTHORISED,
        State.TORN,
        State.COMPLETION_PENDING,
        State.REVERSAL_PENDING,
    }
)


@dataclass(frozen=True, slots=True)
class CardMove:
    counter_kind: str  # "offline" (purchases) / "online" (loads, refunds): the view's words
    counter: int  # the counter after the transaction
    amount_fen: int
    signed_fen: int  # - for a debit, + for a credit

    def __str__(self) -> str:
        return f"card {self.counter_kind} #{self.counter} {self.signed_fen:+d}"


@dataclass(frozen=True, slots=True)
class CardState:
    balance_fen: int
    moves: tuple[CardMove, ...]  # oldest first

    def __str__(self) -> str:
        moves = ", ".join(str(m) for m in self.moves) or "no moves"
        return f"balance {self.balance_fen}; {moves}"


def card_state(card: ApduLink) -> CardState:
    """GET BALANCE and every record of the card's log (SELECT, READ EF15 first)."""
    info = read_card(card)
    moves: list[CardMove] = []
    for number in range(1, LOG_RECORDS_MAX + 1):
        response = card.transmit(read_record(number).encode())
        if int.from_bytes(response[-2:], "big") != SW.OK:
            break
        record = LogRecord.decode(response[:-2])
        if record.tx_type == pboc.TYPE_EP_PURCHASE:
            moves.append(CardMove("offline", record.counter, record.amount_fen, -record.amount_fen))
        elif record.tx_type == pboc.TYPE_EP_LOAD:
            moves.append(CardMove("online", record.counter, record.amount_fen, record.amount_fen))
        else:
            raise AssertionError(f"unexpected log record type {record.tx_type:02X}")
    return CardState(info.balance_fen, tuple(reversed(moves)))


@dataclass(frozen=True, slots=True)
class HostRow:
    asn: str
    kind: str
    batch_no: int
    stan: int
    rrn: str
    auth_amount_fen: int
    state: str
    completion_amount_fen: int | None
    tac: str | None
    tac_verdict: str | None
    reversal_reason: str | None
    counter_kind: str
    txn_counter: int

    def __str__(self) -> str:
        extra = (
            f" {self.completion_amount_fen} TAC {self.tac} {self.tac_verdict}"
            if self.completion_amount_fen is not None
            else ""
        )
        reason = f" reason {self.reversal_reason}" if self.reversal_reason else ""
        return (
            f"host {self.kind} batch {self.batch_no} STAN {self.stan} {self.auth_amount_fen} "
            f"{self.state}{extra}{reason} ({self.counter_kind} #{self.txn_counter})"
        )


def host_rows(store: SqlStore, terminal_id: str) -> list[HostRow]:
    v = clearing_transactions.c
    query = (
        select(
            v.asn, v.kind, v.batch_no, v.stan, v.rrn, v.auth_amount_fen, v.state,
            v.completion_amount_fen, v.tac, v.tac_verdict, v.reversal_reason, v.counter_kind,
            v.txn_counter,
        )
        .where(v.terminal_id == terminal_id)
        .order_by(v.txn_id)
    )  # fmt: skip
    with store.engine.connect() as conn:
        return [HostRow(**dict(row._mapping)) for row in conn.execute(query).all()]


@dataclass(frozen=True, slots=True)
class HostSettlement:
    batch_no: int
    verdict: str


def host_settlements(store: SqlStore, terminal_id: str) -> list[HostSettlement]:
    """The ``clearing_terminal_settlements`` view (docs/clearing-view.md)."""
    query = text(
        "SELECT batch_no, verdict FROM clearing_terminal_settlements"
        " WHERE terminal_id = :tid ORDER BY batch_no"
    )
    with store.engine.connect() as conn:
        return [HostSettlement(*row) for row in conn.execute(query, {"tid": terminal_id}).all()]


def host_uploads(store: SqlStore, terminal_id: str) -> list[tuple[int, int, int]]:
    """(batch, STAN, amount) of each 0320 record (the ``clearing_batch_uploads`` view)."""
    query = text(
        "SELECT batch_no, stan, amount_fen FROM clearing_batch_uploads"
        " WHERE terminal_id = :tid ORDER BY batch_no, stan"
    )
    with store.engine.connect() as conn:
        return [(int(b), int(s), int(a)) for b, s, a in conn.execute(query, {"tid": terminal_id})]


def host_batch_no(store: SqlStore, terminal_id: str) -> int:
    t = schema.terminals.c
    with store.engine.connect() as conn:
        value = conn.execute(select(t.batch_no).where(t.terminal_id == terminal_id)).scalar_one()
    return int(value)


def journal_line(e: Entry) -> str:
    tac = f" TAC {e.tac}" if e.tac else ""
    code = f" code {e.code}" if e.code else ""
    return (
        f"journal #{e.entry_id} {e.kind.value} batch {e.batch_no} STAN {e.stan} {e.amount_fen} "
        f"{e.state.value}{code}{tac} tries {e.tries}{' REVIEW' if e.review else ''}"
        f"{' (' + e.note + ')' if e.note else ''}"
    )


def problems(
    opening_balance_fen: int,
    card: CardState,
    journal: Iterable[Entry],
    host: Sequence[HostRow],
) -> list[str]:
    found: list[str] = []
    entries = list(journal)

    # The card against itself.
    expected = opening_balance_fen + sum(m.signed_fen for m in card.moves)
    if card.balance_fen != expected:
        found.append(
            f"card balance {card.balance_fen} != opening {opening_balance_fen} + its log = "
            f"{expected}"
        )

    # The card against the host: each move captured once, nothing captured without a move.
    completed = [r for r in host if r.state == "completed"]
    by_counter: dict[tuple[str, int], list[HostRow]] = {}
    for row in completed:
        by_counter.setdefault((row.counter_kind, row.txn_counter), []).append(row)
    moves = {(m.counter_kind, m.counter): m for m in card.moves}
    for counter_key, move in moves.items():
        rows = by_counter.get(counter_key, [])
        if not rows:
            found.append(f"{move}: not captured by the host")
        elif len(rows) > 1:
            found.append(f"{move}: captured {len(rows)} times")
        elif rows[0].completion_amount_fen != move.amount_fen:
            found.append(f"{move}: captured as {rows[0].completion_amount_fen}")
    for counter_key, rows in by_counter.items():
        if counter_key not in moves:
            found.extend(f"{row}: captured without a card move" for row in rows)

    # The host against itself.
    for row in host:
        if row.state == "authorised":
            found.append(f"{row}: neither completed nor reversed")
        if row.state == "reversed" and row.completion_amount_fen is not None:
            found.append(f"{row}: reversed and completed")
        if row.state == "completed" and row.tac_verdict != "ok":
            found.append(f"{row}: TAC not verified")

    # The journal against the host (and itself).
    host_by_key = {(r.batch_no, r.stan): r for r in host}
    journal_completed: set[tuple[int, int]] = set()
    for e in entries:
        key = (e.batch_no, e.stan)
        jrow = host_by_key.get(key)
        if e.state in UNFINISHED:
            found.append(f"{journal_line(e)}: still unfinished")
        if e.state is State.MANUAL:
            found.append(f"{journal_line(e)}: left for manual handling")
        if e.card_paid and e.state is not State.COMPLETED:
            found.append(f"{journal_line(e)}: the card paid but it is not completed")
        if e.state is State.COMPLETED:
            journal_completed.add(key)
            if jrow is None or jrow.state != "completed":
                found.append(f"{journal_line(e)}: host has {jrow or 'nothing'}")
            else:
                same_kind = jrow.kind == KIND_OF_JOURNAL[e.kind]
                if not same_kind or jrow.completion_amount_fen != e.amount_fen:
                    found.append(f"{journal_line(e)}: host has {jrow}")
                if (e.tac or "").upper() != (jrow.tac or "").upper() or e.rrn != jrow.rrn:
                    found.append(f"{journal_line(e)}: TAC/RRN differ from {jrow}")
        if e.state is State.REVERSED and jrow is not None and jrow.state != "reversed":
            found.append(f"{journal_line(e)}: host has {jrow}")
        if e.state is State.DECLINED and jrow is not None:
            found.append(f"{journal_line(e)}: declined, but the host has {jrow}")
    for row in completed:
        if (row.batch_no, row.stan) not in journal_completed:
            found.append(f"{row}: completed at the host, not in the journal as completed")
    return found


def report(
    found: Sequence[str],
    card: CardState,
    journal: Iterable[Entry],
    host: Sequence[HostRow],
    transcript: str,
) -> str:
    lines = ["three-way disagreement:", *(f"  - {p}" for p in found), f"card: {card}"]
    lines += ["journal:", *(f"  {journal_line(e)}" for e in journal)]
    lines += ["host:", *(f"  {r}" for r in host), "wire (proxy transcript):"]
    lines += [f"  {line}" for line in transcript.splitlines()]
    return "\n".join(lines)
