"""The day's HTML report: well-formed, self-contained (no script, no external asset),
deterministic, with the totals, the charts and every text escaped."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser

import pytest

from clearing.adapters.report import TOP_MERCHANTS, bar_chart, render_report, yuan
from clearing.domain.errors import InvalidInput
from clearing.domain.files import ExceptionFileRow, MerchantSettlementRow, PartySettlementRow
from clearing.domain.report_model import DaySummary, HourBucket

DAY = date(2026, 3, 15)
VOID = {"meta", "br", "img", "input", "link", "hr", "col", "wbr"}
SVG_EMPTY_OK = {"rect", "line"}  # may be written <x .../> in SVG


class TreeCheck(HTMLParser):
    """Checks that every element is closed in order, and collects tags, attributes, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> TreeCheck:
    checker = TreeCheck()
    checker.feed(page)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    return checker


def merchant(n: int, gross_fen: int, commission_fen: int) -> MerchantSettlementRow:
    return MerchantSettlementRow(
        f"8983100489{n:05d}", DAY, 3, gross_fen, commission_fen, 0, 0, 0, gross_fen - commission_fen
    )


def summary(**kw: object) -> DaySummary:
    values: dict[str, object] = {
        "business_date": DAY,
        "run_id": "42",
        "run_kind": "DAILY",
        "fingerprint": "ab" * 32,
        "merchants": (merchant(1, 385_000, 38_500), merchant(2, 12_345, -13)),
        "parties": (
            PartySettlementRow("issuer", "ISS1", DAY, 38_487, 26_941, 370_000),
            PartySettlementRow("acquirer", "ACQ1", DAY, 38_487, 7_697, 7_697),
            PartySettlementRow("network", "NET", DAY, 38_487, 3_849, 3_849),
        ),
        "exceptions": (
            ExceptionFileRow(
                "NO_COMPLETION",
                "T0000001",
                1,
                5,
                "000000000001",
                "8888000000000001",
                1_250,
                None,
                "held+carried",
                None,
            ),
        ),
        "hourly": ((9, 2, 100_000, 1_000), (13, 4, 297_345, 37_487)),
        "merchant_names": {"898310048900001": "Noodle <b>House</b>"},
    } | kw
    return DaySummary(**values)  # type: ignore[arg-type]


def test_report_is_well_formed_and_self_contained() -> None:
    page = render_report(summary())
    assert page.startswith("<!DOCTYPE html>")
    tree = parse(page)
    assert "script" not in tree.tags
    assert tree.tags.count("svg") == 5
    for name, value in tree.attrs:
        assert name not in {"src", "href"} and not name.startswith("on"), (name, value)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_report_shows_run_and_totals() -> None:
    text = " ".join(parse(render_report(summary())).text)
    for expected in (
        "2026-03-15",
        "42",
        "DAILY",
        "ab" * 32,
        "3,973.45",  # gross 385,000 + 12,345 fen
        "384.87",  # commission 38,500 - 13 fen
        "3,588.58",  # net
        "269.41",  # issuer share
        "384.87",  # shares sum to the commission
        "NO_COMPLETION",
        "held+carried",
        "Noodle <b>House</b>",  # the name as text, not markup
    ):
        assert expected in text, expected


def test_report_is_deterministic() -> None:
    assert render_report(summary()) == render_report(summary())


def test_script_in_a_merchant_name_is_escaped() -> None:
    names = {"898310048900001": "<script>alert('x')</script>", "898310048900002": 'a"b&c'}
    page = render_report(summary(merchant_names=names))
    tree = parse(page)
    assert "script" not in tree.tags
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "a&quot;b&amp;c" in page
    assert "<script>alert('x')</script>" in " ".join(tree.text)


def test_odd_characters_in_exception_reason_are_escaped() -> None:
    exc = ExceptionFileRow(
        "TERMINAL_ONLY", "T<1>", 1, 1, None, None, 5, None, "reported", "</td></tr><img src=x>"
    )
    tree = parse(render_report(summary(exceptions=(exc,))))
    assert "img" not in tree.tags
    assert "</td></tr><img src=x>" in tree.text


def test_top_merchants_chart_has_twenty_bars() -> None:
    merchants = tuple(merchant(n, 1_000 * n, n) for n in range(1, 31))
    page = render_report(summary(merchants=merchants, merchant_names={}))
    charts = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    top = next(c for c in charts if "Top 20 merchants by gross" in c)
    assert top.count("<rect") == TOP_MERCHANTS
    assert "8983100489" + "00030" in top  # the largest is in
    assert "8983100489" + "00010" not in top  # the 21st largest is not


def test_chart_draws_negative_bars_below_zero() -> None:
    svg = bar_chart("fees", ["a", "b"], [100, -50], "#000", yuan)
    heights = [int(h) for h in re.findall(r'height="(\d+)" fill', svg)]
    assert abs(heights[0] - 2 * heights[1]) <= 1  # integer geometry
    assert "#b3261e" in svg
    assert "-0.50" in svg


def test_hours_fill_missing_with_zero() -> None:
    hours = summary().hours()
    assert len(hours) == 24
    assert hours[9] == HourBucket(9, 2, 100_000, 1_000)
    assert hours[0] == HourBucket(0, 0, 0, 0)


def test_summary_checks_its_fields() -> None:
    with pytest.raises(InvalidInput, match="run_kind"):
        summary(run_kind="WEEKLY")
    with pytest.raises(InvalidInput, match=r"hourly\.hour"):
        summary(hourly=((24, 0, 0, 0),))
    with pytest.raises(InvalidInput, match="twice"):
        summary(hourly=((1, 0, 0, 0), (1, 1, 1, 1)))
    with pytest.raises(InvalidInput, match="merchants"):
        summary(merchants=("not a row",))
