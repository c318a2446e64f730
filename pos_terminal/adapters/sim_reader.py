"""The in-process reader: a simulated card (card_applet_sim) as an ApduLink. The only place the
terminal reaches into the card simulator (ARCHITECTURE.md dependency rule)."""

from __future__ import annotations

from card_applet_sim.domain.errors import PowerLoss
from card_applet_sim.ports import SmartCard
from pos_terminal.domain.card_flows import CardGone


class SimReader:
    """Holds one simulated card in the field. ``pull()`` takes it away; ``present()`` puts it
    (back) and powers it on."""

    def __init__(self, card: SmartCard) -> None:
        self.card = card
        self._in_field = False

    def present(self) -> bytes:
        self._in_field = True
        return self.card.power_on()

    def pull(self) -> None:
        self._in_field = False
        self.card.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        if not self._in_field:
            raise CardGone("no card in the field")
        try:
            return self.card.transmit(apdu)
        except PowerLoss:
            self._in_field = False
            raise CardGone("the card lost power") from None


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
