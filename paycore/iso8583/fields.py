"""Codecs of the structured fields and the code values of host_protocol.md §2, §4 and §5.

Field values are what ``paycore.iso8583.message`` carries: digit strings for n fields (48, 60,
61) and bytes for b fields (58). Codecs are pure; bad input raises ``DecodeError`` naming the
field and the byte offset inside the field's data.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from paycore import tlv
from paycore.errors import DecodeError, EncodeError

# --- code values (§2, §5) ---------------------------------------------------------------------


class Mti(enum.StrEnum):
    SIGN_ON_REQUEST = "0800"
    SIGN_ON_RESPONSE = "0810"
    NETWORK_MANAGEMENT_REQUEST = "0820"  # echo, sign-off
    NETWORK_MANAGEMENT_RESPONSE = "0830"
    FINANCIAL_REQUEST = "0200"  # purchase authorisation, load, refund
    FINANCIAL_RESPONSE = "0210"
    COMPLETION_ADVICE = "0220"
    COMPLETION_ADVICE_RESPONSE = "0230"
    BATCH_UPLOAD_ADVICE = "0320"
    BATCH_UPLOAD_ADVICE_RESPONSE = "0330"
    REVERSAL_ADVICE = "0400"
    REVERSAL_ADVICE_RESPONSE = "0410"
    SETTLEMENT_REQUEST = "0500"
    SETTLEMENT_RESPONSE = "0510"


def response_mti(request_mti: str) -> str:
    """The MTI of the response to ``request_mti`` (§1: the response is MTI + 10)."""
    if len(request_mti) != 4 or not request_mti.isdigit() or request_mti[2] not in "02":
        raise EncodeError(f"{request_mti!r} is not a request MTI")
    return f"{int(request_mti) + 10:04d}"


class ProcessingCode(enum.StrEnum):
    """Field 3."""

    PURCHASE = "000000"
    LOAD = "600000"
    REFUND = "200000"


class ResponseCode(enum.StrEnum):
    """Field 39 (§5). ``ResponseCode.X`` is a str and can go into a field dict as it is."""

    APPROVED = "00"
    INVALID_MERCHANT = "03"
    DO_NOT_HONOUR = "05"
    INVALID_TRANSACTION = "12"
    INVALID_AMOUNT = "13"
    INVALID_CARD = "14"
    ORIGINAL_NOT_FOUND = "25"
    FORMAT_ERROR = "30"
    INSUFFICIENT_BALANCE = "51"
    EXPIRED_CARD = "54"
    NOT_PERMITTED_ON_TERMINAL = "58"
    OVER_DAILY_AMOUNT_LIMIT = "61"
    CARD_BLOCKED = "62"
    AMOUNT_DIFFERS_FROM_ORIGINAL = "64"
    OVER_DAILY_COUNT_LIMIT = "65"
    DUPLICATE = "94"
    SYSTEM_ERROR = "96"
    TERMINAL_NOT_REGISTERED = "97"
    MAC_ERROR = "A0"


class ReversalReason(enum.StrEnum):
    """Field 39 of a 0400 (§5)."""

    NO_ANSWER = "98"
    MAC_ERROR = "A0"
    OTHER = "06"


class TypeCode(enum.StrEnum):
    """Field 60.1. The 0220 and 0400 carry the 60.1 of their 0200."""

    NETWORK_MANAGEMENT = "00"
    PURCHASE = "22"
    LOAD = "45"
    REFUND = "25"


class NetworkCode(enum.StrEnum):
    """Field 60.3 of the management messages (settlement and batch upload share 201)."""

    SIGN_ON = "004"
    SIGN_OFF = "002"
    ECHO = "301"
    SETTLEMENT = "201"
    BATCH_UPLOAD = "201"  # an alias of SETTLEMENT: same value
    BATCH_UPLOAD_END = "202"
    FINANCIAL = "000"  # our choice for 0200/0220/0400 (the contract leaves it open)


ENTRY_MODE_CHIP_NO_PIN: Final = "962"
ENTRY_MODE_CHIP_WITH_PIN: Final = "961"
SERVICE_CONDITION_EPURSE: Final = "91"
CURRENCY_CNY: Final = "156"
CARD_ORGANISATION_CUP: Final = "CUP"
READ_CAPABILITY_CONTACTLESS: Final = "6"  # 60.4

EPURSE_TX_PURCHASE: Final = 0x06  # DF06
EPURSE_TX_LOAD: Final = 0x02  # DF06; refunds are loads on the card


def _digits(value: int, width: int, what: str) -> str:
    if not 0 <= value < 10**width:
        raise EncodeError(f"{what} {value} does not fit in {width} digits")
    return f"{value:0{width}d}"


def _need_digits(text: str, what: str) -> None:
    for i, ch in enumerate(text):
        if not ("0" <= ch <= "9"):
            raise DecodeError(what, i // 2, f"{ch!r} is not a decimal digit")


# --- field 58: e-purse data (§4) --------------------------------------------------------------

F58: Final = "ISO 8583 field 58"


class _Shape(enum.Enum):
    BYTES = "bytes"
    UINT = "uint"


@dataclass(frozen=True, slots=True)
class EpurseTag:
    tag: int
    attribute: str
    length: int
    shape: _Shape
    description: str

    @property
    def label(self) -> str:
        return f"{self.tag:04X} ({self.description})"


EPURSE_TAGS: Final[tuple[EpurseTag, ...]] = (
    EpurseTag(0xDF01, "asn", 8, _Shape.BYTES, "ASN"),
    EpurseTag(0xDF02, "balance_before_fen", 4, _Shape.UINT, "balance before"),
    EpurseTag(0xDF03, "card_counter", 2, _Shape.UINT, "card counter"),
    EpurseTag(0xDF04, "key_version", 1, _Shape.UINT, "key version"),
    EpurseTag(0xDF05, "alg_id", 1, _Shape.UINT, "alg ID"),
    EpurseTag(0xDF06, "transaction_type", 1, _Shape.UINT, "transaction type"),
    EpurseTag(0xDF07, "psam_terminal_id", 6, _Shape.BYTES, "PSAM terminal ID"),
    EpurseTag(0xDF08, "terminal_serial", 4, _Shape.UINT, "PSAM terminal transaction serial"),
    EpurseTag(0xDF09, "date_time_bcd", 7, _Shape.BYTES, "transaction date and time"),
    EpurseTag(0xDF0A, "tac", 4, _Shape.BYTES, "TAC"),
    EpurseTag(0xDF0B, "mac1", 4, _Shape.BYTES, "load MAC1"),
    EpurseTag(0xDF0C, "mac2", 4, _Shape.BYTES, "load MAC2"),
    EpurseTag(0xDF0D, "card_random", 4, _Shape.BYTES, "card random"),
)
_TAGS_BY_NUMBER: Final[Mapping[int, EpurseTag]] = MappingProxyType({t.tag: t for t in EPURSE_TAGS})


@dataclass(frozen=True, slots=True)
class EpurseData:
    """Field 58. Every attribute is optional; which are needed depends on the message
    (``EpurseSet``). ``asn`` is a card number: it is left out of the repr."""

    asn: bytes | None = field(default=None, repr=False)
    balance_before_fen: int | None = None
    card_counter: int | None = None
    key_version: int | None = None
    alg_id: int | None = None
    transaction_type: int | None = None
    psam_terminal_id: bytes | None = None
    terminal_serial: int | None = None
    date_time_bcd: bytes | None = None  # YYYYMMDDhhmmss, 7 bytes BCD
    tac: bytes | None = None
    mac1: bytes | None = None
    mac2: bytes | None = None
    card_random: bytes | None = None

    def present_tags(self) -> frozenset[int]:
        return frozenset(t.tag for t in EPURSE_TAGS if getattr(self, t.attribute) is not None)


class EpurseSet(enum.Enum):
    """The messages of §4 with a mandatory set of field 58 tags."""

    PURCHASE_REQUEST = "purchase 0200"
    COMPLETION = "completion 0220"
    LOAD_REQUEST = "load/refund 0200"
    LOAD_RESPONSE = "load/refund 0210"


EPURSE_MANDATORY: Final[Mapping[EpurseSet, tuple[int, ...]]] = MappingProxyType(
    {
        EpurseSet.PURCHASE_REQUEST: tuple(range(0xDF01, 0xDF08)),
        EpurseSet.COMPLETION: (0xDF01, 0xDF03, 0xDF06, 0xDF07, 0xDF08, 0xDF09, 0xDF0A),
        EpurseSet.LOAD_REQUEST: (*range(0xDF01, 0xDF08), 0xDF0B, 0xDF0D),
        EpurseSet.LOAD_RESPONSE: (0xDF09, 0xDF0C),
    }
)


def encode_epurse_data(data: EpurseData) -> bytes:
    """Field 58: the present attributes as DF01..DF0D in tag order."""
    out = bytearray()
    for spec in EPURSE_TAGS:
        value = getattr(data, spec.attribute)
        if value is None:
            continue
        if spec.shape is _Shape.UINT:
            if not isinstance(value, int) or not 0 <= value < 1 << (8 * spec.length):
                raise EncodeError(
                    f"field 58 tag {spec.label}: {value!r} is not a {spec.length}-byte number"
                )
            raw = value.to_bytes(spec.length, "big")
        else:
            if not isinstance(value, bytes) or len(value) != spec.length:
                size = len(value) if isinstance(value, bytes) else type(value).__name__
                raise EncodeError(
                    f"field 58 tag {spec.label} needs {spec.length} bytes, got {size}"
                )
            raw = value
        out += tlv.encode_one(spec.tag, raw)
    return bytes(out)


def _object_size(raw: bytes, offset: int, obj: tlv.Tlv) -> int:
    """The encoded size of ``obj`` starting at ``offset`` (BER allows long length forms)."""
    tag_size = (obj.tag.bit_length() + 7) // 8
    first_length = raw[offset + tag_size]
    length_size = 1 if first_length < 0x80 else 1 + (first_length & 0x7F)
    return tag_size + length_size + len(obj.value)


def decode_epurse_data(raw: bytes, required: EpurseSet | None = None) -> EpurseData:
    """Field 58 (§4). Unknown tags are ignored; a repeated tag, a known tag of the wrong size
    or (when ``required`` is given) a missing mandatory tag is a ``DecodeError`` (answer 30)."""
    try:
        objects = tlv.decode(raw)
    except DecodeError as error:
        raise DecodeError(F58, error.offset, error.reason) from None
    seen: set[int] = set()
    values: dict[str, bytes | int] = {}
    offset = 0
    for obj in objects:
        size = _object_size(raw, offset, obj)
        if obj.tag in seen:
            raise DecodeError(F58, offset, f"tag {obj.tag:04X} is repeated")
        seen.add(obj.tag)
        spec = _TAGS_BY_NUMBER.get(obj.tag)
        if spec is not None:
            if len(obj.value) != spec.length:
                raise DecodeError(
                    F58,
                    offset + size - len(obj.value),
                    f"tag {spec.label} needs {spec.length} bytes, got {len(obj.value)}",
                )
            values[spec.attribute] = (
                int.from_bytes(obj.value, "big") if spec.shape is _Shape.UINT else obj.value
            )
        offset += size
    data = EpurseData(**values)  # type: ignore[arg-type]  # attribute names come from EPURSE_TAGS
    if required is not None:
        check_epurse_mandatory(data, required)
    return data


def check_epurse_mandatory(data: EpurseData, required: EpurseSet) -> None:
    """Raise ``DecodeError`` naming the first mandatory tag of ``required`` that is missing."""
    present = data.present_tags()
    for tag in EPURSE_MANDATORY[required]:
        if tag not in present:
            raise DecodeError(
                F58,
                0,
                f"tag {_TAGS_BY_NUMBER[tag].label} is missing, mandatory in {required.value}",
            )


# --- field 48: settlement totals and batch-upload count (§5) ----------------------------------

F48: Final = "ISO 8583 field 48"
SETTLEMENT_TOTALS_DIGITS: Final = 62
BATCH_COUNT_DIGITS: Final = 4
AMOUNT_DIGITS: Final = 12
COUNT_DIGITS: Final = 3
_FIRST_RESULT_INDEX: Final = 30
_SECOND_RESULT_INDEX: Final = 61
_RESERVED = slice(46, 61)  # 000000000000 || 000


class SettlementResult(enum.StrEnum):
    """Characters 31 and 62 of field 48: '0' in the 0500, '1' / '2' in the 0510."""

    NOT_CHECKED = "0"
    BALANCED = "1"
    NOT_BALANCED = "2"


@dataclass(frozen=True, slots=True)
class SettlementTotals:
    """Field 48 of the 0500 / 0510. Counted: completed, unreversed transactions of the batch."""

    purchase_amount_fen: int
    purchase_count: int
    refund_amount_fen: int
    refund_count: int
    load_amount_fen: int
    load_count: int
    first_result: SettlementResult = SettlementResult.NOT_CHECKED  # purchases and refunds
    second_result: SettlementResult = SettlementResult.NOT_CHECKED  # loads

    @property
    def balanced(self) -> bool:
        return (
            self.first_result is SettlementResult.BALANCED
            and self.second_result is SettlementResult.BALANCED
        )


def encode_settlement_totals(totals: SettlementTotals) -> str:
    text = (
        _digits(totals.purchase_amount_fen, AMOUNT_DIGITS, "purchase amount")
        + _digits(totals.purchase_count, COUNT_DIGITS, "purchase count")
        + _digits(totals.refund_amount_fen, AMOUNT_DIGITS, "refund amount")
        + _digits(totals.refund_count, COUNT_DIGITS, "refund count")
        + SettlementResult(totals.first_result).value
        + _digits(totals.load_amount_fen, AMOUNT_DIGITS, "load amount")
        + _digits(totals.load_count, COUNT_DIGITS, "load count")
        + "0" * AMOUNT_DIGITS
        + "0" * COUNT_DIGITS
        + SettlementResult(totals.second_result).value
    )
    assert len(text) == SETTLEMENT_TOTALS_DIGITS
    return text


def decode_settlement_totals(text: str) -> SettlementTotals:
    if len(text) != SETTLEMENT_TOTALS_DIGITS:
        raise DecodeError(
            F48, 0, f"settlement totals need {SETTLEMENT_TOTALS_DIGITS} digits, got {len(text)}"
        )
    _need_digits(text, F48)
    for index in range(_RESERVED.start, _RESERVED.stop):
        if text[index] != "0":
            raise DecodeError(F48, index // 2, f"reserved digit {index + 1} is not 0")
    results: list[SettlementResult] = []
    for index in (_FIRST_RESULT_INDEX, _SECOND_RESULT_INDEX):
        try:
            results.append(SettlementResult(text[index]))
        except ValueError:
            raise DecodeError(
                F48, index // 2, f"result digit {index + 1} is {text[index]!r}, not 0, 1 or 2"
            ) from None
    return SettlementTotals(
        purchase_amount_fen=int(text[0:12]),
        purchase_count=int(text[12:15]),
        refund_amount_fen=int(text[15:27]),
        refund_count=int(text[27:30]),
        load_amount_fen=int(text[31:43]),
        load_count=int(text[43:46]),
        first_result=results[0],
        second_result=results[1],
    )


def encode_batch_count(count: int) -> str:
    """Field 48 of the end-of-batch-upload 0320: the number of 0320 uploads, n4."""
    return _digits(count, BATCH_COUNT_DIGITS, "batch-upload count")


def decode_batch_count(text: str) -> int:
    if len(text) != BATCH_COUNT_DIGITS:
        raise DecodeError(
            F48, 0, f"batch-upload count needs {BATCH_COUNT_DIGITS} digits, got {len(text)}"
        )
    _need_digits(text, F48)
    return int(text)


# --- field 60 (§2) ----------------------------------------------------------------------------

F60: Final = "ISO 8583 field 60"
_F60_MIN_DIGITS: Final = 11


@dataclass(frozen=True, slots=True)
class Field60:
    """60.1 type (n2) || 60.2 batch (n6) || 60.3 network code (n3) || 60.4 read capability
    (n1, '6' contactless) || digits after 60.4, kept as received (``reserved``)."""

    type_code: str
    batch_number: int
    network_code: str
    read_capability: str | None = READ_CAPABILITY_CONTACTLESS
    reserved: str = ""


def encode_field60(value: Field60) -> str:
    for what, text, width in (
        ("60.1 type", value.type_code, 2),
        ("60.3 network code", value.network_code, 3),
    ):
        if len(text) != width or not text.isascii() or not text.isdigit():
            raise EncodeError(f"field {what} must be {width} digits, got {text!r}")
    tail = (value.read_capability or "") + value.reserved
    if value.read_capability is None and value.reserved:
        raise EncodeError("field 60: digits after 60.4 need 60.4")
    if tail and (not tail.isascii() or not tail.isdigit()):
        raise EncodeError(f"field 60.4 and after must be digits, got {tail!r}")
    if value.read_capability is not None and len(value.read_capability) != 1:
        raise EncodeError(f"field 60.4 must be 1 digit, got {value.read_capability!r}")
    text = (
        value.type_code + _digits(value.batch_number, 6, "60.2 batch") + value.network_code + tail
    )
    if len(text) > 17:
        raise EncodeError(f"field 60 is {len(text)} digits, over 17")
    return text


def decode_field60(text: str) -> Field60:
    if len(text) < _F60_MIN_DIGITS:
        raise DecodeError(F60, 0, f"needs at least {_F60_MIN_DIGITS} digits, got {len(text)}")
    _need_digits(text, F60)
    return Field60(
        type_code=text[0:2],
        batch_number=int(text[2:8]),
        network_code=text[8:11],
        read_capability=text[11] if len(text) > _F60_MIN_DIGITS else None,
        reserved=text[12:],
    )


# --- field 61 (§2) ----------------------------------------------------------------------------

F61: Final = "ISO 8583 field 61"
_F61_MIN_DIGITS: Final = 16


@dataclass(frozen=True, slots=True)
class Field61:
    """Original batch (6) || original trace (6) || original date MMDD (4) || digits after,
    kept as received (``reserved``)."""

    original_batch: int
    original_trace: int
    original_date_mmdd: str
    reserved: str = ""


def encode_field61(value: Field61) -> str:
    date = value.original_date_mmdd
    if len(date) != 4 or not date.isascii() or not date.isdigit():
        raise EncodeError(f"field 61 original date must be 4 digits MMDD, got {date!r}")
    if value.reserved and (not value.reserved.isascii() or not value.reserved.isdigit()):
        raise EncodeError(f"field 61 digits after the date must be digits, got {value.reserved!r}")
    text = (
        _digits(value.original_batch, 6, "61 original batch")
        + _digits(value.original_trace, 6, "61 original trace")
        + date
        + value.reserved
    )
    if len(text) > 29:
        raise EncodeError(f"field 61 is {len(text)} digits, over 29")
    return text


def decode_field61(text: str) -> Field61:
    if len(text) < _F61_MIN_DIGITS:
        raise DecodeError(F61, 0, f"needs at least {_F61_MIN_DIGITS} digits, got {len(text)}")
    _need_digits(text, F61)
    return Field61(
        original_batch=int(text[0:6]),
        original_trace=int(text[6:12]),
        original_date_mmdd=text[12:16],
        reserved=text[16:],
    )
