"""TCP framing of host_protocol.md §1. Pure functions and a push-style reader: no sockets.

    [2-byte big-endian length][TPDU 5: 60 dest(2) src(2)][header 6: 60 31 SP 31 00 00][message]

The length covers TPDU + header + message and is at most ``FRAME_LENGTH_MAX`` (our reading of
"a frame longer than 2,048 bytes": the value of the length prefix, checked as soon as the two
prefix bytes arrive). Header byte 2 holds the terminal status (high nibble: 0 normal, 1 test)
and the processing requirement (low nibble: 3 = please sign on again, set by the host).
"""

from __future__ import annotations

from dataclasses import dataclass

from paycore.errors import DecodeError, EncodeError

LENGTH_PREFIX_BYTES = 2
TPDU_BYTES = 5
HEADER_BYTES = 6
FRAME_LENGTH_MAX = 2048
"""Maximum of the length prefix (TPDU + header + message), §1."""

TPDU_ID = 0x60
HEADER_APPLICATION = 0x60
HEADER_VERSION = 0x31
HEADER_SUB_VERSION = b"\x31\x00\x00"

STATUS_NORMAL = 0
STATUS_TEST = 1
PROCESSING_NONE = 0
PROCESSING_SIGN_ON_AGAIN = 3

WHAT = "ISO 8583 frame"
WHAT_TPDU = "ISO 8583 TPDU"
WHAT_HEADER = "ISO 8583 header"


@dataclass(frozen=True, slots=True)
class Tpdu:
    """TPDU: ID 60, destination address (2 bytes), source address (2 bytes)."""

    destination: int
    source: int

    def __post_init__(self) -> None:
        for name, value in (("destination", self.destination), ("source", self.source)):
            if not 0 <= value <= 0xFFFF:
                raise EncodeError(f"TPDU {name} {value} does not fit in 2 bytes")

    def encode(self) -> bytes:
        return bytes([TPDU_ID]) + self.destination.to_bytes(2, "big") + self.source.to_bytes(2)

    def swapped(self) -> Tpdu:
        """The TPDU of the response: destination and source exchanged (§1)."""
        return Tpdu(destination=self.source, source=self.destination)

    @classmethod
    def decode(cls, raw: bytes, offset: int = 0) -> Tpdu:
        """``offset`` is where ``raw`` starts in the enclosing frame (for error offsets)."""
        if len(raw) != TPDU_BYTES:
            raise DecodeError(WHAT_TPDU, offset, f"needs {TPDU_BYTES} bytes, got {len(raw)}")
        if raw[0] != TPDU_ID:
            raise DecodeError(WHAT_TPDU, offset, f"ID {raw[0]:02X} is not {TPDU_ID:02X}")
        return cls(int.from_bytes(raw[1:3], "big"), int.from_bytes(raw[3:5], "big"))


@dataclass(frozen=True, slots=True)
class Header:
    """The 6-byte message header: 60 31 (status|processing) 31 00 00."""

    status: int = STATUS_NORMAL
    processing: int = PROCESSING_NONE

    def __post_init__(self) -> None:
        for name, value in (("status", self.status), ("processing requirement", self.processing)):
            if not 0 <= value <= 0xF:
                raise EncodeError(f"header {name} {value} is not a nibble")

    @property
    def sign_on_again(self) -> bool:
        return self.processing == PROCESSING_SIGN_ON_AGAIN

    def encode(self) -> bytes:
        return (
            bytes([HEADER_APPLICATION, HEADER_VERSION, self.status << 4 | self.processing])
            + HEADER_SUB_VERSION
        )

    @classmethod
    def decode(cls, raw: bytes, offset: int = 0) -> Header:
        if len(raw) != HEADER_BYTES:
            raise DecodeError(WHAT_HEADER, offset, f"needs {HEADER_BYTES} bytes, got {len(raw)}")
        if raw[0] != HEADER_APPLICATION:
            raise DecodeError(
                WHAT_HEADER, offset, f"application {raw[0]:02X} is not {HEADER_APPLICATION:02X}"
            )
        # Version and sub-version are carried, not checked: a terminal of another software
        # version still speaks this profile; the application byte says which profile it is.
        return cls(status=raw[2] >> 4, processing=raw[2] & 0x0F)


@dataclass(frozen=True, slots=True)
class Frame:
    tpdu: Tpdu
    header: Header
    message: bytes

    def encode(self) -> bytes:
        return encode_frame(self.tpdu, self.header, self.message)

    def __repr__(self) -> str:
        # The message can hold a card number: the repr shows its size only.
        size = len(self.message)
        return f"Frame(tpdu={self.tpdu!r}, header={self.header!r}, message=<{size} bytes>)"


def encode_frame(tpdu: Tpdu, header: Header, message: bytes) -> bytes:
    body = tpdu.encode() + header.encode() + message
    if len(body) > FRAME_LENGTH_MAX:
        raise EncodeError(f"frame length {len(body)} is over {FRAME_LENGTH_MAX}")
    return len(body).to_bytes(LENGTH_PREFIX_BYTES, "big") + body


def _check_length(length: int, offset: int) -> None:
    if length > FRAME_LENGTH_MAX:
        raise DecodeError(WHAT, offset, f"length {length} is over {FRAME_LENGTH_MAX}")
    if length < TPDU_BYTES + HEADER_BYTES:
        raise DecodeError(
            WHAT,
            offset,
            f"length {length} is shorter than TPDU + header ({TPDU_BYTES + HEADER_BYTES})",
        )


def _decode_body(body: bytes, offset: int) -> Frame:
    """``body`` = TPDU + header + message; ``offset`` = where it starts in the stream."""
    tpdu = Tpdu.decode(body[:TPDU_BYTES], offset)
    header = Header.decode(body[TPDU_BYTES : TPDU_BYTES + HEADER_BYTES], offset + TPDU_BYTES)
    return Frame(tpdu, header, bytes(body[TPDU_BYTES + HEADER_BYTES :]))


def decode_frame(raw: bytes) -> Frame:
    """One whole frame, length prefix included; the prefix must match the bytes that follow."""
    if len(raw) < LENGTH_PREFIX_BYTES:
        raise DecodeError(WHAT, 0, f"needs {LENGTH_PREFIX_BYTES} length bytes, got {len(raw)}")
    length = int.from_bytes(raw[:LENGTH_PREFIX_BYTES], "big")
    _check_length(length, 0)
    following = len(raw) - LENGTH_PREFIX_BYTES
    if following != length:
        raise DecodeError(
            WHAT,
            min(len(raw), LENGTH_PREFIX_BYTES + length),
            f"length prefix says {length} bytes, {following} follow",
        )
    return _decode_body(raw[LENGTH_PREFIX_BYTES:], LENGTH_PREFIX_BYTES)


class FrameReader:
    """Incremental decoder for one TCP connection's byte stream.

    ``feed`` takes whatever the socket gave and returns the frames it completed. A bad length
    or a bad TPDU/header raises ``DecodeError`` (offset counted from the start of the stream),
    after which the reader is broken and raises the same error again: the connection must be
    closed (§1). ``pending`` tells the adapter a half-received frame is waiting, so it can apply
    its read timeout. After each ``feed`` the buffer holds less than one maximal frame.
    """

    __slots__ = ("_buffer", "_consumed", "_error")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._consumed = 0  # stream offset of _buffer[0]
        self._error: DecodeError | None = None

    @property
    def pending(self) -> bool:
        """True while part of a frame has arrived and the rest has not."""
        return bool(self._buffer)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        frames: list[Frame] = []
        try:
            while (frame := self._next()) is not None:
                frames.append(frame)
        except DecodeError as error:
            self._error = error
            raise
        return frames

    def _next(self) -> Frame | None:
        if len(self._buffer) < LENGTH_PREFIX_BYTES:
            return None
        length = int.from_bytes(self._buffer[:LENGTH_PREFIX_BYTES], "big")
        _check_length(length, self._consumed)
        end = LENGTH_PREFIX_BYTES + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[LENGTH_PREFIX_BYTES:end])
        frame = _decode_body(body, self._consumed + LENGTH_PREFIX_BYTES)
        del self._buffer[:end]
        self._consumed += end
        return frame
