"""Reader specs and the in-process reader's presence (the PC/SC and PN532 readers are tried for
real in tests/integration/pos_readers)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from card_applet_sim import bootstrap
from paycore.purse import WALLET_AID, select_aid
from pos_terminal.adapters.readers import (
    ReaderError,
    ReaderSpec,
    ReaderSpecError,
    open_psam_reader,
    open_reader,
    parse_reader_spec,
)
from pos_terminal.adapters.sim_reader import SimReader, SimReaderError
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import CardGone
from tests.unit.card_applet_sim.cardkit import ASN, make_keys, psam_image, sim_image


@pytest.mark.parametrize(
    ("text", "role", "spec"),
    [
        ("pcsc", "card", ReaderSpec("card", "pcsc", None)),
        ("pcsc:Virtual PCD 00 01", "psam", ReaderSpec("psam", "pcsc", "Virtual PCD 00 01")),
        ("pcsc:ACS", "card", ReaderSpec("card", "pcsc", "ACS")),
        ("serial:/dev/ttyUSB0", "card", ReaderSpec("card", "serial", "/dev/ttyUSB0")),
        ("sim:cards/sim.card", "card", ReaderSpec("card", "sim", "cards/sim.card")),
        ("sim:C:psam.card", "psam", ReaderSpec("psam", "sim", "C:psam.card")),
    ],
)
def test_specs_that_parse(text: str, role: str, spec: ReaderSpec) -> None:
    assert parse_reader_spec(text, role) == spec  # type: ignore[arg-type]
    assert str(spec) == text


@pytest.mark.parametrize(
    ("text", "role", "message"),
    [
        ("", "card", "--reader: expected pcsc[:NAME], serial:/dev/ttyX or sim:CARDFILE"),
        ("usb:1", "card", "--reader 'usb:1': expected pcsc[:NAME], serial:/dev/ttyX or sim:"),
        ("serial:/dev/ttyUSB0", "psam", "--psam 'serial:/dev/ttyUSB0': expected pcsc[:NAME] or"),
        ("serial:", "card", "--reader 'serial:': serial needs a serial port after the colon"),
        ("sim:", "psam", "--psam 'sim:': sim needs a card image file after the colon"),
        ("pcsc: ", "card", "--reader 'pcsc: ': the PC/SC reader name is empty"),
        ("PCSC", "card", "--reader 'PCSC': expected pcsc"),
        ("sim:a\nb", "card", "--reader: expected"),
        ("sim:" + "x" * 600, "card", "--reader: expected"),
    ],
)
def test_bad_specs_are_one_clear_line(text: str, role: str, message: str) -> None:
    with pytest.raises(ReaderSpecError) as caught:
        parse_reader_spec(text, role)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ReaderError) and isinstance(caught.value, ValueError)


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    keys = make_keys()
    sim, psam = tmp_path / "sim.card", tmp_path / "psam.card"
    bootstrap.save_new_image(sim, sim_image(keys))
    bootstrap.save_new_image(psam, psam_image(keys))
    return sim, psam


def test_sim_specs_open_the_images(images: tuple[Path, Path]) -> None:
    sim_path, psam_path = images
    reader = open_reader(f"sim:{sim_path}")
    assert reader.name == f"sim:{sim_path}"
    reader.wait_for_card(0.1)
    psam = card_flows.open_psam(open_psam_reader(f"sim:{psam_path}"))
    assert card_flows.read_card(reader).asn == ASN
    assert len(psam.terminal_id) == 6


def test_sim_spec_errors(images: tuple[Path, Path], tmp_path: Path) -> None:
    sim_path, psam_path = images
    with pytest.raises(SimReaderError, match="this is a psam image, not a sim"):
        open_reader(f"sim:{psam_path}")
    with pytest.raises(SimReaderError, match="this is a sim image, not a psam"):
        open_psam_reader(f"sim:{sim_path}")
    with pytest.raises(SimReaderError, match="no such card image"):
        open_reader(f"sim:{tmp_path / 'missing.card'}")


def test_serial_spec_on_a_missing_port_is_a_reader_error(tmp_path: Path) -> None:
    pytest.importorskip("serial")
    with pytest.raises(ReaderError, match="cannot open the PN532 port"):
        open_reader(f"serial:{tmp_path / 'ttyNONE'}")


def test_wait_for_card_times_out_as_card_gone(images: tuple[Path, Path]) -> None:
    reader = SimReader(bootstrap.file_card(images[0]))
    with pytest.raises(CardGone, match=r"no card on the in-process reader after 0\.01 s"):
        reader.wait_for_card(0.01)
    with pytest.raises(CardGone, match="no card in the field"):
        reader.transmit(bytes.fromhex("00A4040000"))


def test_wait_for_card_wakes_when_the_card_is_presented(images: tuple[Path, Path]) -> None:
    reader = SimReader(bootstrap.file_card(images[0]))
    timer = threading.Timer(0.02, reader.present)
    timer.start()
    try:
        atr = reader.wait_for_card(5.0)
    finally:
        timer.join()
    assert atr == reader.card.atr
    assert card_flows.read_card(reader).asn == ASN


def test_a_pulled_card_is_card_gone_and_a_new_tap_resets_it(images: tuple[Path, Path]) -> None:
    reader = SimReader(bootstrap.file_card(images[0]))
    reader.present()
    card_flows.send(reader, select_aid(WALLET_AID), "SELECT")
    reader.pull()
    with pytest.raises(CardGone):
        card_flows.read_card(reader)
    reader.present()
    reader.wait_for_card(0.1)
    assert card_flows.read_card(reader).asn == ASN


def test_pcsc_without_pcscd_is_a_reader_error() -> None:
    pytest.importorskip("smartcard")
    if Path("/run/pcscd/pcscd.comm").exists():
        pytest.skip("a pcscd is running (this test wants none)")
    with pytest.raises(ReaderError, match=r"PC/SC is not available \(is pcscd running\?\)"):
        open_reader("pcsc")
