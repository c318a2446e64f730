"""`nfcpay card new --blank`: a blank SIM (the issuer security domain only) as a user makes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NFCPAY = [sys.executable, "-c", "from nfcpay.cli import entry; entry()"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NFCPAY, *args], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def test_a_blank_sim_answers_as_a_security_domain(tmp_path: Path) -> None:
    sim = tmp_path / "blank.card"
    r = run("card", "new", "--blank", "--out", str(sim))
    assert r.returncode == 0, r.stderr
    r = run("card", "apdu", "--card", str(sim), "00A4040008A000000151000000", "805C000204")
    lines = r.stdout.splitlines()
    assert lines[1].startswith("<< 6F") and lines[1].endswith(" 9000")
    assert lines[3] == "<< 6D00"  # the ISD knows no GET BALANCE
    shown = run("card", "show", "--card", str(sim)).stdout
    assert "isd A000000151000000  card secured  key sets FF:scp02 30:scp03 01:scp80" in shown


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--blank", "--asn", "8888000000000001"], "--blank takes no --keys"),
        ([], "--keys and --asn are needed (or --blank)"),
    ],
)
def test_bad_combinations_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    r = run("card", "new", *args, "--out", str(tmp_path / "x.card"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
