"""`make bench`: print every benchmark figure of the project."""

from __future__ import annotations

import sys

from bench import card_purchase


def main() -> int:
    def report(line: str) -> None:
        print(line, flush=True)

    report("== card: full purchase in-process (wallet + PSAM + crypto) ==")
    card_purchase.run(report)
    report("== PC/SC: through a real pcscd + vpcd ==")
    try:
        from bench import pcsc_latency
    except ImportError as exc:  # pyscard not installed: the [pcsc] extra
        report(f"skipped: {exc}")
        return 0
    pcsc_latency.run(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
