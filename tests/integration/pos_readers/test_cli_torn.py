"""`nfcpay pos sale` when the card leaves during DEBIT (after the card committed, its answer
lost), against the real host on loopback: the command asks for the same card, the terminal
proves the debit and the receipt says so; when the card does not come back the command ends
with the transaction open (exit 1), and the card's next tap finishes that one, not a new sale.

The card is an image file (``sim:``); the merchant's hand is a reader wrapped around it
(``bootstrap.open_reader`` patched), everything else is the CLI as it runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain.wallet import WalletState
from nfcpay import cli
from pos_terminal import bootstrap
from pos_terminal.adapters import readers
from pos_terminal.adapters.readers import CardReader, ReaderSpec
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain.card_flows import CardGone
from tests.integration.acquiring.host_env import MID, TerminalSetup
from tests.integration.pos_readers import pos_env
from tests.integration.pos_readers.pos_env import OPENING_BALANCE_FEN, Host

pytestmark = pytest.mark.timeout(120)

INS_DEBIT = 0x54


class TearAtDebit:
    """The card on the reader; the first DEBIT is processed by the card, then the card leaves
    before its answer. ``comes_back``: the merchant presents it again when asked."""

    def __init__(self, inner: SimReader, *, comes_back: bool) -> None:
        self.inner = inner
        self.name = inner.name
        self.comes_back = comes_back
        self.torn = False

    def wait_for_card(self, timeout_s: float) -> object:
        if not self.inner.in_field and self.comes_back:
            self.inner.present()
        return self.inner.wait_for_card(min(timeout_s, 0.2))

    def transmit(self, apdu: bytes) -> bytes:
        if not self.torn and len(apdu) > 1 and apdu[1] == INS_DEBIT:
            self.torn = True
            self.inner.transmit(apdu)
            self.inner.pull()
            raise CardGone("the card left the field")
        return self.inner.transmit(apdu)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    with pos_env.running_host(tmp_path_factory.mktemp("host"), count=4) as running:
        yield running


def _shop(host: Host, folder: Path) -> tuple[TerminalSetup, list[str]]:
    setup = host.take()
    card_bootstrap.save_new_image(folder / "sim.card", pos_env.sim_image(setup))
    card_bootstrap.save_new_image(folder / "psam.card", pos_env.psam_image(setup))
    (folder / "pos.tmk").write_text(setup.tmk.hex())
    options = [
        "--reader", f"sim:{folder / 'sim.card'}", "--psam", f"sim:{folder / 'psam.card'}",
        "--host", f"127.0.0.1:{host.address[1]}", "--terminal-id", setup.terminal_id,
        "--merchant-id", MID, "--tmk-file", str(folder / "pos.tmk"),
        "--journal", str(folder / "pos.journal"), "--timeout", "5",
    ]  # fmt: skip
    return setup, options


def _hand(monkeypatch: pytest.MonkeyPatch, *, comes_back: bool) -> list[TearAtDebit]:
    hands: list[TearAtDebit] = []
    real = readers.open_reader

    def open_reader(spec: str | ReaderSpec) -> CardReader:
        opened = real(spec)
        if isinstance(spec, ReaderSpec) and spec.role == "card":
            assert isinstance(opened, SimReader)
            hands.append(TearAtDebit(opened, comes_back=comes_back))
            return hands[-1]
        return opened

    monkeypatch.setattr(bootstrap, "open_reader", open_reader)
    return hands


def _balance(folder: Path) -> int:
    state = card_bootstrap.file_card(folder / "sim.card").image.instances[0].state
    assert isinstance(state, WalletState)
    return state.balance_fen


def test_torn_sale_finished_with_the_same_card(
    host: Host,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup, options = _shop(host, tmp_path)
    hands = _hand(monkeypatch, comes_back=True)
    assert cli.main(["pos", "sale", "12.50", *options]) == 0
    out, err = capsys.readouterr()
    assert hands[0].torn
    assert "present the same card again" in err
    assert "SALE                    APPROVED\n" in out
    assert "RESPONSE               recovered\n" in out
    assert "BALANCE CNY               187.50\n" in out
    assert _balance(tmp_path) == OPENING_BALANCE_FEN - 1_250
    assert host.card_delta_fen(setup.terminal_id) == -1_250


def test_card_not_back_then_its_next_tap_finishes_the_torn_sale(
    host: Host,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup, options = _shop(host, tmp_path)
    _hand(monkeypatch, comes_back=False)
    assert cli.main(["pos", "sale", "12.50", *options]) == 1
    out, err = capsys.readouterr()
    assert "SALE                    DECLINED\n" in out
    assert "RESPONSE                    torn\n" in out
    assert "stays open" in err
    assert _balance(tmp_path) == OPENING_BALANCE_FEN - 1_250  # the card did pay

    monkeypatch.undo()  # the card on the reader as it is
    assert cli.main(["pos", "sale", "3.00", *options]) == 1
    out, err = capsys.readouterr()
    assert "AMOUNT CNY                 12.50\n" in out and "APPROVED" in out
    assert "the sale of 3.00 yuan was not started: run it again" in err
    assert _balance(tmp_path) == OPENING_BALANCE_FEN - 1_250
    assert host.card_delta_fen(setup.terminal_id) == -1_250
    assert cli.main(["pos", "sale", "3.00", *options]) == 0
    assert _balance(tmp_path) == OPENING_BALANCE_FEN - 1_250 - 300
