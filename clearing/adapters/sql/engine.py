"""Engines for the clearing run: SQLite (WAL, ``BEGIN IMMEDIATE``, so a run holds the write
lock from its first statement) and PostgreSQL via psycopg 3 (the run's transaction is
REPEATABLE READ: every stage sees the same snapshot of the host's views).

Clearing keeps its own copy of these few settings (it imports nothing from the host).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url

#: How long a second writer waits for SQLite's write lock before the run is refused.
BUSY_TIMEOUT_MS_DEFAULT: Final = 2_000


def make_engine(url: str | URL, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS_DEFAULT) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``; others are refused."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if not 0 < busy_timeout_ms <= 600_000:
        raise ValueError("busy_timeout_ms must be 1..600000")
    if backend == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            pool_size=2,
            max_overflow=2,
        )
        _install_sqlite_events(engine, busy_timeout_ms)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ValueError("PostgreSQL URLs must use psycopg 3: postgresql+psycopg://...")
        return create_engine(parsed, pool_size=2, max_overflow=2, pool_pre_ping=True)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def _install_sqlite_events(engine: Engine, busy_timeout_ms: int) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
