"""The acquiring host under load (issue 3 speed target): N concurrent terminal connections on
loopback, each running whole purchases (0200 authorisation + 0220 completion, both MACed, both
durably stored before the response) against `nfcpay host serve` in its own process, on SQLite
and on PostgreSQL. Also a bare loop that only decodes, MAC-checks, encodes and MACs the same
messages, and the host's throughput as a fraction of it.

The terminals run real simulated SIMs and PSAMs in this process (about 0.2 ms of CPU a
purchase), so on a 2-core machine the clients compete with the host for the CPU."""

from __future__ import annotations

import contextlib
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
        self.raw_messages: list[bytes] = []

    def run(self, stop: threading.Event) -> None:
        with self.link:
            assert self.link.sign_on().approved
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


def _host_run(kind: str, report: Callable[[str], None]) -> float | None:
    keys = issuer_keys.generate(random.Random(9).randbytes)
    with tempfile.TemporaryDirectory(prefix="nfcpay-bench-host-") as tmp:
        try:
            db_ctx = _database(kind, Path(tmp))
            db_url = db_ctx.__enter__()
        except Exception as exc:  # PostgreSQL not reachable
            report(f"host {kind}: skipped ({type(exc).__name__})")
            return None
        try:
            env = {**os.environ, "NFCPAY_KEY": os.urandom(32).hex()}
            os.environ["NFCPAY_KEY"] = env["NFCPAY_KEY"]
            tmks = _prepare(db_url, keys, TERMINALS)
            server = subprocess.Popen(
                [sys.executable, "-c", "from nfcpay.cli import entry; entry()", "host", "serve",
                 "--db", db_url, "--iso-port", "0"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            )  # fmt: skip
            try:
                assert server.stdout is not None
                ready, _, _ = select.select([server.stdout], [], [], 60)
                assert ready, "host did not start"
                port = int(server.stdout.readline().decode().rsplit(":", 1)[1])
                terminals = [_Terminal(n, keys, port, tmks[n - 1]) for n in range(1, TERMINALS + 1)]
                stop = threading.Event()
                threads = [threading.Thread(target=t.run, args=(stop,)) for t in terminals]
                cpu0, t0 = _cpu_s(server.pid), time.perf_counter()
                for th in threads:
                    th.start()
                time.sleep(DURATION_S)
                stop.set()
                for th in threads:
                    th.join(60)
                elapsed = time.perf_counter() - t0
                cpu = _cpu_s(server.pid) - cpu0
            finally:
                server.terminate()
                server.wait(30)
        finally:
            db_ctx.__exit__(None, None, None)
    purchases = sum(t.purchases for t in terminals)
    latencies = sorted(x for t in terminals for x in t.latencies_s)
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    rate = purchases / elapsed
    report(
        f"host {kind}: {TERMINALS} terminals, {purchases} purchases in {elapsed:.1f} s = "
        f"{rate:.0f} purchases/s ({2 * rate:.0f} msg/s); per message median "
        f"{statistics.median(latencies) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms; host CPU "
        f"{cpu / elapsed * 100:.0f}% of one core ({cpu / max(purchases, 1) * 1e3:.2f} ms/purchase)"
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


def run(report: Callable[[str], None]) -> None:
    bare = _bare_loop(report)
    for kind in ("sqlite", "postgres"):
        msgs = _host_run(kind, report)
        if msgs is not None:
            report(f"host {kind}: {msgs / bare:.2f} of the bare loop (target >= 0.5)")
