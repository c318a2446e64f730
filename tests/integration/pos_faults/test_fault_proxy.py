"""The fault proxy itself, against a tiny upstream that answers every request with its
response MTI, the same STAN and a MACed field 39 = 00, and counts what it received."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from paycore.iso8583.fields import response_mti
from paycore.iso8583.frame import Header, Tpdu, decode_frame, encode_frame
from paycore.iso8583.mac import encode_signed_message, verify_message_mac
from paycore.iso8583.message import decode_message
from tests.integration.pos_faults.fault_proxy import Fault, FaultProxy, read_frame

MAK = bytes.fromhex("55036372B17543ECB173730768B8D6C4")
TPDU = Tpdu(0x0000, 0x0001)


class Upstream:
    """Answers each frame in order; ``received`` lists the STANs it saw."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.received: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.listener.getsockname()[1])

    def _run(self) -> None:
        conns: list[threading.Thread] = []
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            t.start()
            conns.append(t)
        for t in conns:
            t.join(2)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.05)
        with sock:
            while True:
                try:
                    raw = read_frame(sock, self.stop)
                except Exception:
                    return
                frame = decode_frame(raw)
                request = decode_message(frame.message)
                stan = str(request.fields[11])
                self.received.append(stan)
                reply = encode_signed_message(MAK, response_mti(request.mti), {11: stan, 39: "00"})
                sock.sendall(encode_frame(frame.tpdu.swapped(), Header(), reply))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.listener.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.address) as p:
        yield p


def request(stan: int, mti: str = "0200") -> bytes:
    message = encode_signed_message(MAK, mti, {11: f"{stan:06d}", 41: "T0000001"})
    return encode_frame(TPDU, Header(), message)


def connect(proxy: FaultProxy, timeout_s: float = 0.5) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


def receive(sock: socket.socket) -> tuple[str, str, bool]:
    """(MTI, STAN, MAC ok) of the next frame."""
    frame = decode_frame(read_frame(sock, threading.Event(), time.monotonic() + 2))
    message = decode_message(frame.message)
    return message.mti, str(message.fields[11]), verify_message_mac(MAK, frame.message)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait_until(condition: object, what: str) -> None:
    """Polls a callable for up to 2 s (a wait for another thread, not a timed assertion)."""
    assert callable(condition)
    for _ in range(200):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_passes_requests_and_responses_through_unchanged(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    with connect(proxy) as sock:
        for stan in (1, 2, 3):
            sock.sendall(request(stan))
            assert receive(sock) == ("0210", f"{stan:06d}", True)
    assert upstream.received == ["000001", "000002", "000003"]
    assert [str(s) for s in proxy.requests()] == [
        "0200 STAN 000001",
        "0200 STAN 000002",
        "0200 STAN 000003",
    ]
    assert proxy.faults_applied() == []


def test_drop_before_closes_without_forwarding(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.inject("0200", Fault.DROP_BEFORE)
    with connect(proxy) as sock:
        sock.sendall(request(1))
        assert closed_by_peer(sock)
    assert upstream.received == []
    with connect(proxy) as sock:  # consumed: the next request passes
        sock.sendall(request(2))
        assert receive(sock) == ("0210", "000002", True)
    assert [e.fault for e in proxy.events] == [Fault.DROP_BEFORE, None]


def test_drop_after_forwards_then_closes(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.inject("0200", Fault.DROP_AFTER)
    with connect(proxy) as sock:
        sock.sendall(request(7))
        assert closed_by_peer(sock)
    assert upstream.received == ["000007"]
    assert proxy.events[0].response == "0210 00"


def test_swallow_keeps_the_connection_open_and_silent(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.inject("0200", Fault.SWALLOW)
    with connect(proxy, timeout_s=0.3) as sock:
        sock.sendall(request(1))
        assert not closed_by_peer(sock)  # timed out: nothing came, nothing closed
        sock.sendall(request(2))
        assert receive(sock) == ("0210", "000002", True)
    assert upstream.received == ["000001", "000002"]


def test_corrupt_mac_flips_field_64_only(proxy: FaultProxy) -> None:
    proxy.inject("0220", Fault.CORRUPT_MAC)
    with connect(proxy) as sock:
        sock.sendall(request(1, "0220"))
        assert receive(sock) == ("0230", "000001", False)
        sock.sendall(request(2, "0220"))
        assert receive(sock) == ("0230", "000002", True)


def test_duplicate_delivers_the_response_twice(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.inject("0400", Fault.DUPLICATE)
    with connect(proxy) as sock:
        sock.sendall(request(4, "0400"))
        assert receive(sock) == ("0410", "000004", True)
        assert receive(sock) == ("0410", "000004", True)
    assert upstream.received == ["000004"]


def test_delay_delivers_late(proxy: FaultProxy) -> None:
    proxy.inject("0200", Fault.DELAY, delay_s=0.4)
    with connect(proxy, timeout_s=0.1) as sock:
        sock.sendall(request(1))
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.settimeout(2)
        assert receive(sock) == ("0210", "000001", True)


def test_refuse_stops_listening_until_cleared(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.inject("0200", Fault.REFUSE)
    with connect(proxy) as sock:
        sock.sendall(request(1))
        assert closed_by_peer(sock)
    wait_until(proxy.faults_applied, "the REFUSE applied")
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.clear()
    with connect(proxy) as sock:
        sock.sendall(request(2))
        assert receive(sock) == ("0210", "000002", True)
    assert upstream.received == ["000002"]


def test_faults_match_on_mti_and_predicate_and_count(proxy: FaultProxy) -> None:
    proxy.inject("0200", Fault.DUPLICATE, times=2, when=lambda seen: seen.stan == "000009")
    with connect(proxy) as sock:
        sock.sendall(request(8))
        assert receive(sock) == ("0210", "000008", True)
        for _ in range(2):
            sock.sendall(request(9))
            assert receive(sock) == ("0210", "000009", True)
            assert receive(sock) == ("0210", "000009", True)
        sock.sendall(request(9))
        assert receive(sock) == ("0210", "000009", True)
    assert proxy.pending_faults == 0
    assert [e.fault for e in proxy.events] == [None, Fault.DUPLICATE, Fault.DUPLICATE, None]
    assert "#1 0200 STAN 000009 [duplicate] -> 0210 00" in proxy.transcript()


def test_bad_scripts_are_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="times"):
        proxy.inject("0200", Fault.SWALLOW, times=0)
    with pytest.raises(ValueError, match="delay_s"):
        proxy.inject("0200", Fault.DELAY)
