"""Live counters of the ISO 8583 endpoint (acquiring.counters): counts, approvals and
declines, in-flight, latency percentiles from bounded buckets, thread safety."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acquiring.counters import (
    BUCKET_BOUNDS_MS,
    BUCKET_COUNT,
    BUCKETS_PER_DECADE,
    LATENCY_MS_MAX,
    MESSAGE_KEYS_MAX,
    OTHER,
    LiveCounters,
    bucket_index,
)


def test_a_fresh_set_is_all_zero() -> None:
    assert LiveCounters().snapshot() == {
        "messages_total": 0,
        "messages": [],
        "approvals": 0,
        "declines": 0,
        "in_flight": 0,
        "latency": None,
    }


def test_messages_are_counted_by_mti_and_response_code() -> None:
    counters = LiveCounters()
    for mti, code in [("0200", "00"), ("0200", "00"), ("0200", "51"), ("0800", "00")]:
        counters.record(mti, code, 1.0)
    counters.record("0220", "00", 1.0)
    snap = counters.snapshot()
    assert snap["messages"] == [
        {"mti": "0200", "response_code": "00", "count": 2},
        {"mti": "0200", "response_code": "51", "count": 1},
        {"mti": "0220", "response_code": "00", "count": 1},
        {"mti": "0800", "response_code": "00", "count": 1},
    ]
    assert snap["messages_total"] == 5
    # Approvals and declines are of authorisations only (0200 / 0210).
    assert (snap["approvals"], snap["declines"]) == (2, 1)
    counters.record("0210", "A0", 1.0)
    assert counters.snapshot()["declines"] == 2


def test_odd_values_are_counted_under_other() -> None:
    counters = LiveCounters()
    counters.record("02000", "00", 1.0)
    counters.record("0200", "0", 1.0)
    counters.record("0200", "00", math.nan)
    snap = counters.snapshot()
    assert snap["messages"] == [
        {"mti": "0200", "response_code": "00", "count": 1},
        {"mti": "0200", "response_code": OTHER, "count": 1},
        {"mti": OTHER, "response_code": "00", "count": 1},
    ]
    assert snap["approvals"] == 1 and snap["declines"] == 0
    latency = snap["latency"]
    assert latency is not None and latency["count"] == 2  # NaN is no latency


def test_memory_is_bounded_in_message_keys() -> None:
    counters = LiveCounters()
    for n in range(10_000):
        counters.record(f"{n:04d}", "00", 1.0)
    snap = counters.snapshot()
    assert len(snap["messages"]) == MESSAGE_KEYS_MAX
    assert snap["messages_total"] == 10_000
    assert {"mti": OTHER, "response_code": OTHER, "count": 10_000 - MESSAGE_KEYS_MAX + 1} in snap[
        "messages"
    ]


def test_in_flight_counts_the_enclosed_work() -> None:
    counters = LiveCounters()
    with counters.in_flight():
        with counters.in_flight():
            assert counters.snapshot()["in_flight"] == 2
        assert counters.snapshot()["in_flight"] == 1
    with pytest.raises(RuntimeError), counters.in_flight():
        raise RuntimeError("handler failed")
    assert counters.snapshot()["in_flight"] == 0


def test_latency_percentiles_are_bucket_bounds_never_above_the_maximum() -> None:
    counters = LiveCounters()
    for ms in range(1, 101):  # 1 .. 100 ms
        counters.record("0200", "00", float(ms))
    latency = counters.snapshot()["latency"]
    assert latency is not None
    assert latency["count"] == 100 and latency["mean_ms"] == 50.5 and latency["max_ms"] == 100
    step = 10 ** (1 / BUCKETS_PER_DECADE)  # one bucket: 12.2 %
    for key, true_ms in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99)):
        assert true_ms <= latency[key] <= min(true_ms * step, 100), key  # type: ignore[literal-required]


def test_one_latency_is_every_percentile() -> None:
    counters = LiveCounters()
    counters.record("0200", "00", 7.25)
    latency = counters.snapshot()["latency"]
    assert latency is not None
    assert latency["p50_ms"] == latency["p99_ms"] == latency["max_ms"] == 7.25


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_a_latency_lands_in_the_first_bucket_that_holds_it(latency_ms: float) -> None:
    index = bucket_index(latency_ms)
    assert 0 <= index < BUCKET_COUNT
    if latency_ms < LATENCY_MS_MAX:
        assert BUCKET_BOUNDS_MS[index] >= latency_ms
    if index > 0:
        assert BUCKET_BOUNDS_MS[index - 1] < latency_ms


def test_concurrent_recording_loses_nothing() -> None:
    counters = LiveCounters()
    threads_n, per_thread = 8, 2_000

    def work() -> None:
        for n in range(per_thread):
            with counters.in_flight():
                counters.record("0200", "00" if n % 2 else "05", float(n % 50))

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = counters.snapshot()
    assert snap["messages_total"] == threads_n * per_thread
    assert snap["approvals"] == snap["declines"] == threads_n * per_thread // 2
    assert snap["in_flight"] == 0
    latency = snap["latency"]
    assert latency is not None and latency["count"] == threads_n * per_thread
