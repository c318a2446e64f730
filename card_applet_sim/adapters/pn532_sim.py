"""A simulated PN532 NFC reader on a pty, with a simulated card in its field (pcsc.md "Serial NFC
reader (PN532 over UART)"; our choices in docs/pn532.md).

The pty stands in for the USB-serial cable: the simulator serves the master end and keeps its
own copy of the slave open (otherwise reads fail with EIO whenever no terminal has the port
open); the terminal opens ``port`` (the slave's path) with pyserial.

Behaviour (the frame codec is paycore.pn532):

- asleep until the wake-up byte 55 arrives (frames before it are ignored, the host times out);
- every well-formed host frame is acknowledged with ACK before its response; a host ACK aborts a
  pending InListPassiveTarget; a host NACK repeats the last response;
- a frame with a bad checksum (or any frame the decoder drops) is ignored: the host times out;
- an unknown command, or one with bad parameters, gets the error frame after the ACK;
- GetFirmwareVersion answers IC 32 ver 1 rev 6 support 07;
- InListPassiveTarget answers the card as 106 kbps type A, SENS_RES 00 04, SEL_RES 20, a 4-byte
  NFCID1 and an ATS (and powers the card on); with no card in the field it waits, as a real
  PN532 with infinite retries does, until a card comes or the host aborts with an ACK;
- InDataExchange forwards the APDU to the card: status 00 and the R-APDU; 01 when the card was
  taken away (or after it came back, until it is listed again); 27 when no target was ever
  listed; command chaining with the more-data bit 40 of Tg; R-APDUs longer than 252 bytes come
  in pieces with status bit 40, the host fetching the rest with an empty InDataExchange;
- InRelease deactivates the target (status 00; 27 without a target).

``take_card_away`` / ``put_card_back`` move the card; ``pull_at_apdu`` schedules a pull just
before, or just after the card processed, the n-th APDU (for card-removal tests). Nothing here
logs APDU contents (a VERIFY carries the PIN).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import tty
from dataclasses import dataclass
from types import TracebackType

from card_applet_sim.domain.errors import CardSimError, PowerLoss
from card_applet_sim.ports import SmartCard
from paycore import pn532
from paycore.errors import DecodeError

__all__ = ["DEFAULT_ATS", "DEFAULT_NFCID1", "FIRMWARE", "Pn532Simulator"]

logger = logging.getLogger("nfcpay.pn532_sim")

#: GetFirmwareVersion answer: IC 32 (PN532), Ver 1, Rev 6, Support 07 (ISO 18092, A, B).
FIRMWARE = pn532.FirmwareVersion(0x32, 0x01, 0x06, 0x07)
#: SENS_RES (ATQA) of a single-size UID card, as the PN532 sends it.
SENS_RES = bytes.fromhex("0004")
#: SEL_RES (SAK) 20: ISO 14443-4 compliant.
SEL_RES = 0x20
#: A random single-size UID (ISO 14443-3: first byte 08 = random).
DEFAULT_NFCID1 = bytes.fromhex("08123456")
#: TL 05, T0 78 (FSCI 8 = 256 bytes; TA, TB, TC follow), TA 80, TB 70 (FWI 7), TC 02 (CID).
DEFAULT_ATS = bytes.fromhex("0578807002")
TARGET_NUMBER = 1
#: ISO 14443-4: an ATS is at most FSD - 2 bytes; 20 is plenty for a simulated card.
ATS_LEN_MAX = 20
#: PN532 error code 0E: internal buffer overflow (a chained C-APDU longer than this).
STATUS_BUFFER_OVERFLOW = 0x0E
#: Longest chained C-APDU we accept: an extended-length case 4 APDU is 65544 bytes, but the
#: simulated cards speak short APDUs only (card.md §1); 261 plus a margin for bad input.
CHAINED_APDU_MAX = 512
READ_CHUNK = 4096
POLL_S = 0.005
JOIN_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class _Pull:
    apdu_index: int  # 1-based count of complete APDUs since the schedule was set
    after_processing: bool


class Pn532Simulator:
    """A PN532 on the master end of a fresh pty. Use as a context manager, or ``start``/``stop``.

    ``port`` is the path the terminal opens. The card starts in the field, unpowered.
    """

    def __init__(
        self,
        card: SmartCard,
        *,
        nfcid1: bytes = DEFAULT_NFCID1,
        ats: bytes = DEFAULT_ATS,
        awake: bool = False,
    ) -> None:
        if len(nfcid1) not in (4, 7, 10):
            raise ValueError("NFCID1 must be 4, 7 or 10 bytes")
        if not ats or ats[0] != len(ats) or len(ats) > ATS_LEN_MAX:
            raise ValueError(f"the ATS must start with TL = its length (at most {ATS_LEN_MAX})")
        self._card = card
        self._target = pn532.TargetA(TARGET_NUMBER, SENS_RES, SEL_RES, nfcid1, ats)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self.port = ""
        self._decoder = pn532.FrameDecoder()
        self._awake = awake
        self._card_present = True
        self._ever_listed = False
        self._target_active = False
        self._list_pending = False
        self._last_response = b""
        self._chain = bytearray()
        self._rest = b""  # the unsent tail of a long R-APDU
        self._pull: _Pull | None = None
        self.apdus_seen = 0
        #: Frames dropped for a bad checksum/format (for tests and diagnostics).
        self.frames_dropped = 0
        #: What killed the serving thread, if anything; ``stop`` raises it again.
        self.error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty and serve in a background thread; returns ``port``."""
        assert self._thread is None, "already started"
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._serve, name="pn532-sim", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop serving and close the pty; raises what killed the serving thread, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            assert not self._thread.is_alive(), "the PN532 simulator did not stop"
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.error is not None:
            raise CardSimError("the PN532 simulator failed") from self.error

    def __enter__(self) -> Pn532Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the card in the field -------------------------------------------------------------

    @property
    def card_present(self) -> bool:
        return self._card_present

    @property
    def awake(self) -> bool:
        return self._awake

    @property
    def waiting_for_card(self) -> bool:
        """An InListPassiveTarget is pending (no card in the field, the host has not aborted)."""
        with self._lock:
            return self._list_pending

    def take_card_away(self) -> None:
        """The card leaves the field: it loses power and the listed target is gone."""
        with self._lock:
            self._card_present = False
            self._target_active = False
            self._chain.clear()
            self._rest = b""
            self._card.power_off()

    def put_card_back(self) -> None:
        """The card comes back (unpowered: the host lists it again with InListPassiveTarget)."""
        with self._lock:
            self._card_present = True

    def pull_at_apdu(self, apdu_index: int, *, after_processing: bool) -> None:
        """Take the card away at the ``apdu_index``-th APDU (1-based, counted from now): before
        the card sees it, or after the card processed it and before its answer leaves."""
        assert apdu_index >= 1
        with self._lock:
            self.apdus_seen = 0
            self._pull = _Pull(apdu_index, after_processing)

    # --- the serving loop ------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            self._serve_until_stopped()
        except BaseException as exc:  # kept for stop(); the host then times out
            self.error = exc
            logger.exception("the PN532 simulator stopped serving")

    def _serve_until_stopped(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], POLL_S)
            with self._lock:
                if ready:
                    try:
                        data = os.read(self._master, READ_CHUNK)
                    except OSError:  # EIO: cannot happen while we hold the slave; be safe
                        continue
                    self._receive(data)
                if self._list_pending and self._card_present:
                    self._list_pending = False
                    self._respond(self._list_target())

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._master, view)
            view = view[written:]

    def _respond(self, frame: bytes) -> None:
        self._last_response = frame
        self._write(frame)

    def _receive(self, data: bytes) -> None:
        if not self._awake:
            at = data.find(0x55)
            if at < 0:
                return
            self._awake = True  # HSU wake-up: the bytes before 55 were lost
            data = data[at + 1 :]
        for result in self._decoder.feed(data):
            self._handle(result)

    def _handle(self, result: pn532.Frame | pn532.BadFrame) -> None:
        match result:
            case pn532.BadFrame():
                self.frames_dropped += 1
                logger.debug("dropped a frame: %s", result.reason)
            case pn532.Ack():
                self._list_pending = False  # a host ACK aborts the current command
            case pn532.Nack():
                if self._last_response:
                    self._write(self._last_response)
            case pn532.ErrorFrame():
                pass
            case pn532.InformationFrame(tfi=pn532.TFI_HOST):
                self._write(pn532.ACK)
                self._list_pending = False  # a new command replaces a pending one
                try:
                    command = pn532.decode_command(result)
                except DecodeError as exc:
                    logger.debug("error frame for a host command: %s", exc)
                    self._respond(pn532.ERROR_FRAME)
                    return
                self._command(command)
            case pn532.InformationFrame():
                self.frames_dropped += 1  # a PN532 → host frame sent to us

    def _command(self, command: pn532.Command) -> None:
        match command:
            case pn532.GetFirmwareVersion():
                self._respond(pn532.encode_response(FIRMWARE))
            case pn532.SamConfiguration():
                self._respond(pn532.encode_response(pn532.SamConfigured()))
            case pn532.InListPassiveTarget():
                if self._card_present:
                    self._respond(self._list_target())
                else:
                    self._list_pending = True
            case pn532.InDataExchange(tg, data, more):
                self._respond(pn532.encode_response(self._exchange(tg, data, more=more)))
            case pn532.InRelease(tg):
                if self._target_active and tg in (0, TARGET_NUMBER):
                    self._target_active = False
                    status = pn532.STATUS_OK
                else:
                    status = pn532.STATUS_NO_TARGET
                self._respond(pn532.encode_response(pn532.ReleaseResult(status)))

    def _list_target(self) -> bytes:
        self._card.power_on()
        self._ever_listed = True
        self._target_active = True
        self._chain.clear()
        self._rest = b""
        return pn532.encode_response(pn532.ListedTargets((self._target,)))

    def _exchange(self, tg: int, data: bytes, *, more: bool) -> pn532.DataExchangeResult:
        if not self._ever_listed or tg != TARGET_NUMBER:
            return pn532.DataExchangeResult(pn532.STATUS_NO_TARGET)
        if not (self._card_present and self._target_active):
            return pn532.DataExchangeResult(pn532.STATUS_TIMEOUT)
        if self._rest and not data and not more and not self._chain:
            return self._piece()  # the host fetches the rest of a long R-APDU
        self._rest = b""
        if len(self._chain) + len(data) > CHAINED_APDU_MAX:
            self._chain.clear()
            return pn532.DataExchangeResult(STATUS_BUFFER_OVERFLOW)
        self._chain += data
        if more:
            return pn532.DataExchangeResult(pn532.STATUS_OK)
        apdu = bytes(self._chain)
        self._chain.clear()
        self.apdus_seen += 1
        pull = self._pull
        if pull is not None and pull.apdu_index == self.apdus_seen and not pull.after_processing:
            self._pull = None
            self.take_card_away()
            return pn532.DataExchangeResult(pn532.STATUS_TIMEOUT)
        try:
            response = self._card.transmit(apdu)
        except PowerLoss:
            self.take_card_away()
            return pn532.DataExchangeResult(pn532.STATUS_TIMEOUT)
        if pull is not None and pull.apdu_index == self.apdus_seen:
            self._pull = None
            self.take_card_away()
            return pn532.DataExchangeResult(pn532.STATUS_TIMEOUT)
        self._rest = response
        return self._piece()

    def _piece(self) -> pn532.DataExchangeResult:
        piece = self._rest[: pn532.DATA_EXCHANGE_CHUNK_MAX]
        self._rest = self._rest[pn532.DATA_EXCHANGE_CHUNK_MAX :]
        status = pn532.STATUS_OK | (pn532.MORE_DATA if self._rest else 0)
        return pn532.DataExchangeResult(status, piece)
