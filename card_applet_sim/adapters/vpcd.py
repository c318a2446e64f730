"""Serve a simulated card to pcscd through vsmartcard's vpcd reader driver (pcsc.md "vpcd").

vpcd runs in server mode inside pcscd: it listens on TCP (35963 for slot 0, 35964 for slot 1)
and the card connects to it. Closing the connection is taking the card out of the reader.

Wire protocol, both directions: a frame is a 2-byte big-endian payload length, then the payload.
From vpcd, a 1-byte payload is a control byte (00 power off, 01 power on, 02 reset: no reply;
04 get ATR: reply with the ATR); a payload of 2 bytes or more is a command APDU, answered with
the response APDU.

The first half of this module is a pure codec (bytes in, payloads out, errors as
``DecodeError("vpcd frame", offset, reason)``); the second half is the socket loop ``serve``.
Nothing here logs APDU contents (a VERIFY command carries the PIN): only lengths.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable

from card_applet_sim.ports import SmartCard
from paycore.errors import DecodeError, EncodeError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HEADER_LEN",
    "PAYLOAD_LEN_MAX",
    "WIRE_PAYLOAD_LEN_MAX",
    "FrameDecoder",
    "VpcdUnreachableError",
    "decode_frame",
    "encode_frame",
    "serve",
]

logger = logging.getLogger("nfcpay.vpcd")

# --------------------------------------------------------------------------------------------
# Frame codec (pure)
# --------------------------------------------------------------------------------------------

#: Bytes of the big-endian length prefix.
HEADER_LEN = 2
#: The largest payload the 2-byte length can describe.
WIRE_PAYLOAD_LEN_MAX = 0xFFFF
#: Default limit on a payload we accept. Short APDUs are at most 261 bytes (case 4, Lc 255, Le)
#: and the simulated cards support nothing longer (card.md §1); the margin is for ATRs and
#: for commands the card should reject with a status word rather than see the link drop.
PAYLOAD_LEN_MAX = 4096

_WHAT = "vpcd frame"


def encode_frame(payload: bytes) -> bytes:
    """One frame: the 2-byte big-endian length of ``payload``, then ``payload`` (1..65535 bytes)."""
    n = len(payload)
    if n == 0:
        raise EncodeError("vpcd frame payload is empty; vpcd frames carry at least one byte")
    if n > WIRE_PAYLOAD_LEN_MAX:
        raise EncodeError(f"vpcd frame payload is {n} bytes, the 2-byte length allows 65535")
    return n.to_bytes(HEADER_LEN, "big") + payload


class FrameDecoder:
    """Incremental decoder of a stream of vpcd frames.

    ``feed`` takes any slice of the stream and returns the payloads it completes, in order.
    ``bytes_wanted`` says how many more bytes finish the current header or payload, so a reader
    that never asks for more than that never reads past a frame (the socket loop relies on it
    to set TCP_QUICKACK between header and payload). After a DecodeError the stream is out of
    step: every later ``feed`` raises the same error; start a new decoder on a new connection.
    Offsets in errors count bytes from the start of the stream.
    """

    __slots__ = ("_buf", "_error", "_frame_start", "_payload_len", "_payload_len_max")

    def __init__(self, payload_len_max: int = PAYLOAD_LEN_MAX) -> None:
        if not 1 <= payload_len_max <= WIRE_PAYLOAD_LEN_MAX:
            raise ValueError(f"payload_len_max must be 1..65535, got {payload_len_max}")
        self._payload_len_max = payload_len_max
        self._buf = bytearray()
        #: Stream offset of the first byte of the frame being decoded.
        self._frame_start = 0
        #: Length of the current frame's payload once its header is complete, else None.
        self._payload_len: int | None = None
        self._error: DecodeError | None = None

    @property
    def bytes_wanted(self) -> int:
        """Bytes still needed to complete the current header or payload (always ≥ 1)."""
        if self._payload_len is None:
            wanted = HEADER_LEN - len(self._buf)
        else:
            wanted = self._payload_len - len(self._buf)
        assert wanted >= 1
        return wanted

    @property
    def idle(self) -> bool:
        """True when no partial frame is buffered (the stream may end cleanly here)."""
        return self._payload_len is None and not self._buf

    @property
    def offset(self) -> int:
        """Stream offset of the next byte ``feed`` will see."""
        header = 0 if self._payload_len is None else HEADER_LEN
        return self._frame_start + header + len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        payloads: list[bytes] = []
        view = memoryview(data)
        while view:
            take = min(self.bytes_wanted, len(view))
            self._buf += view[:take]
            view = view[take:]
            if self._payload_len is None:
                if len(self._buf) < HEADER_LEN:
                    continue
                n = int.from_bytes(self._buf, "big")
                self._buf.clear()
                reason = _length_problem(n, self._payload_len_max)
                if reason is not None:
                    self._error = DecodeError(_WHAT, self._frame_start, reason)
                    raise self._error
                self._payload_len = n
            elif len(self._buf) == self._payload_len:
                payloads.append(bytes(self._buf))
                self._frame_start += HEADER_LEN + self._payload_len
                self._buf.clear()
                self._payload_len = None
        return payloads


def _length_problem(n: int, payload_len_max: int) -> str | None:
    if n == 0:
        return "payload length is 0"
    if n > payload_len_max:
        return f"payload length {n} exceeds the limit of {payload_len_max}"
    return None


def decode_frame(raw: bytes, payload_len_max: int = PAYLOAD_LEN_MAX) -> bytes:
    """Decode exactly one frame; a truncated frame or trailing bytes are errors."""
    if len(raw) < HEADER_LEN:
        raise DecodeError(_WHAT, len(raw), f"header needs 2 bytes, got {len(raw)}")
    n = int.from_bytes(raw[:HEADER_LEN], "big")
    reason = _length_problem(n, payload_len_max)
    if reason is not None:
        raise DecodeError(_WHAT, 0, reason)
    end = HEADER_LEN + n
    if len(raw) < end:
        raise DecodeError(
            _WHAT,
            len(raw),
            f"payload truncated: {n} bytes announced, {len(raw) - HEADER_LEN} present",
        )
    if len(raw) > end:
        raise DecodeError(_WHAT, end, f"{len(raw) - end} trailing bytes after the frame")
    return bytes(raw[HEADER_LEN:end])


# --------------------------------------------------------------------------------------------
# Socket loop
# --------------------------------------------------------------------------------------------

DEFAULT_HOST = "127.0.0.1"
#: vpcd's port for slot 0 ("Virtual PCD 00 00"); slot 1 is the next port.
DEFAULT_PORT = 35963

#: Control bytes from vpcd (vsmartcard vpcd.h: VPCD_CTRL_*).
CTRL_OFF = 0x00
CTRL_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04

#: Linux TCP_QUICKACK (include/uapi/linux/tcp.h); older Pythons do not export it.
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)
_QUICKACK_SUPPORTED = sys.platform.startswith("linux")
#: How long a blocking socket call may last before ``serve`` looks at ``stop`` again.
_POLL_S = 0.1
#: Limit on one connect() call (loopback refuses at once; this bounds a remote host).
_CONNECT_CALL_TIMEOUT_S = 0.25
#: Back-off between connection attempts: first, growth factor, ceiling.
_BACKOFF_FIRST_S = 0.02
_BACKOFF_FACTOR = 2.0
_BACKOFF_MAX_S = 0.25
#: Response to a command when the card itself fails (ISO 7816-4: no precise diagnosis).
_SW_TECHNICAL_PROBLEM = b"\x6f\x00"


class VpcdUnreachableError(ConnectionError):
    """vpcd did not accept a connection within ``connect_timeout_s`` (is pcscd running with the
    vpcd reader configured on that port?)."""

    def __init__(self, host: str, port: int, timeout_s: float, last_error: OSError | None) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        detail = f": {last_error}" if last_error is not None else ""
        super().__init__(
            f"vpcd at {host}:{port} did not accept a connection within {timeout_s:g} s{detail}"
        )


class _ConnectionLostError(Exception):
    """The connection to vpcd has to end (peer closed, bad frame, card failure)."""


def serve(
    card: SmartCard,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    stop: threading.Event,
    connect_timeout_s: float | None = None,
    on_connected: Callable[[], None] | None = None,
) -> None:
    """Serve ``card`` to vpcd at ``host:port`` until ``stop`` is set.

    Connects (retrying with a short back-off while the port does not listen), answers vpcd's
    frames, and when the connection ends (pcscd restarted, bad frame) connects again. Each time
    the card is without a connection, ``connect_timeout_s`` (None: no limit) bounds the wait for
    vpcd; past it, raises VpcdUnreachableError. ``on_connected`` is called after every
    successful connection. Returns within about 0.1 s of ``stop`` being set, closing the
    connection (for pcscd: the card is removed).
    """
    while not stop.is_set():
        sock = _connect(host, port, stop, connect_timeout_s)
        if sock is None:
            return
        with sock:
            logger.info("connected to vpcd at %s:%d", host, port)
            if on_connected is not None:
                on_connected()
            try:
                _serve_connection(sock, card, stop)
            except _ConnectionLostError as exc:
                logger.warning("connection to vpcd at %s:%d dropped: %s", host, port, exc)
            except OSError as exc:
                logger.warning("connection to vpcd at %s:%d failed: %s", host, port, exc)
            except Exception:
                # A bug of ours; card exceptions never get here (see _answer). Keep serving.
                logger.exception("serving vpcd at %s:%d failed; reconnecting", host, port)
            else:
                logger.info("stopped serving vpcd at %s:%d", host, port)
                return
        # Bounds the reconnect rate should vpcd keep dropping us at once.
        stop.wait(_BACKOFF_FIRST_S)


def _connect(
    host: str, port: int, stop: threading.Event, timeout_s: float | None
) -> socket.socket | None:
    """A connected socket, or None when ``stop`` was set first."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    delay_s = _BACKOFF_FIRST_S
    last_error: OSError | None = None
    while not stop.is_set():
        try:
            sock = socket.create_connection((host, port), timeout=_CONNECT_CALL_TIMEOUT_S)
        except OSError as exc:
            last_error = exc
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_POLL_S)
            return sock
        if deadline is not None:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                assert timeout_s is not None
                raise VpcdUnreachableError(host, port, timeout_s, last_error)
            delay_s = min(delay_s, remaining_s)
        stop.wait(delay_s)
        delay_s = min(delay_s * _BACKOFF_FACTOR, _BACKOFF_MAX_S)
    return None


def _quickack(sock: socket.socket) -> None:
    # pcsc.md "Latency trap": vpcd writes header and payload as two segments without
    # TCP_NODELAY; acking at once saves the ~40 ms delayed-ACK stall on every APDU. Linux
    # clears the flag by itself, hence before every read.
    # Elsewhere there is no such option: slower, still correct.
    if _QUICKACK_SUPPORTED:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


def _serve_connection(sock: socket.socket, card: SmartCard, stop: threading.Event) -> None:
    decoder = FrameDecoder()
    while not stop.is_set():
        _quickack(sock)
        try:
            chunk = sock.recv(decoder.bytes_wanted)
        except TimeoutError:
            continue
        if not chunk:
            where = "between frames" if decoder.idle else f"inside a frame (byte {decoder.offset})"
            raise _ConnectionLostError(f"vpcd closed the connection {where}")
        try:
            payloads = decoder.feed(chunk)
        except DecodeError as exc:
            raise _ConnectionLostError(str(exc)) from None
        for payload in payloads:
            reply = _answer(card, payload)
            if reply is not None:
                sock.sendall(encode_frame(reply))


def _answer(card: SmartCard, payload: bytes) -> bytes | None:
    """The reply to one frame from vpcd (None: no reply). Logs lengths only, never data."""
    if len(payload) == 1:
        ctrl = payload[0]
        try:
            if ctrl == CTRL_ATR:
                atr = card.atr
                if not atr:
                    raise _ConnectionLostError("the card has an empty ATR")
                return atr
            if ctrl == CTRL_ON:
                logger.debug("power on")
                card.power_on()
            elif ctrl == CTRL_OFF:
                logger.debug("power off")
                card.power_off()
            elif ctrl == CTRL_RESET:
                logger.debug("reset")
                card.reset()
            else:
                raise _ConnectionLostError(f"unknown vpcd control byte {ctrl:02X}")
        except _ConnectionLostError:
            raise
        except Exception as exc:
            # Only the type: a card's message might quote what it was handling.
            raise _ConnectionLostError(
                f"card raised {type(exc).__name__} on control byte {ctrl:02X}"
            ) from None
        return None
    try:
        response = card.transmit(payload)
    except Exception as exc:
        logger.error(
            "card raised %s on a %d-byte command APDU; answering 6F00",
            type(exc).__name__,
            len(payload),
        )
        return _SW_TECHNICAL_PROBLEM
    if not 2 <= len(response) <= WIRE_PAYLOAD_LEN_MAX:
        logger.error(
            "card answered a %d-byte command APDU with %d bytes; answering 6F00",
            len(payload),
            len(response),
        )
        return _SW_TECHNICAL_PROBLEM
    logger.debug("APDU: %d bytes in, %d bytes out", len(payload), len(response))
    return response
