"""Ports of the POS terminal."""

from __future__ import annotations

from typing import Protocol

from paycore.purse import InitLoadResponse


class ApduLink(Protocol):
    """A card in a reader: one command APDU in, response APDU out. A card that went away
    raises CardGone (or the reader's own error, translated at the adapter)."""

    def transmit(self, apdu: bytes) -> bytes: ...


class LoadAuthority(Protocol):
    """The issuer side of a load (later: the host, over ISO 8583): checks the card's MAC1 and
    returns MAC2 for CREDIT FOR LOAD, or raises LoadRefused."""

    def authorise_load(
        self,
        asn: bytes,
        init: InitLoadResponse,
        amount_fen: int,
        terminal_id: bytes,
        date_bcd: bytes,
        time_bcd: bytes,
    ) -> bytes: ...
