"""The world of the reader tests: the real host (``acquiring``) in this process on loopback over
a SQLite file, with many registered terminals and cards so each test takes its own; the
terminal (``pos_terminal.service.Terminal``) with a real SQLite journal, its card in one of the
three readers and its PSAM. (A plain module the tests import, like acquiring/host_env.py.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from acquiring import bootstrap as host_bootstrap
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import ServerThread
from acquiring.domain.model import TacVerdict, TxnKind
from acquiring.ports import TxnQuery
from card_applet_sim.domain import issuance
from card_applet_sim.domain.image import CardImage
from paycore import issuer_keys
from pos_terminal.adapters.journal import Journal
from pos_terminal.ports import ApduLink
from pos_terminal.service import Terminal, TerminalConfig
from tests.integration.acquiring.host_env import MID, TODAY, TerminalSetup, register, setups

KEYS = issuer_keys.generate(os.urandom)
TERMINALS_PER_HOST = 120
OPENING_BALANCE_FEN = 20_000
HOST_TIMEOUT_S = 10.0


def terminal_clock() -> datetime:
    return datetime.now().replace(microsecond=0)


class Host:
    def __init__(self, store: SqlStore, server: ServerThread, terminals: list[TerminalSetup]):
        self.store = store
        self.server = server
        self._unused = list(terminals)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)

    def take(self) -> TerminalSetup:
        """A terminal (and its card) no other test used."""
        if not self._unused:
            raise AssertionError(f"more than {TERMINALS_PER_HOST} tests on one host")
        return self._unused.pop(0)

    def card_delta_fen(self, terminal_id: str) -> int:
        """What the host's completed, unreversed transactions of the terminal moved on the
        card: loads and refunds in, purchases out (TACs verified)."""
        with self.store.admin(readonly=True) as uow:
            items = uow.search_transactions(TxnQuery(terminal_id=terminal_id)).items
        delta = 0
        for item in items:
            if item.completion_amount_fen is None or item.reversal_reason is not None:
                continue
            assert item.tac_verdict is TacVerdict.OK, item
            sign = -1 if item.authorisation.kind is TxnKind.PURCHASE else 1
            delta += sign * item.completion_amount_fen
        return delta


@contextmanager
def running_host(folder: Path, count: int = TERMINALS_PER_HOST) -> Iterator[Host]:
    db_url = f"sqlite:///{folder / 'capture.db'}"
    store = SqlStore.open(db_url, KeyVault(os.urandom(32)))
    terminals = setups(count)
    register(store, KEYS, terminals, daily_count_limit=1_000)
    server = host_bootstrap.start_in_thread(store, db_url)
    try:
        yield Host(store, server, terminals)
    finally:
        server.stop()
        store.close()


def sim_image(setup: TerminalSetup, balance_fen: int = OPENING_BALANCE_FEN) -> CardImage:
    return issuance.new_sim_image(
        KEYS, issuance.parse_asn(setup.asn), today=TODAY, balance_fen=balance_fen
    )


def psam_image(setup: TerminalSetup) -> CardImage:
    return issuance.new_psam_image(KEYS, setup.psam_terminal_id)


@contextmanager
def terminal(
    host: Host, setup: TerminalSetup, folder: Path, card: ApduLink, psam: ApduLink
) -> Iterator[Terminal]:
    """The terminal of ``setup`` with its journal in ``folder``."""
    config = TerminalConfig(
        terminal_id=setup.terminal_id, merchant_id=MID, merchant_name="Noodle House",
        host=host.address, tmk=setup.tmk, timeout_s=HOST_TIMEOUT_S,
    )  # fmt: skip
    journal = Journal.open(folder / f"{setup.terminal_id}.journal")
    t = Terminal(config, journal, card, psam, terminal_clock)
    try:
        yield t
    finally:
        t.close()
        journal.close()
