"""paycore.money: integer fen inside, plain yuan text at the edges."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

import pytest

from paycore.errors import MoneyError, PaycoreError
from paycore.money import FEN_PER_YUAN, YUAN_DIGITS_MAX, format_fen, parse_yuan


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.50", 1250),
        ("12.5", 1250),
        ("12", 1200),
        ("0.01", 1),
        ("0.1", 10),
        ("0.10", 10),
        ("0", 0),
        ("0.0", 0),
        ("0.00", 0),
        ("1.05", 105),
        ("100", 10000),
        ("999.99", 99999),
        ("999999999999.99", 10**14 - 1),
        ("999999999999", 10**14 - 100),
    ],
)
def test_parse_yuan_accepts(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


def test_parse_yuan_returns_int() -> None:
    assert type(parse_yuan("12.50")) is int


@pytest.mark.parametrize(
    "text",
    [
        "-1",
        "+1",
        "1e3",
        "1E3",
        " 1",
        "1 ",
        "1\n",
        "1.234",
        "",
        "01",
        "00",
        "00.50",
        "1,00",
        "1,000.00",
        "1_000",
        "\uff11\uff12",  # fullwidth digits 1 2
        "\u0661\u0662",  # Arabic-Indic digits 1 2
        "1.",
        ".5",
        "0x10",
        "NaN",
        "inf",
        "12.5.0",
        "¥12",
        "12元",
        "1" * (YUAN_DIGITS_MAX + 1),  # over the limit of 12 integer digits
    ],
)
def test_parse_yuan_refuses(text: str) -> None:
    with pytest.raises(MoneyError, match=r"^not an amount of yuan: "):
        parse_yuan(text)


def test_parse_yuan_error_text() -> None:
    with pytest.raises(MoneyError) as excinfo:
        parse_yuan("1e3")
    assert str(excinfo.value) == "not an amount of yuan: '1e3' (expected digits like 12.50)"


def test_parse_yuan_error_shortens_long_text() -> None:
    with pytest.raises(MoneyError) as excinfo:
        parse_yuan("x" * 100)
    expected = "not an amount of yuan: '" + "x" * 21 + "...' (expected digits like 12.50)"
    assert str(excinfo.value) == expected


def test_parse_yuan_error_keeps_24_characters() -> None:
    with pytest.raises(MoneyError) as excinfo:
        parse_yuan("y" * 24)
    assert str(excinfo.value) == f"not an amount of yuan: {'y' * 24!r} (expected digits like 12.50)"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (12, "int"),
        (12.5, "float"),
        (Decimal("12.50"), "Decimal"),
        (b"12.50", "bytes"),
        (None, "NoneType"),
        (True, "bool"),
    ],
)
def test_parse_yuan_refuses_non_text(value: object, type_name: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        parse_yuan(cast(str, value))
    assert str(excinfo.value) == f"amount must be text, not {type_name}"


def test_money_error_is_a_paycore_value_error() -> None:
    with pytest.raises(PaycoreError):
        parse_yuan("-1")
    with pytest.raises(ValueError, match="not an amount"):
        parse_yuan("-1")


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (10, "0.10"),
        (99, "0.99"),
        (100, "1.00"),
        (1250, "12.50"),
        (100_000, "1000.00"),
        (10**14, "1000000000000.00"),
        (-1, "-0.01"),
        (-99, "-0.99"),
        (-100, "-1.00"),
        (-1250, "-12.50"),
    ],
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(True, "bool"), (False, "bool"), (12.5, "float"), ("12", "str"), (None, "NoneType")],
)
def test_format_fen_refuses_non_int(value: object, type_name: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        format_fen(cast(int, value))
    assert str(excinfo.value) == f"amount must be integer fen, not {type_name}"


def test_parse_refuses_what_format_renders_beyond_the_limit() -> None:
    # format_fen has no limit; parse_yuan stops at 12 integer digits of yuan.
    assert parse_yuan(format_fen(10**14 - 1)) == 10**14 - 1
    with pytest.raises(MoneyError):
        parse_yuan(format_fen(10**14))


def test_fen_per_yuan() -> None:
    assert FEN_PER_YUAN == 100
