"""The world the fault tests run in: the real host (``acquiring``) in this process over real TCP
on loopback, with many registered terminals and cards so each test gets its own terminal, card
and PSAM (one host per test module keeps the package fast); a fault proxy per test in front of
the host; in-process SIM and PSAM cards.

(A plain module the conftest.py imports, like tests/integration/acquiring/host_env.py.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from acquiring import bootstrap
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import ServerThread
from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain import issuance
from card_applet_sim.domain.image import CardImage
from paycore import issuer_keys
from pos_terminal.adapters.host_link import HostLink
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import Psam
from pos_terminal.domain.journal_model import Entry
from tests.integration.acquiring.host_env import MID, TODAY, TerminalSetup, register, setups
from tests.integration.pos_faults import agreement
from tests.integration.pos_faults.fault_proxy import FaultProxy

KEYS = issuer_keys.generate(os.urandom)
#: Terminals (and cards) registered per host: one per test of a module.
TERMINALS_PER_HOST = 200
OPENING_BALANCE_FEN = 20_000
#: The terminal's response timeout: short, so SWALLOW / DELAY cost little.
TIMEOUT_S = 0.5
#: A DELAY fault holds the response this long: always after the terminal gave up.
LATE_S = 2 * TIMEOUT_S


def terminal_clock() -> datetime:
    return datetime.now().replace(microsecond=0)


class World:
    def __init__(self, store: SqlStore, server: ServerThread, terminals: list[TerminalSetup]):
        self.store = store
        self.server = server
        self._unused = list(terminals)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)

    def take(self) -> TerminalSetup:
        """A terminal (and its card) no other test of this host used."""
        if not self._unused:
            raise AssertionError(f"more than {TERMINALS_PER_HOST} tests on one host")
        return self._unused.pop(0)


@contextmanager
def running_world(db_url: str, count: int = TERMINALS_PER_HOST) -> Iterator[World]:
    # The host never crashes in these tests: WAL without an fsync per commit (the terminal's journal
    # and card files keep theirs).
    store = SqlStore.open(db_url, KeyVault(os.urandom(32)), sqlite_synchronous="NORMAL")
    terminals = setups(count)
    register(store, KEYS, terminals, daily_count_limit=1_000)
    server = bootstrap.start_in_thread(store, db_url)
    try:
        yield World(store, server, terminals)
    finally:
        server.stop()
        store.close()


def new_sim_image(setup: TerminalSetup) -> CardImage:
    return issuance.new_sim_image(
        KEYS, issuance.parse_asn(setup.asn), today=TODAY, balance_fen=OPENING_BALANCE_FEN
    )


def new_psam_image(setup: TerminalSetup) -> CardImage:
    return issuance.new_psam_image(KEYS, setup.psam_terminal_id)


@dataclass
class Rig:
    """One test's terminal: its card and PSAM in their readers, a proxy to the host."""

    world: World
    setup: TerminalSetup
    proxy: FaultProxy
    sim: SimReader
    psam_reader: SimReader
    psam: Psam = field(init=False)
    #: Cards of transactions made around the terminal (not by it): left out of the agreement.
    other_asns: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sim.present()
        self.psam_reader.present()
        self.psam = card_flows.open_psam(self.psam_reader)

    @property
    def terminal_id(self) -> str:
        return self.setup.terminal_id

    def link(self) -> HostLink:
        return HostLink(
            self.proxy.address, self.setup.terminal_id, MID, self.setup.tmk, timeout_s=TIMEOUT_S
        )

    def check_agreement(self, journal: list[Entry]) -> None:
        card = agreement.card_state(self.sim)
        host = [
            r
            for r in agreement.host_rows(self.world.store, self.terminal_id)
            if r.asn not in self.other_asns
        ]
        found = agreement.problems(OPENING_BALANCE_FEN, card, journal, host)
        if found:
            raise AssertionError(
                agreement.report(found, card, journal, host, self.proxy.transcript())
            )


@contextmanager
def rig(world: World) -> Iterator[Rig]:
    setup = world.take()
    sim = SimReader(card_bootstrap.memory_card(new_sim_image(setup)))
    psam = SimReader(card_bootstrap.memory_card(new_psam_image(setup)))
    with FaultProxy(world.address) as proxy:
        yield Rig(world, setup, proxy, sim, psam)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'capture.db'}"
