"""Clearing's Alembic environment: runs on the connection ``clearing.adapters.sql.migrate``
passes in, with its own version table. Only clearing's ``clr_*`` tables are its business."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from clearing.adapters.sql.migrate import VERSION_TABLE
from clearing.adapters.sql.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through clearing.adapters.sql.migrate.upgrade(engine)")


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    return type_ != "table" or (name is not None and name.startswith("clr_"))


context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    include_name=include_name,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
#: Clearing processes starting together on one PostgreSQL database migrate one at a time.
MIGRATION_LOCK_ID = 0x636C_7272  # "clrr"

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
    context.run_migrations()
