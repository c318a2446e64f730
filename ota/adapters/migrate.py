"""Schema migrations of the OTA store (Alembic, configured in code: no alembic.ini; version table
``ota_alembic_version``). ``upgrade(engine)`` brings a database from empty, or from any older
revision, to the newest; ``SqlStore.create_tables`` runs it.

A new revision by hand: copy the newest file in ``migrations/versions`` with the next number as
``revision`` and the previous as ``down_revision``, and update ``sql_store.py`` to match
(tests/integration/ota/test_store.py compares the two)."""

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
VERSION_TABLE: Final = "ota_alembic_version"
_IN_PROCESS = threading.Lock()  # Alembic's context is process-global


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _IN_PROCESS, engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
