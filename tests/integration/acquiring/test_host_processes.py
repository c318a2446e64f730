"""`nfcpay host serve --processes 2` (ADR 0004): two worker processes share the ISO port
(SO_REUSEPORT) and one store; terminals on many connections all get answers and every
purchase is stored once; SIGTERM to the parent stops every worker."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from paycore import issuer_keys
from pos_terminal.domain import card_flows
from tests.integration.acquiring.host_env import (
    PosTerminal,
    counts,
    database_url,
    now_local,
    register,
    setups,
)
from tests.integration.databases import DB_PARAMS

NFCPAY = [sys.executable, "-c", "from nfcpay.cli import entry; entry()"]
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
TERMINALS = 8
KEYS = issuer_keys.generate(os.urandom)


def _workers(pid: int) -> set[int]:
    """The worker processes of the host ``pid`` (multiprocessing's own helpers left out)."""
    found = set()
    for child in _children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
        except OSError:
            continue
    return found


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found.add(int(entry))
    return found


def _listening_port(proc: subprocess.Popen[bytes], log_path: Path) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            proc.kill()
            pytest.fail(f"host did not start: {log_path.read_text()[-2000:]}")
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"host exited: {log_path.read_text()[-2000:]}")
        if b"listening on" in line:
            return int(line.decode().rsplit(":", 1)[1])


@pytest.mark.parametrize("kind", DB_PARAMS)
def test_two_processes_share_the_port_and_sigterm_stops_both(kind: str, tmp_path: Path) -> None:
    vault_key = os.urandom(32)
    terminals = setups(TERMINALS)
    with database_url(kind, tmp_path) as db_url:
        store = SqlStore.open(db_url, KeyVault(vault_key))
        register(store, KEYS, terminals)
        log_path = tmp_path / "host.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*NFCPAY, "host", "serve", "--db", db_url, "--iso-port", "0",
                 "--processes", "2", "--cutoff", "23:00"],
                stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                env={**os.environ, "NFCPAY_KEY": vault_key.hex()},
            )  # fmt: skip
        try:
            port = _listening_port(proc, log_path)
            workers = _workers(proc.pid)
            assert len(workers) == 2
            for setup in terminals:
                pos = PosTerminal(setup, KEYS, ("127.0.0.1", port), balance_fen=10_000)
                with pos.link:
                    assert pos.link.sign_on().approved
                    started = card_flows.begin_purchase(pos.sim, pos.psam, 100)
                    auth = pos.link.authorise_purchase(started)
                    assert auth.approved, auth.code
                    done = card_flows.finish_purchase(pos.sim, pos.psam, started, now_local())
                    assert isinstance(done, card_flows.PurchaseDone)
                    assert pos.link.complete_purchase(auth, done).approved
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=STOP_TIMEOUT_S) == 0
            for pid in workers:  # the parent waited for them: none is left behind
                assert not _alive(pid), log_path.read_text()[-2000:]
            stored = counts(store)
            assert stored["authorisations"] == TERMINALS
            assert stored["completions"] == TERMINALS
            assert stored["exchanges"] == 2 * TERMINALS
            text = log_path.read_text()
            assert "[worker 0]" in text and "[worker 1]" in text
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            store.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != "Z"
