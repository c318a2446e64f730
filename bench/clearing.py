"""The daily clearing at scale (issue 5 target: a 10-million-transaction day cleared in under
60 s with a peak memory under 1 GiB, on SQLite and PostgreSQL; 1M and 3M show the growth).

Per database and size: a fresh store (a SQLite file in a temp folder; a new PostgreSQL
schema), one synthetic business day from ``bench.clearing_data.generate`` (10,000 merchants,
3 issuers, ~1% refunds, a mix of rules), then ONE daily clearing run of that date in a child
process (``nfcpay clearing run``'s service, files written to a temp folder). Reported: the
wall time of the run, transactions per second, the child's peak RSS (VmHWM; the PostgreSQL
server's own memory is not in it), the run's per-stage times, and the machine's load average
(the bench shares two cores with whatever else runs). Everything is removed afterwards.

Knobs: NFCPAY_BENCH_CLEARING_SIZES ("1000000,3000000,10000000"; "100000" for a quick run),
NFCPAY_BENCH_CLEARING_DBS ("sqlite,postgres").

    python -m bench.clearing                     # generate + clear, every size and database
    python -m bench.clearing clear DB_URL [DATE]   # clear an already generated day, once
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, Final

SIZES: Final = tuple(
    int(n)
    for n in os.environ.get("NFCPAY_BENCH_CLEARING_SIZES", "1000000,3000000,10000000").split(",")
)
DATABASES: Final = tuple(os.environ.get("NFCPAY_BENCH_CLEARING_DBS", "sqlite,postgres").split(","))
PG_URL: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SEED: Final = 1
CHILD_TIMEOUT_S: Final = 3_600


@contextlib.contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'day.db'}"
        return
    import psycopg

    schema = f"nfcpay_bench_clr_{uuid.uuid4().hex[:8]}"
    conninfo = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clear_once(db_url: str, day: date, out_dir: Path) -> dict[str, Any]:
    """One daily run of ``day`` in this process; what the parent prints (JSON-able)."""
    from clearing.bootstrap import open_service
    from clearing.ports import RunKind, RunOptions

    stages: dict[str, float] = {}
    started = last = time.perf_counter()

    def hook(stage: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stages[stage] = round(now - last, 2)
        last = now

    service, store = open_service(db_url, out_dir)
    try:
        opened = time.perf_counter()
        result = service.run(RunOptions(day, RunKind.DAILY), hook)
    finally:
        store.close()
    c = result.record.counts
    return {
        "wall_s": time.perf_counter() - opened,
        "open_s": opened - started,
        "stages": stages,
        "txn_count": c.txn_count,
        "settled": c.settled_count,
        "held": c.held_count,
        "carried": c.carried_count,
        "exceptions": c.exception_count,
        "peak_rss_mib": _peak_rss_mib(),
        "no_op": result.no_op,
    }


def _clear_in_child(db_url: str, day: date, out_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.clearing", "clear", db_url, day.isoformat(), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clearing failed: {done.stderr.strip().splitlines()[-1:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _describe(kind: str, n: int, f: dict[str, Any]) -> list[str]:
    load = os.getloadavg()[0]
    stages = " ".join(f"{k} {v:.1f}" for k, v in f["stages"].items() if v >= 0.05)
    return [
        f"clearing {kind} {n:>10,}: {f['wall_s']:6.1f} s wall, "
        f"{f['txn_count'] / f['wall_s']:9,.0f} txn/s, peak RSS {f['peak_rss_mib']:5.0f} MiB "
        f"(settled {f['settled']:,}, held {f['held']:,}, carried {f['carried']:,}, "
        f"exception rows {f['exceptions']:,}; load {load:.1f})",
        f"    stages (s): {stages}",
    ]


def run(report: Callable[[str], None]) -> None:
    from bench import clearing_data

    report("== clearing: one daily run of a synthetic day (issue 5: 10M in < 60 s, < 1 GiB) ==")
    for kind in DATABASES:
        for n in SIZES:
            with tempfile.TemporaryDirectory(prefix="nfcpay-bench-clearing-") as tmp:
                folder = Path(tmp)
                try:
                    db_ctx = _database(kind, folder)
                    db_url = db_ctx.__enter__()
                except Exception as exc:  # PostgreSQL not reachable
                    report(f"clearing {kind}: skipped ({type(exc).__name__})")
                    break
                try:
                    generated = clearing_data.generate(
                        db_url, n, SEED, check_constraints=kind != "sqlite"
                    )
                    report(f"  generated {n:,} transactions in {generated.elapsed_s:.1f} s")
                    out = folder / "out"
                    out.mkdir()
                    figures = _clear_in_child(db_url, generated.business_date, out)
                    if figures["txn_count"] < n:
                        raise RuntimeError(f"cleared {figures['txn_count']} of {n}")
                    for line in _describe(kind, n, figures):
                        report(line)
                finally:
                    db_ctx.__exit__(None, None, None)


def main(argv: list[str]) -> int:
    if argv[:1] == ["clear"] and 2 <= len(argv) <= 4:
        from bench.clearing_data import BUSINESS_DATE

        day = date.fromisoformat(argv[2]) if len(argv) > 2 else BUSINESS_DATE
        if len(argv) > 3:
            figures = clear_once(argv[1], day, Path(argv[3]))
        else:
            with tempfile.TemporaryDirectory(prefix="nfcpay-bench-clearing-") as tmp:
                figures = clear_once(argv[1], day, Path(tmp))
        if len(argv) <= 3:
            for line in _describe(argv[1].split(":", 1)[0], figures["txn_count"], figures):
                print(line, file=sys.stderr)
        print(json.dumps(figures))
        return 0
    if argv:
        print(
            "usage: python -m bench.clearing [clear DB_URL [YYYY-MM-DD [OUT_DIR]]]", file=sys.stderr
        )
        return 2
    run(lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
