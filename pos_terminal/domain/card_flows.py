"""The card side of the terminal's flows (card.md §2-§5): purchase through the PSAM, load with
an online MAC2, and recovery of a torn purchase or load by GET TRANSACTION PROVE.

Pure: the caller passes the time and the links. A link that loses the card raises CardGone;
the flows turn a CardGone at DEBIT/CREDIT into a ``Torn*`` result the caller recovers from,
because only then may the card have committed without the terminal seeing the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from paycore import bcd, pboc
from paycore.apdu import CommandApdu, decode_response
from paycore.errors import DecodeError
from paycore.money import format_fen
from paycore.purse import (
    KEY_INDEX,
    PSAM_AID,
    PURCHASE_LIMIT_FEN,
    SFI_EF15,
    WALLET_AID,
    CreditForLoadRequest,
    DebitRequest,
    DebitResponse,
    Ef15,
    InitLoadResponse,
    InitPurchaseResponse,
    InitRequest,
    ProveResponse,
    SamInitRequest,
    SamInitResponse,
    credit_for_load,
    debit_for_purchase,
    get_balance,
    get_transaction_prove,
    initialize_for_load,
    initialize_for_purchase,
    read_binary,
    sam_credit_purchase,
    sam_init_purchase,
    sam_read_terminal_id,
    select_aid,
)
from paycore.sw import SW
from pos_terminal.ports import ApduLink, LoadAuthority


class FlowError(Exception):
    """A flow that cannot go on; the message is one line for the merchant."""


class CardGone(FlowError):  # noqa: N818 - an event
    """The card left the field (or lost power) before it answered."""


class InsufficientBalance(FlowError):  # noqa: N818 - a verdict
    """The card's balance is below the amount (checked before INITIALIZE FOR PURCHASE)."""

    def __init__(self, balance_fen: int) -> None:
        self.balance_fen = balance_fen
        super().__init__(f"insufficient balance: {format_fen(balance_fen)} yuan on the card")


class CardRefused(FlowError):  # noqa: N818 - a verdict
    def __init__(self, step: str, sw: int) -> None:
        self.step = step
        self.sw = sw
        super().__init__(f"{step}: card answered {sw:04X}")


def send(link: ApduLink, command: CommandApdu, step: str) -> bytes:
    """Send one command; return its data on 9000, raise CardRefused otherwise."""
    try:
        response = decode_response(link.transmit(command.encode()))
    except DecodeError as exc:
        raise FlowError(f"{step}: malformed response ({exc})") from None
    if response.sw != SW.OK:
        raise CardRefused(step, response.sw)
    return response.data


@dataclass(frozen=True, slots=True)
class CardInfo:
    asn: bytes
    ef15: Ef15
    balance_fen: int


def read_card(card: ApduLink) -> CardInfo:
    send(card, select_aid(WALLET_AID), "SELECT wallet")
    ef15 = Ef15.decode(send(card, read_binary(SFI_EF15), "READ EF15"))
    balance = int.from_bytes(send(card, get_balance(), "GET BALANCE"), "big")
    return CardInfo(ef15.asn, ef15, balance)


@dataclass(frozen=True, slots=True)
class Psam:
    link: ApduLink
    terminal_id: bytes
    issuer_factor: bytes | None = None


def open_psam(link: ApduLink, issuer_factor: bytes | None = None) -> Psam:
    send(link, select_aid(PSAM_AID), "SELECT PSAM")
    return Psam(link, send(link, sam_read_terminal_id(), "PSAM READ BINARY"), issuer_factor)


@dataclass(frozen=True, slots=True)
class PurchaseDone:
    asn: bytes
    amount_fen: int
    balance_after_fen: int
    counter: int  # the offline counter INITIALIZE returned (the card's log holds counter + 1)
    terminal_serial: int
    date_bcd: bytes
    time_bcd: bytes
    tac: bytes
    mac2_verified: bool


@dataclass(frozen=True, slots=True)
class TornPurchase:
    """DEBIT was sent and no answer came: recover with the same card (recover_purchase)."""

    asn: bytes
    amount_fen: int
    balance_before_fen: int
    counter: int
    terminal_serial: int
    date_bcd: bytes
    time_bcd: bytes


@dataclass(frozen=True, slots=True)
class PurchaseStarted:
    """INITIALIZE FOR PURCHASE answered: what the terminal's 0200 carries (host_protocol.md §4,
    DF01-DF07). The card keeps its session until the next command to it, so the terminal may
    go online now and call ``finish_purchase`` after the host approved."""

    asn: bytes
    amount_fen: int
    init: InitPurchaseResponse
    psam_terminal_id: bytes


def begin_purchase(card: ApduLink, psam: Psam, amount_fen: int) -> PurchaseStarted:
    """Step 1 of a purchase: SELECT, READ EF15, GET BALANCE, INITIALIZE FOR PURCHASE."""
    if not 0 < amount_fen < PURCHASE_LIMIT_FEN:
        raise FlowError(f"amount {format_fen(amount_fen)} yuan: purchases are under 500.00 yuan")
    info = read_card(card)
    if amount_fen > info.balance_fen:
        raise InsufficientBalance(info.balance_fen)
    init = InitPurchaseResponse.decode(
        send(
            card,
            initialize_for_purchase(InitRequest(KEY_INDEX, amount_fen, psam.terminal_id)),
            "INITIALIZE FOR PURCHASE",
        )
    )
    return PurchaseStarted(info.asn, amount_fen, init, psam.terminal_id)


@dataclass(frozen=True, slots=True)
class DebitPrepared:
    """INIT SAM FOR PURCHASE answered: the DEBIT's serial, time and MAC1. A terminal journals
    this before the DEBIT, so a power cut during the DEBIT can still be recovered."""

    terminal_serial: int
    date_bcd: bytes
    time_bcd: bytes
    mac1: bytes = field(repr=False)

    def torn(self, started: PurchaseStarted) -> TornPurchase:
        init = started.init
        return TornPurchase(
            started.asn, started.amount_fen, init.balance_fen, init.offline_counter,
            self.terminal_serial, self.date_bcd, self.time_bcd,
        )  # fmt: skip


def prepare_debit(psam: Psam, started: PurchaseStarted, now: datetime) -> DebitPrepared:
    """Step 2a: INIT SAM FOR PURCHASE (the card sees nothing)."""
    init, amount_fen = started.init, started.amount_fen
    date_bcd, time_bcd = bcd.date_time(now)
    sam_request = SamInitRequest(
        init.random4, init.offline_counter, amount_fen, pboc.TYPE_EP_PURCHASE, date_bcd,
        time_bcd, init.key_version, init.alg_id, started.asn, psam.issuer_factor,
    )  # fmt: skip
    sam = SamInitResponse.decode(
        send(psam.link, sam_init_purchase(sam_request), "INIT SAM FOR PURCHASE")
    )
    return DebitPrepared(sam.terminal_serial, date_bcd, time_bcd, sam.mac1)


def finish_purchase(
    card: ApduLink, psam: Psam, started: PurchaseStarted, now: datetime
) -> PurchaseDone | TornPurchase:
    """Step 2 (no other command to the card in between): INIT SAM FOR PURCHASE, DEBIT FOR
    PURCHASE, CREDIT SAM FOR PURCHASE."""
    return debit(card, psam, started, prepare_debit(psam, started, now))


def debit(
    card: ApduLink, psam: Psam, started: PurchaseStarted, prepared: DebitPrepared
) -> PurchaseDone | TornPurchase:
    """Step 2b: DEBIT FOR PURCHASE, then CREDIT SAM FOR PURCHASE. No answer, or an answer
    that does not decode, is a ``TornPurchase``: the card may have debited (card.md §4)."""
    init, amount_fen = started.init, started.amount_fen
    date_bcd, time_bcd = prepared.date_bcd, prepared.time_bcd
    command = debit_for_purchase(
        DebitRequest(prepared.terminal_serial, date_bcd, time_bcd, prepared.mac1)
    )
    try:
        answer = DebitResponse.decode(send(card, command, "DEBIT FOR PURCHASE"))
    except CardRefused:
        raise
    except (FlowError, DecodeError):  # gone, or an answer we cannot read: ask the card later
        return prepared.torn(started)
    try:
        send(psam.link, sam_credit_purchase(answer.mac2), "CREDIT SAM FOR PURCHASE")
        verified = True
    except (CardRefused, CardGone):  # a PSAM gone here must not lose a purchase the card made
        verified = False  # the debit happened; the TAC still proves it to the host
    return PurchaseDone(
        started.asn, amount_fen, init.balance_fen - amount_fen, init.offline_counter,
        prepared.terminal_serial, date_bcd, time_bcd, answer.tac, verified,
    )  # fmt: skip


def purchase(
    card: ApduLink, psam: Psam, amount_fen: int, now: datetime
) -> PurchaseDone | TornPurchase:
    """An offline purchase: ``begin_purchase`` then ``finish_purchase``."""
    return finish_purchase(card, psam, begin_purchase(card, psam, amount_fen), now)


def recover(
    card: ApduLink, expected_asn: bytes, tx_type: int, counter: int
) -> ProveResponse | None:
    """card.md §4: the same card again, GET TRANSACTION PROVE with counter + 1.
    Returns the proof if the transaction happened, None if it did not."""
    info = read_card(card)
    if info.asn != expected_asn:
        raise FlowError("this is not the card of the interrupted transaction")
    try:
        return ProveResponse.decode(
            send(card, get_transaction_prove(tx_type, counter + 1), "GET TRANSACTION PROVE")
        )
    except CardRefused:
        return None


def recover_purchase(card: ApduLink, torn: TornPurchase) -> PurchaseDone | None:
    proof = recover(card, torn.asn, pboc.TYPE_EP_PURCHASE, torn.counter)
    if proof is None:
        return None
    return PurchaseDone(
        torn.asn, torn.amount_fen, torn.balance_before_fen - torn.amount_fen, torn.counter,
        torn.terminal_serial, torn.date_bcd, torn.time_bcd, proof.tac, False,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoadDone:
    asn: bytes
    amount_fen: int
    balance_after_fen: int
    counter: int
    date_bcd: bytes
    time_bcd: bytes
    tac: bytes


@dataclass(frozen=True, slots=True)
class LoadStarted:
    """INITIALIZE FOR LOAD answered: what the terminal's load (or refund) 0200 carries
    (DF01-DF07, DF0B MAC1, DF0D random). ``finish_load`` follows with the host's MAC2."""

    asn: bytes
    amount_fen: int
    terminal_id: bytes
    init: InitLoadResponse


def begin_load(card: ApduLink, amount_fen: int, terminal_id: bytes) -> LoadStarted:
    """Step 1 of a load (or of a refund, a load on the card): SELECT, READ EF15, GET BALANCE,
    INITIALIZE FOR LOAD."""
    info = read_card(card)
    init = InitLoadResponse.decode(
        send(
            card,
            initialize_for_load(InitRequest(KEY_INDEX, amount_fen, terminal_id)),
            "INITIALIZE FOR LOAD",
        )
    )
    return LoadStarted(info.asn, amount_fen, terminal_id, init)


def finish_load(
    card: ApduLink, started: LoadStarted, date_bcd: bytes, time_bcd: bytes, mac2: bytes
) -> LoadDone:
    """Step 2 (no other command to the card in between): CREDIT FOR LOAD with the issuer's
    MAC2 over ``date_bcd`` and ``time_bcd`` (the host's DF09 when the host sent MAC2)."""
    init = started.init
    try:
        tac = send(
            card,
            credit_for_load(CreditForLoadRequest(date_bcd, time_bcd, mac2)),
            "CREDIT FOR LOAD",
        )
    except CardRefused:
        raise  # the card refused the MAC2: nothing was credited
    except FlowError as gone:  # gone, or an answer we cannot read: ask the card later
        raise LoadTorn(started, date_bcd, time_bcd, str(gone)) from None
    return LoadDone(
        started.asn, started.amount_fen, init.balance_fen + started.amount_fen,
        init.online_counter, date_bcd, time_bcd, tac,
    )  # fmt: skip


class LoadTorn(CardGone):
    """CREDIT FOR LOAD was sent and no answer came: the card may or may not have been credited.
    Still a CardGone for callers that only know that; a terminal that recovers passes it to
    ``recover_load`` with the same card (card.md §4: type 02, online counter + 1)."""

    def __init__(self, started: LoadStarted, date_bcd: bytes, time_bcd: bytes, why: str) -> None:
        self.started = started
        self.date_bcd = date_bcd
        self.time_bcd = time_bcd
        super().__init__(f"CREDIT FOR LOAD unanswered: {why}")


def recover_load(card: ApduLink, torn: LoadTorn) -> LoadDone | None:
    """The proof of a torn load from the same card, or None when the credit did not happen."""
    started = torn.started
    proof = recover(card, started.asn, pboc.TYPE_EP_LOAD, started.init.online_counter)
    if proof is None:
        return None
    return LoadDone(
        started.asn, started.amount_fen, started.init.balance_fen + started.amount_fen,
        started.init.online_counter, torn.date_bcd, torn.time_bcd, proof.tac,
    )  # fmt: skip


def load(
    card: ApduLink, authority: LoadAuthority, amount_fen: int, terminal_id: bytes, now: datetime
) -> LoadDone:
    """A load with an in-process authority: ``begin_load``, MAC2, ``finish_load``."""
    started = begin_load(card, amount_fen, terminal_id)
    date_bcd, time_bcd = bcd.date_time(now)
    mac2 = authority.authorise_load(
        started.asn, started.init, amount_fen, terminal_id, date_bcd, time_bcd
    )
    return finish_load(card, started, date_bcd, time_bcd, mac2)
