"""Database fixtures of the OTA server tests: every store test runs on SQLite (a temp file) and
on PostgreSQL (a fresh schema per test on 127.0.0.1:5432, dropped afterwards; skipped when the
server is unreachable, except under CI=true, where it fails) -- as tests/integration/acquiring."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ota.adapters.keyvault import KeyVault
from ota.adapters.sql_store import SqlStore, make_engine
from tests.integration.databases import DB_PARAMS, database_url


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(
        request.param, tmp_path, sqlite_name="ota.db", schema_prefix="nfcpay_ota_test"
    ) as url:
        yield url


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
