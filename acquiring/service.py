"""The host's message handling: every request of host_protocol.md §5, the duplicate rules of §6,
the MAC of §3 and the authorisation rules of ``acquiring.domain.rules``.

No sockets, no clock, no random source of its own: the wire layer hands over the message bytes
(TPDU and header already taken off), ``now`` and a random source, and gets back a ``Reply``.

Three steps, so the wire layer can keep the cheap one on its event loop:
1. ``decode_request(raw)`` (pure): the message codec, the §5 table, field 58 and every field
   the handlers rely on. Bad input answers 30 here, before any database work; a message whose
   MTI is not one of our requests cannot be answered and closes the connection.
2. ``handle(request, now, random_bytes, uow)``: one request against one ``HostUnitOfWork``.
   It writes its effect *and* the response (exchange log, §6) into that unit, so both are
   committed together before the response leaves, or neither is.
3. ``answer(store, request, now, random_bytes)``: step 2 in a fresh unit of work, with the
   error boundary of style.md: a lost race on a unique key is retried once (the twin's record
   then answers: replay or 94); anything else answers 96 with nothing stored.

Our choices where the contract is silent (each is marked "our choice" below):
- a 0200 whose 60.2 is not the terminal's open batch answers 12 and asks for a new sign-on
  (the 0810 carries the open batch);
- a 0220 or 0400 whose original is missing, declined, reversed or of other content answers 25;
  a 0400 after the completion answers 12 (the card's TAC proves the debit); a 0400 whose
  amount differs answers 64;
- a replayed response is re-MACed with the terminal's current MAK: byte-identical while the
  MAK is unchanged, and still verifiable after a new sign-on (store-and-forward retries);
- the request digest of §6 covers MTI .. field 63 (not field 64), so a completion re-sent
  under a new MAK is still the same request.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final

from acquiring.domain import issuer, rules
from acquiring.domain.errors import DuplicateRecord
from acquiring.domain.model import (
    Authorisation,
    BatchTotals,
    BatchUploadRecord,
    Completion,
    ExchangeKey,
    ExchangeRecord,
    Merchant,
    MerchantStatus,
    Reversal,
    ReversalReason,
    TacVerdict,
    Terminal,
    TerminalSettlement,
    TerminalStatus,
    TxnKey,
    TxnKind,
    check_asn,
    check_merchant_id,
    check_rrn,
    check_terminal_id,
)
from acquiring.ports import HostUnitOfWork, Store, TxnState
from paycore import bcd, pboc
from paycore.errors import DecodeError, EncodeError
from paycore.iso8583.fields import (
    CURRENCY_CNY,
    EPURSE_TX_LOAD,
    EPURSE_TX_PURCHASE,
    SERVICE_CONDITION_EPURSE,
    EpurseData,
    EpurseSet,
    Field60,
    Field61,
    Mti,
    ProcessingCode,
    ResponseCode,
    SettlementResult,
    SettlementTotals,
    decode_batch_count,
    decode_epurse_data,
    decode_field60,
    decode_field61,
    decode_settlement_totals,
    encode_epurse_data,
    encode_field60,
    encode_settlement_totals,
    response_mti,
)
from paycore.iso8583.mac import (
    WorkingKeys,
    encode_signed_message,
    encode_working_keys,
    verify_message_mac,
)
from paycore.iso8583.message import (
    FieldValue,
    Message,
    RequestKind,
    RequestShape,
    classify_request,
    decode_message,
    echoes,
    encode_message,
)
from paycore.iso8583.spec import BITMAP_BYTES, MAC_BYTES, MAC_FIELD, MTI_BYTES
from paycore.purse import BALANCE_CEILING_FEN, InitLoadResponse

log = logging.getLogger(__name__)

RandomSource = Callable[[int], bytes]

#: The MTIs a response can be formed for (a 30 answer); any other MTI closes the connection.
REQUEST_MTIS: Final = frozenset(
    {
        Mti.SIGN_ON_REQUEST,
        Mti.NETWORK_MANAGEMENT_REQUEST,
        Mti.FINANCIAL_REQUEST,
        Mti.COMPLETION_ADVICE,
        Mti.REVERSAL_ADVICE,
        Mti.SETTLEMENT_REQUEST,
        Mti.BATCH_UPLOAD_ADVICE,
    }
)
WORKING_KEY_BYTES: Final = 16
#: Attempts at drawing a MAK whose right half is not all zero (§3: that would be single DES).
MAK_DRAWS_MAX: Final = 4
#: A unit of work that lost a race on a unique key is run once more, then answers 96.
UNIT_ATTEMPTS_MAX: Final = 2
STAN_MIN: Final = 1
STAN_MAX: Final = 999_999
BATCH_MIN: Final = 1
AUTH_CODE_MODULUS: Final = 1_000_000

_F = ResponseCode
_TXN_KIND_BY_CODE: Final[Mapping[str, TxnKind]] = {
    ProcessingCode.PURCHASE: TxnKind.PURCHASE,
    ProcessingCode.LOAD: TxnKind.LOAD,
    ProcessingCode.REFUND: TxnKind.REFUND,
}
_AUTHORISATIONS: Final = frozenset({RequestKind.PURCHASE, RequestKind.LOAD, RequestKind.REFUND})
_COMPLETIONS: Final = frozenset(
    {
        RequestKind.PURCHASE_COMPLETION,
        RequestKind.LOAD_COMPLETION,
        RequestKind.REFUND_COMPLETION,
    }
)
_REVERSALS: Final = frozenset(
    {RequestKind.PURCHASE_REVERSAL, RequestKind.LOAD_REVERSAL, RequestKind.REFUND_REVERSAL}
)
_REFUND_KINDS: Final = frozenset({RequestKind.REFUND, RequestKind.REFUND_REVERSAL})
#: Requests that share a terminal transaction key (TID, batch, STAN) and are logged for §6.
_LOGGED: Final = (
    _AUTHORISATIONS
    | _COMPLETIONS
    | _REVERSALS
    | {RequestKind.SETTLEMENT, RequestKind.BATCH_UPLOAD, RequestKind.BATCH_UPLOAD_END}
)


# --- what goes back to the wire layer ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one request message. ``message`` None: no response can be formed (the
    frame's MTI is not a request of ours): the wire layer closes the connection.
    ``sign_on_again`` sets the header's processing nibble to 3 (§1). ``code`` is field 39."""

    message: bytes | None
    code: str | None = None
    sign_on_again: bool = False

    def __repr__(self) -> str:  # the message can hold a card number
        size = None if self.message is None else len(self.message)
        return f"Reply(code={self.code!r}, sign_on_again={self.sign_on_again}, bytes={size})"


CLOSE: Final = Reply(None)


# --- step 1: decoding (pure) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A request that decoded, matched a row of §5 and passed every field check."""

    raw: bytes
    message: Message
    shape: RequestShape
    field60: Field60
    terminal_id: str
    merchant_id: str
    stan: int | None  # None only for the echo (no field 11)
    epurse: EpurseData | None
    txn_kind: TxnKind | None  # financial requests and batch uploads

    @property
    def kind(self) -> RequestKind:
        return self.shape.kind

    @property
    def mti(self) -> str:
        return self.message.mti

    @property
    def fields(self) -> Mapping[int, FieldValue]:
        return self.message.fields

    @property
    def batch_no(self) -> int:
        return self.field60.batch_number

    @property
    def asn(self) -> str:
        return self.message.text(2)

    @property
    def amount_fen(self) -> int:
        return int(self.message.text(4))

    def need_epurse(self) -> EpurseData:
        assert self.epurse is not None, self.kind
        return self.epurse

    def txn_key(self) -> TxnKey:
        assert self.stan is not None
        return TxnKey(self.terminal_id, self.batch_no, self.stan)

    def exchange_key(self) -> ExchangeKey:
        assert self.stan is not None
        return ExchangeKey(self.terminal_id, self.batch_no, self.stan, self.mti)

    def digest(self) -> bytes:
        """§6 "same content": SHA-256 over MTI .. field 63 (field 64, the MAC, excluded)."""
        body = self.raw[:-MAC_BYTES] if MAC_FIELD in self.fields else self.raw
        return hashlib.sha256(body).digest()

    def __repr__(self) -> str:
        return f"Request({self.kind.value} {self.mti} TID {self.terminal_id} STAN {self.stan})"


class _FormatError(Exception):
    """A request that decoded but breaks a rule of §2/§4 the codec does not check."""


def decode_request(raw: bytes) -> Request | Reply:
    """The request in ``raw`` (MTI .. field 64), or the Reply when it cannot be handled: 30
    (with the echoes that could be read) or CLOSE (MTI not one of our requests)."""
    try:
        message = decode_message(raw)
    except DecodeError as error:
        return _undecodable(raw, error)
    if message.mti not in REQUEST_MTIS:
        return CLOSE
    try:
        return _checked_request(raw, message)
    except (ValueError, _FormatError) as error:  # DecodeError, InvalidRecord are ValueErrors
        log.debug("format error in a %s: %s", message.mti, error)
        return format_error(message.mti, message.fields)


def format_error(mti: str, fields: Mapping[int, FieldValue]) -> Reply:
    """30, echoing what the request carried (unsigned: the MAC is checked after the format)."""
    return _unsigned_reply(mti, fields, _F.FORMAT_ERROR)


def _undecodable(raw: bytes, error: DecodeError) -> Reply:
    mti = raw[:MTI_BYTES].hex()
    if len(raw) < MTI_BYTES or mti not in REQUEST_MTIS:
        return CLOSE
    return format_error(mti, _salvage(raw, error))


def _salvage(raw: bytes, error: DecodeError) -> Mapping[int, FieldValue]:
    """The fields before the one that failed to decode (fields are in bitmap order): clear the
    bits from the failing field on and decode the prefix that is left. Empty when the MTI or
    the bitmap itself failed."""
    head = MTI_BYTES + BITMAP_BYTES
    if error.what == "ISO 8583 message":  # trailing bytes: everything before them decoded
        return _decoded_or_empty(raw[: error.offset])
    prefix = "ISO 8583 field "
    if not error.what.startswith(prefix) or len(raw) < head:
        return {}
    failed = int(error.what[len(prefix) :])
    bitmap = int.from_bytes(raw[MTI_BYTES:head], "big")
    kept = bitmap & ~((1 << (65 - failed)) - 1)  # field n is bit 64 - n (LSB = 0)
    if kept == 0:
        return {}
    truncated = raw[:MTI_BYTES] + kept.to_bytes(BITMAP_BYTES, "big") + raw[head:]
    try:
        decode_message(truncated)
    except DecodeError as again:
        if again.what == "ISO 8583 message":
            return _decoded_or_empty(truncated[: again.offset])
        return {}
    return {}  # pragma: no cover - the field that failed is still in the bytes


def _decoded_or_empty(raw: bytes) -> Mapping[int, FieldValue]:
    try:
        return decode_message(raw).fields
    except DecodeError:
        return {}


def _need(condition: bool, reason: str) -> None:
    if not condition:
        raise _FormatError(reason)


def _checked_request(raw: bytes, message: Message) -> Request:
    shape = classify_request(message.mti, message.fields)  # DecodeError: 30
    f60 = decode_field60(message.text(60))
    terminal_id, merchant_id = message.text(41), message.text(42)
    check_terminal_id(terminal_id)  # InvalidRecord: 30
    check_merchant_id(merchant_id)
    stan: int | None = None
    if message.has(11):
        stan = int(message.text(11))
        _need(STAN_MIN <= stan <= STAN_MAX, "STAN must be 000001..999999")
    kind = shape.kind
    if kind in _LOGGED:
        _need(stan is not None, "this request needs a STAN")
        _need(f60.batch_number >= BATCH_MIN, "60.2 batch must be 000001..999999")
    if message.has(49):
        _need(message.text(49) == CURRENCY_CNY, "currency must be 156")
    epurse: EpurseData | None = None
    txn_kind: TxnKind | None = None
    if shape.epurse is not None:
        epurse = decode_epurse_data(message.binary(58), shape.epurse)
        _need(message.text(25) == SERVICE_CONDITION_EPURSE, "field 25 must be 91")
        code = message.text(3)
        _need(code in _TXN_KIND_BY_CODE, "unknown processing code")
        txn_kind = _TXN_KIND_BY_CODE[code]
        asn = message.text(2)
        check_asn(asn)
        _need(epurse.asn == bytes.fromhex(asn), "field 2 is not DF01")
        expected_type = EPURSE_TX_PURCHASE if txn_kind is TxnKind.PURCHASE else EPURSE_TX_LOAD
        _need(epurse.transaction_type == expected_type, "DF06 does not match field 3")
        if shape.epurse is EpurseSet.COMPLETION:
            check_rrn(message.text(37))
            assert epurse.date_time_bcd is not None
            _terminal_datetime(epurse.date_time_bcd)
    if kind in _REFUND_KINDS:
        check_rrn(message.text(37))
        decode_field61(message.text(61))
    if kind in _REVERSALS:
        ReversalReason(message.text(39))  # ValueError: 30
    if kind is RequestKind.SETTLEMENT:
        decode_settlement_totals(message.text(48))
    if kind is RequestKind.BATCH_UPLOAD_END:
        decode_batch_count(message.text(48))
    return Request(raw, message, shape, f60, terminal_id, merchant_id, stan, epurse, txn_kind)


def _terminal_datetime(date_time_bcd: bytes) -> datetime:
    """DF09 (YYYYMMDDhhmmss BCD) as a naive local datetime; _FormatError when not a real one."""
    try:
        return datetime.strptime(bcd.decode(date_time_bcd, "DF09"), "%Y%m%d%H%M%S")
    except ValueError:
        raise _FormatError("DF09 is not a date and time") from None


# --- step 2: one request in one unit of work ----------------------------------------------------


def _local(now: datetime) -> datetime:
    return now.astimezone(rules.SHANGHAI)


def _clock_fields(now: datetime) -> dict[int, FieldValue]:
    """Fields 12 / 13: the host's local time (Asia/Shanghai); the terminal adopts it."""
    local = _local(now)
    return {12: local.strftime("%H%M%S"), 13: local.strftime("%m%d")}


def _mmdd(day: date) -> str:
    return day.strftime("%m%d")


def _unsigned_reply(
    mti: str, request_fields: Mapping[int, FieldValue], code: ResponseCode
) -> Reply:
    """A decline that needs no key: echoes and field 39. Falls back to field 39 alone if an
    echo cannot be encoded again (it always can: it was decoded by the same codec)."""
    out = response_mti(mti)
    try:
        message = encode_message(out, {**echoes(request_fields), 39: code.value})
    except EncodeError:  # pragma: no cover - defensive
        message = encode_message(out, {39: code.value})
    return Reply(message, code.value)


@dataclass(frozen=True, slots=True)
class _Context:
    """What every handler has once the terminal is known."""

    request: Request
    now: datetime
    random_bytes: RandomSource
    uow: HostUnitOfWork
    terminal: Terminal
    mak: bytes | None
    merchant: Merchant | None  # the terminal's
    cutoff: time

    def business_date(self) -> date:
        """clearing.md §1: the Asia/Shanghai business date of an approval now."""
        return rules.business_date(self.now, self.cutoff)

    def reply(
        self,
        code: ResponseCode,
        extra: Mapping[int, FieldValue] | None = None,
        *,
        sign_on_again: bool = False,
        log_exchange: bool = False,
    ) -> Reply:
        """The response: the request's echoes, ``extra``, field 39, and field 64 when the
        request carries a MAC and the terminal has a MAK. ``log_exchange`` stores it in the
        exchange log (§6) in this unit of work."""
        request = self.request
        fields: dict[int, FieldValue] = {
            n: v for n, v in echoes(request.fields).items() if n in request.shape.response_fields
        }
        fields.update(extra or {})
        fields[39] = code.value
        mti = response_mti(request.mti)
        if request.shape.has_mac and self.mak is not None:
            message = encode_signed_message(self.mak, mti, fields)
        else:
            message = encode_message(mti, fields)
        if log_exchange:
            self.uow.put_exchange(
                ExchangeRecord(request.exchange_key(), request.digest(), message, self.now)
            )
        return Reply(message, code.value, sign_on_again)


def handle(
    request: Request,
    now: datetime,
    random_bytes: RandomSource,
    uow: HostUnitOfWork,
    *,
    cutoff: time = rules.CUTOFF_DEFAULT,
) -> Reply:
    """Answer one decoded request inside ``uow`` (the caller commits it)."""
    kind = request.kind
    logged = kind in _LOGGED  # its exchange-log entry comes with the terminal (§6)
    key = request.exchange_key() if logged else None
    session = uow.get_terminal_session(request.terminal_id, key)
    if session is None:
        return _unsigned_reply(request.mti, request.fields, _F.TERMINAL_NOT_REGISTERED)
    terminal = session.terminal
    ctx = _Context(request, now, random_bytes, uow, terminal, session.mak, session.merchant, cutoff)
    if kind is RequestKind.SIGN_ON:
        return _sign_on(ctx)
    if kind is RequestKind.ECHO:
        return ctx.reply(_F.APPROVED, _clock_fields(now))
    if kind is RequestKind.SIGN_OFF:
        uow.sign_off(terminal.terminal_id)
        return ctx.reply(_F.APPROVED)
    if request.shape.has_mac:
        # §3: every financial request carries a MAC under the MAK of the current sign-on.
        mak = session.mak
        if mak is None or not verify_message_mac(mak, request.raw):
            return ctx.reply(_F.MAC_ERROR, sign_on_again=True)
    else:
        refused = _terminal_refused(ctx)
        if refused is not None:
            return refused
    assert logged, kind
    if session.previous is not None:
        return _repeated(ctx, session.previous)
    if kind in _AUTHORISATIONS:
        return _authorisation(ctx)
    if kind in _COMPLETIONS:
        return _completion(ctx)
    if kind in _REVERSALS:
        return _reversal(ctx)
    if kind is RequestKind.SETTLEMENT:
        return _settlement(ctx)
    if kind is RequestKind.BATCH_UPLOAD:
        return _batch_upload(ctx)
    assert kind is RequestKind.BATCH_UPLOAD_END, kind
    return ctx.reply(_F.APPROVED, log_exchange=True)


def _terminal_refused(ctx: _Context) -> Reply | None:
    """For the requests without a MAC (settlement, batch upload): the terminal must be active,
    of an active merchant named in field 42, and signed on."""
    terminal = ctx.terminal
    if terminal.status is not TerminalStatus.ACTIVE:
        return ctx.reply(_F.NOT_PERMITTED_ON_TERMINAL)
    merchant = ctx.merchant
    if (
        ctx.request.merchant_id != terminal.merchant_id
        or merchant is None
        or merchant.status is not MerchantStatus.ACTIVE
    ):
        return ctx.reply(_F.INVALID_MERCHANT)
    if not terminal.signed_on:
        return ctx.reply(_F.MAC_ERROR, sign_on_again=True)
    return None


def _repeated(ctx: _Context, previous: ExchangeRecord) -> Reply:
    """§6: the same key with the same content is a retransmission: replay the first response,
    change nothing; with different content: 94."""
    request = ctx.request
    if not previous.same_request(request.digest()):
        log.warning(
            "duplicate key with different content: TID %s batch %d STAN %s MTI %s (94)",
            request.terminal_id, request.batch_no, request.stan, request.mti,
        )  # fmt: skip
        return ctx.reply(_F.DUPLICATE)
    stored = previous.response
    try:
        replayed = decode_message(stored)
    except DecodeError:  # pragma: no cover - we wrote it
        return Reply(stored, None)
    code = replayed.fields.get(39)
    if MAC_FIELD in replayed.fields and ctx.mak is not None:
        # Our choice: re-MAC under the current MAK (identical bytes while it is unchanged).
        without_mac = {n: v for n, v in replayed.fields.items() if n != MAC_FIELD}
        stored = encode_signed_message(ctx.mak, replayed.mti, without_mac)
    return Reply(stored, code if isinstance(code, str) else None)


# --- sign-on --------------------------------------------------------------------------------


def _draw_key(random_bytes: RandomSource) -> bytes:
    for _ in range(MAK_DRAWS_MAX):
        key = random_bytes(WORKING_KEY_BYTES)
        assert len(key) == WORKING_KEY_BYTES
        if key[8:] != bytes(8):  # §3: a zero right half would make it single DES
            return key
    raise RuntimeError("the random source keeps returning keys with a zero right half")


def _sign_on(ctx: _Context) -> Reply:
    """§3: a new PIK, MAK and TDK under the TMK, each with its KCV; the open batch in 60.2 and
    the host's clock in 12 / 13."""
    request, terminal, uow = ctx.request, ctx.terminal, ctx.uow
    if terminal.status is not TerminalStatus.ACTIVE:
        return ctx.reply(_F.NOT_PERMITTED_ON_TERMINAL)
    merchant = ctx.merchant
    if (
        request.merchant_id != terminal.merchant_id
        or merchant is None
        or merchant.status is not MerchantStatus.ACTIVE
    ):
        return ctx.reply(_F.INVALID_MERCHANT)
    keys = uow.get_terminal_keys(terminal.terminal_id)
    assert keys is not None, "a registered terminal has a TMK"
    working = WorkingKeys(
        pik=_draw_key(ctx.random_bytes),
        mak=_draw_key(ctx.random_bytes),
        tdk=_draw_key(ctx.random_bytes),
    )
    uow.sign_on(terminal.terminal_id, working.mak, ctx.now)
    f60 = Field60(
        type_code=request.field60.type_code,
        batch_number=terminal.batch_no,
        network_code=request.field60.network_code,
        read_capability=request.field60.read_capability,
    )
    extra: dict[int, FieldValue] = {
        **_clock_fields(ctx.now),
        11: request.message.text(11),
        37: uow.next_rrn(),
        60: encode_field60(f60),
        62: encode_working_keys(keys.tmk, working),
    }
    log.info("terminal %s signed on (batch %d)", terminal.terminal_id, terminal.batch_no)
    return ctx.reply(_F.APPROVED, extra)


# --- 0200: purchase, load, refund ---------------------------------------------------------------

#: Decisions taken before the merchant is known to be the terminal's: nothing is stored.
_NOT_STORED: Final = frozenset(
    {_F.TERMINAL_NOT_REGISTERED, _F.NOT_PERMITTED_ON_TERMINAL, _F.INVALID_MERCHANT, _F.MAC_ERROR}
)


def _auth_code(random_bytes: RandomSource) -> str:
    return f"{int.from_bytes(random_bytes(4), 'big') % AUTH_CODE_MODULUS:06d}"


def _authorisation(ctx: _Context) -> Reply:
    request, terminal, uow, now = ctx.request, ctx.terminal, ctx.uow, ctx.now
    if request.batch_no != terminal.batch_no:
        # Our choice: the terminal's batch is stale (settled elsewhere): 12, sign on again.
        return ctx.reply(_F.INVALID_TRANSACTION, sign_on_again=True)
    kind = request.txn_kind
    assert kind is not None
    epurse = request.need_epurse()
    day = ctx.business_date()
    purchase = kind is TxnKind.PURCHASE
    merchant = ctx.merchant
    merchant_limited = merchant is not None and merchant.daily_limit_fen is not None
    if purchase and merchant_limited:  # lock order: merchant, then card
        merchant = uow.get_merchant(terminal.merchant_id, for_update=True)
    card = uow.get_card(request.asn, for_update=purchase)
    context = rules.AuthContext(terminal, merchant, card)
    if purchase and card is not None:
        context = rules.AuthContext(
            terminal,
            merchant,
            card,
            card_day=uow.card_day_totals(request.asn, day),
            merchant_day_fen=(
                uow.merchant_day_totals(terminal.merchant_id, day).amount_fen
                if merchant_limited
                else 0
            ),
        )
    original_rrn = request.message.text(37) if kind is TxnKind.REFUND else None
    original: Authorisation | None = None
    if original_rrn is not None:
        original = uow.get_authorisation_by_rrn(original_rrn, for_update=True)
        context = rules.AuthContext(
            terminal,
            merchant,
            card,
            original=original,
            original_reversed=(original is not None and uow.get_reversal(original.key) is not None),
            refunded_before_fen=uow.refunded_total_fen(original_rrn),
        )
    auth_request = rules.AuthRequest(
        kind, request.terminal_id, request.merchant_id, request.asn, request.amount_fen,
        original_rrn,
    )  # fmt: skip
    decision = rules.authorise(auth_request, context)
    if decision.response_code in _NOT_STORED:
        return ctx.reply(decision.response_code, sign_on_again=decision.sign_on_again)
    code = decision.response_code
    extra: dict[int, FieldValue] = {**_clock_fields(now), 15: _mmdd(day)}
    if code is _F.APPROVED and original is not None and not _field61_names(request, original):
        code = _F.ORIGINAL_NOT_FOUND  # field 61 names another transaction than field 37
    if code is _F.APPROVED and kind is not TxnKind.PURCHASE:
        assert card is not None
        code, mac2_data = _load_mac2(ctx, card.issuer_id, epurse)
        if mac2_data is not None:
            extra[58] = mac2_data
    approved = code is _F.APPROVED
    rrn = uow.next_rrn()
    auth_code = _auth_code(ctx.random_bytes) if approved else None
    assert epurse.card_counter is not None and epurse.key_version is not None
    assert epurse.psam_terminal_id is not None and epurse.balance_before_fen is not None
    uow.add_authorisation(
        Authorisation(
            kind=kind,
            key=request.txn_key(),
            merchant_id=terminal.merchant_id,
            asn=request.asn,
            amount_fen=request.amount_fen,
            rrn=rrn,
            response_code=code,
            business_date=day,
            received_at=now,
            card_counter=epurse.card_counter,
            key_version=epurse.key_version,
            psam_terminal_id=epurse.psam_terminal_id,
            balance_before_fen=epurse.balance_before_fen,
            auth_code=auth_code,
            card_random=epurse.card_random,
            original_rrn=original_rrn,
        )
    )
    extra[37] = rrn
    if auth_code is not None:
        extra[38] = auth_code
    else:
        extra.pop(58, None)
    return ctx.reply(code, extra, log_exchange=True)


def _field61_names(request: Request, original: Authorisation) -> bool:
    f61: Field61 = decode_field61(request.message.text(61))
    return (f61.original_batch, f61.original_trace) == (original.key.batch_no, original.key.stan)


def _load_mac2(
    ctx: _Context, issuer_id: str, epurse: EpurseData
) -> tuple[ResponseCode, bytes | None]:
    """Load and refund (a load on the card): the card's balance ceiling (13), then MAC1 and
    MAC2 with the issuer's keys (card.md §3); MAC2 goes back in DF0C with the host's DF09."""
    request = ctx.request
    amount_fen = request.amount_fen
    assert epurse.balance_before_fen is not None
    if epurse.balance_before_fen + amount_fen > BALANCE_CEILING_FEN:
        return _F.INVALID_AMOUNT, None
    assert epurse.key_version is not None and epurse.card_counter is not None
    keys = ctx.uow.get_issuer_keys(issuer_id, epurse.key_version)
    if keys is None:
        log.warning("no keys of issuer %s version %d", issuer_id, epurse.key_version)
        return _F.DO_NOT_HONOUR, None
    assert epurse.alg_id is not None and epurse.card_random is not None
    assert epurse.mac1 is not None and epurse.psam_terminal_id is not None
    assert epurse.asn is not None
    init = InitLoadResponse(
        epurse.balance_before_fen, epurse.card_counter, epurse.key_version, epurse.alg_id,
        epurse.card_random, epurse.mac1,
    )  # fmt: skip
    date_bcd, time_bcd = bcd.date_time(_local(ctx.now))
    try:
        mac2 = issuer.load_mac2(
            keys, epurse.asn, init, amount_fen, epurse.psam_terminal_id, date_bcd, time_bcd
        )
    except issuer.LoadRefused:
        return _F.DO_NOT_HONOUR, None
    return _F.APPROVED, encode_epurse_data(EpurseData(date_time_bcd=date_bcd + time_bcd, mac2=mac2))


# --- 0220: completion ---------------------------------------------------------------------------


def _original(ctx: _Context) -> TxnState | None:
    """The approved authorisation a 0220 / 0400 belongs to (same TID, batch, STAN, processing
    code and card) with its completion and reversal flags, locked until the end of the unit;
    None when there is none."""
    request = ctx.request
    state = ctx.uow.get_txn_state(request.txn_key(), for_update=True)
    if state is None:
        return None
    auth = state.authorisation
    if not auth.approved or auth.kind is not request.txn_kind or auth.asn != request.asn:
        return None
    return state


class _TwinCommitted(DuplicateRecord):
    """The record this request would write is there already: a concurrent twin of the request
    committed between our exchange-log lookup and the row lock. ``answer`` runs the request
    again, and the exchange log then replays the twin's response (or answers 94)."""


def _completion(ctx: _Context) -> Reply:
    """The card did the transaction: store it with the verdict on its TAC. A bad TAC is stored
    as such (clearing holds it) and still answered 00: the card was debited or credited."""
    request, uow = ctx.request, ctx.uow
    state = _original(ctx)
    if state is None or request.message.text(37) != state.authorisation.rrn or state.reversed:
        return ctx.reply(_F.ORIGINAL_NOT_FOUND)
    if state.completed:
        raise _TwinCommitted("completion already stored")
    auth = state.authorisation
    epurse = request.need_epurse()
    assert epurse.date_time_bcd is not None and epurse.tac is not None
    assert epurse.card_counter is not None and epurse.terminal_serial is not None
    amount_fen = request.amount_fen
    if amount_fen < 1:
        return ctx.reply(_F.INVALID_AMOUNT)
    verdict = TacVerdict.OK if _tac_ok(ctx, auth, epurse, amount_fen) else TacVerdict.BAD
    if verdict is TacVerdict.BAD:
        log.warning(
            "bad TAC: TID %s batch %d STAN %s RRN %s (stored, flagged)",
            request.terminal_id, request.batch_no, request.stan, auth.rrn,
        )  # fmt: skip
    uow.add_completion(
        Completion(
            key=auth.key,
            amount_fen=amount_fen,
            tac=epurse.tac,
            tac_verdict=verdict,
            card_counter=epurse.card_counter,
            psam_serial=epurse.terminal_serial,
            terminal_datetime=_terminal_datetime(epurse.date_time_bcd),
            business_date=auth.business_date,
            received_at=ctx.now,
        )
    )
    extra = {15: _mmdd(auth.business_date), 37: auth.rrn}
    return ctx.reply(_F.APPROVED, extra, log_exchange=True)


def _tac_ok(ctx: _Context, auth: Authorisation, epurse: EpurseData, amount_fen: int) -> bool:
    """card.md §3 with the issuer's TAC master key of the card's key version."""
    card = ctx.uow.get_card(auth.asn)
    keys = None if card is None else ctx.uow.get_issuer_keys(card.issuer_id, auth.key_version)
    if keys is None:
        return False  # nothing to verify it with: flagged like a bad one
    assert epurse.asn is not None and epurse.date_time_bcd is not None and epurse.tac is not None
    assert epurse.psam_terminal_id is not None and epurse.terminal_serial is not None
    assert epurse.card_counter is not None and epurse.transaction_type is not None
    date_bcd, time_bcd = epurse.date_time_bcd[:4], epurse.date_time_bcd[4:]
    if auth.kind is TxnKind.PURCHASE:
        purchase = pboc.Purchase(
            amount_fen, epurse.psam_terminal_id, epurse.terminal_serial, date_bcd, time_bcd,
            epurse.transaction_type,
        )  # fmt: skip
        return issuer.purchase_tac_ok(keys, epurse.asn, purchase, epurse.tac)
    load = pboc.Load(amount_fen, epurse.psam_terminal_id, epurse.transaction_type)
    new_balance_fen = auth.balance_before_fen + amount_fen
    return issuer.load_tac_ok(
        keys, epurse.asn, new_balance_fen, epurse.card_counter, load, date_bcd, time_bcd,
        epurse.tac,
    )  # fmt: skip


# --- 0400: reversal -----------------------------------------------------------------------------


def _reversal(ctx: _Context) -> Reply:
    """§6: applies once (the exchange log replays a retransmission); an original the host never
    approved answers 25 and changes nothing."""
    request, uow = ctx.request, ctx.uow
    state = _original(ctx)
    if state is None:
        return ctx.reply(_F.ORIGINAL_NOT_FOUND)
    if state.reversed:
        raise _TwinCommitted("reversal already stored")
    auth = state.authorisation
    extra = {15: _mmdd(auth.business_date)}
    if request.amount_fen != auth.amount_fen:
        return ctx.reply(_F.AMOUNT_DIFFERS_FROM_ORIGINAL, extra)
    if state.completed:
        return ctx.reply(_F.INVALID_TRANSACTION, extra)  # our choice: the TAC proves it
    reason = ReversalReason(request.message.text(39))
    uow.add_reversal(Reversal(auth.key, reason, auth.business_date, ctx.now))
    return ctx.reply(_F.APPROVED, extra, log_exchange=True)


# --- 0500: settlement; 0320: batch upload ---------------------------------------------------------


def _totals(text: str) -> BatchTotals:
    t = decode_settlement_totals(text)
    return BatchTotals(
        t.purchase_amount_fen, t.purchase_count, t.refund_amount_fen, t.refund_count,
        t.load_amount_fen, t.load_count,
    )  # fmt: skip


def _settlement(ctx: _Context) -> Reply:
    """Compare the terminal's totals with the host's own for the batch, store both, close the
    batch (the open batch number increments); field 48 comes back with the verdicts."""
    request, terminal, uow, now = ctx.request, ctx.terminal, ctx.uow, ctx.now
    if request.batch_no != terminal.batch_no:
        return ctx.reply(_F.INVALID_TRANSACTION)  # our choice: only the open batch settles
    terminal_totals = _totals(request.message.text(48))
    host_totals = uow.batch_totals(terminal.terminal_id, request.batch_no)
    day = ctx.business_date()
    settlement = TerminalSettlement.of(
        terminal.terminal_id, request.batch_no, terminal_totals, host_totals, day, now
    )
    uow.add_settlement(settlement)
    uow.close_batch(terminal.terminal_id, request.batch_no)

    def verdict(balanced: bool) -> SettlementResult:
        return SettlementResult.BALANCED if balanced else SettlementResult.NOT_BALANCED

    t = terminal_totals
    answered = SettlementTotals(
        t.purchase_amount_fen, t.purchase_count, t.refund_amount_fen, t.refund_count,
        t.load_amount_fen, t.load_count, verdict(settlement.first_half_balanced),
        verdict(settlement.second_half_balanced),
    )  # fmt: skip
    log.info(
        "terminal %s batch %d settled: %s",
        terminal.terminal_id, request.batch_no,
        "balanced" if settlement.balanced else "NOT balanced",
    )  # fmt: skip
    extra: dict[int, FieldValue] = {
        **_clock_fields(now),
        15: _mmdd(day),
        37: uow.next_rrn(),
        48: encode_settlement_totals(answered),
    }
    return ctx.reply(_F.APPROVED, extra, log_exchange=True)


def _batch_upload(ctx: _Context) -> Reply:
    """One 0320 per completion, kept as the terminal sent it (three-way reconciliation)."""
    request = ctx.request
    epurse = request.need_epurse()
    assert request.txn_kind is not None and epurse.tac is not None
    assert epurse.card_counter is not None and epurse.terminal_serial is not None
    assert epurse.date_time_bcd is not None
    ctx.uow.add_batch_upload(
        BatchUploadRecord(
            key=request.txn_key(),
            kind=request.txn_kind,
            asn=request.asn,
            amount_fen=request.amount_fen,
            rrn=request.message.text(37),
            tac=epurse.tac,
            card_counter=epurse.card_counter,
            psam_serial=epurse.terminal_serial,
            terminal_datetime=_terminal_datetime(epurse.date_time_bcd),
            received_at=ctx.now,
        )
    )
    return ctx.reply(_F.APPROVED, log_exchange=True)


# --- step 3: the unit of work and the error boundary ----------------------------------------


def system_error(request: Request) -> Reply:
    """96, unsigned, nothing stored."""
    return _unsigned_reply(request.mti, request.fields, _F.SYSTEM_ERROR)


def answer(
    store: Store,
    request: Request,
    now: datetime,
    random_bytes: RandomSource,
    *,
    cutoff: time = rules.CUTOFF_DEFAULT,
) -> Reply:
    """``handle`` in its own unit of work: the effect and the logged response commit together
    (before the caller sends the response) or not at all."""
    for attempt in range(1, UNIT_ATTEMPTS_MAX + 1):
        try:
            with store.unit() as uow:
                return handle(request, now, random_bytes, uow, cutoff=cutoff)
        except DuplicateRecord:
            # A concurrent twin (same exchange key) committed first: look again, and the
            # exchange log answers (replay or 94).
            log.info("%r lost a race on a unique key (attempt %d)", request, attempt)
        except Exception:
            log.exception("internal error answering %r: 96, nothing stored", request)
            return system_error(request)
    return system_error(request)


def answer_group(
    store: Store,
    requests: Sequence[Request],
    clock: Callable[[], datetime],
    random_bytes: RandomSource,
    *,
    cutoff: time = rules.CUTOFF_DEFAULT,
) -> list[Reply]:
    """Group commit (ADR 0004): every request of ``requests`` inside one unit of work, each in
    its own savepoint, then one commit; the replies, in order, are valid only once this
    returns (the caller sends none before). A later request sees an earlier one's records, so
    a twin in the same group replays the first's response. A request that lost a race on a
    unique key runs once more in a new savepoint (the twin's record then answers: replay or
    94). A request that raises undoes only its savepoint; after the group's commit it is run
    once more alone, in a unit of its own (``answer``: a lock conflict between two groups on
    PostgreSQL then succeeds; a bug answers 96). If the group's unit of work cannot start or
    commit, nothing of it is stored: each request is answered alone."""
    replies: list[Reply | None] = []
    try:
        with store.unit() as uow:
            for request in requests:
                replies.append(_answer_in_savepoint(uow, request, clock(), random_bytes, cutoff))
    except Exception:
        log.exception("a group of %d could not commit: answering each alone", len(requests))
        return [answer(store, r, clock(), random_bytes, cutoff=cutoff) for r in requests]
    return [
        reply if reply is not None else answer(store, request, clock(), random_bytes, cutoff=cutoff)
        for request, reply in zip(requests, replies, strict=True)
    ]


def _answer_in_savepoint(
    uow: HostUnitOfWork,
    request: Request,
    now: datetime,
    random_bytes: RandomSource,
    cutoff: time,
) -> Reply | None:
    """``handle`` in a savepoint of the group's unit; None when it raised (undone)."""
    for attempt in range(1, UNIT_ATTEMPTS_MAX + 1):
        try:
            with uow.savepoint():
                return handle(request, now, random_bytes, uow, cutoff=cutoff)
        except DuplicateRecord:
            log.info("%r lost a race on a unique key (attempt %d)", request, attempt)
        except Exception:
            log.warning("error answering %r in a group: undone, run again alone", request)
            return None
    return system_error(request)


class HostService:
    """The message path as one object for the wire layer: ``decode`` (cheap, pure),
    ``answer`` (one blocking unit of work) or ``answer_group`` (one unit of work for several
    requests, ADR 0004); ``handle_message`` decodes and answers."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        random_bytes: RandomSource,
        *,
        cutoff: time = rules.CUTOFF_DEFAULT,
    ) -> None:
        self.store = store
        self._clock = clock
        self._random_bytes = random_bytes
        self._cutoff = cutoff

    def decode(self, raw: bytes) -> Request | Reply:
        return decode_request(raw)

    def answer(self, request: Request) -> Reply:
        return answer(
            self.store, request, self._aware_now(), self._random_bytes, cutoff=self._cutoff
        )

    def answer_group(self, requests: Sequence[Request]) -> list[Reply]:
        return answer_group(
            self.store, requests, self._aware_now, self._random_bytes, cutoff=self._cutoff
        )

    def _aware_now(self) -> datetime:
        now = self._clock()
        if now.utcoffset() is None:
            raise ValueError("the host's clock must return aware datetimes")
        return now

    def handle_message(self, raw: bytes) -> Reply:
        decoded = self.decode(raw)
        return decoded if isinstance(decoded, Reply) else self.answer(decoded)


__all__ = [
    "CLOSE",
    "HostService",
    "RandomSource",
    "Reply",
    "Request",
    "answer",
    "answer_group",
    "decode_request",
    "handle",
]
