"""Three-way reconciliation (clearing.md §5): the terminal's batch uploads and settlement totals,
the host's captures, and the card's proof (the TAC verdict the host recorded; the card counter
sequence per (ASN, counter kind)). Pure: the three sources come in as plain frozen records (the
columns of docs/clearing-view.md that matter here), verdicts and exception rows go out.

Match key: (terminal_id, batch_no, stan) and the RRN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

from clearing.domain.errors import InvalidInput, check_int

#: clearing.md §1: purchases and refunds are 1..49,999 fen; loads up to the card's ceiling.
PURCHASE_AMOUNT_MAX_FEN: Final = 49_999
LOAD_AMOUNT_MAX_FEN: Final = 100_000
#: PBOC card counters are two bytes.
COUNTER_MAX: Final = 0xFFFF


class TxnKind(StrEnum):
    PURCHASE = "purchase"
    LOAD = "load"
    REFUND = "refund"


class CounterKind(StrEnum):
    OFFLINE = "offline"  # purchases
    ONLINE = "online"  # loads and refunds


class HostState(StrEnum):
    AUTHORISED = "authorised"  # neither completed nor reversed (yet)
    COMPLETED = "completed"
    REVERSED = "reversed"


class TacVerdict(StrEnum):
    OK = "ok"
    BAD = "bad"


class Effect(StrEnum):
    SETTLED = "settled"
    HELD = "held"
    CARRIED = "carried"  # carried to the next business date
    REJECTED = "rejected"
    REPORTED = "reported"
    FRAUD_REPORT = "fraud_report"


class ExceptionCode(StrEnum):
    MATCHED = "MATCHED"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    NO_COMPLETION = "NO_COMPLETION"
    TAC_INVALID = "TAC_INVALID"
    COUNTER_DUPLICATE = "COUNTER_DUPLICATE"
    COUNTER_GAP = "COUNTER_GAP"
    TERMINAL_ONLY = "TERMINAL_ONLY"
    HOST_ONLY = "HOST_ONLY"
    TERMINAL_TOTAL_MISMATCH = "TERMINAL_TOTAL_MISMATCH"
    OVER_LIMIT = "OVER_LIMIT"
    DUPLICATE = "DUPLICATE"


#: The effect column of clearing.md §5, one set per code.
EFFECTS: Final[Mapping[ExceptionCode, frozenset[Effect]]] = {
    ExceptionCode.MATCHED: frozenset({Effect.SETTLED}),
    ExceptionCode.AMOUNT_MISMATCH: frozenset({Effect.HELD}),
    ExceptionCode.NO_COMPLETION: frozenset({Effect.HELD, Effect.CARRIED}),
    ExceptionCode.TAC_INVALID: frozenset({Effect.HELD, Effect.FRAUD_REPORT}),
    ExceptionCode.COUNTER_DUPLICATE: frozenset({Effect.HELD}),
    ExceptionCode.COUNTER_GAP: frozenset({Effect.REPORTED}),
    ExceptionCode.TERMINAL_ONLY: frozenset({Effect.REPORTED}),
    ExceptionCode.HOST_ONLY: frozenset({Effect.REPORTED, Effect.SETTLED}),
    ExceptionCode.TERMINAL_TOTAL_MISMATCH: frozenset({Effect.REPORTED}),
    ExceptionCode.OVER_LIMIT: frozenset({Effect.REJECTED}),
    ExceptionCode.DUPLICATE: frozenset({Effect.REJECTED}),
}

_EFFECT_ORDER: Final = tuple(Effect)
_R = TypeVar("_R", "HostTxn", "UploadRecord")


def effect_label(code: ExceptionCode) -> str:
    """The ``effect`` cell of exceptions_<YYYYMMDD>.csv: the code's effects joined by ``+`` in
    a fixed order (``held+carried``, ``reported+settled``)."""
    return "+".join(e.value for e in _EFFECT_ORDER if e in EFFECTS[code])


@dataclass(frozen=True, slots=True, order=True)
class TxnKey:
    """The terminal's key of a transaction (field 41, batch 60.2, field 11)."""

    terminal_id: str
    batch_no: int
    stan: int


@dataclass(frozen=True, slots=True)
class HostTxn:
    """One approved authorisation with the state of its completion and reversal (one row of
    ``clearing_transactions``). ``txn_counter`` is DF03 + 1."""

    key: TxnKey
    kind: TxnKind
    rrn: str
    asn: str
    auth_amount_fen: int
    state: HostState
    txn_counter: int
    counter_kind: CounterKind
    completion_amount_fen: int | None = None
    tac_verdict: TacVerdict | None = None

    def __post_init__(self) -> None:
        r = "host_txn"
        check_int(r, "auth_amount_fen", self.auth_amount_fen, 1, None)
        check_int(r, "txn_counter", self.txn_counter, 1, COUNTER_MAX + 1)
        completed = self.state is HostState.COMPLETED
        if completed and (self.completion_amount_fen is None or self.tac_verdict is None):
            raise InvalidInput(r, "state", "completed without completion amount or TAC verdict")
        if self.completion_amount_fen is not None:
            check_int(r, "completion_amount_fen", self.completion_amount_fen, 0, None)

    @property
    def amount_fen(self) -> int:
        """The amount that settles: the completion's when there is one, else the authorised."""
        return (
            self.completion_amount_fen
            if self.completion_amount_fen is not None
            else self.auth_amount_fen
        )


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """One 0320 batch-upload record as the terminal sent it (``clearing_batch_uploads``)."""

    key: TxnKey
    kind: TxnKind
    rrn: str
    asn: str
    amount_fen: int
    card_counter: int


@dataclass(frozen=True, slots=True)
class Totals:
    """Field 48 totals of one batch: amount and count per kind."""

    purchase_amount_fen: int = 0
    purchase_count: int = 0
    refund_amount_fen: int = 0
    refund_count: int = 0
    load_amount_fen: int = 0
    load_count: int = 0

    def of(self, kind: TxnKind) -> tuple[int, int]:
        """(amount_fen, count) of one kind."""
        if kind is TxnKind.PURCHASE:
            return self.purchase_amount_fen, self.purchase_count
        if kind is TxnKind.REFUND:
            return self.refund_amount_fen, self.refund_count
        return self.load_amount_fen, self.load_count


@dataclass(frozen=True, slots=True)
class BatchSettlement:
    """One 0500: the terminal's totals against the host's (``clearing_terminal_settlements``)."""

    terminal_id: str
    batch_no: int
    terminal: Totals
    host: Totals


@dataclass(frozen=True, slots=True)
class ExceptionRow:
    """One line of exceptions_<YYYYMMDD>.csv (clearing.md §7). ``stan`` is ``None`` for a
    batch-level row (TERMINAL_TOTAL_MISMATCH)."""

    code: ExceptionCode
    terminal_id: str
    batch_no: int
    stan: int | None
    rrn: str
    asn: str
    amount_fen: int
    other_amount_fen: int | None
    reason: str

    @property
    def effect(self) -> str:
        return effect_label(self.code)

    def sort_key(self) -> tuple[str, str, int, int]:
        """Sorted by code then terminal_id, batch, stan (a batch row first)."""
        return (
            self.code.value,
            self.terminal_id,
            self.batch_no,
            -1 if self.stan is None else self.stan,
        )


@dataclass(frozen=True, slots=True)
class TxnVerdict:
    """What one host transaction's codes add up to. ``settles``: it enters today's settlement;
    ``carried``: it is looked at again on the next business date. Held items settle later, by
    an adjustment."""

    txn: HostTxn
    codes: tuple[ExceptionCode, ...]

    @property
    def effects(self) -> frozenset[Effect]:
        out: set[Effect] = set()
        for code in self.codes:
            out |= EFFECTS[code]
        return frozenset(out)

    @property
    def settles(self) -> bool:
        effects = self.effects
        return (
            Effect.SETTLED in effects
            and Effect.HELD not in effects
            and Effect.REJECTED not in effects
        )

    @property
    def held(self) -> bool:
        return Effect.HELD in self.effects and Effect.REJECTED not in self.effects

    @property
    def carried(self) -> bool:
        return Effect.CARRIED in self.effects


def amount_limit_fen(kind: TxnKind) -> int:
    return LOAD_AMOUNT_MAX_FEN if kind is TxnKind.LOAD else PURCHASE_AMOUNT_MAX_FEN


def classify_txn(txn: HostTxn, upload: UploadRecord | None, batch_uploaded: bool) -> TxnVerdict:
    """The codes of one host transaction, before the counter checks (which need the whole
    sequence: see ``counter_exceptions``). ``upload`` is the terminal's record with the same
    key and RRN, if any; ``batch_uploaded`` says whether the terminal made a batch upload for
    this batch at all (HOST_ONLY only applies when it did).

    A reversed transaction settles nothing and raises no code. Otherwise:
    OVER_LIMIT rejects outright; NO_COMPLETION holds and carries; a completion adds TAC_INVALID
    and/or AMOUNT_MISMATCH (auth ≠ completion, or the upload's amount ≠ the completion's), or
    MATCHED; HOST_ONLY is added when the batch was uploaded without this transaction."""
    if max(txn.auth_amount_fen, txn.amount_fen) > amount_limit_fen(txn.kind):
        return TxnVerdict(txn, (ExceptionCode.OVER_LIMIT,))
    if txn.state is HostState.REVERSED:
        return TxnVerdict(txn, ())
    if txn.state is HostState.AUTHORISED:
        return TxnVerdict(txn, (ExceptionCode.NO_COMPLETION,))
    codes: list[ExceptionCode] = []
    if txn.tac_verdict is not TacVerdict.OK:
        codes.append(ExceptionCode.TAC_INVALID)
    if txn.completion_amount_fen != txn.auth_amount_fen or (
        upload is not None and upload.amount_fen != txn.completion_amount_fen
    ):
        codes.append(ExceptionCode.AMOUNT_MISMATCH)
    if not codes:
        codes.append(ExceptionCode.MATCHED)
    if batch_uploaded and upload is None:
        codes.append(ExceptionCode.HOST_ONLY)
    return TxnVerdict(txn, tuple(codes))


def classify_batch(settlement: BatchSettlement) -> list[ExceptionRow]:
    """TERMINAL_TOTAL_MISMATCH rows of one 0500, one per kind whose amount or count differ,
    with the terminal's amount, the host's, and the difference in the reason. Empty when the
    batch balances."""
    rows: list[ExceptionRow] = []
    for kind in TxnKind:
        t_amount, t_count = settlement.terminal.of(kind)
        h_amount, h_count = settlement.host.of(kind)
        if (t_amount, t_count) == (h_amount, h_count):
            continue
        rows.append(
            ExceptionRow(
                ExceptionCode.TERMINAL_TOTAL_MISMATCH,
                settlement.terminal_id,
                settlement.batch_no,
                None,
                "",
                "",
                t_amount,
                h_amount,
                f"{kind.value}: terminal {t_count} / {t_amount} fen, host {h_count} / "
                f"{h_amount} fen, difference {t_amount - h_amount} fen",
            )
        )
    return rows


def counter_exceptions(
    txns: Iterable[HostTxn], last_seen: Mapping[tuple[str, CounterKind], int] | None = None
) -> dict[TxnKey, ExceptionCode]:
    """COUNTER_DUPLICATE / COUNTER_GAP per (ASN, counter kind), keyed by transaction.

    - Duplicate: two completed transactions carry the same counter; every one of them is held
      (clearing cannot tell which is genuine). A counter already seen on an earlier date
      (``last_seen``) or below it is a duplicate too.
    - Gap: sorted by counter, a completed transaction whose counter is more than one above the
      previous counter seen (on the day, in any state, or ``last_seen`` from earlier dates) is
      reported. The first transaction of a card with nothing seen before is not a gap.
    Authorised and reversed transactions fill the sequence (their counter was handed out) but
    raise no code themselves: a reversal may or may not have consumed the card's counter.
    """
    last_seen = last_seen or {}
    by_card: dict[tuple[str, CounterKind], list[HostTxn]] = {}
    for txn in txns:
        by_card.setdefault((txn.asn, txn.counter_kind), []).append(txn)
    found: dict[TxnKey, ExceptionCode] = {}
    for card in sorted(by_card):
        seq = sorted(by_card[card], key=lambda t: (t.txn_counter, t.key))
        completed = [t for t in seq if t.state is HostState.COMPLETED]
        counts: dict[int, int] = {}
        for t in completed:
            counts[t.txn_counter] = counts.get(t.txn_counter, 0) + 1
        before = last_seen.get(card)
        for t in completed:
            if counts[t.txn_counter] > 1 or (before is not None and t.txn_counter <= before):
                found[t.key] = ExceptionCode.COUNTER_DUPLICATE
        previous = before
        for t in seq:
            if (
                t.state is HostState.COMPLETED
                and t.key not in found
                and previous is not None
                and t.txn_counter > previous + 1
            ):
                found[t.key] = ExceptionCode.COUNTER_GAP
            previous = t.txn_counter if previous is None else max(previous, t.txn_counter)
    return found


def _content(record: HostTxn | UploadRecord) -> tuple[object, ...]:
    if isinstance(record, HostTxn):
        return (record.kind, record.rrn, record.asn, record.auth_amount_fen, record.txn_counter)
    return (record.kind, record.rrn, record.asn, record.amount_fen, record.card_counter)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The day's outcome: per host transaction its verdict, and every exception row sorted as
    the exceptions file is (MATCHED is not an exception and has no row)."""

    verdicts: tuple[TxnVerdict, ...]
    exceptions: tuple[ExceptionRow, ...]

    @property
    def settled(self) -> tuple[HostTxn, ...]:
        return tuple(v.txn for v in self.verdicts if v.settles)

    @property
    def held(self) -> tuple[HostTxn, ...]:
        return tuple(v.txn for v in self.verdicts if v.held)

    @property
    def carried(self) -> tuple[HostTxn, ...]:
        return tuple(v.txn for v in self.verdicts if v.carried)


def reconcile(
    host_txns: Iterable[HostTxn],
    uploads: Iterable[UploadRecord],
    settlements: Iterable[BatchSettlement] = (),
    last_seen: Mapping[tuple[str, CounterKind], int] | None = None,
) -> Reconciliation:
    """Reconcile one business date's three sources.

    Duplicates first: the same key (and kind, standing for the MTI) twice with different
    content is DUPLICATE and both are rejected; an identical repeat is dropped. An upload
    matches the host transaction with the same key and RRN; an upload that matches none (an
    unknown key, another RRN, or a reversed transaction) is TERMINAL_ONLY."""
    hosts, host_dups = _dedupe(list(host_txns))
    ups, up_dups = _dedupe(list(uploads))
    rows: list[ExceptionRow] = [*host_dups, *up_dups]

    uploads_by_key = {u.key: u for u in ups}
    uploaded_batches = {(u.key.terminal_id, u.key.batch_no) for u in ups}
    counter_codes = counter_exceptions(hosts, last_seen)

    verdicts: list[TxnVerdict] = []
    matched_upload_keys: set[TxnKey] = set()
    for txn in sorted(hosts, key=lambda t: t.key):
        upload = uploads_by_key.get(txn.key)
        if upload is not None and upload.rrn != txn.rrn:
            upload = None
        if upload is not None and txn.state is not HostState.REVERSED:
            matched_upload_keys.add(txn.key)
        verdict = classify_txn(
            txn,
            upload if txn.state is not HostState.REVERSED else None,
            (txn.key.terminal_id, txn.key.batch_no) in uploaded_batches,
        )
        extra = counter_codes.get(txn.key)
        if extra is not None and ExceptionCode.OVER_LIMIT not in verdict.codes:
            codes = [
                c
                for c in verdict.codes
                if c is not ExceptionCode.MATCHED or extra is ExceptionCode.COUNTER_GAP
            ]
            verdict = TxnVerdict(txn, (*codes, extra))
        verdicts.append(verdict)
        for code in verdict.codes:
            if code is ExceptionCode.MATCHED:
                continue
            other = _other_amount_fen(code, txn, upload)
            rows.append(_txn_row(code, txn, other, _reason(code, txn, upload)))

    for upload in ups:
        if upload.key not in matched_upload_keys:
            rows.append(
                ExceptionRow(
                    ExceptionCode.TERMINAL_ONLY,
                    upload.key.terminal_id,
                    upload.key.batch_no,
                    upload.key.stan,
                    upload.rrn,
                    upload.asn,
                    upload.amount_fen,
                    None,
                    "batch-upload record with no settleable host capture",
                )
            )
    for settlement in settlements:
        rows.extend(classify_batch(settlement))
    rows.sort(key=ExceptionRow.sort_key)
    return Reconciliation(tuple(verdicts), tuple(rows))


def _txn_row(code: ExceptionCode, txn: HostTxn, other: int | None, reason: str) -> ExceptionRow:
    return ExceptionRow(
        code,
        txn.key.terminal_id,
        txn.key.batch_no,
        txn.key.stan,
        txn.rrn,
        txn.asn,
        txn.auth_amount_fen,
        other,
        reason,
    )


def _other_amount_fen(code: ExceptionCode, txn: HostTxn, upload: UploadRecord | None) -> int | None:
    """AMOUNT_MISMATCH shows the completed amount when it differs from the authorised one, else
    the uploaded amount; other codes have no second amount."""
    if code is not ExceptionCode.AMOUNT_MISMATCH:
        return None
    if txn.completion_amount_fen != txn.auth_amount_fen or upload is None:
        return txn.completion_amount_fen
    return upload.amount_fen


def _reason(code: ExceptionCode, txn: HostTxn, upload: UploadRecord | None) -> str:
    if code is ExceptionCode.AMOUNT_MISMATCH:
        uploaded = f", uploaded {upload.amount_fen}" if upload is not None else ""
        return f"authorised {txn.auth_amount_fen}, completed {txn.completion_amount_fen}{uploaded}"
    return {
        ExceptionCode.NO_COMPLETION: "approved without completion or reversal by cut-off",
        ExceptionCode.TAC_INVALID: "the host's TAC verdict is negative",
        ExceptionCode.COUNTER_DUPLICATE: f"{txn.counter_kind.value} counter {txn.txn_counter} "
        "seen twice",
        ExceptionCode.COUNTER_GAP: f"{txn.counter_kind.value} counter {txn.txn_counter} "
        "follows a gap",
        ExceptionCode.HOST_ONLY: "missing from the terminal's batch upload",
        ExceptionCode.OVER_LIMIT: f"amount over {amount_limit_fen(txn.kind)} fen",
    }.get(code, code.value)


def _dedupe(records: list[_R]) -> tuple[list[_R], list[ExceptionRow]]:
    """Keeps one of identical repeats; a (key, kind) seen with different content is DUPLICATE:
    every record of it is rejected (none of them can be trusted)."""
    groups: dict[tuple[TxnKey, TxnKind], list[_R]] = {}
    for record in records:
        groups.setdefault((record.key, record.kind), []).append(record)
    kept: list[_R] = []
    rows: list[ExceptionRow] = []
    for (key, kind), group in groups.items():
        if len({_content(r) for r in group}) == 1:
            kept.append(group[0])
            continue
        for record in group:
            amount = record.auth_amount_fen if isinstance(record, HostTxn) else record.amount_fen
            source = "host" if isinstance(record, HostTxn) else "batch upload"
            rows.append(
                ExceptionRow(
                    ExceptionCode.DUPLICATE,
                    key.terminal_id,
                    key.batch_no,
                    key.stan,
                    record.rrn,
                    record.asn,
                    amount,
                    None,
                    f"{source}: {kind.value} {len(group)} times with different content",
                )
            )
    return kept, rows
