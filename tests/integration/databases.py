"""The databases integration tests run on: a SQLite file, or a fresh PostgreSQL schema on the
server this machine starts (127.0.0.1:5432, or NFCPAY_TEST_PG_URL), dropped afterwards.
PostgreSQL unreachable: the test is skipped locally and fails under CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

PG_SERVER_URL = os.environ.get(
    "NFCPAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_CONNINFO = PG_SERVER_URL.replace("postgresql+psycopg://", "postgresql://")
DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
_pg_problem: list[str] = []


def pg_problem() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per run)."""
    if not _pg_problem:
        try:
            with psycopg.connect(PG_CONNINFO, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_problem.append("")
        except psycopg.Error as exc:
            _pg_problem.append(f"PostgreSQL at {PG_CONNINFO} unreachable: {exc}".strip())
    return _pg_problem[0] or None


@contextmanager
def database_url(
    kind: str, folder: Path, *, sqlite_name: str = "capture.db", schema_prefix: str = "nfcpay"
) -> Iterator[str]:
    """A SQLAlchemy URL: ``folder / sqlite_name``, or a new schema on PostgreSQL."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / sqlite_name}"
        return
    problem = pg_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    schema = f"{schema_prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_SERVER_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
