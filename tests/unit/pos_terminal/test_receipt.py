"""Receipts and the settlement report, as exact text."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycore.iso8583.fields import SettlementTotals
from pos_terminal.domain.receipt import (
    ReceiptHeader,
    mask_asn,
    settlement_report,
    txn_receipt,
)

HEADER = ReceiptHeader("Noodle House", "898310048990001", "T0000001")


@dataclass(frozen=True)
class Outcome:
    """The shape of pos_terminal.service.TxnOutcome."""

    kind: str
    approved: bool
    code: str
    message: str
    amount_fen: int
    asn: str | None
    rrn: str | None
    auth_code: str | None
    tac: bytes | None
    stan: int
    batch_no: int
    business_date_mmdd: str | None
    balance_after_fen: int | None
    at: datetime


@dataclass(frozen=True)
class Settled:
    """The shape of pos_terminal.service.SettlementOutcome."""

    batch_no: int
    balanced: bool
    uploaded: int
    terminal_totals: SettlementTotals
    code: str
    message: str
    next_batch_no: int
    at: datetime


SALE = Outcome(
    kind="sale", approved=True, code="00", message="approved", amount_fen=1_250,
    asn="8888000000000042", rrn="000000123456", auth_code="654321",
    tac=bytes.fromhex("1A2B3C4D"), stan=12, batch_no=1, business_date_mmdd="1122",
    balance_after_fen=8_750, at=datetime(2026, 11, 22, 12, 30, 5),
)  # fmt: skip


def test_approved_sale() -> None:
    assert txn_receipt(SALE, HEADER) == (
        "================================\n"
        "          Noodle House\n"
        "MERCHANT         898310048990001\n"
        "TERMINAL                T0000001\n"
        "--------------------------------\n"
        "SALE                    APPROVED\n"
        "CARD            888800******0042\n"
        "AMOUNT CNY                 12.50\n"
        "BALANCE CNY                87.50\n"
        "DATE/TIME    2026-11-22 12:30:05\n"
        "BATCH/TRACE        000001/000012\n"
        "RRN                 000000123456\n"
        "AUTH CODE                 654321\n"
        "TAC                     1A2B3C4D\n"
        "--------------------------------\n"
        "RESPONSE                      00\n"
        "================================\n"
    )


def test_declined_load_at_40_columns_wraps_the_message() -> None:
    declined = replace(
        SALE, kind="load", approved=False, code="51", amount_fen=10_000, rrn=None,
        auth_code=None, tac=None, stan=13, balance_after_fen=None,
        message="insufficient balance on the card account, please top up with cash first",
    )  # fmt: skip
    assert txn_receipt(declined, HEADER, width=40) == (
        "========================================\n"
        "              Noodle House\n"
        "MERCHANT                 898310048990001\n"
        "TERMINAL                        T0000001\n"
        "----------------------------------------\n"
        "LOAD (TOP-UP)                   DECLINED\n"
        "CARD                    888800******0042\n"
        "AMOUNT CNY                        100.00\n"
        "DATE/TIME            2026-11-22 12:30:05\n"
        "BATCH/TRACE                000001/000013\n"
        "----------------------------------------\n"
        "RESPONSE                              51\n"
        "insufficient balance on the card\n"
        "account, please top up with cash first\n"
        "========================================\n"
    )


def test_refund_refused_before_the_card_has_no_card_line() -> None:
    refused = replace(
        SALE, kind="refund", approved=False, code="amount", asn=None, rrn=None,
        auth_code=None, tac=None, balance_after_fen=None, amount_fen=50_000,
        message="refunds are under 500.00 yuan",
    )  # fmt: skip
    text = txn_receipt(refused, HEADER)
    assert "CARD" not in text and "TAC" not in text and "BALANCE" not in text
    assert "REFUND                  DECLINED\n" in text
    assert "AMOUNT CNY                500.00\n" in text
    assert text.endswith(
        "RESPONSE                  amount\nrefunds are under 500.00 yuan\n" + "=" * 32 + "\n"
    )


def test_every_line_fits_and_is_printable_ascii() -> None:
    odd = replace(SALE, message="拒绝\x1b[31m 交易")
    long_header = ReceiptHeader(
        "Très Long Merchant Name — Noodle House of Lanzhou", "898310048990001", "T0000001"
    )
    for width in (24, 32, 42, 48):
        for text in (
            txn_receipt(odd, long_header, width=width),
            txn_receipt(replace(odd, approved=False), long_header, width=width),
        ):
            for line in text.splitlines():
                assert len(line) <= width, (width, line)
                assert line.isascii() and line.isprintable(), line
    assert "Tres Long Merchant Name" in txn_receipt(SALE, long_header)


def test_width_limits() -> None:
    for width in (23, 49):
        with pytest.raises(ValueError, match=r"24\.\.48"):
            txn_receipt(SALE, HEADER, width=width)


@pytest.mark.parametrize(
    ("asn", "masked"),
    [
        ("8888000000000042", "888800******0042"),
        ("6212345678901234567", "621234*********4567"),
        ("1234567890", "******7890"),
        ("1234", "1234"),
    ],
)
def test_mask_asn(asn: str, masked: str) -> None:
    assert mask_asn(asn) == masked


def test_the_full_asn_never_appears() -> None:
    assert "8888000000000042" not in txn_receipt(SALE, HEADER)


def test_settlement_balanced() -> None:
    report = Settled(
        batch_no=1, balanced=True, uploaded=0,
        terminal_totals=SettlementTotals(6_730, 3, 500, 1, 5_000, 1), code="00",
        message="settled", next_batch_no=2, at=datetime(2026, 11, 22, 23, 59),
    )  # fmt: skip
    assert settlement_report(report, HEADER) == (
        "================================\n"
        "          Noodle House\n"
        "MERCHANT         898310048990001\n"
        "TERMINAL                T0000001\n"
        "--------------------------------\n"
        "SETTLEMENT          BATCH 000001\n"
        "DATE/TIME    2026-11-22 23:59:00\n"
        "--------------------------------\n"
        "                     COUNT   CNY\n"
        "SALES                    3 67.30\n"
        "REFUNDS                  1  5.00\n"
        "LOADS                    1 50.00\n"
        "--------------------------------\n"
        "HOST TOTALS             BALANCED\n"
        "NEXT BATCH                000002\n"
        "RESULT                SETTLED 00\n"
        "================================\n"
    )


def test_settlement_not_balanced_and_not_settled() -> None:
    unbalanced = Settled(
        batch_no=7, balanced=False, uploaded=4,
        terminal_totals=SettlementTotals(1_234_567, 120, 0, 0, 0, 0), code="00",
        message="settled", next_batch_no=8, at=datetime(2026, 11, 22, 23, 59),
    )  # fmt: skip
    text = settlement_report(unbalanced, HEADER)
    assert (
        "                  COUNT      CNY\n"
        "SALES               120 12345.67\n"
        "REFUNDS               0     0.00\n"
    ) in text
    assert "HOST TOTALS         NOT BALANCED\nUPLOADED                       4\n" in text
    refused = replace(unbalanced, code="96", message="the host could not settle now")
    text = settlement_report(refused, HEADER)
    assert text.endswith(
        "RESULT            NOT SETTLED 96\nthe host could not settle now\n" + "=" * 32 + "\n"
    )
    assert "NEXT BATCH" not in text


@given(
    name=st.text(max_size=60),
    message=st.text(max_size=300),
    amount_fen=st.integers(min_value=0, max_value=10**12),
    balance_fen=st.none() | st.integers(min_value=0, max_value=10**12),
    asn=st.none() | st.text(alphabet="0123456789", min_size=1, max_size=19),
    code=st.text(min_size=1, max_size=12),
    approved=st.booleans(),
    width=st.integers(min_value=24, max_value=48),
)
def test_any_outcome_prints_in_the_width(
    name: str,
    message: str,
    amount_fen: int,
    balance_fen: int | None,
    asn: str | None,
    code: str,
    approved: bool,
    width: int,
) -> None:
    outcome = replace(
        SALE, message=message, amount_fen=amount_fen, balance_after_fen=balance_fen, asn=asn,
        code=code, approved=approved,
    )  # fmt: skip
    header = ReceiptHeader(name, "898310048990001", "T0000001")
    text = txn_receipt(outcome, header, width=width)
    for line in text.splitlines():
        assert len(line) <= width and line.isascii() and line.isprintable(), line
    assert ("APPROVED" if approved else "DECLINED") in text
    card_lines = [line for line in text.splitlines() if line.startswith("CARD ")]
    assert len(card_lines) == (1 if asn else 0)
    if asn is not None and len(asn) > 10:
        assert asn not in card_lines[0] and card_lines[0].endswith(mask_asn(asn))
    totals = SettlementTotals(amount_fen, 999, amount_fen, 0, amount_fen, 1)
    report = Settled(1, approved, 0, totals, code, message, 2, SALE.at)
    for line in settlement_report(report, header, width=width).splitlines():
        assert len(line) <= width and line.isascii() and line.isprintable(), line
