"""Prebuilt statements of the message path. Built once at import with bind parameters, so each
execution skips SQLAlchemy's statement construction (about 10x cheaper per statement than
building it per call); the compiled form is then reused from the engine's cache.

Parameter names are the column names unless said otherwise.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Table, and_, bindparam, case, exists, func, insert, select, update
from sqlalchemy.sql.dml import Insert

from acquiring.adapters.sql import schema as s
from acquiring.domain.model import BATCH_NO_MAX

_a, _k, _r, _t = s.authorisations, s.completions, s.reversals, s.terminals
_APPROVED: Final = "00"

_txn_key = and_(
    _a.c.terminal_id == bindparam("terminal_id"),
    _a.c.batch_no == bindparam("batch_no"),
    _a.c.stan == bindparam("stan"),
)
_unreversed = ~exists().where(_r.c.txn_id == _a.c.txn_id)

# --- reference data ---------------------------------------------------------------------------
#: A terminal without its key columns (``Terminal`` holds no keys).
TERMINAL_COLUMNS: Final = select(
    _t.c.terminal_id,
    _t.c.merchant_id,
    _t.c.deployed_on,
    _t.c.status,
    _t.c.maintaining_partner_id,
    _t.c.batch_no,
    _t.c.signed_on,
)
TERMINAL: Final = TERMINAL_COLUMNS.where(_t.c.terminal_id == bindparam("terminal_id"))
TERMINAL_FOR_UPDATE: Final = TERMINAL.with_for_update()
TERMINAL_KEYS: Final = select(_t.c.tmk_ct, _t.c.mak_ct).where(
    _t.c.terminal_id == bindparam("terminal_id")
)
MERCHANT: Final = select(s.merchants).where(s.merchants.c.merchant_id == bindparam("merchant_id"))
_m = s.merchants
#: The message path's first lookup: terminal, MAK ciphertext and merchant (``m_*``) in one.
TERMINAL_SESSION: Final = (
    select(
        *TERMINAL_COLUMNS.selected_columns,
        _t.c.mak_ct,
        *(c.label(f"m_{c.name}") for c in _m.c),
    )
    .select_from(_t.outerjoin(_m, _m.c.merchant_id == _t.c.merchant_id))
    .where(_t.c.terminal_id == bindparam("terminal_id"))
)
_xt = s.exchanges
#: The same with the exchange-log entry of the request's key (``x_*``, §6), when there is one.
TERMINAL_SESSION_EXCHANGE: Final = TERMINAL_SESSION.add_columns(
    _xt.c.request_digest.label("x_request_digest"),
    _xt.c.response.label("x_response"),
    _xt.c.created_at.label("x_created_at"),
).outerjoin(
    _xt,
    and_(
        _xt.c.terminal_id == _t.c.terminal_id,
        _xt.c.batch_no == bindparam("batch_no"),
        _xt.c.stan == bindparam("stan"),
        _xt.c.mti == bindparam("mti"),
    ),
)
MERCHANT_FOR_UPDATE: Final = MERCHANT.with_for_update()
CARD: Final = select(s.cards).where(s.cards.c.asn == bindparam("asn"))
CARD_FOR_UPDATE: Final = CARD.with_for_update()
ISSUER: Final = select(s.issuers).where(s.issuers.c.issuer_id == bindparam("issuer_id"))
ISSUER_KEYS: Final = select(s.issuer_keys.c.keys_ct).where(
    s.issuer_keys.c.issuer_id == bindparam("issuer_id"),
    s.issuer_keys.c.key_version == bindparam("key_version"),
)

ISSUER_KEY_VERSIONS: Final = (
    select(s.issuer_keys.c.key_version)
    .where(s.issuer_keys.c.issuer_id == bindparam("issuer_id"))
    .order_by(s.issuer_keys.c.key_version)
)

# --- exchange log -----------------------------------------------------------------------------
_x = s.exchanges.c
EXCHANGE: Final = select(_x.request_digest, _x.response, _x.created_at).where(
    _x.terminal_id == bindparam("terminal_id"),
    _x.batch_no == bindparam("batch_no"),
    _x.stan == bindparam("stan"),
    _x.mti == bindparam("mti"),
)
PUT_EXCHANGE: Final = insert(s.exchanges)

# --- transactions -----------------------------------------------------------------------------
AUTHORISATION: Final = select(_a).where(_txn_key)
AUTHORISATION_FOR_UPDATE: Final = AUTHORISATION.with_for_update()
AUTHORISATION_BY_RRN: Final = select(_a).where(_a.c.rrn == bindparam("rrn"))
AUTHORISATION_BY_RRN_FOR_UPDATE: Final = AUTHORISATION_BY_RRN.with_for_update()
#: What a completion or reversal needs of its authorisation (param names: the key's).
#: An authorisation with "has a completion" and "has a reversal" (one round trip).
TXN_STATE: Final = select(
    _a,
    exists().where(_k.c.txn_id == _a.c.txn_id).label("completed"),
    exists().where(_r.c.txn_id == _a.c.txn_id).label("reversed"),
).where(_txn_key)
TXN_STATE_FOR_UPDATE: Final = TXN_STATE.with_for_update(of=_a)
APPLIES_TO: Final = select(_a.c.txn_id, _a.c.response_code, _a.c.business_date).where(_txn_key)
COMPLETION: Final = select(_k).join(_a, _a.c.txn_id == _k.c.txn_id).where(_txn_key)
REVERSAL: Final = select(_r).join(_a, _a.c.txn_id == _r.c.txn_id).where(_txn_key)
ADD_AUTHORISATION: Final = insert(_a)
ADD_COMPLETION: Final = insert(_k)
ADD_REVERSAL: Final = insert(_r)


def _applied(table: Table) -> Insert:
    """INSERT of a completion or reversal row taking ``txn_id`` from its authorisation, only
    when that one is approved and of the same business date (no row inserted otherwise: the
    caller then says why). One round trip instead of a lookup and an insert."""
    columns = [c for c in table.c if c.name != "txn_id"]
    values = select(_a.c.txn_id, *(bindparam(c.name, type_=c.type) for c in columns)).where(
        _txn_key,
        _a.c.response_code == _APPROVED,
        _a.c.business_date == bindparam("business_date", type_=_a.c.business_date.type),
    )
    return insert(table).from_select(["txn_id", *(c.name for c in columns)], values)


ADD_COMPLETION_APPLIED: Final = _applied(_k)
ADD_REVERSAL_APPLIED: Final = _applied(_r)
ADD_BATCH_UPLOAD: Final = insert(s.batch_uploads)
ADD_SETTLEMENT: Final = insert(s.terminal_settlements)

# --- totals -----------------------------------------------------------------------------------
_purchases = (_a.c.kind == "purchase", _a.c.response_code == _APPROVED, _unreversed)
_sum_count = (func.coalesce(func.sum(_a.c.amount_fen), 0), func.count())
CARD_DAY: Final = select(*_sum_count).where(
    _a.c.asn == bindparam("asn"), _a.c.business_date == bindparam("business_date"), *_purchases
)
MERCHANT_DAY: Final = select(*_sum_count).where(
    _a.c.merchant_id == bindparam("merchant_id"),
    _a.c.business_date == bindparam("business_date"),
    *_purchases,
)
REFUNDED: Final = select(func.coalesce(func.sum(_a.c.amount_fen), 0)).where(
    _a.c.original_rrn == bindparam("original_rrn"),
    _a.c.kind == "refund",
    _a.c.response_code == _APPROVED,
    _unreversed,
)
BATCH_TOTALS: Final = (
    select(_a.c.kind, func.sum(_k.c.amount_fen), func.count())
    .join(_k, _k.c.txn_id == _a.c.txn_id)
    .where(
        _a.c.terminal_id == bindparam("terminal_id"),
        _a.c.batch_no == bindparam("batch_no"),
        _unreversed,
    )
    .group_by(_a.c.kind)
)

# --- terminal state ---------------------------------------------------------------------------
CLOSE_BATCH: Final = (
    update(_t)
    .where(_t.c.terminal_id == bindparam("tid"), _t.c.batch_no == bindparam("open_batch_no"))
    .values(batch_no=case((_t.c.batch_no >= BATCH_NO_MAX, 1), else_=_t.c.batch_no + 1))
)
BATCH_NO: Final = select(_t.c.batch_no).where(_t.c.terminal_id == bindparam("terminal_id"))
SIGN_ON: Final = (
    update(_t)
    .where(_t.c.terminal_id == bindparam("tid"))
    .values(mak_ct=bindparam("mak_ct"), signed_on=True, signed_on_at=bindparam("at"))
)
SIGN_OFF: Final = update(_t).where(_t.c.terminal_id == bindparam("tid")).values(signed_on=False)
_rc = s.rrn_counter.c
NEXT_RRN_SQLITE: Final = (
    update(s.rrn_counter)
    .where(_rc.counter_id == 1)
    .values(last_value=_rc.last_value + 1)
    .returning(_rc.last_value)
)
NEXT_RRN_POSTGRES: Final = select(func.nextval(s.RRN_SEQUENCE))
