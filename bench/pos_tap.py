"""Tap to approval (issue 4 speed target): one sale at the POS terminal from the tap (the
reader activates the card) to the receipt's text - card reads, INITIALIZE, the 0200 and its
0210, PSAM MAC1, DEBIT, PSAM MAC2 check, the 0220 and its 0230, every step written to the
terminal's SQLite journal (synchronous=FULL) - with `nfcpay host serve` on loopback in its own
process over SQLite, through three readers:

- in-process (the simulated SIM and PSAM in this process);                 target median < 20 ms
- a real pcscd + vpcd (a private pcscd, SIM on slot 0, PSAM on slot 1);    target median < 30 ms
- the PN532 simulator on a pty through pyserial (PSAM in-process);         target median < 60 ms

Prints median and p99 (and the journal's share); asserts nothing. pcscd and pyserial parts are
skipped when their parts are missing."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

from acquiring.bootstrap import open_store
from acquiring.domain.model import CardAccount, Issuer, Merchant, Terminal
from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain import issuance
from card_applet_sim.domain.runtime import Card
from paycore import issuer_keys
from paycore.issuer_keys import IssuerKeys
from pos_terminal.adapters.journal import Journal
from pos_terminal.adapters.readers import CardReader
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain.receipt import ReceiptHeader, txn_receipt
from pos_terminal.service import Terminal as PosTerminal
from pos_terminal.service import TerminalConfig

TAPS = int(os.environ.get("NFCPAY_BENCH_TAPS", "300"))
WARMUP_TAPS = 10
MID = "898310048990001"
TODAY = date(2026, 11, 22)
CARD_WAIT_S = 5.0
HEADER = ReceiptHeader("Bench Mart", MID, "")
READERS = ("in-process", "pcscd", "pn532")
TARGET_MS = {"in-process": 20, "pcscd": 30, "pn532": 60, "in-process on tmpfs": 20}
TMPFS = Path("/dev/shm")


def _asn(n: int) -> str:
    return f"88880000{n:08d}"


def _tid(n: int) -> str:
    return f"T{n:07d}"


def _psam_tid(n: int) -> bytes:
    return bytes.fromhex(f"{0x001122330000 + n:012X}")


def _prepare(db_url: str, keys: IssuerKeys) -> list[bytes]:
    """One terminal and one card per reader (each terminal has its own journal and STANs)."""
    rnd = random.Random(4)
    tmks = [rnd.randbytes(16) for _ in READERS]
    store = open_store(db_url)
    try:
        with store.admin() as uow:
            uow.add_issuer(Issuer("ISS1", "Issuer One"), keys)
            uow.add_merchant(
                Merchant(MID, "Bench Mart", "5411", "ACQ1", TODAY, daily_limit_fen=None)
            )
            for n, tmk in enumerate(tmks, start=1):
                uow.add_terminal(Terminal(_tid(n), MID, TODAY), tmk)
                uow.add_card(
                    CardAccount(_asn(n), "ISS1", daily_amount_limit_fen=10_000_000,
                                daily_count_limit=1_000_000)
                )  # fmt: skip
    finally:
        store.close()
    return tmks


@contextlib.contextmanager
def _host(folder: Path, keys: IssuerKeys) -> Iterator[tuple[int, list[bytes]]]:
    db_url = f"sqlite:///{folder / 'capture.db'}"
    env = {**os.environ, "NFCPAY_KEY": os.urandom(32).hex()}
    saved_key = os.environ.get("NFCPAY_KEY")
    os.environ["NFCPAY_KEY"] = env["NFCPAY_KEY"]
    try:
        tmks = _prepare(db_url, keys)
    finally:
        if saved_key is None:
            os.environ.pop("NFCPAY_KEY", None)
        else:
            os.environ["NFCPAY_KEY"] = saved_key
    server = subprocess.Popen(
        [sys.executable, "-c", "from nfcpay.cli import entry; entry()", "host", "serve",
         "--db", db_url, "--iso-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        if not ready:
            raise RuntimeError("the host did not start")
        yield int(server.stdout.readline().decode().rsplit(":", 1)[1]), tmks
    finally:
        server.terminate()
        server.wait(30)


def _cards(keys: IssuerKeys, n: int) -> tuple[Card, Card]:
    sim = issuance.new_sim_image(
        keys, issuance.parse_asn(_asn(n)), today=TODAY, balance_fen=100_000
    )
    psam = issuance.new_psam_image(keys, _psam_tid(n))
    return card_bootstrap.memory_card(sim), card_bootstrap.memory_card(psam)


def _ms(samples_s: list[float]) -> str:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1e3:6.2f} ms, p99 {p99 * 1e3:6.2f} ms"


def _taps(
    name: str,
    n: int,
    port: int,
    tmk: bytes,
    folder: Path,
    card: CardReader,
    psam: CardReader,
    report: Callable[[str], None],
) -> None:
    config = TerminalConfig(_tid(n), MID, "Bench Mart", ("127.0.0.1", port), tmk, timeout_s=10)
    journal = Journal.open(folder / f"{name}.journal")
    terminal = PosTerminal(
        config, journal, card, psam, lambda: datetime.now().replace(microsecond=0)
    )
    header = ReceiptHeader(HEADER.merchant_name, MID, _tid(n))
    try:
        signed = terminal.sign_on()
        if not signed.ok:
            report(f"{name}: sign-on failed: {signed.message}")
            return
        samples: list[float] = []
        activations: list[float] = []
        declined = 0
        for i in range(WARMUP_TAPS + TAPS):
            t0 = time.perf_counter()
            card.wait_for_card(CARD_WAIT_S)  # the tap: the reader activates the card
            t1 = time.perf_counter()
            outcome = terminal.sale(1)
            text = txn_receipt(outcome, header)
            elapsed = time.perf_counter() - t0
            if not outcome.approved or not text:
                declined += 1
            elif i >= WARMUP_TAPS:
                samples.append(elapsed)
                activations.append(t1 - t0)
        owed = terminal.flush()
    finally:
        terminal.close()
        journal.close()
    if not samples:
        report(f"tap to approval, {name}: no approved sale ({declined} declined)")
        return
    report(
        f"tap to approval, {name:<19}: {_ms(samples)} (n={len(samples)}, target median < "
        f"{TARGET_MS[name]} ms){f', {declined} declined' if declined else ''}"
        f"{f', {owed} owed' if owed else ''}; card activation median "
        f"{statistics.median(activations) * 1e3:.2f} ms"
    )


def _in_process(
    keys: IssuerKeys,
    port: int,
    tmk: bytes,
    folder: Path,
    report: Callable[[str], None],
    name: str = "in-process",
) -> None:
    sim_card, psam_card = _cards(keys, 1)
    card, psam = SimReader(sim_card), SimReader(psam_card)
    card.present()
    psam.present()
    _taps(name, 1, port, tmk, folder, card, psam, report)


def _pcscd(
    keys: IssuerKeys, port: int, tmk: bytes, folder: Path, report: Callable[[str], None]
) -> None:
    from card_applet_sim.adapters import vpcd
    from card_applet_sim.adapters.pcscd_process import (
        PcscdProcess,
        missing_components,
        sigterm_as_keyboard_interrupt,
        write_vpcd_reader_config,
    )

    missing = missing_components()
    if missing or importlib.util.find_spec("smartcard") is None:
        report("tap to approval, pcscd: skipped (pcscd, vpcd or pyscard missing)")
        return
    from pos_terminal.adapters.pcsc_reader import PcscReader

    sim_card, psam_card = _cards(keys, 2)
    config_dir = folder / "reader.conf.d"
    write_vpcd_reader_config(config_dir)
    stop = threading.Event()
    with sigterm_as_keyboard_interrupt(), PcscdProcess(config_dir, folder / "pcscd.log"):
        threads = [
            threading.Thread(
                target=vpcd.serve,
                args=(c,),
                kwargs={"port": p, "stop": stop, "connect_timeout_s": CARD_WAIT_S},
                daemon=True,
            )
            for c, p in ((sim_card, 35963), (psam_card, 35964))
        ]
        for t in threads:
            t.start()
        card, psam = PcscReader("Virtual PCD 00 00"), PcscReader("Virtual PCD 00 01")
        try:
            psam.wait_for_card(CARD_WAIT_S)
            _taps("pcscd", 2, port, tmk, folder, card, psam, report)
        finally:
            card.close()
            psam.close()
            stop.set()
            for t in threads:
                t.join(2.0)


def _pn532(
    keys: IssuerKeys, port: int, tmk: bytes, folder: Path, report: Callable[[str], None]
) -> None:
    if importlib.util.find_spec("serial") is None:
        report("tap to approval, pn532: skipped (pyserial missing)")
        return
    from card_applet_sim.adapters.pn532_sim import Pn532Simulator
    from pos_terminal.adapters.pn532_reader import Pn532Reader

    sim_card, psam_card = _cards(keys, 3)
    psam = SimReader(psam_card)
    psam.present()
    with Pn532Simulator(sim_card) as sim, Pn532Reader(sim.port) as card:
        _taps("pn532", 3, port, tmk, folder, card, psam, report)


def run(report: Callable[[str], None]) -> None:
    report("== POS terminal: tap to approval (sale from the tap to the receipt text) ==")
    keys = issuer_keys.generate(random.Random(13).randbytes)
    with tempfile.TemporaryDirectory(prefix="nfcpay-bench-tap-") as tmp:
        folder = Path(tmp)
        with _host(folder, keys) as (port, tmks):
            _in_process(keys, port, tmks[0], folder, report)
            _pcscd(keys, port, tmks[1], folder, report)
            _pn532(keys, port, tmks[2], folder, report)
    if not TMPFS.is_dir():
        return
    # The same in-process taps with the journal and the capture store on tmpfs: what is left
    # without the disk's fsyncs (the journal commits each step, the host each message).
    keys = issuer_keys.generate(random.Random(14).randbytes)
    with tempfile.TemporaryDirectory(prefix="nfcpay-bench-tap-", dir=TMPFS) as tmp:
        folder = Path(tmp)
        with _host(folder, keys) as (port, tmks):
            _in_process(keys, port, tmks[0], folder, report, name="in-process on tmpfs")


if __name__ == "__main__":
    run(lambda line: print(line, flush=True))
