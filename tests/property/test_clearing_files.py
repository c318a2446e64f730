"""Properties of the settlement files (clearing.md §7): the same rows in any order give the same
bytes; every file reads back through csv.reader to exactly its rows; the TOTAL line holds the
column sums (and empty cells where the file says a sum makes no sense)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.domain.files import (
    AMOUNT_ABS_MAX_FEN,
    ExceptionFileRow,
    MerchantSettlementRow,
    PartnerStatementRow,
    PartySettlementRow,
    exceptions_csv,
    merchant_settlement_csv,
    partner_statement_csv,
    party_settlement_csv,
)
from clearing.domain.reconciliation import ExceptionCode, effect_label

DAY = date(2026, 3, 15)
# Printable text, odd characters included (commas, quotes, CJK, spaces), no control chars.
_text_chars = st.characters(
    blacklist_categories=("Cc", "Cs"), blacklist_characters="\x85\u2028\u2029"
)


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_text_chars, min_size=1, max_size=max_size).filter(lambda s: s != "TOTAL")


_fen = st.integers(-AMOUNT_ABS_MAX_FEN // 4, AMOUNT_ABS_MAX_FEN // 4)
_pos = st.integers(0, AMOUNT_ABS_MAX_FEN // 8)


@st.composite
def merchant_rows(draw: st.DrawFn) -> list[MerchantSettlementRow]:
    ids = draw(st.lists(_text(15), max_size=12, unique=True))
    rows = []
    for mid in ids:
        gross, refund, load = draw(_pos), draw(_pos), draw(_pos)
        commission, deposit = draw(_fen), draw(_fen)
        net = gross - refund - commission - load - deposit
        rows.append(
            MerchantSettlementRow(
                mid, DAY, draw(st.integers(0, 10**6)), gross, commission, refund, load, deposit, net
            )
        )
    return rows


@st.composite
def party_rows(draw: st.DrawFn) -> list[PartySettlementRow]:
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(["issuer", "acquirer", "network"]), _text(32)),
            max_size=10,
            unique=True,
        )
    )
    rows = []
    for role, pid in keys:
        share = draw(_fen)
        payable = draw(_fen) if role == "issuer" else share
        rows.append(PartySettlementRow(role, pid, DAY, draw(_fen), share, payable))
    return rows


@st.composite
def partner_rows(draw: st.DrawFn) -> list[PartnerStatementRow]:
    keys = draw(
        st.lists(
            st.tuples(_text(32), st.sampled_from(["SHARE", "EXPANSION", "MAINTENANCE"]), st.data()),
            max_size=10,
        )
    )
    rows: dict[tuple[str, str, str], PartnerStatementRow] = {}
    for pid, kind, data in keys:
        if kind == "SHARE":
            ref = data.draw(st.dates(date(2026, 3, 1), date(2026, 3, 31))).isoformat()
            amount = data.draw(_fen)
        elif kind == "EXPANSION":
            ref, amount = data.draw(_text(15)), data.draw(st.integers(20_000, 200_000))
        else:
            ref, amount = data.draw(_text(8)), data.draw(st.integers(0, 10**9))
        rows[(pid, kind, ref)] = PartnerStatementRow(pid, kind, ref, amount)
    return list(rows.values())


_codes = [c for c in ExceptionCode if c is not ExceptionCode.MATCHED]


@st.composite
def exception_rows(draw: st.DrawFn) -> list[ExceptionFileRow]:
    n = draw(st.integers(0, 10))
    rows = []
    for _ in range(n):
        code = draw(st.sampled_from(_codes))
        rows.append(
            ExceptionFileRow(
                code,
                draw(st.sampled_from(["T0000001", "T0000002", "T,1", '"T"'])),
                draw(st.none() | st.integers(1, 3)),
                draw(st.none() | st.integers(1, 5)),
                draw(st.none() | _text(12)),
                draw(st.none() | _text(16)),
                draw(st.none() | st.integers(0, 10**9)),
                draw(st.none() | st.integers(0, 10**9)),
                effect_label(code),
                draw(st.none() | _text(60)),
            )
        )
    return rows


Encoder = Callable[[Any], bytes]
FILES: list[tuple[Encoder, st.SearchStrategy[Any]]] = [
    (merchant_settlement_csv, merchant_rows()),
    (party_settlement_csv, party_rows()),
    (partner_statement_csv, partner_rows()),
    (exceptions_csv, exception_rows()),
]


def _read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _cells(row: Any) -> list[str]:
    return [str(c) for c in row.cells()]


@st.composite
def a_file(draw: st.DrawFn) -> tuple[Encoder, Sequence[Any]]:
    encoder, rows = draw(st.sampled_from(FILES))
    return encoder, draw(rows)


@settings(max_examples=300)
@given(a_file(), st.randoms(use_true_random=False))
def test_any_order_gives_the_same_bytes(file: tuple[Encoder, Sequence[Any]], rnd: Any) -> None:
    encoder, rows = file
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert encoder(shuffled) == encoder(rows)


@settings(max_examples=300)
@given(a_file())
def test_round_trip_through_csv_reader(file: tuple[Encoder, Sequence[Any]]) -> None:
    encoder, rows = file
    data = encoder(rows)
    assert b"\r" not in data
    assert data.endswith(b"\n")
    lines = _read(data)
    assert lines[-1][0] == "TOTAL"
    body = lines[1:-1]
    assert sorted(body) == sorted(_cells(r) for r in rows)
    assert len({len(line) for line in lines}) == 1
    # One record is one physical line: no control characters ever reach a cell.
    assert len(data.split(b"\n")) == len(lines) + 1


def _sum_column(body: list[list[str]], n: int) -> int:
    return sum(int(line[n]) for line in body if line[n] != "")


@settings(max_examples=200)
@given(a_file())
def test_total_line_holds_the_column_sums(file: tuple[Encoder, Sequence[Any]]) -> None:
    encoder, rows = file
    lines = _read(encoder(rows))
    header, body, total = lines[0], lines[1:-1], lines[-1]
    summed = {
        merchant_settlement_csv: {"txn_count", "gross_fen", "commission_fen", "refund_fen",
                                  "load_fen", "deposit_fen", "net_fen"},
        party_settlement_csv: {"share_fen", "payable_fen"},
        partner_statement_csv: {"amount_fen"},
        exceptions_csv: {"amount_fen", "other_amount_fen"},
    }[encoder]  # fmt: skip
    for n, name in enumerate(header):
        if n == 0:
            assert total[n] == "TOTAL"
        elif name in summed:
            assert total[n] == str(_sum_column(body, n)), name
        else:
            assert total[n] == "", name


@given(merchant_rows())
def test_merchant_lines_are_sorted_by_code_point(rows: list[MerchantSettlementRow]) -> None:
    body = _read(merchant_settlement_csv(rows))[1:-1]
    ids = [line[0] for line in body]
    assert ids == sorted(ids)
    assert [i.encode() for i in ids] == sorted(i.encode() for i in ids)
