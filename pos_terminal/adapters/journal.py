"""The terminal's journal on disk: one SQLite file (WAL, ``synchronous=FULL``), every write its
own transaction, so a power cut loses at most the step that was being written and never a
committed one (docs/pos-terminal.md).

Holds:
- ``entries``: one row per online transaction (``journal_model.Entry``), with the 0200's fields
  (what a 0400 is built from), the fields of the owed 0220 / 0400 (forwarded byte-for-byte the
  same content, so the host's duplicate rule of §6 recognises a retransmission), and what the
  card said (to recover a torn transaction after a restart);
- ``meta``: the last STAN (written before the STAN is used), the batch number, the day end in
  progress (its 0500 and the 0320 uploads still owed), and the working keys as the host sent
  them in field 62 of the 0810 - encrypted under the TMK, with their KCVs - so the file never
  holds a clear key.

The journal never logs a key; ``repr`` shows the path only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from paycore.iso8583.message import FieldValue
from pos_terminal.domain.journal_model import Entry, Kind, Reason, State

SCHEMA_VERSION: Final = 1
STAN_MAX: Final = 999_999
BATCH_MAX: Final = 999_999
#: A limit on everything: ``recent`` never returns more.
RECENT_MAX: Final = 1_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen >= 0),
    stan INTEGER NOT NULL,
    batch_no INTEGER NOT NULL,
    at TEXT NOT NULL,
    asn TEXT,
    rrn TEXT,
    auth_code TEXT,
    business_date_mmdd TEXT,
    code TEXT,
    tac TEXT,
    balance_after_fen INTEGER,
    reason TEXT,
    tries INTEGER NOT NULL DEFAULT 0,
    review INTEGER NOT NULL DEFAULT 0,
    original_rrn TEXT,
    note TEXT NOT NULL DEFAULT '',
    request TEXT NOT NULL,
    forward TEXT,
    card TEXT
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state);
CREATE INDEX IF NOT EXISTS entries_rrn ON entries (rrn);
CREATE INDEX IF NOT EXISTS entries_batch ON entries (batch_no);
"""

_ENTRY_COLUMNS: Final = tuple(f.name for f in dataclass_fields(Entry))


class JournalError(Exception):
    """The journal file cannot be used (wrong schema, corrupt)."""


def encode_fields(fields: Mapping[int, FieldValue]) -> str:
    """ISO 8583 fields as JSON: text as is, binary as hex (tagged)."""
    out: dict[str, list[str]] = {}
    for number, value in sorted(fields.items()):
        if isinstance(value, bytes):
            out[str(number)] = ["b", value.hex()]
        else:
            out[str(number)] = ["s", value]
    return json.dumps(out, separators=(",", ":"))


def decode_fields(text: str) -> dict[int, FieldValue]:
    raw = json.loads(text)
    out: dict[int, FieldValue] = {}
    for number, (tag, value) in raw.items():
        out[int(number)] = bytes.fromhex(value) if tag == "b" else str(value)
    return out


def _next(value: int, maximum: int) -> int:
    return 1 if value >= maximum else value + 1


class Journal:
    """One terminal's journal. Not thread-safe: one terminal, one call at a time."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (or create) the journal at ``path``."""
        conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise JournalError(f"{path}: journal schema {row[0]}, expected {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalError(f"{path}: {exc}") from None
        except JournalError:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # --- meta: STAN, batch, working keys --------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def stan(self) -> int:
        """The last STAN used (0 before the first)."""
        return int(self._meta("stan") or 0)

    def next_stan(self) -> int:
        """The next STAN (000001..999999, wraps), committed before it is returned."""
        with self._write() as conn:
            stan = _next(self.stan, STAN_MAX)
            self._set_meta(conn, "stan", str(stan))
        return stan

    @property
    def batch_no(self) -> int:
        return int(self._meta("batch_no") or 1)

    def set_batch_no(self, batch_no: int) -> None:
        if not 1 <= batch_no <= BATCH_MAX:
            raise ValueError(f"batch number {batch_no} is not 1..{BATCH_MAX}")
        with self._write() as conn:
            self._set_meta(conn, "batch_no", str(batch_no))

    def working_keys(self) -> bytes | None:
        """Field 62 of the last good 0810 (encrypted under the TMK), or None."""
        value = self._meta("working_keys")
        return None if not value else bytes.fromhex(value)

    def set_working_keys(self, field62: bytes | None) -> None:
        with self._write() as conn:
            self._set_meta(conn, "working_keys", "" if field62 is None else field62.hex())

    def settlement(self) -> dict[str, Any] | None:
        """The day end in progress (the 0500 as sent, the uploads still owed), or None."""
        value = self._meta("settlement")
        return None if not value else dict(json.loads(value))

    def set_settlement(
        self, state: Mapping[str, Any] | None, *, batch_no: int | None = None
    ) -> None:
        """Save the day end's progress and, in the same transaction, the new batch number."""
        if batch_no is not None and not 1 <= batch_no <= BATCH_MAX:
            raise ValueError(f"batch number {batch_no} is not 1..{BATCH_MAX}")
        with self._write() as conn:
            self._set_meta(conn, "settlement", "" if state is None else json.dumps(dict(state)))
            if batch_no is not None:
                self._set_meta(conn, "batch_no", str(batch_no))

    # --- entries --------------------------------------------------------------------------------

    def start(
        self,
        kind: Kind,
        amount_fen: int,
        stan: int,
        batch_no: int,
        at: datetime,
        request: Mapping[int, FieldValue],
        *,
        asn: str | None = None,
        original_rrn: str | None = None,
        card: Mapping[str, Any] | None = None,
    ) -> Entry:
        """The reversal record of §6: saved (committed) before the 0200 is sent."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO entries (kind, state, amount_fen, stan, batch_no, at, asn,"
                " original_rrn, request, card) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind.value, State.AUTH_SENT.value, amount_fen, stan, batch_no,
                 at.isoformat(), asn, original_rrn, encode_fields(request),
                 None if card is None else json.dumps(dict(card))),
            )  # fmt: skip
            entry_id = cursor.lastrowid
        assert entry_id is not None
        return self.get(entry_id)

    def save(
        self,
        entry: Entry,
        *,
        forward: Mapping[int, FieldValue] | None = None,
        card: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Write ``entry``'s state (and the owed message's fields, the card's data when
        given) in one transaction; returns what was read back."""
        sets = [f"{name} = ?" for name in _ENTRY_COLUMNS if name != "entry_id"]
        values: list[Any] = [
            _to_sql(getattr(entry, name)) for name in _ENTRY_COLUMNS if name != "entry_id"
        ]
        if forward is not None:
            sets.append("forward = ?")
            values.append(encode_fields(forward))
        if card is not None:
            sets.append("card = ?")
            values.append(json.dumps(dict(card)))
        with self._write() as conn:
            updated = conn.execute(
                f"UPDATE entries SET {', '.join(sets)} WHERE entry_id = ?",  # noqa: S608
                (*values, entry.entry_id),
            ).rowcount
        if updated != 1:
            raise JournalError(f"no journal entry {entry.entry_id}")
        saved = self.get(entry.entry_id)
        assert saved == entry, "journal read-back differs from what was written"
        return saved

    def get(self, entry_id: int) -> Entry:
        row = self._conn.execute(
            f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries WHERE entry_id = ?",  # noqa: S608
            (entry_id,),
        ).fetchone()
        if row is None:
            raise JournalError(f"no journal entry {entry_id}")
        return _entry(row)

    def _select(self, where: str, params: tuple[Any, ...], order: str = "entry_id") -> list[Entry]:
        rows = self._conn.execute(
            f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries WHERE {where}"  # noqa: S608
            f" ORDER BY {order}",
            params,
        ).fetchall()
        return [_entry(row) for row in rows]

    def recent(self, limit: int) -> list[Entry]:
        """The newest ``limit`` entries (at most RECENT_MAX), newest first."""
        limit = max(0, min(limit, RECENT_MAX))
        return self._select("1 = 1", (), f"entry_id DESC LIMIT {limit}")

    def unfinished(self) -> list[Entry]:
        """Entries not in a final state, oldest first."""
        return self._select(
            "state NOT IN (?, ?, ?, ?, ?)",
            tuple(s.value for s in (State.DECLINED, State.COMPLETED, State.REVERSED,
                                    State.MANUAL, State.REFUSED)),
        )  # fmt: skip

    def batch(self, batch_no: int) -> list[Entry]:
        return self._select("batch_no = ?", (batch_no,))

    def by_rrn(self, rrn: str) -> Entry | None:
        found = self._select("rrn = ?", (rrn,), "entry_id DESC")
        return found[0] if found else None

    def request(self, entry_id: int) -> dict[int, FieldValue]:
        """The 0200's fields (as sent, without field 64)."""
        return decode_fields(self._column(entry_id, "request") or "{}")

    def forward(self, entry_id: int) -> dict[int, FieldValue] | None:
        """The fields of the owed 0220 / 0400, or None."""
        text = self._column(entry_id, "forward")
        return None if text is None else decode_fields(text)

    def card(self, entry_id: int) -> dict[str, Any] | None:
        text = self._column(entry_id, "card")
        return None if text is None else dict(json.loads(text))

    def _column(self, entry_id: int, column: str) -> str | None:
        assert column in ("request", "forward", "card")
        row = self._conn.execute(
            f"SELECT {column} FROM entries WHERE entry_id = ?",  # noqa: S608
            (entry_id,),
        ).fetchone()
        if row is None:
            raise JournalError(f"no journal entry {entry_id}")
        return None if row[0] is None else str(row[0])


def _to_sql(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (Kind, State, Reason)):
        return value.value
    return value


def _entry(row: tuple[Any, ...]) -> Entry:
    values = dict(zip(_ENTRY_COLUMNS, row, strict=True))
    values["kind"] = Kind(values["kind"])
    values["state"] = State(values["state"])
    values["at"] = datetime.fromisoformat(values["at"])
    values["reason"] = None if values["reason"] is None else Reason(values["reason"])
    values["review"] = bool(values["review"])
    return Entry(**values)
