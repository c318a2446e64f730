"""The acquiring host under load (issue 3 speed target): N concurrent terminal connections on
loopback, each running whole purchases (0200 authorisation + 0220 completion, both MACed, both
durably stored before the response) against `nfcpay host serve` in its own process(es), on
SQLite and on PostgreSQL, with group commit (ADR 0004) and with one or more host processes
sharing the port (`--processes`). Also a bare loop that only decodes, MAC-checks, encodes and
MACs the same messages, and the host's throughput as a fraction of it.

Reported per run: complete purchases/s, per-message latency p50 / p99 as the terminals see
it, the host's CPU (all its processes) as % of one core and ms per purchase, the average
commit group, and the machine's load average (the bench shares the CPU with its clients, and
on a development machine with whatever else runs).

The terminals (real simulated SIMs and PSAMs, ~1 ms of CPU a purchase with their MACs) run in
NFCPAY_BENCH_CLIENTS client processes, so on a 2-core machine they compete with the host.
Knobs: NFCPAY_BENCH_TERMINALS (200), NFCPAY_BENCH_SECONDS (15), NFCPAY_BENCH_CLIENTS (2),
NFCPAY_BENCH_HOST_RUNS ("sqlite:1,postgres:1,postgres:2": database:processes)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from acquiring.bootstrap import open_store
from acquiring.domain.model import CardAccount, Issuer, Merchant, Terminal
from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain import issuance
from paycore import issuer_keys
from paycore.iso8583.mac import encode_signed_message, verify_message_mac
from paycore.iso8583.message import decode_message
from pos_terminal.adapters.host_link import HostLink
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows

TERMINALS = int(os.environ.get("NFCPAY_BENCH_TERMINALS", "200"))
DURATION_S = float(os.environ.get("NFCPAY_BENCH_SECONDS", "15"))
CLIENTS = int(os.environ.get("NFCPAY_BENCH_CLIENTS", "2"))
RUNS = os.environ.get("NFCPAY_BENCH_HOST_RUNS", "sqlite:1,postgres:1,postgres:2")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MID = "898310048990001"
TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 12, 0, 0)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'capture.db'}"
        return
    import psycopg

    schema = f"nfcpay_bench_{uuid.uuid4().hex[:8]}"
    conninfo = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class _Terminal:
    def __init__(self, n: int, keys: issuer_keys.IssuerKeys, port: int, tmk: bytes) -> None:
        asn = f"88880000{n:08d}"
        sim_image = issuance.new_sim_image(
            keys, issuance.parse_asn(asn), today=TODAY, balance_fen=100_000
        )
        self.sim = SimReader(card_bootstrap.memory_card(sim_image))
        self.sim.present()
        psam_reader = SimReader(
            card_bootstrap.memory_card(
                issuance.new_psam_image(keys, bytes.fromhex(f"{0x001122330000 + n:012X}"))
            )
        )
        psam_reader.present()
        self.psam = card_flows.open_psam(psam_reader)
        self.link = HostLink(("127.0.0.1", port), f"T{n:07d}", MID, tmk, timeout_s=30)
        self.latencies_s: list[float] = []
        self.purchases = 0

    def run(self, signed_on: threading.Barrier, go: threading.Event, stop: threading.Event) -> None:
        with self.link:
            assert self.link.sign_on().approved
            signed_on.wait()
            go.wait()
            while not stop.is_set():
                started = card_flows.begin_purchase(self.sim, self.psam, 1)
                t0 = time.perf_counter()
                auth = self.link.authorise_purchase(started)
                self.latencies_s.append(time.perf_counter() - t0)
                assert auth.approved, auth.code
                done = card_flows.finish_purchase(self.sim, self.psam, started, NOW)
                assert isinstance(done, card_flows.PurchaseDone)
                t1 = time.perf_counter()
                completed = self.link.complete_purchase(auth, done)
                self.latencies_s.append(time.perf_counter() - t1)
                assert completed.approved, completed.code
                self.purchases += 1


def _client(
    numbers: list[int],
    keys: issuer_keys.IssuerKeys,
    port: int,
    tmks: list[bytes],
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
) -> None:
    """One client process: its terminals sign on, then run purchases from ``go`` to ``stop``."""
    terminals = [_Terminal(n, keys, port, tmks[n - 1]) for n in numbers]
    signed_on = threading.Barrier(len(terminals) + 1)
    local_go, local_stop = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=t.run, args=(signed_on, local_go, local_stop)) for t in terminals
    ]
    for thread in threads:
        thread.start()
    signed_on.wait(120)
    ready.put(len(terminals))
    go.wait()
    local_go.set()
    stop.wait()
    local_stop.set()
    for thread in threads:
        thread.join(60)
    results.put(
        (sum(t.purchases for t in terminals), [x for t in terminals for x in t.latencies_s])
    )


def _prepare(db_url: str, keys: issuer_keys.IssuerKeys, count: int) -> list[bytes]:
    rnd = random.Random(5)
    tmks = [rnd.randbytes(16) for _ in range(count)]
    store = open_store(db_url)
    try:
        with store.admin() as uow:
            uow.add_issuer(Issuer("ISS1", "Issuer One"), keys)
            uow.add_merchant(
                Merchant(MID, "Bench Mart", "5411", "ACQ1", TODAY, daily_limit_fen=None)
            )
            for n in range(1, count + 1):
                uow.add_terminal(Terminal(f"T{n:07d}", MID, TODAY), tmks[n - 1])
                uow.add_card(
                    CardAccount(
                        f"88880000{n:08d}",
                        "ISS1",
                        daily_amount_limit_fen=200_000,
                        daily_count_limit=1_000_000,
                    )
                )
    finally:
        store.close()
    return tmks


def _tree_cpu_s(pid: int) -> float:
    """CPU of ``pid`` and of its live children (the worker processes of --processes N)."""
    total = _cpu_s(pid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == pid:
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _groups(log_text: str) -> str:
    """The average commit group, from the host's shutdown lines (one per process)."""
    requests = groups = 0
    for line in log_text.splitlines():
        if "group commit:" in line:
            words = line.split("group commit:", 1)[1].split()
            requests, groups = requests + int(words[0]), groups + int(words[3])
    return f"{requests / groups:.1f}" if groups else "?"


def _host_run(kind: str, processes: int, report: Callable[[str], None]) -> float | None:
    keys = issuer_keys.generate(random.Random(9).randbytes)
    context = multiprocessing.get_context("fork")  # the clients: this process's copies
    with tempfile.TemporaryDirectory(prefix="nfcpay-bench-host-") as tmp:
        try:
            db_ctx = _database(kind, Path(tmp))
            db_url = db_ctx.__enter__()
        except Exception as exc:  # PostgreSQL not reachable
            report(f"host {kind}: skipped ({type(exc).__name__})")
            return None
        log_path = Path(tmp) / "host.log"
        try:
            env = {**os.environ, "NFCPAY_KEY": os.urandom(32).hex()}
            os.environ["NFCPAY_KEY"] = env["NFCPAY_KEY"]
            tmks = _prepare(db_url, keys, TERMINALS)
            with log_path.open("wb") as log:
                server = subprocess.Popen(
                    [sys.executable, "-c", "from nfcpay.cli import entry; entry()", "host",
                     "serve", "--db", db_url, "--iso-port", "0", "--processes", str(processes)],
                    stdout=subprocess.PIPE, stderr=log, env=env,
                )  # fmt: skip
            try:
                assert server.stdout is not None
                ready_fd, _, _ = select.select([server.stdout], [], [], 120)
                assert ready_fd, "host did not start"
                port = int(server.stdout.readline().decode().rsplit(":", 1)[1])
                ready, results = context.Queue(), context.Queue()
                go, stop = context.Event(), context.Event()
                numbers = list(range(1, TERMINALS + 1))
                shares = [numbers[i::CLIENTS] for i in range(CLIENTS)]
                clients = [
                    context.Process(
                        target=_client, args=(share, keys, port, tmks, ready, go, stop, results)
                    )
                    for share in shares
                    if share
                ]
                for client in clients:
                    client.start()
                for _ in clients:
                    ready.get(timeout=300)
                load_before = os.getloadavg()[0]
                cpu0, t0 = _tree_cpu_s(server.pid), time.perf_counter()
                go.set()
                time.sleep(DURATION_S)
                stop.set()
                elapsed = time.perf_counter() - t0
                cpu = _tree_cpu_s(server.pid) - cpu0
                load_after = os.getloadavg()[0]
                outcomes = [results.get(timeout=120) for _ in clients]
                for client in clients:
                    client.join(60)
            finally:
                server.terminate()
                server.wait(60)
            groups = _groups(log_path.read_text(errors="replace"))
        finally:
            db_ctx.__exit__(None, None, None)
    purchases = int(sum(count for count, _ in outcomes))
    latencies = sorted(x for _, samples in outcomes for x in samples)
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    p50 = statistics.median(latencies) if latencies else float("nan")
    rate = float(purchases / elapsed)
    report(
        f"host {kind}, {processes} process(es): {TERMINALS} terminals in {len(clients)} client "
        f"processes, {purchases} purchases in {elapsed:.1f} s = {rate:.0f} purchases/s "
        f"({2 * rate:.0f} msg/s); per message p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms; "
        f"host CPU {cpu / elapsed * 100:.0f}% of one core ({cpu / max(purchases, 1) * 1e3:.2f} "
        f"ms/purchase); commit group {groups} requests on average; load average "
        f"{load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs"
    )
    return 2 * rate


def _bare_loop(report: Callable[[str], None]) -> float:
    """Decode, MAC-check, encode and MAC an 0200/0210-sized exchange, nothing else."""
    mak = bytes(range(16))
    fields: dict[int, str | bytes] = {
        2: "8888000000000001", 3: "000000", 4: "000000000001", 11: "000001", 22: "962",
        25: "91", 41: "T0000001", 42: MID, 49: "156", 58: bytes(60), 60: "22000001000",
    }  # fmt: skip
    request = encode_signed_message(mak, "0200", fields)
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        message = decode_message(request)
        assert verify_message_mac(mak, request)
        out: dict[int, str | bytes] = dict(message.fields)
        out[39] = "00"
        out.pop(64, None)
        encode_signed_message(mak, "0210", out)
    rate = n / (time.perf_counter() - t0)
    report(f"bare loop (decode, MAC check, encode, MAC): {rate:.0f} msg/s on one core")
    return rate


def _runs() -> list[tuple[str, int]]:
    runs = []
    for item in RUNS.split(","):
        kind, _, processes = item.strip().partition(":")
        runs.append((kind, int(processes or "1")))
    return runs


def run(report: Callable[[str], None]) -> None:
    bare = _bare_loop(report)
    for kind, processes in _runs():
        msgs = _host_run(kind, processes, report)
        if msgs is not None:
            report(
                f"host {kind}, {processes} process(es): {msgs / bare:.2f} of the bare loop "
                "(target >= 0.5)"
            )
