"""A PC/SC reader through pyscard (pcsc.md; needs the [pcsc] extra): pick a reader by name,
wait for a card, transmit. pyscard's exceptions become CardGone, the terminal's own event."""

from __future__ import annotations

import contextlib
from typing import Any

from smartcard.CardRequest import CardRequest
from smartcard.Exceptions import CardRequestTimeoutException, SmartcardException

from pos_terminal.domain.card_flows import CardGone


class PcscReader:
    """One card in one PC/SC reader. Keeps pyscard's CardRequest and card service referenced
    while connected (their destructors release the PC/SC context: pcsc.md)."""

    def __init__(self, reader_name: str) -> None:
        self.reader_name = reader_name
        self._request: Any = None
        self._service: Any = None
        self._connection: Any = None

    def wait_for_card(self, timeout_s: float) -> bytes:
        """Wait for a card and connect; returns its ATR. Raises CardGone on timeout."""
        self.close()
        try:
            self._request = CardRequest(timeout=timeout_s, readers=[self.reader_name])
            self._service = self._request.waitforcard()
            self._connection = self._service.connection
            self._connection.connect()
        except CardRequestTimeoutException:
            self.close()
            raise CardGone(f"no card in {self.reader_name} after {timeout_s:g} s") from None
        except SmartcardException as exc:
            self.close()
            raise CardGone(f"{self.reader_name}: {exc}") from None
        return bytes(self._connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        if self._connection is None:
            raise CardGone(f"no card connected in {self.reader_name}")
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except SmartcardException as exc:
            raise CardGone(f"{self.reader_name}: {exc}") from None
        return bytes([*data, sw1, sw2])

    def close(self) -> None:
        for obj, method in (
            (self._connection, "disconnect"),
            (self._connection, "release"),
            (getattr(self._request, "pcsccardrequest", None), "release"),
        ):
            if obj is not None:
                with contextlib.suppress(Exception):
                    getattr(obj, method)()
        self._request = self._service = self._connection = None
