"""Helpers for tests through a real pcscd with vpcd (pcsc.md): serve a SmartCard on a vpcd
slot in a background thread, wait for pcscd to see it, and hold a pyscard connection to it.

pyscard is imported lazily, so collecting tests/integration works without it (the ``pcscd``
fixture then skips, or fails under CI).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from typing import Any, Protocol

import pytest

from card_applet_sim.adapters import vpcd
from card_applet_sim.adapters.pcscd_process import missing_components
from card_applet_sim.ports import SmartCard

#: Reader names pcscd gives the two vpcd slots, and the TCP port vpcd listens on for each.
READER_SLOT0 = "Virtual PCD 00 00"
READER_SLOT1 = "Virtual PCD 00 01"
VPCD_PORT_SLOT0 = 35963
VPCD_PORT_SLOT1 = 35964
READERS = (READER_SLOT0, READER_SLOT1)
PORTS = (VPCD_PORT_SLOT0, VPCD_PORT_SLOT1)

#: Default limits on waiting for pcscd's view of a card to change. pcscd polls vpcd about
#: every 0.4 s, so a card appears or disappears within ~0.5 s; the margin is for slow CI.
CARD_WAIT_S = 5.0
#: How long a serve thread may take to end after its stop event is set.
SERVE_JOIN_S = 2.0
_POLL_S = 0.05


def require_pcsc_stack() -> None:
    """Skip when pcscd, the vpcd driver or pyscard is missing; fail instead when CI=true."""
    missing = missing_components()
    if importlib.util.find_spec("smartcard") is None:
        missing.append("pyscard (pip install -e '.[pcsc]')")
    if not missing:
        return
    reason = "PC/SC stack not installed: " + ", ".join(missing) + " (see make sysdeps)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; CI=true requires it", pytrace=False)
    pytest.skip(reason)


def reader_for_port(port: int) -> str:
    return READERS[PORTS.index(port)]


class ServeCard(Protocol):
    """Type of the ``serve_card`` fixture."""

    def __call__(
        self, card: SmartCard, *, slot: int = 0, wait_present: bool = True
    ) -> ServedCard: ...


class PcscConnect(Protocol):
    """Type of the ``pcsc_connect`` fixture."""

    def __call__(
        self, reader: str = READER_SLOT0, *, timeout_s: float = CARD_WAIT_S
    ) -> CardSession: ...


class ServedCard:
    """``vpcd.serve(card)`` on one vpcd slot, in a daemon thread, until ``stop``.

    ``connections`` counts connections made to vpcd; ``error`` holds the exception that ended
    the serve thread, if any (serve only ends by itself on VpcdUnreachableError or a bug).
    """

    def __init__(
        self,
        card: SmartCard,
        *,
        port: int = VPCD_PORT_SLOT0,
        connect_timeout_s: float | None = None,
    ) -> None:
        self.card = card
        self.port = port
        self.reader = reader_for_port(port)
        self.connect_timeout_s = connect_timeout_s
        self.connected = threading.Event()
        self.connections = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The last stop did not wait for pcscd to see the card removed.
        self._removal_pending = False

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self, *, wait_present_s: float | None = CARD_WAIT_S, after_removal: bool = True
    ) -> None:
        """Start serving; unless ``wait_present_s`` is None, wait until pcscd sees the card.

        A card served again within ~0.5 s of its last connection closing races pcscd's
        presence poll: pcscd may not notice the swap, and the first exchange with the new
        connection then fails with SCARD_E_TRANSACTION_FAILED (pcsc.md). So when the last
        ``stop`` did not wait for the removal, ``after_removal`` waits for it here first.
        """
        assert self._thread is None, "already serving"
        if self._removal_pending and after_removal:
            wait_for_presence(self.reader, present=False, timeout_s=CARD_WAIT_S)
        self._removal_pending = False
        self._stop.clear()
        self.connected.clear()
        self.error = None
        self._thread = threading.Thread(
            target=self._run, name=f"vpcd-serve-{self.port}", daemon=True
        )
        self._thread.start()
        if wait_present_s is not None:
            wait_for_presence(self.reader, present=True, timeout_s=wait_present_s)

    def stop(self, *, wait_removed_s: float | None = CARD_WAIT_S) -> None:
        """Stop serving (closes the vpcd connection: the card is taken out). Unless
        ``wait_removed_s`` is None, wait until pcscd sees the reader empty, so that a card
        served next on this slot does not race pcscd's presence poll (pcsc.md)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(SERVE_JOIN_S)
        if thread.is_alive():
            raise AssertionError(f"serve thread on port {self.port} did not stop in time")
        if wait_removed_s is None:
            self._removal_pending = True
        else:
            wait_for_presence(self.reader, present=False, timeout_s=wait_removed_s)

    def _on_connected(self) -> None:
        self.connections += 1
        self.connected.set()

    def _run(self) -> None:
        try:
            vpcd.serve(
                self.card,
                port=self.port,
                stop=self._stop,
                connect_timeout_s=self.connect_timeout_s,
                on_connected=self._on_connected,
            )
        except BaseException as exc:
            self.error = exc


def card_present(reader: str) -> bool:
    """What pcscd currently says about ``reader``: is a card in it?"""
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise RuntimeError(f"SCardEstablishContext: {scard.SCardGetErrorMessage(hresult)}")
    try:
        hresult, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
        )
        if hresult != scard.SCARD_S_SUCCESS:
            raise RuntimeError(f"SCardGetStatusChange: {scard.SCardGetErrorMessage(hresult)}")
        _name, event_state, _atr = states[0]
        return bool(event_state & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


def wait_for_presence(reader: str, *, present: bool, timeout_s: float = CARD_WAIT_S) -> None:
    """Poll pcscd until the reader holds a card (``present``) or is empty."""
    deadline = time.monotonic() + timeout_s
    while card_present(reader) != present:
        if time.monotonic() > deadline:
            state = "a card" if present else "no card"
            raise AssertionError(f"pcscd did not report {state} in {reader!r} within {timeout_s} s")
        time.sleep(_POLL_S)


class CardSession:
    """A connected pyscard card connection, with the CardRequest and card service that made it
    kept referenced (their destructors release the PC/SC context: pcsc.md)."""

    def __init__(self, request: Any, service: Any) -> None:
        self.request = request
        self.service = service
        self.connection: Any = service.connection

    @property
    def atr(self) -> bytes:
        return bytes(self.connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        """One command APDU; returns response data || SW1 SW2, like SmartCard.transmit."""
        data, sw1, sw2 = self.connection.transmit(list(apdu))
        return bytes([*data, sw1, sw2])

    def close(self) -> None:
        # The card may be gone already; the session is being thrown away either way.
        with contextlib.suppress(Exception):
            self.connection.disconnect()
        with contextlib.suppress(Exception):
            self.connection.release()
        with contextlib.suppress(Exception):
            self.request.pcsccardrequest.release()

    def __enter__(self) -> CardSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_card(reader: str = READER_SLOT0, *, timeout_s: float = CARD_WAIT_S) -> CardSession:
    """Wait with pyscard's CardRequest for a card in ``reader`` and connect to it.

    A card served again within ~0.5 s of its last connection closing can race pcscd's presence
    poll (the connect fails or sees the old state), so connecting is retried until the deadline.
    """
    from smartcard.CardRequest import CardRequest
    from smartcard.Exceptions import (
        CardConnectionException,
        CardRequestTimeoutException,
        NoCardException,
    )

    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            raise AssertionError(
                f"no usable card in {reader!r} within {timeout_s} s (last error: {last_error!r})"
            )
        request = CardRequest(timeout=remaining_s, readers=[reader])
        service: Any = None
        try:
            service = request.waitforcard()
            service.connection.connect()
        except (CardConnectionException, CardRequestTimeoutException, NoCardException) as exc:
            last_error = exc
            if service is not None:
                CardSession(request, service).close()
            else:
                with contextlib.suppress(Exception):
                    request.pcsccardrequest.release()
            time.sleep(_POLL_S)
            continue
        return CardSession(request, service)
