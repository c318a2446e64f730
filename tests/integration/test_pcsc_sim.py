"""The simulated SIM and PSAM through a real pcscd + vpcd: pyscard runs a whole purchase,
independent PC/SC tools (opensc-tool, scriptor, pcsc_scan) reach the SIM, and the
`nfcpay card serve` command serves a card image and saves every committed transaction."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.domain import issuance
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.wallet import WalletState
from paycore import issuer_keys, pboc
from paycore.issuer_keys import IssuerKeys
from paycore.purse import WALLET_AID
from pos_terminal.domain import card_flows
from tests.integration.pcsc_env import (
    READER_SLOT0,
    READER_SLOT1,
    PcscConnect,
    ServeCard,
    wait_for_presence,
)

pytestmark = [pytest.mark.pcsc, pytest.mark.timeout(180)]

ASN = "8888000000000042"
TERMINAL_ID = bytes.fromhex("001122334455")
NOW = datetime(2026, 11, 22, 12, 30, 0)
SELECT_WALLET = "00A40400" + f"{len(WALLET_AID):02X}" + WALLET_AID.hex().upper()


@pytest.fixture
def keys() -> IssuerKeys:
    return issuer_keys.generate(random.Random(7).randbytes)


@pytest.fixture
def images(tmp_path: Path, keys: IssuerKeys) -> tuple[Path, Path]:
    sim, psam = tmp_path / "sim.card", tmp_path / "psam.card"
    bootstrap.save_new_image(
        sim,
        issuance.new_sim_image(
            keys, issuance.parse_asn(ASN), today=date(2026, 11, 22), balance_fen=10_000
        ),
    )
    bootstrap.save_new_image(psam, issuance.new_psam_image(keys, TERMINAL_ID))
    return sim, psam


def test_whole_purchase_through_pcscd(
    serve_card: ServeCard, pcsc_connect: PcscConnect, images: tuple[Path, Path], keys: IssuerKeys
) -> None:
    sim_path, psam_path = images
    serve_card(bootstrap.file_card(sim_path), slot=0)
    serve_card(bootstrap.file_card(psam_path), slot=1)
    sim = pcsc_connect(READER_SLOT0)
    psam = card_flows.open_psam(pcsc_connect(READER_SLOT1))
    assert psam.terminal_id == TERMINAL_ID

    result = card_flows.purchase(sim, psam, 1_250, NOW)

    assert isinstance(result, card_flows.PurchaseDone)
    assert result.mac2_verified  # CREDIT SAM FOR PURCHASE accepted the card's MAC2
    assert result.balance_after_fen == 10_000 - 1_250
    p = pboc.Purchase(1_250, TERMINAL_ID, result.terminal_serial, result.date_bcd, result.time_bcd)
    assert issuer.purchase_tac_ok(keys, result.asn, p, result.tac)
    # Saved at the commit: a fresh load of the file sees the debit and the PSAM serial.
    wallet = bootstrap.file_card(sim_path).image.instances[0].state
    sam = bootstrap.file_card(psam_path).image.instances[0].state
    assert isinstance(wallet, WalletState) and isinstance(sam, PsamState)
    assert wallet.balance_fen == 8_750
    assert sam.serial == 1


def test_atr_and_malformed_apdu_through_pcscd(
    serve_card: ServeCard, pcsc_connect: PcscConnect, images: tuple[Path, Path]
) -> None:
    card = bootstrap.file_card(images[0])
    serve_card(card, slot=0)
    session = pcsc_connect(READER_SLOT0)
    assert session.atr == card.atr
    assert session.transmit(bytes.fromhex("80CA"))[-2:] == b"\x67\x00"
    assert session.transmit(bytes.fromhex("00A4040009A000000003869807"))[-2:] == b"\x67\x00"
    assert session.transmit(bytes.fromhex(SELECT_WALLET))[-2:] == b"\x90\x00"


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def test_opensc_tool_and_scriptor_reach_the_sim(
    serve_card: ServeCard, images: tuple[Path, Path], tmp_path: Path
) -> None:
    serve_card(bootstrap.file_card(images[0]), slot=0)
    r = _tool("opensc-tool", "-r", READER_SLOT0, "-s", SELECT_WALLET, "-s", "805C000204")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("SW1=0x90, SW2=0x00") == 2
    assert "00 00 27 10" in r.stdout.upper()  # balance 100.00 yuan = 0x2710 fen

    script = tmp_path / "balance.apdu"
    script.write_text(f"reset\n{SELECT_WALLET}\n80 5C 00 02 04\n00 B2 01 C4 17\nexit\n")
    r = _tool("scriptor", "-r", READER_SLOT0, str(script))
    assert r.returncode == 0, r.stderr
    out = r.stdout.upper()
    assert "< 00 00 27 10 90 00 : NORMAL PROCESSING." in out
    assert "6A 83" in out  # the log is still empty: record not found

    r = _tool("pcsc_scan", "-r")
    assert READER_SLOT0 in r.stdout


def test_nfcpay_card_serve_command(pcscd: object, images: tuple[Path, Path]) -> None:
    sim_path, _ = images
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from nfcpay.cli import entry; entry()", "card", "serve",
         "--card", str(sim_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        wait_for_presence(READER_SLOT0, present=True)
        r = _tool("opensc-tool", "-r", READER_SLOT0, "-s", SELECT_WALLET, "-s", "805C000204")
        assert "00 00 27 10" in r.stdout.upper(), r.stdout + r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "serving sim" in out and "stopped" in out
    wait_for_presence(READER_SLOT0, present=False)


def test_serve_refuses_a_psam_image_as_sim(images: tuple[Path, Path]) -> None:
    r = subprocess.run(
        [sys.executable, "-c", "from nfcpay.cli import entry; entry()", "card", "serve",
         "--card", str(images[1])],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert "not a sim" in r.stderr
