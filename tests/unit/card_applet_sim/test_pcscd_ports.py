"""pcscd is only started once nothing listens on vpcd's ports (else its reader silently fails
to appear); a port merely in TIME_WAIT does not count, as vpcd binds with SO_REUSEADDR."""

from __future__ import annotations

import socket
import threading

import pytest

from card_applet_sim.adapters.pcscd_process import PcscdError, _wait_for_free_ports


def test_a_listener_on_the_port_is_waited_for_then_reported() -> None:
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(PcscdError, match=f"port {port} stays busy"):
            _wait_for_free_ports((port,), 0.6)


def test_the_wait_ends_when_the_listener_goes() -> None:
    listener = socket.create_server(("0.0.0.0", 0))
    port = listener.getsockname()[1]
    threading.Timer(0.3, listener.close).start()
    _wait_for_free_ports((port,), 5.0)


def test_time_wait_does_not_block() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its port goes to TIME_WAIT
        client.close()
    _wait_for_free_ports((port,), 0.5)
