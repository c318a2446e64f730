"""The vpcd adapter through a real pcscd (pyscard, opensc-tool, scriptor, pcsc_scan as clients),
and its socket loop against a stand-in vpcd on loopback (bad frames, drops, stop, timeouts)."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from card_applet_sim.adapters import vpcd
from card_applet_sim.adapters.pcscd_process import PcscdProcess
from tests.integration.pcsc_env import (
    READER_SLOT0,
    READER_SLOT1,
    PcscConnect,
    ServeCard,
    card_present,
    wait_for_card,
)

pytestmark = [pytest.mark.pcsc, pytest.mark.timeout(120)]

SELECT_AID_HEX = "00A4040009A00000000386980701"
SELECT_AID = bytes.fromhex(SELECT_AID_HEX)
#: A VERIFY (INS 20) carrying a PIN that must never reach a log.
PIN_BLOCK = bytes.fromhex("2412345FFFFFFFFF")
VERIFY = bytes.fromhex("0020008008") + PIN_BLOCK
#: Stand-in for a command the client tools have to get through: CLA 80, INS EE echoes its data.
ECHO_INS = 0xEE
TOOL_TIMEOUT_S = 30.0


def atr_t1(historical: bytes) -> bytes:
    """A minimal ISO 7816-3 ATR offering T=0 and T=1, with ``historical`` bytes and TCK."""
    assert len(historical) <= 15
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes((tck,))


class FakeCard:
    """A SmartCard that answers SELECT with 9000, echoes CLA 80 INS EE, and counts power
    events. Like a real one it answers 6F00 while unpowered; it can be told to raise."""

    def __init__(self, atr: bytes = atr_t1(b"nfcpay")) -> None:
        self._atr = atr
        self.powered = False
        self.power_ons = 0
        self.resets = 0
        self.power_offs = 0
        self.apdus: list[bytes] = []
        self.raise_on_ins: int | None = None

    @property
    def atr(self) -> bytes:
        return self._atr

    def power_on(self) -> bytes:
        self.power_ons += 1
        self.powered = True
        return self._atr

    def reset(self) -> bytes:
        self.resets += 1
        self.powered = True
        return self._atr

    def power_off(self) -> None:
        self.power_offs += 1
        self.powered = False

    def transmit(self, apdu: bytes) -> bytes:
        self.apdus.append(apdu)
        if self.raise_on_ins is not None and apdu[1] == self.raise_on_ins:
            raise RuntimeError(f"card bug while handling {apdu.hex()}")
        if not self.powered:
            return b"\x6f\x00"
        if apdu[:4] == SELECT_AID[:4]:
            return b"\x90\x00"
        if apdu[:2] == bytes((0x80, ECHO_INS)) and len(apdu) > 5:
            return apdu[5 : 5 + apdu[4]] + b"\x90\x00"
        if apdu[1] == 0x20:
            return b"\x90\x00"
        return b"\x6d\x00"


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)


# --------------------------------------------------------------------------------------------
# Through pcscd
# --------------------------------------------------------------------------------------------


def test_pyscard_selects_and_exchanges_data(
    serve_card: ServeCard, pcsc_connect: PcscConnect
) -> None:
    card = FakeCard()
    serve_card(card)
    session = pcsc_connect(READER_SLOT0)
    assert session.transmit(SELECT_AID) == b"\x90\x00"
    data = bytes(range(200))
    echo = bytes((0x80, ECHO_INS, 0, 0, len(data))) + data + b"\x00"
    assert session.transmit(echo) == data + b"\x90\x00"
    assert card.apdus[-2:] == [SELECT_AID, echo]


def test_pyscard_sees_the_card_atr(serve_card: ServeCard, pcsc_connect: PcscConnect) -> None:
    card = FakeCard(atr_t1(b"ATR-check"))
    serve_card(card)
    assert pcsc_connect(READER_SLOT0).atr == card.atr


def test_power_on_reset_and_power_off_reach_the_card(
    serve_card: ServeCard, pcsc_connect: PcscConnect
) -> None:
    from smartcard.scard import SCARD_RESET_CARD

    card = FakeCard()
    serve_card(card)
    first = pcsc_connect(READER_SLOT0)
    assert card.powered
    assert card.power_ons == 1
    first.close()  # pyscard's connect() chose SCARD_UNPOWER_CARD for the disconnect
    assert card.power_offs == 1
    assert not card.powered
    second = pcsc_connect(READER_SLOT0)
    assert card.power_ons == 2
    # reconnect() warm-resets by default (and makes the later disconnect a reset too).
    second.connection.reconnect(disposition=SCARD_RESET_CARD)
    assert card.resets == 1
    assert second.transmit(SELECT_AID) == b"\x90\x00"


def test_second_slot_serves_another_card(serve_card: ServeCard, pcsc_connect: PcscConnect) -> None:
    sim = FakeCard(atr_t1(b"SIM"))
    psam = FakeCard(atr_t1(b"PSAM"))
    serve_card(sim, slot=0)
    serve_card(psam, slot=1)
    assert pcsc_connect(READER_SLOT0).atr == sim.atr
    assert pcsc_connect(READER_SLOT1).atr == psam.atr


def test_opensc_tool_sends_an_apdu(serve_card: ServeCard) -> None:
    card = FakeCard()
    serve_card(card)
    result = run_tool("opensc-tool", "-r", READER_SLOT0, "-s", SELECT_AID_HEX)
    assert result.returncode == 0, result.stderr
    assert "Sending: 00 A4 04 00 09 A0 00 00 00 03 86 98 07 01" in result.stdout
    assert "Received (SW1=0x90, SW2=0x00)" in result.stdout
    assert SELECT_AID in card.apdus


def test_scriptor_runs_a_script(serve_card: ServeCard, tmp_path: Path) -> None:
    card = FakeCard()
    serve_card(card)
    script = tmp_path / "select.apdu"
    script.write_text("00 A4 04 00 09 A0 00 00 00 03 86 98 07 01\n80 EE 00 00 02 CA FE\n")
    result = run_tool("scriptor", "-r", READER_SLOT0, str(script))
    assert result.returncode == 0, result.stderr
    assert "< 90 00 : Normal processing." in result.stdout
    assert "< CA FE 90 00 : Normal processing." in result.stdout


def test_pcsc_scan_lists_the_readers_and_the_card(serve_card: ServeCard) -> None:
    card = FakeCard()
    serve_card(card)
    readers = run_tool("pcsc_scan", "-r")
    assert readers.returncode == 0, readers.stderr
    assert f"0: {READER_SLOT0}" in readers.stdout
    assert f"1: {READER_SLOT1}" in readers.stdout
    cards = run_tool("pcsc_scan", "-c")
    assert cards.returncode == 0, cards.stderr
    assert "ATR: " + card.atr.hex(" ").upper() in cards.stdout


def test_stopping_the_serve_thread_removes_the_card(
    serve_card: ServeCard, pcsc_connect: PcscConnect
) -> None:
    from smartcard.Exceptions import CardConnectionException

    served = serve_card(FakeCard())
    session = pcsc_connect(READER_SLOT0)
    served.stop()  # waits until pcscd reports the reader empty
    assert not served.alive
    assert not card_present(READER_SLOT0)
    with pytest.raises(CardConnectionException):
        session.transmit(SELECT_AID)


def test_serving_again_right_after_a_stop_works(serve_card: ServeCard) -> None:
    card = FakeCard()
    served = serve_card(card)
    for _ in range(3):
        # No wait for the removal at stop: start() waits for it (pcsc.md's first remedy).
        served.stop(wait_removed_s=None)
        served.start()
        with wait_for_card(READER_SLOT0) as session:
            assert session.transmit(SELECT_AID) == b"\x90\x00"
    assert served.connections == 4
    assert served.error is None


def test_a_card_reinserted_at_once_is_usable_after_a_retry(serve_card: ServeCard) -> None:
    """pcsc.md's second remedy: re-insert without waiting; the first exchange may fail
    (pcscd has not seen the swap), a reconnect resets the new card and it answers."""
    from smartcard.Exceptions import CardConnectionException

    served = serve_card(FakeCard())
    served.stop(wait_removed_s=None)
    served.start(wait_present_s=None, after_removal=False)
    with wait_for_card(READER_SLOT0) as session:
        deadline = time.monotonic() + 1.5
        while True:
            try:
                assert session.transmit(SELECT_AID) == b"\x90\x00"
                break
            except CardConnectionException:
                assert time.monotonic() < deadline, "no answer within 1.5 s of re-inserting"
                with contextlib.suppress(CardConnectionException):
                    session.connection.reconnect()
                time.sleep(0.05)


def test_serve_reconnects_after_pcscd_restarts(pcscd: PcscdProcess, serve_card: ServeCard) -> None:
    served = serve_card(FakeCard())
    assert served.connections == 1
    pcscd.stop()
    pcscd.start()
    with wait_for_card(READER_SLOT0) as session:
        assert session.transmit(SELECT_AID) == b"\x90\x00"
    # Usually 2; a connect that lands while the old pcscd is closing is reset and retried.
    assert served.connections >= 2
    assert served.alive


def test_no_apdu_data_is_logged(
    serve_card: ServeCard, pcsc_connect: PcscConnect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="nfcpay.vpcd")
    card = FakeCard()
    serve_card(card)
    session = pcsc_connect(READER_SLOT0)
    assert session.transmit(VERIFY) == b"\x90\x00"
    card.raise_on_ins = 0x20
    assert session.transmit(VERIFY) == b"\x6f\x00"
    messages = [record.getMessage() for record in caplog.records]
    assert any("RuntimeError" in message for message in messages)
    assert any("13-byte command APDU" in message for message in messages)
    for message in messages:
        for needle in (PIN_BLOCK.hex(), PIN_BLOCK.hex(" "), PIN_BLOCK.hex().upper(), "12345"):
            assert needle not in message


# --------------------------------------------------------------------------------------------
# Against a stand-in vpcd on loopback (no pcscd needed)
# --------------------------------------------------------------------------------------------


class StandInVpcd:
    """The listening side of the vpcd protocol, driven by the test."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5.0)
        self.port: int = self.listener.getsockname()[1]

    def accept(self) -> socket.socket:
        conn, _ = self.listener.accept()
        conn.settimeout(5.0)
        return conn

    @staticmethod
    def exchange(conn: socket.socket, payload: bytes) -> bytes:
        conn.sendall(vpcd.encode_frame(payload))
        decoder = vpcd.FrameDecoder()
        while True:
            chunk = conn.recv(decoder.bytes_wanted)
            assert chunk, "card closed the connection"
            payloads = decoder.feed(chunk)
            if payloads:
                return payloads[0]

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def stand_in() -> Iterator[StandInVpcd]:
    server = StandInVpcd()
    yield server
    server.close()


class ServeThread:
    def __init__(self, card: FakeCard, port: int, connect_timeout_s: float | None = None) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(card, port, connect_timeout_s), daemon=True
        )
        self.thread.start()

    def _run(self, card: FakeCard, port: int, connect_timeout_s: float | None) -> None:
        try:
            vpcd.serve(card, port=port, stop=self.stop, connect_timeout_s=connect_timeout_s)
        except BaseException as exc:
            self.error = exc

    def halt(self) -> float:
        """Stop; returns how long serve took to return."""
        started = time.monotonic()
        self.stop.set()
        self.thread.join(5.0)
        assert not self.thread.is_alive()
        return time.monotonic() - started


@pytest.fixture
def serve_thread() -> Iterator[list[ServeThread]]:
    threads: list[ServeThread] = []
    yield threads
    for one in threads:
        one.halt()


@pytest.mark.parametrize(
    ("bad_bytes", "what"),
    [
        (b"\x00\x00", "zero length"),
        (b"\xff\xff", "over the payload limit"),
        (b"\x00\x01\x03", "unknown control byte"),
        (b"\x00\x05\x00\xa4", "connection closed inside a frame"),
    ],
)
def test_a_bad_frame_drops_the_connection_and_serve_reconnects(
    stand_in: StandInVpcd,
    serve_thread: list[ServeThread],
    bad_bytes: bytes,
    what: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="nfcpay.vpcd")
    card = FakeCard()
    serve_thread.append(ServeThread(card, stand_in.port))
    with stand_in.accept() as first:
        first.sendall(bad_bytes)
        if what == "connection closed inside a frame":
            first.shutdown(socket.SHUT_WR)
        assert first.recv(1) == b"", f"{what}: the card should close the connection"
    with stand_in.accept() as second:
        assert stand_in.exchange(second, b"\x04") == card.atr
        second.sendall(vpcd.encode_frame(b"\x01"))  # power on: no reply
        assert stand_in.exchange(second, SELECT_AID) == b"\x90\x00"
    assert serve_thread[0].thread.is_alive()
    assert serve_thread[0].error is None
    assert any("dropped" in record.getMessage() for record in caplog.records)


def test_serve_answers_control_bytes_and_apdus(
    stand_in: StandInVpcd, serve_thread: list[ServeThread]
) -> None:
    card = FakeCard()
    serve_thread.append(ServeThread(card, stand_in.port))
    with stand_in.accept() as conn:
        assert stand_in.exchange(conn, b"\x04") == card.atr
        conn.sendall(vpcd.encode_frame(b"\x01"))  # power on: no reply
        assert stand_in.exchange(conn, SELECT_AID) == b"\x90\x00"
        conn.sendall(vpcd.encode_frame(b"\x02"))  # reset: no reply
        conn.sendall(vpcd.encode_frame(b"\x00"))  # power off: no reply
        assert stand_in.exchange(conn, SELECT_AID) == b"\x6f\x00"
    assert (card.power_ons, card.resets, card.power_offs) == (1, 1, 1)


def test_a_card_exception_is_answered_6f00_and_serving_goes_on(
    stand_in: StandInVpcd, serve_thread: list[ServeThread]
) -> None:
    card = FakeCard()
    card.raise_on_ins = 0xA4
    serve_thread.append(ServeThread(card, stand_in.port))
    with stand_in.accept() as conn:
        conn.sendall(vpcd.encode_frame(b"\x01"))
        assert stand_in.exchange(conn, SELECT_AID) == b"\x6f\x00"
        assert stand_in.exchange(conn, VERIFY) == b"\x90\x00"


def test_serve_returns_promptly_when_stopped_while_connected(
    stand_in: StandInVpcd, serve_thread: list[ServeThread]
) -> None:
    serving = ServeThread(FakeCard(), stand_in.port)
    serve_thread.append(serving)
    with stand_in.accept() as conn:
        assert stand_in.exchange(conn, b"\x04")
        assert serving.halt() < 0.5
        assert conn.recv(1) == b"", "stopping closes the connection (card removed)"


def test_serve_returns_promptly_when_stopped_while_connecting(
    serve_thread: list[ServeThread],
) -> None:
    port = _unused_port()
    serving = ServeThread(FakeCard(), port)
    serve_thread.append(serving)
    time.sleep(0.3)  # let it retry a few times
    assert serving.halt() < 0.5
    assert serving.error is None


def test_serve_raises_vpcd_unreachable_after_the_connect_timeout() -> None:
    port = _unused_port()
    started = time.monotonic()
    with pytest.raises(vpcd.VpcdUnreachableError, match=f"127.0.0.1:{port}") as caught:
        vpcd.serve(FakeCard(), port=port, stop=threading.Event(), connect_timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert isinstance(caught.value, ConnectionError)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
