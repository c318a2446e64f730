"""`nfcpay pos ...` as a merchant runs it: real subprocesses, `nfcpay host serve` on loopback
with a real SQLite file, the card and PSAM as image files (``sim:`` readers), a terminal config
from `nfcpay pos init` with the TMK piped in; a day at the counter: sign-on, sale, top-up,
refund, balance, history, settlement, receipts on stdout; bad input is one line and exit 2,
refused before the card is touched; the TMK is never printed or written to the config."""

from __future__ import annotations

import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nfcpay import cli

NFCPAY = [sys.executable, "-c", "from nfcpay.cli import entry; entry()"]
MID = "898310048990001"
ASN = "8888000000000042"

pytestmark = pytest.mark.timeout(300)


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NFCPAY, *args], input=stdin, capture_output=True, text=True, timeout=120, env=env,
        cwd=cwd, check=False,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], needle: str, code: int = 2) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = [x for x in result.stderr.strip().splitlines() if x.startswith("nfcpay: error: ")]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0], lines[0]


@dataclass
class Shop:
    env: dict[str, str]
    folder: Path
    terminal_id: str
    tmk_hex: str
    card: Path
    port: int

    def pos(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(self.env, "pos", *args, cwd=self.folder)

    def balance_fen(self) -> int:
        shown = ok(run(self.env, "card", "show", "--card", str(self.card)))
        match = re.search(r"balance\s+([0-9]+\.[0-9]{2})", shown)
        assert match is not None, shown
        whole, frac = match.group(1).split(".")
        return int(whole) * 100 + int(frac)


@dataclass
class Host:
    env: dict[str, str]
    port: int
    images: tuple[Path, Path]
    terminals: list[tuple[str, str]]  # (terminal ID, TMK hex) not used by a test yet


#: One terminal per test of this module (each test has its own journal, so its own STANs).
TERMINALS = 4


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    folder = tmp_path_factory.mktemp("host")
    env = {
        **os.environ,
        "NFCPAY_KEY": os.urandom(32).hex(),
        "NFCPAY_DB": f"sqlite:///{folder / 'host.db'}",
    }
    env.pop("NFCPAY_POS_CONFIG", None)
    keys = folder / "issuer.keys"
    ok(run(env, "keys", "new", "--out", str(keys)))
    ok(run(env, "host", "init"))
    ok(run(env, "host", "issuer", "add", "--issuer", "ISS1", "--keys", str(keys)))
    ok(run(env, "host", "merchant", "add", "--mid", MID, "--name", "Noodle House"))
    ok(run(env, "host", "card", "add", "--asn", ASN, "--issuer", "ISS1"))
    terminals = []
    for n in range(1, TERMINALS + 1):
        tid = f"T{n:07d}"
        shown = ok(run(env, "host", "terminal", "add", "--tid", tid, "--mid", MID))
        match = re.search(r"TMK ([0-9A-F]{32})", shown)
        assert match is not None, shown
        terminals.append((tid, match.group(1)))
    card, psam = folder / "sim.card", folder / "psam.card"
    ok(run(env, "card", "new", "--keys", str(keys), "--asn", ASN, "--balance", "100",
           "--out", str(card)))  # fmt: skip
    ok(run(env, "psam", "new", "--keys", str(keys), "--terminal-id", "001122334455",
           "--out", str(psam)))  # fmt: skip
    server = subprocess.Popen(
        [*NFCPAY, "host", "serve", "--iso-port", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready, "the host did not start"
        port = int(server.stdout.readline().decode().rsplit(":", 1)[1])
        yield Host(env, port, (card, psam), terminals)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.fixture
def shop(host: Host, tmp_path: Path) -> Shop:
    """A terminal of its own, with a fresh copy of the card (100.00 yuan) and the PSAM."""
    terminal_id, tmk_hex = host.terminals.pop(0)
    for image in host.images:
        shutil.copyfile(image, tmp_path / image.name)
    return Shop(host.env, tmp_path, terminal_id, tmk_hex, tmp_path / "sim.card", host.port)


def _init(shop: Shop) -> None:
    args = [
        "pos", "init", "--terminal-id", shop.terminal_id, "--merchant-id", MID, "--merchant-name",
        "Noodle House", "--host", f"127.0.0.1:{shop.port}", "--reader", "sim:sim.card",
        "--psam", "sim:psam.card", "--timeout", "10",
    ]  # fmt: skip
    out = ok(run(shop.env, *args, stdin=shop.tmk_hex + "\n", cwd=shop.folder))
    assert f"terminal {shop.terminal_id} of merchant {MID} configured in pos.json" in out


def test_a_day_at_the_counter(shop: Shop) -> None:
    _init(shop)
    config = json.loads((shop.folder / "pos.json").read_text())
    assert config["tmk_file"] == "pos.tmk" and config["reader"] == "sim:sim.card"
    assert shop.tmk_hex not in (shop.folder / "pos.json").read_text()
    assert (shop.folder / "pos.tmk").stat().st_mode & 0o777 == 0o600

    assert f"signed on: terminal {shop.terminal_id}, batch 000001" in ok(shop.pos("signon"))
    sale = shop.pos("sale", "12.50")
    receipt = ok(sale)
    assert "tap" in sale.stderr or "present the card" in sale.stderr
    assert "SALE                    APPROVED\n" in receipt
    assert "CARD            888800******0042\n" in receipt
    assert "AMOUNT CNY                 12.50\n" in receipt
    assert "BALANCE CNY                87.50\n" in receipt
    rrn = re.search(r"^RRN +([0-9A-Za-z]{12})$", receipt, re.MULTILINE)
    assert rrn is not None, receipt
    assert re.search(r"^TAC +[0-9A-F]{8}$", receipt, re.MULTILINE)
    assert ASN not in receipt

    loaded = ok(shop.pos("load", "100"))
    assert "LOAD (TOP-UP)           APPROVED\n" in loaded
    assert "BALANCE CNY               187.50\n" in loaded
    refunded = ok(shop.pos("refund", "5", "--rrn", rrn.group(1)))
    assert "REFUND                  APPROVED\n" in refunded
    assert "BALANCE CNY               192.50\n" in refunded
    assert "card 888800******0042  balance 192.50 yuan" in ok(shop.pos("balance"))
    assert shop.balance_fen() == 19_250

    history = ok(shop.pos("history"))
    assert history.count("completed") == 3, history
    assert "refund" in history and "load" in history and "sale" in history
    assert ASN not in history

    report = ok(shop.pos("settle"))
    assert "SETTLEMENT          BATCH 000001\n" in report
    assert re.search(r"^SALES +1 +12\.50$", report, re.MULTILINE), report
    assert re.search(r"^REFUNDS +1 +5\.00$", report, re.MULTILINE), report
    assert re.search(r"^LOADS +1 +100\.00$", report, re.MULTILINE), report
    assert "HOST TOTALS             BALANCED\n" in report
    assert "NEXT BATCH                000002\n" in report
    everything = "".join((shop.folder / name).read_text(errors="ignore") for name in ("pos.json",))
    assert shop.tmk_hex not in everything


def test_declined_sale_prints_a_receipt_and_exits_1(shop: Shop) -> None:
    _init(shop)
    declined = shop.pos("sale", "150")  # the card holds 100.00 yuan
    assert declined.returncode == 1, declined
    assert "SALE                    DECLINED\n" in declined.stdout
    assert "Traceback" not in declined.stderr
    assert shop.balance_fen() == 10_000

    counter = run(shop.env, "pos", "counter", stdin="abc\n600\n1.50\n\n", cwd=shop.folder)
    assert counter.returncode == 0, counter.stderr
    assert "not an amount of yuan" in counter.stderr and "under 500.00" in counter.stderr
    assert counter.stdout.count("SALE                    APPROVED\n") == 1, counter.stdout
    assert shop.balance_fen() == 10_000 - 150


BAD_INPUT = [
    (("sale", "500.00"), "a sale must be under 500.00 yuan"),
    (("refund", "600", "--rrn", "000000000001"), "under 500.00 yuan"),
    (("load", "1000.01"), "at most 1000.00 yuan"),
    (("sale", "12,50"), "not an amount of yuan"),
    (("sale", "0"), "more than 0.00"),
    (("refund", "1", "--rrn", "x"), "--rrn"),
    (("sale", "1", "--reader", "usb:1"), "--reader 'usb:1': expected"),
    (("sale", "1", "--psam", "serial:/dev/ttyUSB0"), "--psam"),
    (("sale", "1", "--reader", "sim:nope.card"), "no such card image"),
    (("sale", "1", "--reader", "sim:psam.card"), "not a sim"),
    (("sale", "1", "--host", "nowhere"), "expected HOST:PORT"),
    (("sale", "1", "--terminal-id", "T1"), "terminal ID is 8"),
    (("sale", "1", "--timeout", "0"), "--timeout"),
    (("signon", "--tmk-file", "bad.tmk"), "expected 32 hex digits"),
    (("history", "--config", "missing.json"), "no terminal config"),
    (("history", "--config", "junk.json"), "not a terminal config"),
]


def test_bad_input_is_one_line_and_never_touches_the_card(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _init(shop)
    before = (shop.card.stat().st_mtime_ns, shop.card.read_bytes())
    # Two as real processes (no traceback, exit 2), the rest through the same entry point
    # in this process (a process start costs about 2 s here).
    one_line_error(shop.pos("sale", "500"), "a sale must be under 500.00 yuan")
    one_line_error(
        run(shop.env, "pos", "history", cwd=shop.folder / ".."), "--terminal-id is needed"
    )
    (shop.folder / "bad.tmk").write_text("00")
    (shop.folder / "junk.json").write_text("{")
    monkeypatch.chdir(shop.folder)
    for args, needle in BAD_INPUT:
        code = cli.main(["pos", *args])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nfcpay: error: "), (args, err)
        assert needle in lines[0], (args, lines[0])
    assert (shop.card.stat().st_mtime_ns, shop.card.read_bytes()) == before

    init = ["pos", "init", "--terminal-id", shop.terminal_id, "--merchant-id", MID, "--host",
            "127.0.0.1:1"]  # fmt: skip
    assert cli.main(init) == 2  # pos.json exists already
    assert "pos.json already exists (use --force" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("0011\n"))
    assert cli.main([*init, "--config", "other.json"]) == 2
    assert "the TMK must be 32 hex digits" in capsys.readouterr().err
    assert not (shop.folder / "other.json").exists()
    assert not (shop.folder / "other.tmk").exists()


def test_the_host_down_is_a_clear_refusal(shop: Shop) -> None:
    _init(shop)
    down = shop.pos("sale", "1", "--host", "127.0.0.1:9")
    assert down.returncode == 1, down
    assert "SALE                    DECLINED\n" in down.stdout
    assert "host unavailable" in down.stdout + down.stderr
    assert "Traceback" not in down.stderr
    assert shop.balance_fen() == 10_000
