"""Wires the clearing run: the SQL store on the host's database (clearing's own tables
migrated), the atomic file writer, the wall clock (only for the run row's started/finished
instants; never in a file). The CLI and the tests start clearing through here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from clearing.adapters.files import write_atomic
from clearing.adapters.sql.run import SqlClearingStore
from clearing.service import ClearingService


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_service(
    db_url: str, out_dir: Path, *, migrate: bool = True
) -> tuple[ClearingService, SqlClearingStore]:
    """The service and its store (close the store when done)."""
    store = SqlClearingStore.open(db_url, migrate=migrate)
    return ClearingService(store, write_atomic, utc_now, out_dir), store
