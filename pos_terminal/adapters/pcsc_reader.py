"""A PC/SC reader through pyscard (pcsc.md; needs the [pcsc] extra): pick a reader by name,
wait for a card, transmit. pyscard's exceptions become CardGone, the terminal's own event."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from smartcard.CardRequest import CardRequest
from smartcard.Exceptions import (
    CardConnectionException,
    CardRequestTimeoutException,
    NoCardException,
    SmartcardException,
)
from smartcard.pcsc.PCSCExceptions import BaseSCardException
from smartcard.System import readers as pcsc_readers

from pos_terminal.adapters.readers import ReaderError
from pos_terminal.domain.card_flows import CardGone

#: pcsc.md: a card that came back within ~0.5 s of its last connection closing can race pcscd's
#: presence poll; connecting is retried (until the caller's deadline) this often.
CONNECT_RETRY_PAUSE_S = 0.05
READERS_MAX = 64


class PcscError(ReaderError):
    """PC/SC cannot be used: pcscd is not running, or no reader matches the name asked for."""


def reader_names() -> list[str]:
    """The readers pcscd knows, in its order."""
    try:
        names = [str(r) for r in pcsc_readers()]
    except (SmartcardException, BaseSCardException) as exc:
        raise PcscError(f"PC/SC is not available (is pcscd running?): {exc}") from None
    return names[:READERS_MAX]


def pick_reader(wanted: str | None, *, index: int = 0) -> str:
    """The reader called ``wanted`` exactly, else the only one whose name contains it (case
    ignored); with no name, the ``index``-th reader pcscd lists (0: the card, 1: the PSAM)."""
    names = reader_names()
    if not names:
        raise PcscError("no PC/SC reader is connected")
    if wanted is None:
        if index >= len(names):
            raise PcscError(
                f"PC/SC reader #{index + 1} wanted, but pcscd lists only {len(names)}: "
                + ", ".join(names)
            )
        return names[index]
    if wanted in names:
        return wanted
    matches = [n for n in names if wanted.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PcscError(f"no PC/SC reader matches {wanted!r} (readers: {', '.join(names)})")
    raise PcscError(f"{wanted!r} matches several PC/SC readers: {', '.join(matches)}")


class PcscReader:
    """One card in one PC/SC reader. Keeps pyscard's CardRequest and card service referenced
    while connected (their destructors release the PC/SC context: pcsc.md)."""

    def __init__(self, reader_name: str) -> None:
        self.reader_name = reader_name
        self.name = f"pcsc:{reader_name}"
        self._request: Any = None
        self._service: Any = None
        self._connection: Any = None

    def wait_for_card(self, timeout_s: float) -> bytes:
        """Wait for a card and connect; returns its ATR. Raises CardGone on timeout. A connect
        that fails right after the card came (pcscd's poll race) is retried until the deadline.
        A card still connected from the last tap is reset (SCardReconnect, warm reset) instead:
        the same fresh state, without a new PC/SC context; a card swapped in between fails the
        reconnect (removed) and is waited for as new."""
        if self._connection is not None:
            try:
                self._connection.reconnect()
                return bytes(self._connection.getATR())
            except (SmartcardException, BaseSCardException):
                pass
        deadline = time.monotonic() + timeout_s
        while True:
            self.close()
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise CardGone(f"no card in {self.reader_name} after {timeout_s:g} s")
            try:
                self._request = CardRequest(timeout=remaining_s, readers=[self.reader_name])
                self._service = self._request.waitforcard()
                self._connection = self._service.connection
                self._connection.connect()
            except CardRequestTimeoutException:
                self.close()
                raise CardGone(f"no card in {self.reader_name} after {timeout_s:g} s") from None
            except (CardConnectionException, NoCardException):
                time.sleep(min(CONNECT_RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))
                continue
            except (SmartcardException, BaseSCardException) as exc:
                self.close()
                raise CardGone(f"{self.reader_name}: {exc}") from None
            return bytes(self._connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        if self._connection is None:
            raise CardGone(f"no card connected in {self.reader_name}")
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except (SmartcardException, BaseSCardException) as exc:
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
