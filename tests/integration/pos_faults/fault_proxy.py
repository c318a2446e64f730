"""A fault-injecting TCP proxy on loopback between a POS terminal and the acquiring host,
frame-aware (host_protocol.md §1: 2-byte big-endian length prefix), scriptable per request.

Each terminal connection gets its own upstream connection to the host. Requests are answered
in order (§1), so the proxy handles one request at a time per connection: read a frame from the
terminal, apply the fault scripted for it (if any), forward it, read the host's one response,
apply the fault again on the way back.

Faults (``Fault``), each consumed by the first request it matches:
- ``REFUSE``: the request is not forwarded, the connection is closed and the proxy stops
  listening: the terminal's reconnects are refused until ``clear()`` (or ``listen()``).
- ``DROP_BEFORE``: the connection is closed; the host never sees the request.
- ``DROP_AFTER``: the host gets the request and answers; the connection is closed before the
  answer reaches the terminal.
- ``SWALLOW``: as DROP_AFTER but the connection stays open: the terminal waits for its timeout.
- ``CORRUPT_MAC``: one byte of the response's field 64 is flipped (a response without field 64
  is delivered unchanged, and the event says so).
- ``DUPLICATE``: the response is delivered twice.
- ``DELAY``: the response is delivered after ``delay_s``.

``events`` records what the proxy saw and did, for readable failure messages (``transcript``).
Threads, not asyncio: the terminals under test are blocking clients and the proxy must not
share an event loop with the host it fronts.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from paycore.errors import DecodeError
from paycore.iso8583.frame import (
    FRAME_LENGTH_MAX,
    HEADER_BYTES,
    LENGTH_PREFIX_BYTES,
    TPDU_BYTES,
)
from paycore.iso8583.message import Message, decode_message

#: How long the proxy waits for the host's response to a forwarded request.
UPSTREAM_TIMEOUT_S: Final = 10.0
#: How often blocking loops look at the stop flag.
POLL_S: Final = 0.05
#: Bytes from the start of a frame to its MTI.
MESSAGE_OFFSET: Final = LENGTH_PREFIX_BYTES + TPDU_BYTES + HEADER_BYTES
MAC_BYTES: Final = 8
#: Limits (style.md): faults queued, events kept.
FAULTS_MAX: Final = 64
EVENTS_MAX: Final = 10_000


class Fault(enum.Enum):
    REFUSE = "refuse"
    DROP_BEFORE = "drop-before"
    DROP_AFTER = "drop-after"
    SWALLOW = "swallow"
    CORRUPT_MAC = "corrupt-mac"
    DUPLICATE = "duplicate"
    DELAY = "delay"


#: Faults applied before the request is forwarded (the host never sees it).
BEFORE_FORWARDING: Final = frozenset({Fault.REFUSE, Fault.DROP_BEFORE})


@dataclass(frozen=True, slots=True)
class Seen:
    """What the proxy knows of one request: MTI, STAN, processing code, 60.3 network code."""

    mti: str
    stan: str = ""
    processing_code: str = ""
    network_code: str = ""

    def __str__(self) -> str:
        parts = [self.mti]
        if self.stan:
            parts.append(f"STAN {self.stan}")
        if self.processing_code:
            parts.append(f"code {self.processing_code}")
        if self.network_code:
            parts.append(f"60.3 {self.network_code}")
        return " ".join(parts)


Predicate = Callable[[Seen], bool]


@dataclass(slots=True)
class _Scripted:
    mti: str
    fault: Fault
    times_left: int
    delay_s: float
    when: Predicate | None

    def matches(self, seen: Seen) -> bool:
        return seen.mti == self.mti and (self.when is None or self.when(seen))


@dataclass(frozen=True, slots=True)
class Event:
    connection: int
    request: Seen
    fault: Fault | None
    response: str = ""  # the response's MTI and field 39, or what happened instead
    note: str = ""

    def __str__(self) -> str:
        fault = f" [{self.fault.value}]" if self.fault else ""
        response = f" -> {self.response}" if self.response else ""
        note = f" ({self.note})" if self.note else ""
        return f"#{self.connection} {self.request}{fault}{response}{note}"


def message_of(frame: bytes) -> Message | None:
    try:
        return decode_message(frame[MESSAGE_OFFSET:])
    except DecodeError:
        return None


def seen_of(frame: bytes) -> Seen:
    """The request's key facts; a message that does not decode still shows its MTI bytes."""
    message = message_of(frame)
    if message is None:
        return Seen(frame[MESSAGE_OFFSET : MESSAGE_OFFSET + 2].hex() or "????")
    f60 = message.fields.get(60)
    network = f60[8:11] if isinstance(f60, str) and len(f60) >= 11 else ""
    stan, code = message.fields.get(11), message.fields.get(3)
    return Seen(
        message.mti,
        stan if isinstance(stan, str) else "",
        code if isinstance(code, str) else "",
        network,
    )


def response_summary(frame: bytes) -> str:
    message = message_of(frame)
    if message is None:
        return "undecodable response"
    code = message.fields.get(39)
    return f"{message.mti} {code if isinstance(code, str) else '--'}"


def has_mac(frame: bytes) -> bool:
    """Bit 64 (the last bit of the primary bitmap) is set: field 64 is the last 8 bytes."""
    bitmap_end = MESSAGE_OFFSET + 2 + 8
    return len(frame) >= bitmap_end + MAC_BYTES and frame[bitmap_end - 1] & 0x01 == 1


def corrupt_mac(frame: bytes) -> bytes:
    """The frame with the last byte of field 64 changed (still an ASCII hex digit's
    neighbour, so the message decodes and only the MAC check fails)."""
    assert has_mac(frame)
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


class _ClosedError(Exception):
    """The peer went away, the proxy is stopping, or the host did not answer in time."""


def _read_exactly(
    sock: socket.socket, count: int, stop: threading.Event, deadline: float | None
) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left:
        if stop.is_set():
            raise _ClosedError("proxy stopping")
        if deadline is not None and time.monotonic() > deadline:
            raise _ClosedError("no response in time")
        try:
            chunk = sock.recv(left)
        except TimeoutError:
            continue
        except OSError as exc:
            raise _ClosedError(str(exc)) from None
        if not chunk:
            raise _ClosedError("peer closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket, stop: threading.Event, deadline: float | None = None) -> bytes:
    """One whole frame, length prefix included; a length over the limit closes the
    connection (as the host would, §1)."""
    prefix = _read_exactly(sock, LENGTH_PREFIX_BYTES, stop, deadline)
    length = int.from_bytes(prefix, "big")
    if length > FRAME_LENGTH_MAX:
        raise _ClosedError(f"{length}-byte frame announced")
    return prefix + _read_exactly(sock, length, stop, deadline)


def _close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class FaultProxy:
    """``FaultProxy(("127.0.0.1", host_port)).start()``; the terminal connects to
    ``proxy.address``. Use as a context manager or call ``stop()``."""

    def __init__(self, upstream: tuple[str, int], *, listen_host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._listen_host = listen_host
        self._port = 0
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._scripted: list[_Scripted] = []
        self._events: list[Event] = []
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._connections = 0
        self._accept_thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self._listen_host, self._port)

    def start(self) -> FaultProxy:
        self.listen()
        return self

    def listen(self) -> None:
        """(Re)open the listening socket on the same port."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._listen_host, self._port))
            listener.listen(16)
            listener.settimeout(POLL_S)
            self._port = listener.getsockname()[1]
            self._listener = listener
            thread = threading.Thread(
                target=self._accept_loop, args=(listener,), name="fault-proxy-accept", daemon=True
            )
            self._accept_thread = thread
        thread.start()

    def refuse(self) -> None:
        """Stop listening: connects to ``address`` are refused (open connections stay)."""
        with self._lock:
            listener, self._listener = self._listener, None
            thread, self._accept_thread = self._accept_thread, None
        if listener is not None:
            listener.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def drop_connections(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    def stop(self) -> None:
        self._stop.set()
        self.refuse()
        self.drop_connections()
        for thread in list(self._threads):
            thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start() if self._listener is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- script -------------------------------------------------------------------------------

    def inject(
        self,
        mti: str,
        fault: Fault,
        *,
        times: int = 1,
        delay_s: float = 0.0,
        when: Predicate | None = None,
    ) -> None:
        """The next ``times`` requests with ``mti`` (and ``when(seen)`` true) get ``fault``."""
        if not 1 <= times <= 100:
            raise ValueError("times must be 1..100")
        if fault is Fault.DELAY and not 0 < delay_s <= 30:
            raise ValueError("a DELAY needs delay_s in (0, 30]")
        with self._lock:
            if len(self._scripted) >= FAULTS_MAX:
                raise ValueError(f"at most {FAULTS_MAX} faults queued")
            self._scripted.append(_Scripted(mti, fault, times, delay_s, when))

    def clear(self) -> None:
        """No more faults; listen again if a REFUSE stopped it."""
        with self._lock:
            self._scripted.clear()
        if not self._stop.is_set():
            self.listen()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(s.times_left for s in self._scripted)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def faults_applied(self) -> list[Event]:
        return [e for e in self.events if e.fault is not None]

    def requests(self, mti: str | None = None) -> list[Seen]:
        return [e.request for e in self.events if mti is None or e.request.mti == mti]

    def transcript(self) -> str:
        return "\n".join(str(e) for e in self.events) or "(no requests)"

    def _take(self, seen: Seen) -> _Scripted | None:
        with self._lock:
            for scripted in self._scripted:
                if scripted.matches(seen):
                    scripted.times_left -= 1
                    if scripted.times_left == 0:
                        self._scripted.remove(scripted)
                    return scripted
        return None

    def _record(self, event: Event) -> None:
        with self._lock:
            if len(self._events) < EVENTS_MAX:
                self._events.append(event)

    # --- connections ----------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by refuse() / stop()
            with self._lock:
                self._connections += 1
                number = self._connections
                self._sockets.add(client)
            thread = threading.Thread(
                target=self._serve, args=(client, number), name=f"fault-proxy-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket, number: int) -> None:
        upstream: socket.socket | None = None
        client.settimeout(POLL_S)
        try:
            while True:
                try:
                    request = read_frame(client, self._stop)
                except _ClosedError:
                    return
                seen = seen_of(request)
                scripted = self._take(seen)
                fault = scripted.fault if scripted else None
                if fault in BEFORE_FORWARDING:
                    self._record(Event(number, seen, fault, note="not forwarded"))
                    if fault is Fault.REFUSE:
                        self.refuse()
                    return
                try:
                    if upstream is None:
                        upstream = socket.create_connection(self.upstream, UPSTREAM_TIMEOUT_S)
                        upstream.settimeout(POLL_S)
                        with self._lock:
                            self._sockets.add(upstream)
                    upstream.sendall(request)
                    response = self._read_response(upstream)
                except (_ClosedError, OSError) as exc:
                    self._record(Event(number, seen, fault, note=f"host: {exc}"))
                    return
                summary = response_summary(response)
                if fault in (Fault.DROP_AFTER, Fault.SWALLOW):
                    self._record(Event(number, seen, fault, summary, "not delivered"))
                    if fault is Fault.DROP_AFTER:
                        return
                    continue
                note = ""
                if fault is Fault.CORRUPT_MAC:
                    if has_mac(response):
                        response = corrupt_mac(response)
                    else:
                        note = "no field 64: delivered unchanged"
                self._record(Event(number, seen, fault, summary, note))
                if fault is Fault.DELAY:
                    assert scripted is not None
                    time.sleep(scripted.delay_s)
                copies = 2 if fault is Fault.DUPLICATE else 1
                try:
                    for _ in range(copies):
                        client.sendall(response)
                except OSError:
                    return
        finally:
            with self._lock:
                self._sockets.discard(client)
                if upstream is not None:
                    self._sockets.discard(upstream)
            _close(client)
            _close(upstream)

    def _read_response(self, upstream: socket.socket) -> bytes:
        return read_frame(upstream, self._stop, time.monotonic() + UPSTREAM_TIMEOUT_S)
