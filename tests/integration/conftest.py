"""Fixtures for tests through a real pcscd with the vpcd reader (pcsc.md).

- ``pcscd`` (session): a pcscd of our own, started once, stopped at the end of the session
  (also on failure, Ctrl-C or SIGTERM). Yields the PcscdProcess (``.log_path`` for its log).
- ``serve_card`` (function): a factory ``serve_card(card, slot=0, wait_present=True)`` that
  serves a SmartCard on vpcd slot 0 or 1 in a background thread and returns the ServedCard;
  every card it served is stopped at teardown, and pcscd is seen to report it removed.
- ``pcsc_connect`` (function): a factory ``pcsc_connect(reader=READER_SLOT0)`` that waits with
  pyscard for the card and returns a connected CardSession; all are closed at teardown.

Any test using these fixtures is marked ``pcsc``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from card_applet_sim.adapters.pcscd_process import (
    PcscdBusyError,
    PcscdProcess,
    sigterm_as_keyboard_interrupt,
    write_vpcd_reader_config,
)
from card_applet_sim.ports import SmartCard
from tests.integration.pcsc_env import (
    CARD_WAIT_S,
    PORTS,
    READER_SLOT0,
    CardSession,
    PcscConnect,
    ServeCard,
    ServedCard,
    require_pcsc_stack,
    wait_for_card,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "pcscd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pcsc)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscdProcess]:
    require_pcsc_stack()
    workdir = tmp_path_factory.mktemp("pcscd")
    config_dir = workdir / "reader.conf.d"
    write_vpcd_reader_config(config_dir)
    process = PcscdProcess(
        config_dir, workdir / "pcscd.log", debug=os.environ.get("NFCPAY_PCSCD_DEBUG") == "1"
    )
    # SIGTERM (e.g. from `timeout` in make test) becomes KeyboardInterrupt, on which pytest
    # still runs fixture teardown; atexit and setpriv's pdeathsig are the further nets.
    with sigterm_as_keyboard_interrupt():
        try:
            process.start()
        except PcscdBusyError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield process
        finally:
            process.stop()


@pytest.fixture
def serve_card(pcscd: PcscdProcess) -> Iterator[ServeCard]:
    served: list[ServedCard] = []

    def _serve(card: SmartCard, *, slot: int = 0, wait_present: bool = True) -> ServedCard:
        one = ServedCard(card, port=PORTS[slot])
        served.append(one)
        one.start(wait_present_s=CARD_WAIT_S if wait_present else None)
        return one

    yield _serve
    failures: list[AssertionError] = []
    for one in reversed(served):
        try:
            one.stop()
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def pcsc_connect(pcscd: PcscdProcess) -> Iterator[PcscConnect]:
    sessions: list[CardSession] = []

    def _connect(reader: str = READER_SLOT0, *, timeout_s: float = CARD_WAIT_S) -> CardSession:
        session = wait_for_card(reader, timeout_s=timeout_s)
        sessions.append(session)
        return session

    yield _connect
    for session in reversed(sessions):
        session.close()
