"""Channel partners and POS deposits (clearing.md §4): the commission share per (business date,
partner), the expansion fee once per merchant after its retention period, the maintenance fee
per terminal active on the month's last day, and the POS deposit netted from the merchant's
settlement. Integers only; every date is a business date (Asia/Shanghai), passed in.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Final

from clearing.domain.errors import InvalidInput, check_int

SHARE_BP_MAX: Final = 10_000
#: clearing.md §4: share_fen = (2 x C_p x share_bp + 50,000) // 100,000 (share_bp of the 20%).
_SHARE_DIVISOR: Final = 100_000
_SHARE_HALF: Final = _SHARE_DIVISOR // 2
EXPANSION_FEE_MIN_FEN: Final = 20_000
EXPANSION_FEE_MAX_FEN: Final = 200_000
RETENTION_DAYS_DEFAULT: Final = 90
RETENTION_DAYS_MAX: Final = 3_660
MAINTENANCE_FEE_FEN: Final = 5_500
POS_DEPOSIT_FEN: Final = 100_000


class PartnerRole(StrEnum):
    SIGNING = "signing"  # signed a merchant: commission share and expansion fee
    MAINTAINING = "maintaining"  # looks after a terminal: maintenance fee


class FeeKind(StrEnum):
    """The ``kind`` column of partner_statement_<YYYYMM>.csv (clearing.md §7)."""

    SHARE = "SHARE"
    EXPANSION = "EXPANSION"
    MAINTENANCE = "MAINTENANCE"


@dataclass(frozen=True, slots=True)
class PartnerContract:
    """A partner's contract for one merchant (signing) or one terminal (maintaining), in force
    over [effective_from, effective_to). A signing contract carries the share and the expansion
    fee; a maintaining contract carries neither (the maintenance fee is the scheme's 5,500)."""

    partner_id: str
    role: PartnerRole
    subject_id: str  # merchant_id for SIGNING, terminal_id for MAINTAINING
    effective_from: date
    effective_to: date | None = None
    share_bp: int = 0
    expansion_fee_fen: int | None = None
    retention_days: int = RETENTION_DAYS_DEFAULT

    def __post_init__(self) -> None:
        r = "partner_contract"
        if not self.partner_id:
            raise InvalidInput(r, "partner_id", "must not be empty")
        if not self.subject_id:
            raise InvalidInput(r, "subject_id", "must not be empty")
        if not isinstance(self.role, PartnerRole):
            raise InvalidInput(r, "role", "must be a PartnerRole")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise InvalidInput(r, "effective_to", "must be after effective_from")
        check_int(r, "share_bp", self.share_bp, 0, SHARE_BP_MAX)
        check_int(r, "retention_days", self.retention_days, 0, RETENTION_DAYS_MAX)
        if self.expansion_fee_fen is not None:
            check_int(
                r,
                "expansion_fee_fen",
                self.expansion_fee_fen,
                EXPANSION_FEE_MIN_FEN,
                EXPANSION_FEE_MAX_FEN,
            )
        if self.role is PartnerRole.MAINTAINING and (
            self.share_bp or self.expansion_fee_fen is not None
        ):
            raise InvalidInput(r, "role", "a maintaining contract has no share or expansion fee")

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)


@dataclass(frozen=True, slots=True)
class Merchant:
    """A merchant's life: active over [onboarded_on, closed_on)."""

    merchant_id: str
    onboarded_on: date
    closed_on: date | None = None

    def active_on(self, day: date) -> bool:
        return self.onboarded_on <= day and (self.closed_on is None or day < self.closed_on)


@dataclass(frozen=True, slots=True)
class Terminal:
    """A POS terminal deployed at a merchant over [deployed_on, returned_on): returned on a day
    means not active that day."""

    terminal_id: str
    merchant_id: str
    deployed_on: date
    returned_on: date | None = None

    def __post_init__(self) -> None:
        if self.returned_on is not None and self.returned_on < self.deployed_on:
            raise InvalidInput("terminal", "returned_on", "must not be before deployed_on")

    def active_on(self, day: date) -> bool:
        return self.deployed_on <= day and (self.returned_on is None or day < self.returned_on)


@dataclass(frozen=True, slots=True, order=True)
class PartnerFee:
    """One line of a partner statement: sorted by partner_id, kind, reference."""

    partner_id: str
    kind: FeeKind
    reference: str  # business date (SHARE), merchant_id (EXPANSION), terminal_id (MAINTENANCE)
    amount_fen: int


def contract_in_force(
    contracts: Iterable[PartnerContract], role: PartnerRole, subject_id: str, day: date
) -> PartnerContract | None:
    """The one contract of ``role`` for ``subject_id`` in force on ``day``; two at once are
    refused (a subject has one signing / maintaining partner at a time)."""
    found: PartnerContract | None = None
    for contract in contracts:
        if contract.role is not role or contract.subject_id != subject_id:
            continue
        if contract.in_force_on(day):
            if found is not None:
                raise InvalidInput(
                    "partner_contract",
                    "effective_from",
                    f"two {role.value} contracts for {subject_id} in force on {day.isoformat()}",
                )
            found = contract
    return found


def partner_share_fen(commission_fen: int, share_bp: int) -> int:
    """``(2 x C_p x share_bp + 50,000) // 100,000``: share_bp of the 20% acquirer portion of
    C_p, half up. A negative C_p (a day of more returned than charged commission) is rounded
    symmetrically, share(-C) = -share(C), as the split is."""
    check_int("partner_share", "commission_fen", commission_fen, -(2**62), None)
    check_int("partner_share", "share_bp", share_bp, 0, SHARE_BP_MAX)
    return _share_of_weighted(commission_fen * share_bp)


def _share_of_weighted(weighted: int) -> int:
    """Half-up (2 x Σ C·bp) / 100,000, symmetric around zero."""
    if weighted < 0:
        return -_share_of_weighted(-weighted)
    return (2 * weighted + _SHARE_HALF) // _SHARE_DIVISOR


def partner_shares(
    business_date: date,
    merchant_commission_fen: Mapping[str, int],
    contracts: Iterable[PartnerContract],
) -> list[PartnerFee]:
    """The SHARE lines of one business date: per partner, rounded once on the sum of its
    merchants' commission (charged minus returned). Merchants with no signing contract in force
    that day earn no share. When a partner's merchants carry different share_bp, the sum is
    Σ C_m x share_bp_m, rounded once (equal to the clearing.md formula when they agree)."""
    contracts = tuple(contracts)
    weighted: dict[str, int] = {}
    for merchant_id in sorted(merchant_commission_fen):
        contract = contract_in_force(contracts, PartnerRole.SIGNING, merchant_id, business_date)
        if contract is None:
            continue
        c = merchant_commission_fen[merchant_id]
        weighted[contract.partner_id] = weighted.get(contract.partner_id, 0) + c * contract.share_bp
    reference = business_date.isoformat()
    return sorted(
        PartnerFee(partner_id, FeeKind.SHARE, reference, _share_of_weighted(w))
        for partner_id, w in weighted.items()
    )


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def expansion_eligible_on(onboarded_on: date, retention_days: int) -> date:
    """The merchant's onboarding date + retention_days (clearing.md §4)."""
    check_int("expansion_fee", "retention_days", retention_days, 0, RETENTION_DAYS_MAX)
    return onboarded_on + timedelta(days=retention_days)


def expansion_fees_due(
    run_month_end: date,
    merchants: Iterable[Merchant],
    contracts: Iterable[PartnerContract],
    already_paid_merchant_ids: Set[str],
) -> list[PartnerFee]:
    """The EXPANSION lines of the month-end run for ``run_month_end``'s month: one per merchant
    whose eligibility date (onboarding + retention_days of the signing contract in force on its
    onboarding date) falls in this month, still active on that date, whose contract has an
    expansion fee, and never paid before. A month whose run is missed does not pay it later:
    clearing.md says "the month-end run of the month in which it becomes eligible" — a late
    payment is an ADJUSTMENT run's business."""
    if run_month_end != month_end(run_month_end):
        raise InvalidInput("expansion_fee", "run_month_end", "must be the last day of a month")
    contracts = tuple(contracts)
    first_day = run_month_end.replace(day=1)
    fees: list[PartnerFee] = []
    for merchant in merchants:
        if merchant.merchant_id in already_paid_merchant_ids:
            continue
        contract = contract_in_force(
            contracts, PartnerRole.SIGNING, merchant.merchant_id, merchant.onboarded_on
        )
        if contract is None or contract.expansion_fee_fen is None:
            continue
        eligible_on = expansion_eligible_on(merchant.onboarded_on, contract.retention_days)
        if not first_day <= eligible_on <= run_month_end:
            continue
        if not merchant.active_on(eligible_on):
            continue
        fees.append(
            PartnerFee(
                contract.partner_id,
                FeeKind.EXPANSION,
                merchant.merchant_id,
                contract.expansion_fee_fen,
            )
        )
    return sorted(fees)


def maintenance_fees_due(
    run_month_end: date, terminals: Iterable[Terminal], contracts: Iterable[PartnerContract]
) -> list[PartnerFee]:
    """The MAINTENANCE lines of a month-end run: 5,500 fen per terminal active on the month's
    last day, no proration, to the maintaining partner in force on that day (none: no fee)."""
    if run_month_end != month_end(run_month_end):
        raise InvalidInput("maintenance_fee", "run_month_end", "must be the last day of a month")
    contracts = tuple(contracts)
    fees: list[PartnerFee] = []
    for terminal in terminals:
        if not terminal.active_on(run_month_end):
            continue
        contract = contract_in_force(
            contracts, PartnerRole.MAINTAINING, terminal.terminal_id, run_month_end
        )
        if contract is None:
            continue
        fees.append(
            PartnerFee(
                contract.partner_id, FeeKind.MAINTENANCE, terminal.terminal_id, MAINTENANCE_FEE_FEN
            )
        )
    return sorted(fees)


def deposit_movements_fen(business_date: date, terminals: Iterable[Terminal]) -> dict[str, int]:
    """Per merchant, the deposit_fen of the day: +100,000 per terminal deployed that day (owed,
    Dr MERCHANT_PAY Cr DEPOSITS_HELD), -100,000 per terminal returned that day (netted back).
    Merchants without a movement are absent."""
    movements: dict[str, int] = {}
    for terminal in terminals:
        delta = 0
        if terminal.deployed_on == business_date:
            delta += POS_DEPOSIT_FEN
        if terminal.returned_on == business_date:
            delta -= POS_DEPOSIT_FEN
        if delta:
            movements[terminal.merchant_id] = movements.get(terminal.merchant_id, 0) + delta
    return dict(sorted(movements.items()))


def deposits_held_fen(day: date, terminals: Iterable[Terminal], merchant_id: str) -> int:
    """DEPOSITS_HELD:<merchant> at the end of ``day``: 100,000 per terminal deployed on or before
    it and not yet returned. The unpaid part of it is the merchant's receivable."""
    return POS_DEPOSIT_FEN * sum(
        1
        for t in terminals
        if t.merchant_id == merchant_id
        and t.deployed_on <= day
        and (t.returned_on is None or t.returned_on > day)
    )


@dataclass(frozen=True, slots=True)
class MerchantPayout:
    """What a merchant is paid for a day, and what it still owes (a receivable carried to the
    next day). Never both non-zero."""

    payable_fen: int
    receivable_fen: int


def merchant_payout(net_fen: int, receivable_in_fen: int = 0) -> MerchantPayout:
    """Nets the day's net_fen (gross - refund - commission - load - deposit) against what the
    merchant still owed from earlier days: a negative result is carried forward as a
    receivable, never paid out as negative (clearing.md §7)."""
    check_int("merchant_payout", "net_fen", net_fen, -(2**62), None)
    check_int("merchant_payout", "receivable_in_fen", receivable_in_fen, 0, None)
    total = net_fen - receivable_in_fen
    payout = MerchantPayout(max(total, 0), max(-total, 0))
    assert payout.payable_fen - payout.receivable_fen == total
    return payout
