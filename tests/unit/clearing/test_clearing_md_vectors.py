"""The values published in shared/design/clearing.md (tests/vectors/clearing_md_vectors.json),
each checked against clearing's domain; every record names its source."""

from __future__ import annotations

from datetime import date

import pytest

from clearing.domain import partners
from clearing.domain.commission import (
    AMOUNT_MAX_FEN,
    CommissionRule,
    commission_fen,
    discount_rate_bp,
    rate_fen,
)
from clearing.domain.partners import partner_share_fen
from clearing.domain.split import Shares, split_commission
from tests.unit.paycore.test_vectors import Record, load_vectors

FILE = "clearing_md_vectors.json"
MID = "898310048990001"


def ids(records: list[Record]) -> list[str]:
    return [str(r["name"]) for r in records]


COMMISSION = load_vectors(FILE, "commission")
DISCOUNT = load_vectors(FILE, "discount")
SPLIT = load_vectors(FILE, "split")
SHARE = load_vectors(FILE, "partner_share")
FIXED = load_vectors(FILE, "fixed_fees")


@pytest.mark.parametrize("v", COMMISSION, ids=ids(COMMISSION))
def test_commission(v: Record) -> None:
    assert rate_fen(v["amount_fen"], v["rate_bp"]) == v["commission_fen"]
    rule = CommissionRule.percent(MID, 1, date(2026, 1, 1), rate_bp=v["rate_bp"])
    assert commission_fen(rule, v["amount_fen"]) == v["commission_fen"]


@pytest.mark.parametrize("v", DISCOUNT, ids=ids(DISCOUNT))
def test_discount(v: Record) -> None:
    assert discount_rate_bp(v["user_bp"], v["settle_bp"]) == v["rate_bp"]


@pytest.mark.parametrize("v", SPLIT, ids=ids(SPLIT))
def test_split(v: Record) -> None:
    expected = Shares(v["issuer_fen"], v["acquirer_fen"], v["network_fen"])
    assert split_commission(v["commission_fen"]) == expected
    assert split_commission(-v["commission_fen"]) == -expected


@pytest.mark.parametrize("v", SHARE, ids=ids(SHARE))
def test_partner_share(v: Record) -> None:
    assert partner_share_fen(v["commission_fen"], v["share_bp"]) == v["share_fen"]


@pytest.mark.parametrize("v", FIXED, ids=ids(FIXED))
def test_fixed_fees(v: Record) -> None:
    assert v["maintenance_fee_fen"] == partners.MAINTENANCE_FEE_FEN
    assert v["pos_deposit_fen"] == partners.POS_DEPOSIT_FEN
    assert v["expansion_fee_min_fen"] == partners.EXPANSION_FEE_MIN_FEN
    assert v["expansion_fee_max_fen"] == partners.EXPANSION_FEE_MAX_FEN
    assert v["retention_days_default"] == partners.RETENTION_DAYS_DEFAULT
    assert v["amount_max_fen"] == AMOUNT_MAX_FEN
