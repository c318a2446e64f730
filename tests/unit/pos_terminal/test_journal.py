"""The journal file (``pos_terminal.adapters.journal``) on a real SQLite file: entries and the
owed messages' fields read back as written, after a reopen too; STAN and batch persist and
wrap; the file is WAL with synchronous FULL; a journal of another schema is refused."""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paycore.iso8583.message import FieldValue
from pos_terminal.adapters.journal import (
    STAN_MAX,
    Journal,
    JournalError,
    decode_fields,
    encode_fields,
)
from pos_terminal.domain import journal_model as jm
from pos_terminal.domain.journal_model import Kind, Reason, State

AT = datetime(2026, 3, 1, 12, 30, 5)
REQUEST: dict[int, FieldValue] = {2: "8888000000000001", 4: "000000001000", 58: b"\xdf\x01\x00"}

field_values = st.one_of(st.text(max_size=40), st.binary(max_size=64))
field_maps = st.dictionaries(st.integers(2, 64), field_values, max_size=12)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # a shared machine
@given(field_maps)
def test_fields_round_trip(fields: dict[int, FieldValue]) -> None:
    assert decode_fields(encode_fields(fields)) == fields


def test_an_entry_reads_back_through_its_life_and_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal.open(path)
    entry = journal.start(Kind.SALE, 1_000, 7, 1, AT, REQUEST, asn="8888000000000001",
                          card={"type": 6, "counter": 3})  # fmt: skip
    assert entry.state is State.AUTH_SENT and journal.request(entry.entry_id) == REQUEST
    entry = journal.save(jm.auth_answered(entry, "00", rrn="000000000009", auth_code="123456",
                                          business_date_mmdd="0301"))  # fmt: skip
    completion: dict[int, FieldValue] = {11: "000007", 58: b"\x01\x02"}
    entry = journal.save(jm.card_done(entry, "0a0b0c0d", 9_000), forward=completion)
    assert journal.forward(entry.entry_id) == completion
    assert journal.card(entry.entry_id) == {"type": 6, "counter": 3}
    journal.close()

    again = Journal.open(path)
    assert again.get(entry.entry_id) == entry
    assert again.unfinished() == [entry]
    assert again.by_rrn("000000000009") == entry and again.by_rrn("x") is None
    assert again.batch(1) == [entry] and again.batch(2) == []
    done = again.save(jm.forward_answered(entry, "94"))
    assert done.state is State.COMPLETED and done.review and again.unfinished() == []
    again.close()


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    amount_fen=st.integers(0, 10**12),
    stan=st.integers(1, STAN_MAX),
    tries=st.integers(0, 100),
    review=st.booleans(),
    reason=st.one_of(st.none(), st.sampled_from(list(Reason))),
    note=st.text(max_size=30),
)
def test_any_entry_reads_back_exactly(
    amount_fen: int, stan: int, tries: int, review: bool, reason: Reason | None, note: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal.open(Path(folder) / "j.db")
        entry = journal.start(Kind.LOAD, amount_fen, stan, 3, AT, {})
        changed = replace(entry, state=State.REVERSAL_PENDING, tries=tries, review=review,
                          reason=reason, note=note, balance_after_fen=amount_fen)  # fmt: skip
        assert journal.save(changed) == changed
        journal.close()


def test_stan_and_batch_persist_and_wrap(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal.open(path)
    assert journal.stan == 0 and journal.next_stan() == 1 and journal.next_stan() == 2
    assert journal.batch_no == 1
    journal.set_batch_no(41)
    journal.set_working_keys(b"\x01" * 60)
    journal.close()
    journal = Journal.open(path)
    assert journal.stan == 2 and journal.batch_no == 41
    assert journal.working_keys() == b"\x01" * 60
    journal.set_working_keys(None)
    assert journal.working_keys() is None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'stan'", (str(STAN_MAX),))
    assert journal.next_stan() == 1
    with pytest.raises(ValueError, match="batch number 0"):
        journal.set_batch_no(0)
    journal.close()


def test_the_file_is_wal_with_synchronous_full(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.db")
    conn = journal._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    journal.close()


def test_a_journal_of_another_schema_or_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    Journal.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(JournalError, match="journal schema 99, expected 1"):
        Journal.open(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError):
        Journal.open(junk)


def test_saving_an_entry_that_does_not_exist_fails(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.db")
    entry = journal.start(Kind.SALE, 1, 1, 1, AT, {})
    with pytest.raises(JournalError, match="no journal entry 99"):
        journal.save(replace(entry, entry_id=99))
    journal.close()
