"""Alembic environment of the OTA store: runs on the connection ``ota.adapters.migrate`` passes
in; its own version table, so the OTA server may share a database with the host."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ota.adapters.sql_store import metadata

VERSION_TABLE = "ota_alembic_version"
MIGRATION_LOCK_ID = 0x6E66_6F74  # "nfot": OTA servers starting together migrate one at a time

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through ota.adapters.migrate.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
    context.run_migrations()
