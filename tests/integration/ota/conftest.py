"""Database fixtures of the OTA server tests: every store test runs on SQLite (a temp file) and
on PostgreSQL (a fresh schema per test on 127.0.0.1:5432, dropped afterwards; skipped when the
server is unreachable, except under CI=true, where it fails) -- as tests/integration/acquiring."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ota.adapters.keyvault import KeyVault
from ota.adapters.sql_store import SqlStore, make_engine

PG_SERVER_URL = os.environ.get(
    "NFCPAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_CONNINFO = PG_SERVER_URL.replace("postgresql+psycopg://", "postgresql://")
_pg_problem: list[str] = []


def _pg_reachable() -> str | None:
    if not _pg_problem:
        try:
            with psycopg.connect(PG_CONNINFO, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_problem.append("")
        except psycopg.Error as exc:
            _pg_problem.append(f"PostgreSQL at {PG_CONNINFO} unreachable: {exc}".strip())
    return _pg_problem[0] or None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ota.db'}"
        return
    problem = _pg_reachable()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    schema = f"nfcpay_ota_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_SERVER_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def vault() -> KeyVault:
    return KeyVault(os.urandom(32))


@pytest.fixture
def sql_store(db_url: str, vault: KeyVault) -> Iterator[SqlStore]:
    engine = make_engine(db_url)
    store = SqlStore(engine, vault)
    store.create_tables()
    yield store
    engine.dispose()
