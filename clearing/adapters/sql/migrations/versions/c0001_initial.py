"""Clearing's own tables, first version: runs, the per-transaction detail, exceptions, carried
items, merchant days, split groups, partner payouts, and the insert-only ledger.

Revision ID: c0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None

FLAGGED = (
    "(over_limit = 1 OR no_completion = 1 OR tac_invalid = 1 OR amount_mismatch = 1"
    " OR host_only = 1 OR counter_code IS NOT NULL)"
)
#: Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = (
    "clr_postings",
    "clr_journal",
    "clr_split_groups",
    "clr_rules_used",
    "clr_partner_payouts",
    "clr_merchant_days",
    "clr_exceptions",
    "clr_detail",
    "clr_counter_flags",
    "clr_carried",
    "clr_runs",
)
#: Postings and journal entries are never updated or deleted (clearing.md §6).
_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is insert-only'); END"
    for table in ("clr_postings", "clr_journal")
    for verb in ("UPDATE", "DELETE")
)
_PG_FUNCTION = (
    "CREATE FUNCTION clr_insert_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION '% is insert-only', TG_TABLE_NAME; END $$"
)
_PG_TRIGGERS = tuple(
    f"CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION clr_insert_only()"
    for table in ("clr_postings", "clr_journal")
)


def upgrade() -> None:
    op.create_table(
        "clr_runs",
        sa.Column("run_id", ID, autoincrement=True, nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("network_id", sa.String(length=32), nullable=False),
        sa.Column("cutoff", sa.String(length=5), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("txn_count", sa.BigInteger(), nullable=False),
        sa.Column("settled_count", sa.BigInteger(), nullable=False),
        sa.Column("held_count", sa.BigInteger(), nullable=False),
        sa.Column("carried_count", sa.BigInteger(), nullable=False),
        sa.Column("rejected_count", sa.BigInteger(), nullable=False),
        sa.Column("exception_count", sa.BigInteger(), nullable=False),
        sa.Column("merchant_file_sha256", sa.String(length=64), nullable=True),
        sa.Column("party_file_sha256", sa.String(length=64), nullable=True),
        sa.Column("exceptions_file_sha256", sa.String(length=64), nullable=True),
        sa.Column("partner_file_sha256", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "kind IN ('DAILY', 'MONTH_END', 'ADJUSTMENT')", name=op.f("ck_clr_runs_kind")
        ),
        sa.CheckConstraint("status IN ('running', 'completed')", name=op.f("ck_clr_runs_status")),
        sa.CheckConstraint("seq BETWEEN 1 AND 999", name=op.f("ck_clr_runs_seq")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_clr_runs")),
        sa.UniqueConstraint(
            "business_date", "kind", "seq", name=op.f("uq_clr_runs_business_date_kind_seq")
        ),
    )
    op.create_table(
        "clr_carried",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("txn_id", sa.BigInteger(), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=False),
        sa.Column("to_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_carried_run_id")
        ),
        sa.PrimaryKeyConstraint("run_id", "txn_id", name=op.f("pk_clr_carried")),
    )
    op.create_index(op.f("ix_clr_carried_to_date"), "clr_carried", ["to_date"], unique=False)
    op.create_table(
        "clr_counter_flags",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("txn_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.CheckConstraint(
            "code IN ('COUNTER_DUPLICATE', 'COUNTER_GAP')", name=op.f("ck_clr_counter_flags_code")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_counter_flags_run_id")
        ),
        sa.PrimaryKeyConstraint("run_id", "txn_id", name=op.f("pk_clr_counter_flags")),
    )
    op.create_table(
        "clr_detail",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("txn_id", sa.BigInteger(), nullable=False),
        sa.Column("cleared_on", sa.Date(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("terminal_id", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.Integer(), nullable=False),
        sa.Column("rrn", sa.String(length=12), nullable=False),
        sa.Column("original_rrn", sa.String(length=12), nullable=True),
        sa.Column("asn", sa.String(length=16), nullable=False),
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("acquirer_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("auth_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("upload_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=True),
        sa.Column("over_limit", sa.Integer(), nullable=False),
        sa.Column("no_completion", sa.Integer(), nullable=False),
        sa.Column("tac_invalid", sa.Integer(), nullable=False),
        sa.Column("amount_mismatch", sa.Integer(), nullable=False),
        sa.Column("host_only", sa.Integer(), nullable=False),
        sa.Column("counter_code", sa.String(length=20), nullable=True),
        sa.Column("effect", sa.String(length=10), nullable=False),
        sa.CheckConstraint(
            "effect IN ('settled', 'held', 'carried', 'rejected', 'reversed')",
            name=op.f("ck_clr_detail_effect"),
        ),
        sa.CheckConstraint(
            "commission_fen >= 0",
            name=op.f("ck_clr_detail_commission"),
        ),
        sa.PrimaryKeyConstraint("run_id", "txn_id", name=op.f("pk_clr_detail")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_clr_detail_original_rrn"),
        "clr_detail",
        ["original_rrn"],
        unique=False,
        sqlite_where=sa.text("original_rrn IS NOT NULL"),
        postgresql_where=sa.text("original_rrn IS NOT NULL"),
    )
    op.create_index(op.f("ix_clr_detail_rrn"), "clr_detail", ["rrn"], unique=False)
    op.create_index(
        op.f("ix_clr_detail_run_id"),
        "clr_detail",
        ["run_id"],
        unique=False,
        sqlite_where=sa.text(FLAGGED),
        postgresql_where=sa.text(FLAGGED),
    )
    op.create_table(
        "clr_exceptions",
        sa.Column("exception_id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("terminal_id", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.Integer(), nullable=True),
        sa.Column("rrn", sa.String(length=12), nullable=False),
        sa.Column("asn", sa.String(length=16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("other_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("effect", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "code IN ('AMOUNT_MISMATCH', 'NO_COMPLETION', 'TAC_INVALID', 'COUNTER_DUPLICATE',"
            " 'COUNTER_GAP', 'TERMINAL_ONLY', 'HOST_ONLY', 'TERMINAL_TOTAL_MISMATCH',"
            " 'OVER_LIMIT', 'DUPLICATE')",
            name=op.f("ck_clr_exceptions_code"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_exceptions_run_id")
        ),
        sa.PrimaryKeyConstraint("exception_id", name=op.f("pk_clr_exceptions")),
    )
    op.create_index(
        op.f("ix_clr_exceptions_run_id_code"), "clr_exceptions", ["run_id", "code"], unique=False
    )
    op.create_table(
        "clr_journal",
        sa.Column("entry_key", sa.String(length=160), nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_journal_run_id")
        ),
        sa.PrimaryKeyConstraint("entry_key", name=op.f("pk_clr_journal")),
    )
    op.create_index(op.f("ix_clr_journal_run_id"), "clr_journal", ["run_id"], unique=False)
    op.create_table(
        "clr_merchant_days",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("txn_count", sa.BigInteger(), nullable=False),
        sa.Column("gross_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("refund_fen", sa.BigInteger(), nullable=False),
        sa.Column("load_fen", sa.BigInteger(), nullable=False),
        sa.Column("deposit_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "net_fen = gross_fen - refund_fen - commission_fen - load_fen - deposit_fen",
            name=op.f("ck_clr_merchant_days_net"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_merchant_days_run_id")
        ),
        sa.PrimaryKeyConstraint("run_id", "merchant_id", name=op.f("pk_clr_merchant_days")),
    )
    op.create_table(
        "clr_partner_payouts",
        sa.Column("payout_id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("reference", sa.String(length=15), nullable=False),
        sa.Column("acquirer_id", sa.String(length=32), nullable=False),
        sa.Column("commission_base_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('SHARE', 'EXPANSION', 'MAINTENANCE')",
            name=op.f("ck_clr_partner_payouts_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_partner_payouts_run_id")
        ),
        sa.PrimaryKeyConstraint("payout_id", name=op.f("pk_clr_partner_payouts")),
        sa.UniqueConstraint(
            "run_id",
            "kind",
            "reference",
            "partner_id",
            "acquirer_id",
            "business_date",
            name=op.f(
                "uq_clr_partner_payouts_run_id_kind_reference_partner_id_acquirer_id_business_date"
            ),
        ),
    )
    op.create_index(
        op.f("ix_clr_partner_payouts_run_id"), "clr_partner_payouts", ["run_id"], unique=False
    )
    op.create_table(
        "clr_rules_used",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=True),
        sa.Column("min_fen", sa.BigInteger(), nullable=True),
        sa.Column("max_fen", sa.BigInteger(), nullable=True),
        sa.Column("fee_fen", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_rules_used_run_id")
        ),
        sa.PrimaryKeyConstraint("run_id", "merchant_id", name=op.f("pk_clr_rules_used")),
    )
    op.create_table(
        "clr_split_groups",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("acquirer_id", sa.String(length=32), nullable=False),
        sa.Column("network_id", sa.String(length=32), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("issuer_fen", sa.BigInteger(), nullable=False),
        sa.Column("acquirer_fen", sa.BigInteger(), nullable=False),
        sa.Column("network_fen", sa.BigInteger(), nullable=False),
        sa.Column("purchase_fen", sa.BigInteger(), nullable=False),
        sa.Column("refund_fen", sa.BigInteger(), nullable=False),
        sa.Column("load_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "issuer_fen + acquirer_fen + network_fen = commission_fen",
            name=op.f("ck_clr_split_groups_shares_sum"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_split_groups_run_id")
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "issuer_id", "acquirer_id", name=op.f("pk_clr_split_groups")
        ),
    )
    op.create_table(
        "clr_postings",
        sa.Column("posting_id", ID, autoincrement=True, nullable=False),
        sa.Column("entry_key", sa.String(length=160), nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("debit_account", sa.String(length=64), nullable=False),
        sa.Column("credit_account", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_clr_postings_amount")),
        sa.CheckConstraint(
            "debit_account <> credit_account", name=op.f("ck_clr_postings_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["entry_key"], ["clr_journal.entry_key"], name=op.f("fk_clr_postings_entry_key")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["clr_runs.run_id"], name=op.f("fk_clr_postings_run_id")
        ),
        sa.PrimaryKeyConstraint("posting_id", name=op.f("pk_clr_postings")),
    )
    op.create_index(op.f("ix_clr_postings_entry_key"), "clr_postings", ["entry_key"], unique=False)
    op.create_index(op.f("ix_clr_postings_run_id"), "clr_postings", ["run_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("clr_postings", "clr_journal"):
            op.execute(f"DROP TRIGGER {table}_insert_only ON {table}")
        op.execute("DROP FUNCTION clr_insert_only()")
    for table in TABLES:
        op.drop_table(table)
