"""The in-process reader: a simulated card (card_applet_sim) as an ApduLink. The only place the
terminal reaches into the card simulator (ARCHITECTURE.md dependency rule)."""

from __future__ import annotations

import threading
from pathlib import Path

from card_applet_sim import bootstrap
from card_applet_sim.domain.errors import CardSimError, PowerLoss
from card_applet_sim.ports import SmartCard
from pos_terminal.adapters.readers import ReaderError
from pos_terminal.domain.card_flows import CardGone


class SimReaderError(ReaderError):
    """A card image that cannot be used (missing, unreadable, the wrong kind)."""


class SimReader:
    """Holds one simulated card in the field. ``pull()`` takes it away; ``present()`` puts it
    (back) and powers it on; ``wait_for_card`` waits (from another thread's ``present``) for a
    card in the field and activates it (cold reset), as a real reader does at every tap."""

    def __init__(self, card: SmartCard, *, name: str = "in-process") -> None:
        self.card = card
        self.name = name
        self._in_field = False
        self._changed = threading.Condition()

    @classmethod
    def from_file(cls, path: Path, kind: str) -> SimReader:
        """A reader holding the card image at ``path`` (``kind`` "sim" or "psam"), in the field:
        every committed transaction is saved to the file (fsync)."""
        try:
            card = bootstrap.file_card(path, expect_kind=kind)
        except CardSimError as exc:
            raise SimReaderError(str(exc)) from None
        except OSError as exc:
            raise SimReaderError(f"{path}: cannot read the card image ({exc.strerror})") from None
        reader = cls(card, name=f"sim:{path}")
        reader.present()
        return reader

    @property
    def in_field(self) -> bool:
        return self._in_field

    def present(self) -> bytes:
        with self._changed:
            self._in_field = True
            self._changed.notify_all()
        return self.card.power_on()

    def pull(self) -> None:
        with self._changed:
            self._in_field = False
            self._changed.notify_all()
        self.card.power_off()

    def wait_for_card(self, timeout_s: float) -> bytes:
        """Wait up to ``timeout_s`` for a card in the field; cold reset; return its ATR."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._in_field, timeout=timeout_s):
                raise CardGone(f"no card on the {self.name} reader after {timeout_s:g} s")
        return self.card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        if not self._in_field:
            raise CardGone("no card in the field")
        try:
            return self.card.transmit(apdu)
        except PowerLoss:
            self._in_field = False
            raise CardGone("the card lost power") from None

    def close(self) -> None:
        """Nothing to release: the card stays where it is."""


class LoseAnswerReader:
    """A reader that lets the card process the command with INS ``ins`` and then pulls the card
    before the answer reaches the terminal (the torn transaction of card.md §4)."""

    def __init__(self, reader: SimReader, ins: int) -> None:
        self._reader = reader
        self._ins = ins

    def transmit(self, apdu: bytes) -> bytes:
        response = self._reader.transmit(apdu)
        if len(apdu) > 1 and apdu[1] == self._ins:
            self._reader.pull()
            raise CardGone("card pulled away before its answer arrived")
        return response
