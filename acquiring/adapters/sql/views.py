"""The read-only views clearing reads (documented column by column in docs/clearing-view.md).
Portable SQL: the same text runs on SQLite and PostgreSQL. A migration creates each view from
the text of its revision; the ``Table`` objects here only describe them for SELECTs (they live
in their own MetaData, so ``create_all`` never tries to create them as tables).

Never edit a ``*_V1`` text (revision 0001 runs it): changing a view means a ``*_V2`` text, a new
revision that drops and re-creates the view, and a docs update; clearing depends on the names.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import BigInteger, Column, Date, DateTime, Integer, MetaData, String, Table

from acquiring.adapters.sql.schema import UtcDateTime

CLEARING_TRANSACTIONS_V1: Final = """
CREATE VIEW clearing_transactions AS
SELECT
    a.txn_id                AS txn_id,
    a.kind                  AS kind,
    a.terminal_id           AS terminal_id,
    a.merchant_id           AS merchant_id,
    m.acquirer_id           AS acquirer_id,
    c.issuer_id             AS issuer_id,
    a.batch_no              AS batch_no,
    a.stan                  AS stan,
    a.rrn                   AS rrn,
    a.original_rrn          AS original_rrn,
    a.asn                   AS asn,
    a.amount_fen            AS auth_amount_fen,
    a.business_date         AS business_date,
    a.received_at           AS authorised_at,
    a.card_counter          AS card_counter,
    a.card_counter + 1      AS txn_counter,
    CASE WHEN a.kind = 'purchase' THEN 'offline' ELSE 'online' END AS counter_kind,
    a.key_version           AS key_version,
    a.psam_terminal_id      AS psam_terminal_id,
    CASE
        WHEN r.txn_id IS NOT NULL THEN 'reversed'
        WHEN k.txn_id IS NOT NULL THEN 'completed'
        ELSE 'authorised'
    END                     AS state,
    k.amount_fen            AS completion_amount_fen,
    k.tac                   AS tac,
    k.tac_verdict           AS tac_verdict,
    k.card_counter          AS completion_card_counter,
    k.psam_serial           AS psam_serial,
    k.terminal_datetime     AS terminal_datetime,
    k.received_at           AS completed_at,
    r.reason_code           AS reversal_reason,
    r.received_at           AS reversed_at,
    m.signing_partner_id    AS signing_partner_id,
    t.maintaining_partner_id AS maintaining_partner_id
FROM authorisations a
JOIN merchants m ON m.merchant_id = a.merchant_id
JOIN terminals t ON t.terminal_id = a.terminal_id
LEFT JOIN cards c ON c.asn = a.asn
LEFT JOIN completions k ON k.txn_id = a.txn_id
LEFT JOIN reversals r ON r.txn_id = a.txn_id
WHERE a.response_code = '00'
"""

CLEARING_BATCH_UPLOADS_V1: Final = """
CREATE VIEW clearing_batch_uploads AS
SELECT
    u.terminal_id       AS terminal_id,
    u.batch_no          AS batch_no,
    u.stan              AS stan,
    u.kind              AS kind,
    u.asn               AS asn,
    u.amount_fen        AS amount_fen,
    u.rrn               AS rrn,
    u.tac               AS tac,
    u.card_counter      AS card_counter,
    u.psam_serial       AS psam_serial,
    u.terminal_datetime AS terminal_datetime,
    u.received_at       AS uploaded_at
FROM batch_uploads u
"""

CLEARING_TERMINAL_SETTLEMENTS_V1: Final = """
CREATE VIEW clearing_terminal_settlements AS
SELECT
    s.terminal_id                   AS terminal_id,
    s.batch_no                      AS batch_no,
    s.business_date                 AS business_date,
    s.settled_at                    AS settled_at,
    s.terminal_purchase_amount_fen  AS terminal_purchase_amount_fen,
    s.terminal_purchase_count       AS terminal_purchase_count,
    s.terminal_refund_amount_fen    AS terminal_refund_amount_fen,
    s.terminal_refund_count         AS terminal_refund_count,
    s.terminal_load_amount_fen      AS terminal_load_amount_fen,
    s.terminal_load_count           AS terminal_load_count,
    s.host_purchase_amount_fen      AS host_purchase_amount_fen,
    s.host_purchase_count           AS host_purchase_count,
    s.host_refund_amount_fen        AS host_refund_amount_fen,
    s.host_refund_count             AS host_refund_count,
    s.host_load_amount_fen          AS host_load_amount_fen,
    s.host_load_count               AS host_load_count,
    CASE WHEN s.first_half_balanced AND s.second_half_balanced THEN 'balanced'
         ELSE 'unbalanced' END      AS verdict
FROM terminal_settlements s
"""

#: Revision 0002: the reference data clearing needs (docs/clearing-view.md, version 2).
CLEARING_MERCHANTS_V1: Final = """
CREATE VIEW clearing_merchants AS
SELECT
    m.merchant_id        AS merchant_id,
    m.acquirer_id        AS acquirer_id,
    m.onboarded_on       AS onboarded_on,
    m.status             AS status,
    m.signing_partner_id AS signing_partner_id
FROM merchants m
"""

CLEARING_TERMINALS_V1: Final = """
CREATE VIEW clearing_terminals AS
SELECT
    t.terminal_id            AS terminal_id,
    t.merchant_id            AS merchant_id,
    t.deployed_on            AS deployed_on,
    t.returned_on            AS returned_on,
    t.status                 AS status,
    t.maintaining_partner_id AS maintaining_partner_id
FROM terminals t
"""

CLEARING_COMMISSION_RULES_V1: Final = """
CREATE VIEW clearing_commission_rules AS
SELECT
    r.merchant_id    AS merchant_id,
    r.version        AS version,
    r.kind           AS kind,
    r.effective_from AS effective_from,
    r.effective_to   AS effective_to,
    r.rate_bp        AS rate_bp,
    r.min_fen        AS min_fen,
    r.max_fen        AS max_fen,
    r.fee_fen        AS fee_fen,
    r.user_bp        AS user_bp,
    r.settle_bp      AS settle_bp
FROM commission_rules r
"""

CLEARING_PARTNER_CONTRACTS_V1: Final = """
CREATE VIEW clearing_partner_contracts AS
SELECT
    c.contract_id       AS contract_id,
    c.partner_id        AS partner_id,
    p.status            AS partner_status,
    c.kind              AS kind,
    c.effective_from    AS effective_from,
    c.effective_to      AS effective_to,
    c.share_bp          AS share_bp,
    c.expansion_fee_fen AS expansion_fee_fen,
    c.retention_days    AS retention_days,
    c.monthly_fee_fen   AS monthly_fee_fen
FROM partner_contracts c
JOIN partners p ON p.partner_id = c.partner_id
"""

REFERENCE_VIEW_NAMES: Final = (
    "clearing_merchants",
    "clearing_terminals",
    "clearing_commission_rules",
    "clearing_partner_contracts",
)

VIEW_NAMES: Final = (
    "clearing_transactions",
    "clearing_batch_uploads",
    "clearing_terminal_settlements",
    *REFERENCE_VIEW_NAMES,
)

view_metadata = MetaData()

clearing_transactions = Table(
    "clearing_transactions",
    view_metadata,
    Column("txn_id", BigInteger),
    Column("kind", String(8)),
    Column("terminal_id", String(8)),
    Column("merchant_id", String(15)),
    Column("acquirer_id", String(32)),
    Column("issuer_id", String(32)),
    Column("batch_no", Integer),
    Column("stan", Integer),
    Column("rrn", String(12)),
    Column("original_rrn", String(12)),
    Column("asn", String(16)),
    Column("auth_amount_fen", BigInteger),
    Column("business_date", Date),
    Column("authorised_at", UtcDateTime),
    Column("card_counter", Integer),
    Column("txn_counter", Integer),
    Column("counter_kind", String(8)),
    Column("key_version", Integer),
    Column("psam_terminal_id", String(12)),
    Column("state", String(10)),
    Column("completion_amount_fen", BigInteger),
    Column("tac", String(8)),
    Column("tac_verdict", String(4)),
    Column("completion_card_counter", Integer),
    Column("psam_serial", BigInteger),
    Column("terminal_datetime", DateTime(timezone=False)),
    Column("completed_at", UtcDateTime),
    Column("reversal_reason", String(2)),
    Column("reversed_at", UtcDateTime),
    Column("signing_partner_id", String(32)),
    Column("maintaining_partner_id", String(32)),
)
