"""clearing.md §1: no float, no ``round()``, no Decimal in the computation; and the domain does
no I/O and reads no clock. Checked on the source of clearing/domain, so a regression fails here
and not only in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[3] / "clearing" / "domain"
SOURCES = sorted(DOMAIN.glob("*.py"))
FORBIDDEN_CALLS = {"round", "float", "open", "print", "input"}
FORBIDDEN_MODULES = {
    "decimal",
    "fractions",
    "math",
    "time",
    "random",
    "os",
    "socket",
    "sqlite3",
    "sqlalchemy",
    "asyncio",
}


def test_the_domain_has_modules() -> None:
    assert {p.name for p in SOURCES} >= {
        "commission.py",
        "split.py",
        "partners.py",
        "reconciliation.py",
    }


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_integers_only_and_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, where
        if isinstance(node, ast.BinOp | ast.AugAssign):
            assert not isinstance(node.op, ast.Div), f"{where}: true division (use //)"
        if isinstance(node, ast.Constant):
            assert not isinstance(node.value, float), f"{where}: a float literal"
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] not in FORBIDDEN_MODULES, where
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.module.split(".")[0] not in FORBIDDEN_MODULES, where
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"now", "today", "utcnow"}, f"{where}: reads the clock"
