"""The 7:2:1 largest-remainder split (clearing.md §3)."""

from __future__ import annotations

from datetime import date

import pytest

from clearing.domain.errors import InvalidInput
from clearing.domain.split import Shares, SplitGroup, split_commission, split_groups


@pytest.mark.parametrize(
    ("commission_fen", "expected"),
    [
        (385, Shares(270, 77, 38)),  # remainders 5/0/5: the tie goes to the issuer
        (13, Shares(9, 3, 1)),  # remainders 1/6/3: the acquirer
        (1_298, Shares(909, 259, 130)),  # remainders 6/6/8: network, then issuer over acquirer
        (0, Shares(0, 0, 0)),
        (1, Shares(1, 0, 0)),  # remainders 7/2/1
        (5, Shares(4, 1, 0)),  # 3.5/1/0.5: remainders 5/0/5 -> issuer first
        (10, Shares(7, 2, 1)),
    ],
)
def test_examples(commission_fen: int, expected: Shares) -> None:
    assert split_commission(commission_fen) == expected
    assert split_commission(-commission_fen) == -expected


def test_negative_commission_is_the_mirror() -> None:
    assert split_commission(-385) == Shares(-270, -77, -38)
    assert split_commission(-13).total_fen == -13


def test_a_non_integer_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"split\.commission_fen: must be an integer"):
        split_commission(True)


def test_groups_are_split_on_their_sum_not_per_transaction() -> None:
    day = date(2026, 3, 2)
    g1 = SplitGroup(day, "ISS1", "ACQ1")
    g2 = SplitGroup(day, "ISS2", "ACQ1")
    # Per transaction 5 + 5 would give 4/1/0 twice = 8/2/0; on the sum 10 it is 7/2/1.
    shares = split_groups([(g1, 5), (g2, 13), (g1, 5), (g2, -13)])
    assert shares == {g1: Shares(7, 2, 1), g2: Shares(0, 0, 0)}
    assert list(shares) == [g1, g2]
