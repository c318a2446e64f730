"""Clearing's own tables (SQLAlchemy Core, prefix ``clr_``) in the host's database, beside the
read-only views it reads (docs/clearing-view.md). Migrated by clearing's own Alembic
environment (``migrate.py``), independently of the host's. A test compares the migrations with
these tables; change both together.

Money BIGINT fen; dates DATE (business dates, Asia/Shanghai); instants UTC. Postings are
insert-only: one debit account, one credit account, one positive amount (clearing.md §6).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

NAMING: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

#: Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

RUN_KINDS: Final = ("DAILY", "MONTH_END", "ADJUSTMENT")
EFFECTS: Final = ("settled", "held", "carried", "rejected", "reversed")
CODES: Final = (
    "AMOUNT_MISMATCH",
    "NO_COMPLETION",
    "TAC_INVALID",
    "COUNTER_DUPLICATE",
    "COUNTER_GAP",
    "TERMINAL_ONLY",
    "HOST_ONLY",
    "TERMINAL_TOTAL_MISMATCH",
    "OVER_LIMIT",
    "DUPLICATE",
)
FEE_KINDS: Final = ("SHARE", "EXPANSION", "MAINTENANCE")
#: A clr_detail row with any exception flag (the predicate of its partial index; queries that
#: want the index repeat it word for word).
FLAGGED: Final = (
    "(over_limit = 1 OR no_completion = 1 OR tac_invalid = 1 OR amount_mismatch = 1"
    " OR host_only = 1 OR counter_code IS NOT NULL)"
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware instant stored in UTC (``timestamptz`` on PostgreSQL, ISO text without offset
    on SQLite), read back aware. Naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


runs = Table(
    "clr_runs",
    metadata,
    Column("run_id", Id, primary_key=True, autoincrement=True),
    Column("business_date", Date, nullable=False),
    Column("kind", String(12), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String(12), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("network_id", String(32), nullable=False),
    Column("cutoff", String(5), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("txn_count", BigInteger, nullable=False),
    Column("settled_count", BigInteger, nullable=False),
    Column("held_count", BigInteger, nullable=False),
    Column("carried_count", BigInteger, nullable=False),
    Column("rejected_count", BigInteger, nullable=False),
    Column("exception_count", BigInteger, nullable=False),
    Column("merchant_file_sha256", String(64)),
    Column("party_file_sha256", String(64)),
    Column("exceptions_file_sha256", String(64)),
    Column("partner_file_sha256", String(64)),
    UniqueConstraint("business_date", "kind", "seq"),
    CheckConstraint(_in("kind", RUN_KINDS), name="kind"),
    CheckConstraint(_in("status", ("running", "completed")), name="status"),
    CheckConstraint("seq BETWEEN 1 AND 999", name="seq"),
)

#: The commission rule each merchant had in force on the run's date (the rule versions of the
#: fingerprint), copied from ``clearing_commission_rules``.
rules_used = Table(
    "clr_rules_used",
    metadata,
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), primary_key=True),
    Column("merchant_id", String(15), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rate_bp", Integer),
    Column("min_fen", BigInteger),
    Column("max_fen", BigInteger),
    Column("fee_fen", BigInteger),
)

#: Per transaction: COUNTER_DUPLICATE / COUNTER_GAP found by the counter stage.
counter_flags = Table(
    "clr_counter_flags",
    metadata,
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), primary_key=True),
    Column("txn_id", BigInteger, primary_key=True),
    Column("code", String(20), nullable=False),
    CheckConstraint(_in("code", ("COUNTER_DUPLICATE", "COUNTER_GAP")), name="code"),
)

#: One row per transaction a run examined (clearing.md §6: per-transaction commission).
detail = Table(
    "clr_detail",
    metadata,
    # no foreign key on run_id: ten million per-row checks a night buy nothing here (the run
    # row and its detail are written in one transaction)
    Column("run_id", Id, primary_key=True),
    Column("txn_id", BigInteger, primary_key=True),
    Column("cleared_on", Date, nullable=False),  # the run's date
    Column("business_date", Date, nullable=False),  # the transaction's (earlier when carried)
    Column("kind", String(8), nullable=False),
    Column("merchant_id", String(15), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("stan", Integer, nullable=False),
    Column("rrn", String(12), nullable=False),
    Column("original_rrn", String(12)),
    Column("asn", String(16), nullable=False),
    Column("issuer_id", String(32), nullable=False),
    Column("acquirer_id", String(32), nullable=False),
    Column("state", String(10), nullable=False),  # as of the cut-off
    Column("auth_amount_fen", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),  # the completion's, else the authorised
    Column("upload_amount_fen", BigInteger),
    Column("commission_fen", BigInteger, nullable=False),  # charged; refunds: returned (>= 0)
    Column("rule_version", Integer),
    Column("over_limit", Integer, nullable=False),
    Column("no_completion", Integer, nullable=False),
    Column("tac_invalid", Integer, nullable=False),
    Column("amount_mismatch", Integer, nullable=False),
    Column("host_only", Integer, nullable=False),
    Column("counter_code", String(20)),
    Column("effect", String(10), nullable=False),
    CheckConstraint(_in("effect", EFFECTS), name="effect"),
    CheckConstraint("commission_fen >= 0", name="commission"),
    Index(None, "rrn"),
    # refunds only (1%): the refund stage's lookups imply original_rrn IS NOT NULL
    Index(
        None,
        "original_rrn",
        sqlite_where=text("original_rrn IS NOT NULL"),
        postgresql_where=text("original_rrn IS NOT NULL"),
    ),
    # the few rows with an exception code: the exception and carry stages read only these
    Index(None, "run_id", sqlite_where=text(FLAGGED), postgresql_where=text(FLAGGED)),
    sqlite_with_rowid=False,  # SQLite: clustered on (run_id, txn_id), as a run reads it
)

exceptions = Table(
    "clr_exceptions",
    metadata,
    Column("exception_id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), nullable=False),
    Column("code", String(24), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("stan", Integer),
    Column("rrn", String(12), nullable=False),
    Column("asn", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("other_amount_fen", BigInteger),
    Column("effect", String(24), nullable=False),
    Column("reason", String(200), nullable=False),
    CheckConstraint(_in("code", CODES), name="code"),
    Index(None, "run_id", "code"),
)

#: NO_COMPLETION items carried from ``from_date`` to be examined again on ``to_date``.
carried = Table(
    "clr_carried",
    metadata,
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), primary_key=True),
    Column("txn_id", BigInteger, primary_key=True),
    Column("from_date", Date, nullable=False),
    Column("to_date", Date, nullable=False),
    Index(None, "to_date"),
)

merchant_days = Table(
    "clr_merchant_days",
    metadata,
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), primary_key=True),
    Column("merchant_id", String(15), primary_key=True),
    Column("business_date", Date, nullable=False),
    Column("txn_count", BigInteger, nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("commission_fen", BigInteger, nullable=False),
    Column("refund_fen", BigInteger, nullable=False),
    Column("load_fen", BigInteger, nullable=False),
    Column("deposit_fen", BigInteger, nullable=False),
    Column("net_fen", BigInteger, nullable=False),
    CheckConstraint(
        "net_fen = gross_fen - refund_fen - commission_fen - load_fen - deposit_fen", name="net"
    ),
)

#: Per (date, issuer, acquirer): C and its 7:2:1 split, with the issuer's flows for its
#: obligation (purchases - refunds - loads - issuer share).
split_groups = Table(
    "clr_split_groups",
    metadata,
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), primary_key=True),
    Column("issuer_id", String(32), primary_key=True),
    Column("acquirer_id", String(32), primary_key=True),
    Column("network_id", String(32), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("commission_fen", BigInteger, nullable=False),
    Column("issuer_fen", BigInteger, nullable=False),
    Column("acquirer_fen", BigInteger, nullable=False),
    Column("network_fen", BigInteger, nullable=False),
    Column("purchase_fen", BigInteger, nullable=False),
    Column("refund_fen", BigInteger, nullable=False),
    Column("load_fen", BigInteger, nullable=False),
    CheckConstraint("issuer_fen + acquirer_fen + network_fen = commission_fen", name="shares_sum"),
)

#: Partner statement lines: SHARE per (date, partner, acquirer that pays it), EXPANSION per
#: merchant (never twice), MAINTENANCE per terminal and month.
partner_payouts = Table(
    "clr_partner_payouts",
    metadata,
    Column("payout_id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("partner_id", String(32), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("reference", String(15), nullable=False),
    Column("acquirer_id", String(32), nullable=False),
    Column("commission_base_fen", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    CheckConstraint(_in("kind", FEE_KINDS), name="kind"),
    # per run: an ADJUSTMENT's SHARE line has the date's reference too (the statement sums them)
    UniqueConstraint("run_id", "kind", "reference", "partner_id", "acquirer_id", "business_date"),
    Index(None, "run_id"),
)

journal = Table(
    "clr_journal",
    metadata,
    Column("entry_key", String(160), primary_key=True),  # the idempotency key
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("kind", String(16), nullable=False),
    Index(None, "run_id"),
)

postings = Table(
    "clr_postings",
    metadata,
    Column("posting_id", Id, primary_key=True, autoincrement=True),
    Column("entry_key", String(160), ForeignKey("clr_journal.entry_key"), nullable=False),
    Column("run_id", Id, ForeignKey("clr_runs.run_id"), nullable=False),
    Column("debit_account", String(64), nullable=False),
    Column("credit_account", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    CheckConstraint("amount_fen > 0", name="amount"),
    CheckConstraint("debit_account <> credit_account", name="accounts"),
    Index(None, "run_id"),
    Index(None, "entry_key"),
)

TABLES: Final = tuple(t.name for t in metadata.sorted_tables)
