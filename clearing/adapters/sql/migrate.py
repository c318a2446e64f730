"""Clearing's schema migrations (Alembic, configured in code). Its own version table,
``clearing_alembic_version``, so the host's migrations and clearing's run independently in
one database. ``upgrade(engine)`` brings clearing's tables from nothing to the newest.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
VERSION_TABLE: Final = "clearing_alembic_version"
_IN_PROCESS = threading.Lock()


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every clearing migration up to ``revision`` (default: the newest)."""
    with _IN_PROCESS, engine.connect() as connection:
        command.upgrade(_config(connection), revision)
        connection.commit()


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
