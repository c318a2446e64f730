"""ISO 8583 messages of our profile: field dicts to bytes and back with pyiso8583, and the
request table of host_protocol.md §5.

Values are ``str`` for n, an and ans fields (n fields as digits, exactly the field's length when
fixed) and ``bytes`` for b fields (58, 62, 64). pyiso8583 errors are translated here, once, to
``paycore.errors.DecodeError`` / ``EncodeError`` naming the field ("ISO 8583 field 58") and the
byte offset inside the message (MTI at 0, bitmap at 2).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple

import iso8583

from paycore.errors import DecodeError, EncodeError
from paycore.iso8583.fields import (
    SERVICE_CONDITION_EPURSE,
    EpurseSet,
    Mti,
    NetworkCode,
    ProcessingCode,
    TypeCode,
    decode_field60,
)
from paycore.iso8583.spec import (
    BITMAP_BYTES,
    FIELD_FORMATS,
    MTI_BYTES,
    SPEC,
    FieldFormat,
    FieldKind,
)

FieldValue = str | bytes
Fields = Mapping[int, FieldValue]

MESSAGE_BYTES_MAX: Final = 2048
"""No message is longer than a frame (frame.FRAME_LENGTH_MAX)."""

_AN_EXTRA: Final = frozenset(" ")
_WHAT_MTI: Final = "ISO 8583 MTI"
_WHAT_BITMAP: Final = "ISO 8583 bitmap"
_WHAT_MESSAGE: Final = "ISO 8583 message"


def _what(field_key: str) -> str:
    if field_key == "t":
        return _WHAT_MTI
    if field_key in ("p", "1"):
        return _WHAT_BITMAP
    return f"ISO 8583 field {field_key}"


def _bitmap_offset(number: int) -> int:
    """The byte of the bitmap that holds the bit of field ``number``."""
    return MTI_BYTES + (number - 1) // 8


class MissingFieldError(DecodeError):
    """A field the message needs is absent. The offset is the bitmap byte of its bit."""

    def __init__(self, number: int, needed_by: str) -> None:
        self.field = number
        super().__init__(
            f"ISO 8583 field {number}", _bitmap_offset(number), f"missing, {needed_by} needs it"
        )


class UnknownRequestError(DecodeError):
    """A request whose MTI, processing code or 60.x is not one of §5."""


class Message(NamedTuple):
    """A decoded message: ``mti, fields = decode_message(raw)`` also works."""

    mti: str
    fields: Fields

    def has(self, number: int) -> bool:
        return number in self.fields

    def text(self, number: int) -> str:
        """An n/an/ans field; ``MissingFieldError`` if absent."""
        value = self._get(number)
        if not isinstance(value, str):
            raise TypeError(f"field {number} is binary: use .binary()")
        return value

    def binary(self, number: int) -> bytes:
        """A b field (58, 62, 64); ``MissingFieldError`` if absent."""
        value = self._get(number)
        if not isinstance(value, bytes):
            raise TypeError(f"field {number} is text: use .text()")
        return value

    def encode(self) -> bytes:
        return encode_message(self.mti, self.fields)

    def _get(self, number: int) -> FieldValue:
        try:
            return self.fields[number]
        except KeyError:
            raise MissingFieldError(number, f"this {self.mti}") from None

    def __repr__(self) -> str:
        shown = dict(self.fields)
        pan = shown.get(2)
        if isinstance(pan, str):  # never a full card number in a repr (style.md)
            shown[2] = _masked(pan)
        return f"Message(mti={self.mti!r}, fields={shown!r})"


def _masked(pan: str) -> str:
    """First 6 and last 4 digits of a card number, the rest as '*'."""
    if len(pan) <= 10:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


# --- value checks, shared by encode and decode --------------------------------------------------


def _char_ok(kind: FieldKind, ch: str) -> bool:
    if kind is FieldKind.N:
        return "0" <= ch <= "9"
    if kind is FieldKind.AN:
        return ch.isascii() and (ch.isalnum() or ch in _AN_EXTRA)
    return " " <= ch <= "~"


_CHAR_CLASS: Final = {
    FieldKind.N: "a decimal digit",
    FieldKind.AN: "alphanumeric",
    FieldKind.ANS: "printable ASCII",
}


def _bad_char(fmt: FieldFormat, value: str) -> tuple[int, str] | None:
    """(byte index in the field data, reason) of the first character ``fmt`` does not allow."""
    for index, ch in enumerate(value):
        if not _char_ok(fmt.kind, ch):
            byte_index = index // 2 if fmt.kind is FieldKind.N else index
            return byte_index, f"{ch!r} is not {_CHAR_CLASS[fmt.kind]}"
    return None


def _length_problem(fmt: FieldFormat, size: int) -> str | None:
    unit = (
        "digits"
        if fmt.kind is FieldKind.N
        else "bytes"
        if fmt.kind is FieldKind.B
        else "characters"
    )
    if fmt.fixed and size != fmt.length:
        return f"needs {fmt.length} {unit}, got {size}"
    if size > fmt.length:
        return f"{size} {unit} is over the maximum {fmt.length}"
    return None


def _check_mti(mti: str) -> None:
    if len(mti) != 4 or not mti.isascii() or not mti.isdigit():
        raise EncodeError(f"MTI must be 4 digits, got {mti!r}")


# --- encode -------------------------------------------------------------------------------------


def encode_message(mti: str, fields: Fields) -> bytes:
    """MTI, primary bitmap and the fields in order. Raises ``EncodeError`` naming the field."""
    _check_mti(mti)
    doc: dict[str, str] = {"t": str(mti)}
    for number in sorted(fields):
        value = fields[number]
        fmt = FIELD_FORMATS.get(number) if isinstance(number, int) else None
        if fmt is None:
            raise EncodeError(f"ISO 8583 field {number} is not in this profile")
        if fmt.kind is FieldKind.B:
            if not isinstance(value, bytes | bytearray):
                raise EncodeError(f"{fmt.what} is binary: needs bytes, got {type(value).__name__}")
            problem = _length_problem(fmt, len(value))
            encoded = bytes(value).hex().upper()
        else:
            if not isinstance(value, str):
                raise EncodeError(f"{fmt.what} needs str, got {type(value).__name__}")
            bad = _bad_char(fmt, value)
            problem = bad[1] if bad is not None else _length_problem(fmt, len(value))
            encoded = str(value)
        if problem is not None:
            raise EncodeError(f"{fmt.what}: {problem}")
        doc[str(number)] = encoded
    try:
        raw, _ = iso8583.encode(doc, SPEC)
    except iso8583.EncodeError as error:  # pragma: no cover - the checks above come first
        raise EncodeError(f"{_what(error.field)}: {error.msg}") from None
    if len(raw) > MESSAGE_BYTES_MAX:
        raise EncodeError(f"ISO 8583 message is {len(raw)} bytes, over {MESSAGE_BYTES_MAX}")
    return bytes(raw)


# --- decode -------------------------------------------------------------------------------------


def _check_head(raw: bytes) -> None:
    """MTI digits and bitmap bits, checked before pyiso8583 sees the message."""
    if len(raw) > MESSAGE_BYTES_MAX:
        raise DecodeError(
            _WHAT_MESSAGE, MESSAGE_BYTES_MAX, f"{len(raw)} bytes is over {MESSAGE_BYTES_MAX}"
        )
    if len(raw) < MTI_BYTES:
        raise DecodeError(_WHAT_MTI, 0, f"needs {MTI_BYTES} bytes, got {len(raw)}")
    for i, nibble in enumerate(raw[:MTI_BYTES].hex().upper()):
        if not nibble.isdigit():
            raise DecodeError(_WHAT_MTI, i // 2, f"nibble {nibble} is not a decimal digit")
    if len(raw) < MTI_BYTES + BITMAP_BYTES:
        raise DecodeError(
            _WHAT_BITMAP, MTI_BYTES, f"needs {BITMAP_BYTES} bytes, got {len(raw) - MTI_BYTES}"
        )
    bitmap = int.from_bytes(raw[MTI_BYTES : MTI_BYTES + BITMAP_BYTES], "big")
    if bitmap >> 63:
        raise DecodeError(_WHAT_BITMAP, MTI_BYTES, "secondary bitmap (bit 1) is not allowed")
    for number in range(2, 65):
        if bitmap >> (64 - number) & 1 and number not in FIELD_FORMATS:
            raise DecodeError(
                _WHAT_BITMAP, _bitmap_offset(number), f"field {number} is not in this profile"
            )


def decode_message(raw: bytes) -> Message:
    """The message must fill ``raw`` exactly. Raises ``DecodeError`` (never anything else)."""
    raw = bytes(raw)
    _check_head(raw)
    try:
        decoded, encoded = iso8583.decode(raw, SPEC)
    except iso8583.DecodeError as error:
        if error.msg.startswith("Extra data"):
            raise DecodeError(
                _WHAT_MESSAGE,
                error.pos,
                f"trailing bytes after the last field: {len(raw) - error.pos}",
            ) from None
        raise DecodeError(_what(error.field), error.pos, error.msg) from None
    fields: dict[int, FieldValue] = {}
    offset = MTI_BYTES + BITMAP_BYTES
    for number in sorted(int(key) for key in decoded if key.isdigit()):
        fmt = FIELD_FORMATS[number]
        part = encoded[str(number)]
        data_offset = offset + len(part["len"])
        text = decoded[str(number)]
        if fmt.kind is FieldKind.B:
            fields[number] = part["data"]
        else:
            bad = _bad_char(fmt, text)
            if bad is not None:
                raise DecodeError(fmt.what, data_offset + bad[0], bad[1])
            fields[number] = text
        offset = data_offset + len(part["data"])
    return Message(decoded["t"], MappingProxyType(fields))


# --- the request table of §5 --------------------------------------------------------------------


class RequestKind(enum.Enum):
    SIGN_ON = "sign-on"
    ECHO = "echo"
    SIGN_OFF = "sign-off"
    PURCHASE = "purchase"
    LOAD = "load"
    REFUND = "refund"
    PURCHASE_COMPLETION = "purchase completion"
    LOAD_COMPLETION = "load completion"
    REFUND_COMPLETION = "refund completion"
    PURCHASE_REVERSAL = "purchase reversal"
    LOAD_REVERSAL = "load reversal"
    REFUND_REVERSAL = "refund reversal"
    SETTLEMENT = "settlement"
    BATCH_UPLOAD = "batch upload"
    BATCH_UPLOAD_END = "end of batch upload"


ECHO_FIELDS: Final = frozenset({2, 3, 4, 11, 25, 41, 42, 49, 60})
"""§5 "echoes": copied from the request into the response when present."""


@dataclass(frozen=True, slots=True)
class RequestShape:
    """One row of the §5 table. ``response_fields`` are those of an approved response
    (``ECHO_FIELDS`` already expanded to the request's fields)."""

    kind: RequestKind
    mti: Mti
    required: frozenset[int]
    response_fields: frozenset[int]
    processing_code: ProcessingCode | None = None
    type_code: TypeCode | None = None  # 60.1, checked for 0200/0220/0400
    network_code: NetworkCode | None = None  # 60.3, checked for 0800/0820/0500/0320
    epurse: EpurseSet | None = None  # field 58 mandatory set of the request
    response_epurse: EpurseSet | None = None  # field 58 mandatory set of the approved response
    has_mac: bool = False


def _fs(*numbers: int) -> frozenset[int]:
    return frozenset(numbers)


_AUTH = _fs(2, 3, 4, 11, 22, 25, 41, 42, 49, 58, 60, 64)
_COMPLETION = _fs(2, 3, 4, 11, 25, 37, 41, 42, 49, 58, 60, 64)
_REFUND = _AUTH | {37, 61}


def _echoes(request: frozenset[int]) -> frozenset[int]:
    return request & ECHO_FIELDS


def _financial(
    kind: RequestKind,
    mti: Mti,
    code: ProcessingCode,
    type_code: TypeCode,
    required: frozenset[int],
    response_extra: frozenset[int],
    epurse: EpurseSet,
    response_epurse: EpurseSet | None = None,
) -> RequestShape:
    return RequestShape(
        kind,
        mti,
        required,
        _echoes(required) | response_extra,
        processing_code=code,
        type_code=type_code,
        epurse=epurse,
        response_epurse=response_epurse,
        has_mac=True,
    )


_K, _M, _P, _T = RequestKind, Mti, ProcessingCode, TypeCode
_AUTH_RESPONSE = _fs(12, 13, 15, 37, 38, 39, 64)
_COMPLETION_RESPONSE = _fs(15, 37, 39, 64)
_REVERSAL_RESPONSE = _fs(15, 39, 64)
_BATCH_RESPONSE = _fs(11, 39, 41, 42, 60)

REQUESTS: Final[Mapping[RequestKind, RequestShape]] = MappingProxyType(
    {
        s.kind: s
        for s in (
            RequestShape(
                _K.SIGN_ON,
                _M.SIGN_ON_REQUEST,
                _fs(11, 41, 42, 60, 63),
                _fs(11, 12, 13, 37, 39, 41, 42, 60, 62),
                network_code=NetworkCode.SIGN_ON,
            ),
            RequestShape(
                _K.ECHO,
                _M.NETWORK_MANAGEMENT_REQUEST,
                _fs(41, 42, 60),
                _fs(12, 13, 39, 41, 42, 60),
                network_code=NetworkCode.ECHO,
            ),
            RequestShape(
                _K.SIGN_OFF,
                _M.NETWORK_MANAGEMENT_REQUEST,
                _fs(11, 41, 42, 60),
                _fs(11, 39, 41, 42, 60),
                network_code=NetworkCode.SIGN_OFF,
            ),
            _financial(
                _K.PURCHASE,
                _M.FINANCIAL_REQUEST,
                _P.PURCHASE,
                _T.PURCHASE,
                _AUTH,
                _AUTH_RESPONSE,
                EpurseSet.PURCHASE_REQUEST,
            ),
            _financial(
                _K.LOAD,
                _M.FINANCIAL_REQUEST,
                _P.LOAD,
                _T.LOAD,
                _AUTH,
                _AUTH_RESPONSE | {58},
                EpurseSet.LOAD_REQUEST,
                EpurseSet.LOAD_RESPONSE,
            ),
            _financial(
                _K.REFUND,
                _M.FINANCIAL_REQUEST,
                _P.REFUND,
                _T.REFUND,
                _REFUND,
                _AUTH_RESPONSE | {58},
                EpurseSet.LOAD_REQUEST,
                EpurseSet.LOAD_RESPONSE,
            ),
            _financial(
                _K.PURCHASE_COMPLETION,
                _M.COMPLETION_ADVICE,
                _P.PURCHASE,
                _T.PURCHASE,
                _COMPLETION,
                _COMPLETION_RESPONSE,
                EpurseSet.COMPLETION,
            ),
            _financial(
                _K.LOAD_COMPLETION,
                _M.COMPLETION_ADVICE,
                _P.LOAD,
                _T.LOAD,
                _COMPLETION,
                _COMPLETION_RESPONSE,
                EpurseSet.COMPLETION,
            ),
            _financial(
                _K.REFUND_COMPLETION,
                _M.COMPLETION_ADVICE,
                _P.REFUND,
                _T.REFUND,
                _COMPLETION,
                _COMPLETION_RESPONSE,
                EpurseSet.COMPLETION,
            ),
            _financial(
                _K.PURCHASE_REVERSAL,
                _M.REVERSAL_ADVICE,
                _P.PURCHASE,
                _T.PURCHASE,
                _AUTH | {39},
                _REVERSAL_RESPONSE,
                EpurseSet.PURCHASE_REQUEST,
            ),
            _financial(
                _K.LOAD_REVERSAL,
                _M.REVERSAL_ADVICE,
                _P.LOAD,
                _T.LOAD,
                _AUTH | {39},
                _REVERSAL_RESPONSE,
                EpurseSet.LOAD_REQUEST,
            ),
            _financial(
                _K.REFUND_REVERSAL,
                _M.REVERSAL_ADVICE,
                _P.REFUND,
                _T.REFUND,
                _REFUND | {39},
                _REVERSAL_RESPONSE,
                EpurseSet.LOAD_REQUEST,
            ),
            RequestShape(
                _K.SETTLEMENT,
                _M.SETTLEMENT_REQUEST,
                _fs(11, 41, 42, 48, 49, 60, 63),
                _fs(11, 12, 13, 15, 37, 39, 41, 42, 48, 60),
                network_code=NetworkCode.SETTLEMENT,
            ),
            RequestShape(
                _K.BATCH_UPLOAD,
                _M.BATCH_UPLOAD_ADVICE,
                _fs(2, 3, 4, 11, 25, 37, 41, 42, 49, 58, 60),
                _BATCH_RESPONSE,
                network_code=NetworkCode.BATCH_UPLOAD,
                epurse=EpurseSet.COMPLETION,
            ),
            RequestShape(
                _K.BATCH_UPLOAD_END,
                _M.BATCH_UPLOAD_ADVICE,
                _fs(11, 41, 42, 48, 60),
                _BATCH_RESPONSE,
                network_code=NetworkCode.BATCH_UPLOAD_END,
            ),
        )
    }
)


def _field_text(fields: Fields, number: int, needed_by: str) -> str:
    if number not in fields:
        raise MissingFieldError(number, needed_by)
    value = fields[number]
    if not isinstance(value, str):
        raise DecodeError(f"ISO 8583 field {number}", 0, "is not text")
    return value


def classify_request(mti: str, fields: Fields) -> RequestShape:
    """Which §5 request this is, after checking its required fields.

    Raises ``MissingFieldError`` for an absent field (the lowest-numbered one) and
    ``UnknownRequestError`` for an MTI, processing code, 60.1, 60.3 or field 25 that §5 does not
    list; both are ``DecodeError`` (the host answers 30). Field 58's mandatory tags are the
    caller's next step: ``decode_epurse_data(fields[58], shape.epurse)``. Offsets: the bitmap
    byte of a missing field's bit; otherwise the byte inside the named field's data.
    """
    candidates = [s for s in REQUESTS.values() if s.mti == mti]
    if not candidates:
        raise UnknownRequestError(_WHAT_MTI, 0, f"{mti} is not a request of this profile")
    needed_by = f"a {mti}"
    if candidates[0].processing_code is not None:
        code = _field_text(fields, 3, needed_by)
        candidates = [s for s in candidates if s.processing_code == code]
        if not candidates:
            raise UnknownRequestError(
                "ISO 8583 field 3", 0, f"processing code {code} is not one of {mti}"
            )
    f60 = decode_field60(_field_text(fields, 60, needed_by))
    if candidates[0].network_code is not None:
        candidates = [s for s in candidates if s.network_code == f60.network_code]
        if not candidates:
            raise UnknownRequestError(
                "ISO 8583 field 60", 4, f"60.3 {f60.network_code} is not one of {mti}"
            )
    assert len(candidates) == 1, candidates
    shape = candidates[0]
    for number in sorted(shape.required):
        if number not in fields:
            raise MissingFieldError(number, f"a {shape.kind.value} {mti}")
    if shape.type_code is not None and f60.type_code != shape.type_code:
        raise UnknownRequestError(
            "ISO 8583 field 60",
            0,
            f"60.1 {f60.type_code} is not {shape.type_code} ({shape.kind.value})",
        )
    if shape.processing_code is not None and fields[25] != SERVICE_CONDITION_EPURSE:
        raise UnknownRequestError(
            "ISO 8583 field 25",
            0,
            f"service condition {fields[25]!r} is not {SERVICE_CONDITION_EPURSE}",
        )
    return shape


def echoes(request_fields: Fields) -> dict[int, FieldValue]:
    """The §5 "echoes" of a request: fields 2 3 4 11 25 41 42 49 60 that are present."""
    return {n: v for n, v in request_fields.items() if n in ECHO_FIELDS}
