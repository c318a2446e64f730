"""At least 50,000 malformed frames over real TCP (issue 3, "Bad input, faults"): bad lengths,
truncated fields, bad BCD, unknown MTIs, oversized fields, missing fields, bad field values,
garbage. Each gets response code 30 or a closed connection; the server keeps answering another
terminal meanwhile and a good sign-on afterwards; nothing is stored.

Every malformed message is built from a valid request of §5 by a mutation that breaks it by
construction (and the pure decoder confirms it cannot be handled). Frames are pipelined, many
per connection: those answerable with 30 first, at most one connection-closing frame last.
SQLite only: the store is not involved (nothing may reach it)."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquiring import bootstrap
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.adapters.tcp_server import ServerLimits
from acquiring.service import Reply, decode_request
from paycore import issuer_keys
from paycore.iso8583.fields import (
    EpurseData,
    Field60,
    Field61,
    SettlementTotals,
    encode_batch_count,
    encode_epurse_data,
    encode_field60,
    encode_field61,
    encode_settlement_totals,
)
from paycore.iso8583.frame import FRAME_LENGTH_MAX, Header, Tpdu, decode_frame, encode_frame
from paycore.iso8583.message import REQUESTS, FieldValue, classify_request, decode_message
from paycore.iso8583.message import encode_message as encode
from paycore.iso8583.spec import FIELD_FORMATS, FieldKind, Prefix
from pos_terminal.adapters.host_link import HostLink
from tests.integration.acquiring.host_env import (
    MID,
    counts,
    register,
    setups,
    terminal_rows,
)

FRAMES_MIN = 50_000
BATCH = 50
EXAMPLES = FRAMES_MIN // BATCH + 20
KEYS = issuer_keys.generate(os.urandom)
TERMINALS = setups(2)
T = TERMINALS[0]
TPDU = Tpdu(0x0000, 0x0001)


def _f60(type_code: str, network: str = "000") -> str:
    return encode_field60(Field60(type_code, 1, network))


def _templates() -> list[tuple[str, dict[int, FieldValue]]]:
    asn = bytes.fromhex(T.asn)
    auth = EpurseData(
        asn=asn, balance_before_fen=5_000, card_counter=1, key_version=1, alg_id=0,
        transaction_type=0x06, psam_terminal_id=T.psam_terminal_id,
    )  # fmt: skip
    load = EpurseData(
        asn=asn, balance_before_fen=5_000, card_counter=1, key_version=1, alg_id=0,
        transaction_type=0x02, psam_terminal_id=T.psam_terminal_id, mac1=bytes(4),
        card_random=bytes(4),
    )  # fmt: skip
    done = EpurseData(
        asn=asn, card_counter=1, transaction_type=0x06, psam_terminal_id=T.psam_terminal_id,
        terminal_serial=9, date_time_bcd=bytes.fromhex("20260301120000"), tac=bytes(4),
    )  # fmt: skip
    base: dict[int, FieldValue] = {
        2: T.asn, 3: "000000", 4: "000000001000", 11: "000007", 22: "962", 25: "91",
        41: T.terminal_id, 42: MID, 49: "156", 58: encode_epurse_data(auth), 60: _f60("22"),
        64: bytes(8),
    }  # fmt: skip
    loading = {**base, 3: "600000", 58: encode_epurse_data(load), 60: _f60("45")}
    refunding = {**loading, 3: "200000", 60: _f60("25"), 37: "000000000001",
                 61: encode_field61(Field61(1, 6, "0301"))}  # fmt: skip
    completing = {**base, 37: "000000000001", 58: encode_epurse_data(done)}
    del completing[22]
    totals = encode_settlement_totals(SettlementTotals(1_000, 1, 0, 0, 0, 0))
    management = {11: "000008", 41: T.terminal_id, 42: MID}
    upload = {n: v for n, v in completing.items() if n not in (64,)}
    return [
        ("0800", {**management, 60: _f60("00", "004"), 63: "01"}),
        ("0820", {41: T.terminal_id, 42: MID, 60: _f60("00", "301")}),
        ("0820", {**management, 60: _f60("00", "002")}),
        ("0200", base),
        ("0200", loading),
        ("0200", refunding),
        ("0220", completing),
        ("0400", {**base, 39: "98"}),
        ("0500", {**management, 48: totals, 49: "156", 60: _f60("00", "201"), 63: "01"}),
        ("0320", {**upload, 60: _f60("00", "201")}),
        ("0320", {**management, 48: encode_batch_count(1), 60: _f60("00", "202")}),
    ]


TEMPLATES = _templates()
ENCODED = [encode(mti, fields) for mti, fields in TEMPLATES]

#: Field changes that make a valid request a format error (30), by field present.
BAD_VALUES: list[tuple[int, FieldValue]] = [
    (3, "123456"), (25, "00"), (49, "840"), (11, "000000"), (60, "22000000000"),
    (60, "00000001999"), (41, "T*000001"), (42, "8983100489 0001"), (2, "8888000000000000"),
    (39, "55"), (37, "00000000 001"), (61, "00000100000"), (48, "0" * 61), (22, "96"),
    (58, b"\xdf\x01\x08" + bytes(8)), (58, b"\xdf\x01\x09" + bytes(8)), (58, b""),
]  # fmt: skip


@functools.cache
def _offsets(template: int) -> dict[int, tuple[int, int]]:
    """Where each field of a template starts in its encoding, and its length prefix size."""
    mti, fields = TEMPLATES[template]
    return {
        number: (
            len(encode(mti, {n: v for n, v in fields.items() if n < number})),
            int(FIELD_FORMATS[number].prefix),
        )
        for number in fields
    }


def _offset(mti: str, fields: dict[int, FieldValue], number: int) -> tuple[int, int]:
    return _offsets(next(i for i, t in enumerate(TEMPLATES) if t[1] is fields))[number]


def _encoded(mti: str, fields: dict[int, FieldValue]) -> bytes:
    return ENCODED[next(i for i, t in enumerate(TEMPLATES) if t[1] is fields)]


def _value_broken(mti: str, fields: dict[int, FieldValue], pick: int) -> bytes:
    candidates = [(n, v) for n, v in BAD_VALUES if n in fields]
    number, value = candidates[pick % len(candidates)]
    try:
        return encode(mti, {**fields, number: value})
    except ValueError:  # not even encodable (22 = "96"): spoil the field's first byte
        start, prefix = _offset(mti, fields, number)
        raw = bytearray(_encoded(mti, fields))
        raw[start + prefix] = 0xFF
        return bytes(raw)


def _missing(mti: str, fields: dict[int, FieldValue], pick: int) -> bytes:
    shape = classify_request(mti, fields)
    number = sorted(shape.required)[pick % len(shape.required)]
    return encode(mti, {n: v for n, v in fields.items() if n != number})


def _bad_bcd(mti: str, fields: dict[int, FieldValue], pick: int) -> bytes:
    numeric = [n for n in fields if FIELD_FORMATS[n].kind is FieldKind.N]
    number = numeric[pick % len(numeric)]
    start, prefix = _offset(mti, fields, number)
    raw = bytearray(_encoded(mti, fields))
    where = start + prefix if pick % 3 else start  # the data, or a BCD length prefix
    if FIELD_FORMATS[number].prefix is Prefix.FIXED:
        where = start
    raw[where] = 0xA0 + pick % 0x60  # a high nibble A..F: never a digit
    return bytes(raw)


def _oversized(mti: str, fields: dict[int, FieldValue], pick: int) -> bytes:
    variable = [n for n in fields if FIELD_FORMATS[n].prefix is not Prefix.FIXED]
    number = variable[pick % len(variable)]
    fmt = FIELD_FORMATS[number]
    start, prefix = _offset(mti, fields, number)
    raw = bytearray(_encoded(mti, fields))
    too_long = fmt.length + 1 + pick % 50
    digits = f"{min(too_long, 10 ** (2 * prefix) - 1):0{2 * prefix}d}"
    raw[start : start + prefix] = bytes.fromhex(digits)
    return bytes(raw)


def _unknown_bit(mti: str, fields: dict[int, FieldValue], pick: int) -> bytes:
    absent = [n for n in range(1, 65) if n not in FIELD_FORMATS]
    number = absent[pick % len(absent)]
    raw = bytearray(_encoded(mti, fields))
    raw[2 + (number - 1) // 8] |= 0x80 >> ((number - 1) % 8)
    return bytes(raw)


def _truncated(mti: str, fields: dict[int, FieldValue], pick: int) -> bytes:
    raw = _encoded(mti, fields)
    return raw[: 2 + pick % (len(raw) - 2)]  # keeps the MTI: answerable


def _trailing(mti: str, fields: dict[int, FieldValue], pick: int, extra: bytes) -> bytes:
    return _encoded(mti, fields) + (extra or bytes([pick % 256]))


def _garbage(mti: str, pick: int, extra: bytes) -> bytes:
    return bytes.fromhex(mti) + extra + bytes([pick % 256])


@dataclass(frozen=True)
class FrameCase:
    frame: bytes
    closes: bool  # no response: the server closes the connection
    request_mti: str | None


ANSWERABLE = (
    _value_broken, _missing, _bad_bcd, _oversized, _unknown_bit, _truncated,
)  # fmt: skip


def build(template: int, mutation: int, pick: int, extra: bytes) -> FrameCase:
    """A frame whose message is malformed but has one of our request MTIs: answered 30."""
    mti, fields = TEMPLATES[template]
    if mutation < len(ANSWERABLE):
        message = ANSWERABLE[mutation](mti, fields, pick)
    elif mutation == len(ANSWERABLE):
        message = _trailing(mti, fields, pick, extra)
    else:  # garbage after a good MTI; the rare one that decodes is cut to its MTI
        message = _garbage(mti, pick, extra)
        if not isinstance(decode_request(message), Reply):
            message = message[:2]
    return FrameCase(encode_frame(TPDU, Header(), message), False, mti)


def build_closer(template: int, kind: int, pick: int, extra: bytes) -> FrameCase:
    """A frame that closes the connection: a broken frame, or an MTI not one of ours."""
    mti, fields = TEMPLATES[template]
    encoded = _encoded(mti, fields)
    if kind == 0:  # an MTI that is not a request of ours
        other = ("0100", "0210", "0810", "9999", "0000", "0420", "0600")[pick % 7]
        message = bytes.fromhex(other) + encoded[2:]
    elif kind == 1:  # an MTI that is not BCD
        message = bytes([0xA0 + pick % 0x50, pick % 256]) + encoded[2:]
    else:
        return _broken_frame(kind, pick, extra, mti, fields)
    return FrameCase(encode_frame(TPDU, Header(), message), True, None)


def _broken_frame(
    kind: int, pick: int, extra: bytes, mti: str, fields: dict[int, FieldValue]
) -> FrameCase:
    # Closers end a batch with nothing after the byte that decides (no unread bytes: the
    # server's close is a FIN, not a RST that could discard responses in flight).
    body = TPDU.encode() + Header().encode() + encode(mti, fields)
    if kind == 2:  # length over 2,048
        length = FRAME_LENGTH_MAX + 1 + pick
        return FrameCase(min(length, 0xFFFF).to_bytes(2, "big"), True, None)
    if kind == 3:  # shorter than TPDU + header
        return FrameCase((pick % 11).to_bytes(2, "big"), True, None)
    if kind == 4:  # not a TPDU
        bad = bytes([0x61 + pick % 0x9F]) + body[1:]
        return FrameCase(len(bad).to_bytes(2, "big") + bad, True, None)
    bad = body[:5] + bytes([0x61 + pick % 0x9F]) + body[6:]  # not our header (never 60)
    return FrameCase(len(bad).to_bytes(2, "big") + bad, True, None)


frame_specs = st.tuples(
    st.integers(0, len(TEMPLATES) - 1),
    st.integers(0, len(ANSWERABLE) + 1),
    st.integers(0, 2**16),
    st.binary(max_size=24),
)
closer_specs = st.none() | st.tuples(
    st.integers(0, len(TEMPLATES) - 1),
    st.integers(0, 5),
    st.integers(0, 2**16),
    st.binary(max_size=8),
)


# --- the test ---------------------------------------------------------------------------------


@pytest.fixture
def fuzz_host(tmp_path: Path) -> Iterator[tuple[SqlStore, int]]:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    store = SqlStore.open(url, KeyVault(os.urandom(32)))
    register(store, KEYS, TERMINALS)
    server = bootstrap.start_in_thread(store, url, limits=ServerLimits(read_timeout_s=2.0))
    try:
        yield store, server.port
    finally:
        server.stop()
        store.close()


def _read_all(sock: socket.socket) -> list[bytes]:
    """Frames until the server closes (or we time out)."""
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 2:
        end = 2 + int.from_bytes(data[:2], "big")
        frames.append(bytes(data[:end]))
        del data[:end]
    assert not data, "a partial frame from the server"
    return frames


def test_malformed_frames_get_30_or_a_closed_connection(
    fuzz_host: tuple[SqlStore, int],
) -> None:
    store, port = fuzz_host
    for mti, fields in TEMPLATES:  # the templates themselves are good requests
        assert not isinstance(decode_request(encode(mti, fields)), Reply), mti
        assert classify_request(mti, fields).kind in REQUESTS
    before_counts, before_terminals = counts(store), terminal_rows(store)
    tally: Counter[str] = Counter()
    other = HostLink(("127.0.0.1", port), TERMINALS[1].terminal_id, MID, TERMINALS[1].tmk)
    other.connect()
    stop = threading.Event()
    echo_failures: list[BaseException] = []

    def keep_echoing() -> None:
        while not stop.is_set():
            try:
                assert other.echo().approved
                tally["echoes"] += 1
            except BaseException as exc:  # reported below
                echo_failures.append(exc)
                return
            time.sleep(0.02)

    echo_thread = threading.Thread(target=keep_echoing)
    echo_thread.start()
    started = time.perf_counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(frame_specs, min_size=BATCH, max_size=BATCH), closer_specs)
    def batch(
        specs: list[tuple[int, int, int, bytes]], closer: tuple[int, int, int, bytes] | None
    ) -> None:
        answered = [build(*spec) for spec in specs]
        sent = answered + ([] if closer is None else [build_closer(*closer)])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"".join(c.frame for c in sent))
            if closer is None:
                sock.shutdown(socket.SHUT_WR)  # no closer: our EOF ends the connection
            responses = _read_all(sock)
        assert len(responses) == len(answered)
        for case, raw in zip(answered, responses, strict=True):
            frame = decode_frame(raw)
            assert frame.tpdu == TPDU.swapped()
            response = decode_message(frame.message)
            assert case.request_mti is not None
            assert response.mti == f"{int(case.request_mti) + 10:04d}"
            assert response.fields[39] == "30"
        tally["frames"] += len(sent)
        tally["answered_30"] += len(answered)
        tally["closed"] += len(sent) - len(answered)

    try:
        batch()
    finally:
        stop.set()
        echo_thread.join(timeout=10)
    elapsed_s = time.perf_counter() - started
    assert not echo_failures, echo_failures[0]
    assert tally["frames"] >= FRAMES_MIN, tally
    assert tally["echoes"] > 0
    assert other.sign_on().approved  # a good sign-on still works afterwards
    other.close()
    after_terminals = terminal_rows(store)
    assert counts(store) == before_counts
    assert after_terminals[0] == before_terminals[0]  # the fuzzed terminal: untouched
    print(f"fuzz: {dict(tally)} in {elapsed_s:.1f} s")
