"""The settlement files of a clearing run (clearing.md §7), as bytes. Pure: rows in, bytes out.

Every encoder checks every field (a bad one raises ``InvalidInput`` naming the record and the
field), sorts the rows itself (so the same rows in any order give the same bytes) and writes:
a header line, one line per row, and a last line ``TOTAL``. UTF-8, LF line ends, dates as
YYYY-MM-DD, amounts as integers in fen, CSV quoting by the ``csv`` module (minimal: a cell is
quoted only when it holds a comma or a double quote). Text cells may not hold control
characters (so one record is always one line) and a first cell may not be ``TOTAL``.

Sort order is by code point (Python's ``str`` order, the same as the UTF-8 bytes), never by a
database collation.

The TOTAL line (docs/clearing-files.md): ``TOTAL`` in the first column, then per column either
its sum or an empty cell where a sum makes no sense:
- merchant_settlement: business_date empty; txn_count and every ``*_fen`` column summed.
- party_settlement: party_id and business_date empty; commission_base_fen empty (each split
  group's commission is the base of all three of its parties, so a sum would count it three
  times); share_fen summed (the day's commission) and payable_fen summed (a control total).
- partner_statement: kind and reference empty; amount_fen summed.
- exceptions: terminal_id, batch, stan, rrn, asn, effect and reason empty; amount_fen and
  other_amount_fen summed (control totals; an empty cell counts as 0).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Final, TypeVar

from clearing.domain.errors import InvalidInput, check_int
from clearing.domain.partners import FeeKind
from clearing.domain.reconciliation import EFFECTS, Effect, ExceptionCode, ExceptionRow

#: A limit on every amount in a file: far above any day (10^15 fen is ten trillion yuan) and
#: far below BIGINT, so sums of a file's rows cannot overflow a database column either.
AMOUNT_ABS_MAX_FEN: Final = 10**15 - 1
COUNT_MAX: Final = 10**12
ROWS_MAX: Final = 10_000_000
MERCHANT_ID_MAX: Final = 15  # field 42
TERMINAL_ID_MAX: Final = 8  # field 41
PARTY_ID_MAX: Final = 32
RRN_MAX: Final = 12
ASN_MAX: Final = 16
BATCH_MAX: Final = 999_999
STAN_MAX: Final = 999_999
REASON_MAX: Final = 500
TOTAL: Final = "TOTAL"

MERCHANT_HEADER: Final = (
    "merchant_id",
    "business_date",
    "txn_count",
    "gross_fen",
    "commission_fen",
    "refund_fen",
    "load_fen",
    "deposit_fen",
    "net_fen",
)
PARTY_HEADER: Final = (
    "party_role",
    "party_id",
    "business_date",
    "commission_base_fen",
    "share_fen",
    "payable_fen",
)
PARTNER_HEADER: Final = ("partner_id", "kind", "reference", "amount_fen")
EXCEPTIONS_HEADER: Final = (
    "code",
    "terminal_id",
    "batch",
    "stan",
    "rrn",
    "asn",
    "amount_fen",
    "other_amount_fen",
    "effect",
    "reason",
)


class FileKind(StrEnum):
    MERCHANT_SETTLEMENT = "merchant_settlement"
    PARTY_SETTLEMENT = "party_settlement"
    PARTNER_STATEMENT = "partner_statement"  # monthly: named by the month
    EXCEPTIONS = "exceptions"


class PartyRole(StrEnum):
    """The parties of the 7:2:1 split, in file order."""

    ISSUER = "issuer"
    ACQUIRER = "acquirer"
    NETWORK = "network"


_ROLE_ORDER: Final = {role: n for n, role in enumerate(PartyRole)}
_R = TypeVar("_R")


def file_name(kind: FileKind | str, business_date_or_month: date) -> str:
    """``merchant_settlement_YYYYMMDD.csv`` and the like; a partner statement is named by the
    month of the date given (``partner_statement_YYYYMM.csv``; any day of the month will do)."""
    try:
        kind = FileKind(kind)
    except ValueError:
        raise InvalidInput("file_name", "kind", f"unknown file kind {kind!r}") from None
    _check_date("file_name", "business_date_or_month", business_date_or_month)
    d = business_date_or_month
    stamp = f"{d.year:04d}{d.month:02d}"
    if kind is not FileKind.PARTNER_STATEMENT:
        stamp += f"{d.day:02d}"
    return f"{kind.value}_{stamp}.csv"


# --- field checks -------------------------------------------------------------------------


def _check_text(record: str, name: str, value: object, max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(record, name, "must be text")
    if not value:
        raise InvalidInput(record, name, "must not be empty")
    if len(value) > max_len:
        raise InvalidInput(record, name, f"must be at most {max_len} characters")
    for ch in value:
        if ch < " " or "\x7f" <= ch <= "\x9f":
            raise InvalidInput(record, name, f"must not hold control character {ch!r}")
    return value


def _check_key(record: str, name: str, value: object, max_len: int) -> str:
    """An identifier that is also the first cell of its line: never ``TOTAL``."""
    text = _check_text(record, name, value, max_len)
    if text == TOTAL:
        raise InvalidInput(record, name, f"{TOTAL!r} is reserved for the last line")
    return text


def _check_date(record: str, name: str, value: object) -> None:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidInput(record, name, "must be a date (not a datetime)")


def _check_fen(record: str, name: str, value: object, low: int = -AMOUNT_ABS_MAX_FEN) -> None:
    check_int(record, name, value, low, AMOUNT_ABS_MAX_FEN)


# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerchantSettlementRow:
    """One merchant's day: ``txn_count`` counts purchases only; ``commission_fen`` is charged
    minus returned (may be negative); ``deposit_fen`` is deposits collected minus returned (may
    be negative); ``net_fen`` = gross - refund - commission - load - deposit (checked)."""

    merchant_id: str
    business_date: date
    txn_count: int
    gross_fen: int
    commission_fen: int
    refund_fen: int
    load_fen: int
    deposit_fen: int
    net_fen: int

    def __post_init__(self) -> None:
        r = "merchant_settlement_row"
        _check_key(r, "merchant_id", self.merchant_id, MERCHANT_ID_MAX)
        _check_date(r, "business_date", self.business_date)
        check_int(r, "txn_count", self.txn_count, 0, COUNT_MAX)
        _check_fen(r, "gross_fen", self.gross_fen, 0)
        _check_fen(r, "commission_fen", self.commission_fen)
        _check_fen(r, "refund_fen", self.refund_fen, 0)
        _check_fen(r, "load_fen", self.load_fen, 0)
        _check_fen(r, "deposit_fen", self.deposit_fen)
        _check_fen(r, "net_fen", self.net_fen)
        expected = (
            self.gross_fen
            - self.refund_fen
            - self.commission_fen
            - self.load_fen
            - self.deposit_fen
        )
        if self.net_fen != expected:
            raise InvalidInput(
                r, "net_fen", f"must be gross - refund - commission - load - deposit = {expected}"
            )

    def cells(self) -> tuple[str | int, ...]:
        return (
            self.merchant_id,
            self.business_date.isoformat(),
            self.txn_count,
            self.gross_fen,
            self.commission_fen,
            self.refund_fen,
            self.load_fen,
            self.deposit_fen,
            self.net_fen,
        )


@dataclass(frozen=True, slots=True)
class PartySettlementRow:
    """One party's day. ``payable_fen``: an issuer's obligation (purchases - refunds - loads -
    its share); an acquirer's or network's share (checked equal to ``share_fen``)."""

    party_role: PartyRole | str
    party_id: str
    business_date: date
    commission_base_fen: int
    share_fen: int
    payable_fen: int

    def __post_init__(self) -> None:
        r = "party_settlement_row"
        try:
            role = PartyRole(self.party_role)
        except ValueError:
            raise InvalidInput(r, "party_role", "must be issuer, acquirer or network") from None
        object.__setattr__(self, "party_role", role)
        _check_text(r, "party_id", self.party_id, PARTY_ID_MAX)
        _check_date(r, "business_date", self.business_date)
        _check_fen(r, "commission_base_fen", self.commission_base_fen)
        _check_fen(r, "share_fen", self.share_fen)
        _check_fen(r, "payable_fen", self.payable_fen)
        if role is not PartyRole.ISSUER and self.payable_fen != self.share_fen:
            raise InvalidInput(r, "payable_fen", f"an {role.value}'s payable is its share")

    def cells(self) -> tuple[str | int, ...]:
        return (
            PartyRole(self.party_role).value,
            self.party_id,
            self.business_date.isoformat(),
            self.commission_base_fen,
            self.share_fen,
            self.payable_fen,
        )


@dataclass(frozen=True, slots=True)
class PartnerStatementRow:
    """One line of a month's partner statement. ``reference``: the business date YYYY-MM-DD
    (SHARE, may be negative after refunds), the merchant_id (EXPANSION, 20,000..200,000 fen) or
    the terminal_id (MAINTENANCE, >= 0)."""

    partner_id: str
    kind: FeeKind | str
    reference: str
    amount_fen: int

    def __post_init__(self) -> None:
        r = "partner_statement_row"
        _check_key(r, "partner_id", self.partner_id, PARTY_ID_MAX)
        try:
            kind = FeeKind(self.kind)
        except ValueError:
            raise InvalidInput(r, "kind", "must be SHARE, EXPANSION or MAINTENANCE") from None
        object.__setattr__(self, "kind", kind)
        if kind is FeeKind.SHARE:
            _check_text(r, "reference", self.reference, 10)
            try:
                day = date.fromisoformat(self.reference)
            except ValueError:
                day = None
            if day is None or day.isoformat() != self.reference:
                raise InvalidInput(r, "reference", "a SHARE's reference is a date YYYY-MM-DD")
            _check_fen(r, "amount_fen", self.amount_fen)
        elif kind is FeeKind.EXPANSION:
            _check_text(r, "reference", self.reference, MERCHANT_ID_MAX)
            check_int(r, "amount_fen", self.amount_fen, 20_000, 200_000)
        else:
            _check_text(r, "reference", self.reference, TERMINAL_ID_MAX)
            _check_fen(r, "amount_fen", self.amount_fen, 0)

    def cells(self) -> tuple[str | int, ...]:
        return (self.partner_id, FeeKind(self.kind).value, self.reference, self.amount_fen)


@dataclass(frozen=True, slots=True)
class ExceptionFileRow:
    """One line of exceptions_<YYYYMMDD>.csv. ``None`` cells are written empty (a batch-level
    row has no stan, rrn or asn; most codes have no other amount). ``effect`` is the code's
    effects joined by ``+`` in the fixed order of ``reconciliation.effect_label``; a subset
    of them is accepted (a run may know that only part of an effect applies)."""

    code: ExceptionCode | str
    terminal_id: str
    batch: int | None
    stan: int | None
    rrn: str | None
    asn: str | None
    amount_fen: int | None
    other_amount_fen: int | None
    effect: str
    reason: str | None

    def __post_init__(self) -> None:
        r = "exception_file_row"
        try:
            code = ExceptionCode(self.code)
        except ValueError:
            raise InvalidInput(r, "code", f"unknown exception code {self.code!r}") from None
        if code is ExceptionCode.MATCHED:
            raise InvalidInput(r, "code", "MATCHED is not an exception")
        object.__setattr__(self, "code", code)
        _check_text(r, "terminal_id", self.terminal_id, TERMINAL_ID_MAX)
        if self.batch is not None:
            check_int(r, "batch", self.batch, 1, BATCH_MAX)
        if self.stan is not None:
            check_int(r, "stan", self.stan, 1, STAN_MAX)
        if self.rrn is not None:
            _check_text(r, "rrn", self.rrn, RRN_MAX)
        if self.asn is not None:
            _check_text(r, "asn", self.asn, ASN_MAX)
        if self.amount_fen is not None:
            _check_fen(r, "amount_fen", self.amount_fen, 0)
        if self.other_amount_fen is not None:
            _check_fen(r, "other_amount_fen", self.other_amount_fen, 0)
        _check_effect(r, code, self.effect)
        if self.reason is not None:
            _check_text(r, "reason", self.reason, REASON_MAX)

    @classmethod
    def from_exception_row(cls, row: ExceptionRow) -> ExceptionFileRow:
        """The file line of a reconciliation row (its empty rrn/asn become empty cells)."""
        return cls(
            code=row.code,
            terminal_id=row.terminal_id,
            batch=row.batch_no,
            stan=row.stan,
            rrn=row.rrn or None,
            asn=row.asn or None,
            amount_fen=row.amount_fen,
            other_amount_fen=row.other_amount_fen,
            effect=row.effect,
            reason=row.reason or None,
        )

    def cells(self) -> tuple[str | int, ...]:
        return (
            ExceptionCode(self.code).value,
            self.terminal_id,
            _opt(self.batch),
            _opt(self.stan),
            _opt(self.rrn),
            _opt(self.asn),
            _opt(self.amount_fen),
            _opt(self.other_amount_fen),
            self.effect,
            _opt(self.reason),
        )


_EFFECT_ORDER: Final = tuple(Effect)


def _check_effect(record: str, code: ExceptionCode, effect: object) -> None:
    if not isinstance(effect, str) or not effect:
        raise InvalidInput(record, "effect", "must be non-empty text")
    allowed = [e.value for e in _EFFECT_ORDER if e in EFFECTS[code]]
    parts = effect.split("+")
    if not set(parts) <= set(allowed) or parts != [p for p in allowed if p in parts]:
        raise InvalidInput(
            record, "effect", f"{effect!r} is not {'+'.join(allowed)} or a part of it"
        )


def _opt(value: str | int | None) -> str | int:
    return "" if value is None else value


# --- sorting ------------------------------------------------------------------------------


def _merchant_key(row: MerchantSettlementRow) -> tuple[str]:
    return (row.merchant_id,)


def _party_key(row: PartySettlementRow) -> tuple[int, str]:
    return (_ROLE_ORDER[PartyRole(row.party_role)], row.party_id)


def _partner_key(row: PartnerStatementRow) -> tuple[str, str, str]:
    return (row.partner_id, FeeKind(row.kind).value, row.reference)


def _none_first(value: str | int | None) -> tuple[int, str | int]:
    return (0, "") if value is None else (1, value)


def _exception_key(row: ExceptionFileRow) -> tuple[object, ...]:
    """code, terminal_id, batch, stan (a batch-level row first), then every other cell, so
    that two rows under one key (a DUPLICATE pair, one batch's mismatches) have a fixed order."""
    return (
        ExceptionCode(row.code).value,
        row.terminal_id,
        _none_first(row.batch),
        _none_first(row.stan),
        _none_first(row.rrn),
        _none_first(row.asn),
        _none_first(row.amount_fen),
        _none_first(row.other_amount_fen),
        row.effect,
        _none_first(row.reason),
    )


# --- encoders -----------------------------------------------------------------------------


def _rows_of(record: str, rows: Iterable[object], kind: type[_R]) -> list[_R]:
    out: list[_R] = []
    for row in rows:
        if not isinstance(row, kind):
            raise InvalidInput(record, "rows", f"must hold {kind.__name__} only")
        out.append(row)
        if len(out) > ROWS_MAX:
            raise InvalidInput(record, "rows", f"more than {ROWS_MAX} rows")
    return out


def _unique(record: str, field: str, rows: Sequence[_R], key: Callable[[_R], object]) -> None:
    for before, row in itertools.pairwise(rows):
        if key(before) == key(row):
            raise InvalidInput(record, field, f"{key(row)!r} appears twice")


def _one_date(record: str, dates: Iterable[date]) -> None:
    if len(set(dates)) > 1:
        raise InvalidInput(record, "business_date", "a file holds one business date")


def _encode(header: Sequence[str], lines: Iterable[Sequence[str | int]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL, strict=True)
    writer.writerow(header)
    for line in lines:
        writer.writerow(line)
    return buffer.getvalue().encode("utf-8")


def _sum(values: Iterable[int | None]) -> int:
    return sum(0 if v is None else v for v in values)


def merchant_settlement_csv(rows: Iterable[MerchantSettlementRow]) -> bytes:
    """merchant_settlement_<YYYYMMDD>.csv: one line per merchant, sorted by merchant_id."""
    r = "merchant_settlement"
    ordered = sorted(_rows_of(r, rows, MerchantSettlementRow), key=_merchant_key)
    _unique(r, "merchant_id", ordered, _merchant_key)
    _one_date(r, (row.business_date for row in ordered))
    total: tuple[str | int, ...] = (
        TOTAL,
        "",
        *(
            sum(getattr(row, name) for row in ordered)
            for name in (
                "txn_count",
                "gross_fen",
                "commission_fen",
                "refund_fen",
                "load_fen",
                "deposit_fen",
                "net_fen",
            )
        ),
    )
    return _encode(MERCHANT_HEADER, [*(row.cells() for row in ordered), total])


def party_settlement_csv(rows: Iterable[PartySettlementRow]) -> bytes:
    """party_settlement_<YYYYMMDD>.csv: sorted by role (issuer, acquirer, network), party_id."""
    r = "party_settlement"
    ordered = sorted(_rows_of(r, rows, PartySettlementRow), key=_party_key)
    _unique(r, "party_id", ordered, _party_key)
    _one_date(r, (row.business_date for row in ordered))
    total = (
        TOTAL,
        "",
        "",
        "",
        sum(row.share_fen for row in ordered),
        sum(row.payable_fen for row in ordered),
    )
    return _encode(PARTY_HEADER, [*(row.cells() for row in ordered), total])


def partner_statement_csv(rows: Iterable[PartnerStatementRow]) -> bytes:
    """partner_statement_<YYYYMM>.csv: sorted by partner_id, kind, reference."""
    r = "partner_statement"
    ordered = sorted(_rows_of(r, rows, PartnerStatementRow), key=_partner_key)
    _unique(r, "reference", ordered, _partner_key)
    total = (TOTAL, "", "", sum(row.amount_fen for row in ordered))
    return _encode(PARTNER_HEADER, [*(row.cells() for row in ordered), total])


def exceptions_csv(rows: Iterable[ExceptionFileRow]) -> bytes:
    """exceptions_<YYYYMMDD>.csv: sorted by code, terminal_id, batch, stan (then the rest)."""
    r = "exceptions"
    ordered = sorted(_rows_of(r, rows, ExceptionFileRow), key=_exception_key)
    total: tuple[str | int, ...] = (
        TOTAL,
        *([""] * 5),
        _sum(row.amount_fen for row in ordered),
        _sum(row.other_amount_fen for row in ordered),
        "",
        "",
    )
    return _encode(EXCEPTIONS_HEADER, [*(row.cells() for row in ordered), total])
