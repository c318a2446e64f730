"""The day's report for clearing staff (clearing.md §7): one self-contained HTML page, no
external assets and no script, with bar charts drawn as inline SVG. A pure function of the
``DaySummary``: no clock, so the same run gives the same bytes. Every text is escaped.

Amounts are shown in yuan (two decimals, thousands separated); the files keep integer fen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Final

from clearing.domain.files import (
    ExceptionFileRow,
    MerchantSettlementRow,
    PartnerStatementRow,
    PartyRole,
    PartySettlementRow,
)
from clearing.domain.partners import FeeKind
from clearing.domain.reconciliation import ExceptionCode
from clearing.domain.report_model import DaySummary

TOP_MERCHANTS: Final = 20
#: The page stays readable (and small) on a 10-million-transaction day: tables are cut here,
#: with a line saying how many rows the file holds beyond it.
TABLE_ROWS_MAX: Final = 2_000
CHART_WIDTH: Final = 760
CHART_HEIGHT: Final = 260
_PLOT_LEFT: Final = 90
_PLOT_TOP: Final = 30
_PLOT_BOTTOM: Final = 90
_PLOT_RIGHT: Final = 10
_VOLUME_COLOUR: Final = "#2f6db5"
_FEE_COLOUR: Final = "#c0792a"
_NEGATIVE_COLOUR: Final = "#b3261e"

_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1d1d1f}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #c8c8cc;padding:.2em .5em}
th{background:#eef0f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;background:#f6f6f8}
.charts{display:flex;flex-wrap:wrap;gap:1em}
svg text{font-size:11px;fill:#333}
.note{color:#666}
"""


def yuan(amount_fen: int) -> str:
    """Fen as yuan with two decimals and thousands separators: -1234567 -> "-12,345.67"."""
    sign = "-" if amount_fen < 0 else ""
    whole, fen = divmod(abs(amount_fen), 100)
    return f"{sign}{whole:,}.{fen:02d}"


def _num(value: int) -> str:
    return f"{value:,}"


def _cell(value: str, numeric: bool = False) -> str:
    return f'<td class="n">{escape(value)}</td>' if numeric else f"<td>{escape(value)}</td>"


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[tuple[str, bool]]],
    total: Sequence[tuple[str, bool]] | None = None,
    *,
    count: int,
) -> str:
    out = ["<table><thead><tr>"]
    out.extend(f"<th>{escape(h)}</th>" for h in header)
    out.append("</tr></thead><tbody>")
    for n, row in enumerate(rows):
        if n >= TABLE_ROWS_MAX:
            break
        out.append("<tr>" + "".join(_cell(v, num) for v, num in row) + "</tr>")
    if total is not None:
        out.append('<tr class="total">' + "".join(_cell(v, num) for v, num in total) + "</tr>")
    out.append("</tbody></table>")
    if count > TABLE_ROWS_MAX:
        out.append(
            f'<p class="note">Showing the first {_num(TABLE_ROWS_MAX)} of {_num(count)} rows; '
            "the settlement file holds them all.</p>"
        )
    return "".join(out)


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[int],
    colour: str,
    show: Callable[[int], str],
) -> str:
    """A vertical bar chart as inline SVG: one bar per label, negative values below the zero
    line (in red), each bar's exact value in its tooltip. Integer geometry."""
    assert len(labels) == len(values)
    plot_w = CHART_WIDTH - _PLOT_LEFT - _PLOT_RIGHT
    plot_h = CHART_HEIGHT - _PLOT_TOP - _PLOT_BOTTOM
    top = max([0, *values])
    bottom = max([0, *(-v for v in values)])
    span = (top + bottom) or 1
    zero_y = _PLOT_TOP + plot_h * top // span
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_PLOT_LEFT}" y="16" font-weight="bold">{escape(title)}</text>',
        f'<text x="{_PLOT_LEFT - 6}" y="{_PLOT_TOP + 4}" text-anchor="end">'
        f"{escape(show(top))}</text>",
    ]
    if bottom:
        parts.append(
            f'<text x="{_PLOT_LEFT - 6}" y="{_PLOT_TOP + plot_h}" text-anchor="end">'
            f"{escape(show(-bottom))}</text>"
        )
    parts.append(
        f'<line x1="{_PLOT_LEFT}" y1="{zero_y}" x2="{_PLOT_LEFT + plot_w}" y2="{zero_y}" '
        'stroke="#888"/>'
    )
    n = max(len(values), 1)
    slot = plot_w // n
    bar_w = max(slot * 3 // 4, 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = _PLOT_LEFT + i * slot + (slot - bar_w) // 2
        height = plot_h * abs(value) // span
        y = zero_y - height if value >= 0 else zero_y
        fill = colour if value >= 0 else _NEGATIVE_COLOUR
        parts.append(
            f'<rect x="{x}" y="{y}" width="{bar_w}" height="{height}" fill="{fill}">'
            f"<title>{escape(label)}: {escape(show(value))}</title></rect>"
        )
        lx = x + bar_w // 2
        ly = _PLOT_TOP + plot_h + 14
        rotate = f' transform="rotate(45 {lx} {ly})"' if len(label) > 3 else ""
        anchor = "start" if rotate else "middle"
        parts.append(
            f'<text x="{lx}" y="{ly}" text-anchor="{anchor}"{rotate}>{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _merchant_label(summary: DaySummary, merchant_id: str) -> str:
    name = summary.merchant_names.get(merchant_id)
    return f"{merchant_id} {name}" if name else merchant_id


def _merchant_rows(summary: DaySummary) -> tuple[list[MerchantSettlementRow], str]:
    rows = sorted(summary.merchants, key=lambda r: r.merchant_id)
    header = (
        "Merchant",
        "Name",
        "Purchases",
        "Gross",
        "Commission",
        "Refunds",
        "Loads",
        "Deposits",
        "Net",
    )
    body = (
        [
            (r.merchant_id, False),
            (summary.merchant_names.get(r.merchant_id, ""), False),
            (_num(r.txn_count), True),
            (yuan(r.gross_fen), True),
            (yuan(r.commission_fen), True),
            (yuan(r.refund_fen), True),
            (yuan(r.load_fen), True),
            (yuan(r.deposit_fen), True),
            (yuan(r.net_fen), True),
        ]
        for r in rows
    )
    total = [
        ("TOTAL", False),
        (f"{_num(len(rows))} merchants", False),
        (_num(sum(r.txn_count for r in rows)), True),
        *(
            (yuan(sum(getattr(r, f) for r in rows)), True)
            for f in (
                "gross_fen",
                "commission_fen",
                "refund_fen",
                "load_fen",
                "deposit_fen",
                "net_fen",
            )
        ),
    ]
    return rows, _table(header, body, total, count=len(rows))


def _party_table(parties: Sequence[PartySettlementRow]) -> str:
    order = {role: n for n, role in enumerate(PartyRole)}
    rows = sorted(parties, key=lambda r: (order[PartyRole(r.party_role)], r.party_id))
    body = (
        [
            (PartyRole(r.party_role).value, False),
            (r.party_id, False),
            (yuan(r.commission_base_fen), True),
            (yuan(r.share_fen), True),
            (yuan(r.payable_fen), True),
        ]
        for r in rows
    )
    total = [
        ("TOTAL", False),
        ("", False),
        ("", False),
        (yuan(sum(r.share_fen for r in rows)), True),
        (yuan(sum(r.payable_fen for r in rows)), True),
    ]
    header = ("Role", "Party", "Commission base", "Share", "Payable")
    return _table(header, body, total, count=len(rows))


def _partner_table(partners: Sequence[PartnerStatementRow]) -> str:
    rows = sorted(partners, key=lambda r: (r.partner_id, FeeKind(r.kind).value, r.reference))
    body = (
        [
            (r.partner_id, False),
            (FeeKind(r.kind).value, False),
            (r.reference, False),
            (yuan(r.amount_fen), True),
        ]
        for r in rows
    )
    total = [
        ("TOTAL", False),
        ("", False),
        ("", False),
        (yuan(sum(r.amount_fen for r in rows)), True),
    ]
    return _table(("Partner", "Kind", "Reference", "Amount"), body, total, count=len(rows))


def _opt(value: int | str | None, money: bool = False) -> str:
    if value is None:
        return ""
    if money and isinstance(value, int):
        return yuan(value)
    return _num(value) if isinstance(value, int) else value


def _exception_tables(exceptions: Sequence[ExceptionFileRow]) -> str:
    by_code = Counter(ExceptionCode(r.code).value for r in exceptions)
    summary = _table(
        ("Code", "Rows"),
        ([(code, False), (_num(by_code[code]), True)] for code in sorted(by_code)),
        [("TOTAL", False), (_num(len(exceptions)), True)],
        count=len(by_code),
    )
    rows = sorted(
        exceptions,
        key=lambda r: (
            ExceptionCode(r.code).value,
            r.terminal_id,
            -1 if r.batch is None else r.batch,
            -1 if r.stan is None else r.stan,
        ),
    )
    body = (
        [
            (ExceptionCode(r.code).value, False),
            (r.terminal_id, False),
            ("" if r.batch is None else str(r.batch), True),
            ("" if r.stan is None else str(r.stan), True),
            (_opt(r.rrn), False),
            (_opt(r.asn), False),
            (_opt(r.amount_fen, money=True), True),
            (_opt(r.other_amount_fen, money=True), True),
            (r.effect, False),
            (_opt(r.reason), False),
        ]
        for r in rows
    )
    header = (
        "Code",
        "Terminal",
        "Batch",
        "STAN",
        "RRN",
        "ASN",
        "Amount",
        "Other amount",
        "Effect",
        "Reason",
    )
    return summary + _table(header, body, count=len(rows))


def _figures(summary: DaySummary) -> str:
    m = summary.merchants
    items = [
        ("Merchants", _num(len(m))),
        ("Purchases", _num(sum(r.txn_count for r in m))),
        ("Gross", yuan(sum(r.gross_fen for r in m))),
        ("Refunds", yuan(sum(r.refund_fen for r in m))),
        ("Loads", yuan(sum(r.load_fen for r in m))),
        ("Commission", yuan(sum(r.commission_fen for r in m))),
        ("Deposits", yuan(sum(r.deposit_fen for r in m))),
        ("Net to merchants", yuan(sum(r.net_fen for r in m))),
        ("Exceptions", _num(len(summary.exceptions))),
    ]
    return _table(
        ("Figure", "Value"),
        ([(k, False), (v, True)] for k, v in items),
        count=len(items),
    )


def render_report(summary: DaySummary) -> str:
    """The whole HTML page of one run."""
    day = summary.business_date.isoformat()
    hours = summary.hours()
    hour_labels = [f"{b.hour:02d}" for b in hours]
    merchants, merchant_table = _merchant_rows(summary)
    top = sorted(merchants, key=lambda r: (-r.gross_fen, r.merchant_id))[:TOP_MERCHANTS]
    top_fee = sorted(merchants, key=lambda r: (-r.commission_fen, r.merchant_id))[:TOP_MERCHANTS]
    charts = [
        bar_chart(
            "Purchase volume by hour (yuan)",
            hour_labels,
            [b.amount_fen for b in hours],
            _VOLUME_COLOUR,
            yuan,
        ),
        bar_chart(
            "Commission by hour (yuan)",
            hour_labels,
            [b.fee_fen for b in hours],
            _FEE_COLOUR,
            yuan,
        ),
        bar_chart(
            "Purchases by hour (count)",
            hour_labels,
            [b.txn_count for b in hours],
            _VOLUME_COLOUR,
            _num,
        ),
        bar_chart(
            f"Top {TOP_MERCHANTS} merchants by gross volume (yuan)",
            [r.merchant_id for r in top],
            [r.gross_fen for r in top],
            _VOLUME_COLOUR,
            yuan,
        ),
        bar_chart(
            f"Top {TOP_MERCHANTS} merchants by commission (yuan)",
            [r.merchant_id for r in top_fee],
            [r.commission_fen for r in top_fee],
            _FEE_COLOUR,
            yuan,
        ),
    ]
    top_names = "".join(
        f"<li>{escape(_merchant_label(summary, r.merchant_id))}: {escape(yuan(r.gross_fen))}</li>"
        for r in top
    )
    run = _table(
        ("Business date", "Run", "Kind", "Input fingerprint"),
        [[(day, False), (summary.run_id, False), (summary.run_kind, False),
          (summary.fingerprint, False)]],
        count=1,
    )  # fmt: skip
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Clearing report {escape(day)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Clearing report — business date {escape(day)}</h1>",
        run,
        "<h2>Key figures</h2>",
        _figures(summary),
        "<h2>Charts</h2>",
        '<div class="charts">',
        *charts,
        "</div>",
        f"<h2>Top {TOP_MERCHANTS} merchants</h2>",
        f"<ol>{top_names}</ol>",
        "<h2>Merchants</h2>",
        merchant_table,
        "<h2>Parties (7:2:1 split)</h2>",
        _party_table(summary.parties),
    ]
    if summary.partners:
        parts += ["<h2>Partner statement</h2>", _partner_table(summary.partners)]
    parts += [
        "<h2>Exceptions</h2>",
        _exception_tables(summary.exceptions),
        "</body></html>",
        "",
    ]
    return "\n".join(parts)
