"""Schema migrations (Alembic, configured in code: no alembic.ini). ``upgrade(url)`` brings a
database from empty, or from any older revision, to the newest; the host runs it at start.

Generating a new revision by hand: copy the newest file in ``migrations/versions``, give it the
next number as ``revision`` and the previous one as ``down_revision``, and update
``schema.py`` to match (tests/integration/acquiring/test_store.py compares the two).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine

from acquiring.adapters.sql.engine import make_engine

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
#: Alembic's ``context`` is process-global: one migration at a time per process. Between
#: processes the database serialises them (see migrations/env.py).
_IN_PROCESS = threading.Lock()


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(url: str | URL | Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (default: the newest)."""
    engine = url if isinstance(url, Engine) else make_engine(url, pool_size=1)
    try:
        with _IN_PROCESS, engine.connect() as connection:
            command.upgrade(_config(connection), revision)
            connection.commit()
    finally:
        if engine is not url:
            engine.dispose()


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
