"""Clearing's rounding rules against exact rational arithmetic (Fraction is the oracle here and
only here): the 7:2:1 split, half-up commission, refunds returning commission, the partner
share; and clearing's commission against the acquiring host's copy of the formula."""

from __future__ import annotations

import itertools
from datetime import date
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from acquiring.domain import commission as host_commission
from acquiring.domain.model import CommissionRule as HostRule
from clearing.domain.commission import (
    AMOUNT_MAX_FEN,
    CommissionRule,
    commission_fen,
    rate_fen,
    returned_commission_fen,
)
from clearing.domain.partners import partner_share_fen
from clearing.domain.reconciliation import (
    CounterKind,
    Effect,
    ExceptionCode,
    ExceptionRow,
    HostState,
    HostTxn,
    TacVerdict,
    TxnKey,
    TxnKind,
    UploadRecord,
    reconcile,
)
from clearing.domain.split import WEIGHTS, split_commission

MID = "898310048990001"
JAN = date(2026, 1, 1)
RATES_BP = (0, 1, 7, 38, 99, 100, 150, 250, 333, 500, 999, 1000, 2500, 4999, 5000, 9999, 10_000)


def half_up(value: Fraction) -> int:
    """Exact round-half-up of a non-negative rational."""
    assert value >= 0
    return int(value + Fraction(1, 2))


# --- the split ----------------------------------------------------------------------------------


def test_split_sums_to_c_and_stays_within_one_fen_of_each_quota_for_every_c_to_10000() -> None:
    for c in range(10_001):
        shares = split_commission(c)
        parts = (shares.issuer_fen, shares.acquirer_fen, shares.network_fen)
        assert sum(parts) == c
        for part, weight in zip(parts, WEIGHTS, strict=True):
            quota = Fraction(c * weight, 10)
            assert abs(part - quota) < 1, (c, parts)
            assert part in (quota.__floor__(), quota.__ceil__())
        assert split_commission(-c) == -shares


@given(st.integers(min_value=0, max_value=10**15))
def test_split_of_large_commissions(c: int) -> None:
    shares = split_commission(c)
    assert shares.total_fen == c
    assert abs(shares.issuer_fen - Fraction(7 * c, 10)) < 1
    assert split_commission(-c) == -shares


def test_split_gives_the_odd_fen_by_largest_remainder_then_issuer_acquirer_network() -> None:
    for c in range(1_000):
        shares = split_commission(c)
        parts = (shares.issuer_fen, shares.acquirer_fen, shares.network_fen)
        remainders = [c * w % 10 for w in WEIGHTS]
        bumped = [k for k in range(3) if parts[k] * 10 > c * WEIGHTS[k]]
        # Whoever got a fen has a remainder at least as large as whoever did not, and beats
        # an equal remainder only by coming first.
        for k in bumped:
            for j in set(range(3)) - set(bumped):
                assert remainders[k] > remainders[j] or (remainders[k] == remainders[j] and k < j)


# --- commission ---------------------------------------------------------------------------------


def test_commission_equals_exact_half_up_for_every_amount_and_a_range_of_rates() -> None:
    for rate_bp in RATES_BP:
        for amount_fen in range(1, AMOUNT_MAX_FEN + 1):
            expected = half_up(Fraction(amount_fen * rate_bp, 10_000))
            assert rate_fen(amount_fen, rate_bp) == expected, (amount_fen, rate_bp)


@given(
    st.integers(min_value=1, max_value=AMOUNT_MAX_FEN),
    st.integers(min_value=0, max_value=10_000),
    st.one_of(st.none(), st.integers(min_value=0, max_value=500)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=5_000)),
)
def test_percent_commission_with_caps_matches_the_oracle(
    amount_fen: int, rate_bp: int, min_fen: int | None, max_fen: int | None
) -> None:
    if min_fen is not None and max_fen is not None and min_fen > max_fen:
        min_fen, max_fen = max_fen, min_fen
    rule = CommissionRule.percent(MID, 1, JAN, rate_bp=rate_bp, min_fen=min_fen, max_fen=max_fen)
    expected = half_up(Fraction(amount_fen * rate_bp, 10_000))
    if min_fen is not None:
        expected = max(expected, min_fen)
    if max_fen is not None:
        expected = min(expected, max_fen)
    assert commission_fen(rule, amount_fen) == min(expected, amount_fen)


# --- refunds ------------------------------------------------------------------------------------


@st.composite
def refund_sequences(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """An original (a, c) and partial refunds that sum to a."""
    a = draw(st.integers(min_value=1, max_value=AMOUNT_MAX_FEN))
    c = draw(st.integers(min_value=0, max_value=a))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=a - 1), max_size=12)) if a > 1 else []
    points = sorted({0, a, *cuts})
    return a, c, [hi - lo for lo, hi in itertools.pairwise(points)]


@settings(max_examples=500)
@given(refund_sequences())
def test_refunds_summing_to_the_original_return_exactly_c_never_more_on_the_way(
    sequence: tuple[int, int, list[int]],
) -> None:
    a, c, refunds = sequence
    refunded = returned = 0
    for r in refunds:
        back = returned_commission_fen(
            original_amount_fen=a,
            original_commission_fen=c,
            refund_fen=r,
            refunded_before_fen=refunded,
            returned_before_fen=returned,
        )
        assert back >= 0
        # Each partial refund returns its proportion half up, unless that would pass c.
        if refunded + r < a:
            assert back == min(half_up(Fraction(c * r, a)), c - returned)
        refunded += r
        returned += back
        assert returned <= c
    assert refunded == a
    assert returned == c


# --- partner share ------------------------------------------------------------------------------


@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(0, 10_000))
def test_partner_share_is_half_up_of_share_bp_of_twenty_percent(c: int, share_bp: int) -> None:
    exact = Fraction(c, 1) * Fraction(2, 10) * Fraction(share_bp, 10_000)
    expected = half_up(exact) if c >= 0 else -half_up(-exact)
    assert partner_share_fen(c, share_bp) == expected


# --- clearing and the host agree ----------------------------------------------------------------


@st.composite
def rule_pairs(draw: st.DrawFn) -> tuple[CommissionRule, HostRule]:
    kind = draw(st.sampled_from(["percent", "fixed", "discount", "zero"]))
    if kind == "percent":
        rate = draw(st.integers(0, 10_000))
        low = draw(st.one_of(st.none(), st.integers(0, 1_000)))
        high = draw(st.one_of(st.none(), st.integers(low or 0, 49_999)))
        return (
            CommissionRule.percent(MID, 1, JAN, rate_bp=rate, min_fen=low, max_fen=high),
            HostRule(
                MID,
                host_commission.RuleKind.PERCENT,
                JAN,
                rate_bp=rate,
                min_fen=low,
                max_fen=high,
            ),
        )
    if kind == "fixed":
        fee = draw(st.integers(0, 49_999))
        return (
            CommissionRule.fixed(MID, 1, JAN, fee_fen=fee),
            HostRule(MID, host_commission.RuleKind.FIXED, JAN, fee_fen=fee),
        )
    if kind == "discount":
        # user_bp / settle_bp pairs whose equivalent rate is whole: settle = user x (1 - k/d)
        user, settle = draw(
            st.sampled_from([(8000, 6000), (10_000, 9_000), (5000, 5000), (4000, 1000), (2000, 0)])
        )
        return (
            CommissionRule.discount(MID, 1, JAN, user_bp=user, settle_bp=settle),
            HostRule.discount(MID, JAN, user_bp=user, settle_bp=settle),
        )
    return (
        CommissionRule.zero(MID, 1, JAN),
        HostRule(MID, host_commission.RuleKind.ZERO, JAN),
    )


@settings(max_examples=500)
@given(rule_pairs(), st.integers(min_value=1, max_value=AMOUNT_MAX_FEN))
def test_clearing_commission_equals_the_hosts(
    rules: tuple[CommissionRule, HostRule], amount_fen: int
) -> None:
    ours, theirs = rules
    assert commission_fen(ours, amount_fen) == host_commission.commission_fen(theirs, amount_fen)


@settings(max_examples=500)
@given(
    st.integers(min_value=1, max_value=AMOUNT_MAX_FEN).flatmap(
        lambda a: st.tuples(st.just(a), st.integers(0, a), st.integers(1, a), st.integers(0, 10**6))
    )
)
def test_clearing_refund_return_equals_the_hosts(sample: tuple[int, int, int, int]) -> None:
    a, c, r, seed = sample
    before = seed % (a - r + 1)
    returned_before = (seed // 7) % (c + 1)
    kwargs = {
        "original_amount_fen": a,
        "original_commission_fen": c,
        "refund_fen": r,
        "refunded_before_fen": before,
        "returned_before_fen": returned_before,
    }
    assert returned_commission_fen(**kwargs) == host_commission.refund_commission_fen(**kwargs)


# --- reconciliation -----------------------------------------------------------------------------


@st.composite
def days(draw: st.DrawFn) -> tuple[list[HostTxn], list[UploadRecord]]:
    """A day of one terminal's host captures and a partial, sometimes wrong, batch upload."""
    n = draw(st.integers(0, 12))
    txns: list[HostTxn] = []
    for stan in range(1, n + 1):
        state = draw(st.sampled_from(list(HostState)))
        amount = draw(st.integers(1, 50_001))
        completed = state is HostState.COMPLETED
        completion = draw(st.sampled_from([amount, amount - 1 or 1])) if completed else None
        txns.append(
            HostTxn(
                key=TxnKey("10000001", draw(st.integers(1, 2)), stan),
                kind=TxnKind.PURCHASE,
                rrn=f"{stan:012d}",
                asn=draw(st.sampled_from(["1000000000000001", "1000000000000002"])),
                auth_amount_fen=amount,
                state=state,
                txn_counter=draw(st.integers(1, 8)),
                counter_kind=CounterKind.OFFLINE,
                completion_amount_fen=completion,
                tac_verdict=draw(st.sampled_from(list(TacVerdict))) if completed else None,
            )
        )
    uploads = [
        UploadRecord(t.key, t.kind, t.rrn, t.asn, draw(st.sampled_from([t.amount_fen, 1])), 0)
        for t in txns
        if draw(st.booleans())
    ]
    return txns, uploads


@settings(max_examples=300)
@given(days())
def test_every_capture_is_settled_held_rejected_or_reversed_and_exceptions_are_sorted(
    day: tuple[list[HostTxn], list[UploadRecord]],
) -> None:
    txns, uploads = day
    result = reconcile(txns, uploads)
    assert [v.txn for v in result.verdicts] == sorted(txns, key=lambda t: t.key)
    for verdict in result.verdicts:
        rejected = Effect.REJECTED in verdict.effects
        outcomes = [verdict.settles, verdict.held, rejected]
        if verdict.txn.state is HostState.REVERSED and not rejected:
            assert verdict.codes == ()
            assert outcomes == [False, False, False]
        else:
            assert outcomes.count(True) == 1, verdict
        if verdict.settles:
            assert verdict.txn.state is HostState.COMPLETED
            assert verdict.txn.tac_verdict is TacVerdict.OK
            assert verdict.txn.completion_amount_fen == verdict.txn.auth_amount_fen
            assert verdict.txn.auth_amount_fen <= AMOUNT_MAX_FEN
    rows = list(result.exceptions)
    assert rows == sorted(rows, key=ExceptionRow.sort_key)
    assert all(r.code is not ExceptionCode.MATCHED for r in rows)
