"""The pyiso8583 spec of our CUP-style ISO 8583 profile (host_protocol.md §2).

One table, ``FIELD_FORMATS``, says what each field is; the pyiso8583 spec dict ``SPEC`` is built
from it, and ``paycore.iso8583.message`` checks values against it (pyiso8583 treats BCD as hex,
so digits-only and the character sets are ours to check).

- MTI n4 BCD (2 bytes), primary bitmap only (8 bytes binary): ``SPEC`` has no entry "1", and
  the message decoder refuses bit 1 before pyiso8583 sees it.
- Numeric fields are BCD. Fixed ones are right-aligned (the caller gives exactly the digits);
  variable ones are left-aligned with a trailing 0 nibble when the digit count is odd.
  §2: field 22 is left-aligned too (962 -> 96 20).
- LLVAR: 1-byte BCD prefix; LLLVAR: 2-byte BCD prefix. The prefix counts digits for n fields
  and bytes for an/ans/b fields.
- Field 64 is b64: the MAC as 8 ASCII bytes (§3).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final


class FieldKind(enum.Enum):
    """ISO 8583 attribute classes as this profile uses them."""

    N = "n"  # decimal digits, BCD on the wire
    AN = "an"  # letters, digits and space, ASCII on the wire
    ANS = "ans"  # printable ASCII
    B = "b"  # binary, bytes on the wire


class Prefix(enum.IntEnum):
    """Length prefix width in bytes (BCD)."""

    FIXED = 0
    LLVAR = 1
    LLLVAR = 2


@dataclass(frozen=True, slots=True)
class FieldFormat:
    """One row of the §2 table. ``length`` is digits for n fields, bytes otherwise; for a
    variable field it is the maximum."""

    number: int
    kind: FieldKind
    length: int
    prefix: Prefix
    description: str

    @property
    def fixed(self) -> bool:
        return self.prefix is Prefix.FIXED

    @property
    def what(self) -> str:
        """The name errors use for this field."""
        return f"ISO 8583 field {self.number}"


_N, _AN, _ANS, _B = FieldKind.N, FieldKind.AN, FieldKind.ANS, FieldKind.B
_FIX, _LL, _LLL = Prefix.FIXED, Prefix.LLVAR, Prefix.LLLVAR

FIELD_FORMATS: Final[Mapping[int, FieldFormat]] = MappingProxyType(
    {
        f.number: f
        for f in (
            FieldFormat(2, _N, 19, _LL, "card ASN"),
            FieldFormat(3, _N, 6, _FIX, "processing code"),
            FieldFormat(4, _N, 12, _FIX, "amount, fen"),
            FieldFormat(11, _N, 6, _FIX, "STAN (trace number)"),
            FieldFormat(12, _N, 6, _FIX, "local time hhmmss"),
            FieldFormat(13, _N, 4, _FIX, "local date MMDD"),
            FieldFormat(15, _N, 4, _FIX, "settlement date MMDD"),
            FieldFormat(22, _N, 3, _FIX, "entry mode"),
            FieldFormat(25, _N, 2, _FIX, "service condition"),
            FieldFormat(37, _AN, 12, _FIX, "retrieval reference number"),
            FieldFormat(38, _AN, 6, _FIX, "authorisation code"),
            FieldFormat(39, _AN, 2, _FIX, "response code"),
            FieldFormat(41, _ANS, 8, _FIX, "terminal ID"),
            FieldFormat(42, _ANS, 15, _FIX, "merchant ID"),
            FieldFormat(48, _N, 322, _LLL, "settlement totals / batch-upload count"),
            FieldFormat(49, _AN, 3, _FIX, "currency"),
            FieldFormat(58, _B, 255, _LLL, "e-purse data (BER-TLV)"),
            FieldFormat(60, _N, 17, _LLL, "type, batch, network code, read capability"),
            FieldFormat(61, _N, 29, _LLL, "original batch, trace, date"),
            FieldFormat(62, _B, 512, _LLL, "working keys"),
            FieldFormat(63, _ANS, 163, _LLL, "operator / card organisation"),
            FieldFormat(64, _B, 8, _FIX, "MAC"),
        )
    }
)

MTI_BYTES: Final = 2
BITMAP_BYTES: Final = 8
MAC_FIELD: Final = 64
MAC_BYTES: Final = 8


def _pyiso_field(f: FieldFormat) -> dict[str, Any]:
    entry: dict[str, Any] = {"len_type": int(f.prefix), "max_len": f.length, "desc": f.description}
    if f.kind is FieldKind.N:
        # BCD: pyiso8583 "b" data counted in nibbles; an odd digit count gets a trailing 0
        # nibble (variable fields and field 22 alike, §2).
        entry |= {"data_enc": "b", "len_enc": "bcd", "len_count": "nibbles", "right_pad": "0"}
    elif f.kind is FieldKind.B:
        entry |= {"data_enc": "b", "len_enc": "bcd", "len_count": "bytes"}
    else:
        entry |= {"data_enc": "ascii", "len_enc": "bcd", "len_count": "bytes"}
    return entry


def _build_spec() -> dict[str, dict[str, Any]]:
    spec: dict[str, dict[str, Any]] = {
        "h": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 0, "desc": "(none)"},
        "t": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 2, "desc": "MTI"},
        "p": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 8, "desc": "Bitmap"},
    }
    for number, f in FIELD_FORMATS.items():
        spec[str(number)] = _pyiso_field(f)
    return spec


SPEC: Final[Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {key: MappingProxyType(value) for key, value in _build_spec().items()}
)
"""The pyiso8583 spec dict (read-only). Keys: "h" (no header: it is in the frame), "t", "p",
and one entry per field of ``FIELD_FORMATS``; there is no "1" (no secondary bitmap)."""
