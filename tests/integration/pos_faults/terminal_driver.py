"""A POS terminal in its own process, for the crash tests: the real ``Terminal`` over its
journal file and file-backed SIM and PSAM images, against a host address.

    python -m tests.integration.pos_faults.terminal_driver SETUP.json COMMAND...

COMMAND: ``sign_on``, ``flush``, ``settle``, ``sale:FEN``, ``load:FEN``, ``refund-last:FEN``
(a refund of the newest completed sale in the journal). One JSON line per command on stdout.

``NFCPAY_TEST_KILL_AT`` names the point where the process kills itself with SIGKILL (no
clean-up of any kind: a power cut as far as the journal and the card files are concerned).
The points sit in this driver's own wrappers of the host link and the card reader, so the
terminal's code carries no test hooks:
- ``before-send:MTI`` / ``after-send:MTI``: around writing a request frame with that MTI;
- ``after-receive:MTI``: a response frame with that MTI was read, before the terminal sees it;
- ``before-card:INS`` / ``after-card:INS``: around a card command (hex INS: 54 DEBIT FOR
  PURCHASE, 52 CREDIT FOR LOAD); "after" = the card committed, the terminal never heard.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from card_applet_sim import bootstrap as card_bootstrap
from paycore.iso8583.frame import HEADER_BYTES, LENGTH_PREFIX_BYTES, TPDU_BYTES, Frame
from pos_terminal.adapters.host_link import HostLink
from pos_terminal.adapters.journal import Journal
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain.journal_model import Kind, State
from pos_terminal.service import Terminal, TerminalConfig

KILL_ENV: Final = "NFCPAY_TEST_KILL_AT"
MTI_OFFSET: Final = LENGTH_PREFIX_BYTES + TPDU_BYTES + HEADER_BYTES


def die_at(point: str) -> None:
    if os.environ.get(KILL_ENV) == point:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


class KillingHostLink(HostLink):
    def send_bytes(self, data: bytes) -> None:
        mti = data[MTI_OFFSET : MTI_OFFSET + 2].hex()
        die_at(f"before-send:{mti}")
        super().send_bytes(data)
        die_at(f"after-send:{mti}")

    def receive_frame(self) -> Frame:
        frame = super().receive_frame()
        die_at(f"after-receive:{frame.message[:2].hex()}")
        return frame


class KillingReader:
    def __init__(self, reader: SimReader) -> None:
        self.reader = reader

    def transmit(self, apdu: bytes) -> bytes:
        ins = f"{apdu[1]:02x}" if len(apdu) > 1 else ""
        die_at(f"before-card:{ins}")
        response = self.reader.transmit(apdu)
        die_at(f"after-card:{ins}")
        return response


def _plain(value: object) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    setup = json.loads(Path(argv[0]).read_text())
    tmk = bytes.fromhex(setup["tmk"])
    address = (setup["host"], int(setup["port"]))
    config = TerminalConfig(
        terminal_id=setup["terminal_id"],
        merchant_id=setup["merchant_id"],
        merchant_name="Crash Test Noodles",
        host=address,
        tmk=tmk,
        timeout_s=float(setup["timeout_s"]),
    )

    def link() -> HostLink:
        return KillingHostLink(
            address, config.terminal_id, config.merchant_id, tmk, timeout_s=config.timeout_s
        )

    sim = SimReader(card_bootstrap.file_card(Path(setup["sim"]), expect_kind="sim"))
    psam = SimReader(card_bootstrap.file_card(Path(setup["psam"]), expect_kind="psam"))
    sim.present()
    psam.present()
    journal = Journal.open(Path(setup["journal"]))
    terminal = Terminal(
        config, journal, KillingReader(sim), psam, lambda: datetime.now().replace(microsecond=0),
        link_factory=link,
    )  # fmt: skip
    try:
        for command in argv[1:]:
            name, _, arg = command.partition(":")
            result: object
            if name == "sign_on":
                result = terminal.sign_on()
            elif name == "flush":
                result = {"owed": terminal.flush()}
            elif name == "settle":
                result = terminal.settle()
            elif name == "sale":
                result = terminal.sale(int(arg))
            elif name == "load":
                result = terminal.load(int(arg))
            elif name == "refund-last":
                sales = [
                    e
                    for e in journal.recent(1_000)
                    if e.kind is Kind.SALE and e.state is State.COMPLETED and e.rrn
                ]
                assert sales, "no completed sale to refund"
                assert sales[0].rrn is not None
                result = terminal.refund(int(arg), sales[0].rrn)
            else:
                raise SystemExit(f"unknown command {command!r}")
            print(json.dumps({"command": command, "result": _plain(result)}), flush=True)
    finally:
        terminal.close()
        journal.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
