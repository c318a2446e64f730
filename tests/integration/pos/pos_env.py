"""Shared pieces of the POS terminal's tests against a real host: the host (``acquiring``) on a
SQLite file, serving ISO 8583 over real TCP on loopback in a thread, and ``pos_terminal.service``
terminals made of a simulated SIM in a ``SimReader``, a simulated PSAM and a journal file.

(A plain module, not a conftest.py, like tests/integration/acquiring/host_env.py.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from acquiring import bootstrap
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import ServerThread
from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain import issuance
from paycore import issuer_keys
from paycore.iso8583.message import FieldValue, Message
from paycore.issuer_keys import IssuerKeys
from pos_terminal.adapters.host_link import HostLink, HostTimeout, Response
from pos_terminal.adapters.journal import Journal
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain.card_flows import CardGone
from pos_terminal.ports import ApduLink
from pos_terminal.service import Terminal, TerminalConfig
from tests.integration.acquiring.host_env import (
    MID,
    TODAY,
    TerminalSetup,
    counts,
    register,
    setups,
)

KEYS: IssuerKeys = issuer_keys.generate(os.urandom)
NOW = datetime(2026, 3, 1, 12, 0, 0)

__all__ = [
    "KEYS", "NOW", "CardFault", "Crash", "Faults", "Host", "PosKit", "counts", "faulty_link",
    "new_card", "running_host",
]  # fmt: skip


@dataclass
class Host:
    store: SqlStore
    server: ServerThread
    terminals: list[TerminalSetup]
    url: str

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)


@contextmanager
def running_host(folder: Path, terminal_count: int = 2) -> Iterator[Host]:
    """The host on a SQLite file in ``folder``, with ``terminal_count`` registered terminals
    (each with its own card), listening on 127.0.0.1 (a free port)."""
    url = f"sqlite:///{folder / 'host.db'}"
    store = SqlStore.open(url, KeyVault(os.urandom(32)))
    terminals = setups(terminal_count)
    register(store, KEYS, terminals)
    server = bootstrap.start_in_thread(store, url)
    try:
        yield Host(store, server, terminals, url)
    finally:
        server.stop()
        store.close()


def new_card(asn: str, balance_fen: int = 0) -> SimReader:
    image = issuance.new_sim_image(
        KEYS, issuance.parse_asn(asn), today=TODAY, balance_fen=balance_fen
    )
    reader = SimReader(card_bootstrap.memory_card(image))
    reader.present()
    return reader


class PosKit:
    """One terminal's parts: its card (in a reader), its PSAM, its journal file; ``terminal()``
    builds a ``Terminal`` over them (again after a simulated crash)."""

    def __init__(self, host: Host, folder: Path, index: int = 0, *, balance_fen: int = 0) -> None:
        self.host = host
        self.setup = host.terminals[index]
        self.journal_path = folder / f"journal-{self.setup.terminal_id}.db"
        self.reader = new_card(self.setup.asn, balance_fen)
        self.psam_reader = SimReader(
            card_bootstrap.memory_card(issuance.new_psam_image(KEYS, self.setup.psam_terminal_id))
        )
        self.psam_reader.present()
        self.config = TerminalConfig(
            terminal_id=self.setup.terminal_id, merchant_id=MID, merchant_name="Noodle House",
            host=host.address, tmk=self.setup.tmk, timeout_s=10.0,
        )  # fmt: skip
        self.journals: list[Journal] = []

    def terminal(
        self,
        link_factory: Callable[[], HostLink] | None = None,
        card: ApduLink | None = None,
    ) -> Terminal:
        journal = Journal.open(self.journal_path)
        self.journals.append(journal)
        return Terminal(
            self.config, journal, card or self.reader, self.psam_reader, lambda: NOW,
            link_factory,
        )  # fmt: skip

    def link(self, cls: type[HostLink] = HostLink) -> Callable[[], HostLink]:
        c = self.config
        return lambda: cls(c.host, c.terminal_id, c.merchant_id, c.tmk, timeout_s=c.timeout_s)

    def close(self) -> None:
        for journal in self.journals:
            journal.close()


# --- lost answers and pulled cards (the card and message faults the terminal must survive;
# the network fault-injection suite lives elsewhere) -------------------------------------------


class Crash(BaseException):
    """The terminal process dies here."""


class Faults:
    """What a ``FaultyLink`` does to each MTI: ``lose`` - the host gets the request and answers,
    the answer is lost; ``block`` - the request never reaches the host; ``crash`` - the
    request reaches the host, then the terminal dies; ``bad_mac`` (by response MTI) - the
    response's MAC check fails. Counts are decremented as used."""

    def __init__(self) -> None:
        self.lose: dict[str, int] = {}
        self.block: dict[str, int] = {}
        self.crash: dict[str, int] = {}
        self.bad_mac: dict[str, int] = {}  # response MTI -> its MAC "fails" the check
        self.sent: list[str] = []

    @staticmethod
    def _take(table: dict[str, int], mti: str) -> bool:
        if table.get(mti, 0) > 0:
            table[mti] -= 1
            return True
        return False


def faulty_link(kit: PosKit, faults: Faults) -> Callable[[], HostLink]:
    c = kit.config

    class FaultyLink(HostLink):
        def exchange(self, mti: str, fields: Mapping[int, FieldValue], *, signed: bool) -> Response:
            if Faults._take(faults.block, mti):
                self.close()
                raise HostTimeout(f"{mti} blocked (test)")
            faults.sent.append(mti)
            response = super().exchange(mti, fields, signed=signed)
            if Faults._take(faults.crash, mti):
                raise Crash(mti)
            if Faults._take(faults.lose, mti):
                self.close()
                raise HostTimeout(f"{mti} answer lost (test)")
            return response

        def _mac_ok(self, raw: bytes, message: Message) -> bool:
            if Faults._take(faults.bad_mac, message.mti):
                return False
            return super()._mac_ok(raw, message)

    return lambda: FaultyLink(c.host, c.terminal_id, c.merchant_id, c.tmk, timeout_s=c.timeout_s)


class CardFault:
    """A reader in front of ``reader`` that acts on the command with INS ``ins``: ``pull_before``
    (the card never sees it), ``lose_answer`` (the card acts, the answer is lost), ``answer``
    (the card never sees it; this status word comes back), ``crash_after`` (the card acts,
    then the terminal dies). Acts once, then passes everything through."""

    def __init__(self, reader: SimReader, ins: int, mode: str, sw: int = 0x9401) -> None:
        self.reader, self.ins, self.mode, self.sw = reader, ins, mode, sw
        self.armed = True

    def transmit(self, apdu: bytes) -> bytes:
        if not (self.armed and len(apdu) > 1 and apdu[1] == self.ins):
            return self.reader.transmit(apdu)
        self.armed = False
        if self.mode == "pull_before":
            self.reader.pull()
            raise CardGone("card pulled away (test)")
        if self.mode == "answer":
            return self.sw.to_bytes(2, "big")
        self.reader.transmit(apdu)  # the card acts on it
        if self.mode == "crash_after":
            raise Crash("power cut during the card step")
        self.reader.pull()
        raise CardGone("card pulled before its answer arrived (test)")
