"""Shared pieces of the host's tests over real TCP: databases (a SQLite file, or a fresh
PostgreSQL schema on 127.0.0.1:5432), a registered world (issuer, merchant, terminals, cards)
and POS terminals made of a simulated SIM, a simulated PSAM and a ``HostLink``.

(A plain module, not a conftest.py: see tests/integration/acquiring/test_store.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from acquiring.adapters.sql import schema
from acquiring.adapters.sql.store import SqlStore
from acquiring.domain.model import (
    CARD_DAILY_COUNT_LIMIT_DEFAULT,
    CardAccount,
    Issuer,
    Merchant,
    Terminal,
)
from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain import issuance
from paycore.issuer_keys import IssuerKeys
from pos_terminal.adapters.host_link import HostLink
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import Psam
from tests.integration.databases import database_url as shared_database_url

ISSUER = "ISS1"
MID = "898310048990001"
TODAY = date(2026, 3, 1)


@contextmanager
def database_url(kind: str, folder: Path) -> Iterator[str]:
    """A SQLite file in ``folder``, or a fresh PostgreSQL schema dropped afterwards."""
    with shared_database_url(kind, folder, schema_prefix="nfcpay_host") as url:
        yield url


@dataclass(frozen=True)
class TerminalSetup:
    terminal_id: str
    tmk: bytes
    psam_terminal_id: bytes
    asn: str


def setups(count: int) -> list[TerminalSetup]:
    return [
        TerminalSetup(
            f"T{n:07d}",
            bytes([n % 256]) * 8 + bytes.fromhex("0123456789ABCDEF"),
            bytes.fromhex(f"{0x001122330000 + n:012X}"),
            f"88880000{n:08d}",
        )
        for n in range(1, count + 1)
    ]


def register(
    store: SqlStore,
    keys: IssuerKeys,
    terminals: list[TerminalSetup],
    *,
    daily_count_limit: int = CARD_DAILY_COUNT_LIMIT_DEFAULT,
) -> None:
    with store.admin() as uow:
        uow.add_issuer(Issuer(ISSUER, "Issuer One"), keys)
        uow.add_merchant(Merchant(MID, "Noodle House", "5814", "ACQ1", TODAY))
        for t in terminals:
            uow.add_terminal(Terminal(t.terminal_id, MID, TODAY), t.tmk)
            uow.add_card(CardAccount(t.asn, ISSUER, daily_count_limit=daily_count_limit))


class PosTerminal:
    """One terminal: its SIM card in the field, its PSAM, its link to the host."""

    def __init__(
        self,
        setup: TerminalSetup,
        keys: IssuerKeys,
        address: tuple[str, int],
        *,
        balance_fen: int = 0,
        timeout_s: float = 10.0,
    ) -> None:
        self.setup = setup
        sim_image = issuance.new_sim_image(
            keys, issuance.parse_asn(setup.asn), today=TODAY, balance_fen=balance_fen
        )
        self.sim = SimReader(card_bootstrap.memory_card(sim_image))
        self.sim.present()
        psam_reader = SimReader(
            card_bootstrap.memory_card(issuance.new_psam_image(keys, setup.psam_terminal_id))
        )
        psam_reader.present()
        self.psam: Psam = card_flows.open_psam(psam_reader)
        self.link = HostLink(address, setup.terminal_id, MID, setup.tmk, timeout_s=timeout_s)

    def balance_fen(self) -> int:
        return card_flows.read_card(self.sim).balance_fen


def now_local() -> datetime:
    return datetime(2026, 3, 1, 12, 0, 0)


TABLES = (
    schema.authorisations,
    schema.completions,
    schema.reversals,
    schema.exchanges,
    schema.batch_uploads,
    schema.terminal_settlements,
)


def counts(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in TABLES
        }


def terminal_rows(store: SqlStore) -> list[Any]:
    t = schema.terminals.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.terminal_id, t.signed_on, t.mak_ct, t.batch_no).order_by(t.terminal_id)
        ).all()
    return [tuple(row) for row in rows]
