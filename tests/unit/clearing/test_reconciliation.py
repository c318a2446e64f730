"""Three-way reconciliation (clearing.md §5): every exception code with its effect."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clearing.domain.errors import InvalidInput
from clearing.domain.reconciliation import (
    EFFECTS,
    BatchSettlement,
    CounterKind,
    Effect,
    ExceptionCode,
    HostState,
    HostTxn,
    TacVerdict,
    Totals,
    TxnKey,
    TxnKind,
    UploadRecord,
    classify_batch,
    classify_txn,
    counter_exceptions,
    effect_label,
    reconcile,
)

TID = "10000001"
ASN = "1000000000000001"


def host(
    stan: int,
    amount_fen: int = 1_000,
    *,
    counter: int | None = None,
    state: HostState = HostState.COMPLETED,
    completion_fen: int | None = None,
    verdict: TacVerdict = TacVerdict.OK,
    kind: TxnKind = TxnKind.PURCHASE,
    asn: str = ASN,
) -> HostTxn:
    completed = state is HostState.COMPLETED
    return HostTxn(
        key=TxnKey(TID, 1, stan),
        kind=kind,
        rrn=f"{stan:012d}",
        asn=asn,
        auth_amount_fen=amount_fen,
        state=state,
        txn_counter=counter if counter is not None else stan,
        counter_kind=CounterKind.OFFLINE if kind is TxnKind.PURCHASE else CounterKind.ONLINE,
        completion_amount_fen=(completion_fen or amount_fen) if completed else None,
        tac_verdict=verdict if completed else None,
    )


def upload(txn: HostTxn, **changes: object) -> UploadRecord:
    record = UploadRecord(
        txn.key, txn.kind, txn.rrn, txn.asn, txn.amount_fen, card_counter=txn.txn_counter - 1
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def test_every_code_has_the_effect_of_the_table() -> None:
    assert set(EFFECTS) == set(ExceptionCode)
    assert effect_label(ExceptionCode.MATCHED) == "settled"
    assert effect_label(ExceptionCode.AMOUNT_MISMATCH) == "held"
    assert effect_label(ExceptionCode.NO_COMPLETION) == "held+carried"
    assert effect_label(ExceptionCode.TAC_INVALID) == "held+fraud_report"
    assert effect_label(ExceptionCode.COUNTER_DUPLICATE) == "held"
    assert effect_label(ExceptionCode.COUNTER_GAP) == "reported"
    assert effect_label(ExceptionCode.TERMINAL_ONLY) == "reported"
    assert effect_label(ExceptionCode.HOST_ONLY) == "settled+reported"
    assert effect_label(ExceptionCode.TERMINAL_TOTAL_MISMATCH) == "reported"
    assert effect_label(ExceptionCode.OVER_LIMIT) == "rejected"
    assert effect_label(ExceptionCode.DUPLICATE) == "rejected"


def test_matched() -> None:
    txn = host(1)
    verdict = classify_txn(txn, upload(txn), batch_uploaded=True)
    assert verdict.codes == (ExceptionCode.MATCHED,)
    assert verdict.settles and not verdict.held


def test_amount_mismatch_is_held() -> None:
    txn = host(1, 1_000, completion_fen=900)
    verdict = classify_txn(txn, None, batch_uploaded=False)
    assert verdict.codes == (ExceptionCode.AMOUNT_MISMATCH,)
    assert verdict.held and not verdict.settles


def test_upload_amount_differing_from_the_completion_is_an_amount_mismatch() -> None:
    txn = host(1)
    verdict = classify_txn(txn, upload(txn, amount_fen=1_001), batch_uploaded=True)
    assert verdict.codes == (ExceptionCode.AMOUNT_MISMATCH,)


def test_no_completion_is_held_and_carried() -> None:
    verdict = classify_txn(host(1, state=HostState.AUTHORISED), None, batch_uploaded=False)
    assert verdict.codes == (ExceptionCode.NO_COMPLETION,)
    assert verdict.held and verdict.carried and not verdict.settles


def test_tac_invalid_is_held_for_a_fraud_report() -> None:
    verdict = classify_txn(host(1, verdict=TacVerdict.BAD), None, batch_uploaded=False)
    assert verdict.codes == (ExceptionCode.TAC_INVALID,)
    assert verdict.held and Effect.FRAUD_REPORT in verdict.effects


def test_host_only_settles_on_host_records() -> None:
    verdict = classify_txn(host(1), None, batch_uploaded=True)
    assert verdict.codes == (ExceptionCode.MATCHED, ExceptionCode.HOST_ONLY)
    assert verdict.settles


@pytest.mark.parametrize(
    ("kind", "amount_fen", "over"),
    [
        (TxnKind.PURCHASE, 49_999, False),
        (TxnKind.PURCHASE, 50_000, True),
        (TxnKind.REFUND, 50_000, True),
        (TxnKind.LOAD, 100_000, False),
        (TxnKind.LOAD, 100_001, True),
    ],
)
def test_over_limit_is_rejected(kind: TxnKind, amount_fen: int, over: bool) -> None:
    verdict = classify_txn(host(1, amount_fen, kind=kind), None, batch_uploaded=False)
    assert (verdict.codes == (ExceptionCode.OVER_LIMIT,)) is over
    assert verdict.settles is not over


def test_a_reversed_transaction_settles_nothing_and_raises_nothing() -> None:
    verdict = classify_txn(host(1, state=HostState.REVERSED), None, batch_uploaded=True)
    assert verdict.codes == ()
    assert not verdict.settles and not verdict.held


def test_a_completed_record_needs_its_completion_and_verdict() -> None:
    with pytest.raises(InvalidInput, match="completed without"):
        HostTxn(
            TxnKey(TID, 1, 1),
            TxnKind.PURCHASE,
            "1",
            ASN,
            100,
            HostState.COMPLETED,
            1,
            CounterKind.OFFLINE,
        )


# --- counters -----------------------------------------------------------------------------------


def test_counter_duplicate_holds_every_transaction_carrying_it() -> None:
    a, b, c = host(1, counter=5), host(2, counter=5), host(3, counter=6)
    assert counter_exceptions([a, b, c]) == {
        a.key: ExceptionCode.COUNTER_DUPLICATE,
        b.key: ExceptionCode.COUNTER_DUPLICATE,
    }


def test_counter_gap_is_reported_on_the_transaction_after_it() -> None:
    a, b = host(1, counter=5), host(2, counter=8)
    assert counter_exceptions([a, b]) == {b.key: ExceptionCode.COUNTER_GAP}


def test_counters_are_checked_per_card_and_kind() -> None:
    a = host(1, counter=5)
    b = host(2, counter=5, kind=TxnKind.LOAD)  # the online counter: its own sequence
    c = host(3, counter=5, asn="1000000000000002")
    d = host(4, counter=9, asn="1000000000000003")  # a card's first transaction: no gap
    assert counter_exceptions([a, b, c, d]) == {}


def test_reversed_and_open_transactions_fill_the_sequence() -> None:
    a = host(1, counter=5)
    b = host(2, counter=6, state=HostState.REVERSED)
    c = host(3, counter=7, state=HostState.AUTHORISED)
    d = host(4, counter=8)
    assert counter_exceptions([a, b, c, d]) == {}


def test_counters_continue_from_earlier_dates() -> None:
    a, b = host(1, counter=5), host(2, counter=10)
    card = (ASN, CounterKind.OFFLINE)
    assert counter_exceptions([a], {card: 4}) == {}
    assert counter_exceptions([a], {card: 3}) == {a.key: ExceptionCode.COUNTER_GAP}
    assert counter_exceptions([a, b], {card: 5}) == {
        a.key: ExceptionCode.COUNTER_DUPLICATE,
        b.key: ExceptionCode.COUNTER_GAP,
    }


# --- batches ------------------------------------------------------------------------------------


def test_terminal_total_mismatch_reports_the_difference() -> None:
    settlement = BatchSettlement(
        TID,
        1,
        terminal=Totals(purchase_amount_fen=3_000, purchase_count=3),
        host=Totals(purchase_amount_fen=2_000, purchase_count=2),
    )
    (row,) = classify_batch(settlement)
    assert row.code is ExceptionCode.TERMINAL_TOTAL_MISMATCH
    assert (row.amount_fen, row.other_amount_fen, row.stan) == (3_000, 2_000, None)
    assert row.reason == "purchase: terminal 3 / 3000 fen, host 2 / 2000 fen, difference 1000 fen"
    assert row.effect == "reported"
    balanced = BatchSettlement(TID, 1, Totals(load_count=1), Totals(load_count=1))
    assert classify_batch(balanced) == []


# --- the whole day ------------------------------------------------------------------------------


def test_reconcile_a_day_with_every_kind_of_exception() -> None:
    matched = host(1, counter=1)
    mismatch = host(2, counter=2, completion_fen=900)
    open_ = host(3, counter=3, state=HostState.AUTHORISED)
    bad_tac = host(4, counter=4, verdict=TacVerdict.BAD)
    host_only = host(5, counter=5)
    dup_a, dup_b = host(6, counter=7), host(7, counter=7)  # counter 6 never seen: a gap at 7
    over = host(8, 50_000, counter=8)
    reversed_ = host(9, counter=9, state=HostState.REVERSED)
    uploads = [
        upload(matched),
        upload(mismatch, amount_fen=900),
        upload(bad_tac),
        upload(dup_a),
        upload(dup_b),
        upload(reversed_),  # the terminal uploaded a reversed one: TERMINAL_ONLY
        UploadRecord(TxnKey(TID, 1, 99), TxnKind.PURCHASE, "999999999999", ASN, 5, 98),
    ]
    settlement = BatchSettlement(TID, 1, Totals(purchase_count=9), Totals(purchase_count=8))
    day = reconcile(
        [matched, mismatch, open_, bad_tac, host_only, dup_a, dup_b, over, reversed_],
        uploads,
        [settlement],
    )
    assert day.settled == (matched, host_only)
    assert set(day.held) == {mismatch, open_, bad_tac, dup_a, dup_b}
    assert day.carried == (open_,)
    assert [(r.code.value, r.stan) for r in day.exceptions] == [
        ("AMOUNT_MISMATCH", 2),
        ("COUNTER_DUPLICATE", 6),
        ("COUNTER_DUPLICATE", 7),
        ("HOST_ONLY", 5),
        ("NO_COMPLETION", 3),
        ("OVER_LIMIT", 8),
        ("TAC_INVALID", 4),
        ("TERMINAL_ONLY", 9),
        ("TERMINAL_ONLY", 99),
        ("TERMINAL_TOTAL_MISMATCH", None),
    ]
    mismatch_row = day.exceptions[0]
    assert (mismatch_row.amount_fen, mismatch_row.other_amount_fen) == (1_000, 900)
    assert mismatch_row.effect == "held"


def test_counter_gap_is_reported_and_the_transaction_still_settles() -> None:
    a, b = host(1, counter=1), host(2, counter=3)
    day = reconcile([a, b], [])
    assert day.settled == (a, b)
    assert [(r.code, r.stan) for r in day.exceptions] == [(ExceptionCode.COUNTER_GAP, 2)]


def test_duplicate_with_different_content_is_rejected_identical_repeat_dropped() -> None:
    a = host(1)
    a_changed = replace(a, auth_amount_fen=2_000, completion_amount_fen=2_000)
    b = host(2)
    day = reconcile([a, a_changed, b, b], [])
    assert day.settled == (b,)
    assert [(r.code, r.stan, r.amount_fen) for r in day.exceptions] == [
        (ExceptionCode.DUPLICATE, 1, 1_000),
        (ExceptionCode.DUPLICATE, 1, 2_000),
    ]
    assert all(r.effect == "rejected" for r in day.exceptions)


def test_an_upload_naming_another_rrn_is_terminal_only_and_the_capture_host_only() -> None:
    txn = host(1)
    day = reconcile([txn], [upload(txn, rrn="000000000777")])
    assert [r.code for r in day.exceptions] == [
        ExceptionCode.HOST_ONLY,
        ExceptionCode.TERMINAL_ONLY,
    ]
    assert day.settled == (txn,)
