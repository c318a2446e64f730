"""The host over real TCP on loopback, on SQLite and on PostgreSQL: terminals made of a
simulated SIM and PSAM talk ISO 8583 to an in-process ``IsoServer`` (host_protocol.md)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acquiring import bootstrap
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import ServerLimits, ServerThread
from acquiring.domain.model import ReversalReason as StoredReversalReason
from acquiring.domain.model import TacVerdict, TxnKind
from acquiring.ports import TxnQuery
from paycore import issuer_keys
from paycore.iso8583.fields import (
    EpurseData,
    ReversalReason,
    SettlementTotals,
    decode_settlement_totals,
    encode_epurse_data,
)
from paycore.iso8583.frame import (
    FRAME_LENGTH_MAX,
    Header,
    Tpdu,
    decode_frame,
    encode_frame,
)
from paycore.iso8583.mac import encode_signed_message
from paycore.iso8583.message import FieldValue, decode_message, encode_message
from pos_terminal.adapters import host_link
from pos_terminal.adapters.host_link import HostLink
from pos_terminal.domain import card_flows
from tests.integration.acquiring.host_env import (
    MID,
    PosTerminal,
    TerminalSetup,
    counts,
    database_url,
    now_local,
    register,
    setups,
)
from tests.integration.databases import DB_PARAMS

KEYS = issuer_keys.generate(os.urandom)


class Running:
    def __init__(self, store: SqlStore, server: ServerThread, terminals: list[TerminalSetup]):
        self.store = store
        self.server = server
        self.terminals = terminals

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)

    def pos(self, index: int = 0, balance_fen: int = 0) -> PosTerminal:
        return PosTerminal(self.terminals[index], KEYS, self.address, balance_fen=balance_fen)


def _running(db_url: str, count: int, limits: ServerLimits | None = None) -> Iterator[Running]:
    store = SqlStore.open(db_url, KeyVault(os.urandom(32)))
    terminals = setups(count)
    register(store, KEYS, terminals)
    server = bootstrap.start_in_thread(store, db_url, limits=limits)
    try:
        yield Running(store, server, terminals)
    finally:
        server.stop()
        store.close()


@pytest.fixture(params=DB_PARAMS)
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    with database_url(request.param, tmp_path) as url:
        yield from _running(url, 50)


@pytest.fixture
def sqlite_host(tmp_path: Path) -> Iterator[Running]:
    """SQLite only, with a short read timeout for the half-frame tests."""
    limits = ServerLimits(read_timeout_s=0.5, workers=1)
    yield from _running(f"sqlite:///{tmp_path / 'capture.db'}", 2, limits)


def test_a_day_at_the_terminal(host: Running) -> None:
    """Sign-on, echo, load, purchase, refund, a reversed purchase, settlement, batch upload:
    the card's balance, the store and the 0510 agree."""
    pos = host.pos()
    link = pos.link.connect()
    assert link.sign_on().approved and link.mak is not None and link.batch_no == 1
    assert link.echo().approved

    loaded = host_link.online_load(link, pos.sim, 10_000, pos.psam.terminal_id)
    assert loaded.auth.approved and loaded.completion is not None and loaded.completion.approved
    assert pos.balance_fen() == 10_000  # credited with the host's MAC2

    bought = host_link.online_purchase(link, pos.sim, pos.psam, 1_250, now_local())
    assert bought.completion is not None and bought.completion.approved
    assert pos.balance_fen() == 8_750

    refunded = host_link.online_refund(link, pos.sim, bought.auth, 250, pos.psam.terminal_id)
    assert refunded.completion is not None and refunded.completion.approved
    assert pos.balance_fen() == 9_000

    started = card_flows.begin_purchase(pos.sim, pos.psam, 300)
    auth = link.authorise_purchase(started)
    assert auth.approved
    reversed_ = link.reverse(auth, ReversalReason.OTHER)  # the DEBIT did not happen
    assert reversed_.approved and reversed_.text(15) == auth.business_date_mmdd
    assert pos.balance_fen() == 9_000

    never_sent = link.purchase_request(card_flows.begin_purchase(pos.sim, pos.psam, 100))
    assert link.reverse(never_sent, ReversalReason.NO_ANSWER).code == "25"

    terminal_totals = SettlementTotals(1_250, 1, 250, 1, 10_000, 1)
    settled = link.settle(terminal_totals)
    assert settled.approved
    assert decode_settlement_totals(settled.text(48)).balanced
    assert link.batch_no == 2

    assert bought.card is not None and isinstance(bought.card, card_flows.PurchaseDone)
    upload = link.upload(bought.auth, _completion_58(link, bought), batch_no=1)
    assert upload.approved
    assert link.end_upload(1, batch_no=1).approved

    with host.store.admin(readonly=True) as uow:
        page = uow.search_transactions(TxnQuery(terminal_id=pos.setup.terminal_id))
    kinds = [(i.authorisation.kind, i.tac_verdict, i.reversal_reason) for i in page.items]
    assert kinds == [
        (TxnKind.LOAD, TacVerdict.OK, None),
        (TxnKind.PURCHASE, TacVerdict.OK, None),
        (TxnKind.REFUND, TacVerdict.OK, None),
        (TxnKind.PURCHASE, None, StoredReversalReason.OTHER),
    ]
    assert counts(host.store)["batch_uploads"] == 1
    assert link.sign_off().approved
    link.close()


def _completion_58(link: HostLink, result: host_link.OnlineResult) -> bytes:
    """Field 58 of the purchase's 0220, as the terminal kept it for the batch upload."""
    done = result.card
    assert isinstance(done, card_flows.PurchaseDone)
    return encode_epurse_data(
        EpurseData(
            asn=done.asn,
            card_counter=done.counter,
            transaction_type=0x06,
            psam_terminal_id=bytes.fromhex("001122330001"),
            terminal_serial=done.terminal_serial,
            date_time_bcd=done.date_bcd + done.time_bcd,
            tac=done.tac,
        )
    )


def test_fifty_terminals_at_once(host: Running) -> None:
    """50 connections in parallel, each a load and three purchases with completions."""
    errors: list[BaseException] = []
    terminals = [host.pos(i) for i in range(50)]
    barrier = threading.Barrier(len(terminals))

    def work(pos: PosTerminal) -> None:
        try:
            link = pos.link.connect()
            barrier.wait(timeout=30)
            assert link.sign_on().approved
            loaded = host_link.online_load(link, pos.sim, 5_000, pos.psam.terminal_id)
            assert loaded.completion is not None and loaded.completion.approved
            for amount in (100, 200, 300):
                done = host_link.online_purchase(link, pos.sim, pos.psam, amount, now_local())
                assert done.completion is not None and done.completion.approved, done.auth.code
            assert pos.balance_fen() == 4_400
            link.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(pos,)) for pos in terminals]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed_s = time.perf_counter() - started
    assert not errors, errors[:3]
    stored = counts(host.store)
    assert stored["authorisations"] == stored["completions"] == 50 * 4
    print(f"50 terminals, 450 exchanges in {elapsed_s:.2f} s")


# --- the wire: TPDU, header, framing limits ---------------------------------------------------


def _connect(running: Running) -> socket.socket:
    sock = socket.create_connection(running.address, timeout=5)
    sock.settimeout(5)
    return sock


def _read_frame(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 2:
        chunk = sock.recv(2 - len(data))
        assert chunk, "connection closed"
        data += chunk
    length = int.from_bytes(data, "big")
    while len(data) < 2 + length:
        chunk = sock.recv(2 + length - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_tpdu_is_swapped_and_sign_on_again_is_in_the_header(sqlite_host: Running) -> None:
    t = sqlite_host.terminals[0]
    sign_on = encode_message(
        "0800", {11: "000001", 41: t.terminal_id, 42: MID, 60: "00000001004", 63: "01"}
    )
    sock = _connect(sqlite_host)
    sock.sendall(encode_frame(Tpdu(0x0003, 0x0777), Header(status=1), sign_on))
    frame = decode_frame(_read_frame(sock))
    assert frame.tpdu == Tpdu(0x0777, 0x0003)
    assert frame.header.status == 1 and not frame.header.sign_on_again
    epurse = EpurseData(
        asn=bytes.fromhex(t.asn), balance_before_fen=100, card_counter=1, key_version=1,
        alg_id=0, transaction_type=0x06, psam_terminal_id=t.psam_terminal_id,
    )  # fmt: skip
    fields: dict[int, FieldValue] = {
        2: t.asn, 3: "000000", 4: "000000000100", 11: "000002", 22: "962", 25: "91",
        41: t.terminal_id, 42: MID, 49: "156", 58: encode_epurse_data(epurse),
        60: "22000001000",
    }  # fmt: skip
    wrong_mak = encode_signed_message(bytes(16), "0200", fields)
    sock.sendall(encode_frame(Tpdu(0x0003, 0x0777), Header(), wrong_mak))
    frame = decode_frame(_read_frame(sock))
    assert decode_message(frame.message).fields[39] == "A0"
    assert frame.header.sign_on_again
    sock.close()


def test_pipelined_requests_are_answered_in_order(sqlite_host: Running) -> None:
    t = sqlite_host.terminals[0]
    frames = b"".join(
        encode_frame(
            Tpdu(0, 1),
            Header(),
            encode_message(
                "0800",
                {11: f"{n:06d}", 41: t.terminal_id, 42: MID, 60: "00000001004", 63: "01"},
            ),
        )
        for n in range(1, 11)
    )
    sock = _connect(sqlite_host)
    sock.sendall(frames)
    stans = [decode_message(decode_frame(_read_frame(sock)).message).fields[11] for _ in range(10)]
    assert stans == [f"{n:06d}" for n in range(1, 11)]
    sock.close()


def test_half_frame_times_out_and_closes_only_that_connection(sqlite_host: Running) -> None:
    slow = _connect(sqlite_host)
    slow.sendall(b"\x00\x40" + bytes(10))  # 64 bytes announced, 10 sent
    pos = sqlite_host.pos(1)
    link = pos.link.connect()
    assert link.sign_on().approved
    time.sleep(0.8)
    assert _closed(slow)
    assert link.echo().approved  # the other connection is untouched
    link.close()


@pytest.mark.parametrize(
    "head",
    [
        (FRAME_LENGTH_MAX + 1).to_bytes(2, "big"),  # over 2,048
        b"\x00\x05" + bytes(5),  # shorter than TPDU + header
        b"\x00\x0b" + b"\x61" + bytes(4) + bytes.fromhex("603100310000"),  # not a TPDU
        b"\x00\x0b" + b"\x60" + bytes(4) + bytes.fromhex("993100310000"),  # not our header
    ],
)
def test_broken_frames_close_the_connection(sqlite_host: Running, head: bytes) -> None:
    sock = _connect(sqlite_host)
    sock.sendall(head)
    assert _closed(sock)
    link = sqlite_host.pos().link.connect()
    assert link.sign_on().approved
    link.close()


def test_a_frame_of_garbage_with_an_unknown_mti_closes(sqlite_host: Running) -> None:
    sock = _connect(sqlite_host)
    sock.sendall(encode_frame(Tpdu(0, 1), Header(), bytes.fromhex("0100") + bytes(8)))
    assert _closed(sock)


def test_stop_closes_idle_connections(tmp_path: Path) -> None:
    runs = _running(f"sqlite:///{tmp_path / 'capture.db'}", 1)
    running = next(runs)
    sock = _connect(running)
    deadline = time.monotonic() + 5
    while running.server.server.counts["connections"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # accepted by the kernel is not yet accepted by the server
    running.server.stop()
    assert _closed(sock)
    for _ in runs:  # pragma: no cover - finishes the generator (stops, closes the store)
        pass
