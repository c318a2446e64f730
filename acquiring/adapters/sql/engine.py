"""Engines for the capture store: SQLite (embedded default) and PostgreSQL via psycopg 3.

SQLite connections get (ADR 0003):
- ``journal_mode=WAL``: readers never block the writer, the writer never blocks readers;
- ``synchronous=FULL`` by default: the WAL is fsynced at every commit, so a commit that
  returned survives a power cut, not just a crash of the process (``NORMAL`` keeps crash safety
  but may lose the last commits on power loss; allowed for benchmarks, never the default);
- ``foreign_keys=ON`` (SQLite's default is OFF) and ``busy_timeout`` so several host processes
  can share one file;
- ``BEGIN IMMEDIATE`` for write transactions (pysqlite's own transaction handling is switched
  off): the write lock is taken at the start, so a read-then-write unit of work never fails
  half-way with SQLITE_BUSY when another process committed in between. Read-only units begin
  with a plain (deferred) ``BEGIN`` and take no write lock.

PostgreSQL: READ COMMITTED with row locks (``FOR UPDATE``) where a check must hold until
commit; read-only units run ``SET TRANSACTION READ ONLY``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url

SqliteSynchronous = Literal["FULL", "NORMAL"]
BUSY_TIMEOUT_MS_DEFAULT: Final = 5_000
POOL_SIZE_DEFAULT: Final = 8
POOL_OVERFLOW_MAX: Final = 8
POOL_TIMEOUT_S: Final = 10
#: Execution option that marks a connection's next transaction as read-only.
READONLY_OPTION: Final = "nfcpay_readonly"


def make_engine(
    url: str | URL,
    *,
    sqlite_synchronous: SqliteSynchronous = "FULL",
    busy_timeout_ms: int = BUSY_TIMEOUT_MS_DEFAULT,
    pool_size: int = POOL_SIZE_DEFAULT,
) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...`` with the settings above.
    Other back ends are refused: the schema and its views are tested on these two only."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if sqlite_synchronous not in ("FULL", "NORMAL"):
            raise ValueError("sqlite_synchronous must be FULL or NORMAL")
        if not 0 < busy_timeout_ms <= 600_000:
            raise ValueError("busy_timeout_ms must be 1..600000")
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            pool_size=pool_size,
            max_overflow=POOL_OVERFLOW_MAX,
            pool_timeout=POOL_TIMEOUT_S,
        )
        _install_sqlite_events(engine, sqlite_synchronous, busy_timeout_ms)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ValueError("PostgreSQL URLs must use psycopg 3: postgresql+psycopg://...")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=POOL_OVERFLOW_MAX,
            pool_timeout=POOL_TIMEOUT_S,
            pool_pre_ping=True,
        )
        event.listen(engine, "begin", _pg_begin)
        return engine
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def _install_sqlite_events(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(READONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _pg_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(READONLY_OPTION, False):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
