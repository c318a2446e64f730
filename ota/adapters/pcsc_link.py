"""A SIM in a PC/SC reader through pyscard (the [pcsc] extra), as an ``ota.ports.EnvelopeLink``:
the simulated SIM served on vpcd in tests, or a real test SIM in a real reader."""

from __future__ import annotations

import contextlib
from typing import Any

from smartcard.CardRequest import CardRequest
from smartcard.Exceptions import SmartcardException

from ota.domain.errors import DeliveryError


class PcscLink:
    """A SIM in a named PC/SC reader through pyscard (the [pcsc] extra). T=0 GET RESPONSE
    (61xx) is followed here so the PoR handling sees whole responses."""

    def __init__(self, reader_name: str) -> None:
        self.reader_name = reader_name
        # pyscard's CardRequest and card service stay referenced while connected: their
        # destructors release the PC/SC context (as pos_terminal's reader does).
        self._connection: Any = None
        self._service: Any = None
        self._request: Any = None

    def connect(self, timeout_s: float = 10.0) -> bytes:
        self.close()
        try:
            self._request = CardRequest(timeout=timeout_s, readers=[self.reader_name])
            self._service = self._request.waitforcard()
            self._connection = self._service.connection
            self._connection.connect()
        except SmartcardException as exc:
            self.close()
            raise DeliveryError(f"{self.reader_name}: {exc}") from None
        return bytes(self._connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        if self._connection is None:
            raise DeliveryError(f"no SIM connected in {self.reader_name}")
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
            out = bytes(data)
            while sw1 == 0x61:
                more, sw1, sw2 = self._connection.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
                out += bytes(more)
        except SmartcardException as exc:
            raise DeliveryError(f"{self.reader_name}: {exc}") from None
        return out + bytes((sw1, sw2))

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
