"""Small helpers to summarise timings (benchmarks print figures; tests never assert on time)."""

from __future__ import annotations

import statistics


def summary_us(samples_s: list[float]) -> str:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"median {statistics.median(ordered) * 1e6:8.1f} us   p99 {p99 * 1e6:8.1f} us   "
        f"(n={len(ordered)})"
    )
