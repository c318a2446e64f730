"""Live counters of the ISO 8583 endpoint, for operators (``GET /v1/counters``).

The TCP server calls ``record`` once per answered message and wraps each message it works on in
``in_flight()``; the admin API reads ``snapshot()``. Thread-safe (one lock, held for a few
dictionary operations) and bounded: at most ``MESSAGE_KEYS_MAX`` distinct (MTI, response code)
pairs are kept (further pairs are counted under ``OTHER``), and latency goes into a fixed set of
histogram buckets, so memory does not grow with traffic. Percentiles are read off the buckets:
each is the upper bound of the bucket holding it (at most ``1 / BUCKETS_PER_DECADE`` of a
decade above the true value), and never more than the largest latency seen.

No clock and no I/O here: the caller measures the latency.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, TypedDict

#: Distinct (MTI, response code) pairs kept; the rest are counted under (OTHER, OTHER).
MESSAGE_KEYS_MAX: Final = 256
OTHER: Final = "other"
#: Histogram: ``BUCKETS_PER_DECADE`` log-spaced buckets per decade from LATENCY_MS_MIN up to
#: LATENCY_MS_MAX; faster answers land in the first bucket, slower ones in the last.
LATENCY_MS_MIN: Final = 0.01
LATENCY_MS_MAX: Final = 100_000.0
BUCKETS_PER_DECADE: Final = 20
_DECADES: Final = round(math.log10(LATENCY_MS_MAX / LATENCY_MS_MIN))
BUCKET_COUNT: Final = _DECADES * BUCKETS_PER_DECADE + 1
#: Upper bound of each bucket, in ms (the last one holds everything above LATENCY_MS_MAX too).
BUCKET_BOUNDS_MS: Final = tuple(
    LATENCY_MS_MIN * 10 ** (i / BUCKETS_PER_DECADE) for i in range(BUCKET_COUNT)
)
APPROVED: Final = "00"
#: Authorisation requests (purchases, loads, refunds) and their responses: the messages whose
#: response code is an approval or a decline.
AUTHORISATION_MTIS: Final = frozenset({"0200", "0210"})
PERCENTILES: Final = (50, 90, 99)

_MTI = re.compile(r"[0-9]{4}")
_RESPONSE_CODE = re.compile(r"[0-9A-Z]{2}")


class MessageCount(TypedDict):
    mti: str
    response_code: str
    count: int


class LatencySummary(TypedDict):
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class CountersSnapshot(TypedDict):
    messages_total: int
    messages: list[MessageCount]
    approvals: int
    declines: int
    in_flight: int
    latency: LatencySummary | None


def bucket_index(latency_ms: float) -> int:
    """The histogram bucket of one latency: the first whose upper bound is at least it."""
    if not latency_ms > LATENCY_MS_MIN:  # also NaN
        return 0
    if latency_ms >= LATENCY_MS_MAX:
        return BUCKET_COUNT - 1
    index = math.ceil(math.log10(latency_ms / LATENCY_MS_MIN) * BUCKETS_PER_DECADE - 1e-9)
    index = min(max(index, 0), BUCKET_COUNT - 1)
    # Float rounding near a bound: step to the exact bucket.
    while index > 0 and BUCKET_BOUNDS_MS[index - 1] >= latency_ms:
        index -= 1
    while BUCKET_BOUNDS_MS[index] < latency_ms and index < BUCKET_COUNT - 1:
        index += 1
    return index


class LiveCounters:
    """Message counts by (MTI, response code), approvals and declines of authorisations,
    messages in flight, and a latency histogram."""

    __slots__ = (
        "_approvals",
        "_buckets",
        "_declines",
        "_in_flight",
        "_latency_count",
        "_latency_max_ms",
        "_latency_sum_ms",
        "_lock",
        "_messages",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[tuple[str, str], int] = {}
        self._approvals = 0
        self._declines = 0
        self._in_flight = 0
        self._buckets = [0] * BUCKET_COUNT
        self._latency_count = 0
        self._latency_sum_ms = 0.0
        self._latency_max_ms = 0.0

    def record(self, mti: str, response_code: str, latency_ms: float) -> None:
        """One answered message: its MTI (the request's or the response's: the caller picks
        one and keeps to it), the response code it got, and how long the host took."""
        mti = mti if isinstance(mti, str) and _MTI.fullmatch(mti) else OTHER
        code = (
            response_code
            if isinstance(response_code, str) and _RESPONSE_CODE.fullmatch(response_code)
            else OTHER
        )
        valid_latency = math.isfinite(latency_ms) and latency_ms >= 0
        bucket = bucket_index(latency_ms) if valid_latency else -1
        with self._lock:
            key = (mti, code)
            if key not in self._messages and len(self._messages) >= MESSAGE_KEYS_MAX - 1:
                key = (OTHER, OTHER)
            self._messages[key] = self._messages.get(key, 0) + 1
            if mti in AUTHORISATION_MTIS and code != OTHER:
                if code == APPROVED:
                    self._approvals += 1
                else:
                    self._declines += 1
            if bucket >= 0:
                self._buckets[bucket] += 1
                self._latency_count += 1
                self._latency_sum_ms += latency_ms
                self._latency_max_ms = max(self._latency_max_ms, latency_ms)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Counts the enclosed work as one message in flight."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                assert self._in_flight >= 0

    def snapshot(self) -> CountersSnapshot:
        """A consistent copy of every counter (taken under the lock)."""
        with self._lock:
            messages = sorted(self._messages.items())
            buckets = list(self._buckets)
            count, sum_ms, max_ms = (
                self._latency_count,
                self._latency_sum_ms,
                self._latency_max_ms,
            )
            approvals, declines, in_flight = self._approvals, self._declines, self._in_flight
        latency: LatencySummary | None = None
        if count:
            p50, p90, p99 = (_percentile_ms(buckets, count, p, max_ms) for p in PERCENTILES)
            latency = {
                "count": count,
                "mean_ms": round(sum_ms / count, 3),
                "p50_ms": p50,
                "p90_ms": p90,
                "p99_ms": p99,
                "max_ms": round(max_ms, 3),
            }
        return {
            "messages_total": sum(n for _, n in messages),
            "messages": [
                {"mti": mti, "response_code": code, "count": n} for (mti, code), n in messages
            ],
            "approvals": approvals,
            "declines": declines,
            "in_flight": in_flight,
            "latency": latency,
        }


def _percentile_ms(buckets: list[int], count: int, percentile: int, max_ms: float) -> float:
    """The upper bound of the bucket holding the ``percentile``-th latency (nearest rank),
    capped at the largest latency seen."""
    rank = max(1, math.ceil(count * percentile / 100))
    seen = 0
    for index, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return round(min(BUCKET_BOUNDS_MS[index], max_ms), 3)
    raise AssertionError("the buckets hold fewer latencies than counted")
