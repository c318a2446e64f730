"""The capture store, first version: reference data, transaction records, exchange log,
RRN counter, and the read-only views for clearing.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from acquiring.adapters.sql.views import (
    CLEARING_BATCH_UPLOADS_V1,
    CLEARING_TERMINAL_SETTLEMENTS_V1,
    CLEARING_TRANSACTIONS_V1,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
VIEWS = ("clearing_transactions", "clearing_batch_uploads", "clearing_terminal_settlements")


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("terminal_id", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.Integer(), nullable=False),
        sa.Column("mti", sa.String(length=4), nullable=False),
        sa.Column("request_digest", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "length(response) BETWEEN 1 AND 2048", name=op.f("ck_exchanges_response")
        ),
        sa.PrimaryKeyConstraint(
            "terminal_id", "batch_no", "stan", "mti", name=op.f("pk_exchanges")
        ),
    )
    op.create_table(
        "issuers",
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("issuer_id", name=op.f("pk_issuers")),
    )
    op.create_table(
        "partners",
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.CheckConstraint("status IN ('active', 'inactive')", name=op.f("ck_partners_status")),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_partners")),
    )
    op.create_table(
        "rrn_counter",
        sa.Column("counter_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("counter_id = 1", name=op.f("ck_rrn_counter_single_row")),
        sa.PrimaryKeyConstraint("counter_id", name=op.f("pk_rrn_counter")),
    )
    op.create_table(
        "store_meta",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_meta")),
    )
    op.create_table(
        "cards",
        sa.Column("asn", sa.String(length=16), nullable=False),
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("daily_amount_limit_fen", sa.BigInteger(), nullable=False),
        sa.Column("daily_count_limit", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('active', 'hot')", name=op.f("ck_cards_status")),
        sa.CheckConstraint(
            "daily_amount_limit_fen >= 0 AND daily_count_limit >= 0", name=op.f("ck_cards_limits")
        ),
        sa.CheckConstraint("length(asn) = 16", name=op.f("ck_cards_asn")),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["issuers.issuer_id"], name=op.f("fk_cards_issuer_id")
        ),
        sa.PrimaryKeyConstraint("asn", name=op.f("pk_cards")),
    )
    op.create_table(
        "issuer_keys",
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("keys_ct", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "key_version BETWEEN 0 AND 255", name=op.f("ck_issuer_keys_key_version")
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["issuers.issuer_id"], name=op.f("fk_issuer_keys_issuer_id")
        ),
        sa.PrimaryKeyConstraint("issuer_id", "key_version", name=op.f("pk_issuer_keys")),
    )
    op.create_table(
        "merchants",
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("mcc", sa.String(length=4), nullable=False),
        sa.Column("acquirer_id", sa.String(length=32), nullable=False),
        sa.Column("onboarded_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("signing_partner_id", sa.String(length=32), nullable=True),
        sa.Column("daily_limit_fen", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'closed')", name=op.f("ck_merchants_status")
        ),
        sa.CheckConstraint(
            "daily_limit_fen IS NULL OR daily_limit_fen > 0", name=op.f("ck_merchants_daily_limit")
        ),
        sa.CheckConstraint("length(merchant_id) = 15", name=op.f("ck_merchants_merchant_id")),
        sa.ForeignKeyConstraint(
            ["signing_partner_id"],
            ["partners.partner_id"],
            name=op.f("fk_merchants_signing_partner_id"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_merchants")),
    )
    op.create_table(
        "partner_contracts",
        sa.Column("contract_id", ID, autoincrement=True, nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("share_bp", sa.Integer(), nullable=True),
        sa.Column("expansion_fee_fen", sa.BigInteger(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("monthly_fee_fen", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'signing' AND share_bp BETWEEN 0 AND 10000"
            " AND expansion_fee_fen BETWEEN 20000 AND 200000 AND retention_days >= 0"
            " AND monthly_fee_fen IS NULL) OR (kind = 'maintenance' AND monthly_fee_fen >= 0"
            " AND share_bp IS NULL AND expansion_fee_fen IS NULL AND retention_days IS NULL)",
            name=op.f("ck_partner_contracts_terms"),
        ),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from",
            name=op.f("ck_partner_contracts_period"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.partner_id"], name=op.f("fk_partner_contracts_partner_id")
        ),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_partner_contracts")),
        sa.UniqueConstraint(
            "partner_id",
            "kind",
            "effective_from",
            name=op.f("uq_partner_contracts_partner_id_kind_effective_from"),
        ),
    )
    op.create_table(
        "commission_rules",
        sa.Column("rule_id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("rate_bp", sa.Integer(), nullable=True),
        sa.Column("min_fen", sa.BigInteger(), nullable=True),
        sa.Column("max_fen", sa.BigInteger(), nullable=True),
        sa.Column("fee_fen", sa.BigInteger(), nullable=True),
        sa.Column("user_bp", sa.Integer(), nullable=True),
        sa.Column("settle_bp", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'percent' AND rate_bp BETWEEN 0 AND 10000"
            " AND (min_fen IS NULL OR min_fen >= 0) AND (max_fen IS NULL OR max_fen >= 0)"
            " AND (min_fen IS NULL OR max_fen IS NULL OR min_fen <= max_fen)"
            " AND fee_fen IS NULL AND user_bp IS NULL AND settle_bp IS NULL)"
            " OR (kind = 'fixed' AND fee_fen >= 0 AND rate_bp IS NULL AND min_fen IS NULL"
            " AND max_fen IS NULL AND user_bp IS NULL AND settle_bp IS NULL)"
            " OR (kind = 'discount' AND user_bp BETWEEN 1 AND 10000 AND settle_bp BETWEEN 0"
            " AND user_bp AND (user_bp - settle_bp) * 10000 = rate_bp * user_bp"
            " AND min_fen IS NULL AND max_fen IS NULL AND fee_fen IS NULL) OR (kind = 'zero'"
            " AND rate_bp IS NULL AND min_fen IS NULL AND max_fen IS NULL AND fee_fen IS NULL"
            " AND user_bp IS NULL AND settle_bp IS NULL)",
            name=op.f("ck_commission_rules_terms"),
        ),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from",
            name=op.f("ck_commission_rules_period"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_commission_rules_version")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.merchant_id"], name=op.f("fk_commission_rules_merchant_id")
        ),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_commission_rules")),
        sa.UniqueConstraint(
            "merchant_id", "version", name=op.f("uq_commission_rules_merchant_id_version")
        ),
    )
    op.create_table(
        "terminals",
        sa.Column("terminal_id", sa.String(length=8), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("deployed_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("maintaining_partner_id", sa.String(length=32), nullable=True),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("signed_on", sa.Boolean(), nullable=False),
        sa.Column("signed_on_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tmk_ct", sa.LargeBinary(), nullable=False),
        sa.Column("mak_ct", sa.LargeBinary(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'returned')", name=op.f("ck_terminals_status")
        ),
        sa.CheckConstraint("batch_no BETWEEN 1 AND 999999", name=op.f("ck_terminals_batch_no")),
        sa.CheckConstraint("length(terminal_id) = 8", name=op.f("ck_terminals_terminal_id")),
        sa.ForeignKeyConstraint(
            ["maintaining_partner_id"],
            ["partners.partner_id"],
            name=op.f("fk_terminals_maintaining_partner_id"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.merchant_id"], name=op.f("fk_terminals_merchant_id")
        ),
        sa.PrimaryKeyConstraint("terminal_id", name=op.f("pk_terminals")),
    )
    op.create_index(op.f("ix_terminals_merchant_id"), "terminals", ["merchant_id"], unique=False)
    op.create_table(
        "authorisations",
        sa.Column("txn_id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("terminal_id", sa.String(length=8), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.Integer(), nullable=False),
        sa.Column("asn", sa.String(length=16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("rrn", sa.String(length=12), nullable=False),
        sa.Column("auth_code", sa.String(length=6), nullable=True),
        sa.Column("response_code", sa.String(length=2), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card_counter", sa.Integer(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("psam_terminal_id", sa.String(length=12), nullable=False),
        sa.Column("balance_before_fen", sa.BigInteger(), nullable=False),
        sa.Column("card_random", sa.String(length=8), nullable=True),
        sa.Column("original_rrn", sa.String(length=12), nullable=True),
        sa.CheckConstraint(
            "kind = 'refund' OR original_rrn IS NULL",
            name=op.f("ck_authorisations_original_rrn_only_for_refunds"),
        ),
        sa.CheckConstraint(
            "kind IN ('purchase', 'load', 'refund')", name=op.f("ck_authorisations_kind")
        ),
        sa.CheckConstraint(
            "response_code <> '00' OR (auth_code IS NOT NULL AND amount_fen >= 1"
            " AND amount_fen <= CASE WHEN kind = 'load' THEN 100000 ELSE 49999 END)",
            name=op.f("ck_authorisations_approved_amount"),
        ),
        sa.CheckConstraint(
            "response_code = '00' OR auth_code IS NULL", name=op.f("ck_authorisations_auth_code")
        ),
        sa.CheckConstraint(
            "amount_fen BETWEEN 0 AND 999999999999", name=op.f("ck_authorisations_amount")
        ),
        sa.CheckConstraint(
            "batch_no BETWEEN 1 AND 999999 AND stan BETWEEN 1 AND 999999",
            name=op.f("ck_authorisations_key"),
        ),
        sa.CheckConstraint(
            "card_counter BETWEEN 0 AND 65535 AND key_version BETWEEN 0 AND 255",
            name=op.f("ck_authorisations_card"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.merchant_id"], name=op.f("fk_authorisations_merchant_id")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.terminal_id"], name=op.f("fk_authorisations_terminal_id")
        ),
        sa.PrimaryKeyConstraint("txn_id", name=op.f("pk_authorisations")),
        sa.UniqueConstraint("rrn", name=op.f("uq_authorisations_rrn")),
        sa.UniqueConstraint(
            "terminal_id",
            "batch_no",
            "stan",
            name=op.f("uq_authorisations_terminal_id_batch_no_stan"),
        ),
    )
    op.create_index(
        op.f("ix_authorisations_asn_business_date"),
        "authorisations",
        ["asn", "business_date"],
        unique=False,
    )
    op.create_index(
        op.f("ix_authorisations_business_date"), "authorisations", ["business_date"], unique=False
    )
    op.create_index(
        op.f("ix_authorisations_merchant_id_business_date"),
        "authorisations",
        ["merchant_id", "business_date"],
        unique=False,
    )
    op.create_index(
        op.f("ix_authorisations_original_rrn"), "authorisations", ["original_rrn"], unique=False
    )
    op.create_table(
        "batch_uploads",
        sa.Column("upload_id", ID, autoincrement=True, nullable=False),
        sa.Column("terminal_id", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("asn", sa.String(length=16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("rrn", sa.String(length=12), nullable=False),
        sa.Column("tac", sa.String(length=8), nullable=False),
        sa.Column("card_counter", sa.Integer(), nullable=False),
        sa.Column("psam_serial", sa.BigInteger(), nullable=False),
        sa.Column("terminal_datetime", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('purchase', 'load', 'refund')", name=op.f("ck_batch_uploads_kind")
        ),
        sa.CheckConstraint(
            "amount_fen BETWEEN 0 AND 999999999999", name=op.f("ck_batch_uploads_amount")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.terminal_id"], name=op.f("fk_batch_uploads_terminal_id")
        ),
        sa.PrimaryKeyConstraint("upload_id", name=op.f("pk_batch_uploads")),
        sa.UniqueConstraint(
            "terminal_id",
            "batch_no",
            "stan",
            name=op.f("uq_batch_uploads_terminal_id_batch_no_stan"),
        ),
    )
    op.create_table(
        "terminal_settlements",
        sa.Column("settlement_id", ID, autoincrement=True, nullable=False),
        sa.Column("terminal_id", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("terminal_purchase_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("terminal_purchase_count", sa.BigInteger(), nullable=False),
        sa.Column("terminal_refund_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("terminal_refund_count", sa.BigInteger(), nullable=False),
        sa.Column("terminal_load_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("terminal_load_count", sa.BigInteger(), nullable=False),
        sa.Column("host_purchase_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("host_purchase_count", sa.BigInteger(), nullable=False),
        sa.Column("host_refund_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("host_refund_count", sa.BigInteger(), nullable=False),
        sa.Column("host_load_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("host_load_count", sa.BigInteger(), nullable=False),
        sa.Column("first_half_balanced", sa.Boolean(), nullable=False),
        sa.Column("second_half_balanced", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.terminal_id"],
            name=op.f("fk_terminal_settlements_terminal_id"),
        ),
        sa.PrimaryKeyConstraint("settlement_id", name=op.f("pk_terminal_settlements")),
        sa.UniqueConstraint(
            "terminal_id", "batch_no", name=op.f("uq_terminal_settlements_terminal_id_batch_no")
        ),
    )
    op.create_table(
        "completions",
        sa.Column("txn_id", ID, nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("tac", sa.String(length=8), nullable=False),
        sa.Column("tac_verdict", sa.String(length=4), nullable=False),
        sa.Column("card_counter", sa.Integer(), nullable=False),
        sa.Column("psam_serial", sa.BigInteger(), nullable=False),
        sa.Column("terminal_datetime", sa.DateTime(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("tac_verdict IN ('ok', 'bad')", name=op.f("ck_completions_tac_verdict")),
        sa.CheckConstraint(
            "amount_fen BETWEEN 1 AND 999999999999", name=op.f("ck_completions_amount")
        ),
        sa.CheckConstraint(
            "card_counter BETWEEN 0 AND 65535", name=op.f("ck_completions_card_counter")
        ),
        sa.ForeignKeyConstraint(
            ["txn_id"], ["authorisations.txn_id"], name=op.f("fk_completions_txn_id")
        ),
        sa.PrimaryKeyConstraint("txn_id", name=op.f("pk_completions")),
    )
    op.create_table(
        "reversals",
        sa.Column("txn_id", ID, nullable=False),
        sa.Column("reason_code", sa.String(length=2), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "reason_code IN ('98', 'A0', '06')", name=op.f("ck_reversals_reason_code")
        ),
        sa.ForeignKeyConstraint(
            ["txn_id"], ["authorisations.txn_id"], name=op.f("fk_reversals_txn_id")
        ),
        sa.PrimaryKeyConstraint("txn_id", name=op.f("pk_reversals")),
    )

    op.execute(CLEARING_TRANSACTIONS_V1)
    op.execute(CLEARING_BATCH_UPLOADS_V1)
    op.execute(CLEARING_TERMINAL_SETTLEMENTS_V1)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE rrn_seq AS BIGINT MINVALUE 1 MAXVALUE 999999999999 NO CYCLE")
    else:
        op.execute("INSERT INTO rrn_counter (counter_id, last_value) VALUES (1, 0)")


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE rrn_seq")
    op.drop_table("reversals")
    op.drop_table("completions")
    op.drop_table("terminal_settlements")
    op.drop_table("batch_uploads")
    op.drop_table("authorisations")
    op.drop_table("terminals")
    op.drop_table("commission_rules")
    op.drop_table("partner_contracts")
    op.drop_table("merchants")
    op.drop_table("issuer_keys")
    op.drop_table("cards")
    op.drop_table("store_meta")
    op.drop_table("rrn_counter")
    op.drop_table("partners")
    op.drop_table("issuers")
    op.drop_table("exchanges")
