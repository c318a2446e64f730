"""The PN532's host link on a serial line (pcsc.md "Serial NFC reader (PN532 over UART)"): frames
and the five commands the terminal uses. Pure: bytes in, frozen dataclasses out, and back.

Frames (PN532 user manual §6.2.1):

- information frame ``00 00 FF LEN LCS TFI PD0..PDn DCS 00``; LEN counts TFI..PDn (1..255),
  LEN + LCS ≡ 0 and TFI + ΣPD + DCS ≡ 0 (mod 256); TFI D4 host → PN532, D5 PN532 → host;
- ACK ``00 00 FF 00 FF 00`` (the PN532 sends it before each response; a host ACK aborts);
- NACK ``00 00 FF FF 00 00`` (asks for the last frame again);
- error frame ``00 00 FF 01 FF 7F 81 00`` (a syntax error, or a command the PN532 does not know);
- extended frames (``00 00 FF FF FF LENM LENL LCS ...``) are not supported: a named error.

``decode_frame`` takes exactly one frame and raises DecodeError("PN532 frame", offset, reason).
``FrameDecoder`` takes a byte stream in any slices, skips everything up to a start code
``00 FF`` (wake-up bytes, line noise), and returns the frames it completes; a frame with a bad
checksum, a missing postamble or an extended length is reported as a ``BadFrame`` result (the
caller drops it) and the decoder resynchronises on the next start code.

Commands (PD0 = command code, response code = command code + 1): GetFirmwareVersion ``02``,
SAMConfiguration ``14``, InListPassiveTarget ``4A`` (106 kbps type A only), InDataExchange
``40``, InRelease ``52``. ``decode_*`` errors name the command and the offset in PD0..PDn.
"""

from __future__ import annotations

from dataclasses import dataclass

from paycore.errors import DecodeError, EncodeError

__all__ = [
    "ACK",
    "CMD_GET_FIRMWARE_VERSION",
    "CMD_IN_DATA_EXCHANGE",
    "CMD_IN_LIST_PASSIVE_TARGET",
    "CMD_IN_RELEASE",
    "CMD_SAM_CONFIGURATION",
    "DATA_EXCHANGE_CHUNK_MAX",
    "ERROR_FRAME",
    "FRAME_LEN_MAX",
    "MORE_DATA",
    "NACK",
    "PAYLOAD_LEN_MAX",
    "STATUS_NO_TARGET",
    "STATUS_OK",
    "STATUS_TIMEOUT",
    "TFI_HOST",
    "TFI_PN532",
    "WAKE_UP",
    "Ack",
    "BadFrame",
    "Command",
    "DataExchangeResult",
    "ErrorFrame",
    "FirmwareVersion",
    "Frame",
    "FrameDecoder",
    "GetFirmwareVersion",
    "InDataExchange",
    "InListPassiveTarget",
    "InRelease",
    "InformationFrame",
    "ListedTargets",
    "Nack",
    "ReleaseResult",
    "Response",
    "SamConfiguration",
    "SamConfigured",
    "TargetA",
    "command_payload",
    "decode_command",
    "decode_frame",
    "decode_response",
    "encode_command",
    "encode_frame",
    "encode_response",
    "response_payload",
]

_WHAT = "PN532 frame"

TFI_HOST = 0xD4
TFI_PN532 = 0xD5
TFI_ERROR = 0x7F

PREAMBLE = b"\x00"
START_CODE = b"\x00\xff"
POSTAMBLE = 0x00
ACK = bytes.fromhex("0000FF00FF00")
NACK = bytes.fromhex("0000FFFF0000")
ERROR_FRAME = bytes.fromhex("0000FF01FF7F8100")
#: HSU wake-up (pcsc.md): 55 55 then 14 x 00, followed by SAMConfiguration.
WAKE_UP = b"\x55\x55" + bytes(14)

#: LEN is one byte: TFI + PD0..PDn is at most 255 bytes, so PD0..PDn at most 254.
PAYLOAD_LEN_MAX = 254
#: The longest normal frame on the wire: 00 00 FF LEN LCS, 255 bytes, DCS 00 (262 bytes).
FRAME_LEN_MAX = 5 + 255 + 2
#: Data bytes of one InDataExchange in a normal frame: 255 - TFI - code - Tg/Status.
DATA_EXCHANGE_CHUNK_MAX = 252

CMD_GET_FIRMWARE_VERSION = 0x02
CMD_SAM_CONFIGURATION = 0x14
CMD_IN_DATA_EXCHANGE = 0x40
CMD_IN_LIST_PASSIVE_TARGET = 0x4A
CMD_IN_RELEASE = 0x52

#: InDataExchange: bit 40 of Tg (host → PN532) or Status (PN532 → host) = more data follows.
MORE_DATA = 0x40
STATUS_MASK = 0x3F
STATUS_OK = 0x00
#: Status 01: the target did not answer in time (the card was taken away).
STATUS_TIMEOUT = 0x01
#: Status 27: the command is not acceptable in this context (no target was ever listed).
STATUS_NO_TARGET = 0x27

BR_TY_106_TYPE_A = 0x00
#: One target is all the PN532 can list at 106 kbps type A with ISO 14443-4 (MaxTg ≤ 2).
MAX_TG_MAX = 2


def _checksum(data: bytes) -> int:
    """The byte that makes ``sum(data) + checksum ≡ 0 (mod 256)``."""
    return -sum(data) & 0xFF


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InformationFrame:
    """A normal information frame: ``tfi`` and PD0..PDn (``payload``, PD0 = command code)."""

    tfi: int
    payload: bytes

    def __post_init__(self) -> None:
        if self.tfi not in (TFI_HOST, TFI_PN532):
            raise EncodeError(f"PN532 frame TFI {self.tfi:#04x}: D4 or D5 expected")
        if not 1 <= len(self.payload) <= PAYLOAD_LEN_MAX:
            raise EncodeError(
                f"PN532 frame payload is {len(self.payload)} bytes; 1..{PAYLOAD_LEN_MAX} allowed"
            )

    @property
    def code(self) -> int:
        return self.payload[0]

    def encode(self) -> bytes:
        body = bytes([self.tfi]) + self.payload
        n = len(body)
        return (
            PREAMBLE + START_CODE + bytes([n, _checksum(bytes([n]))]) + body
            + bytes([_checksum(body), POSTAMBLE])
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Ack:
    def encode(self) -> bytes:
        return ACK


@dataclass(frozen=True, slots=True)
class Nack:
    def encode(self) -> bytes:
        return NACK


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """The application-level error frame (TFI 7F): syntax error or unknown command."""

    def encode(self) -> bytes:
        return ERROR_FRAME


Frame = InformationFrame | Ack | Nack | ErrorFrame


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame the decoder dropped: ``offset`` counts bytes from the start of the stream."""

    offset: int
    reason: str

    @property
    def error(self) -> DecodeError:
        return DecodeError(_WHAT, self.offset, self.reason)


def encode_frame(tfi: int, payload: bytes) -> bytes:
    return InformationFrame(tfi, payload).encode()


# A frame parser shared by decode_frame and FrameDecoder. It sees the buffer from a start code
# on and answers: need more bytes, a frame and its length, or a bad frame and 2 (the decoder
# skips just the start code of a bad frame).
_NEED_MORE = -1


def _parse(buf: bytes | bytearray, base: int) -> tuple[int, Frame | BadFrame | None]:
    """``buf`` starts with ``00 FF``; ``base`` is the stream offset of ``buf[0]``.
    Returns (bytes consumed, result); (_NEED_MORE, None) when incomplete."""
    if len(buf) < 5:
        return _NEED_MORE, None
    length = buf[2]
    lcs = buf[3]
    if length == 0x00 and lcs == 0xFF:
        if buf[4] != POSTAMBLE:
            return 2, BadFrame(base + 4, "ACK frame without its postamble 00")
        return 5, Ack()
    if length == 0xFF and lcs == 0x00:
        if buf[4] != POSTAMBLE:
            return 2, BadFrame(base + 4, "NACK frame without its postamble 00")
        return 5, Nack()
    if length == 0xFF and lcs == 0xFF:
        return 2, BadFrame(base + 2, "extended frame (LEN FF FF): not supported")
    if (length + lcs) & 0xFF != 0:
        return 2, BadFrame(base + 3, f"length checksum {lcs:02X} does not match LEN {length:02X}")
    if length == 0:
        return 2, BadFrame(base + 2, "LEN 00 outside an ACK frame")
    total = 4 + length + 2  # 00 FF LEN LCS, body, DCS, postamble
    if len(buf) < total:
        return _NEED_MORE, None
    body = bytes(buf[4 : 4 + length])
    dcs = buf[4 + length]
    # A bad frame skips only its start code: if bytes were lost on the line, LEN may reach
    # into the next frame, which the decoder then still finds.
    if (sum(body) + dcs) & 0xFF != 0:
        return 2, BadFrame(base + 4 + length, f"data checksum {dcs:02X} does not match")
    if buf[5 + length] != POSTAMBLE:
        return 2, BadFrame(base + 5 + length, "missing postamble 00")
    tfi = body[0]
    if tfi == TFI_ERROR:
        if length != 1:
            return 2, BadFrame(base + 4, "error frame (TFI 7F) with data")
        return total, ErrorFrame()
    if tfi not in (TFI_HOST, TFI_PN532):
        return 2, BadFrame(base + 4, f"TFI {tfi:02X}: D4, D5 or 7F expected")
    if length == 1:
        return 2, BadFrame(base + 4, "information frame without a command code")
    return total, InformationFrame(tfi, body[1:])


def decode_frame(raw: bytes) -> Frame:
    """Exactly one frame (the preamble 00 is optional); anything else is a DecodeError."""
    start = 1 if raw[:1] == PREAMBLE and raw[1:3] == START_CODE else 0
    if raw[start : start + 2] != START_CODE:
        raise DecodeError(_WHAT, start, "start code 00 FF expected")
    consumed, result = _parse(raw[start:], start)
    if consumed == _NEED_MORE:
        raise DecodeError(_WHAT, len(raw), "frame is truncated")
    if isinstance(result, BadFrame):
        raise result.error
    assert result is not None
    if start + consumed != len(raw):
        raise DecodeError(_WHAT, start + consumed, "trailing bytes after the frame")
    return result


class FrameDecoder:
    """Incremental decoder of a PN532 byte stream (either direction).

    ``feed`` returns, in order, the frames and the bad frames it completes. Bytes outside frames
    (wake-up bytes, noise, preambles) are skipped and counted in ``skipped``; a bad frame skips
    its start code only and the decoder looks for the next one. At most ``FRAME_LEN_MAX`` bytes
    stay buffered. Never raises for any input.
    """

    __slots__ = ("_base", "_buf", "skipped")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self.skipped = 0

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        self._buf += data
        out: list[Frame | BadFrame] = []
        while True:
            at = self._buf.find(START_CODE)
            if at < 0:
                # keep a trailing 00: it may be the first half of a start code
                keep = 1 if self._buf[-1:] == b"\x00" else 0
                self._drop(len(self._buf) - keep, skipped=True)
                return out
            self._drop(at, skipped=True)
            consumed, result = _parse(self._buf, self._base)
            if consumed == _NEED_MORE:
                assert len(self._buf) < FRAME_LEN_MAX
                return out
            assert result is not None
            out.append(result)
            self._drop(consumed, skipped=False)

    def _drop(self, n: int, *, skipped: bool) -> None:
        if n <= 0:
            return
        del self._buf[:n]
        self._base += n
        if skipped:
            self.skipped += n


# --------------------------------------------------------------------------------------------
# Commands (host → PN532) and responses (PN532 → host)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetFirmwareVersion:
    code = CMD_GET_FIRMWARE_VERSION


@dataclass(frozen=True, slots=True)
class SamConfiguration:
    """Mode 01 = normal (no SAM); timeout in units of 50 ms (used in virtual card mode only);
    IRQ 01 = the PN532 drives P70_IRQ."""

    mode: int = 0x01
    timeout_50ms: int = 0x14
    irq: int = 0x01
    code = CMD_SAM_CONFIGURATION


@dataclass(frozen=True, slots=True)
class InListPassiveTarget:
    """Poll for up to ``max_tg`` targets at 106 kbps type A (BrTy 00, the only one supported)."""

    max_tg: int = 1
    code = CMD_IN_LIST_PASSIVE_TARGET


@dataclass(frozen=True, slots=True)
class InDataExchange:
    """``data`` to target ``tg``; ``more`` sets bit 40 of Tg (more data follows: chaining)."""

    tg: int
    data: bytes
    more: bool = False
    code = CMD_IN_DATA_EXCHANGE


@dataclass(frozen=True, slots=True)
class InRelease:
    tg: int
    code = CMD_IN_RELEASE


Command = GetFirmwareVersion | SamConfiguration | InListPassiveTarget | InDataExchange | InRelease


@dataclass(frozen=True, slots=True)
class FirmwareVersion:
    """``ic`` 32 = PN532."""

    ic: int
    ver: int
    rev: int
    support: int
    code = CMD_GET_FIRMWARE_VERSION + 1


@dataclass(frozen=True, slots=True)
class SamConfigured:
    code = CMD_SAM_CONFIGURATION + 1


@dataclass(frozen=True, slots=True)
class TargetA:
    """A 106 kbps type A target: SENS_RES (ATQA, 2 bytes as sent), SEL_RES (SAK), NFCID1
    (4, 7 or 10 bytes) and, when SEL_RES bit 20 says ISO 14443-4, the ATS (TL first)."""

    tg: int
    sens_res: bytes
    sel_res: int
    nfcid1: bytes
    ats: bytes = b""

    @property
    def iso14443_4(self) -> bool:
        return bool(self.sel_res & 0x20)


@dataclass(frozen=True, slots=True)
class ListedTargets:
    targets: tuple[TargetA, ...]
    code = CMD_IN_LIST_PASSIVE_TARGET + 1


@dataclass(frozen=True, slots=True)
class DataExchangeResult:
    status: int
    data: bytes = b""
    code = CMD_IN_DATA_EXCHANGE + 1

    @property
    def error(self) -> int:
        return self.status & STATUS_MASK

    @property
    def more(self) -> bool:
        return bool(self.status & MORE_DATA)


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    status: int
    code = CMD_IN_RELEASE + 1


Response = FirmwareVersion | SamConfigured | ListedTargets | DataExchangeResult | ReleaseResult


def _byte(name: str, value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"PN532 {name} {value} does not fit in a byte")
    return value


def command_payload(command: Command) -> bytes:
    """PD0..PDn of a command."""
    match command:
        case GetFirmwareVersion():
            return bytes([CMD_GET_FIRMWARE_VERSION])
        case SamConfiguration(mode, timeout_50ms, irq):
            return bytes([CMD_SAM_CONFIGURATION, _byte("SAM mode", mode),
                          _byte("SAM timeout", timeout_50ms), _byte("SAM IRQ", irq)])  # fmt: skip
        case InListPassiveTarget(max_tg):
            if not 1 <= max_tg <= MAX_TG_MAX:
                raise EncodeError(f"PN532 InListPassiveTarget MaxTg {max_tg}: 1..{MAX_TG_MAX}")
            return bytes([CMD_IN_LIST_PASSIVE_TARGET, max_tg, BR_TY_106_TYPE_A])
        case InDataExchange(tg, data, more):
            if not 1 <= tg <= STATUS_MASK:
                raise EncodeError(f"PN532 InDataExchange Tg {tg}: 1..63")
            if len(data) > DATA_EXCHANGE_CHUNK_MAX:
                raise EncodeError(
                    f"PN532 InDataExchange data is {len(data)} bytes;"
                    f" at most {DATA_EXCHANGE_CHUNK_MAX} per frame (chain with more=True)"
                )
            return bytes([CMD_IN_DATA_EXCHANGE, tg | (MORE_DATA if more else 0)]) + data
        case InRelease(tg):
            return bytes([CMD_IN_RELEASE, _byte("InRelease Tg", tg)])


def encode_command(command: Command) -> bytes:
    """The whole host frame of a command."""
    return encode_frame(TFI_HOST, command_payload(command))


def _exact(what: str, payload: bytes, n: int) -> None:
    if len(payload) < n:
        raise DecodeError(what, len(payload), f"{n} bytes expected, {len(payload)} present")
    if len(payload) > n:
        raise DecodeError(what, n, "trailing bytes")


def decode_command(frame: InformationFrame) -> Command:
    """A host frame's command. Unknown codes and malformed parameters raise DecodeError."""
    p = frame.payload
    if frame.tfi != TFI_HOST:
        raise DecodeError("PN532 command", 0, f"TFI {frame.tfi:02X}: a command has TFI D4")
    match p[0]:
        case 0x02:
            _exact("PN532 GetFirmwareVersion", p, 1)
            return GetFirmwareVersion()
        case 0x14:
            what = "PN532 SAMConfiguration"
            if len(p) < 2:
                raise DecodeError(what, 1, "Mode missing")
            if len(p) > 4:
                raise DecodeError(what, 4, "trailing bytes")
            if not 1 <= p[1] <= 4:
                raise DecodeError(what, 1, f"Mode {p[1]:02X}: 01..04 expected")
            return SamConfiguration(p[1], p[2] if len(p) > 2 else 0, p[3] if len(p) > 3 else 1)
        case 0x4A:
            what = "PN532 InListPassiveTarget"
            if len(p) < 3:
                raise DecodeError(what, len(p), "MaxTg and BrTy expected")
            if not 1 <= p[1] <= MAX_TG_MAX:
                raise DecodeError(what, 1, f"MaxTg {p[1]}: 1..{MAX_TG_MAX} expected")
            if p[2] != BR_TY_106_TYPE_A:
                raise DecodeError(what, 2, f"BrTy {p[2]:02X}: only 00 (106 kbps type A)")
            if len(p) > 3:
                raise DecodeError(what, 3, "InitiatorData is not supported at 106 kbps type A")
            return InListPassiveTarget(p[1])
        case 0x40:
            what = "PN532 InDataExchange"
            if len(p) < 2:
                raise DecodeError(what, 1, "Tg missing")
            tg = p[1] & ~MORE_DATA
            if not 1 <= tg <= STATUS_MASK:
                raise DecodeError(what, 1, f"Tg {tg:02X}: 01..3F expected")
            return InDataExchange(tg, p[2:], bool(p[1] & MORE_DATA))
        case 0x52:
            _exact("PN532 InRelease", p, 2)
            return InRelease(p[1])
        case code:
            raise DecodeError("PN532 command", 0, f"unknown command code {code:02X}")


def response_payload(response: Response) -> bytes:
    """PD0..PDn of a response."""
    match response:
        case FirmwareVersion(ic, ver, rev, support):
            return bytes([response.code, _byte("IC", ic), _byte("Ver", ver), _byte("Rev", rev),
                          _byte("Support", support)])  # fmt: skip
        case SamConfigured():
            return bytes([response.code])
        case ListedTargets(targets):
            out = bytearray([response.code, len(targets)])
            for t in targets:
                if len(t.sens_res) != 2:
                    raise EncodeError("PN532 target SENS_RES must be 2 bytes")
                if len(t.nfcid1) not in (4, 7, 10):
                    raise EncodeError("PN532 target NFCID1 must be 4, 7 or 10 bytes")
                if t.iso14443_4 and (not t.ats or t.ats[0] != len(t.ats)):
                    raise EncodeError("PN532 target ATS must start with TL = its length")
                if not t.iso14443_4 and t.ats:
                    raise EncodeError("PN532 target has an ATS but SEL_RES bit 20 is clear")
                out += bytes([_byte("Tg", t.tg)]) + t.sens_res
                out += bytes([_byte("SEL_RES", t.sel_res), len(t.nfcid1)]) + t.nfcid1 + t.ats
            if len(out) > PAYLOAD_LEN_MAX:
                raise EncodeError("PN532 InListPassiveTarget response does not fit one frame")
            return bytes(out)
        case DataExchangeResult(status, data):
            if len(data) > DATA_EXCHANGE_CHUNK_MAX:
                raise EncodeError(
                    f"PN532 InDataExchange response is {len(data)} bytes;"
                    f" at most {DATA_EXCHANGE_CHUNK_MAX} per frame (set the more-data bit)"
                )
            return bytes([response.code, _byte("Status", status)]) + data
        case ReleaseResult(status):
            return bytes([response.code, _byte("Status", status)])


def encode_response(response: Response) -> bytes:
    """The whole PN532 frame of a response."""
    return encode_frame(TFI_PN532, response_payload(response))


def _decode_targets(p: bytes) -> ListedTargets:
    what = "PN532 InListPassiveTarget response"
    if len(p) < 2:
        raise DecodeError(what, len(p), "NbTg missing")
    count = p[1]
    if count > MAX_TG_MAX:
        raise DecodeError(what, 1, f"NbTg {count}: at most {MAX_TG_MAX}")
    at = 2
    targets: list[TargetA] = []
    for _ in range(count):
        if len(p) < at + 5:
            raise DecodeError(what, len(p), "target data is truncated")
        tg, sens_res, sel_res, id_len = p[at], p[at + 1 : at + 3], p[at + 3], p[at + 4]
        at += 5
        if id_len not in (4, 7, 10):
            raise DecodeError(what, at - 1, f"NFCIDLength {id_len}: 4, 7 or 10 expected")
        if len(p) < at + id_len:
            raise DecodeError(what, len(p), "NFCID1 is truncated")
        nfcid1 = p[at : at + id_len]
        at += id_len
        ats = b""
        if sel_res & 0x20:
            if len(p) <= at:
                raise DecodeError(what, at, "ATS missing (SEL_RES says ISO 14443-4)")
            tl = p[at]
            if tl < 1:
                raise DecodeError(what, at, "ATS length byte TL is 00")
            if len(p) < at + tl:
                raise DecodeError(what, len(p), f"ATS is truncated (TL {tl})")
            ats = p[at : at + tl]
            at += tl
        targets.append(TargetA(tg, sens_res, sel_res, nfcid1, ats))
    if at != len(p):
        raise DecodeError(what, at, "trailing bytes")
    return ListedTargets(tuple(targets))


def decode_response(frame: InformationFrame, command_code: int) -> Response:
    """The PN532's response to the command ``command_code`` (its code must be that + 1)."""
    p = frame.payload
    if frame.tfi != TFI_PN532:
        raise DecodeError("PN532 response", 0, f"TFI {frame.tfi:02X}: a response has TFI D5")
    if p[0] != (command_code + 1) & 0xFF:
        raise DecodeError(
            "PN532 response", 0, f"response code {p[0]:02X}, {command_code + 1:02X} expected"
        )
    match command_code:
        case 0x02:
            _exact("PN532 GetFirmwareVersion response", p, 5)
            return FirmwareVersion(p[1], p[2], p[3], p[4])
        case 0x14:
            _exact("PN532 SAMConfiguration response", p, 1)
            return SamConfigured()
        case 0x4A:
            return _decode_targets(p)
        case 0x40:
            if len(p) < 2:
                raise DecodeError("PN532 InDataExchange response", 1, "Status missing")
            return DataExchangeResult(p[1], p[2:])
        case 0x52:
            _exact("PN532 InRelease response", p, 2)
            return ReleaseResult(p[1])
        case _:
            raise DecodeError("PN532 response", 0, f"unknown command code {command_code:02X}")
