"""The POS terminal's link to the acquiring host: ISO 8583 over one TCP connection
(host_protocol.md), blocking, one request at a time.

- ``HostLink``: framing (TPDU, header), STAN, batch number, sign-on (field 62 decrypted with the
  TMK, every KCV checked), a request out and its response in, matched by MTI + 10, field 11 and
  field 41; field 64 on every financial request, and checked on every approved financial
  response (a failure is ``ResponseMacError``: treat it like no response, §3).
- The 0200 / 0220 / 0400 of a purchase, a load and a refund, built from the card flows'
  step results (``card_flows.begin_purchase`` and friends), and settlement / batch upload.
- ``online_purchase`` / ``online_load`` / ``online_refund``: the card and the host together,
  for the demo, the tests and the benches.

Reconnect: a request whose connection dropped (not one that timed out) is sent once more on a
new connection - safe, because the host answers a retransmission (same terminal, batch, STAN,
MTI and content) with the response it gave the first time (§6). Store-and-forward and the
reversal of an unanswered 0200 live in ``pos_terminal.service`` with its journal; the builders
here (``completion_request``, ``reversal_request``, ``upload_request``) give it the exact
fields to keep and send again.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from paycore.errors import DecodeError, EncodeError, PaycoreError
from paycore.iso8583.fields import (
    CURRENCY_CNY,
    ENTRY_MODE_CHIP_NO_PIN,
    EPURSE_TX_LOAD,
    EPURSE_TX_PURCHASE,
    SERVICE_CONDITION_EPURSE,
    EpurseData,
    Field60,
    Field61,
    Mti,
    NetworkCode,
    ProcessingCode,
    ReversalReason,
    SettlementTotals,
    TypeCode,
    decode_epurse_data,
    decode_field60,
    encode_batch_count,
    encode_epurse_data,
    encode_field60,
    encode_field61,
    encode_settlement_totals,
    response_mti,
)
from paycore.iso8583.frame import (
    FRAME_LENGTH_MAX,
    LENGTH_PREFIX_BYTES,
    Frame,
    Header,
    Tpdu,
    decode_frame,
    encode_frame,
)
from paycore.iso8583.mac import (
    decode_working_keys,
    encode_signed_message,
    verify_message_mac,
)
from paycore.iso8583.message import FieldValue, Message, decode_message, encode_message
from paycore.iso8583.spec import MAC_FIELD
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import (
    CardRefused,
    LoadDone,
    LoadStarted,
    Psam,
    PurchaseDone,
    PurchaseStarted,
    TornPurchase,
)
from pos_terminal.ports import ApduLink

STAN_MAX: Final = 999_999
BATCH_MAX: Final = 999_999
TIMEOUT_S_DEFAULT: Final = 10.0
#: Stale responses (to requests given up on) skipped while waiting for the right one.
STALE_RESPONSES_MAX: Final = 8
TPDU_DEFAULT: Final = Tpdu(destination=0x0000, source=0x0001)
OPERATOR_DEFAULT: Final = "01"
APPROVED: Final = "00"
#: Our choice: a load or refund completion has no PSAM serial; DF08 is 0.
LOAD_SERIAL: Final = 0


class HostLinkError(Exception):
    """The host could not be asked or did not answer usably (one line)."""


class HostUnavailable(HostLinkError):  # noqa: N818 - an event
    """No connection, a broken one, or no response in time: the request may or may not have
    reached the host (reverse an unanswered 0200)."""


class HostTimeout(HostUnavailable):
    """The request went out and no response came within the timeout."""


class HostProtocolError(HostLinkError):
    """A response that is not one of this profile (bad frame, bad message, bad field 62)."""


class ResponseMacError(HostLinkError):
    """An approved financial response whose MAC does not verify: like no response (§3), the
    terminal reverses with reason A0."""


class NotSignedOn(HostLinkError):  # noqa: N818 - a state
    """A financial request before a successful sign-on (no MAK)."""


@dataclass(frozen=True, slots=True)
class Response:
    message: Message
    header: Header
    raw: bytes = field(repr=False)

    @property
    def code(self) -> str:
        value = self.message.fields.get(39)
        return value if isinstance(value, str) else ""

    @property
    def approved(self) -> bool:
        return self.code == APPROVED

    @property
    def sign_on_again(self) -> bool:
        return self.header.sign_on_again

    def text(self, number: int) -> str:
        return self.message.text(number)


@dataclass(frozen=True, slots=True)
class Authorised:
    """A 0200 and its 0210: what the 0220 and a 0400 are built from."""

    request_mti: str
    request_fields: Mapping[int, FieldValue] = field(repr=False)
    response: Response

    @property
    def approved(self) -> bool:
        return self.response.approved

    @property
    def code(self) -> str:
        return self.response.code

    @property
    def stan(self) -> int:
        return int(str(self.request_fields[11]))

    @property
    def batch_no(self) -> int:
        return decode_field60(str(self.request_fields[60])).batch_number

    @property
    def rrn(self) -> str:
        return self.response.text(37)

    @property
    def business_date_mmdd(self) -> str:
        return self.response.text(15)

    def load_mac2(self) -> tuple[bytes, bytes, bytes]:
        """(date BCD, time BCD, MAC2) of an approved load or refund 0210 (DF09, DF0C)."""
        data = decode_epurse_data(self.response.message.binary(58))
        if data.date_time_bcd is None or data.mac2 is None:
            raise HostProtocolError("the 0210 of a load has no DF09 / DF0C")
        return data.date_time_bcd[:4], data.date_time_bcd[4:], data.mac2


def _next(value: int, maximum: int) -> int:
    return 1 if value >= maximum else value + 1


class HostLink:
    """One terminal's connection to the host. Not thread-safe: one link per terminal."""

    def __init__(
        self,
        address: tuple[str, int],
        terminal_id: str,
        merchant_id: str,
        tmk: bytes,
        *,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        tpdu: Tpdu = TPDU_DEFAULT,
        stan: int = 0,
        batch_no: int = 1,
        operator: str = OPERATOR_DEFAULT,
    ) -> None:
        if len(tmk) != 16:
            raise ValueError("the TMK is 16 bytes")
        self.address = address
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self._tmk = tmk
        self.timeout_s = timeout_s
        self.tpdu = tpdu
        self.operator = operator
        self.stan = stan  # the last STAN used
        self.batch_no = batch_no
        self.mak: bytes | None = None
        self.host_clock: tuple[str, str] | None = None  # (hhmmss, MMDD) of the last 0810
        #: Field 62 of the last good 0810 (keys under the TMK, with KCVs): what a journal keeps.
        self.working_keys_field: bytes | None = None
        #: Where STANs come from when set (a journal that persists each before it is used).
        self.stan_source: Callable[[], int] | None = None
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"HostLink({self.terminal_id} -> {self.address[0]}:{self.address[1]})"

    # --- connection -------------------------------------------------------------------------

    def connect(self) -> HostLink:
        self.close()
        try:
            sock = socket.create_connection(self.address, timeout=self.timeout_s)
        except OSError as exc:
            raise HostUnavailable(f"cannot connect to the host: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        return self

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self) -> HostLink:
        return self if self._sock is not None else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_stan(self) -> int:
        self.stan = self.stan_source() if self.stan_source else _next(self.stan, STAN_MAX)
        return self.stan

    def adopt_working_keys(self, field62: bytes) -> None:
        """Use the working keys of an earlier 0810 (kept encrypted under the TMK by a journal);
        KCVs are checked. Raises HostProtocolError when they do not decrypt to good keys."""
        try:
            keys = decode_working_keys(self._tmk, field62)
        except PaycoreError as exc:
            raise HostProtocolError(f"stored working keys: {exc}") from None
        self.mak = keys.mak
        self.working_keys_field = field62

    # --- bytes on the wire ------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        """Raw bytes to the host (tests send malformed frames with this)."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise HostUnavailable(f"sending to the host failed: {exc}") from None

    def _read_exactly(self, count: int) -> bytes:
        assert self._sock is not None
        chunks: list[bytes] = []
        left = count
        try:
            while left:
                chunk = self._sock.recv(left)
                if not chunk:
                    self.close()
                    raise HostUnavailable("the host closed the connection")
                chunks.append(chunk)
                left -= len(chunk)
        except TimeoutError:
            self.close()
            raise HostTimeout(f"no response within {self.timeout_s} s") from None
        except OSError as exc:
            self.close()
            raise HostUnavailable(f"receiving from the host failed: {exc}") from None
        return b"".join(chunks)

    def receive_frame(self) -> Frame:
        if self._sock is None:
            raise HostUnavailable("not connected")
        prefix = self._read_exactly(LENGTH_PREFIX_BYTES)
        length = int.from_bytes(prefix, "big")
        if length > FRAME_LENGTH_MAX:
            self.close()
            raise HostProtocolError(f"the host announced a {length}-byte frame")
        body = self._read_exactly(length)
        try:
            return decode_frame(prefix + body)
        except DecodeError as exc:
            self.close()
            raise HostProtocolError(f"bad frame from the host: {exc}") from None

    # --- one exchange -----------------------------------------------------------------------

    def exchange(self, mti: str, fields: Mapping[int, FieldValue], *, signed: bool) -> Response:
        """Send one request (MACed when ``signed``) and return its response. An approved
        response to a signed request must carry a good MAC (``ResponseMacError``)."""
        if signed and self.mak is None:
            raise NotSignedOn("sign on first: no MAC key")
        try:
            if signed:
                assert self.mak is not None
                message = encode_signed_message(self.mak, mti, fields)
            else:
                message = encode_message(mti, fields)
            frame = encode_frame(self.tpdu, Header(), message)
        except EncodeError as exc:
            raise HostLinkError(f"cannot encode the {mti}: {exc}") from None
        try:
            self.send_bytes(frame)
            return self._matching_response(mti, fields, signed)
        except HostTimeout:
            raise
        except HostUnavailable:
            self.close()  # a dropped connection: once more on a new one (§6 replays)
        self.send_bytes(frame)
        return self._matching_response(mti, fields, signed)

    def _matching_response(
        self, mti: str, fields: Mapping[int, FieldValue], signed: bool
    ) -> Response:
        expected_mti = response_mti(mti)
        for _ in range(STALE_RESPONSES_MAX + 1):
            frame = self.receive_frame()
            try:
                message = decode_message(frame.message)
            except DecodeError as exc:
                raise HostProtocolError(f"bad message from the host: {exc}") from None
            same = (
                message.mti == expected_mti
                and message.fields.get(11) == fields.get(11)
                and message.fields.get(41) in (fields.get(41), None)
            )
            if not same:
                continue  # a late answer to an earlier request: skip it
            response = Response(message, frame.header, frame.message)
            if signed and response.approved and not self._mac_ok(frame.message, message):
                raise ResponseMacError(f"the {expected_mti} MAC does not verify")
            return response
        raise HostProtocolError(f"no {expected_mti} matching STAN {fields.get(11)!r}")

    def _mac_ok(self, raw: bytes, message: Message) -> bool:
        if self.mak is None or MAC_FIELD not in message.fields:
            return False
        try:
            return verify_message_mac(self.mak, raw)
        except DecodeError:
            return False

    # --- network management -----------------------------------------------------------------

    def _field60(self, type_code: str, network_code: str) -> str:
        return encode_field60(Field60(type_code, self.batch_no, network_code))

    def sign_on(self) -> Response:
        """0800: new working keys (KCVs checked), the host's batch number and clock."""
        fields: dict[int, FieldValue] = {
            11: f"{self.next_stan():06d}",
            41: self.terminal_id,
            42: self.merchant_id,
            60: self._field60(TypeCode.NETWORK_MANAGEMENT, NetworkCode.SIGN_ON),
            63: self.operator,
        }
        response = self.exchange(Mti.SIGN_ON_REQUEST, fields, signed=False)
        if not response.approved:
            self.mak = None
            self.working_keys_field = None
            return response
        try:
            field62 = response.message.binary(62)
            keys = decode_working_keys(self._tmk, field62)
            batch = decode_field60(response.text(60)).batch_number
        except PaycoreError as exc:
            self.mak = None
            self.working_keys_field = None
            raise HostProtocolError(f"sign-on: {exc}") from None
        self.mak = keys.mak
        self.working_keys_field = field62
        self.batch_no = batch
        self.host_clock = (response.text(12), response.text(13))
        return response

    def echo(self) -> Response:
        fields = {
            41: self.terminal_id,
            42: self.merchant_id,
            60: self._field60(TypeCode.NETWORK_MANAGEMENT, NetworkCode.ECHO),
        }
        return self.exchange(Mti.NETWORK_MANAGEMENT_REQUEST, fields, signed=False)

    def sign_off(self) -> Response:
        fields = {
            11: f"{self.next_stan():06d}",
            41: self.terminal_id,
            42: self.merchant_id,
            60: self._field60(TypeCode.NETWORK_MANAGEMENT, NetworkCode.SIGN_OFF),
        }
        response = self.exchange(Mti.NETWORK_MANAGEMENT_REQUEST, fields, signed=False)
        if response.approved:
            self.mak = None
        return response

    # --- financial requests -----------------------------------------------------------------

    def _financial(
        self, code: str, type_code: str, asn: bytes, amount_fen: int, epurse: EpurseData
    ) -> dict[int, FieldValue]:
        return {
            2: asn.hex(),
            3: code,
            4: f"{amount_fen:012d}",
            11: f"{self.next_stan():06d}",
            22: ENTRY_MODE_CHIP_NO_PIN,
            25: SERVICE_CONDITION_EPURSE,
            41: self.terminal_id,
            42: self.merchant_id,
            49: CURRENCY_CNY,
            58: encode_epurse_data(epurse),
            60: self._field60(type_code, NetworkCode.FINANCIAL),
        }

    def authorise(self, request: Mapping[int, FieldValue]) -> Authorised:
        """Send a 0200 built by ``purchase_request`` / ``load_request`` / ``refund_request``.
        Keep ``request`` until a response arrives: an unanswered 0200 is reversed with it."""
        response = self.exchange(Mti.FINANCIAL_REQUEST, request, signed=True)
        return Authorised(Mti.FINANCIAL_REQUEST, dict(request), response)

    def purchase_request(self, started: PurchaseStarted) -> dict[int, FieldValue]:
        """The 0200 of a purchase, after INITIALIZE FOR PURCHASE (DF01-DF07); a new STAN."""
        init = started.init
        epurse = EpurseData(
            asn=started.asn, balance_before_fen=init.balance_fen,
            card_counter=init.offline_counter, key_version=init.key_version,
            alg_id=init.alg_id, transaction_type=EPURSE_TX_PURCHASE,
            psam_terminal_id=started.psam_terminal_id,
        )  # fmt: skip
        return self._financial(
            ProcessingCode.PURCHASE, TypeCode.PURCHASE, started.asn, started.amount_fen, epurse
        )

    def _load_epurse(self, started: LoadStarted) -> EpurseData:
        init = started.init
        return EpurseData(
            asn=started.asn, balance_before_fen=init.balance_fen,
            card_counter=init.online_counter, key_version=init.key_version, alg_id=init.alg_id,
            transaction_type=EPURSE_TX_LOAD, psam_terminal_id=started.terminal_id,
            mac1=init.mac1, card_random=init.random4,
        )  # fmt: skip

    def load_request(self, started: LoadStarted) -> dict[int, FieldValue]:
        """The 0200 of a load, after INITIALIZE FOR LOAD (DF01-DF07, DF0B, DF0D)."""
        return self._financial(
            ProcessingCode.LOAD, TypeCode.LOAD, started.asn, started.amount_fen,
            self._load_epurse(started),
        )  # fmt: skip

    def refund_request(self, started: LoadStarted, original: Authorised) -> dict[int, FieldValue]:
        """The 0200 of a refund of ``original`` (a load on the card): + 37 its RRN, 61."""
        return self.refund_request_of(
            started, original.rrn, original.batch_no, original.stan, original.business_date_mmdd
        )

    def refund_request_of(
        self, started: LoadStarted, rrn: str, batch_no: int, stan: int, business_date_mmdd: str
    ) -> dict[int, FieldValue]:
        """The 0200 of a refund of the sale with RRN ``rrn`` (batch, STAN and business date
        from the terminal's journal): + 37, 61."""
        fields = self._financial(
            ProcessingCode.REFUND, TypeCode.REFUND, started.asn, started.amount_fen,
            self._load_epurse(started),
        )  # fmt: skip
        fields[37] = rrn
        fields[61] = encode_field61(Field61(batch_no, stan, business_date_mmdd))
        return fields

    def authorise_purchase(self, started: PurchaseStarted) -> Authorised:
        return self.authorise(self.purchase_request(started))

    def authorise_load(self, started: LoadStarted) -> Authorised:
        """0200 load: MAC1 out, MAC2 back (``Authorised.load_mac2``)."""
        return self.authorise(self.load_request(started))

    def authorise_refund(self, started: LoadStarted, original: Authorised) -> Authorised:
        return self.authorise(self.refund_request(started, original))

    def complete_purchase(self, auth: Authorised, done: PurchaseDone) -> Response:
        """0220 after DEBIT FOR PURCHASE: the card's TAC for the host to verify."""
        return self.send_completion(completion_request(auth.request_fields, auth.rrn, done))

    def complete_load(self, auth: Authorised, done: LoadDone) -> Response:
        """0220 after CREDIT FOR LOAD (a load or a refund): the TAC of the credit."""
        return self.send_completion(completion_request(auth.request_fields, auth.rrn, done))

    def send_completion(self, fields: Mapping[int, FieldValue]) -> Response:
        """A 0220 built by ``completion_request`` (first time or forwarded again)."""
        return self.exchange(Mti.COMPLETION_ADVICE, fields, signed=True)

    def reverse(
        self, original: Authorised | Mapping[int, FieldValue], reason: ReversalReason
    ) -> Response:
        """0400: the 0200's fields and STAN again (``original``: its Authorised, or the
        request of an unanswered one), + 39 the reason."""
        request = original.request_fields if isinstance(original, Authorised) else original
        return self.send_reversal(reversal_request(request, reason))

    def send_reversal(self, fields: Mapping[int, FieldValue]) -> Response:
        """A 0400 built by ``reversal_request`` (first time or forwarded again)."""
        return self.exchange(Mti.REVERSAL_ADVICE, fields, signed=True)

    # --- settlement and batch upload -----------------------------------------------------------

    def settle(self, totals: SettlementTotals) -> Response:
        """0500 with the terminal's totals; on 00 the terminal's batch number increments."""
        response = self.send_settlement(self.settlement_request(totals))
        if response.approved:
            self.batch_no = _next(self.batch_no, BATCH_MAX)
        return response

    def settlement_request(self, totals: SettlementTotals) -> dict[int, FieldValue]:
        """The 0500 of the open batch (a new STAN): keep it to send it again unchanged if its
        0510 does not arrive (the host then replays it, §6)."""
        return {
            11: f"{self.next_stan():06d}",
            41: self.terminal_id,
            42: self.merchant_id,
            48: encode_settlement_totals(totals),
            49: CURRENCY_CNY,
            60: self._field60(TypeCode.NETWORK_MANAGEMENT, NetworkCode.SETTLEMENT),
            63: self.operator,
        }

    def send_settlement(self, fields: Mapping[int, FieldValue]) -> Response:
        """A 0500 built by ``settlement_request`` (the batch number is the caller's)."""
        return self.exchange(Mti.SETTLEMENT_REQUEST, fields, signed=False)

    def upload(self, auth: Authorised, completion_epurse: bytes, batch_no: int) -> Response:
        """0320 (60.3 201): one completed transaction of the settled batch ``batch_no``, with
        its STAN and its 0220's field 58."""
        fields: dict[int, FieldValue] = {
            n: auth.request_fields[n] for n in (2, 3, 4, 11, 25, 41, 42, 49)
        }
        fields[37] = auth.rrn
        fields[58] = completion_epurse
        return self.upload_completion(fields, batch_no)

    def upload_completion(self, completion: Mapping[int, FieldValue], batch_no: int) -> Response:
        """0320 (60.3 201) of one completion, from the fields of its 0220."""
        return self.exchange(
            Mti.BATCH_UPLOAD_ADVICE, upload_request(completion, batch_no), signed=False
        )

    def end_upload(self, count: int, batch_no: int) -> Response:
        """0320 (60.3 202): the number of 0320 uploads sent."""
        return self.send_upload(self.end_upload_request(count, batch_no))

    def end_upload_request(self, count: int, batch_no: int) -> dict[int, FieldValue]:
        """The end-of-upload 0320 (a new STAN); keep it to send it again unchanged."""
        return {
            11: f"{self.next_stan():06d}",
            41: self.terminal_id,
            42: self.merchant_id,
            48: encode_batch_count(count),
            60: encode_field60(
                Field60(TypeCode.NETWORK_MANAGEMENT, batch_no, NetworkCode.BATCH_UPLOAD_END)
            ),
        }

    def send_upload(self, fields: Mapping[int, FieldValue]) -> Response:
        """A 0320 built by ``upload_request`` or ``end_upload_request``."""
        return self.exchange(Mti.BATCH_UPLOAD_ADVICE, fields, signed=False)


def completion_request(
    request: Mapping[int, FieldValue], rrn: str, done: PurchaseDone | LoadDone
) -> dict[int, FieldValue]:
    """The 0220 of the 0200 ``request`` (approved with ``rrn``) after the card's DEBIT or
    CREDIT: its fields 2 3 11 25 41 42 49 60, the amount, the RRN and the card's TAC (§4)."""
    if isinstance(done, PurchaseDone):
        epurse = EpurseData(
            asn=done.asn, card_counter=done.counter, transaction_type=EPURSE_TX_PURCHASE,
            psam_terminal_id=_psam_terminal_id(request), terminal_serial=done.terminal_serial,
            date_time_bcd=done.date_bcd + done.time_bcd, tac=done.tac,
        )  # fmt: skip
    else:
        epurse = EpurseData(
            asn=done.asn, card_counter=done.counter, transaction_type=EPURSE_TX_LOAD,
            psam_terminal_id=_psam_terminal_id(request), terminal_serial=LOAD_SERIAL,
            date_time_bcd=done.date_bcd + done.time_bcd, tac=done.tac,
        )  # fmt: skip
    fields: dict[int, FieldValue] = {n: request[n] for n in (2, 3, 11, 25, 41, 42, 49, 60)}
    fields[4] = f"{done.amount_fen:012d}"
    fields[37] = rrn
    fields[58] = encode_epurse_data(epurse)
    return fields


def reversal_request(
    request: Mapping[int, FieldValue], reason: ReversalReason | str
) -> dict[int, FieldValue]:
    """The 0400 of the 0200 ``request``: its fields and STAN again, + 39 the reason."""
    fields = dict(request)
    fields.pop(MAC_FIELD, None)
    fields[39] = ReversalReason(reason).value
    return fields


def upload_request(completion: Mapping[int, FieldValue], batch_no: int) -> dict[int, FieldValue]:
    """The 0320 (60.3 201) of a completion: fields 2 3 4 11 25 37 41 42 49 58 of its 0220."""
    fields: dict[int, FieldValue] = {
        n: completion[n] for n in (2, 3, 4, 11, 25, 37, 41, 42, 49, 58)
    }
    fields[60] = encode_field60(
        Field60(TypeCode.NETWORK_MANAGEMENT, batch_no, NetworkCode.BATCH_UPLOAD)
    )
    return fields


def _psam_terminal_id(request: Mapping[int, FieldValue]) -> bytes:
    raw = request[58]
    assert isinstance(raw, bytes)
    data = decode_epurse_data(raw)
    assert data.psam_terminal_id is not None
    return data.psam_terminal_id


# --- the card and the host together ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnlineResult:
    """One online transaction: its 0200/0210, what the card did, and the 0220's response
    (None when the host declined, or the card did not finish)."""

    auth: Authorised
    card: PurchaseDone | TornPurchase | LoadDone | None = None
    completion: Response | None = None
    reversal: Response | None = None


def online_purchase(
    link: HostLink, card: ApduLink, psam: Psam, amount_fen: int, now: datetime
) -> OnlineResult:
    """INITIALIZE, 0200, DEBIT (only if approved), 0220. A torn DEBIT is left to the caller
    (recover with ``card_flows.recover_purchase``, then ``complete_purchase`` or reverse)."""
    started = card_flows.begin_purchase(card, psam, amount_fen)
    auth = link.authorise_purchase(started)
    if not auth.approved:
        return OnlineResult(auth)
    done = card_flows.finish_purchase(card, psam, started, now)
    if isinstance(done, TornPurchase):
        return OnlineResult(auth, done)
    return OnlineResult(auth, done, link.complete_purchase(auth, done))


def _online_credit(
    link: HostLink, card: ApduLink, started: LoadStarted, auth: Authorised
) -> OnlineResult:
    if not auth.approved:
        return OnlineResult(auth)
    date_bcd, time_bcd, mac2 = auth.load_mac2()
    try:
        done = card_flows.finish_load(card, started, date_bcd, time_bcd, mac2)
    except CardRefused:  # the card refused the host's MAC2: nothing was credited
        return OnlineResult(auth, reversal=link.reverse(auth, ReversalReason.OTHER))
    return OnlineResult(auth, done, link.complete_load(auth, done))


def online_load(
    link: HostLink, card: ApduLink, amount_fen: int, terminal_id: bytes
) -> OnlineResult:
    """INITIALIZE FOR LOAD, 0200 (MAC1 out, MAC2 back), CREDIT FOR LOAD, 0220."""
    started = card_flows.begin_load(card, amount_fen, terminal_id)
    return _online_credit(link, card, started, link.authorise_load(started))


def online_refund(
    link: HostLink, card: ApduLink, original: Authorised, amount_fen: int, terminal_id: bytes
) -> OnlineResult:
    """A refund of ``original``: a load on the card with the host's MAC2."""
    started = card_flows.begin_load(card, amount_fen, terminal_id)
    return _online_credit(link, card, started, link.authorise_refund(started, original))
