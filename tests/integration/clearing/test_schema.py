"""Clearing's own tables beside the host's, on both databases: its migrations create exactly
``clearing.adapters.sql.schema``, in its own version table, independent of the host's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from acquiring.adapters.sql.migrate import current_revision as host_revision
from acquiring.adapters.sql.migrate import head_revision as host_head
from acquiring.adapters.sql.migrate import upgrade as host_upgrade
from acquiring.adapters.sql.views import REFERENCE_VIEW_NAMES, VIEW_NAMES
from clearing.adapters.sql import schema
from clearing.adapters.sql.migrate import VERSION_TABLE, current_revision, head_revision
from clearing.adapters.sql.run import SqlClearingStore
from tests.integration.clearing.clearing_env import DAY, FASTFOOD, make_world, read
from tests.integration.databases import DB_PARAMS, database_url


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path, schema_prefix="nfcpay_clrs") as url:
        yield url


def test_migrations_match_the_tables_and_keep_their_own_version(db_url: str) -> None:
    make_world(db_url).store.close()
    store = SqlClearingStore.open(db_url)
    try:
        with store.engine.connect() as conn:
            assert current_revision(conn) == head_revision() == "c0001"
            assert host_revision(conn) == host_head() == "0002"
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "version_table": VERSION_TABLE,
                    "include_name": lambda name, type_, _p: (
                        type_ != "table" or (name or "").startswith("clr_")
                    ),
                },
            )
            assert compare_metadata(context, schema.metadata) == []
            inspector = inspect(conn)
            assert set(inspector.get_view_names()) >= set(VIEW_NAMES)
            assert {VERSION_TABLE, "alembic_version"} <= set(inspector.get_table_names())
        # opening again is a no-op; the host's migrations still run beside clr_* tables
        SqlClearingStore.open(db_url).close()
        host_upgrade(db_url)
    finally:
        store.close()


def test_reference_views_show_the_host_data(db_url: str) -> None:
    world = make_world(db_url)
    world.sql("UPDATE terminals SET returned_on = :d WHERE terminal_id = 'T0000005'", d=DAY)
    assert len(REFERENCE_VIEW_NAMES) == 4
    assert read(
        db_url,
        "SELECT merchant_id, acquirer_id, status, signing_partner_id FROM clearing_merchants "
        "WHERE merchant_id = :m",
        m=FASTFOOD,
    ) == [(FASTFOOD, "ACQ1", "active", "P1")]
    returned = read(
        db_url,
        "SELECT terminal_id, returned_on FROM clearing_terminals WHERE returned_on IS NOT NULL",
    )
    assert [r[0] for r in returned] == ["T0000005"]
    rules = read(
        db_url,
        "SELECT merchant_id, version, kind, rate_bp FROM clearing_commission_rules"
        " WHERE merchant_id = :m",
        m=FASTFOOD,
    )
    assert rules == [(FASTFOOD, 1, "percent", 1000)]
    contracts = read(
        db_url,
        "SELECT partner_id, kind, share_bp, monthly_fee_fen FROM clearing_partner_contracts"
        " ORDER BY partner_id",
    )
    assert contracts == [("P1", "signing", 5000, None), ("P2", "maintenance", None, 5500)]


def test_postings_are_insert_only(db_url: str, tmp_path: Path) -> None:
    from clearing.bootstrap import open_service
    from clearing.ports import RunOptions

    world = make_world(db_url)
    world.txn(FASTFOOD, 3_850)
    folder = tmp_path / "out"
    folder.mkdir()
    service, store = open_service(db_url, folder)
    try:
        service.run(RunOptions(DAY))
        for statement in (
            "UPDATE clr_postings SET amount_fen = amount_fen + 1",
            "DELETE FROM clr_postings",
            "DELETE FROM clr_journal",
        ):
            with pytest.raises(DBAPIError), store.engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        store.close()
