"""Kill -9 the host (`nfcpay host serve`, a real process) in the middle of a stream of
purchases from several terminals, restart it, and check (issue 3, "Bad input, faults"):
every 0200 the host answered 00 is in the store exactly once, its completion too when the
terminal saw 00 for it, unanswered 0200s were reversed after the restart, every card's debits
match the host's completions, and completions and reversals sent again apply once. Then
SIGTERM stops the host cleanly.

The terminals behave as §6 asks: an unanswered 0200 is reversed (reason 98) before the next
transaction; a completion is sent until some response arrives."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.domain.model import TxnKey
from acquiring.ports import TxnQuery
from paycore import issuer_keys
from paycore.iso8583.fields import ReversalReason
from paycore.iso8583.message import FieldValue
from pos_terminal.adapters.host_link import (
    Authorised,
    HostLinkError,
)
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import PurchaseDone
from tests.integration.acquiring.host_env import (
    PosTerminal,
    counts,
    database_url,
    register,
    setups,
)
from tests.integration.databases import DB_PARAMS

NFCPAY = [sys.executable, "-c", "from nfcpay.cli import entry; entry()"]
TERMINALS = 4
PURCHASES_BEFORE_KILL = 60
PURCHASES_AFTER_RESTART = 60
START_TIMEOUT_S = 60.0
BALANCE_FEN = 100_000
DAILY_COUNT_LIMIT = 100_000
KEYS = issuer_keys.generate(os.urandom)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HostProcess:
    def __init__(self, db_url: str, port: int, vault_key: bytes, log_path: Path) -> None:
        self.args = [*NFCPAY, "host", "serve", "--db", db_url, "--iso-port", str(port)]
        self.env = {**os.environ, "NFCPAY_KEY": vault_key.hex()}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=log, env=self.env, start_new_session=True
        )
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        while b"listening on" not in line:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                self.kill()
                pytest.fail(f"host did not start: {self.log_path.read_text()[-2000:]}")
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                pytest.fail(f"host exited: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@dataclass
class Ledger:
    """What one terminal saw."""

    approved: dict[int, Authorised] = field(default_factory=dict)  # STAN -> 0200 answered 00
    completed: dict[int, tuple[Authorised, PurchaseDone]] = field(default_factory=dict)
    reversal_codes: dict[int, str] = field(default_factory=dict)  # STAN -> 0410 field 39
    reversed_requests: dict[int, Mapping[int, FieldValue]] = field(default_factory=dict)
    pending_reversals: list[Mapping[int, FieldValue]] = field(default_factory=list)
    pending_completions: list[tuple[Authorised, PurchaseDone]] = field(default_factory=list)
    host_errors: int = 0


def _stan(request: Mapping[int, FieldValue]) -> int:
    return int(str(request[11]))


def run_terminal(pos: PosTerminal, ledger: Ledger, stop: threading.Event) -> None:
    link = pos.link
    amount_fen = 1 + int(pos.setup.terminal_id[1:]) * 7 % 50
    while True:
        try:
            if link.mak is None:
                link.connect()
                if not link.sign_on().approved:
                    raise HostLinkError("sign-on refused")
            while ledger.pending_reversals:  # §6: before the next online transaction
                request = ledger.pending_reversals[0]
                response = link.reverse(request, ReversalReason.NO_ANSWER)
                ledger.reversal_codes[_stan(request)] = response.code
                ledger.reversed_requests[_stan(request)] = request
                ledger.pending_reversals.pop(0)
            while ledger.pending_completions:  # store and forward until answered
                auth, done = ledger.pending_completions[0]
                response = link.complete_purchase(auth, done)
                assert response.approved, response.code
                ledger.completed[auth.stan] = (auth, done)
                ledger.pending_completions.pop(0)
            if stop.is_set():
                return
            started = card_flows.begin_purchase(pos.sim, pos.psam, amount_fen)
            request = link.purchase_request(started)
            ledger.pending_reversals.append(request)  # saved before the 0200 is sent
            auth = link.authorise(request)
            ledger.pending_reversals.pop()  # any response code clears it
            if not auth.approved:
                continue
            ledger.approved[auth.stan] = auth
            finished = card_flows.finish_purchase(pos.sim, pos.psam, started, datetime.now())
            assert isinstance(finished, PurchaseDone)
            ledger.pending_completions.append((auth, finished))
        except HostLinkError:
            ledger.host_errors += 1
            link.close()
            link.mak = None
            time.sleep(0.05)


@pytest.fixture(params=DB_PARAMS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, bytes, Path]]:
    with database_url(request.param, tmp_path) as db_url:
        vault_key = os.urandom(32)
        store = SqlStore.open(db_url, KeyVault(vault_key))
        register(store, KEYS, setups(TERMINALS), daily_count_limit=DAILY_COUNT_LIMIT)
        store.close()
        yield db_url, vault_key, tmp_path


def _approved_total(ledgers: list[Ledger]) -> int:
    return sum(len(ledger.approved) for ledger in ledgers)


def _wait_for(ledgers: list[Ledger], total: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _approved_total(ledgers) < total:
        assert time.monotonic() < deadline, "the purchases stopped coming"
        time.sleep(0.01)


def test_kill_9_in_the_middle_then_restart(world: tuple[str, bytes, Path]) -> None:
    db_url, vault_key, folder = world
    port = _free_port()
    host = HostProcess(db_url, port, vault_key, folder / "host.log")
    terminals = [
        PosTerminal(setup, KEYS, ("127.0.0.1", port), balance_fen=BALANCE_FEN, timeout_s=3.0)
        for setup in setups(TERMINALS)
    ]
    ledgers = [Ledger() for _ in terminals]
    stop = threading.Event()
    threads = [
        threading.Thread(target=run_terminal, args=(pos, ledger, stop), daemon=True)
        for pos, ledger in zip(terminals, ledgers, strict=True)
    ]
    host.start()
    try:
        for thread in threads:
            thread.start()
        _wait_for(ledgers, PURCHASES_BEFORE_KILL)
        host.kill()  # SIGKILL, in the middle of the stream
        killed_at = _approved_total(ledgers)
        time.sleep(0.3)
        host.start()
        _wait_for(ledgers, killed_at + PURCHASES_AFTER_RESTART)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert sum(ledger.host_errors for ledger in ledgers) > 0, "the kill went unnoticed"
        _check(db_url, vault_key, terminals, ledgers)
        codes = [code for ledger in ledgers for code in ledger.reversal_codes.values()]
        print(
            f"crash: {_approved_total(ledgers)} approved, "
            f"{sum(len(x.completed) for x in ledgers)} completed, reversals {codes}, "
            f"{sum(x.host_errors for x in ledgers)} host errors seen by the terminals"
        )
        _send_again(terminals, ledgers)
        _check(db_url, vault_key, terminals, ledgers)
        assert host.terminate() == 0  # SIGTERM: a clean stop
    finally:
        stop.set()
        host.kill()


def _check(
    db_url: str, vault_key: bytes, terminals: list[PosTerminal], ledgers: list[Ledger]
) -> None:
    store = SqlStore.open(db_url, KeyVault(vault_key), migrate=False)
    try:
        stored = counts(store)
        completions = sum(len(ledger.completed) for ledger in ledgers)
        reversals = sum(
            1 for ledger in ledgers for code in ledger.reversal_codes.values() if code == "00"
        )
        assert stored["completions"] == completions
        assert stored["reversals"] == reversals
        with store.unit() as uow:
            for pos, ledger in zip(terminals, ledgers, strict=True):
                tid = pos.setup.terminal_id
                assert not ledger.pending_completions and not ledger.pending_reversals
                for stan, auth in ledger.approved.items():
                    record = uow.get_authorisation(TxnKey(tid, 1, stan))
                    assert record is not None and record.approved and record.rrn == auth.rrn
                debited_fen = 0
                for stan, (_auth, done) in ledger.completed.items():
                    completion = uow.get_completion(TxnKey(tid, 1, stan))
                    assert completion is not None and completion.amount_fen == done.amount_fen
                    assert completion.tac_verdict.value == "ok"
                    debited_fen += completion.amount_fen
                for stan, code in ledger.reversal_codes.items():
                    key = TxnKey(tid, 1, stan)
                    if code == "00":  # the host approved it, the answer was lost
                        assert uow.get_reversal(key) is not None
                    else:  # never reached the host's store
                        assert code == "25"
                        record = uow.get_authorisation(key)
                        assert record is None or not record.approved
                assert BALANCE_FEN - pos.balance_fen() == debited_fen
        # every approved authorisation was seen approved by its terminal, or reversed
        with store.admin(readonly=True) as uow:
            after = 0
            while True:
                page = uow.search_transactions(TxnQuery(after_txn_id=after, limit=500))
                for item in page.items:
                    a = item.authorisation
                    ledger = ledgers[int(a.key.terminal_id[1:]) - 1]
                    if a.approved:
                        assert (
                            a.key.stan in ledger.approved
                            or ledger.reversal_codes.get(a.key.stan) == "00"
                        )
                if page.next_after_txn_id is None:
                    break
                after = page.next_after_txn_id
    finally:
        store.close()


def _send_again(terminals: list[PosTerminal], ledgers: list[Ledger]) -> None:
    """Every completion and reversal once more: replayed, nothing applied twice."""
    for pos, ledger in zip(terminals, ledgers, strict=True):
        link = pos.link
        link.connect()
        assert link.sign_on().approved  # a new MAK: the replays are re-MACed under it
        for auth, done in ledger.completed.values():
            assert link.complete_purchase(auth, done).approved
        for stan, request in ledger.reversed_requests.items():
            assert (
                link.reverse(request, ReversalReason.NO_ANSWER).code == ledger.reversal_codes[stan]
            )
        link.close()
