"""The OTA store, first version: SIMs (keys encrypted), the ASN sequence, campaigns, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ota_sims",
        sa.Column("iccid", sa.String(20), primary_key=True),
        sa.Column("imsi", sa.String(15), nullable=False),
        sa.Column("msisdn", sa.String(15), nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("kic_enc", sa.LargeBinary, nullable=False),
        sa.Column("kid_enc", sa.LargeBinary, nullable=False),
        sa.Column("dek_enc", sa.LargeBinary, nullable=False),
        sa.Column("counter_last", sa.BigInteger, nullable=False),
        sa.Column("asn", sa.String(16), nullable=True, unique=True),
    )
    op.create_table(
        "ota_sequences",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ota_campaigns",
        sa.Column("campaign_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ceiling_fen", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "ota_jobs",
        sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("iccid", sa.String(20), sa.ForeignKey("ota_sims.iccid"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ceiling_fen", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("attempts_max", sa.Integer, nullable=False),
        sa.Column("counters", sa.String(4096), nullable=False),
        sa.Column("por_status", sa.Integer, nullable=True),
        sa.Column("last_sw", sa.Integer, nullable=True),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("result", sa.LargeBinary, nullable=False),
        sa.Column(
            "campaign_id", sa.Integer, sa.ForeignKey("ota_campaigns.campaign_id"), nullable=True
        ),
    )
    op.create_index("ix_ota_jobs_iccid", "ota_jobs", ["iccid"])
    op.create_index("ix_ota_jobs_campaign_id", "ota_jobs", ["campaign_id"])


def downgrade() -> None:
    op.drop_table("ota_jobs")
    op.drop_table("ota_campaigns")
    op.drop_table("ota_sequences")
    op.drop_table("ota_sims")
