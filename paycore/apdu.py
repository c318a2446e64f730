"""ISO/IEC 7816-4 short-length command and response APDUs (cases 1-4).

Extended lengths are not supported by the simulated cards (card.md §1: short length); a
command that uses them is a decode error like any other malformed APDU.
"""

from __future__ import annotations

from dataclasses import dataclass

from paycore.errors import DecodeError, EncodeError

#: Limits of short APDUs.
DATA_LEN_MAX = 255
LE_MAX = 256
HEADER_LEN = 4
COMMAND_LEN_MAX = HEADER_LEN + 1 + DATA_LEN_MAX + 1  # case 4 with Lc 255


@dataclass(frozen=True, slots=True)
class CommandApdu:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    #: Expected response length: None = absent (cases 1 and 3); 1..256 (256 is encoded 00).
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise EncodeError(f"APDU {name} must be one byte, got {value}")
        if len(self.data) > DATA_LEN_MAX:
            raise EncodeError(f"APDU data is {len(self.data)} bytes, short APDUs carry at most 255")
        if self.le is not None and not 1 <= self.le <= LE_MAX:
            raise EncodeError(f"APDU Le must be 1..256 or absent, got {self.le}")

    @property
    def case(self) -> int:
        if not self.data:
            return 1 if self.le is None else 2
        return 3 if self.le is None else 4

    def encode(self) -> bytes:
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        if self.data:
            out.append(len(self.data))
            out += self.data
        if self.le is not None:
            out.append(self.le & 0xFF)
        return bytes(out)


def decode_command(raw: bytes) -> CommandApdu:
    """Decode a short command APDU. Raises DecodeError naming the offset of the problem."""
    n = len(raw)
    if n < HEADER_LEN:
        raise DecodeError("APDU", n, f"header needs 4 bytes, got {n}")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    if n == HEADER_LEN:
        return CommandApdu(cla, ins, p1, p2)
    if n == HEADER_LEN + 1:
        return CommandApdu(cla, ins, p1, p2, le=raw[4] or LE_MAX)
    lc = raw[4]
    if lc == 0:
        raise DecodeError("APDU", 4, "extended length is not supported")
    body_end = HEADER_LEN + 1 + lc
    if n == body_end:
        return CommandApdu(cla, ins, p1, p2, bytes(raw[5:body_end]))
    if n == body_end + 1:
        return CommandApdu(cla, ins, p1, p2, bytes(raw[5:body_end]), raw[body_end] or LE_MAX)
    if n < body_end:
        raise DecodeError("APDU", n, f"Lc says {lc} data bytes, only {n - 5} present")
    raise DecodeError("APDU", body_end + 1, f"{n - body_end - 1} trailing bytes after Le")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


def decode_response(raw: bytes) -> ResponseApdu:
    if len(raw) < 2:
        raise DecodeError("response APDU", len(raw), f"needs SW1 SW2, got {len(raw)} bytes")
    if len(raw) > LE_MAX + 2:
        raise DecodeError("response APDU", LE_MAX + 2, f"{len(raw)} bytes is over 258")
    return ResponseApdu(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))
