# ruff: noqa: S608 - every statement is composed from this module's constants; values are bound
"""The clearing run in SQL: each stage is one (or a few) INSERT ... SELECT over the host's
read-only views (docs/clearing-view.md) and clearing's own ``clr_*`` tables, with the integer
formulas of clearing.md. The same text runs on SQLite and PostgreSQL: integer ``/`` (all
numerators are non-negative where it is used), ``CASE`` instead of LEAST/GREATEST, window
functions, ``||`` and ``CAST(... AS VARCHAR(20))``.

One ``SqlRunUnit`` is one database transaction: SQLite ``BEGIN IMMEDIATE`` (the write lock is
the run lock); PostgreSQL REPEATABLE READ (every stage sees one snapshot of the host's data)
with ``pg_try_advisory_xact_lock`` on the business date (a second run of the date is refused
at once; the lock dies with the transaction, so a killed run leaves nothing behind).

Everything is "as of the cut-off": a completion, reversal, batch upload or 0500 received after
``cutoff`` (Asia/Shanghai, on the day after the business date) does not count yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Date, Engine, bindparam, select, text
from sqlalchemy.exc import OperationalError

from clearing.adapters.sql import schema as s
from clearing.adapters.sql.engine import make_engine
from clearing.adapters.sql.migrate import upgrade
from clearing.domain.files import (
    ExceptionFileRow,
    MerchantSettlementRow,
    PartnerStatementRow,
    PartySettlementRow,
)
from clearing.domain.partners import month_end
from clearing.domain.reconciliation import ExceptionCode, effect_label
from clearing.domain.tac import CompletionProof
from clearing.ports import (
    GroupFlows,
    GroupShares,
    PartnerFeeLine,
    RefContract,
    ReferenceData,
    RefMerchant,
    RefTerminal,
    ReleaseKey,
    RunCounts,
    RunKind,
    RunOptions,
    RunRecord,
    RunRefused,
)

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
#: Namespace of the PostgreSQL advisory lock of a business date ("clr").
LOCK_NAMESPACE: Final = 0x00_636C_72
POS_DEPOSIT_FEN: Final = 100_000
PURCHASE_MAX_FEN: Final = 49_999
LOAD_MAX_FEN: Final = 100_000
#: PostgreSQL: memory per sort / hash of the run's transaction (the counter windows and the
#: aggregates sort the whole day).
PG_WORK_MEM: Final = "128MB"
#: SQLite: the run connection's page caches (KiB, as a negative cache_size), main and temp
#: (both bounded: the peak memory of a run stays well under 1 GiB at any size).
SQLITE_CACHE_KIB: Final = 262_144
SQLITE_TEMP_CACHE_KIB: Final = 131_072

_DATE_PARAMS: Final = ("d", "next_d", "month_first", "month_last")
_INSTANT_PARAMS: Final = ("cutoff",)


def cutoff_instant(business_date: date, cutoff: time) -> datetime:
    """The UTC instant of ``cutoff`` (Asia/Shanghai) on the day after ``business_date``."""
    local = datetime.combine(business_date + timedelta(days=1), cutoff, tzinfo=SHANGHAI)
    return local.astimezone(UTC)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _opt_date(value: Any) -> date | None:
    return None if value is None else _as_date(value)


# --- the input: the day's transactions, and the ones carried into it -------------------------

#: One row per transaction of the run's input, with its state as of the cut-off.
_INPUT = """
SELECT t.txn_id, t.business_date, t.kind, t.merchant_id, t.terminal_id, t.batch_no, t.stan,
       t.rrn, t.original_rrn, t.asn, COALESCE(t.issuer_id, 'UNKNOWN') AS issuer_id,
       t.acquirer_id, t.auth_amount_fen, t.completion_amount_fen, t.tac_verdict,
       t.txn_counter, t.counter_kind,
       CASE WHEN t.reversed_at IS NOT NULL AND t.reversed_at <= :cutoff THEN 'reversed'
            WHEN t.completed_at IS NOT NULL AND t.completed_at <= :cutoff THEN 'completed'
            ELSE 'authorised' END AS st
FROM clearing_transactions t
WHERE t.business_date = :d
UNION ALL
SELECT t.txn_id, t.business_date, t.kind, t.merchant_id, t.terminal_id, t.batch_no, t.stan,
       t.rrn, t.original_rrn, t.asn, COALESCE(t.issuer_id, 'UNKNOWN') AS issuer_id,
       t.acquirer_id, t.auth_amount_fen, t.completion_amount_fen, t.tac_verdict,
       t.txn_counter, t.counter_kind,
       CASE WHEN t.reversed_at IS NOT NULL AND t.reversed_at <= :cutoff THEN 'reversed'
            WHEN t.completed_at IS NOT NULL AND t.completed_at <= :cutoff THEN 'completed'
            ELSE 'authorised' END AS st
FROM clr_carried c
JOIN clearing_transactions t ON t.txn_id = c.txn_id
WHERE c.to_date = :d AND t.business_date <> :d
"""

#: The run's input is read from the views once, into this temporary table (only the columns
#: the stages need, in txn_id order as the view gives them); every stage and the fingerprint
#: then read the staged rows. SQLite: a TEMP table (dropped before the run commits);
#: PostgreSQL: TEMP ... ON COMMIT DROP, ANALYZEd so that the planner knows its size.
INPUT_TABLE: Final = "clr_input"

_INPUT_COLUMNS: Final = (
    ("txn_id", "BIGINT NOT NULL"),
    ("business_date", "DATE NOT NULL"),
    ("kind", "VARCHAR(8) NOT NULL"),
    ("merchant_id", "VARCHAR(15) NOT NULL"),
    ("terminal_id", "VARCHAR(8) NOT NULL"),
    ("batch_no", "INTEGER NOT NULL"),
    ("stan", "INTEGER NOT NULL"),
    ("rrn", "VARCHAR(12) NOT NULL"),
    ("original_rrn", "VARCHAR(12)"),
    ("asn", "VARCHAR(16) NOT NULL"),
    ("issuer_id", "VARCHAR(32) NOT NULL"),
    ("acquirer_id", "VARCHAR(32) NOT NULL"),
    ("auth_amount_fen", "BIGINT NOT NULL"),
    ("completion_amount_fen", "BIGINT"),
    ("tac_verdict", "VARCHAR(4)"),
    ("txn_counter", "INTEGER NOT NULL"),
    ("counter_kind", "VARCHAR(8) NOT NULL"),
    ("st", "VARCHAR(10) NOT NULL"),
)
#: PostgreSQL: the parameters of a utility statement cannot be bound, so the table is created
#: empty and filled by INSERT ... SELECT (one statement on both databases).
_CREATE_INPUT: Final = (
    f"CREATE TEMP TABLE {INPUT_TABLE} ("
    + ", ".join(f"{name} {kind}" for name, kind in _INPUT_COLUMNS)
    + ")"
)
_FILL_INPUT: Final = (
    f"INSERT INTO {INPUT_TABLE} ({', '.join(name for name, _ in _INPUT_COLUMNS)}) {_INPUT}"
)

#: The input's (merchant, terminal, batch) keys, one pass: the merchants and the own date's
#: batches the fingerprint and the TERMINAL_ONLY check ask for (few rows).
KEYS_TABLE: Final = "clr_input_keys"
_CREATE_KEYS: Final = f"""CREATE TEMP TABLE {KEYS_TABLE} (
    merchant_id VARCHAR(15) NOT NULL, terminal_id VARCHAR(8) NOT NULL,
    batch_no INTEGER NOT NULL, own_date INTEGER NOT NULL)"""
_FILL_KEYS: Final = f"""
INSERT INTO {KEYS_TABLE} (merchant_id, terminal_id, batch_no, own_date)
SELECT merchant_id, terminal_id, batch_no,
       MAX(CASE WHEN business_date = :d THEN 1 ELSE 0 END)
FROM {INPUT_TABLE} GROUP BY merchant_id, terminal_id, batch_no
"""
#: SQLite sorts the whole input for a GROUP BY (PostgreSQL hashes): there the few keys are
#: collected in a keyed table instead, one b-tree probe per row (own date's rows first).
_CREATE_KEYS_SQLITE: Final = f"""CREATE TEMP TABLE {KEYS_TABLE} (
    merchant_id VARCHAR(15) NOT NULL, terminal_id VARCHAR(8) NOT NULL,
    batch_no INTEGER NOT NULL, own_date INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, batch_no)) WITHOUT ROWID"""
_FILL_KEYS_SQLITE: Final = tuple(
    f"""INSERT OR IGNORE INTO {KEYS_TABLE} (merchant_id, terminal_id, batch_no, own_date)
SELECT merchant_id, terminal_id, batch_no, {own} FROM {INPUT_TABLE}
WHERE business_date {op} :d"""
    for own, op in ((1, "="), (0, "<>"))
)

#: The merchants of the run's input.
_INPUT_MERCHANTS = f"SELECT DISTINCT merchant_id FROM {KEYS_TABLE}"

#: The input with the reconciliation flags (clearing.md §5) and the run's effect per row.
_CLASSIFIED = f"""
SELECT x.*,
       CASE WHEN x.over_limit = 1 THEN 'rejected'
            WHEN x.st = 'reversed' THEN 'reversed'
            WHEN x.st = 'authorised' THEN 'carried'
            WHEN x.tac_invalid = 1 OR x.amount_mismatch = 1
                 OR x.counter_code = 'COUNTER_DUPLICATE' THEN 'held'
            ELSE 'settled' END AS effect
FROM (
    SELECT i.*,
           CASE WHEN i.st = 'completed' THEN i.completion_amount_fen
                ELSE i.auth_amount_fen END AS amount_fen,
           u.amount_fen AS upload_amount_fen,
           CASE WHEN (CASE WHEN i.st = 'completed' AND i.completion_amount_fen > i.auth_amount_fen
                           THEN i.completion_amount_fen ELSE i.auth_amount_fen END)
                     > (CASE WHEN i.kind = 'load' THEN {LOAD_MAX_FEN} ELSE {PURCHASE_MAX_FEN} END)
                THEN 1 ELSE 0 END AS over_limit,
           CASE WHEN i.st = 'authorised' THEN 1 ELSE 0 END AS no_completion,
           CASE WHEN i.st = 'completed' AND (i.tac_verdict IS NULL OR i.tac_verdict <> 'ok')
                THEN 1 ELSE 0 END AS tac_invalid,
           CASE WHEN i.st = 'completed' AND (i.completion_amount_fen <> i.auth_amount_fen
                     OR (u.amount_fen IS NOT NULL AND u.amount_fen <> i.completion_amount_fen))
                THEN 1 ELSE 0 END AS amount_mismatch,
           CASE WHEN i.st = 'completed' AND u.rrn IS NULL AND EXISTS (
                    SELECT 1 FROM clearing_batch_uploads b
                    WHERE b.terminal_id = i.terminal_id AND b.batch_no = i.batch_no
                      AND b.uploaded_at <= :cutoff)
                THEN 1 ELSE 0 END AS host_only,
           CASE WHEN i.st = 'completed' THEN f.code END AS counter_code
    FROM clr_input i
    LEFT JOIN clearing_batch_uploads u
           ON u.terminal_id = i.terminal_id AND u.batch_no = i.batch_no AND u.stan = i.stan
          AND u.rrn = i.rrn AND u.uploaded_at <= :cutoff
    LEFT JOIN clr_counter_flags f ON f.run_id = :run_id AND f.txn_id = i.txn_id
) x
"""

_DETAIL_COLUMNS = """run_id, txn_id, cleared_on, business_date, kind, merchant_id, terminal_id,
batch_no, stan, rrn, original_rrn, asn, issuer_id, acquirer_id, state, auth_amount_fen,
amount_fen, upload_amount_fen, commission_fen, rule_version, over_limit, no_completion,
tac_invalid, amount_mismatch, host_only, counter_code, effect"""


def _commission_sql(amount: str) -> str:
    """clearing.md §2 in SQL: half up, then min, max and the amount cap (``r`` is the rule)."""
    p = f"(({amount} * r.rate_bp + 5000) / 10000)"
    c1 = f"(CASE WHEN r.min_fen IS NOT NULL AND {p} < r.min_fen THEN r.min_fen ELSE {p} END)"
    c2 = f"(CASE WHEN r.max_fen IS NOT NULL AND {c1} > r.max_fen THEN r.max_fen ELSE {c1} END)"
    c3 = f"(CASE WHEN {c2} > {amount} THEN {amount} ELSE {c2} END)"
    fixed = f"(CASE WHEN r.fee_fen < {amount} THEN r.fee_fen ELSE {amount} END)"
    return (
        f"COALESCE(CASE r.kind WHEN 'zero' THEN 0 WHEN 'fixed' THEN {fixed} "
        f"WHEN 'percent' THEN {c3} WHEN 'discount' THEN {c3} END, 0)"
    )


_STAGE_RULES = """
INSERT INTO clr_rules_used (run_id, merchant_id, version, kind, rate_bp, min_fen, max_fen,
                            fee_fen)
SELECT :run_id, merchant_id, version, kind, rate_bp, min_fen, max_fen, fee_fen
FROM (
    SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.merchant_id ORDER BY r.version DESC) AS n
    FROM clearing_commission_rules r
    WHERE r.effective_from <= :d AND (r.effective_to IS NULL OR r.effective_to > :d)
) ranked
WHERE n = 1
"""

#: COUNTER_DUPLICATE / COUNTER_GAP per (ASN, counter kind) over the day's own transactions
#: (clearing.reconciliation.counter_exceptions in SQL); ``last_seen`` is the highest counter
#: of the card on earlier business dates.
_STAGE_COUNTERS = """
INSERT INTO clr_counter_flags (run_id, txn_id, code)
SELECT :run_id, txn_id, CASE WHEN dup = 1 THEN 'COUNTER_DUPLICATE' ELSE 'COUNTER_GAP' END
FROM (
    SELECT w.txn_id,
           CASE WHEN w.st = 'completed' AND (w.same_completed > 1
                     OR (w.last_seen IS NOT NULL AND w.txn_counter <= w.last_seen))
                THEN 1 ELSE 0 END AS dup,
           CASE WHEN w.st = 'completed' AND w.prev IS NOT NULL AND w.txn_counter > w.prev + 1
                THEN 1 ELSE 0 END AS gap
    FROM (
    SELECT v.*,
           CASE WHEN v.prev_max IS NULL THEN v.last_seen
                WHEN v.last_seen IS NULL OR v.prev_max > v.last_seen THEN v.prev_max
                ELSE v.last_seen END AS prev
    FROM (
        SELECT d.txn_id, d.st, d.txn_counter, ls.last_seen,
               SUM(CASE WHEN d.st = 'completed' THEN 1 ELSE 0 END)
                   OVER (PARTITION BY d.asn, d.counter_kind, d.txn_counter) AS same_completed,
               LAG(d.txn_counter) OVER (
                   PARTITION BY d.asn, d.counter_kind
                   ORDER BY d.txn_counter, d.terminal_id, d.batch_no, d.stan) AS prev_max
        FROM clr_input d
        LEFT JOIN (
            SELECT e.asn, e.counter_kind, MAX(e.txn_counter) AS last_seen
            FROM clearing_transactions e
            WHERE e.business_date < :d
              AND e.asn IN (SELECT t2.asn FROM clr_input t2 WHERE t2.business_date = :d)
            GROUP BY e.asn, e.counter_kind
        ) ls ON ls.asn = d.asn AND ls.counter_kind = d.counter_kind
        WHERE d.business_date = :d
    ) v
    ) w
) f
WHERE dup = 1 OR gap = 1
"""

_STAGE_DETAIL = f"""
INSERT INTO clr_detail ({_DETAIL_COLUMNS})
SELECT :run_id, c.txn_id, :d, c.business_date, c.kind, c.merchant_id, c.terminal_id,
       c.batch_no, c.stan, c.rrn, c.original_rrn, c.asn, c.issuer_id, c.acquirer_id, c.st,
       c.auth_amount_fen, c.amount_fen, c.upload_amount_fen,
       CASE WHEN c.kind = 'purchase' THEN {_commission_sql("c.amount_fen")} ELSE 0 END,
       CASE WHEN c.kind = 'purchase' THEN r.version END,
       c.over_limit, c.no_completion, c.tac_invalid, c.amount_mismatch, c.host_only,
       c.counter_code, c.effect
FROM ({_CLASSIFIED}) c
LEFT JOIN clr_rules_used r ON r.run_id = :run_id AND r.merchant_id = c.merchant_id
WHERE c.kind <> 'refund'
"""

#: Refunds: (2 x c x r + a) // (2 x a) each, capped so that the cumulative returned commission
#: never passes c, and the refund that completes the original returns what is left. In
#: cumulative form (equal to the sequential rule): R_i = c when the refunds so far reach a,
#: else min(c, returned before + sum of the proportional returns so far); returned_i =
#: R_i - R_(i-1).
_STAGE_REFUNDS = f"""
INSERT INTO clr_detail ({_DETAIL_COLUMNS})
SELECT :run_id, z.txn_id, :d, z.business_date, z.kind, z.merchant_id, z.terminal_id,
       z.batch_no, z.stan, z.rrn, z.original_rrn, z.asn, z.issuer_id, z.acquirer_id, z.st,
       z.auth_amount_fen, z.amount_fen, z.upload_amount_fen,
       CASE WHEN z.effect <> 'settled' OR z.orig_amount IS NULL THEN 0
            ELSE (CASE WHEN z.refunded_prior + z.cum_refund >= z.orig_amount THEN z.orig_c
                       WHEN z.returned_prior + z.cum_prop >= z.orig_c THEN z.orig_c
                       ELSE z.returned_prior + z.cum_prop END)
               - (CASE WHEN z.refunded_prior + z.cum_refund - z.amount_fen >= z.orig_amount
                           THEN z.orig_c
                       WHEN z.returned_prior + z.cum_prop - z.prop >= z.orig_c THEN z.orig_c
                       ELSE z.returned_prior + z.cum_prop - z.prop END)
       END,
       NULL, z.over_limit, z.no_completion, z.tac_invalid, z.amount_mismatch, z.host_only,
       z.counter_code, z.effect
FROM (
    SELECT y.*,
           SUM(y.settled_amount) OVER (PARTITION BY y.original_rrn ORDER BY y.txn_id
                                       ROWS UNBOUNDED PRECEDING) AS cum_refund,
           SUM(y.prop) OVER (PARTITION BY y.original_rrn ORDER BY y.txn_id
                             ROWS UNBOUNDED PRECEDING) AS cum_prop
    FROM (
        SELECT c.*, o.amount_fen AS orig_amount, o.commission_fen AS orig_c,
               COALESCE(p.refunded, 0) AS refunded_prior,
               COALESCE(p.returned, 0) AS returned_prior,
               CASE WHEN c.effect = 'settled' THEN c.amount_fen ELSE 0 END AS settled_amount,
               CASE WHEN c.effect = 'settled' AND o.amount_fen IS NOT NULL
                    THEN (2 * o.commission_fen * c.amount_fen + o.amount_fen)
                         / (2 * o.amount_fen)
                    ELSE 0 END AS prop
        FROM ({_CLASSIFIED}) c
        LEFT JOIN clr_detail o
               ON o.rrn = c.original_rrn AND o.kind = 'purchase' AND o.effect = 'settled'
        LEFT JOIN (
            SELECT original_rrn, SUM(amount_fen) AS refunded, SUM(commission_fen) AS returned
            FROM clr_detail
            WHERE kind = 'refund' AND effect = 'settled' AND run_id <> :run_id
              AND original_rrn IN (SELECT i.original_rrn FROM clr_input i
                                   WHERE i.kind = 'refund')
            GROUP BY original_rrn
        ) p ON p.original_rrn = c.original_rrn
        WHERE c.kind = 'refund'
    ) y
) z
"""


#: clr_detail read through its partial index of flagged rows (SQLite's planner would rather
#: walk the primary key over the whole run: ``_sql`` names the index there).
_FLAGGED_DETAIL: Final = "clr_detail /*flagged*/"
_SQLITE_FLAGGED_DETAIL: Final = "clr_detail INDEXED BY ix_clr_detail_run_id"


def _txn_exception(code: str, condition: str, other: str, reason: str) -> str:
    return f"""
SELECT :run_id, '{code}', terminal_id, batch_no, stan, rrn, asn, auth_amount_fen, {other},
       CAST(:effect_{code.lower()} AS VARCHAR(24)), {reason}
FROM {_FLAGGED_DETAIL} WHERE run_id = :run_id AND {s.FLAGGED} AND {condition}"""


def _n(column: str) -> str:
    return f"CAST({column} AS VARCHAR(20))"


_EXC_COLUMNS = """run_id, code, terminal_id, batch_no, stan, rrn, asn, amount_fen,
other_amount_fen, effect, reason"""

#: The batches a date reports TERMINAL_ONLY for: those settled (0500) that day, and those of
#: the day's transactions that have no 0500 at all.
_BATCHES_OF_DAY = """
SELECT s.terminal_id, s.batch_no FROM clearing_terminal_settlements s
WHERE s.business_date = :d AND s.settled_at <= :cutoff
UNION
SELECT t.terminal_id, t.batch_no FROM clr_input_keys t
WHERE t.own_date = 1 AND NOT EXISTS (
    SELECT 1 FROM clearing_terminal_settlements s2
    WHERE s2.terminal_id = t.terminal_id AND s2.batch_no = t.batch_no)
"""


def _total_mismatch(kind: str) -> str:
    ta, tc = f"s.terminal_{kind}_amount_fen", f"s.terminal_{kind}_count"
    ha, hc = f"s.host_{kind}_amount_fen", f"s.host_{kind}_count"
    reason = (
        f"'{kind}: terminal ' || {_n(tc)} || ' / ' || {_n(ta)} || ' fen, host ' || {_n(hc)}"
        f" || ' / ' || {_n(ha)} || ' fen, difference ' || {_n(f'{ta} - {ha}')} || ' fen'"
    )
    return f"""
SELECT :run_id, 'TERMINAL_TOTAL_MISMATCH', s.terminal_id, s.batch_no, CAST(NULL AS INTEGER), '', '',
       {ta}, {ha},
       CAST(:effect_terminal_total_mismatch AS VARCHAR(24)), {reason}
FROM clearing_terminal_settlements s
WHERE s.business_date = :d AND s.settled_at <= :cutoff AND ({ta} <> {ha} OR {tc} <> {hc})"""


_STAGE_EXCEPTIONS = f"INSERT INTO clr_exceptions ({_EXC_COLUMNS})" + " UNION ALL ".join(
    [
        _txn_exception(
            "OVER_LIMIT",
            "over_limit = 1",
            "CAST(NULL AS BIGINT)",
            "'amount over ' || CASE WHEN kind = 'load' THEN "
            f"'{LOAD_MAX_FEN}' ELSE '{PURCHASE_MAX_FEN}' END || ' fen'",
        ),
        _txn_exception(
            "NO_COMPLETION",
            "over_limit = 0 AND no_completion = 1",
            "CAST(NULL AS BIGINT)",
            "'approved without completion or reversal by cut-off'",
        ),
        _txn_exception(
            "TAC_INVALID",
            "over_limit = 0 AND tac_invalid = 1",
            "CAST(NULL AS BIGINT)",
            "'the host''s TAC verdict is negative'",
        ),
        _txn_exception(
            "AMOUNT_MISMATCH",
            "over_limit = 0 AND amount_mismatch = 1",
            "CASE WHEN amount_fen <> auth_amount_fen OR upload_amount_fen IS NULL "
            "THEN amount_fen ELSE upload_amount_fen END",
            f"'authorised ' || {_n('auth_amount_fen')} || ', completed ' || "
            f"{_n('amount_fen')} || CASE WHEN upload_amount_fen IS NULL THEN '' "
            f"ELSE ', uploaded ' || {_n('upload_amount_fen')} END",
        ),
        _txn_exception(
            "COUNTER_DUPLICATE",
            "over_limit = 0 AND counter_code = 'COUNTER_DUPLICATE'",
            "CAST(NULL AS BIGINT)",
            "CASE WHEN kind = 'purchase' THEN 'offline' ELSE 'online' END || ' counter "
            "' || (SELECT " + _n("t.txn_counter") + " FROM clearing_transactions t "
            "WHERE t.txn_id = clr_detail.txn_id) || ' seen twice'",
        ),
        _txn_exception(
            "COUNTER_GAP",
            "over_limit = 0 AND counter_code = 'COUNTER_GAP'",
            "CAST(NULL AS BIGINT)",
            "CASE WHEN kind = 'purchase' THEN 'offline' ELSE 'online' END || ' counter "
            "' || (SELECT " + _n("t.txn_counter") + " FROM clearing_transactions t "
            "WHERE t.txn_id = clr_detail.txn_id) || ' follows a gap'",
        ),
        _txn_exception(
            "HOST_ONLY",
            "over_limit = 0 AND host_only = 1",
            "CAST(NULL AS BIGINT)",
            "'missing from the terminal''s batch upload'",
        ),
        f"""
SELECT :run_id, 'TERMINAL_ONLY', u.terminal_id, u.batch_no, u.stan, u.rrn, u.asn, u.amount_fen,
       CAST(NULL AS BIGINT), CAST(:effect_terminal_only AS VARCHAR(24)),
       'batch-upload record with no settleable host capture'
FROM clearing_batch_uploads u
JOIN ({_BATCHES_OF_DAY}) b ON b.terminal_id = u.terminal_id AND b.batch_no = u.batch_no
WHERE u.uploaded_at <= :cutoff AND NOT EXISTS (
    SELECT 1 FROM clearing_transactions t
    WHERE t.terminal_id = u.terminal_id AND t.batch_no = u.batch_no AND t.stan = u.stan
      AND t.rrn = u.rrn AND NOT (t.reversed_at IS NOT NULL AND t.reversed_at <= :cutoff))""",
        _total_mismatch("purchase"),
        _total_mismatch("refund"),
        _total_mismatch("load"),
    ]
)

_STAGE_CARRIED = (
    f"""
INSERT INTO clr_carried (run_id, txn_id, from_date, to_date)
SELECT :run_id, txn_id, :d, :next_d FROM {_FLAGGED_DETAIL}
WHERE run_id = :run_id AND """
    + s.FLAGGED
    + """ AND effect = 'carried'
"""
)

#: The run's detail summed once per (merchant, issuer, acquirer, kind, effect): the merchant
#: days, the split groups, the merchant postings and the counts are derived from these few
#: rows instead of from the whole detail again (the invariants still read the detail).
TOTALS_TABLE: Final = "clr_day_totals"
_CREATE_TOTALS: Final = f"""CREATE TEMP TABLE {TOTALS_TABLE} (
    merchant_id VARCHAR(15) NOT NULL, issuer_id VARCHAR(32) NOT NULL,
    acquirer_id VARCHAR(32) NOT NULL, kind VARCHAR(8) NOT NULL, effect VARCHAR(10) NOT NULL,
    n BIGINT NOT NULL, amount_fen BIGINT NOT NULL, commission_fen BIGINT NOT NULL)"""
_FILL_TOTALS: Final = f"""
INSERT INTO {TOTALS_TABLE} (merchant_id, issuer_id, acquirer_id, kind, effect, n, amount_fen,
                            commission_fen)
SELECT merchant_id, issuer_id, acquirer_id, kind, effect, COUNT(*), SUM(amount_fen),
       SUM(commission_fen)
FROM clr_detail WHERE run_id = :run_id
GROUP BY merchant_id, issuer_id, acquirer_id, kind, effect
"""
_CREATE_TOTALS_SQLITE: Final = (
    _CREATE_TOTALS.removesuffix(")")
    + ",\n    PRIMARY KEY (merchant_id, issuer_id, acquirer_id, kind, effect)) WITHOUT ROWID"
)
_FILL_TOTALS_SQLITE: Final = f"""
INSERT INTO {TOTALS_TABLE} (merchant_id, issuer_id, acquirer_id, kind, effect, n, amount_fen,
                            commission_fen)
SELECT merchant_id, issuer_id, acquirer_id, kind, effect, 1, amount_fen, commission_fen
FROM clr_detail WHERE run_id = :run_id AND 1 = 1
ON CONFLICT (merchant_id, issuer_id, acquirer_id, kind, effect) DO UPDATE
SET n = n + excluded.n, amount_fen = amount_fen + excluded.amount_fen,
    commission_fen = commission_fen + excluded.commission_fen
"""

_STAGE_MERCHANT_DAYS = f"""
INSERT INTO clr_merchant_days (run_id, merchant_id, business_date, txn_count, gross_fen,
                               commission_fen, refund_fen, load_fen, deposit_fen, net_fen)
SELECT :run_id, merchant_id, :d, SUM(n), SUM(gross), SUM(comm), SUM(refund), SUM(loads),
       SUM(dep), SUM(gross) - SUM(refund) - SUM(comm) - SUM(loads) - SUM(dep)
FROM (
    SELECT merchant_id,
           SUM(CASE WHEN kind = 'purchase' THEN n ELSE 0 END) AS n,
           SUM(CASE WHEN kind = 'purchase' THEN amount_fen ELSE 0 END) AS gross,
           SUM(CASE WHEN kind = 'purchase' THEN commission_fen
                    WHEN kind = 'refund' THEN -commission_fen ELSE 0 END) AS comm,
           SUM(CASE WHEN kind = 'refund' THEN amount_fen ELSE 0 END) AS refund,
           SUM(CASE WHEN kind = 'load' THEN amount_fen ELSE 0 END) AS loads,
           0 AS dep
    FROM clr_day_totals WHERE effect = 'settled'
    GROUP BY merchant_id
    UNION ALL
    SELECT merchant_id, 0, 0, 0, 0, 0,
           SUM(CASE WHEN deployed_on = :d THEN {POS_DEPOSIT_FEN} ELSE 0 END)
           - SUM(CASE WHEN returned_on = :d THEN {POS_DEPOSIT_FEN} ELSE 0 END)
    FROM clearing_terminals
    WHERE deployed_on = :d OR returned_on = :d
    GROUP BY merchant_id
) x
GROUP BY merchant_id
"""

#: Per (date, partner, acquirer): (2 x sum(C_m x share_bp) + 50,000) // 100,000, symmetric
#: around zero; share_bp of the partner's signing contract in force on the date.
_STAGE_PARTNER_SHARES = """
INSERT INTO clr_partner_payouts (run_id, business_date, partner_id, kind, reference,
                                 acquirer_id, commission_base_fen, amount_fen)
SELECT :run_id, :d, partner_id, 'SHARE', CAST(:d_text AS VARCHAR(10)), acquirer_id, base,
       CASE WHEN w >= 0 THEN (2 * w + 50000) / 100000 ELSE -((2 * (-w) + 50000) / 100000) END
FROM (
    SELECT m.signing_partner_id AS partner_id, m.acquirer_id AS acquirer_id,
           SUM(md.commission_fen) AS base, SUM(md.commission_fen * k.share_bp) AS w
    FROM clr_merchant_days md
    JOIN clearing_merchants m ON m.merchant_id = md.merchant_id
    JOIN (
        SELECT partner_id, share_bp FROM (
            SELECT c.partner_id, c.share_bp,
                   ROW_NUMBER() OVER (PARTITION BY c.partner_id
                                      ORDER BY c.effective_from DESC) AS n
            FROM clearing_partner_contracts c
            WHERE c.kind = 'signing' AND c.effective_from <= :d
              AND (c.effective_to IS NULL OR c.effective_to > :d)
        ) ranked WHERE n = 1
    ) k ON k.partner_id = m.signing_partner_id
    WHERE md.run_id = :run_id
    GROUP BY m.signing_partner_id, m.acquirer_id
    HAVING SUM(md.commission_fen) <> 0
) x
"""


def _posting(
    entry: str, debit: str, credit: str, amount: str, source: str, where: str = "1 = 1"
) -> str:
    """Postings of a signed amount: debit/credit as named when positive, swapped when
    negative, none when zero (a posting's amount is always positive)."""
    return f"""
SELECT {entry} AS entry_key,
       CASE WHEN {amount} > 0 THEN {debit} ELSE {credit} END AS debit_account,
       CASE WHEN {amount} > 0 THEN {credit} ELSE {debit} END AS credit_account,
       ABS({amount}) AS amount_fen
FROM {source} WHERE {where} AND {amount} <> 0"""


_MERCHANT_AGG = """
SELECT merchant_id, issuer_id,
       SUM(CASE WHEN effect = 'settled' AND kind = 'purchase'
                THEN amount_fen - commission_fen ELSE 0 END) AS sale_net,
       SUM(CASE WHEN effect = 'settled' AND kind = 'purchase' THEN commission_fen ELSE 0 END)
           AS sale_comm,
       SUM(CASE WHEN effect = 'settled' AND kind = 'refund'
                THEN amount_fen - commission_fen ELSE 0 END) AS refund_net,
       SUM(CASE WHEN effect = 'settled' AND kind = 'refund' THEN commission_fen ELSE 0 END)
           AS refund_comm,
       SUM(CASE WHEN effect = 'settled' AND kind = 'load' THEN amount_fen ELSE 0 END) AS loads,
       SUM(CASE WHEN effect = 'held' AND kind = 'purchase' THEN amount_fen
                WHEN effect = 'held' THEN -amount_fen ELSE 0 END) AS held
FROM clr_day_totals WHERE effect IN ('settled', 'held')
GROUP BY merchant_id, issuer_id
"""

_M_KEY = "CAST(:prefix AS VARCHAR(60)) || ':merchant:' || merchant_id"
_ISS = "'ISSUER_RECV:' || issuer_id"
_MPAY = "'MERCHANT_PAY:' || merchant_id"

_LEDGER_STATEMENTS: Final = (
    # journal entries: per (date, merchant), per split group, per (partner, acquirer) share
    f"""
INSERT INTO clr_journal (entry_key, run_id, business_date, kind)
SELECT {_M_KEY}, :run_id, :d, 'merchant' FROM (
    SELECT merchant_id FROM clr_day_totals WHERE effect IN ('settled', 'held')
    UNION SELECT merchant_id FROM clr_merchant_days WHERE run_id = :run_id
) m""",
    """
INSERT INTO clr_journal (entry_key, run_id, business_date, kind)
SELECT CAST(:prefix AS VARCHAR(60)) || ':split:' || issuer_id || ':' || acquirer_id,
       :run_id, :d, 'split'
FROM clr_split_groups WHERE run_id = :run_id AND commission_fen <> 0""",
    """
INSERT INTO clr_journal (entry_key, run_id, business_date, kind)
SELECT CAST(:prefix AS VARCHAR(60)) || ':share:' || partner_id || ':' || acquirer_id,
       :run_id, :d, 'share'
FROM clr_partner_payouts WHERE run_id = :run_id AND kind = 'SHARE' AND amount_fen <> 0""",
    # merchant postings: sales, refunds, loads, held items (clearing.md §6 templates)
    "WITH agg AS ("
    + _MERCHANT_AGG
    + ") INSERT INTO clr_postings (entry_key, run_id, debit_account, credit_account, amount_fen)"
    " SELECT entry_key, :run_id, debit_account, credit_account, amount_fen FROM ("
    + " UNION ALL ".join(
        [
            _posting(_M_KEY, _ISS, _MPAY, "sale_net", "agg"),
            _posting(_M_KEY, _ISS, "'FEE_CLEARING'", "sale_comm", "agg"),
            _posting(_M_KEY, _MPAY, _ISS, "refund_net", "agg"),
            _posting(_M_KEY, "'FEE_CLEARING'", _ISS, "refund_comm", "agg"),
            _posting(_M_KEY, _MPAY, _ISS, "loads", "agg"),
            _posting(_M_KEY, _ISS, "'SUSPENSE_RECON'", "held", "agg"),
        ]
    )
    + ") p",
    # deposits: Dr MERCHANT_PAY Cr DEPOSITS_HELD (returned: the reverse)
    "INSERT INTO clr_postings (entry_key, run_id, debit_account, credit_account, amount_fen)"
    " SELECT entry_key, :run_id, debit_account, credit_account, amount_fen FROM ("
    + _posting(
        _M_KEY,
        _MPAY,
        "'DEPOSITS_HELD:' || merchant_id",
        "deposit_fen",
        "clr_merchant_days md",
        "md.run_id = :run_id",
    )
    + ") p",
    # split: Dr FEE_CLEARING Cr ISSUER_RECV / ACQUIRER_PAY / NETWORK_PAY
    "INSERT INTO clr_postings (entry_key, run_id, debit_account, credit_account, amount_fen)"
    " SELECT entry_key, :run_id, debit_account, credit_account, amount_fen FROM ("
    + " UNION ALL ".join(
        _posting(
            "CAST(:prefix AS VARCHAR(60)) || ':split:' || issuer_id || ':' || acquirer_id",
            "'FEE_CLEARING'",
            account,
            amount,
            "clr_split_groups g",
            "g.run_id = :run_id",
        )
        for account, amount in (
            (_ISS, "issuer_fen"),
            ("'ACQUIRER_PAY:' || acquirer_id", "acquirer_fen"),
            ("'NETWORK_PAY:' || network_id", "network_fen"),
        )
    )
    + ") p",
    # partner shares: Dr ACQUIRER_PAY Cr PARTNER_PAY
    "INSERT INTO clr_postings (entry_key, run_id, debit_account, credit_account, amount_fen)"
    " SELECT entry_key, :run_id, debit_account, credit_account, amount_fen FROM ("
    + _posting(
        "CAST(:prefix AS VARCHAR(60)) || ':share:' || partner_id || ':' || acquirer_id",
        "'ACQUIRER_PAY:' || acquirer_id",
        "'PARTNER_PAY:' || partner_id",
        "amount_fen",
        "clr_partner_payouts pp",
        "pp.run_id = :run_id AND pp.kind = 'SHARE'",
    )
    + ") p",
)

_MONTH_END_LEDGER: Final = (
    """
INSERT INTO clr_journal (entry_key, run_id, business_date, kind)
SELECT CAST(:prefix AS VARCHAR(60)) || ':' || LOWER(kind) || ':' || reference,
       :run_id, :d, LOWER(kind)
FROM clr_partner_payouts WHERE run_id = :run_id AND kind IN ('EXPANSION', 'MAINTENANCE')""",
    """
INSERT INTO clr_postings (entry_key, run_id, debit_account, credit_account, amount_fen)
SELECT CAST(:prefix AS VARCHAR(60)) || ':' || LOWER(kind) || ':' || reference, :run_id,
       kind || '_FEE_EXPENSE', 'PARTNER_PAY:' || partner_id, amount_fen
FROM clr_partner_payouts
WHERE run_id = :run_id AND kind IN ('EXPANSION', 'MAINTENANCE') AND amount_fen > 0""",
)

#: The stages that read ``clr_input``.
_INPUT_STAGES: Final = frozenset({"counters", "detail", "refunds", "exceptions"})

# --- adjustment: releasing held items ----------------------------------------------------------

RELEASE_TABLE: Final = "clr_release"
_CREATE_RELEASE: Final = f"""CREATE TEMP TABLE {RELEASE_TABLE} (
    terminal_id VARCHAR(8) NOT NULL, batch_no INTEGER NOT NULL, stan INTEGER NOT NULL)"""
#: The held rows of completed DAILY runs named by the release keys (held rows are flagged:
#: the partial index finds them without reading the runs' other rows).
_HELD_NAMED: Final = f"""
SELECT run_id, txn_id, terminal_id, batch_no, stan, kind, cleared_on, amount_fen,
       commission_fen, rule_version
FROM {_FLAGGED_DETAIL}
WHERE run_id IN (SELECT r.run_id FROM clr_runs r
                 WHERE r.kind = 'DAILY' AND r.status = 'completed')
  AND {s.FLAGGED} AND effect = 'held'
  AND EXISTS (SELECT 1 FROM {RELEASE_TABLE} k
              WHERE k.terminal_id = clr_detail.terminal_id AND k.batch_no = clr_detail.batch_no
                AND k.stan = clr_detail.stan)
ORDER BY terminal_id, batch_no, stan, run_id
"""
_RELEASED_BEFORE: Final = """
SELECT a.txn_id, r.business_date, r.seq FROM clr_detail a
JOIN clr_runs r ON r.run_id = a.run_id
WHERE r.kind = 'ADJUSTMENT' AND r.status = 'completed' AND a.txn_id IN :ids
"""
_RELEASE_ROW: Final = f"""
INSERT INTO clr_detail ({_DETAIL_COLUMNS})
SELECT :run_id, txn_id, :d, business_date, kind, merchant_id, terminal_id, batch_no, stan, rrn,
       original_rrn, asn, issuer_id, acquirer_id, state, auth_amount_fen, amount_fen,
       upload_amount_fen, commission_fen, rule_version, over_limit, no_completion, tac_invalid,
       amount_mismatch, host_only, counter_code, 'settled'
FROM clr_detail WHERE run_id = :held_run AND txn_id = :txn_id
"""
#: An adjustment's merchant days: its released items only (the date's deposit movements
#: belong to the date's DAILY run).
_STAGE_ADJUSTMENT_MERCHANT_DAYS: Final = _STAGE_MERCHANT_DAYS.replace(
    "WHERE deployed_on = :d OR returned_on = :d", "WHERE 1 = 0"
)
#: The holds reversed: Dr SUSPENSE_RECON Cr ISSUER_RECV for purchases (loads the reverse),
#: as the DAILY run posted them the other way.
_UNHOLD: Final = (
    """WITH agg AS (
    SELECT merchant_id, issuer_id,
           SUM(CASE WHEN kind = 'purchase' THEN amount_fen ELSE -amount_fen END) AS released
    FROM clr_day_totals WHERE effect = 'settled' GROUP BY merchant_id, issuer_id
) INSERT INTO clr_postings (entry_key, run_id, debit_account, credit_account, amount_fen)
SELECT entry_key, :run_id, debit_account, credit_account, amount_fen FROM ("""
    + _posting(_M_KEY, "'SUSPENSE_RECON'", _ISS, "released", "agg")
    + ") p"
)

_STAGES: Final[Mapping[str, tuple[str, ...]]] = {
    "rules": (_STAGE_RULES,),
    "counters": (_STAGE_COUNTERS,),
    "detail": (_STAGE_DETAIL,),
    "refunds": (_STAGE_REFUNDS,),
    "exceptions": (_STAGE_EXCEPTIONS,),
    "carried": (_STAGE_CARRIED,),
    "merchant_days": (_STAGE_MERCHANT_DAYS,),
    "partner_shares": (_STAGE_PARTNER_SHARES,),
    "ledger": _LEDGER_STATEMENTS,
    "month_end_ledger": _MONTH_END_LEDGER,
    "adjustment_merchant_days": (_STAGE_ADJUSTMENT_MERCHANT_DAYS,),
    "adjustment_ledger": (*_LEDGER_STATEMENTS, _UNHOLD),
}

# --- fingerprint ------------------------------------------------------------------------------

#: An order-independent digest of the input, computed in the database (a run never pulls the
#: day's transactions into Python): per kind and state, the count and sums of the amounts and
#: of two mixing terms of every key, amount, state and TAC verdict (each < 2^31, so sums of
#: ten million rows stay far inside BIGINT). Any added, removed or changed transaction moves
#: at least one of them. Then the rule versions, the uploads and 0500s as of the cut-off and
#: the day's deposit movements; SHA-256 over all of it.
_MIX_A = (
    "((i.txn_id % 1000003) * 7919 + i.batch_no * 131 + i.stan * 31 "
    "+ i.auth_amount_fen * 104729 + COALESCE(i.completion_amount_fen, 0) * 1299709 "
    "+ CASE WHEN i.tac_verdict = 'ok' THEN 17 ELSE 3 END) % 2147483647"
)
_MIX_B = (
    "((i.txn_id % 999983) * 15485863 + i.stan * 7 + i.auth_amount_fen * 49979687 "
    "+ COALESCE(i.completion_amount_fen, 0) * 32452843) % 2147483629"
)
#: Per (kind, state), in this order, the count and the sums of the input: one pass with a
#: CASE per combination (a GROUP BY would sort the whole input on SQLite); the rows digested
#: are the combinations that occur, exactly what ``GROUP BY kind, st ORDER BY kind, st`` gives.
_KINDS_STATES: Final = tuple(
    (k, st)
    for k in ("load", "purchase", "refund")
    for st in ("authorised", "completed", "reversed")
)
_INPUT_SUMS: Final = ("1", "i.auth_amount_fen", "COALESCE(i.completion_amount_fen, 0)",
                      "i.txn_id % 1000000007", _MIX_A, _MIX_B)  # fmt: skip
_INPUT_DIGEST: Final = (
    "SELECT "
    + ",\n       ".join(
        f"SUM(CASE WHEN i.kind = '{k}' AND i.st = '{st}' THEN {e} ELSE 0 END)"
        for k, st in _KINDS_STATES
        for e in _INPUT_SUMS
    )
    + "\nFROM clr_input i"
)
_FINGERPRINT_QUERIES: Final = (
    f"""SELECT r.merchant_id, r.version, r.kind, r.effective_from, r.effective_to
        FROM clearing_commission_rules r
        WHERE r.effective_from <= :d AND (r.effective_to IS NULL OR r.effective_to > :d)
          AND r.merchant_id IN ({_INPUT_MERCHANTS})
        ORDER BY r.merchant_id, r.version""",
    """SELECT COUNT(*), SUM(u.amount_fen), SUM((u.stan * 7919 + u.batch_no * 131
                  + u.amount_fen * 104729) % 2147483647)
       FROM clearing_batch_uploads u
       JOIN (SELECT DISTINCT t.terminal_id, t.batch_no FROM clr_input_keys t
             WHERE t.own_date = 1) b
         ON b.terminal_id = u.terminal_id AND b.batch_no = u.batch_no
       WHERE u.uploaded_at <= :cutoff""",
    """SELECT s.terminal_id, s.batch_no, s.terminal_purchase_amount_fen,
              s.terminal_purchase_count, s.terminal_refund_amount_fen, s.terminal_refund_count,
              s.terminal_load_amount_fen, s.terminal_load_count, s.host_purchase_amount_fen,
              s.host_purchase_count, s.host_refund_amount_fen, s.host_refund_count,
              s.host_load_amount_fen, s.host_load_count
       FROM clearing_terminal_settlements s
       WHERE s.business_date = :d AND s.settled_at <= :cutoff
       ORDER BY s.terminal_id, s.batch_no""",
    """SELECT t.terminal_id, t.merchant_id, t.deployed_on, t.returned_on
       FROM clearing_terminals t WHERE t.deployed_on = :d OR t.returned_on = :d
       ORDER BY t.terminal_id""",
    f"""SELECT m.merchant_id, m.acquirer_id, m.signing_partner_id FROM clearing_merchants m
        WHERE m.merchant_id IN ({_INPUT_MERCHANTS})
        ORDER BY m.merchant_id""",
    """SELECT c.partner_id, c.effective_from, c.share_bp FROM clearing_partner_contracts c
       WHERE c.kind = 'signing' AND c.effective_from <= :d
         AND (c.effective_to IS NULL OR c.effective_to > :d)
       ORDER BY c.partner_id, c.effective_from""",
)


def _canonical(value: Any) -> str:
    if value is None:
        return "~"
    if isinstance(value, datetime | date):
        return _as_date(value).isoformat()
    return str(value)


def _digest_rows(digest: Any, label: str, rows: Sequence[Sequence[Any]]) -> None:
    digest.update(f"[{label}]\n".encode())
    for row in rows:
        digest.update(("|".join(_canonical(v) for v in row) + "\n").encode())


# --- invariants (clearing.md §6) -------------------------------------------------------------

_BALANCES = """
SELECT account, SUM(amount) AS balance FROM (
    SELECT debit_account AS account, amount_fen AS amount FROM clr_postings
    WHERE run_id = :run_id
    UNION ALL
    SELECT credit_account, -amount_fen FROM clr_postings WHERE run_id = :run_id
) x GROUP BY account
"""

_INVARIANTS: Final = (
    (
        "debits equal credits",
        "SELECT COALESCE(SUM(balance), 0) FROM (" + _BALANCES + ") b",
    ),
    (
        "FEE_CLEARING is zero",
        "SELECT COALESCE(SUM(balance), 0) FROM (" + _BALANCES + ") b "
        "WHERE account = 'FEE_CLEARING'",
    ),
    (
        "each group's shares equal its commission",
        """SELECT COUNT(*) FROM clr_split_groups
           WHERE run_id = :run_id AND issuer_fen + acquirer_fen + network_fen <> commission_fen""",
    ),
    (
        "each group's commission equals its transactions' commission",
        """SELECT COUNT(*) FROM clr_split_groups g
           LEFT JOIN (
               SELECT issuer_id, acquirer_id,
                      SUM(CASE WHEN kind = 'purchase' THEN commission_fen
                               WHEN kind = 'refund' THEN -commission_fen ELSE 0 END) AS c
               FROM clr_detail WHERE run_id = :run_id AND effect = 'settled'
               GROUP BY issuer_id, acquirer_id
           ) d ON d.issuer_id = g.issuer_id AND d.acquirer_id = g.acquirer_id
           WHERE g.run_id = :run_id AND COALESCE(d.c, 0) <> g.commission_fen""",
    ),
    (
        "issuer obligations equal merchant net before deposits plus acquirer and network shares",
        """SELECT (SELECT COALESCE(SUM(purchase_fen - refund_fen - load_fen - issuer_fen), 0)
                   FROM clr_split_groups WHERE run_id = :run_id)
                - (SELECT COALESCE(SUM(net_fen + deposit_fen), 0)
                   FROM clr_merchant_days WHERE run_id = :run_id)
                - (SELECT COALESCE(SUM(acquirer_fen + network_fen), 0)
                   FROM clr_split_groups WHERE run_id = :run_id)""",
    ),
    (
        "each issuer's ledger receivable equals its obligation",
        """SELECT COUNT(*) FROM (
               SELECT issuer_id, SUM(purchase_fen - refund_fen - load_fen - issuer_fen) AS owed
               FROM clr_split_groups WHERE run_id = :run_id GROUP BY issuer_id
           ) g
           LEFT JOIN (
               SELECT account, SUM(amount) AS balance FROM (
                   SELECT debit_account AS account, amount_fen AS amount FROM clr_postings
                   WHERE run_id = :run_id AND credit_account <> 'SUSPENSE_RECON'
                   UNION ALL
                   SELECT credit_account, -amount_fen FROM clr_postings
                   WHERE run_id = :run_id AND debit_account <> 'SUSPENSE_RECON'
               ) x GROUP BY account
           ) b ON b.account = 'ISSUER_RECV:' || g.issuer_id
           WHERE COALESCE(b.balance, 0) <> g.owed""",
    ),
    (
        "every merchant day's net is its flows",
        """SELECT COUNT(*) FROM clr_merchant_days WHERE run_id = :run_id
           AND net_fen <> gross_fen - refund_fen - commission_fen - load_fen - deposit_fen""",
    ),
    (
        "every posting is positive",
        "SELECT COUNT(*) FROM clr_postings WHERE run_id = :run_id AND amount_fen <= 0",
    ),
)


class SqlClearingStore:
    """``clearing.ports.ClearingStore`` on the host's database (clearing's tables migrated)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> SqlClearingStore:
        engine = make_engine(url)
        try:
            if migrate:
                upgrade(engine)
        except OperationalError as exc:
            engine.dispose()
            raise RunRefused(f"the database is busy (another clearing run?): {exc.orig}") from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def run_unit(self, options: RunOptions) -> Iterator[SqlRunUnit]:
        conn = self._engine.connect()
        try:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            else:  # bigger page caches for the run's connection (durability is unchanged)
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
                raw.execute(f"PRAGMA temp.cache_size = -{SQLITE_TEMP_CACHE_KIB}")
            transaction = conn.begin()
            try:
                conn.exec_driver_sql("SELECT 1")  # SQLite: BEGIN IMMEDIATE happens here
            except OperationalError as exc:
                transaction.rollback()
                raise RunRefused(
                    f"another clearing run holds the database: {exc.orig}".strip()
                ) from None
            with transaction:
                unit = SqlRunUnit(conn, options)
                yield unit
                unit.drop_staged()
        finally:
            conn.close()

    @contextmanager
    def read_unit(self, options: RunOptions) -> Iterator[SqlRunUnit]:
        with self._engine.connect() as raw:
            conn = raw
            if raw.dialect.name == "postgresql":
                conn = raw.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin() as transaction:
                yield SqlRunUnit(conn, options)
                transaction.rollback()

    def runs_of(self, business_date: date) -> list[RunRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(s.runs)
                .where(s.runs.c.business_date == business_date)
                .order_by(s.runs.c.run_id)
            ).all()
        return [_run_record(row) for row in rows]

    def completions(self, business_date: date) -> Iterator[CompletionProof]:
        with self._engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
                text(_COMPLETIONS).bindparams(bindparam("d", type_=Date())), {"d": business_date}
            )
            for r in result:
                yield CompletionProof(
                    terminal_id=r.terminal_id,
                    batch_no=int(r.batch_no),
                    stan=int(r.stan),
                    rrn=r.rrn,
                    kind=r.kind,
                    asn=r.asn,
                    issuer_id=r.issuer_id,
                    key_version=int(r.key_version),
                    amount_fen=int(r.completion_amount_fen),
                    psam_terminal_id=r.psam_terminal_id,
                    psam_serial=int(r.psam_serial),
                    terminal_datetime=_as_datetime(r.terminal_datetime),
                    tac=r.tac,
                    tac_verdict=r.tac_verdict,
                )

    def close(self) -> None:
        self._engine.dispose()


_COMPLETIONS: Final = """
SELECT terminal_id, batch_no, stan, rrn, kind, asn, COALESCE(issuer_id, 'UNKNOWN') AS issuer_id,
       key_version, completion_amount_fen, psam_terminal_id, psam_serial, terminal_datetime,
       tac, tac_verdict
FROM clearing_transactions
WHERE business_date = :d AND completion_amount_fen IS NOT NULL
ORDER BY txn_id
"""


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.fromisoformat(str(value))


def _run_record(row: Any) -> RunRecord:
    kind = RunKind(row.kind)
    d = _as_date(row.business_date)
    files: dict[str, str] = {}
    names = {
        "merchant_file_sha256": f"merchant_settlement_{d:%Y%m%d}.csv",
        "party_file_sha256": f"party_settlement_{d:%Y%m%d}.csv",
        "exceptions_file_sha256": f"exceptions_{d:%Y%m%d}.csv",
        "partner_file_sha256": f"partner_statement_{d:%Y%m}.csv",
    }
    if kind is RunKind.ADJUSTMENT:
        names = {c: n.removesuffix(".csv") + f"_adj{int(row.seq)}.csv" for c, n in names.items()}
    for column, name in names.items():
        value = getattr(row, column)
        if value is not None:
            files[name] = value
    return RunRecord(
        run_id=int(row.run_id),
        business_date=d,
        kind=kind,
        seq=int(row.seq),
        status=row.status,
        fingerprint=row.fingerprint,
        network_id=row.network_id,
        cutoff=row.cutoff,
        counts=RunCounts(
            int(row.txn_count),
            int(row.settled_count),
            int(row.held_count),
            int(row.carried_count),
            int(row.rejected_count),
            int(row.exception_count),
        ),
        files=files,
    )


class SqlRunUnit:
    """One run's transaction (``clearing.ports.RunUnit``)."""

    def __init__(self, conn: Connection, options: RunOptions) -> None:
        self._conn = conn
        self._options = options
        self._run_id: int | None = None
        self._seq = 0
        self._input_staged = False
        self._totals_staged = False
        self._release_staged = False
        self._sqlite = conn.dialect.name == "sqlite"
        d = options.business_date
        self._params: dict[str, Any] = {
            "d": d,
            "next_d": d + timedelta(days=1),
            "d_text": d.isoformat(),
            "cutoff": cutoff_instant(d, options.cutoff),
            "network": options.network_id,
            "month_first": d.replace(day=1),
            "month_last": month_end(d),
        }
        for code in ExceptionCode:
            if code is not ExceptionCode.MATCHED:
                self._params[f"effect_{code.value.lower()}"] = effect_label(code)

    @property
    def connection(self) -> Connection:
        """For tests that inject faults inside the run's transaction."""
        return self._conn

    @property
    def run_id(self) -> int:
        if self._run_id is None:
            raise RuntimeError("the run has not begun")
        return self._run_id

    # --- plumbing ----------------------------------------------------------------------------

    def _sql(self, sql: str, extra: Mapping[str, Any] | None = None) -> Any:
        params = dict(self._params)
        if self._run_id is not None:
            params["run_id"] = self._run_id
            params["prefix"] = (
                f"{self._options.business_date.isoformat()}:{self._options.kind.value}:{self._seq}"
            )
        if extra:
            params.update(extra)
        if self._sqlite:
            sql = sql.replace(_FLAGGED_DETAIL, _SQLITE_FLAGGED_DETAIL)
        statement = text(sql)
        used = set(statement._bindparams)  # SQLAlchemy's own parse of the text
        binds = []
        for name in used:
            if name in _DATE_PARAMS:
                binds.append(bindparam(name, type_=Date()))
            elif name in _INSTANT_PARAMS:
                binds.append(bindparam(name, type_=s.UtcDateTime()))
        if binds:
            statement = statement.bindparams(*binds)
        return self._conn.execute(statement, {k: v for k, v in params.items() if k in used})

    # --- lock and identity -------------------------------------------------------------------

    def lock(self) -> None:
        if self._conn.dialect.name != "postgresql":
            return  # SQLite: BEGIN IMMEDIATE took the database's write lock
        got = self._sql(
            "SELECT pg_try_advisory_xact_lock(:ns, :day)",
            {"ns": LOCK_NAMESPACE, "day": self._options.business_date.toordinal()},
        ).scalar_one()
        if not got:
            raise RunRefused(
                f"another clearing run of {self._options.business_date.isoformat()} is in progress"
            )

    def completed_runs(self, kind: RunKind) -> list[RunRecord]:
        rows = self._conn.execute(
            select(s.runs)
            .where(
                s.runs.c.business_date == self._options.business_date,
                s.runs.c.kind == kind.value,
                s.runs.c.status == "completed",
            )
            .order_by(s.runs.c.seq)
        ).all()
        return [_run_record(row) for row in rows]

    def find_run(self, business_date: date, kind: RunKind) -> RunRecord | None:
        row = self._conn.execute(
            select(s.runs)
            .where(
                s.runs.c.business_date == business_date,
                s.runs.c.kind == kind.value,
                s.runs.c.status == "completed",
            )
            .order_by(s.runs.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else _run_record(row)

    def latest_daily_date(self) -> date | None:
        value = self._conn.execute(
            select(s.runs.c.business_date)
            .where(s.runs.c.kind == RunKind.DAILY.value, s.runs.c.status == "completed")
            .order_by(s.runs.c.business_date.desc())
            .limit(1)
        ).scalar()
        return None if value is None else _as_date(value)

    def stage_input(self) -> None:
        """Read the run's input from the views once, into ``clr_input`` (see INPUT_TABLE)."""
        if self._input_staged:
            return
        if self._conn.dialect.name == "postgresql":
            self._sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
            self._sql(_CREATE_INPUT + " ON COMMIT DROP")
            self._sql(_FILL_INPUT)
            self._sql(f"ANALYZE {INPUT_TABLE}")
            self._sql(_CREATE_KEYS + " ON COMMIT DROP")
            self._sql(_FILL_KEYS)
            self._sql(f"ANALYZE {KEYS_TABLE}")
        else:
            for table, create in ((INPUT_TABLE, _CREATE_INPUT), (KEYS_TABLE, _CREATE_KEYS_SQLITE)):
                self._sql(f"DROP TABLE IF EXISTS temp.{table}")
                self._sql(create)
            self._sql(_FILL_INPUT)
            for statement in _FILL_KEYS_SQLITE:
                self._sql(statement)
        self._input_staged = True

    def _stage_totals(self) -> None:
        if self._sqlite:
            self._sql(f"DROP TABLE IF EXISTS temp.{TOTALS_TABLE}")
            self._sql(_CREATE_TOTALS_SQLITE)
            self._sql(_FILL_TOTALS_SQLITE)
        else:
            self._sql(_CREATE_TOTALS + " ON COMMIT DROP")
            self._sql(_FILL_TOTALS)
        self._totals_staged = True

    def drop_staged(self) -> None:
        """SQLite: drop the temporary tables before the commit (PostgreSQL drops them at it)."""
        if self._sqlite:
            for table, staged in (
                (INPUT_TABLE, self._input_staged),
                (KEYS_TABLE, self._input_staged),
                (TOTALS_TABLE, self._totals_staged),
                (RELEASE_TABLE, self._release_staged),
            ):
                if staged:
                    self._sql(f"DROP TABLE IF EXISTS temp.{table}")
        self._input_staged = self._totals_staged = self._release_staged = False

    # --- adjustment --------------------------------------------------------------------------

    def _held_named(self) -> list[Any]:
        if not self._release_staged:
            if self._sqlite:
                self._sql(f"DROP TABLE IF EXISTS temp.{RELEASE_TABLE}")
                self._sql(_CREATE_RELEASE)
            else:
                self._sql(_CREATE_RELEASE + " ON COMMIT DROP")
            self._conn.execute(
                text(
                    f"INSERT INTO {RELEASE_TABLE} (terminal_id, batch_no, stan) VALUES (:t, :b, :s)"
                ),
                [{"t": k.terminal_id, "b": k.batch_no, "s": k.stan} for k in self._options.release],
            )
            self._release_staged = True
        return list(self._sql(_HELD_NAMED).all())

    def adjustment_fingerprint(self) -> str:
        o = self._options
        digest = hashlib.sha256()
        digest.update(f"ADJUSTMENT|{o.business_date.isoformat()}|{o.network_id}\n".encode())
        _digest_rows(digest, "keys", [(str(k),) for k in sorted(o.release)])
        _digest_rows(digest, "held", self._held_named())
        return digest.hexdigest()

    def _release(self) -> None:
        """The ADJUSTMENT's detail: a settled copy of each named held row, on the run's date."""
        day = self._options.business_date
        held = self._held_named()
        found = {ReleaseKey(r.terminal_id, int(r.batch_no), int(r.stan)): r for r in held}
        problems = [f"{k} is not a held item" for k in self._options.release if k not in found]
        if len(held) != len(found):
            problems.append("a key names held items of two runs")
        for key, r in sorted(found.items()):
            if r.kind == "refund":
                problems.append(f"{key} is a held refund: not released by an adjustment yet")
            if _as_date(r.cleared_on) >= day:
                problems.append(f"{key} is held on {_as_date(r.cleared_on)}: release it later")
        if held:
            ids = [int(r.txn_id) for r in held]
            for txn_id, on, seq in self._conn.execute(
                text(_RELEASED_BEFORE).bindparams(bindparam("ids", expanding=True)),
                {"ids": ids},
            ):
                key = next(k for k, r in found.items() if int(r.txn_id) == int(txn_id))
                problems.append(f"{key} was released by the adjustment {_as_date(on)} {seq}")
        if problems:
            shown = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
            raise RunRefused(f"cannot release: {shown}")
        self._conn.execute(
            text(_RELEASE_ROW).bindparams(bindparam("d", type_=Date())),
            [
                {"run_id": self.run_id, "d": day, "held_run": r.run_id, "txn_id": r.txn_id}
                for r in held
            ],
        )

    def daily_fingerprint(self) -> str:
        self.stage_input()
        digest = hashlib.sha256()
        o = self._options
        digest.update(
            f"DAILY|{o.business_date.isoformat()}|{o.cutoff:%H:%M}|{o.network_id}\n".encode()
        )
        sums = list(self._sql(_INPUT_DIGEST).one())
        width = len(_INPUT_SUMS)
        rows = []
        for n, (kind, st) in enumerate(_KINDS_STATES):
            values = sums[n * width : (n + 1) * width]
            if int(values[0] or 0):
                rows.append((kind, st, *values))
        _digest_rows(digest, "0", rows)
        for n, query in enumerate(_FINGERPRINT_QUERIES, start=1):
            _digest_rows(digest, str(n), self._sql(query).all())
        return digest.hexdigest()

    def month_end_fingerprint(self, fees: Sequence[PartnerFeeLine]) -> str:
        """Over what the month-end run pays: the fee lines it computed and the month's SHARE
        rows (reference data that changes nothing for the month leaves it alone)."""
        digest = hashlib.sha256()
        digest.update(f"MONTH_END|{self._options.business_date.isoformat()}\n".encode())
        _digest_rows(digest, "fees", [tuple(vars_of(f)) for f in fees])
        _digest_rows(
            digest,
            "shares",
            self._sql(
                """SELECT p.business_date, p.partner_id, p.acquirer_id, p.amount_fen
                   FROM clr_partner_payouts p JOIN clr_runs r ON r.run_id = p.run_id
                   WHERE p.kind = 'SHARE' AND r.kind IN ('DAILY', 'ADJUSTMENT')
                     AND r.status = 'completed'
                     AND p.business_date BETWEEN :month_first AND :month_last
                   ORDER BY p.business_date, p.partner_id, p.acquirer_id"""
            ).all(),
        )
        return digest.hexdigest()

    def begin(self, seq: int, fingerprint: str, started_at: datetime) -> int:
        o = self._options
        result = self._conn.execute(
            s.runs.insert().values(
                business_date=o.business_date,
                kind=o.kind.value,
                seq=seq,
                status="running",
                fingerprint=fingerprint,
                network_id=o.network_id,
                cutoff=f"{o.cutoff:%H:%M}",
                started_at=started_at,
                txn_count=0,
                settled_count=0,
                held_count=0,
                carried_count=0,
                rejected_count=0,
                exception_count=0,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        self._run_id = int(key[0])
        self._seq = seq
        return self._run_id

    def attach(self, run_id: int, seq: int) -> None:
        self._run_id = run_id
        self._seq = seq

    # --- stages ------------------------------------------------------------------------------

    def stage(self, name: str) -> None:
        statements = _STAGES.get(name, () if name == "release" else None)
        if statements is None:
            raise ValueError(f"unknown stage {name!r}")
        if name in _INPUT_STAGES:
            self.stage_input()
        if name == "release":
            self._release()
            return
        if name in ("merchant_days", "adjustment_merchant_days"):
            self._stage_totals()
        for statement in statements:
            self._sql(statement)
        if name == "detail":
            if not self._sqlite:  # the refunds join the new rows: give the planner their size
                self._sql("ANALYZE clr_detail")
            missing = (
                self._sql(
                    """SELECT DISTINCT merchant_id FROM clr_detail
                   WHERE run_id = :run_id AND kind = 'purchase' AND effect = 'settled'
                     AND rule_version IS NULL ORDER BY merchant_id"""
                )
                .scalars()
                .all()
            )
            if missing:
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise RunRefused(
                    f"no commission rule in force on {self._options.business_date.isoformat()} "
                    f"for merchant(s) {shown}"
                )

    def group_flows(self) -> list[GroupFlows]:
        rows = self._sql(
            """SELECT issuer_id, acquirer_id,
                      SUM(CASE WHEN kind = 'purchase' THEN commission_fen
                               WHEN kind = 'refund' THEN -commission_fen ELSE 0 END),
                      SUM(CASE WHEN kind = 'purchase' THEN amount_fen ELSE 0 END),
                      SUM(CASE WHEN kind = 'refund' THEN amount_fen ELSE 0 END),
                      SUM(CASE WHEN kind = 'load' THEN amount_fen ELSE 0 END)
               FROM clr_day_totals WHERE effect = 'settled'
               GROUP BY issuer_id, acquirer_id ORDER BY issuer_id, acquirer_id"""
        ).all()
        return [GroupFlows(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]

    def insert_split(self, shares: Sequence[GroupShares]) -> None:
        if not shares:
            return
        self._conn.execute(
            s.split_groups.insert(),
            [
                {
                    "run_id": self.run_id,
                    "issuer_id": g.flows.issuer_id,
                    "acquirer_id": g.flows.acquirer_id,
                    "network_id": self._options.network_id,
                    "business_date": self._options.business_date,
                    "commission_fen": g.flows.commission_fen,
                    "issuer_fen": g.issuer_fen,
                    "acquirer_fen": g.acquirer_fen,
                    "network_fen": g.network_fen,
                    "purchase_fen": g.flows.purchase_fen,
                    "refund_fen": g.flows.refund_fen,
                    "load_fen": g.flows.load_fen,
                }
                for g in shares
            ],
        )

    def reference_data(self) -> ReferenceData:
        merchants = tuple(
            RefMerchant(r[0], r[1], _as_date(r[2]), r[3], r[4])
            for r in self._sql(
                """SELECT merchant_id, acquirer_id, onboarded_on, status, signing_partner_id
                   FROM clearing_merchants ORDER BY merchant_id"""
            ).all()
        )
        terminals = tuple(
            RefTerminal(r[0], r[1], _as_date(r[2]), _opt_date(r[3]), r[4], r[5])
            for r in self._sql(
                """SELECT terminal_id, merchant_id, deployed_on, returned_on, status,
                          maintaining_partner_id
                   FROM clearing_terminals ORDER BY terminal_id"""
            ).all()
        )
        contracts = tuple(
            RefContract(r[0], r[1], _as_date(r[2]), _opt_date(r[3]), r[4], r[5], r[6], r[7])
            for r in self._sql(
                """SELECT partner_id, kind, effective_from, effective_to, share_bp,
                          expansion_fee_fen, retention_days, monthly_fee_fen
                   FROM clearing_partner_contracts
                   ORDER BY partner_id, kind, effective_from"""
            ).all()
        )
        return ReferenceData(merchants, terminals, contracts)

    def expansion_paid(self) -> set[str]:
        rows = self._sql(
            """SELECT p.reference FROM clr_partner_payouts p
               WHERE p.kind = 'EXPANSION' AND p.business_date < :d"""
        ).scalars()
        return set(rows)

    def insert_partner_fees(self, fees: Sequence[PartnerFeeLine]) -> None:
        if not fees:
            return
        self._conn.execute(
            s.partner_payouts.insert(),
            [
                {
                    "run_id": self.run_id,
                    "business_date": self._options.business_date,
                    "partner_id": f.partner_id,
                    "kind": f.kind,
                    "reference": f.reference,
                    "acquirer_id": f.acquirer_id,
                    "commission_base_fen": 0,
                    "amount_fen": f.amount_fen,
                }
                for f in fees
            ],
        )

    def invariant_problems(self) -> list[str]:
        problems = []
        for name, query in _INVARIANTS:
            value = int(self._sql(query).scalar_one() or 0)
            if value != 0:
                problems.append(f"{name} (off by {value})")
        return problems

    def counts(self) -> RunCounts:
        source = (
            TOTALS_TABLE
            if self._totals_staged
            else "(SELECT effect, 1 AS n FROM clr_detail WHERE run_id = :run_id) d"
        )
        row = self._sql(
            f"""SELECT SUM(n),
                      SUM(CASE WHEN effect = 'settled' THEN n ELSE 0 END),
                      SUM(CASE WHEN effect = 'held' THEN n ELSE 0 END),
                      SUM(CASE WHEN effect = 'carried' THEN n ELSE 0 END),
                      SUM(CASE WHEN effect = 'rejected' THEN n ELSE 0 END)
               FROM {source}"""
        ).one()
        exceptions = self._sql(
            "SELECT COUNT(*) FROM clr_exceptions WHERE run_id = :run_id"
        ).scalar_one()
        n, settled, held, carried, rejected = (int(v or 0) for v in row)
        return RunCounts(n, settled, held, carried, rejected, int(exceptions))

    # --- file rows ---------------------------------------------------------------------------

    def merchant_rows(self, run_id: int) -> list[MerchantSettlementRow]:
        m = s.merchant_days.c
        rows = self._conn.execute(
            select(s.merchant_days).where(m.run_id == run_id).order_by(m.merchant_id)
        ).all()
        return [
            MerchantSettlementRow(
                r.merchant_id,
                _as_date(r.business_date),
                int(r.txn_count),
                int(r.gross_fen),
                int(r.commission_fen),
                int(r.refund_fen),
                int(r.load_fen),
                int(r.deposit_fen),
                int(r.net_fen),
            )
            for r in rows
        ]

    def party_rows(self, run_id: int) -> list[PartySettlementRow]:
        g = s.split_groups.c
        groups = self._conn.execute(select(s.split_groups).where(g.run_id == run_id)).all()
        totals: dict[tuple[str, str], list[int]] = {}
        day = self._options.business_date
        for r in groups:
            for role, party, share, payable in (
                (
                    "issuer",
                    r.issuer_id,
                    r.issuer_fen,
                    r.purchase_fen - r.refund_fen - r.load_fen - r.issuer_fen,
                ),
                ("acquirer", r.acquirer_id, r.acquirer_fen, r.acquirer_fen),
                ("network", r.network_id, r.network_fen, r.network_fen),
            ):
                t = totals.setdefault((role, party), [0, 0, 0])
                t[0] += int(r.commission_fen)
                t[1] += int(share)
                t[2] += int(payable)
        return [
            PartySettlementRow(role, party, day, base, share, payable)
            for (role, party), (base, share, payable) in sorted(totals.items())
        ]

    def exception_rows(self, run_id: int) -> list[ExceptionFileRow]:
        e = s.exceptions.c
        rows = self._conn.execute(
            select(s.exceptions).where(e.run_id == run_id).order_by(e.exception_id)
        ).all()
        return [
            ExceptionFileRow(
                code=r.code,
                terminal_id=r.terminal_id,
                batch=r.batch_no,
                stan=r.stan,
                rrn=r.rrn or None,
                asn=r.asn or None,
                amount_fen=r.amount_fen,
                other_amount_fen=r.other_amount_fen,
                effect=r.effect,
                reason=r.reason or None,
            )
            for r in rows
        ]

    def partner_rows(self, month_end_run_id: int) -> list[PartnerStatementRow]:
        rows = self._sql(
            """SELECT p.partner_id, p.kind, p.reference, SUM(p.amount_fen)
               FROM clr_partner_payouts p JOIN clr_runs r ON r.run_id = p.run_id
               WHERE (p.kind = 'SHARE' AND r.kind IN ('DAILY', 'ADJUSTMENT')
                      AND r.status = 'completed'
                      AND p.business_date BETWEEN :month_first AND :month_last)
                  OR p.run_id = :me_run
               GROUP BY p.partner_id, p.kind, p.reference
               ORDER BY p.partner_id, p.kind, p.reference""",
            {"me_run": month_end_run_id},
        ).all()
        return [PartnerStatementRow(r[0], r[1], r[2], int(r[3])) for r in rows]

    def finish(self, counts: RunCounts, files: dict[str, str], finished_at: datetime) -> RunRecord:
        columns = {}
        for name, digest in files.items():
            prefix = name.split("_", 1)[0]
            column = {
                "merchant": "merchant_file_sha256",
                "party": "party_file_sha256",
                "exceptions": "exceptions_file_sha256",
                "partner": "partner_file_sha256",
            }[prefix]
            columns[column] = digest
        self._conn.execute(
            s.runs.update()
            .where(s.runs.c.run_id == self.run_id)
            .values(
                status="completed",
                finished_at=finished_at,
                txn_count=counts.txn_count,
                settled_count=counts.settled_count,
                held_count=counts.held_count,
                carried_count=counts.carried_count,
                rejected_count=counts.rejected_count,
                exception_count=counts.exception_count,
                **columns,
            )
        )
        row = self._conn.execute(select(s.runs).where(s.runs.c.run_id == self.run_id)).one()
        return _run_record(row)


def vars_of(record: Any) -> list[Any]:
    """A frozen slots dataclass's field values, in order."""
    return [getattr(record, name) for name in record.__slots__]
