"""Merchant commission per transaction (clearing.md §2). Integers only:

    c = (amount_fen * rate_bp + 5000) // 10000                      -- half up
    c = min(max(c, min_fen), max_fen, amount_fen)                   -- where the rule has them
    refund return = (2 * c * r + a) // (2 * a)                      -- proportional, half up

This is clearing's own copy of the formula (components are independent); a test checks that it
agrees with the acquiring host's. Loads carry no commission and are never passed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from clearing.domain.errors import InvalidInput, check_int

BP_PER_UNIT: Final = 10_000
_HALF_BP: Final = BP_PER_UNIT // 2
#: clearing.md §1: purchases and refunds are 1..49,999 fen; 50,000 and above is OVER_LIMIT.
AMOUNT_MAX_FEN: Final = 49_999
#: Rule versions count up per merchant; a limit like every other (TIGER_STYLE).
RULE_VERSION_MAX: Final = 1_000_000


class RuleKind(StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"
    DISCOUNT = "discount"
    ZERO = "zero"


@dataclass(frozen=True, slots=True)
class CommissionRule:
    """One version of a merchant's commission terms, in force over [effective_from,
    effective_to) (``None``: open-ended). Build with the named constructors; the constructor
    checks every field, so a rule that exists is a rule that can be applied.

    - percent: ``rate_bp`` with optional ``min_fen`` / ``max_fen`` per transaction;
    - fixed: ``fee_fen`` per transaction (capped at the amount when applied);
    - discount: ``user_bp`` / ``settle_bp`` of the list price, stored as the equivalent
      ``rate_bp`` on the paid amount, which must be whole (else refused);
    - zero: nothing.
    """

    merchant_id: str
    kind: RuleKind
    version: int
    effective_from: date
    effective_to: date | None = None
    rate_bp: int | None = None
    min_fen: int | None = None
    max_fen: int | None = None
    fee_fen: int | None = None
    user_bp: int | None = None
    settle_bp: int | None = None

    def __post_init__(self) -> None:
        r = "commission_rule"
        if not self.merchant_id:
            raise InvalidInput(r, "merchant_id", "must not be empty")
        if not isinstance(self.kind, RuleKind):
            raise InvalidInput(r, "kind", "must be a RuleKind")
        check_int(r, "version", self.version, 1, RULE_VERSION_MAX)
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise InvalidInput(r, "effective_to", "must be after effective_from")
        allowed = {
            RuleKind.PERCENT: {"rate_bp", "min_fen", "max_fen"},
            RuleKind.FIXED: {"fee_fen"},
            RuleKind.DISCOUNT: {"rate_bp", "user_bp", "settle_bp"},
            RuleKind.ZERO: set(),
        }[self.kind]
        for name in ("rate_bp", "min_fen", "max_fen", "fee_fen", "user_bp", "settle_bp"):
            if name not in allowed and getattr(self, name) is not None:
                raise InvalidInput(r, name, f"does not apply to a {self.kind.value} rule")
        if self.kind is RuleKind.PERCENT:
            check_int(r, "rate_bp", self.rate_bp, 0, BP_PER_UNIT)
            if self.min_fen is not None:
                check_int(r, "min_fen", self.min_fen, 0, AMOUNT_MAX_FEN)
            if self.max_fen is not None:
                check_int(r, "max_fen", self.max_fen, 0, AMOUNT_MAX_FEN)
            low, high = self.min_fen, self.max_fen
            if low is not None and high is not None and low > high:
                raise InvalidInput(r, "max_fen", "must not be below min_fen")
        elif self.kind is RuleKind.FIXED:
            check_int(r, "fee_fen", self.fee_fen, 0, AMOUNT_MAX_FEN)
        elif self.kind is RuleKind.DISCOUNT:
            assert self.user_bp is not None and self.settle_bp is not None
            derived = discount_rate_bp(self.user_bp, self.settle_bp)  # raises when not whole
            if self.rate_bp != derived:
                raise InvalidInput(r, "rate_bp", f"must be the derived rate {derived}")

    @staticmethod
    def percent(
        merchant_id: str,
        version: int,
        effective_from: date,
        *,
        rate_bp: int,
        min_fen: int | None = None,
        max_fen: int | None = None,
        effective_to: date | None = None,
    ) -> CommissionRule:
        return CommissionRule(
            merchant_id,
            RuleKind.PERCENT,
            version,
            effective_from,
            effective_to,
            rate_bp=rate_bp,
            min_fen=min_fen,
            max_fen=max_fen,
        )

    @staticmethod
    def fixed(
        merchant_id: str,
        version: int,
        effective_from: date,
        *,
        fee_fen: int,
        effective_to: date | None = None,
    ) -> CommissionRule:
        return CommissionRule(
            merchant_id, RuleKind.FIXED, version, effective_from, effective_to, fee_fen=fee_fen
        )

    @staticmethod
    def discount(
        merchant_id: str,
        version: int,
        effective_from: date,
        *,
        user_bp: int,
        settle_bp: int,
        effective_to: date | None = None,
    ) -> CommissionRule:
        """A discount rule with its equivalent rate derived (refused when not whole)."""
        return CommissionRule(
            merchant_id,
            RuleKind.DISCOUNT,
            version,
            effective_from,
            effective_to,
            rate_bp=discount_rate_bp(user_bp, settle_bp),
            user_bp=user_bp,
            settle_bp=settle_bp,
        )

    @staticmethod
    def zero(
        merchant_id: str, version: int, effective_from: date, *, effective_to: date | None = None
    ) -> CommissionRule:
        return CommissionRule(merchant_id, RuleKind.ZERO, version, effective_from, effective_to)

    def in_force_on(self, day: date) -> bool:
        """[effective_from, effective_to): the end date is the first day it no longer applies."""
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)


def rate_fen(amount_fen: int, rate_bp: int) -> int:
    """``amount_fen * rate_bp / 10000`` rounded half up (clearing.md §2)."""
    check_int("commission", "amount_fen", amount_fen, 0, None)
    check_int("commission", "rate_bp", rate_bp, 0, BP_PER_UNIT)
    return (amount_fen * rate_bp + _HALF_BP) // BP_PER_UNIT


def discount_rate_bp(user_bp: int, settle_bp: int) -> int:
    """The rate on the paid amount equivalent to "the cardholder pays ``user_bp`` of the list
    price, the merchant is settled ``settle_bp`` of it": (user_bp - settle_bp) x 10000 / user_bp,
    which must be whole or the rule is refused (clearing.md §2: cinema 8000 / 6000 → 2500)."""
    r = "commission_rule"
    check_int(r, "user_bp", user_bp, 1, BP_PER_UNIT)
    check_int(r, "settle_bp", settle_bp, 0, user_bp)
    rate_bp, rest = divmod((user_bp - settle_bp) * BP_PER_UNIT, user_bp)
    if rest:
        raise InvalidInput(
            r,
            "settle_bp",
            f"({user_bp} - {settle_bp}) x 10000 / {user_bp} is not a whole number of bp",
        )
    return rate_bp


def commission_fen(rule: CommissionRule, amount_fen: int) -> int:
    """The commission ``rule`` charges on one purchase of ``amount_fen`` (1..49,999)."""
    check_int("commission", "amount_fen", amount_fen, 1, AMOUNT_MAX_FEN)
    if rule.kind is RuleKind.ZERO:
        return 0
    if rule.kind is RuleKind.FIXED:
        assert rule.fee_fen is not None  # checked on construction
        return min(rule.fee_fen, amount_fen)
    assert rule.rate_bp is not None
    c = rate_fen(amount_fen, rule.rate_bp)
    if rule.min_fen is not None:
        c = max(c, rule.min_fen)
    if rule.max_fen is not None:
        c = min(c, rule.max_fen)
    c = min(c, amount_fen)
    assert 0 <= c <= amount_fen
    return c


def returned_commission_fen(
    *,
    original_amount_fen: int,
    original_commission_fen: int,
    refund_fen: int,
    refunded_before_fen: int = 0,
    returned_before_fen: int = 0,
) -> int:
    """Commission returned to the merchant by a refund of ``refund_fen`` against an original of
    ``original_amount_fen`` charged ``original_commission_fen`` (clearing.md §2):
    ``(2 x c x r + a) // (2 x a)``, proportional and half up. The refund that completes the
    original returns exactly what is left of c; no refund returns more than is left (several
    partial refunds each rounded up could otherwise return more than c in total)."""
    r_ = "refund"
    a, c, r = original_amount_fen, original_commission_fen, refund_fen
    check_int(r_, "original_amount_fen", a, 1, AMOUNT_MAX_FEN)
    check_int(r_, "original_commission_fen", c, 0, a)
    check_int(r_, "refund_fen", r, 1, a)
    check_int(r_, "refunded_before_fen", refunded_before_fen, 0, a - r)
    check_int(r_, "returned_before_fen", returned_before_fen, 0, c)
    left_fen = c - returned_before_fen
    if refunded_before_fen + r == a:
        return left_fen
    returned = min((2 * c * r + a) // (2 * a), left_fen)
    assert 0 <= returned <= left_fen
    return returned


def rule_in_force(rules: Iterable[CommissionRule], day: date) -> CommissionRule | None:
    """The rule of one merchant in force on ``day``: of the rules whose [from, to) contains it,
    the highest version. ``None`` when there is none (the run reports the merchant). Two rules
    of the same version, or rules of different merchants, are refused."""
    best: CommissionRule | None = None
    merchant_id: str | None = None
    seen_versions: set[int] = set()
    for rule in rules:
        if merchant_id is None:
            merchant_id = rule.merchant_id
        elif rule.merchant_id != merchant_id:
            raise InvalidInput("commission_rule", "merchant_id", "rules of several merchants")
        if rule.version in seen_versions:
            raise InvalidInput("commission_rule", "version", f"version {rule.version} twice")
        seen_versions.add(rule.version)
        if rule.in_force_on(day) and (best is None or rule.version > best.version):
            best = rule
    return best
