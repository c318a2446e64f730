"""The real SIM and PSAM through a real pcscd + vpcd: one APDU (GET BALANCE) and a whole
purchase (the terminal's flow: 7 APDUs, 5 to the SIM and 2 to the PSAM, through pyscard),
with the card images in memory and on files with fsync per commit."""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from card_applet_sim import bootstrap
from card_applet_sim.adapters import vpcd
from card_applet_sim.adapters.pcscd_process import (
    PcscdProcess,
    missing_components,
    sigterm_as_keyboard_interrupt,
    write_vpcd_reader_config,
)
from card_applet_sim.domain import issuance
from card_applet_sim.domain.runtime import Card
from paycore import issuer_keys, purse
from pos_terminal.adapters.pcsc_reader import PcscReader
from pos_terminal.domain import card_flows

PURCHASES = 500
APDUS = 2_000
CARD_WAIT_S = 5.0
NOW = datetime(2026, 11, 22, 12, 0, 0)
TERMINAL_ID = bytes.fromhex("001122334455")


def _ms(samples_s: list[float]) -> str:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"


def _cards(folder: Path, on_files: bool) -> tuple[Card, Card]:
    rnd = random.Random(11)
    keys = issuer_keys.generate(rnd.randbytes)
    sim_img = issuance.new_sim_image(
        keys, issuance.parse_asn("8888000000000009"), today=date(2026, 11, 22), balance_fen=100_000
    )
    psam_img = issuance.new_psam_image(keys, TERMINAL_ID)
    if not on_files:
        return bootstrap.memory_card(sim_img), bootstrap.memory_card(psam_img)
    sim_path, psam_path = folder / "sim.card", folder / "psam.card"
    bootstrap.save_new_image(sim_path, sim_img, overwrite=True)
    bootstrap.save_new_image(psam_path, psam_img, overwrite=True)
    return bootstrap.file_card(sim_path), bootstrap.file_card(psam_path)


def _measure(report: Callable[[str], None], folder: Path, on_files: bool) -> None:
    sim_card, psam_card = _cards(folder, on_files)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=vpcd.serve,
            args=(card,),
            kwargs={"port": port, "stop": stop, "connect_timeout_s": CARD_WAIT_S},
            daemon=True,
        )
        for card, port in ((sim_card, 35963), (psam_card, 35964))
    ]
    for t in threads:
        t.start()
    sim, sam = PcscReader("Virtual PCD 00 00"), PcscReader("Virtual PCD 00 01")
    try:
        sim.wait_for_card(CARD_WAIT_S)
        sam.wait_for_card(CARD_WAIT_S)
        psam = card_flows.open_psam(sam)
        store = "files, fsync per commit" if on_files else "memory store"
        if not on_files:
            card_flows.send(sim, purse.select_aid(purse.WALLET_AID), "SELECT")
            balance = purse.get_balance().encode()
            apdu_samples = []
            for _ in range(APDUS):
                t0 = time.perf_counter()
                sim.transmit(balance)
                apdu_samples.append(time.perf_counter() - t0)
            report(f"pcsc one APDU (GET BALANCE to the real wallet): {_ms(apdu_samples)}")
        samples = []
        for _ in range(PURCHASES):
            t0 = time.perf_counter()
            result = card_flows.purchase(sim, psam, 1, NOW)
            samples.append(time.perf_counter() - t0)
            assert isinstance(result, card_flows.PurchaseDone) and result.mac2_verified
        report(f"pcsc whole purchase (7 APDUs on 2 readers, {store}): {_ms(samples)}")
    finally:
        sim.close()
        sam.close()
        stop.set()
        for t in threads:
            t.join(2.0)


def run(report: Callable[[str], None]) -> None:
    missing = missing_components()
    if missing:
        report("pcsc purchase: skipped, missing " + ", ".join(missing))
        return
    with (
        tempfile.TemporaryDirectory(prefix="nfcpay-bench-pcsc-") as tmp,
        sigterm_as_keyboard_interrupt(),
    ):
        config_dir = Path(tmp) / "reader.conf.d"
        write_vpcd_reader_config(config_dir)
        with PcscdProcess(config_dir, Path(tmp) / "pcscd.log"):
            _measure(report, Path(tmp), on_files=False)
            time.sleep(1.0)  # let pcscd see both cards removed before new ones connect
            _measure(report, Path(tmp), on_files=True)
