"""The `nfcpay` CLI as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

NFCPAY = [sys.executable, "-c", "from nfcpay.cli import entry; entry()"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NFCPAY, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nfcpay: error: ")
    assert needle in lines[0], lines[0]


@pytest.fixture
def issued(tmp_path: Path) -> tuple[Path, Path, Path]:
    keys, sim, psam = tmp_path / "issuer.keys", tmp_path / "sim.card", tmp_path / "psam.card"
    assert run("keys", "new", "--out", str(keys)).returncode == 0
    r = run("card", "new", "--keys", str(keys), "--asn", "8888000000000001", "--out", str(sim),
            "--balance", "50.00")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run("psam", "new", "--keys", str(keys), "--terminal-id", "001122334455", "--out", str(psam))
    assert r.returncode == 0, r.stderr
    return keys, sim, psam


def test_demo_prints_the_flow() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "load     100.00 yuan" in out
    assert out.count("PSAM serial") == 3
    assert "card proves the debit happened" in out
    assert "balance 29.82 yuan" in out
    assert "card log" in out
    # the host part: the same card online over ISO 8583, then what the host captured
    assert "sign-on  0810 00" in out
    assert out.count("0230 00") == 4  # load, two purchases, refund: completed, TACs checked
    assert "balance  60.32" in out  # 29.82 + 50.00 - 18.00 - 6.50 + 5.00
    assert "totals balanced" in out
    assert out.count("completed  ok") == 4


def test_key_file_is_private_and_keys_never_printed(issued: tuple[Path, Path, Path]) -> None:
    keys, sim, _ = issued
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sim).st_mode) == 0o600
    material = json.loads(keys.read_text())
    shown = run("card", "show", "--card", str(sim))
    assert shown.returncode == 0
    assert "50.00 yuan" in shown.stdout
    for name in ("mpk", "mlk", "mtk"):
        assert material[name] not in shown.stdout.upper()


def test_card_apdu_sends_in_one_power_session(issued: tuple[Path, Path, Path]) -> None:
    _, sim, _ = issued
    r = run("card", "apdu", "--card", str(sim), "00A4040009A00000000386980701", "805C000204")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == ">> 00A4040009A00000000386980701"
    assert lines[1].startswith("<< 6F") and lines[1].endswith(" 9000")
    assert lines[3] == "<< 00001388 9000"  # 50.00 yuan = 5000 fen


def test_card_apdu_malformed_gets_status_word(issued: tuple[Path, Path, Path]) -> None:
    _, sim, _ = issued
    r = run("card", "apdu", "--card", str(sim), "00A4", "FFFFFFFF")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1] == "<< 6700"
    assert r.stdout.splitlines()[3] == "<< 6E00"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["card", "new", "--keys", "K", "--asn", "123", "--out", "x"], "ASN"),
        (["card", "frobnicate"], "No such command"),
        (["card", "serve", "--card", "x", "--port", "99999"], "--port"),
        (["card", "apdu", "--card", "nope.card", "00A40400"], "no such card image"),
        (["keys", "new"], "--out"),
    ],
)
def test_bad_arguments_one_line_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    assert_one_line_error(run(*args, cwd=tmp_path), needle)


def test_bad_asn_balance_pin_hex(issued: tuple[Path, Path, Path], tmp_path: Path) -> None:
    keys, sim, _ = issued
    base = ["card", "new", "--keys", str(keys), "--out", str(tmp_path / "n.card")]
    assert_one_line_error(run(*base, "--asn", "12345"), "ASN must be 16 decimal digits")
    assert_one_line_error(
        run(*base, "--asn", "8888000000000002", "--balance", "1.234"), "not an amount of yuan"
    )
    assert_one_line_error(
        run(*base, "--asn", "8888000000000002", "--balance", "1000.01"), "balance must be"
    )
    assert_one_line_error(run(*base, "--asn", "8888000000000002", "--pin", "12a4"), "PIN")
    assert_one_line_error(run("card", "apdu", "--card", str(sim), "zz"), "not hex")
    assert_one_line_error(
        run("psam", "new", "--keys", str(keys), "--terminal-id", "XYZ", "--out", "p"), "terminal ID"
    )
    assert_one_line_error(
        run("card", "new", "--keys", str(keys), "--asn", "8888000000000001", "--out", str(sim)),
        "already exists",
    )


def test_hand_edited_or_corrupt_image_is_refused(issued: tuple[Path, Path, Path]) -> None:
    keys, sim, _ = issued
    text = sim.read_text()
    sim.write_text(text.replace('"balance_fen": 5000', '"balance_fen": 99999'))
    assert_one_line_error(run("card", "show", "--card", str(sim)), "checksum mismatch")
    sim.write_text(text[: len(text) // 2])
    assert_one_line_error(run("card", "show", "--card", str(sim)), "invalid JSON")
    keys.write_text("{}")
    assert_one_line_error(
        run("card", "new", "--keys", str(keys), "--asn", "8888000000000003", "--out", "z"),
        "issuer key file",
    )


def test_psam_image_is_not_a_sim(issued: tuple[Path, Path, Path]) -> None:
    _, sim, psam = issued
    assert_one_line_error(run("psam", "show", "--psam", str(sim)), "not a psam")
    shown = run("psam", "show", "--psam", str(psam))
    assert "terminal 001122334455" in shown.stdout
