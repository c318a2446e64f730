"""OTA provisioning throughput in-process: blank simulated SIMs to personalised wallets.

Per SIM: register it, an install-wallet job (INSTALL [for load], LOAD, INSTALL [for install and
make selectable] in one secured packet) and a personalise job (INSTALL [for personalization],
STORE DATA with the keys diversified for the ASN the server assigns), each packet AES-ciphered
and CMAC'd with the SIM's SCP80 keys, framed in SMS-DELIVER + ENVELOPE, executed by the SIM's
OTA receiver and ISD, and its PoR verified. Store: ota.adapters.memory_store (the SQL store's
cost is a database's, not the protocol's).

Then, when pyscard and pcscd are there, one OTA job's round trip through the real PC/SC stack
(pyscard -> pcscd -> vpcd -> the simulated SIM): a blank SIM provisioned, then ``JOBS_PCSC``
status jobs timed (one secured packet each: ENVELOPE out, PoR back)."""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from card_applet_sim import bootstrap
from card_applet_sim.domain.issuance import KVN_SCP80, TEST_ISD_KEYS, new_blank_sim_image
from card_applet_sim.domain.wallet import WalletState
from ota.adapters.delivery import EnvelopeDelivery
from ota.adapters.memory_store import MemoryStore
from ota.domain.job import JobState
from ota.domain.script import JobKind
from ota.domain.sim import Scp80KeySet, SimRecord
from ota.ports import EnvelopeLink
from ota.service import OtaService
from paycore import issuer_keys
from paycore.purse import WALLET_AID

SIMS = 10_000
JOBS_PCSC = 200
CARD_WAIT_S = 5.0
TODAY = date(2026, 11, 22)


def run(report: Callable[[str], None], sims: int = SIMS) -> float:
    """Provision ``sims`` blank SIMs; report and return SIMs per second."""
    rnd = random.Random(1)
    keys = issuer_keys.generate(rnd.randbytes)
    sim_keys = Scp80KeySet(
        KVN_SCP80, "aes", TEST_ISD_KEYS.scp80.enc, TEST_ISD_KEYS.scp80.mac, TEST_ISD_KEYS.scp80.dek
    )
    links: dict[str, EnvelopeLink] = {}
    service = OtaService(MemoryStore(), EnvelopeDelivery(links), keys, lambda: TODAY)
    blank = new_blank_sim_image()
    cards = []
    for n in range(sims):
        iccid = f"898600{n:013d}"
        card = bootstrap.memory_card(blank, rnd.randbytes)
        card.power_on()
        links[iccid] = card
        cards.append(card)
        service.register(SimRecord(iccid, f"46000{n:010d}", "", sim_keys))
    t0 = time.perf_counter()
    for n in range(sims):
        iccid = f"898600{n:013d}"
        for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE):
            job = service.push(iccid, kind)
            if job.state is not JobState.DONE:
                raise AssertionError(f"{iccid} {kind.value}: {job.detail}")
    elapsed = time.perf_counter() - t0
    for card in cards[:: max(1, sims // 100)]:
        state = card.image.state_of(WALLET_AID)
        assert isinstance(state, WalletState) and state.life == "personalized"
    rate = sims / elapsed
    report(
        f"OTA in-process: {sims} blank SIMs -> personalised wallets in {elapsed:.1f} s "
        f"({rate:,.0f} SIMs/s, {2 * sims} secured packets, {elapsed / sims * 1e3:.2f} ms/SIM)"
    )
    pcsc(report)
    return rate


def pcsc(report: Callable[[str], None], jobs: int = JOBS_PCSC) -> None:
    from card_applet_sim.adapters import vpcd
    from card_applet_sim.adapters.pcscd_process import (
        PcscdProcess,
        missing_components,
        sigterm_as_keyboard_interrupt,
        write_vpcd_reader_config,
    )

    missing = missing_components()
    if missing:
        report("OTA through pcscd: skipped, missing " + ", ".join(missing))
        return
    try:  # pyscard: the [pcsc] extra
        from ota.adapters.pcsc_link import PcscLink
    except ImportError as exc:
        report(f"OTA through pcscd: skipped, {exc}")
        return

    keys = issuer_keys.generate(random.Random(2).randbytes)
    scp80 = TEST_ISD_KEYS.scp80
    sim_keys = Scp80KeySet(KVN_SCP80, "aes", scp80.enc, scp80.mac, scp80.dek)
    card = bootstrap.memory_card(new_blank_sim_image())
    with (
        tempfile.TemporaryDirectory(prefix="nfcpay-bench-ota-") as tmp,
        sigterm_as_keyboard_interrupt(),
    ):
        config_dir = Path(tmp) / "reader.conf.d"
        write_vpcd_reader_config(config_dir)
        with PcscdProcess(config_dir, Path(tmp) / "pcscd.log"):
            stop = threading.Event()
            server = threading.Thread(
                target=vpcd.serve,
                args=(card,),
                kwargs={"stop": stop, "connect_timeout_s": CARD_WAIT_S},
                name="vpcd-serve-ota-bench",
                daemon=True,
            )
            server.start()
            link = PcscLink("Virtual PCD 00 00")
            try:
                link.connect(CARD_WAIT_S)
                iccid = "8986000000000000001"
                service = OtaService(MemoryStore(), EnvelopeDelivery({iccid: link}), keys,
                                     lambda: TODAY)  # fmt: skip
                service.register(SimRecord(iccid, "460001234567890", "", sim_keys))
                t0 = time.perf_counter()
                for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE):
                    assert service.push(iccid, kind).state is JobState.DONE
                provision_s = time.perf_counter() - t0
                samples: list[float] = []
                for _ in range(jobs):
                    t0 = time.perf_counter()
                    assert service.push(iccid, JobKind.READ_STATUS).state is JobState.DONE
                    samples.append(time.perf_counter() - t0)
            finally:
                link.close()
                stop.set()
                server.join(2.0)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    report(
        f"OTA through pcscd: blank SIM -> personalised wallet in {provision_s * 1e3:.1f} ms; "
        f"one job round trip (secured packet, ENVELOPE, PoR) median "
        f"{statistics.median(samples) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms ({jobs} jobs)"
    )


if __name__ == "__main__":
    run(print, 1000)
