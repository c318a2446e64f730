"""`make bench`: print every benchmark figure of the project."""

from __future__ import annotations

import importlib
import sys

from bench import card_purchase, host_throughput


def main() -> int:
    def report(line: str) -> None:
        print(line, flush=True)

    report("== card: full purchase in-process (wallet + PSAM + crypto) ==")
    card_purchase.run(report)
    importlib.import_module("bench.ota_provisioning").run(report)  # OTA: 10,000 SIMs
    report("== acquiring host: concurrent terminals over loopback ==")
    host_throughput.run(report)
    importlib.import_module("bench.pos_tap").run(report)  # POS: tap to approval, 3 readers
    importlib.import_module("bench.clearing").run(report)  # clearing: 1M, 3M, 10M-txn days
    report("== PC/SC: through a real pcscd + vpcd ==")
    try:  # optional: needs pyscard (the [pcsc] extra) and pcscd
        pcsc_latency = importlib.import_module("bench.pcsc_latency")
    except ImportError as exc:
        report(f"skipped: {exc}")
        return 0
    pcsc_latency.run(report)
    importlib.import_module("bench.pcsc_purchase").run(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
