"""Money is an integer number of fen (1 yuan = 100 fen). Text is only at the edges.

``parse_yuan("12.50") == 1250``; ``format_fen(1250) == "12.50"``. Anything that is not plain
digits with at most two decimals is refused: no signs, exponents, spaces, separators or
thousands marks.
"""

from __future__ import annotations

import re

from paycore.errors import MoneyError

FEN_PER_YUAN = 100
#: Limit on parsed amounts: 12 integer digits of yuan is far beyond any amount in the scheme.
YUAN_DIGITS_MAX = 12

_AMOUNT = re.compile(rf"(0|[1-9][0-9]{{0,{YUAN_DIGITS_MAX - 1}}})(?:\.([0-9]{{1,2}}))?")


def parse_yuan(text: str) -> int:
    """Parse an amount of yuan such as ``"12.50"``, ``"12.5"`` or ``"12"`` into fen."""
    if not isinstance(text, str):
        raise MoneyError(f"amount must be text, not {type(text).__name__}")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise MoneyError(f"not an amount of yuan: {shown!r} (expected digits like 12.50)")
    whole, frac = match.group(1), match.group(2) or ""
    return int(whole) * FEN_PER_YUAN + int(frac.ljust(2, "0") or "0")


def format_fen(amount_fen: int) -> str:
    """Render fen as yuan with exactly two decimals; negative amounts get a leading minus."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise MoneyError(f"amount must be integer fen, not {type(amount_fen).__name__}")
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}{yuan}.{fen:02d}"
