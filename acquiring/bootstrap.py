"""Wires the acquiring host: the key vault, the capture store, the message service and the ISO
8583 endpoint. The one place that picks adapters (style.md); the CLI, the demo and the tests
start the host through here."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Final

from sqlalchemy import make_url

from acquiring.adapters.api import ApiServerThread, create_app
from acquiring.adapters.api_auth import TokenAuth
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.engine import POOL_SIZE_DEFAULT, SqliteSynchronous
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import ServerLimits, ServerThread, serve_forever
from acquiring.counters import LiveCounters
from acquiring.domain.rules import CUTOFF_DEFAULT
from acquiring.service import HostService, RandomSource

#: SQLite serialises writers: one thread does the units of work (ADR 0004).
SQLITE_WORKERS: Final = 1
#: PostgreSQL: as many as the engine's pool holds without overflow.
POSTGRES_WORKERS: Final = POOL_SIZE_DEFAULT


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_sqlite(db_url: str) -> bool:
    return make_url(db_url).get_backend_name() == "sqlite"


def default_workers(db_url: str) -> int:
    return SQLITE_WORKERS if is_sqlite(db_url) else POSTGRES_WORKERS


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


def limits_for(db_url: str, workers: int | None = None) -> ServerLimits:
    return ServerLimits(workers=workers if workers is not None else default_workers(db_url))


def serve(
    db_url: str,
    host: str,
    port: int,
    *,
    workers: int | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    api_port: int | None = None,
    on_api_listening: Callable[[str, int], None] | None = None,
) -> None:
    """``nfcpay host serve``: run the ISO 8583 endpoint until SIGTERM / SIGINT, and the admin
    API beside it when ``api_port`` is given (tokens from NFCPAY_API_TOKENS[_FILE])."""
    store = open_store(db_url)
    counters = LiveCounters()
    api: ApiServerThread | None = None
    try:
        if api_port is not None:
            app = create_app(store, TokenAuth.from_env(), counters)
            api = ApiServerThread(app, host, api_port).start()
            if on_api_listening is not None:
                on_api_listening(host, api.port)
        serve_forever(
            host_service(store), host, port, limits_for(db_url, workers), on_listening, counters
        )
    finally:
        if api is not None:
            api.stop()
        store.close()


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
