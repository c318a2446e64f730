"""Wires the acquiring host: the key vault, the capture store, the message service and the ISO
8583 endpoint. The one place that picks adapters (style.md); the CLI, the demo and the tests
start the host through here."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.queues
import os
import queue
import signal
import socket
import sys
import threading
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Final

from sqlalchemy import make_url

from acquiring.adapters.api import ApiServerThread, create_app
from acquiring.adapters.api_auth import TokenAuth
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.engine import SqliteSynchronous
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import (
    SHUTDOWN_GRACE_S,
    ServerLimits,
    ServerThread,
    serve_forever,
)
from acquiring.counters import LiveCounters
from acquiring.domain.rules import CUTOFF_DEFAULT
from acquiring.service import HostService, RandomSource

#: Writer threads (ADR 0004, measured): SQLite serialises writers, so one; PostgreSQL
#: overlaps groups' round trips, and 4 did better than 2 and 8 (within the engine's pool).
SQLITE_WORKERS: Final = 1
POSTGRES_WORKERS: Final = 4
#: Group commit (ADR 0004): at most this many requests in one unit of work, and no waiting
#: for more (the requests that arrive during a commit form the next group). PostgreSQL keeps
#: a group's savepoints (one subtransaction each) within the 64 a backend caches.
SQLITE_GROUP_MAX: Final = 64
POSTGRES_GROUP_MAX: Final = 32
GROUP_WAIT_MS_DEFAULT: Final = 0.0

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_sqlite(db_url: str) -> bool:
    return make_url(db_url).get_backend_name() == "sqlite"


def default_workers(db_url: str) -> int:
    return SQLITE_WORKERS if is_sqlite(db_url) else POSTGRES_WORKERS


def default_group_max(db_url: str) -> int:
    return SQLITE_GROUP_MAX if is_sqlite(db_url) else POSTGRES_GROUP_MAX


def open_store(
    db_url: str,
    *,
    vault: KeyVault | None = None,
    migrate: bool = True,
    sqlite_synchronous: SqliteSynchronous = "FULL",
) -> SqlStore:
    """The capture store at ``db_url``, migrated to the newest schema (``migrate``), with the
    vault key from ``NFCPAY_KEY`` / ``NFCPAY_KEY_FILE`` unless ``vault`` is given."""
    return SqlStore.open(
        db_url,
        vault if vault is not None else KeyVault.from_env(),
        migrate=migrate,
        sqlite_synchronous=sqlite_synchronous,
    )


def host_service(
    store: SqlStore,
    *,
    clock: Callable[[], datetime] = utc_now,
    random_bytes: RandomSource = os.urandom,
    cutoff: time = CUTOFF_DEFAULT,
) -> HostService:
    """``cutoff``: the local time the business day ends (clearing.md §1; default 00:00)."""
    return HostService(store, clock, random_bytes, cutoff=cutoff)


def limits_for(
    db_url: str,
    workers: int | None = None,
    *,
    group_max: int | None = None,
    group_wait_ms: float | None = None,
    reuse_port: bool = False,
) -> ServerLimits:
    """The endpoint's limits for ``db_url``: writer threads by database (ADR 0004), group
    commit as measured unless given."""
    return ServerLimits(
        workers=workers if workers is not None else default_workers(db_url),
        group_max=group_max if group_max is not None else default_group_max(db_url),
        group_wait_ms=group_wait_ms if group_wait_ms is not None else GROUP_WAIT_MS_DEFAULT,
        reuse_port=reuse_port,
    )


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``nfcpay host serve`` was asked for, beyond the database and the address."""

    workers: int | None = None
    group_max: int | None = None
    group_wait_ms: float | None = None
    cutoff: time = CUTOFF_DEFAULT
    processes: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.processes <= PROCESSES_MAX:
            raise ValueError(f"processes must be 1..{PROCESSES_MAX}")


def serve(
    db_url: str,
    host: str,
    port: int,
    *,
    options: ServeOptions | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    api_port: int | None = None,
    on_api_listening: Callable[[str, int], None] | None = None,
) -> None:
    """``nfcpay host serve``: run the ISO 8583 endpoint until SIGTERM / SIGINT, and the admin
    API beside it when ``api_port`` is given (tokens from NFCPAY_API_TOKENS[_FILE]). With
    ``options.processes`` > 1, that many worker processes share the port (SO_REUSEPORT; the
    kernel spreads connections over them); the admin API runs in the first one."""
    options = options or ServeOptions()
    if options.processes > 1:
        _serve_processes(db_url, host, port, options, on_listening, api_port, on_api_listening)
        return
    _serve_one(
        db_url, host, port, options, on_listening, api_port, on_api_listening, reuse_port=False
    )


def _serve_one(
    db_url: str,
    host: str,
    port: int,
    options: ServeOptions,
    on_listening: Callable[[str, int], None] | None,
    api_port: int | None,
    on_api_listening: Callable[[str, int], None] | None,
    *,
    reuse_port: bool,
    migrate: bool = True,
) -> None:
    store = open_store(db_url, migrate=migrate)
    counters = LiveCounters()
    api: ApiServerThread | None = None
    limits = limits_for(
        db_url,
        options.workers,
        group_max=options.group_max,
        group_wait_ms=options.group_wait_ms,
        reuse_port=reuse_port,
    )
    try:
        if api_port is not None:
            app = create_app(store, TokenAuth.from_env(), counters)
            api = ApiServerThread(app, host, api_port).start()
            if on_api_listening is not None:
                on_api_listening(host, api.port)
        service = host_service(store, cutoff=options.cutoff)
        serve_forever(service, host, port, limits, on_listening, counters)
    finally:
        if api is not None:
            api.stop()
        store.close()


# --- several processes on one port -------------------------------------------------------------

#: Worker processes of one ``serve`` at most.
PROCESSES_MAX: Final = 64
#: How long the workers have to start (imports, store) and to stop (their own grace period).
WORKER_START_S: Final = 60.0
WORKER_STOP_S: Final = SHUTDOWN_GRACE_S + 15.0


def _serve_processes(
    db_url: str,
    host: str,
    port: int,
    options: ServeOptions,
    on_listening: Callable[[str, int], None] | None,
    api_port: int | None,
    on_api_listening: Callable[[str, int], None] | None,
) -> None:
    """The parent: migrate once, hold the port (SO_REUSEPORT, not listening) so port 0 means
    the same port for every worker, start the workers, report once they all listen, and on
    SIGTERM / SIGINT stop them all. A worker that dies stops the others: the parent exits
    with an error for the supervisor to restart the host (nothing is lost: ADR 0003)."""
    open_store(db_url).close()  # migrations and the vault check, once
    holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    port = int(holder.getsockname()[1])
    context = multiprocessing.get_context("spawn")
    events: multiprocessing.queues.Queue[tuple[str, int, int]] = context.Queue()
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    workers = [
        context.Process(
            target=_worker,
            args=(db_url, host, port, options, api_port if n == 0 else None, events, n),
            name=f"nfcpay-host-{n}",
        )
        for n in range(options.processes)
    ]
    try:
        for worker in workers:
            worker.start()
        _await_workers(workers, events, host, on_api_listening, stop)
        holder.close()
        if on_listening is not None and not stop.is_set():
            on_listening(host, port)
        while not stop.is_set():
            ended = multiprocessing.connection.wait([w.sentinel for w in workers], timeout=0.5)
            if ended:
                log.error("a host worker process ended: stopping the others")
                raise RuntimeError("a host worker process ended unexpectedly")
    finally:
        holder.close()
        _stop_workers(workers)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _await_workers(
    workers: Sequence[multiprocessing.process.BaseProcess],
    events: multiprocessing.queues.Queue[tuple[str, int, int]],
    host: str,
    on_api_listening: Callable[[str, int], None] | None,
    stop: threading.Event,
) -> None:
    deadline = _time.monotonic() + WORKER_START_S
    waiting = len(workers)
    while waiting and not stop.is_set():
        if any(not w.is_alive() for w in workers):
            raise RuntimeError("a host worker process did not start")
        left = deadline - _time.monotonic()
        if left <= 0:
            raise RuntimeError(f"the host workers did not start within {WORKER_START_S:.0f} s")
        try:
            what, address_port, _n = events.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if what == "iso":
            waiting -= 1
        elif what == "api" and on_api_listening is not None:
            on_api_listening(host, address_port)


def _stop_workers(workers: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    deadline = _time.monotonic() + WORKER_STOP_S
    for worker in workers:
        worker.join(max(deadline - _time.monotonic(), 0.1))
        if worker.is_alive():
            log.warning("host worker %s did not stop: killing it", worker.name)
            worker.kill()
            worker.join(5)


def _worker(
    db_url: str,
    host: str,
    port: int,
    options: ServeOptions,
    api_port: int | None,
    events: multiprocessing.queues.Queue[tuple[str, int, int]],
    number: int,
) -> None:
    """One worker process: a whole host (store, writers, event loop) on the shared port."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format=f"%(asctime)s [worker {number}] %(name)s %(message)s",
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)
    _serve_one(
        db_url,
        host,
        port,
        options,
        lambda _h, p: events.put(("iso", p, number)),
        api_port,
        lambda _h, p: events.put(("api", p, number)),
        reuse_port=True,
        migrate=False,
    )


def start_in_thread(
    store: SqlStore,
    db_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], datetime] = utc_now,
    random_bytes: RandomSource = os.urandom,
    limits: ServerLimits | None = None,
) -> ServerThread:
    """The endpoint in a background thread (tests, demo, benches); ``.port``, ``.stop()``."""
    service = host_service(store, clock=clock, random_bytes=random_bytes)
    return ServerThread(service, host, port, limits or limits_for(db_url)).start()
