"""The shared PoR handling of ota.adapters.delivery against scripted links: every way a SIM
or a link can answer other than with a good PoR becomes a DeliveryError (outcome unknown, the
service retries with a new counter)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ota.adapters.delivery import EnvelopeDelivery, deliver_packet
from ota.domain.errors import DeliveryError
from ota.domain.script import TAR_ISD, JobKind, secure, simple_steps, split
from ota.domain.sim import Scp80KeySet
from paycore.ota.packet import encode_por
from paycore.ota.security import SPI_DEFAULT, PorStatus

KEYS = Scp80KeySet(1, "aes", bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
SECURITY = KEYS.por_security(SPI_DEFAULT)
PACKET = secure(KEYS, 7, split(simple_steps(JobKind.LOCK))[0])
LONG = secure(KEYS, 7, bytes(300))  # three SMS


class Scripted:
    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answer(apdu)


def good_por(counter: int = 7) -> bytes:
    return encode_por(
        tar=TAR_ISD, counter=counter, status=PorStatus.OK, data=b"\x01\x90\x00", security=SECURITY
    )


def test_the_por_comes_back_in_the_envelope_response() -> None:
    link = Scripted(lambda apdu: good_por() + b"\x90\x00")
    por = deliver_packet(link, PACKET, SECURITY, 7)
    assert (por.status, por.counter, por.data) == (PorStatus.OK, 7, b"\x01\x90\x00")
    assert [a[:2] for a in link.sent] == [b"\x80\xc2"]


def test_segments_before_the_last_answer_9000_without_data() -> None:
    link = Scripted(lambda apdu: b"\x90\x00")
    with pytest.raises(DeliveryError, match="no PoR: the ENVELOPE answered 9000"):
        deliver_packet(link, LONG, SECURITY, 7)
    assert len(link.sent) == 3
    link = Scripted(lambda apdu: b"\x6a\x80")
    with pytest.raises(DeliveryError, match="segment 1 of 3 answered 6A80"):
        deliver_packet(link, LONG, SECURITY, 7)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"\x6a\x80", "no PoR: the ENVELOPE answered 6A80"),
        (b"\x90", "no status word"),
        (b"\x02\x71\x00\x00\x01\x00\x90\x00", "PoR rejected"),
        (bytes.fromhex("027100000B0A00000000000000000000") + b"\x90\x00", "PoR rejected"),
    ],
    ids=["status-word", "short", "truncated-por", "plain-por-claiming-ok"],
)
def test_anything_but_a_good_por_is_a_delivery_error(answer: bytes, message: str) -> None:
    with pytest.raises(DeliveryError, match=message):
        deliver_packet(Scripted(lambda apdu: answer), PACKET, SECURITY, 7)


def test_link_errors_and_unknown_sims() -> None:
    def broken(apdu: bytes) -> bytes:
        raise OSError("reader gone")

    with pytest.raises(DeliveryError, match="link failed: OSError: reader gone"):
        deliver_packet(Scripted(broken), PACKET, SECURITY, 7)
    with pytest.raises(DeliveryError, match="no link to SIM 1"):
        EnvelopeDelivery({}).send("1", PACKET, SECURITY, 7)


def test_a_fetch_that_fails_is_a_delivery_error() -> None:
    def answer(apdu: bytes) -> bytes:
        return b"\x91\x20" if apdu[1] == 0xC2 else b"\x69\x85"

    with pytest.raises(DeliveryError, match="FETCH answered 6985"):
        deliver_packet(Scripted(answer), PACKET, SECURITY, 7)
