"""Merchant commission, per transaction (clearing.md §2). Pure integer arithmetic: no float,
no ``round()``, no Decimal, so clearing's set-based SQL can use the very same formulas:

    c = (amount_fen * rate_bp + 5000) // 10000                      -- half up
    c = min(max(c, min_fen), max_fen, amount_fen)                   -- where the rule has them
    refund return = (2 * c * r + a) // (2 * a)                      -- proportional, half up

Loads carry no commission; this module is only ever asked about purchases and refunds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from acquiring.domain.errors import InvalidRecord

if TYPE_CHECKING:
    from acquiring.domain.model import CommissionRule

BP_PER_UNIT: Final = 10_000
_HALF_BP: Final = BP_PER_UNIT // 2


class RuleKind(StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"
    DISCOUNT = "discount"
    ZERO = "zero"


def rate_fen(amount_fen: int, rate_bp: int) -> int:
    """``amount_fen * rate_bp / 10000`` rounded half up (clearing.md §2)."""
    _non_negative("amount_fen", amount_fen)
    _non_negative("rate_bp", rate_bp)
    return (amount_fen * rate_bp + _HALF_BP) // BP_PER_UNIT


def percent_commission_fen(
    amount_fen: int, rate_bp: int, min_fen: int | None = None, max_fen: int | None = None
) -> int:
    """The percent formula with its optional per-transaction floor and cap; never more than the
    amount itself (a 5-fen minimum on a 3-fen sale takes 3)."""
    c = rate_fen(amount_fen, rate_bp)
    if min_fen is not None:
        c = max(c, min_fen)
    if max_fen is not None:
        c = min(c, max_fen)
    return min(c, amount_fen)


def discount_rate_bp(user_bp: int, settle_bp: int) -> int:
    """The rate on the paid amount equivalent to "the cardholder pays ``user_bp`` of list price,
    the merchant is settled ``settle_bp`` of it": (user_bp - settle_bp) * 10000 / user_bp. It
    must be whole, or the rule is refused (clearing.md §2: cinema 8000 / 6000 → 2500)."""
    if not 0 < user_bp <= BP_PER_UNIT:
        raise InvalidRecord("commission_rule", "user_bp", f"must be 1..{BP_PER_UNIT}")
    if not 0 <= settle_bp <= user_bp:
        raise InvalidRecord("commission_rule", "settle_bp", "must be 0..user_bp")
    rate_bp, rest = divmod((user_bp - settle_bp) * BP_PER_UNIT, user_bp)
    if rest:
        raise InvalidRecord(
            "commission_rule",
            "settle_bp",
            f"({user_bp} - {settle_bp}) x 10000 / {user_bp} is not a whole number of bp",
        )
    return rate_bp


def commission_fen(rule: CommissionRule, amount_fen: int) -> int:
    """The commission ``rule`` charges on one purchase of ``amount_fen``."""
    _non_negative("amount_fen", amount_fen)
    if rule.kind is RuleKind.ZERO:
        return 0
    if rule.kind is RuleKind.FIXED:
        assert rule.fee_fen is not None  # the rule checked itself on construction
        return min(rule.fee_fen, amount_fen)
    assert rule.rate_bp is not None
    if rule.kind is RuleKind.DISCOUNT:
        return percent_commission_fen(amount_fen, rule.rate_bp)
    return percent_commission_fen(amount_fen, rule.rate_bp, rule.min_fen, rule.max_fen)


def refund_commission_fen(
    *,
    original_amount_fen: int,
    original_commission_fen: int,
    refund_fen: int,
    refunded_before_fen: int = 0,
    returned_before_fen: int = 0,
) -> int:
    """Commission returned to the merchant for a refund of ``refund_fen`` against an original of
    ``original_amount_fen`` that was charged ``original_commission_fen``:
    ``(2 * c * r + a) // (2 * a)``. The refund that completes the original returns exactly what
    is left of c; and no refund returns more than is left (our choice: many small refunds each
    rounded up would otherwise return more than c in total)."""
    a, c, r = original_amount_fen, original_commission_fen, refund_fen
    if a <= 0:
        raise InvalidRecord("refund", "original_amount_fen", "must be positive")
    if not 0 <= c <= a:
        raise InvalidRecord("refund", "original_commission_fen", "must be 0..original amount")
    if r <= 0:
        raise InvalidRecord("refund", "refund_fen", "must be positive")
    if not 0 <= refunded_before_fen <= a - r:
        raise InvalidRecord("refund", "refund_fen", "refunds would exceed the original")
    if not 0 <= returned_before_fen <= c:
        raise InvalidRecord("refund", "returned_before_fen", "must be 0..original commission")
    left_fen = c - returned_before_fen
    if refunded_before_fen + r == a:
        return left_fen
    return min((2 * c * r + a) // (2 * a), left_fen)


def rule_in_force(rules: Iterable[CommissionRule], day: date) -> CommissionRule | None:
    """The rule in force on ``day``: of the rules whose [from, to) contains it, the highest
    version. None when the merchant has no rule that day (clearing reports that)."""
    best: CommissionRule | None = None
    for rule in rules:
        if rule.in_force_on(day) and (best is None or rule.version > best.version):
            best = rule
    return best


def _non_negative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRecord("commission", name, "must be a non-negative integer")
