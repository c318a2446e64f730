"""The terminal through a real pcscd + vpcd (pcsc.md): the SIM on slot 0, the PSAM on slot 1,
both opened by reader specs (``pcsc:NAME`` and plain ``pcsc`` for the PSAM, the second reader);
a whole sale and a load against the real host on loopback, the card images saved at every
commit; reader names that match nothing or several; a reader without a card; and
`nfcpay pos sale` as a merchant types it, through pcscd."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain.wallet import WalletState
from paycore import purse
from pos_terminal.adapters.readers import (
    CardReader,
    ReaderError,
    open_psam_reader,
    open_reader,
)
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import CardGone
from tests.integration.acquiring.host_env import MID, TerminalSetup
from tests.integration.pcsc_env import READER_SLOT0, READER_SLOT1, ServeCard
from tests.integration.pos_readers import pos_env
from tests.integration.pos_readers.pos_env import OPENING_BALANCE_FEN, Host

pytestmark = [pytest.mark.pcsc, pytest.mark.timeout(180)]

SALE_FEN = 1_250
LOAD_FEN = 10_000
CARD_WAIT_S = 5.0


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    with pos_env.running_host(tmp_path_factory.mktemp("host"), count=8) as running:
        yield running


def _images(setup: TerminalSetup, folder: Path) -> tuple[Path, Path]:
    sim, psam = folder / "sim.card", folder / "psam.card"
    card_bootstrap.save_new_image(sim, pos_env.sim_image(setup))
    card_bootstrap.save_new_image(psam, pos_env.psam_image(setup))
    return sim, psam


def _balance_on_file(path: Path) -> int:
    state = card_bootstrap.file_card(path).image.instances[0].state
    assert isinstance(state, WalletState)
    return state.balance_fen


def test_sale_and_load_through_pcscd(host: Host, serve_card: ServeCard, tmp_path: Path) -> None:
    setup = host.take()
    sim_path, psam_path = _images(setup, tmp_path)
    serve_card(card_bootstrap.file_card(sim_path), slot=0)
    serve_card(card_bootstrap.file_card(psam_path), slot=1)
    card = open_reader(f"pcsc:{READER_SLOT0}")
    psam = open_psam_reader("pcsc", CARD_WAIT_S)  # by position: pcscd's second reader
    try:
        assert psam.name == f"pcsc:{READER_SLOT1}"
        card.wait_for_card(CARD_WAIT_S)
        with pos_env.terminal(host, setup, tmp_path, card, psam) as t:
            sold = t.sale(SALE_FEN)
            assert sold.approved, sold
            assert sold.balance_after_fen == OPENING_BALANCE_FEN - SALE_FEN
            card.wait_for_card(CARD_WAIT_S)  # the next tap: a fresh connection to the card
            loaded = t.load(LOAD_FEN)
            assert loaded.approved, loaded
            assert t.flush() == 0
    finally:
        card.close()
        psam.close()
    expected = OPENING_BALANCE_FEN - SALE_FEN + LOAD_FEN
    assert _balance_on_file(sim_path) == expected  # committed to the file by the card
    assert host.card_delta_fen(setup.terminal_id) == expected - OPENING_BALANCE_FEN


def test_reader_names(serve_card: ServeCard, host: Host, tmp_path: Path) -> None:
    sim_path, _ = _images(host.take(), tmp_path)
    serve_card(card_bootstrap.file_card(sim_path), slot=0)
    with pytest.raises(ReaderError, match="no PC/SC reader matches 'Nope'"):
        open_reader("pcsc:Nope")
    with pytest.raises(ReaderError, match="'virtual pcd' matches several PC/SC readers"):
        open_reader("pcsc:virtual pcd")
    reader: CardReader = open_reader("pcsc:00 00")  # a part of one name, any case
    try:
        assert reader.name == f"pcsc:{READER_SLOT0}"
        assert reader.wait_for_card(CARD_WAIT_S) == card_bootstrap.file_card(sim_path).atr
    finally:
        reader.close()
    empty = open_reader(f"pcsc:{READER_SLOT1}")
    with pytest.raises(CardGone, match=r"no card in Virtual PCD 00 01 after 0\.5 s"):
        empty.wait_for_card(0.5)
    with pytest.raises(CardGone, match="no card connected"):
        empty.transmit(bytes.fromhex("00A4040000"))


def test_pos_sale_command_through_pcscd(host: Host, serve_card: ServeCard, tmp_path: Path) -> None:
    setup = host.take()
    sim_path, psam_path = _images(setup, tmp_path)
    tmk_file = tmp_path / "pos.tmk"
    tmk_file.write_text(setup.tmk.hex().upper() + "\n")
    serve_card(card_bootstrap.file_card(sim_path), slot=0)
    serve_card(card_bootstrap.file_card(psam_path), slot=1)
    result = subprocess.run(
        [sys.executable, "-c", "from nfcpay.cli import entry; entry()", "pos", "sale", "12.50",
         "--reader", "pcsc", "--psam", "pcsc", "--host", f"127.0.0.1:{host.address[1]}",
         "--terminal-id", setup.terminal_id, "--merchant-id", MID, "--tmk-file", str(tmk_file),
         "--journal", str(tmp_path / "pos.journal"), "--timeout", "10"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "SALE                    APPROVED\n" in result.stdout
    assert "AMOUNT CNY                 12.50\n" in result.stdout
    assert setup.tmk.hex().upper() not in result.stdout + result.stderr
    assert _balance_on_file(sim_path) == OPENING_BALANCE_FEN - 1_250


def test_card_taken_out_and_back_through_pcscd(
    serve_card: ServeCard, host: Host, tmp_path: Path
) -> None:
    """A card gone from the reader is CardGone (never a pyscard exception); the next tap after
    it came back is a fresh connection, and a tap with the card still there a warm reset."""
    sim_path, _ = _images(host.take(), tmp_path)
    served = serve_card(card_bootstrap.file_card(sim_path), slot=0)
    reader = open_reader(f"pcsc:{READER_SLOT0}")
    try:
        reader.wait_for_card(CARD_WAIT_S)
        before = card_flows.read_card(reader).balance_fen
        reader.wait_for_card(CARD_WAIT_S)  # still there: reset, the wallet is not selected
        answer = reader.transmit(purse.get_balance().encode())
        assert answer[-2:] != b"\x90\x00"
        served.stop()
        with pytest.raises(CardGone):
            card_flows.read_card(reader)
        with pytest.raises(CardGone, match="no card in"):
            reader.wait_for_card(0.5)
        served.start()
        reader.wait_for_card(CARD_WAIT_S)
        assert card_flows.read_card(reader).balance_fen == before
    finally:
        reader.close()
