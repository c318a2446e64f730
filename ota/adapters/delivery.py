"""Delivery of secured packets to SIMs over ENVELOPE (SMS-PP DOWNLOAD, ota.md §2), with one PoR
handling for every link: an in-process simulated SIM, or a SIM in a PC/SC reader (pyscard).

- Each SMS of the (possibly concatenated) packet goes in one ENVELOPE; segments before the last
  answer 9000 without data.
- The last answers the PoR (9000 + data), or 91xx with a short PoR (status 0B): then FETCH
  gets a proactive SEND SHORT MESSAGE whose SMS-SUBMIT carries 02 71 00 + the PoR (possibly in
  several SMS, each acknowledged by TERMINAL RESPONSE, which answers 91xx while more remain).
- Anything else (no PoR, another status word, a link error) is a ``DeliveryError``: the
  service retries with a new counter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from ota.domain.errors import DeliveryError
from ota.ports import EnvelopeLink
from paycore.errors import PaycoreError
from paycore.ota import sms
from paycore.ota.packet import Por, PorSecurity, decode_por
from paycore.ota.security import PorStatus

#: The OTA server's originating address in SMS-DELIVER (our choice) and a fixed SCTS.
ORIGINATOR: Final = sms.Address("8613800000000", 0x91)
SCTS: Final = bytes.fromhex("62110221000000")
SW_OK: Final = 0x9000
PROACTIVE_ROUNDS_MAX: Final = sms.SEGMENTS_MAX + 1


def _split(raw: bytes) -> tuple[bytes, int]:
    if len(raw) < 2:
        raise DeliveryError(f"response of {len(raw)} bytes has no status word")
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def _exchange(link: EnvelopeLink, apdu: bytes) -> tuple[bytes, int]:
    try:
        raw = link.transmit(apdu)
    except DeliveryError:
        raise
    except Exception as exc:  # the link's own errors (CardGone, pyscard, a power cut)
        raise DeliveryError(f"link failed: {type(exc).__name__}: {exc}") from None
    return _split(raw)


def deliver_packet(link: EnvelopeLink, packet: bytes, security: PorSecurity, reference: int) -> Por:
    """Send ``packet`` (CPL to the end) and return its verified PoR."""
    try:
        envelopes = sms.command_envelopes(
            packet, originator=ORIGINATOR, scts=SCTS, reference=reference
        )
    except PaycoreError as exc:
        raise DeliveryError(f"packet cannot be framed: {exc}") from None
    data, sw = b"", SW_OK
    for n, envelope in enumerate(envelopes, 1):
        data, sw = _exchange(link, sms.envelope_apdu(envelope))
        if n < len(envelopes) and (sw != SW_OK or data):
            raise DeliveryError(f"segment {n} of {len(envelopes)} answered {sw:04X}")
    if sw == SW_OK and data:
        return _decode(data, security)
    if sw >> 8 == 0x91:
        short = _decode(data, security) if data else None
        if short is not None and short.status is not PorStatus.SMS_SUBMIT_TO_FOLLOW:
            return short
        return _fetch_por(link, sw & 0xFF, security)
    raise DeliveryError(f"no PoR: the ENVELOPE answered {sw:04X}")


def _decode(user_data: bytes, security: PorSecurity) -> Por:
    try:
        return decode_por(user_data, security)
    except PaycoreError as exc:
        raise DeliveryError(f"PoR rejected: {exc}") from None


def _fetch_por(link: EnvelopeLink, length: int, security: PorSecurity) -> Por:
    """FETCH / TERMINAL RESPONSE rounds until the SMS-SUBMIT message is whole (TS 102 223)."""
    reassembly = sms.Reassembly()
    for _ in range(PROACTIVE_ROUNDS_MAX):
        data, sw = _exchange(link, bytes((0x80, sms.INS_FETCH, 0, 0, length)))
        if sw != SW_OK:
            raise DeliveryError(f"FETCH answered {sw:04X}")
        try:
            command = sms.decode_send_short_message(data)
            submit = sms.decode_submit(command.tpdu)
            reassembly, message = reassembly.add("card", submit.user_data)
        except PaycoreError as exc:
            raise DeliveryError(f"proactive command: {exc}") from None
        ack = sms.TerminalResponse(
            command.command_number, sms.COMMAND_SEND_SHORT_MESSAGE, command.qualifier,
            sms.RESULT_OK,
        ).encode()  # fmt: skip
        _, sw = _exchange(link, bytes((0x80, sms.INS_TERMINAL_RESPONSE, 0, 0, len(ack))) + ack)
        if message is not None:
            try:
                return _decode(sms.por_user_data(message), security)
            except PaycoreError as exc:
                raise DeliveryError(f"PoR message: {exc}") from None
        if sw >> 8 != 0x91:
            raise DeliveryError(f"TERMINAL RESPONSE answered {sw:04X} with the PoR incomplete")
        length = sw & 0xFF
    raise DeliveryError("too many proactive rounds for one PoR")


class EnvelopeDelivery:
    """``ota.ports.Delivery`` over links found by ICCID: a mapping for simulated SIMs
    in-process, or a function (one PC/SC reader holding the SIM being served)."""

    def __init__(self, links: Mapping[str, EnvelopeLink] | Callable[[str], EnvelopeLink]) -> None:
        self._links = links

    def link_for(self, iccid: str) -> EnvelopeLink:
        if callable(self._links):
            return self._links(iccid)
        link = self._links.get(iccid)
        if link is None:
            raise DeliveryError(f"no link to SIM {iccid}")
        return link

    def send(self, iccid: str, packet: bytes, security: PorSecurity, reference: int) -> Por:
        return deliver_packet(self.link_for(iccid), packet, security, reference)
