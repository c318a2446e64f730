"""The SIM's OTA receiver (ota.md §2): ENVELOPE (SMS-PP DOWNLOAD), FETCH, TERMINAL RESPONSE.

An ENVELOPE carries an SMS-DELIVER whose user data is a secured packet (or one segment of it).
The receiver reassembles it, then, in this order (ota.md §2, TS 102 225 §5.1): routes by TAR
(unknown -> PoR 09), checks the target's minimum security level (-> 0A), finds the SCP80 key
set, decrypts, verifies the checksum, applies the counter rule, stores the new counter and runs
the TS 102 226 compact remote APDUs on the target. The counter and every effect of the commands
are ONE new card image, committed by the runtime before the answer leaves the card (ADR 0002);
a refused packet changes nothing.

The PoR is the ENVELOPE response (SPI2 b6 = 0); with b6 = 1 the card answers 91xx with a short
PoR (status 0B) and hands the full PoR over FETCH as a proactive SEND SHORT MESSAGE, which the
TERMINAL RESPONSE acknowledges. Refused packets get their plain PoR as the ENVELOPE response.

Bad input gets a status word, never an exception: malformed ENVELOPE, TPDU, concatenation or
command packet framing -> 6A80; wrong P1/P2 -> 6A86; FETCH / TERMINAL RESPONSE with nothing
pending -> 6985. Our choices where ota.md is silent: docs/ota-packets.md.

Transient state (the segments being reassembled, the proactive commands waiting for FETCH) lives
in the receiver object and dies with a reset, like any applet's transient state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from card_applet_sim.domain.image import CardImage
from paycore.apdu import CommandApdu, ResponseApdu
from paycore.errors import DecodeError
from paycore.ota import remote_apdu, sms
from paycore.ota.packet import (
    PLAIN_POR,
    POR_UDH,
    CommandPacket,
    PorSecurity,
    RefusedCommand,
    VerifiedCommand,
    decode_command,
    encode_por,
    verify_command,
)
from paycore.ota.security import (
    SECURITY_FAILURES,
    Checksum,
    CounterMode,
    OtaKeys,
    PorRequest,
    PorStatus,
    SecurityLevel,
    Spi,
    check_counter,
    counter_after,
    key_version,
)
from paycore.sw import SW

CLA_PROACTIVE = 0x80
INS_ENVELOPE = sms.INS_ENVELOPE
INS_FETCH = sms.INS_FETCH
INS_TERMINAL_RESPONSE = sms.INS_TERMINAL_RESPONSE
OTA_INS = frozenset({INS_ENVELOPE, INS_FETCH, INS_TERMINAL_RESPONSE})
#: ota.md §2: TAR 000000 addresses the issuer security domain.
TAR_ISD = bytes(3)
#: TS 102 221 §7.4.2.2: the response data of an ENVELOPE is at most 256 bytes.
ENVELOPE_RESPONSE_MAX = 256
SW_PROACTIVE_PENDING = 0x9100  # 91xx, xx = length of the proactive command
#: Our limit on proactive commands waiting for FETCH (one PoR in at most this many SMS).
PENDING_MAX = 4


@dataclass(frozen=True, slots=True)
class OtaContext:
    """What a target learns about the secured packet whose commands it runs."""

    tar: bytes
    #: The SCP80 key set that secured the packet (its key 3 is the DEK of STORE DATA/PUT KEY).
    key_version: int
    spi: Spi
    counter: int


class RemoteTarget(Protocol):
    """An application reachable by TAR (the ISD for 000000)."""

    @property
    def minimum_level(self) -> SecurityLevel:
        """The least security a packet needs to reach this application (else PoR 0A)."""
        ...

    def execute(
        self, image: CardImage, apdus: Sequence[CommandApdu], context: OtaContext
    ) -> tuple[Sequence[ResponseApdu], CardImage]:
        """Run the C-APDUs in order in the OTA security context, stopping after the first
        whose status word is not 9000/61xx (``remote_apdu.run_commands`` does exactly that);
        return the responses of the commands run and the card image with all their effects.
        Must not raise for a bad command: a status word is the answer."""
        ...


class Scp80KeyStore(Protocol):
    """Where the SCP80 key sets and their counters are kept: the ISD's persistent state."""

    def keys(self, image: CardImage, key_version: int) -> OtaKeys | None:
        """KIc and KID of key set ``key_version`` (01-0F), None when the card has none."""
        ...

    def counter(self, image: CardImage, key_version: int) -> int:
        """The last counter accepted for that key set (0 for a fresh one)."""
        ...

    def with_counter(self, image: CardImage, key_version: int, counter: int) -> CardImage:
        """The image with that key set's counter replaced."""
        ...


@dataclass(frozen=True, slots=True)
class OtaReply:
    """The answer to one ENVELOPE / FETCH / TERMINAL RESPONSE: the runtime commits ``image``
    (when not None) before the response data and status word leave the card."""

    sw: int
    data: bytes = b""
    image: CardImage | None = field(default=None, repr=False)

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """Security processing and execution of one complete packet."""

    status: PorStatus
    counter: int
    data: bytes = b""
    image: CardImage | None = None
    #: The script stopped on a status word other than 9000/61xx (a PoR "on error" goes out).
    failed: bool = False
    security: PorSecurity = PLAIN_POR


def _status(sw: int) -> OtaReply:
    return OtaReply(sw)


class OtaReceiver:
    """ENVELOPE / FETCH / TERMINAL RESPONSE for one card. ``targets`` maps TARs to applications;
    ``keys`` is where the SCP80 key sets and counters live."""

    def __init__(self, targets: Mapping[bytes, RemoteTarget], keys: Scp80KeyStore) -> None:
        self._targets = dict(targets)
        self._keys = keys
        self._reassembly = sms.Reassembly()
        self._pending: tuple[bytes, ...] = ()

    def reset(self) -> None:
        """Power-on / reset: drop the transient state."""
        self._reassembly = sms.Reassembly()
        self._pending = ()

    @property
    def pending(self) -> int:
        """Proactive commands waiting for FETCH."""
        return len(self._pending)

    def handle(self, image: CardImage, command: CommandApdu) -> OtaReply:
        assert command.cla == CLA_PROACTIVE and command.ins in OTA_INS
        if (command.p1, command.p2) != (0, 0):
            return _status(SW.WRONG_P1P2)
        if command.ins == INS_ENVELOPE:
            return self._envelope(image, command)
        if command.ins == INS_FETCH:
            return self._fetch(command)
        return self._terminal_response(command)

    # --- ENVELOPE --------------------------------------------------------------------------

    def _envelope(self, image: CardImage, command: CommandApdu) -> OtaReply:
        if not command.data:
            return _status(SW.WRONG_LENGTH)
        try:
            download = sms.decode_sms_pp_download(command.data)
            deliver = sms.decode_deliver(download.tpdu)
            if deliver.pid != sms.PID_SIM_DATA_DOWNLOAD:
                return _status(SW.WRONG_DATA)  # TS 31.111 §7.1.1: only (U)SIM data download
            reassembly, message = self._reassembly.add(deliver.originator.digits, deliver.user_data)
        except DecodeError:
            return _status(SW.WRONG_DATA)
        self._reassembly = reassembly
        if message is None:
            return _status(SW.OK)  # a segment kept for later: nothing to say yet
        identifier = message.find(sms.IEI_COMMAND_PACKET)
        if identifier is None or identifier.data:
            return _status(SW.WRONG_DATA)  # TS 31.115 §4.2: not a secured command packet
        try:
            packet = decode_command(message.payload)
        except DecodeError:
            return _status(SW.WRONG_DATA)
        outcome = self._process(image, packet)
        return self._answer(packet.spi, packet.tar, outcome, deliver, download)

    def _process(self, image: CardImage, packet: CommandPacket) -> _Outcome:
        spi = packet.spi
        # TS 102 225 §5.2.2 / TS 102 226 §8.2.1.3.2.4.2: the TAR must name an application,
        # and the packet must meet that application's minimum security level.
        target = self._targets.get(packet.tar)
        if target is None:
            return _Outcome(PorStatus.TAR_UNKNOWN, 0)
        if not target.minimum_level.allows(spi):
            return _Outcome(PorStatus.INSUFFICIENT_SECURITY_LEVEL, 0)
        version = _key_set_of(packet)
        if version is None:
            return _Outcome(PorStatus.UNIDENTIFIED_SECURITY_ERROR, 0)
        keys = self._keys.keys(image, version) if 1 <= version <= 0x0F else None
        if keys is None and _needs_keys(spi):
            return _Outcome(PorStatus.UNIDENTIFIED_SECURITY_ERROR, 0)
        security = PorSecurity.for_command(spi, packet.kic, packet.kid, keys)
        if spi.por is not PorRequest.NONE and not security.supported():
            return _Outcome(PorStatus.UNIDENTIFIED_SECURITY_ERROR, 0)
        # ota.md §2, in this order: decrypt, verify the checksum ...
        verified = verify_command(packet, keys)
        if isinstance(verified, RefusedCommand):
            return _Outcome(verified.status, 0)
        # ... apply the counter rule, store the new counter ...
        new_image = image
        if spi.counter in (CounterMode.HIGHER, CounterMode.ONE_HIGHER):
            stored = self._keys.counter(image, version)
            status = check_counter(spi, stored, verified.counter)
            if status is not PorStatus.OK:
                return _Outcome(status, verified.counter)
            new_image = self._keys.with_counter(
                image, version, counter_after(spi, stored, verified.counter)
            )
        # ... then execute (the counter and the effects: one image, one commit).
        return self._execute(target, new_image, verified, version, security)

    def _execute(
        self,
        target: RemoteTarget,
        image: CardImage,
        verified: VerifiedCommand,
        version: int,
        security: PorSecurity,
    ) -> _Outcome:
        try:
            apdus = remote_apdu.decode_commands(verified.data)
        except DecodeError:
            # Our choice: an authentic packet whose script does not split into C-APDUs runs
            # nothing; its counter is spent and the PoR says 0 commands, 6700.
            response = remote_apdu.CompactResponse(0, SW.WRONG_LENGTH)
            return _Outcome(
                PorStatus.OK, verified.counter, response.encode(), image, True, security
            )
        if not apdus:
            return _Outcome(PorStatus.OK, verified.counter, b"", image, False, security)
        context = OtaContext(verified.tar, version, verified.spi, verified.counter)
        responses, new_image = target.execute(image, apdus, context)
        # The target's side of the contract; a breach is an internal error: nothing committed.
        assert 1 <= len(responses) <= len(apdus), "a target runs at least the first command"
        assert all(remote_apdu.continues(r.sw) for r in responses[:-1]), "runs past a failure"
        result = remote_apdu.CompactResponse.from_responses(responses)
        assert result is not None
        return _Outcome(
            PorStatus.OK,
            verified.counter,
            result.encode(),
            new_image,
            not result.completed,
            security,
        )

    def _answer(
        self,
        spi: Spi,
        tar: bytes,
        outcome: _Outcome,
        deliver: sms.SmsDeliver,
        download: sms.SmsPpDownload,
    ) -> OtaReply:
        refused = outcome.status in SECURITY_FAILURES
        # Our choice: "PoR on error" also covers a script stopped by a failing status word.
        wanted = spi.por is PorRequest.ALWAYS or (
            spi.por is PorRequest.ON_ERROR
            and (outcome.status is not PorStatus.OK or outcome.failed)
        )
        if not wanted:
            return OtaReply(SW.OK, b"", outcome.image)
        # ota.md §2: a refused packet's PoR is unciphered and unsigned (and, our choice, always
        # the ENVELOPE response: its SPI is not to be trusted to open a proactive session).
        security = PLAIN_POR if refused else outcome.security
        por = encode_por(
            tar=tar,
            counter=outcome.counter,
            status=outcome.status,
            data=outcome.data,
            security=security,
        )
        if refused or (not spi.por_by_sms_submit and len(por) <= ENVELOPE_RESPONSE_MAX):
            return OtaReply(SW.OK, por, outcome.image)
        # SPI2 b6 = 1 (or a PoR too long for the ENVELOPE response, our choice): 91xx with a
        # short PoR (status 0B, no data), the full PoR by SEND SHORT MESSAGE on FETCH.
        short = encode_por(
            tar=tar,
            counter=outcome.counter,
            status=PorStatus.SMS_SUBMIT_TO_FOLLOW,
            data=b"",
            security=security,
        )
        segments = sms.split_packet(
            por[len(POR_UDH) :],
            sms.IEI_RESPONSE_PACKET,
            outcome.counter & 0xFF,
        )
        assert len(segments) <= PENDING_MAX, "a PoR fits in a few SMS"
        self._pending = tuple(
            sms.SendShortMessage(
                sms.SmsSubmit(deliver.originator, segment).encode(),
                service_centre=download.service_centre,
            ).encode()
            for segment in segments
        )
        return OtaReply(SW_PROACTIVE_PENDING | (len(self._pending[0]) & 0xFF), short, outcome.image)

    # --- FETCH and TERMINAL RESPONSE -------------------------------------------------------

    def _fetch(self, command: CommandApdu) -> OtaReply:
        if command.data:
            return _status(SW.WRONG_LENGTH)
        if not self._pending:
            return _status(SW.CONDITIONS_NOT_SATISFIED)
        proactive = self._pending[0]
        # TS 102 221 §10.1.1: Le must be the length announced by 91xx; else 6Cxx.
        if command.le is not None and command.le != len(proactive):
            return _status(0x6C00 | (len(proactive) & 0xFF))
        return OtaReply(SW.OK, proactive)

    def _terminal_response(self, command: CommandApdu) -> OtaReply:
        if not self._pending:
            return _status(SW.CONDITIONS_NOT_SATISFIED)
        try:
            response = sms.decode_terminal_response(command.data)
        except DecodeError:
            return _status(SW.WRONG_DATA)
        if response.command_type != sms.COMMAND_SEND_SHORT_MESSAGE:
            return _status(SW.WRONG_DATA)
        # Our choice: a failed SEND SHORT MESSAGE drops the rest of that PoR (the server sees
        # no PoR and retries with a new counter).
        self._pending = self._pending[1:] if response.successful else ()
        if self._pending:
            return _status(SW_PROACTIVE_PENDING | (len(self._pending[0]) & 0xFF))
        return _status(SW.OK)


def _needs_keys(spi: Spi) -> bool:
    return (
        spi.ciphered
        or spi.checksum is Checksum.CC
        or spi.counter in (CounterMode.HIGHER, CounterMode.ONE_HIGHER)
        or (
            spi.por is not PorRequest.NONE and (spi.por_ciphered or spi.por_checksum is Checksum.CC)
        )
    )


def _key_set_of(packet: CommandPacket) -> int | None:
    """The SCP80 key set of a packet: the key version of KIc when it ciphers (command or PoR),
    of KID when it signs; our profile refuses (None) a packet whose KIc and KID name two sets."""
    spi = packet.spi
    versions = set()
    if spi.ciphered or spi.por_ciphered:
        versions.add(key_version(packet.kic))
    if spi.checksum is Checksum.CC or spi.por_checksum is Checksum.CC:
        versions.add(key_version(packet.kid))
    if len(versions) > 1:
        return None
    return versions.pop() if versions else key_version(packet.kic)
