"""Alembic environment: runs on the connection ``acquiring.adapters.sql.migrate`` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from acquiring.adapters.sql.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through acquiring.adapters.sql.migrate.upgrade(url)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
#: Host processes starting together on one PostgreSQL database migrate one at a time (the
#: others wait, then find the schema current). SQLite: BEGIN IMMEDIATE already serialises.
MIGRATION_LOCK_ID = 0x6E66_6370  # "nfcp"

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
    context.run_migrations()
