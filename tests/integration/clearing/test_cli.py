"""`nfcpay clearing run|show|verify` through the real CLI entry point, on a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from nfcpay.cli import main
from tests.integration.clearing.clearing_env import FASTFOOD, make_world


def nfcpay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_show_verify_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    world = make_world(url)
    world.txn(FASTFOOD, 3_850)
    world.store.close()
    out = str(tmp_path / "files")
    code, stdout, _ = nfcpay(
        capsys, "clearing", "run", "--date", "2026-03-01", "--db", url, "--out", out
    )
    assert code == 0 and "completed" in stdout
    merchant = (tmp_path / "files" / "merchant_settlement_20260301.csv").read_bytes()
    assert merchant.splitlines()[1] == b"898310000000001,2026-03-01,1,3850,385,0,0,0,3465"
    code, stdout, _ = nfcpay(
        capsys, "clearing", "run", "--date", "2026-03-01", "--db", url, "--out", out
    )
    assert code == 0 and "no-op" in stdout
    code, stdout, _ = nfcpay(capsys, "clearing", "show", "--date", "2026-03-01", "--db", url)
    assert code == 0 and "DAILY seq 1 completed" in stdout
    code, stdout, _ = nfcpay(
        capsys, "clearing", "verify", "--date", "2026-03-01", "--db", url, "--out", out
    )
    assert code == 0 and "invariants hold" in stdout

    (tmp_path / "files" / "merchant_settlement_20260301.csv").write_bytes(merchant + b"x")
    code, _, err = nfcpay(
        capsys, "clearing", "verify", "--date", "2026-03-01", "--db", url, "--out", out
    )
    assert code == 2 and err.count("\n") == 1 and "differ" in err

    for args, needle in (
        (("--date", "2026-02-30"), "YYYY-MM-DD"),
        (("--date", "2026-03-01", "--kind", "weekly"), "--kind"),
        (("--date", "2026-03-01", "--cutoff", "25:00"), "HH:MM"),
        (("--date", "2026-03-01", "--kind", "month-end"), "last day"),
        (("--date", "2026-03-01", "--kind", "adjustment"), "--release"),
    ):
        code, _, err = nfcpay(capsys, "clearing", "run", *args, "--db", url, "--out", out)
        assert code == 2, args
        assert err.startswith("nfcpay: error:") and err.count("\n") == 1 and needle in err, err
    code, _, err = nfcpay(capsys, "clearing", "show", "--date", "2026-03-02", "--db", url)
    assert code == 2 and "no clearing run" in err
    code, _, err = nfcpay(
        capsys, "clearing", "run", "--date", "2026-03-01", "--db", "mysql://x/y", "--out", out
    )
    assert code == 2 and "unsupported database" in err
