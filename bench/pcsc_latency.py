"""Round-trip time of one APDU through the real PC/SC stack: pyscard -> pcscd -> vpcd -> card.

Starts a pcscd of its own (like the integration tests: only the vpcd reader, no systemd),
serves a card that answers 9000 to everything on vpcd slot 0, and times ``ROUND_TRIPS``
exchanges of a 5-byte APDU. Without TCP_QUICKACK on the card's side each would take ~44 ms
(pcsc.md "Latency trap"); with it, ~0.1-0.2 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from card_applet_sim.adapters import vpcd
from card_applet_sim.adapters.pcscd_process import (
    PcscdProcess,
    missing_components,
    sigterm_as_keyboard_interrupt,
    write_vpcd_reader_config,
)

ROUND_TRIPS = 2_000
WARM_UP = 50
READER = "Virtual PCD 00 00"
#: GET CHALLENGE, 8 bytes: a case-2 command of 5 bytes.
APDU = (0x00, 0x84, 0x00, 0x00, 0x08)
CARD_WAIT_S = 5.0
SERVE_JOIN_S = 2.0


class _OkCard:
    """A SmartCard that answers 9000 to every command."""

    atr = bytes.fromhex("3B80800101")  # T=0 and T=1, no historical bytes

    def power_on(self) -> bytes:
        return self.atr

    def reset(self) -> bytes:
        return self.atr

    def power_off(self) -> None:
        return None

    def transmit(self, apdu: bytes) -> bytes:
        return b"\x90\x00"


def run(report: Callable[[str], None]) -> None:
    missing = missing_components()
    if missing:
        report("pcsc latency: skipped, missing " + ", ".join(missing))
        return
    from smartcard.CardRequest import CardRequest

    with (
        tempfile.TemporaryDirectory(prefix="nfcpay-bench-pcscd-") as tmp,
        sigterm_as_keyboard_interrupt(),
    ):
        config_dir = Path(tmp) / "reader.conf.d"
        write_vpcd_reader_config(config_dir)
        with PcscdProcess(config_dir, Path(tmp) / "pcscd.log"):
            stop = threading.Event()
            server = threading.Thread(
                target=vpcd.serve,
                args=(_OkCard(),),
                kwargs={"stop": stop, "connect_timeout_s": CARD_WAIT_S},
                name="vpcd-serve-bench",
                daemon=True,
            )
            server.start()
            try:
                # Keep request and service referenced: their destructors release the context.
                request = CardRequest(timeout=CARD_WAIT_S, readers=[READER])
                service = request.waitforcard()
                connection = service.connection
                connection.connect()
                try:
                    samples_ns = _time_round_trips(connection)
                finally:
                    connection.disconnect()
                    connection.release()
                    request.pcsccardrequest.release()
            finally:
                stop.set()
                server.join(SERVE_JOIN_S)
                assert not server.is_alive(), "serve did not stop"
    _report(report, samples_ns)


def _time_round_trips(connection: Any) -> list[int]:  # pyscard has no type stubs
    transmit = connection.transmit
    command = list(APDU)
    for _ in range(WARM_UP):
        transmit(command)
    samples_ns: list[int] = []
    for _ in range(ROUND_TRIPS):
        started_ns = time.perf_counter_ns()
        _data, sw1, sw2 = transmit(command)
        samples_ns.append(time.perf_counter_ns() - started_ns)
        assert (sw1, sw2) == (0x90, 0x00)
    return samples_ns


def _report(report: Callable[[str], None], samples_ns: list[int]) -> None:
    median_ms = statistics.median(samples_ns) / 1e6
    p99_ms = statistics.quantiles(samples_ns, n=100, method="inclusive")[98] / 1e6
    max_ms = max(samples_ns) / 1e6
    report(
        f"pcsc APDU round trip (pyscard -> pcscd -> vpcd -> card, {len(samples_ns)} x "
        f"{len(APDU)}-byte APDU): median {median_ms:.3f} ms, p99 {p99_ms:.3f} ms, "
        f"max {max_ms:.3f} ms"
    )
