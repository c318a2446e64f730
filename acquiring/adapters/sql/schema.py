"""Tables of the capture store (SQLAlchemy Core). The migrations in ``migrations/versions``
create exactly these (a test compares them); change both together, through a new revision.

Conventions: money BIGINT fen, rates INTEGER bp, instants in UTC (``UtcDateTime``), business
dates DATE, small binary identifiers (TAC, PSAM terminal ID, card random) as upper-case hex
text so SQL reports can show them, keys as AES-GCM ciphertext (``*_ct``, see keyvault.py).
The views for clearing are in ``views.py`` (documented in docs/clearing-view.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
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


class UtcDateTime(TypeDecorator[datetime]):
    """An aware instant stored in UTC (``timestamptz`` on PostgreSQL; ISO text without offset
    on SQLite) and always read back as an aware UTC datetime. Naive values are refused."""

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


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


KINDS: Final = ("purchase", "load", "refund")
REASONS: Final = ("98", "A0", "06")

partners = Table(
    "partners",
    metadata,
    Column("partner_id", String(32), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("status", String(16), nullable=False),
    CheckConstraint(_in("status", ("active", "inactive")), name="status"),
)

partner_contracts = Table(
    "partner_contracts",
    metadata,
    Column("contract_id", Id, primary_key=True, autoincrement=True),
    Column("partner_id", String(32), ForeignKey("partners.partner_id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date),
    Column("share_bp", Integer),
    Column("expansion_fee_fen", BigInteger),
    Column("retention_days", Integer),
    Column("monthly_fee_fen", BigInteger),
    UniqueConstraint("partner_id", "kind", "effective_from"),
    CheckConstraint("effective_to IS NULL OR effective_to > effective_from", name="period"),
    CheckConstraint(
        "(kind = 'signing' AND share_bp BETWEEN 0 AND 10000"
        " AND expansion_fee_fen BETWEEN 20000 AND 200000 AND retention_days >= 0"
        " AND monthly_fee_fen IS NULL)"
        " OR (kind = 'maintenance' AND monthly_fee_fen >= 0 AND share_bp IS NULL"
        " AND expansion_fee_fen IS NULL AND retention_days IS NULL)",
        name="terms",
    ),
)

merchants = Table(
    "merchants",
    metadata,
    Column("merchant_id", String(15), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("mcc", String(4), nullable=False),
    Column("acquirer_id", String(32), nullable=False),
    Column("onboarded_on", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("signing_partner_id", String(32), ForeignKey("partners.partner_id")),
    Column("daily_limit_fen", BigInteger),
    CheckConstraint("length(merchant_id) = 15", name="merchant_id"),
    CheckConstraint(_in("status", ("active", "suspended", "closed")), name="status"),
    CheckConstraint("daily_limit_fen IS NULL OR daily_limit_fen > 0", name="daily_limit"),
)

terminals = Table(
    "terminals",
    metadata,
    Column("terminal_id", String(8), primary_key=True),
    Column("merchant_id", String(15), ForeignKey("merchants.merchant_id"), nullable=False),
    Column("deployed_on", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("maintaining_partner_id", String(32), ForeignKey("partners.partner_id")),
    Column("batch_no", Integer, nullable=False),
    Column("returned_on", Date),  # revision 0002: the day the terminal came back (deposit)
    Column("signed_on", Boolean, nullable=False),
    Column("signed_on_at", UtcDateTime),
    Column("tmk_ct", LargeBinary, nullable=False),
    Column("mak_ct", LargeBinary),
    CheckConstraint("length(terminal_id) = 8", name="terminal_id"),
    CheckConstraint(_in("status", ("active", "suspended", "returned")), name="status"),
    CheckConstraint("batch_no BETWEEN 1 AND 999999", name="batch_no"),
    Index(None, "merchant_id"),
)

issuers = Table(
    "issuers",
    metadata,
    Column("issuer_id", String(32), primary_key=True),
    Column("name", String(80), nullable=False),
)

issuer_keys = Table(
    "issuer_keys",
    metadata,
    Column("issuer_id", String(32), ForeignKey("issuers.issuer_id"), primary_key=True),
    Column("key_version", Integer, primary_key=True),
    Column("keys_ct", LargeBinary, nullable=False),
    CheckConstraint("key_version BETWEEN 0 AND 255", name="key_version"),
)

cards = Table(
    "cards",
    metadata,
    Column("asn", String(16), primary_key=True),
    Column("issuer_id", String(32), ForeignKey("issuers.issuer_id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("daily_amount_limit_fen", BigInteger, nullable=False),
    Column("daily_count_limit", Integer, nullable=False),
    CheckConstraint("length(asn) = 16", name="asn"),
    CheckConstraint(_in("status", ("active", "hot")), name="status"),
    CheckConstraint("daily_amount_limit_fen >= 0 AND daily_count_limit >= 0", name="limits"),
)

commission_rules = Table(
    "commission_rules",
    metadata,
    Column("rule_id", Id, primary_key=True, autoincrement=True),
    Column("merchant_id", String(15), ForeignKey("merchants.merchant_id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date),
    Column("rate_bp", Integer),
    Column("min_fen", BigInteger),
    Column("max_fen", BigInteger),
    Column("fee_fen", BigInteger),
    Column("user_bp", Integer),
    Column("settle_bp", Integer),
    UniqueConstraint("merchant_id", "version"),
    CheckConstraint("version >= 1", name="version"),
    CheckConstraint("effective_to IS NULL OR effective_to > effective_from", name="period"),
    CheckConstraint(
        "(kind = 'percent' AND rate_bp BETWEEN 0 AND 10000"
        " AND (min_fen IS NULL OR min_fen >= 0) AND (max_fen IS NULL OR max_fen >= 0)"
        " AND (min_fen IS NULL OR max_fen IS NULL OR min_fen <= max_fen)"
        " AND fee_fen IS NULL AND user_bp IS NULL AND settle_bp IS NULL)"
        " OR (kind = 'fixed' AND fee_fen >= 0 AND rate_bp IS NULL AND min_fen IS NULL"
        " AND max_fen IS NULL AND user_bp IS NULL AND settle_bp IS NULL)"
        " OR (kind = 'discount' AND user_bp BETWEEN 1 AND 10000"
        " AND settle_bp BETWEEN 0 AND user_bp"
        " AND (user_bp - settle_bp) * 10000 = rate_bp * user_bp"
        " AND min_fen IS NULL AND max_fen IS NULL AND fee_fen IS NULL)"
        " OR (kind = 'zero' AND rate_bp IS NULL AND min_fen IS NULL AND max_fen IS NULL"
        " AND fee_fen IS NULL AND user_bp IS NULL AND settle_bp IS NULL)",
        name="terms",
    ),
)

authorisations = Table(
    "authorisations",
    metadata,
    Column("txn_id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("terminal_id", String(8), ForeignKey("terminals.terminal_id"), nullable=False),
    Column("merchant_id", String(15), ForeignKey("merchants.merchant_id"), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("stan", Integer, nullable=False),
    Column("asn", String(16), nullable=False),  # declines of unknown cards are kept too
    Column("amount_fen", BigInteger, nullable=False),
    Column("rrn", String(12), nullable=False, unique=True),
    Column("auth_code", String(6)),
    Column("response_code", String(2), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("card_counter", Integer, nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("psam_terminal_id", String(12), nullable=False),
    Column("balance_before_fen", BigInteger, nullable=False),
    Column("card_random", String(8)),
    Column("original_rrn", String(12)),
    UniqueConstraint("terminal_id", "batch_no", "stan"),
    CheckConstraint(_in("kind", KINDS), name="kind"),
    CheckConstraint("amount_fen BETWEEN 0 AND 999999999999", name="amount"),
    CheckConstraint(
        "response_code <> '00' OR (auth_code IS NOT NULL AND amount_fen >= 1"
        " AND amount_fen <= CASE WHEN kind = 'load' THEN 100000 ELSE 49999 END)",
        name="approved_amount",
    ),
    CheckConstraint("response_code = '00' OR auth_code IS NULL", name="auth_code"),
    CheckConstraint(
        "kind = 'refund' OR original_rrn IS NULL", name="original_rrn_only_for_refunds"
    ),
    CheckConstraint("batch_no BETWEEN 1 AND 999999 AND stan BETWEEN 1 AND 999999", name="key"),
    CheckConstraint(
        "card_counter BETWEEN 0 AND 65535 AND key_version BETWEEN 0 AND 255", name="card"
    ),
    Index(None, "asn", "business_date"),
    Index(None, "merchant_id", "business_date"),
    Index(None, "business_date"),
    Index(None, "original_rrn"),
)

completions = Table(
    "completions",
    metadata,
    Column("txn_id", Id, ForeignKey("authorisations.txn_id"), primary_key=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("tac", String(8), nullable=False),
    Column("tac_verdict", String(4), nullable=False),
    Column("card_counter", Integer, nullable=False),
    Column("psam_serial", BigInteger, nullable=False),
    Column("terminal_datetime", DateTime(timezone=False), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    CheckConstraint("amount_fen BETWEEN 1 AND 999999999999", name="amount"),
    CheckConstraint(_in("tac_verdict", ("ok", "bad")), name="tac_verdict"),
    CheckConstraint("card_counter BETWEEN 0 AND 65535", name="card_counter"),
)

reversals = Table(
    "reversals",
    metadata,
    Column("txn_id", Id, ForeignKey("authorisations.txn_id"), primary_key=True),
    Column("reason_code", String(2), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    CheckConstraint(_in("reason_code", REASONS), name="reason_code"),
)

batch_uploads = Table(
    "batch_uploads",
    metadata,
    Column("upload_id", Id, primary_key=True, autoincrement=True),
    Column("terminal_id", String(8), ForeignKey("terminals.terminal_id"), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("stan", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("asn", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("rrn", String(12), nullable=False),
    Column("tac", String(8), nullable=False),
    Column("card_counter", Integer, nullable=False),
    Column("psam_serial", BigInteger, nullable=False),
    Column("terminal_datetime", DateTime(timezone=False), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    UniqueConstraint("terminal_id", "batch_no", "stan"),
    CheckConstraint(_in("kind", KINDS), name="kind"),
    CheckConstraint("amount_fen BETWEEN 0 AND 999999999999", name="amount"),
)

_TOTALS = (
    "purchase_amount_fen",
    "purchase_count",
    "refund_amount_fen",
    "refund_count",
    "load_amount_fen",
    "load_count",
)

terminal_settlements = Table(
    "terminal_settlements",
    metadata,
    Column("settlement_id", Id, primary_key=True, autoincrement=True),
    Column("terminal_id", String(8), ForeignKey("terminals.terminal_id"), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("business_date", Date, nullable=False),
    Column("settled_at", UtcDateTime, nullable=False),
    *(Column(f"terminal_{n}", BigInteger, nullable=False) for n in _TOTALS),
    *(Column(f"host_{n}", BigInteger, nullable=False) for n in _TOTALS),
    Column("first_half_balanced", Boolean, nullable=False),
    Column("second_half_balanced", Boolean, nullable=False),
    UniqueConstraint("terminal_id", "batch_no"),
)

exchanges = Table(
    "exchanges",
    metadata,
    Column("terminal_id", String(8), primary_key=True),
    Column("batch_no", Integer, primary_key=True),
    Column("stan", Integer, primary_key=True),
    Column("mti", String(4), primary_key=True),
    Column("request_digest", LargeBinary, nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("length(response) BETWEEN 1 AND 2048", name="response"),
)

#: SQLite's RRN counter (one row); PostgreSQL uses the sequence ``rrn_seq`` instead.
rrn_counter = Table(
    "rrn_counter",
    metadata,
    Column("counter_id", Integer, primary_key=True, autoincrement=False),
    Column("last_value", BigInteger, nullable=False),
    CheckConstraint("counter_id = 1", name="single_row"),
)

#: Store-wide values; ``vault_check`` proves the vault key is the one the keys were stored under.
store_meta = Table(
    "store_meta",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

RRN_SEQUENCE: Final = "rrn_seq"
