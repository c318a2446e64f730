"""Ports of the card simulator: what a card exposes, and where its image is kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from card_applet_sim.domain.image import CardImage


class SmartCard(Protocol):
    """A card as a reader sees it (card.md §1 'Exposure'). Never raises for bad APDUs: every
    malformed command gets a status word. ``transmit`` before ``power_on`` answers 6F00."""

    def power_on(self) -> bytes:
        """Cold reset: returns the ATR; all transient state (selections, sessions) is cleared."""
        ...

    def reset(self) -> bytes:
        """Warm reset: same effect on transient state as a cold reset; returns the ATR."""
        ...

    def power_off(self) -> None: ...

    @property
    def atr(self) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes:
        """One command APDU in, response data || SW1 SW2 out."""
        ...


class CardStore(Protocol):
    """Keeps the committed card image. ``commit`` is atomic: after a power cut at any point
    inside it, ``load`` returns either the previous image or the new one, never a mix."""

    def load(self) -> CardImage: ...

    def commit(self, image: CardImage) -> None: ...
