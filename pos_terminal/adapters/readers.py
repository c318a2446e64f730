"""The terminal's readers behind one interface, chosen by a spec string (docs/pos-cli.md):

    card:  pcsc | pcsc:NAME | serial:/dev/ttyX | sim:CARDFILE
    PSAM:  pcsc | pcsc:NAME | sim:PSAMFILE

- ``pcsc``: a PC/SC reader through pyscard and pcscd; NAME is a reader's full name or a part of
  it that names one reader only (case ignored). Without NAME the card is in the first reader
  pcscd lists and the PSAM in the second (vpcd slot 0 and slot 1: pcsc.md).
- ``serial``: a PN532 on a serial line (115200 baud) through pyserial.
- ``sim``: a simulated card image in this process (``nfcpay card new`` / ``psam new``); every
  committed transaction is saved to the file.

pyscard and pyserial (the [pcsc] extra) are imported only when such a reader is opened. Every
reader is an ApduLink with presence: ``wait_for_card(timeout_s)`` activates the next card (or
raises CardGone at the timeout), and a card that leaves the field during ``transmit`` raises
CardGone, the flows' event, never a library exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

from pos_terminal.domain.card_flows import FlowError

__all__ = [
    "PSAM_WAIT_S_DEFAULT",
    "CardReader",
    "ReaderError",
    "ReaderSpec",
    "ReaderSpecError",
    "open_psam_reader",
    "open_reader",
    "parse_reader_spec",
]

Role = Literal["card", "psam"]
Kind = Literal["pcsc", "serial", "sim"]
KINDS: Final[dict[Role, tuple[Kind, ...]]] = {
    "card": ("pcsc", "serial", "sim"),
    "psam": ("pcsc", "sim"),
}
SPEC_LEN_MAX: Final = 512
#: The PSAM sits in its slot: it is there within pcscd's first presence poll or not at all.
PSAM_WAIT_S_DEFAULT: Final = 3.0
_TARGET: Final = {"serial": "serial port", "sim": "card image file"}
_FORMS: Final[dict[Role, str]] = {
    "card": "pcsc[:NAME], serial:/dev/ttyX or sim:CARDFILE",
    "psam": "pcsc[:NAME] or sim:PSAMFILE",
}


class ReaderError(FlowError):
    """A reader that cannot be opened or used (one line for the merchant)."""


class ReaderSpecError(ReaderError, ValueError):
    """A reader spec that does not parse."""


class CardReader(Protocol):
    """One reader: an ApduLink once ``wait_for_card`` has activated a card."""

    @property
    def name(self) -> str: ...

    def wait_for_card(self, timeout_s: float) -> object:
        """Activate the card in the field (waiting up to ``timeout_s`` for one to come);
        raises CardGone at the timeout. Returns what identifies the card (ATR or target)."""
        ...

    def transmit(self, apdu: bytes) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    role: Role
    kind: Kind
    target: str | None  # the PC/SC name (None: by position), the serial port, the image file

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"


def parse_reader_spec(text: str, role: Role = "card") -> ReaderSpec:
    """``pcsc``, ``pcsc:NAME``, ``serial:PORT`` or ``sim:FILE`` (the PSAM has no serial)."""
    what = "--reader" if role == "card" else "--psam"
    if not text or len(text) > SPEC_LEN_MAX or not text.isprintable():
        raise ReaderSpecError(f"{what}: expected {_FORMS[role]}")
    kind, sep, target = text.partition(":")
    if kind not in KINDS[role]:
        raise ReaderSpecError(f"{what} {text!r}: expected {_FORMS[role]}")
    if kind == "pcsc":
        if sep and not target.strip():
            raise ReaderSpecError(f"{what} {text!r}: the PC/SC reader name is empty")
        return ReaderSpec(role, "pcsc", target.strip() or None)
    if not target:
        raise ReaderSpecError(f"{what} {text!r}: {kind} needs a {_TARGET[kind]} after the colon")
    return ReaderSpec(role, "serial" if kind == "serial" else "sim", target)


def open_reader(spec: str | ReaderSpec) -> CardReader:
    """The card reader ``spec`` names, open (no card activated yet)."""
    parsed = spec if isinstance(spec, ReaderSpec) else parse_reader_spec(spec, "card")
    return _open(parsed)


def open_psam_reader(spec: str | ReaderSpec, timeout_s: float = PSAM_WAIT_S_DEFAULT) -> CardReader:
    """The PSAM's reader, with the PSAM activated (CardGone when it is not there in time)."""
    parsed = spec if isinstance(spec, ReaderSpec) else parse_reader_spec(spec, "psam")
    reader = _open(parsed)
    try:
        reader.wait_for_card(timeout_s)
    except BaseException:
        reader.close()
        raise
    return reader


def _open(spec: ReaderSpec) -> CardReader:
    if spec.kind == "sim":
        from pos_terminal.adapters.sim_reader import SimReader  # noqa: PLC0415 - per kind

        assert spec.target is not None
        return SimReader.from_file(Path(spec.target), "sim" if spec.role == "card" else "psam")
    if spec.kind == "pcsc":
        try:
            from pos_terminal.adapters import pcsc_reader  # noqa: PLC0415 - the [pcsc] extra
        except ImportError:
            raise ReaderError("PC/SC needs pyscard: pip install 'nfcpay[pcsc]'") from None
        index = 0 if spec.role == "card" else 1
        return pcsc_reader.PcscReader(pcsc_reader.pick_reader(spec.target, index=index))
    try:
        from pos_terminal.adapters import pn532_reader  # noqa: PLC0415 - the [pcsc] extra
    except ImportError:
        raise ReaderError("a serial PN532 needs pyserial: pip install 'nfcpay[pcsc]'") from None
    assert spec.target is not None
    reader = pn532_reader.Pn532Reader(spec.target)
    reader.open()
    return reader
