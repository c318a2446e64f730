"""The terminal's PN532 NFC reader on a serial line through pyserial (pcsc.md "Serial NFC reader
(PN532 over UART)"; needs the [pcsc] extra; our choices in docs/pn532.md).

Works with a real PN532 on /dev/ttyUSB0 at 115200 baud and with the simulated PN532 of
card_applet_sim.adapters.pn532_sim on a pty. The port is opened with ``exclusive=True`` so two
terminals cannot share one reader.

One command goes: host frame → ACK from the PN532 (within ``ack_timeout_s``) → the response
frame (within the command's timeout). A response with a bad checksum is asked for again with a
NACK (at most ``NACK_RETRIES_MAX`` times); a command that is not answered in time is aborted
with a host ACK, the only time the host sends one. The card leaving the field (InDataExchange
status ≠ 00, or no answer in time) raises CardGone, the terminal's own event: the flows then
recover (card.md §4).
"""

from __future__ import annotations

import collections
import contextlib
import time
from types import TracebackType
from typing import Any

import serial

from paycore import pn532
from paycore.errors import DecodeError
from pos_terminal.adapters.readers import ReaderError
from pos_terminal.domain.card_flows import CardGone, FlowError

__all__ = ["BAUD_RATE", "Pn532Error", "Pn532Reader", "Pn532Timeout"]

BAUD_RATE = 115200
IC_PN532 = 0x32
NACK_RETRIES_MAX = 2
WAKE_UP_TRIES_MAX = 2
#: Pause between InListPassiveTarget polls when a PN532 answers "no target" (finite retries).
POLL_PAUSE_S = 0.02
#: Longest C-APDU we send: a short case 4 APDU (5 + 255 + 1).
APDU_LEN_MAX = 261
#: Longest R-APDU we accept across more-data pieces: 256 bytes of data and the status word.
RESPONSE_LEN_MAX = 258
READ_LEN_MAX = 512
TIMEOUT_MAX_S = 60.0
#: The serial read timeout: how late past a deadline a wait may end. A read returns as soon as
#: a byte arrives.
READ_POLL_S = 0.005


class Pn532Error(ReaderError):
    """The reader cannot be used: the port is busy or missing, it is not a PN532, it answered
    with an error frame or with something we cannot decode."""


class Pn532Timeout(Pn532Error):  # noqa: N818 - names the event
    """The PN532 did not acknowledge (``acknowledged`` False) or answer a command in time."""

    def __init__(self, message: str, *, acknowledged: bool) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


class Pn532Reader:
    """One PN532 on one serial port, as an ApduLink once a card is listed (``wait_for_card``).

    ``open`` (or the context manager) wakes the PN532 up, configures it (SAMConfiguration normal
    mode) and checks GetFirmwareVersion says IC 32.
    """

    def __init__(
        self,
        port: str,
        *,
        ack_timeout_s: float = 0.2,
        response_timeout_s: float = 1.0,
    ) -> None:
        if not (0 < ack_timeout_s <= TIMEOUT_MAX_S and 0 < response_timeout_s <= TIMEOUT_MAX_S):
            raise ValueError(f"PN532 timeouts must be in (0, {TIMEOUT_MAX_S:g}] s")
        self.port = port
        self.name = f"serial:{port}"
        self.ack_timeout_s = ack_timeout_s
        self.response_timeout_s = response_timeout_s
        self._serial: Any = None
        self._decoder = pn532.FrameDecoder()
        self._pending: collections.deque[pn532.Frame | pn532.BadFrame] = collections.deque()
        self._target: pn532.TargetA | None = None
        self.firmware: pn532.FirmwareVersion | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> pn532.FirmwareVersion:
        try:
            # The read timeout stays fixed: changing it reconfigures the port (tcsetattr, and
            # USB control transfers on a USB-serial adapter) every time.
            self._serial = serial.Serial(self.port, BAUD_RATE, timeout=READ_POLL_S, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            raise Pn532Error(f"{self.port}: cannot open the PN532 port ({exc})") from None
        try:
            self._wake_up()
            answer = self._command(pn532.GetFirmwareVersion(), self.response_timeout_s)
            assert isinstance(answer, pn532.FirmwareVersion)
            if answer.ic != IC_PN532:
                raise Pn532Error(f"{self.port}: IC {answer.ic:02X} is not a PN532 (32)")
        except BaseException:
            self.close()
            raise
        self.firmware = answer
        return answer

    def close(self) -> None:
        self._target = None
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None

    def __enter__(self) -> Pn532Reader:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wake_up(self) -> None:
        """HSU wake-up: 55 55 and 14 x 00, then SAMConfiguration (normal mode) as the first
        command (PN532 user manual §7.2.10)."""
        for attempt in range(1, WAKE_UP_TRIES_MAX + 1):
            self._write(pn532.WAKE_UP)
            try:
                self._command(pn532.SamConfiguration(), self.response_timeout_s)
            except Pn532Timeout:
                if attempt == WAKE_UP_TRIES_MAX:
                    raise
            else:
                return

    # --- the card --------------------------------------------------------------------------

    @property
    def target(self) -> pn532.TargetA | None:
        return self._target

    def wait_for_card(self, timeout_s: float) -> pn532.TargetA:
        """Poll with InListPassiveTarget (106 kbps type A) until an ISO 14443-4 card is listed;
        raises CardGone after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        self._target = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CardGone(f"no card on the PN532 at {self.port} after {timeout_s:g} s")
            try:
                # A PN532 with infinite retries (the default) answers when a card comes; the
                # timeout aborts it with an ACK.
                answer = self._command(pn532.InListPassiveTarget(1), remaining)
            except Pn532Timeout as exc:
                if not exc.acknowledged:
                    raise  # the PN532 itself does not answer: not a question of a card
                continue
            assert isinstance(answer, pn532.ListedTargets)
            for target in answer.targets:
                if target.iso14443_4:
                    self._target = target
                    return target
            for target in answer.targets:  # not a payment card (e.g. MIFARE Classic)
                self._command(pn532.InRelease(target.tg), self.response_timeout_s)
            time.sleep(min(POLL_PAUSE_S, max(0.0, deadline - time.monotonic())))

    def release(self) -> None:
        """Deselect the listed card (InRelease); the reader stays open."""
        target, self._target = self._target, None
        if target is not None:
            self._command(pn532.InRelease(target.tg), self.response_timeout_s)

    def transmit(self, apdu: bytes) -> bytes:
        """One C-APDU to the listed card by InDataExchange; its R-APDU back. Raises CardGone
        when no card is listed, the card left the field, or the PN532 did not answer in time or
        not sensibly: once the command left, the card may have processed it, and only CardGone
        makes the flows recover (a torn DEBIT must never look like a refused one)."""
        target = self._target
        if target is None:
            raise CardGone(f"no card listed on the PN532 at {self.port}")
        if len(apdu) > APDU_LEN_MAX:
            raise FlowError(f"C-APDU of {len(apdu)} bytes; at most {APDU_LEN_MAX}")
        chunk = pn532.DATA_EXCHANGE_CHUNK_MAX
        pieces = [apdu[i : i + chunk] for i in range(0, len(apdu), chunk)] or [b""]
        try:
            for i, piece in enumerate(pieces):  # host chaining: bit 40 of Tg on all but the last
                result = self._exchange(target.tg, piece, more=i < len(pieces) - 1)
            response = bytearray(result.data)
            while result.more:  # the PN532's more-data bit 40 of Status
                result = self._exchange(target.tg, b"", more=False)
                response += result.data
                if len(response) > RESPONSE_LEN_MAX:
                    raise Pn532Error(f"R-APDU longer than {RESPONSE_LEN_MAX} bytes")
        except Pn532Error as exc:
            self._target = None
            raise CardGone(f"no answer from the card through the PN532 ({exc})") from None
        return bytes(response)

    def _exchange(self, tg: int, data: bytes, *, more: bool) -> pn532.DataExchangeResult:
        result = self._command(pn532.InDataExchange(tg, data, more), self.response_timeout_s)
        assert isinstance(result, pn532.DataExchangeResult)
        if result.error != pn532.STATUS_OK:
            self._target = None
            raise CardGone(f"the card left the field (PN532 status {result.error:02X})")
        return result

    # --- frames ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise Pn532Error(f"the PN532 at {self.port} is not open")
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise Pn532Error(f"{self.port}: write failed ({exc})") from None

    def _next(self, deadline: float) -> pn532.Frame | pn532.BadFrame | None:
        """The next frame or bad frame from the PN532, or None at the deadline."""
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                waiting = self._serial.in_waiting
                data = self._serial.read(min(max(1, waiting), READ_LEN_MAX))
            except (serial.SerialException, OSError) as exc:
                raise Pn532Error(f"{self.port}: read failed ({exc})") from None
            self._pending.extend(self._decoder.feed(bytes(data)))
        return self._pending.popleft()

    def _discard_input(self) -> None:
        """Forget anything left from an earlier, aborted command."""
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise Pn532Error(f"{self.port}: {exc}") from None
        self._pending.clear()
        self._decoder = pn532.FrameDecoder()

    def _command(self, command: pn532.Command, timeout_s: float) -> pn532.Response:
        name = type(command).__name__
        if self._serial is None:
            raise Pn532Error(f"the PN532 at {self.port} is not open")
        self._discard_input()
        self._write(pn532.encode_command(command))
        ack_deadline = time.monotonic() + self.ack_timeout_s
        while True:
            frame = self._next(ack_deadline)
            if frame is None:
                raise Pn532Timeout(
                    f"{self.port}: the PN532 did not acknowledge {name}", acknowledged=False
                )
            if isinstance(frame, pn532.Ack):
                break
            if isinstance(frame, pn532.ErrorFrame):
                raise Pn532Error(f"{self.port}: the PN532 answered {name} with an error frame")
            # anything else before the ACK (a stale frame, noise) is skipped
        deadline = time.monotonic() + timeout_s
        nacks = 0
        while True:
            frame = self._next(deadline)
            match frame:
                case None:
                    self._write(pn532.ACK)  # abort the command (user manual §6.2.1.3)
                    raise Pn532Timeout(
                        f"{self.port}: no answer to {name} in {timeout_s:g} s", acknowledged=True
                    )
                case pn532.ErrorFrame():
                    raise Pn532Error(f"{self.port}: the PN532 answered {name} with an error frame")
                case pn532.BadFrame():
                    if nacks == NACK_RETRIES_MAX:
                        raise Pn532Error(f"{self.port}: {frame.error}")
                    nacks += 1
                    self._write(pn532.NACK)  # ask for the response again
                case pn532.InformationFrame(tfi=pn532.TFI_PN532):
                    try:
                        return pn532.decode_response(frame, command.code)
                    except DecodeError as exc:
                        raise Pn532Error(f"{self.port}: {exc}") from None
                case _:
                    pass  # a stray ACK/NACK or host frame: keep waiting
