"""The terminal's host link against a scripted host on loopback: sign-on and its KCVs, the MAC
check of approved responses, matching a response to its request, a host that goes away."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from paycore.iso8583.fields import EpurseSet, decode_epurse_data
from paycore.iso8583.frame import Frame, FrameReader, Header, encode_frame
from paycore.iso8583.mac import WorkingKeys, encode_signed_message, encode_working_keys
from paycore.iso8583.message import FieldValue, Message, decode_message, encode_message
from paycore.purse import InitPurchaseResponse
from pos_terminal.adapters.host_link import (
    HostLink,
    HostProtocolError,
    HostUnavailable,
    NotSignedOn,
    ResponseMacError,
)
from pos_terminal.domain.card_flows import PurchaseStarted

TMK = bytes.fromhex("CA5D92598DCA48CE8A4C76361A9269E9")
KEYS = WorkingKeys(pik=bytes(range(16)), mak=bytes(range(16, 32)), tdk=bytes(range(32, 48)))
TID, MID = "T0000001", "898310048990001"
STARTED = PurchaseStarted(
    bytes.fromhex("8888000000000001"), 1_000, InitPurchaseResponse(5_000, 1, 0, 1, 0, bytes(4)),
    bytes.fromhex("001122334455"),
)  # fmt: skip

Script = Callable[[Message], list[bytes]]


class ScriptedHost:
    """Answers each request frame with the messages ``script`` returns (framed, TPDU swapped)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        reader = FrameReader()
        with conn:
            while data := conn.recv(4096):
                for frame in reader.feed(data):
                    for message in self.script(decode_message(frame.message)):
                        conn.sendall(self._frame(frame, message))

    @staticmethod
    def _frame(request: Frame, message: bytes) -> bytes:
        return encode_frame(request.tpdu.swapped(), Header(), message)

    def close(self) -> None:
        self.listener.close()


def sign_on_response(request: Message, f62: bytes | None = None) -> bytes:
    fields: dict[int, FieldValue] = {
        11: request.text(11), 12: "013000", 13: "0302", 37: "000000000001", 39: "00", 41: TID,
        42: MID, 60: "00000042004", 62: f62 if f62 is not None else encode_working_keys(TMK, KEYS),
    }  # fmt: skip
    return encode_message("0810", fields)


def financial_response(request: Message, code: str = "00", mak: bytes | None = KEYS.mak) -> bytes:
    fields = {n: request.fields[n] for n in (2, 3, 4, 11, 25, 41, 42, 49, 60)}
    fields |= {12: "013000", 13: "0302", 15: "0302", 37: "000000000009", 39: code}
    if code == "00":
        fields[38] = "123456"
    if mak is None:
        return encode_message("0210", fields)
    return encode_signed_message(mak, "0210", fields)


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], HostLink]]:
    hosts: list[ScriptedHost] = []
    links: list[HostLink] = []

    def start(script: Script) -> HostLink:
        host = ScriptedHost(script)
        hosts.append(host)
        link = HostLink(("127.0.0.1", host.port), TID, MID, TMK, timeout_s=2.0).connect()
        links.append(link)
        return link

    yield start
    for link in links:
        link.close()
    for host in hosts:
        host.close()


def answer(request: Message) -> list[bytes]:
    if request.mti == "0800":
        return [sign_on_response(request)]
    return [financial_response(request)]


def test_sign_on_takes_the_keys_the_batch_and_the_clock(
    scripted: Callable[[Script], HostLink],
) -> None:
    link = scripted(answer)
    response = link.sign_on()
    assert response.approved
    assert link.mak == KEYS.mak and link.batch_no == 42 and link.host_clock == ("013000", "0302")
    auth = link.authorise_purchase(STARTED)
    assert auth.approved and auth.rrn == "000000000009" and auth.stan == 2 and auth.batch_no == 42


def test_a_wrong_kcv_is_refused(scripted: Callable[[Script], HostLink]) -> None:
    bad = bytearray(encode_working_keys(TMK, KEYS))
    bad[36] ^= 0x01  # the MAK's check value
    link = scripted(lambda request: [sign_on_response(request, bytes(bad))])
    with pytest.raises(HostProtocolError, match="MAK check value"):
        link.sign_on()
    assert link.mak is None
    with pytest.raises(NotSignedOn):
        link.authorise_purchase(STARTED)


def test_an_approval_with_a_bad_mac_is_like_no_answer(
    scripted: Callable[[Script], HostLink],
) -> None:
    def script(request: Message) -> list[bytes]:
        if request.mti == "0800":
            return [sign_on_response(request)]
        return [financial_response(request, mak=bytes(16))]

    link = scripted(script)
    link.sign_on()
    with pytest.raises(ResponseMacError):
        link.authorise_purchase(STARTED)


def test_a_decline_needs_no_mac(scripted: Callable[[Script], HostLink]) -> None:
    def script(request: Message) -> list[bytes]:
        if request.mti == "0800":
            return [sign_on_response(request)]
        return [financial_response(request, "51", mak=None)]

    link = scripted(script)
    link.sign_on()
    assert link.authorise_purchase(STARTED).code == "51"


def test_a_stale_response_is_skipped(scripted: Callable[[Script], HostLink]) -> None:
    def script(request: Message) -> list[bytes]:
        if request.mti == "0800":
            return [sign_on_response(request)]
        stale = dict(decode_message(financial_response(request)).fields)
        stale[11] = "000001"  # the answer to an earlier request, given up on
        return [encode_signed_message(KEYS.mak, "0210", stale), financial_response(request)]

    link = scripted(script)
    link.sign_on()
    assert link.authorise_purchase(STARTED).approved


def test_a_host_that_goes_away_or_says_nothing(scripted: Callable[[Script], HostLink]) -> None:
    link = scripted(lambda request: [])
    with pytest.raises(HostUnavailable, match="no response"):
        link.sign_on()
    closed = HostLink(("127.0.0.1", 1), TID, MID, TMK, timeout_s=1.0)
    with pytest.raises(HostUnavailable, match="cannot connect"):
        closed.connect()


def test_the_purchase_request_carries_the_card_data(scripted: Callable[[Script], HostLink]) -> None:
    seen: list[Message] = []

    def script(request: Message) -> list[bytes]:
        seen.append(request)
        return answer(request)

    link = scripted(script)
    link.sign_on()
    link.authorise_purchase(STARTED)
    request = seen[-1]
    assert request.mti == "0200" and request.text(2) == "8888000000000001"
    assert request.text(3) == "000000" and request.text(4) == "000000001000"
    assert request.text(22) == "962" and request.text(25) == "91" and request.text(49) == "156"
    assert request.text(60).startswith("22000042")
    card = decode_epurse_data(request.binary(58), EpurseSet.PURCHASE_REQUEST)
    assert (card.balance_before_fen, card.card_counter) == (5_000, 1)
    assert card.psam_terminal_id == bytes.fromhex("001122334455")
