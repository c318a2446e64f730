"""The wire's group-commit loop (ADR 0004) over real TCP: tight limits (a queue of one, small
groups, a wait for fuller groups, several writers on PostgreSQL) still answer every terminal,
and every purchase is stored once with its completion."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from acquiring import bootstrap
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import ServerLimits
from paycore import issuer_keys
from pos_terminal.adapters import host_link
from tests.integration.acquiring.host_env import (
    PosTerminal,
    counts,
    database_url,
    now_local,
    register,
    setups,
)
from tests.integration.databases import DB_PARAMS

KEYS = issuer_keys.generate(os.urandom)
TERMINALS = 12
PURCHASES = 3


@pytest.mark.parametrize(
    "limits",
    [
        ServerLimits(workers=1, group_max=2, group_wait_ms=5.0, queue_max=1),
        ServerLimits(workers=3, group_max=4, queue_max=3),
        ServerLimits(workers=1, group_max=1),
    ],
    ids=["queue-of-one", "three-writers", "unit-per-request"],
)
@pytest.mark.parametrize("kind", DB_PARAMS)
def test_tight_limits_still_answer_everyone(
    kind: str, limits: ServerLimits, tmp_path: Path
) -> None:
    with database_url(kind, tmp_path) as db_url:
        store = SqlStore.open(db_url, KeyVault(os.urandom(32)))
        terminals = setups(TERMINALS)
        register(store, KEYS, terminals)
        server = bootstrap.start_in_thread(store, db_url, limits=limits)
        errors: list[BaseException] = []
        try:
            barrier = threading.Barrier(TERMINALS)

            def work(pos: PosTerminal) -> None:
                try:
                    link = pos.link.connect()
                    barrier.wait(timeout=30)
                    assert link.sign_on().approved
                    for amount in range(1, PURCHASES + 1):
                        done = host_link.online_purchase(
                            link, pos.sim, pos.psam, amount, now_local()
                        )
                        assert done.completion is not None and done.completion.approved
                    link.close()
                except BaseException as exc:  # reported below
                    errors.append(exc)

            address = ("127.0.0.1", server.port)
            threads = [
                threading.Thread(
                    target=work, args=(PosTerminal(t, KEYS, address, balance_fen=1_000),)
                )
                for t in terminals
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not errors, errors[:3]
            stored = counts(store)
            assert stored["authorisations"] == stored["completions"] == TERMINALS * PURCHASES
            assert stored["exchanges"] == 2 * TERMINALS * PURCHASES
            # every request went through the loop: the sign-ons, 0200s and 0220s
            assert server.server.commits.grouped == TERMINALS + 2 * TERMINALS * PURCHASES
            assert server.server.commits.groups <= server.server.commits.grouped
        finally:
            server.stop()
            store.close()
