"""Receipts: plain text for a receipt printer of ``width`` columns (32 for 58 mm paper, 42 for
80 mm; 24..48 accepted). Pure: the outcome and the merchant's header in, lines out.

A transaction receipt: merchant name and ID, terminal ID, the transaction kind and its result,
the card's ASN masked (first 6 and last 4 digits kept), amount and balance in yuan, date and
time, batch and trace, RRN, authorisation code, TAC, and the merchant's one-line message when it
was not approved. A settlement report: the batch, the terminal's totals (count and amount of
sales, refunds and loads), whether the host's totals balanced, the upload, the next batch.

The outcomes are read through Protocols (``pos_terminal.service.TxnOutcome`` and
``SettlementOutcome`` fit them), so this module depends on no adapter.
"""

from __future__ import annotations

import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from paycore.iso8583.fields import SettlementTotals
from paycore.money import format_fen

__all__ = [
    "WIDTH_DEFAULT",
    "ReceiptHeader",
    "SettlementFacts",
    "TxnFacts",
    "mask_asn",
    "settlement_report",
    "txn_receipt",
]

WIDTH_DEFAULT: Final = 32
WIDTH_MIN: Final = 24
WIDTH_MAX: Final = 48
#: The merchant's message is wrapped to at most this many lines.
MESSAGE_LINES_MAX: Final = 4
KIND_TITLES: Final = {"sale": "SALE", "load": "LOAD (TOP-UP)", "refund": "REFUND"}
ASN_KEEP_FIRST: Final = 6
ASN_KEEP_LAST: Final = 4


class TxnFacts(Protocol):
    """What a transaction receipt shows (``TxnOutcome`` has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def approved(self) -> bool: ...
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def amount_fen(self) -> int: ...
    @property
    def asn(self) -> str | None: ...
    @property
    def rrn(self) -> str | None: ...
    @property
    def auth_code(self) -> str | None: ...
    @property
    def tac(self) -> bytes | None: ...
    @property
    def stan(self) -> int: ...
    @property
    def batch_no(self) -> int: ...
    @property
    def balance_after_fen(self) -> int | None: ...
    @property
    def at(self) -> datetime: ...


class SettlementFacts(Protocol):
    """What a settlement report shows (``SettlementOutcome`` has it)."""

    @property
    def batch_no(self) -> int: ...
    @property
    def balanced(self) -> bool: ...
    @property
    def uploaded(self) -> int: ...
    @property
    def terminal_totals(self) -> SettlementTotals: ...
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def next_batch_no(self) -> int: ...
    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class ReceiptHeader:
    merchant_name: str
    merchant_id: str
    terminal_id: str


def mask_asn(asn: str) -> str:
    """``8888000000000042`` → ``888800******0042``: the first 6 and last 4 digits kept; a
    number too short to keep 10 digits shows only its last 4."""
    keep = ASN_KEEP_FIRST + ASN_KEEP_LAST
    if len(asn) > keep:
        return asn[:ASN_KEEP_FIRST] + "*" * (len(asn) - keep) + asn[-ASN_KEEP_LAST:]
    return "*" * max(0, len(asn) - ASN_KEEP_LAST) + asn[-ASN_KEEP_LAST:]


def _printable(text: str) -> str:
    """One line of printable ASCII (a receipt printer's code page is not ours to guess)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(c if c.isprintable() else " " for c in folded).strip()


class _Page:
    def __init__(self, width: int) -> None:
        if not WIDTH_MIN <= width <= WIDTH_MAX:
            raise ValueError(f"receipt width must be {WIDTH_MIN}..{WIDTH_MAX} columns")
        self.width = width
        self.lines: list[str] = []

    def rule(self, char: str = "-") -> None:
        self.lines.append(char * self.width)

    def centre(self, text: str) -> None:
        self.lines.append(_printable(text)[: self.width].center(self.width).rstrip())

    def pair(self, label: str, value: str) -> None:
        """``label`` on the left, ``value`` on the right; the value on its own line (right
        aligned, cut to the width) when both do not fit."""
        value = _printable(value)[: self.width]
        gap = self.width - len(label) - len(value)
        if gap >= 1:
            self.lines.append(label + " " * gap + value)
        else:
            self.lines.append(label)
            self.lines.append(value.rjust(self.width))

    def wrapped(self, text: str) -> None:
        lines = textwrap.wrap(_printable(text), self.width) or [""]
        self.lines.extend(lines[:MESSAGE_LINES_MAX])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _header(page: _Page, header: ReceiptHeader) -> None:
    page.rule("=")
    page.centre(header.merchant_name)
    page.pair("MERCHANT", header.merchant_id)
    page.pair("TERMINAL", header.terminal_id)
    page.rule()


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def txn_receipt(facts: TxnFacts, header: ReceiptHeader, *, width: int = WIDTH_DEFAULT) -> str:
    """The receipt of one sale, load or refund, approved or not."""
    page = _Page(width)
    _header(page, header)
    verdict = "APPROVED" if facts.approved else "DECLINED"
    page.pair(KIND_TITLES.get(facts.kind, _printable(facts.kind).upper()), verdict)
    if facts.asn:
        page.pair("CARD", mask_asn(facts.asn))
    page.pair("AMOUNT CNY", format_fen(facts.amount_fen))
    if facts.approved and facts.balance_after_fen is not None:
        page.pair("BALANCE CNY", format_fen(facts.balance_after_fen))
    page.pair("DATE/TIME", _when(facts.at))
    page.pair("BATCH/TRACE", f"{facts.batch_no:06d}/{facts.stan:06d}")
    if facts.rrn:
        page.pair("RRN", facts.rrn)
    if facts.auth_code:
        page.pair("AUTH CODE", facts.auth_code)
    if facts.tac:
        page.pair("TAC", facts.tac.hex().upper())
    page.rule()
    page.pair("RESPONSE", facts.code)
    if not facts.approved:
        page.wrapped(facts.message)
    page.rule("=")
    return page.text()


def settlement_report(
    facts: SettlementFacts, header: ReceiptHeader, *, width: int = WIDTH_DEFAULT
) -> str:
    """The day-end report of one batch."""
    page = _Page(width)
    _header(page, header)
    page.pair("SETTLEMENT", f"BATCH {facts.batch_no:06d}")
    page.pair("DATE/TIME", _when(facts.at))
    page.rule()
    totals = facts.terminal_totals
    amount_w = max(4, *(len(format_fen(a)) for a in _amounts(totals)))
    count_w = 5
    cells_w = count_w + 1 + amount_w
    page.lines.append(
        " " * (width - cells_w) + "COUNT".rjust(count_w) + " " + "CNY".rjust(amount_w)
    )
    for label, count, amount_fen in (
        ("SALES", totals.purchase_count, totals.purchase_amount_fen),
        ("REFUNDS", totals.refund_count, totals.refund_amount_fen),
        ("LOADS", totals.load_count, totals.load_amount_fen),
    ):
        cells = f"{count:>{count_w}d} {format_fen(amount_fen):>{amount_w}}"
        page.pair(label, cells)
    page.rule()
    if facts.code == "00":
        page.pair("HOST TOTALS", "BALANCED" if facts.balanced else "NOT BALANCED")
        if not facts.balanced:
            page.pair("UPLOADED", str(facts.uploaded))
        page.pair("NEXT BATCH", f"{facts.next_batch_no:06d}")
        page.pair("RESULT", "SETTLED 00")
    else:
        page.pair("RESULT", f"NOT SETTLED {facts.code}")
        page.wrapped(facts.message)
    page.rule("=")
    return page.text()


def _amounts(totals: SettlementTotals) -> tuple[int, int, int]:
    return (totals.purchase_amount_fen, totals.refund_amount_fen, totals.load_amount_fen)
