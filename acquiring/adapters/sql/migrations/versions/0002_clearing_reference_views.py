"""Reference views for clearing (docs/clearing-view.md, version 2): merchants, terminals,
commission rules (every version) and partner contracts; and ``terminals.returned_on``, the day
a POS terminal came back (its deposit is netted back to the merchant on that day).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from acquiring.adapters.sql.views import (
    CLEARING_COMMISSION_RULES_V1,
    CLEARING_MERCHANTS_V1,
    CLEARING_PARTNER_CONTRACTS_V1,
    CLEARING_TERMINALS_V1,
)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

VIEWS = (
    "clearing_merchants",
    "clearing_terminals",
    "clearing_commission_rules",
    "clearing_partner_contracts",
)


def upgrade() -> None:
    op.add_column("terminals", sa.Column("returned_on", sa.Date(), nullable=True))
    op.execute(CLEARING_MERCHANTS_V1)
    op.execute(CLEARING_TERMINALS_V1)
    op.execute(CLEARING_COMMISSION_RULES_V1)
    op.execute(CLEARING_PARTNER_CONTRACTS_V1)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    with op.batch_alter_table("terminals") as batch:
        batch.drop_column("returned_on")
