"""In-process purchase throughput: wallet + PSAM + crypto, memory store and file store.

A purchase is the terminal's real flow (pos_terminal.domain.card_flows.purchase): SELECT,
READ EF15, GET BALANCE, INITIALIZE FOR PURCHASE, INIT SAM FOR PURCHASE, DEBIT FOR PURCHASE,
CREDIT SAM FOR PURCHASE (7 APDUs, 2 commits: PSAM serial and wallet debit).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from bench.stats import summary_us
from card_applet_sim import bootstrap
from card_applet_sim.domain import issuance
from paycore import issuer_keys
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows

TERMINAL_ID = bytes.fromhex("001122334455")
NOW = datetime(2026, 11, 22, 12, 0, 0)


def _images(seed: int) -> tuple[object, object]:
    rnd = random.Random(seed)
    keys = issuer_keys.generate(rnd.randbytes)
    sim = issuance.new_sim_image(
        keys, issuance.parse_asn("8888000000000001"), today=date(2026, 11, 22), balance_fen=100_000
    )
    return sim, issuance.new_psam_image(keys, TERMINAL_ID)


def _run(sim: SimReader, psam_reader: SimReader, n: int) -> list[float]:
    psam = card_flows.open_psam(psam_reader)
    samples: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        result = card_flows.purchase(sim, psam, 1, NOW)
        samples.append(time.perf_counter() - t0)
        assert isinstance(result, card_flows.PurchaseDone)
    return samples


def memory(report: Callable[[str], None], n: int = 20_000) -> None:
    from card_applet_sim.domain.image import CardImage

    sim_img, psam_img = _images(1)
    assert isinstance(sim_img, CardImage) and isinstance(psam_img, CardImage)
    rnd = random.Random(2)
    sim = SimReader(bootstrap.memory_card(sim_img, rnd.randbytes))
    psam = SimReader(bootstrap.memory_card(psam_img, rnd.randbytes))
    sim.present()
    psam.present()
    _run(sim, psam, 500)  # warm up
    t0 = time.perf_counter()
    samples = _run(sim, psam, n)
    elapsed = time.perf_counter() - t0
    rate = n / elapsed
    report(f"purchase in-process, memory store: {rate:8.0f} purchases/s   {summary_us(samples)}")


def file_backed(report: Callable[[str], None], n: int = 1_000, fsync: bool = True) -> None:
    from card_applet_sim.domain.image import CardImage

    sim_img, psam_img = _images(3)
    assert isinstance(sim_img, CardImage) and isinstance(psam_img, CardImage)
    with tempfile.TemporaryDirectory() as tmp:
        sim_path, psam_path = Path(tmp, "sim.card"), Path(tmp, "psam.card")
        bootstrap.save_new_image(sim_path, sim_img)
        bootstrap.save_new_image(psam_path, psam_img)
        sim = SimReader(bootstrap.file_card(sim_path, fsync=fsync, random_bytes=os.urandom))
        psam = SimReader(bootstrap.file_card(psam_path, fsync=fsync, random_bytes=os.urandom))
        sim.present()
        psam.present()
        t0 = time.perf_counter()
        samples = _run(sim, psam, n)
        elapsed = time.perf_counter() - t0
    label = "file store, fsync per commit" if fsync else "file store, no fsync"
    rate = n / elapsed
    report(f"purchase in-process, {label}: {rate:6.0f} purchases/s   {summary_us(samples)}")


def run(report: Callable[[str], None]) -> None:
    memory(report)
    file_backed(report, fsync=True)
    file_backed(report, fsync=False)
