"""The 7:2:1 split of the acquiring commission (clearing.md §3), by largest remainder per group
(business_date, issuer, acquirer). For C ≥ 0: base_k = C·w_k // 10 with w = (7, 2, 1); the
0-2 fen left go one each to the parties with the largest remainders C·w_k mod 10, ties in the
order issuer, acquirer, network. For C < 0: split(C) = -split(-C). The shares always sum to C.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Final

from clearing.domain.errors import InvalidInput

#: Issuer, acquirer, network (clearing.md §3); the order is also the tie order.
WEIGHTS: Final = (7, 2, 1)
WEIGHT_TOTAL: Final = 10


@dataclass(frozen=True, slots=True)
class Shares:
    """One group's commission split three ways; the shares sum to the commission."""

    issuer_fen: int
    acquirer_fen: int
    network_fen: int

    @property
    def total_fen(self) -> int:
        return self.issuer_fen + self.acquirer_fen + self.network_fen

    def __neg__(self) -> Shares:
        return Shares(-self.issuer_fen, -self.acquirer_fen, -self.network_fen)


@dataclass(frozen=True, slots=True, order=True)
class SplitGroup:
    """The group the split is computed for (clearing.md §3)."""

    business_date: date
    issuer_id: str
    acquirer_id: str


def split_commission(commission_fen: int) -> Shares:
    """The 7:2:1 largest-remainder split of one group's commission (negative allowed)."""
    if isinstance(commission_fen, bool) or not isinstance(commission_fen, int):
        raise InvalidInput("split", "commission_fen", "must be an integer")
    if commission_fen < 0:
        return -split_commission(-commission_fen)
    c = commission_fen
    bases = [c * w // WEIGHT_TOTAL for w in WEIGHTS]
    remainders = [c * w % WEIGHT_TOTAL for w in WEIGHTS]
    left = c - sum(bases)
    assert 0 <= left <= len(WEIGHTS) - 1
    # Largest remainder first; on equal remainders the lower index (issuer, acquirer, network).
    order = sorted(range(len(WEIGHTS)), key=lambda k: (-remainders[k], k))
    for k in order[:left]:
        bases[k] += 1
    shares = Shares(*bases)
    assert shares.total_fen == c
    return shares


def group_commissions(items: Iterable[tuple[SplitGroup, int]]) -> dict[SplitGroup, int]:
    """C per group: the sum of the commissions charged (positive) and returned (negative)."""
    totals: dict[SplitGroup, int] = {}
    for group, commission_fen in items:
        totals[group] = totals.get(group, 0) + commission_fen
    return totals


def split_groups(items: Iterable[tuple[SplitGroup, int]]) -> dict[SplitGroup, Shares]:
    """Every group's shares, sorted by group; each group is split once, on its sum (never per
    transaction, which would not add up to the group's split)."""
    totals = group_commissions(items)
    return {group: split_commission(totals[group]) for group in sorted(totals)}
