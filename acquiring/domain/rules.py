"""Authorisation rules of a 0200 (issue 3 item 3, host_protocol.md §5) and the business date
(clearing.md §1). Pure: the caller looks up the records and day totals in the store and passes
them in, with ``now`` from its clock; nothing here reads a clock or a database.

Order of the checks (the first failure answers):
1. terminal registered (97), active (58), signed on (A0, "sign on again");
2. the request's MID is the terminal's merchant, known and active (03);
3. amount: purchase and refund 1..49,999 fen, load 1..100,000 fen (13) — the card itself
   refuses a load beyond its exact ceiling headroom;
4. card known (14), not hot-listed (62);
5. purchase: card daily amount (61) and count (65), merchant daily amount (61);
   refund: original RRN given (30), original found, approved and unreversed (25), a purchase by
   the same card at the same merchant (12), refunds in total at most the original (64).
Duplicates (94) and MAC errors (A0) are decided on the wire, before these rules run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from acquiring.domain.errors import InvalidRecord
from acquiring.domain.model import (
    LOAD_AMOUNT_MAX_FEN,
    PURCHASE_AMOUNT_MAX_FEN,
    Authorisation,
    CardAccount,
    CardStatus,
    DayTotals,
    Merchant,
    MerchantStatus,
    Terminal,
    TerminalStatus,
    TxnKind,
)
from paycore.iso8583.fields import ResponseCode

#: clearing.md §1: business dates are Asia/Shanghai dates, never UTC ones.
SHANGHAI = ZoneInfo("Asia/Shanghai")
CUTOFF_DEFAULT = time(0, 0)


def business_date(now: datetime, cutoff: time = CUTOFF_DEFAULT, tz: ZoneInfo = SHANGHAI) -> date:
    """The business date of an approval at instant ``now`` (aware).

    With the default cut-off 00:00 it is the Asia/Shanghai calendar date. A later cut-off ends
    the business day early: with 23:00, 23:00:00 local on the 1st and everything up to
    22:59:59 on the 2nd belong to business date the 2nd (the CUP "day switch" convention).
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise InvalidRecord("business_date", "now", "must be a timezone-aware datetime")
    if not isinstance(cutoff, time) or cutoff.tzinfo is not None:
        raise InvalidRecord("business_date", "cutoff", "must be a naive local time of day")
    local = now.astimezone(tz)
    if cutoff != CUTOFF_DEFAULT and local.time() >= cutoff:
        return local.date() + timedelta(days=1)
    return local.date()


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What the rules need of a 0200 (fields 2, 3, 4, 37, 41, 42)."""

    kind: TxnKind
    terminal_id: str
    merchant_id: str
    asn: str
    amount_fen: int
    original_rrn: str | None = None  # refunds: field 37 of the request


NO_PURCHASES = DayTotals()


@dataclass(frozen=True, slots=True)
class AuthContext:
    """The records the store returned for a request, all as of the request's business date.

    ``merchant`` is the terminal's merchant; ``card_day`` and ``merchant_day_fen`` count
    approved, unreversed purchases of that business date; ``original`` is the authorisation a
    refund names (by RRN), ``original_reversed`` whether it was reversed, and
    ``refunded_before_fen`` the approved, unreversed refunds already made against it."""

    terminal: Terminal | None
    merchant: Merchant | None
    card: CardAccount | None
    card_day: DayTotals = NO_PURCHASES
    merchant_day_fen: int = 0
    original: Authorisation | None = None
    original_reversed: bool = False
    refunded_before_fen: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on a 0200: field 39 and a reason for the log (no card number in it).
    ``sign_on_again`` asks the wire layer to set the header's processing nibble to 3."""

    response_code: ResponseCode
    reason: str
    sign_on_again: bool = False

    @property
    def approved(self) -> bool:
        return self.response_code is ResponseCode.APPROVED


APPROVE = Decision(ResponseCode.APPROVED, "approved")


def _decline(code: ResponseCode, reason: str, *, sign_on_again: bool = False) -> Decision:
    return Decision(code, reason, sign_on_again)


def amount_limit_fen(kind: TxnKind) -> int:
    """The largest amount the host accepts for ``kind`` (clearing.md §1)."""
    return LOAD_AMOUNT_MAX_FEN if kind is TxnKind.LOAD else PURCHASE_AMOUNT_MAX_FEN


def authorise(request: AuthRequest, ctx: AuthContext) -> Decision:
    """Decide a 0200. Returns a Decision; never raises for bad input."""
    terminal, merchant, card = ctx.terminal, ctx.merchant, ctx.card
    if terminal is None:
        return _decline(ResponseCode.TERMINAL_NOT_REGISTERED, "terminal not registered")
    if terminal.status is not TerminalStatus.ACTIVE:
        return _decline(ResponseCode.NOT_PERMITTED_ON_TERMINAL, f"terminal {terminal.status}")
    if not terminal.signed_on:
        return _decline(ResponseCode.MAC_ERROR, "terminal not signed on", sign_on_again=True)
    if request.merchant_id != terminal.merchant_id:
        return _decline(ResponseCode.INVALID_MERCHANT, "MID is not the terminal's merchant")
    if merchant is None or merchant.merchant_id != terminal.merchant_id:
        return _decline(ResponseCode.INVALID_MERCHANT, "merchant not registered")
    if merchant.status is not MerchantStatus.ACTIVE:
        return _decline(ResponseCode.INVALID_MERCHANT, f"merchant {merchant.status}")
    amount_fen = request.amount_fen
    if not 1 <= amount_fen <= amount_limit_fen(request.kind):
        return _decline(ResponseCode.INVALID_AMOUNT, f"{request.kind} amount out of range")
    if card is None or card.asn != request.asn:
        return _decline(ResponseCode.INVALID_CARD, "card not registered")
    if card.status is CardStatus.HOT:
        return _decline(ResponseCode.CARD_BLOCKED, "card on the hot list")
    if request.kind is TxnKind.PURCHASE:
        return _purchase_limits(amount_fen, card, merchant, ctx)
    if request.kind is TxnKind.REFUND:
        return _refund(request, ctx)
    return APPROVE


def _purchase_limits(
    amount_fen: int, card: CardAccount, merchant: Merchant, ctx: AuthContext
) -> Decision:
    if ctx.card_day.amount_fen + amount_fen > card.daily_amount_limit_fen:
        return _decline(ResponseCode.OVER_DAILY_AMOUNT_LIMIT, "card daily amount limit")
    if ctx.card_day.count + 1 > card.daily_count_limit:
        return _decline(ResponseCode.OVER_DAILY_COUNT_LIMIT, "card daily count limit")
    limit_fen = merchant.daily_limit_fen
    if limit_fen is not None and ctx.merchant_day_fen + amount_fen > limit_fen:
        return _decline(ResponseCode.OVER_DAILY_AMOUNT_LIMIT, "merchant daily amount limit")
    return APPROVE


def _refund(request: AuthRequest, ctx: AuthContext) -> Decision:
    original = ctx.original
    if request.original_rrn is None:
        return _decline(ResponseCode.FORMAT_ERROR, "refund without the original RRN")
    if (
        original is None
        or original.rrn != request.original_rrn
        or not original.approved
        or ctx.original_reversed
    ):
        return _decline(ResponseCode.ORIGINAL_NOT_FOUND, "no approved, unreversed original")
    if original.kind is not TxnKind.PURCHASE:
        return _decline(ResponseCode.INVALID_TRANSACTION, f"original is a {original.kind}")
    if original.asn != request.asn:
        return _decline(ResponseCode.INVALID_TRANSACTION, "original was paid by another card")
    if original.merchant_id != request.merchant_id:
        return _decline(ResponseCode.INVALID_TRANSACTION, "original was at another merchant")
    if ctx.refunded_before_fen + request.amount_fen > original.amount_fen:
        return _decline(ResponseCode.AMOUNT_DIFFERS_FROM_ORIGINAL, "refunds exceed the original")
    return APPROVE
