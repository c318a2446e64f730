"""The POS terminal application: sale, load, refund, balance, history and day-end settlement
over a card reader, a PSAM and the host link, with a crash-safe journal (docs/pos-terminal.md).

- Every online transaction is journalled before its 0200 leaves (the reversal record of
  host_protocol.md §6) and at every step after; completions (0220) and reversals (0400) are
  forwarded from the journal until the host answers with a response code.
- An unanswered 0200 is reversed (98) before the next online transaction, up to
  ``reversal_tries_max`` tries, then left for manual handling.
- A card pulled during DEBIT / CREDIT leaves a torn entry: the next presentation of the same
  card proves (GET TRANSACTION PROVE) and completes it, or reverses the authorisation.
- The link signs on when it has no MAC key, after A0 or the header's "sign on again", and
  reconnects when the connection dropped.

Not thread-safe: one ``Terminal`` per terminal, one call at a time.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple, TypeVar

from paycore import pboc
from paycore.errors import DecodeError, PaycoreError
from paycore.iso8583.fields import SettlementTotals, decode_settlement_totals
from paycore.iso8583.message import FieldValue
from paycore.money import format_fen
from paycore.purse import BALANCE_CEILING_FEN, PURCHASE_LIMIT_FEN
from pos_terminal.adapters.host_link import (
    Authorised,
    HostLink,
    HostLinkError,
    HostProtocolError,
    Response,
    ResponseMacError,
    completion_request,
    reversal_request,
)
from pos_terminal.adapters.journal import BATCH_MAX, Journal, decode_fields, encode_fields
from pos_terminal.domain import card_flows
from pos_terminal.domain import journal_model as jm
from pos_terminal.domain.card_flows import (
    CardRefused,
    FlowError,
    InsufficientBalance,
    LoadDone,
    LoadStarted,
    LoadTorn,
    Psam,
    PurchaseDone,
    PurchaseStarted,
    TornPurchase,
)
from pos_terminal.domain.journal_model import REVERSAL_TRIES_MAX_DEFAULT, Kind, State
from pos_terminal.domain.journal_model import Entry as JournalEntry
from pos_terminal.ports import ApduLink

__all__ = [
    "CardBalance",
    "HostOutcome",
    "JournalEntry",
    "SettlementOutcome",
    "Terminal",
    "TerminalCode",
    "TerminalConfig",
    "TerminalError",
    "TxnOutcome",
]

TIMEOUT_S_DEFAULT: Final = 30.0
TIMEOUT_S_MAX: Final = 300.0
REVERSAL_TRIES_LIMIT: Final = 100
#: The card's "insufficient balance" status word (card.md).
SW_BALANCE: Final = 0x9401

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class TerminalCode(enum.StrEnum):
    """``TxnOutcome.code`` when the terminal decided, not the host (host codes are 2 chars)."""

    AMOUNT = "amount"  # refused before touching the card: <= 0 or >= 500.00 yuan
    BALANCE = "balance"  # the card's balance is too low (9401 / checked before the 0200)
    CARD = "card"  # the card refused a command, answered badly, or was not there
    TORN = "torn"  # the card left during DEBIT / CREDIT: present the same card
    WRONG_CARD = "wrong-card"  # a torn transaction waits for another card
    RECOVERED = "recovered"  # this presentation finished an earlier torn transaction
    NO_HOST = "no-host"  # the host could not be reached (nothing was authorised)
    NO_ANSWER = "no-answer"  # the 0200 got no (usable) answer: it will be reversed
    PENDING = "pending"  # an earlier reversal could not be sent yet: nothing new was started
    ORIGINAL = "original"  # a refund whose original sale is not in this terminal's journal
    PSAM = "psam"  # the PSAM is missing or refused


class TerminalError(Exception):
    """A request the terminal cannot carry out at all (one line, for the merchant)."""


@dataclass(frozen=True)
class TerminalConfig:
    terminal_id: str  # field 41, 8 characters
    merchant_id: str  # field 42, 15 characters
    merchant_name: str
    host: tuple[str, int]
    tmk: bytes = field(repr=False)  # never logged, never returned
    timeout_s: float = TIMEOUT_S_DEFAULT
    reversal_tries_max: int = REVERSAL_TRIES_MAX_DEFAULT
    issuer_factor: bytes | None = None  # F_issuer for the PSAM's two-level derivation
    operator: str = "01"  # field 63 of the sign-on and settlement

    def __post_init__(self) -> None:
        if len(self.terminal_id) != 8 or len(self.merchant_id) != 15:
            raise ValueError("the terminal ID is 8 characters and the merchant ID 15")
        if len(self.tmk) != 16:
            raise ValueError("the TMK is 16 bytes")
        if not 0 < self.timeout_s <= TIMEOUT_S_MAX:
            raise ValueError(f"timeout_s is over 0 and at most {TIMEOUT_S_MAX}")
        if not 1 <= self.reversal_tries_max <= REVERSAL_TRIES_LIMIT:
            raise ValueError(f"reversal_tries_max is 1..{REVERSAL_TRIES_LIMIT}")


@dataclass(frozen=True)
class TxnOutcome:
    kind: str  # "sale" | "load" | "refund"
    approved: bool
    code: str  # host response code (2 chars) or a TerminalCode value
    message: str  # one readable line for the merchant
    amount_fen: int
    asn: str | None
    rrn: str | None
    auth_code: str | None
    tac: bytes | None
    stan: int
    batch_no: int
    business_date_mmdd: str | None
    balance_after_fen: int | None
    at: datetime  # terminal local time


@dataclass(frozen=True)
class HostOutcome:
    """A sign-on or echo."""

    ok: bool
    code: str
    message: str
    batch_no: int
    at: datetime


@dataclass(frozen=True)
class SettlementOutcome:
    batch_no: int  # the batch that was settled
    balanced: bool
    uploaded: int  # 0320 uploads sent (0 when balanced)
    terminal_totals: SettlementTotals
    host_totals: SettlementTotals | None  # the 0510's field 48 (None when it did not come)
    code: str
    message: str
    next_batch_no: int
    at: datetime

    @property
    def approved(self) -> bool:
        return self.code == "00"


class CardBalance(NamedTuple):
    asn: str
    balance_fen: int


#: One readable line per host response code (host_protocol.md §5).
RESPONSE_TEXT: Final[dict[str, str]] = {
    "00": "approved",
    "03": "invalid merchant",
    "05": "do not honour",
    "12": "invalid transaction",
    "13": "invalid amount",
    "14": "invalid card",
    "25": "original not found",
    "30": "format error",
    "51": "insufficient balance",
    "54": "expired card",
    "58": "not permitted on this terminal",
    "61": "over the daily amount limit",
    "62": "card blocked",
    "64": "amount differs from the original",
    "65": "over the daily count limit",
    "94": "duplicate",
    "96": "host system error",
    "97": "terminal not registered",
    "A0": "MAC error: the terminal signs on again",
}


def response_text(code: str) -> str:
    return RESPONSE_TEXT.get(code, f"declined ({code})")


class _Stop(Exception):  # noqa: N818 - control flow inside one call
    """Ends a transaction early with an outcome."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def _optional_text(response: Response, number: int) -> str | None:
    value = response.message.fields.get(number)
    return value if isinstance(value, str) else None


def _asn_tail(asn: str | None) -> str:
    return f"card ...{asn[-4:]}" if asn else "the same card"


class Terminal:
    """One POS terminal: its reader, its PSAM, its journal and its link to the host."""

    def __init__(
        self,
        config: TerminalConfig,
        journal: Journal,
        card: ApduLink,
        psam: ApduLink,
        clock: Callable[[], datetime],
        link_factory: Callable[[], HostLink] | None = None,
    ) -> None:
        if config.reversal_tries_max < 1:
            raise ValueError("reversal_tries_max is at least 1")
        self.config = config
        self.journal = journal
        self.card = card
        self._psam_link = psam
        self._clock = clock
        self._link_factory = link_factory or self._default_link
        self._link: HostLink | None = None
        self._psam: Psam | None = None
        self._sign_on_needed = False
        self._resume()

    def __repr__(self) -> str:
        return f"Terminal({self.config.terminal_id}, {self.journal!r})"

    def _default_link(self) -> HostLink:
        c = self.config
        return HostLink(
            c.host, c.terminal_id, c.merchant_id, c.tmk, timeout_s=c.timeout_s,
            operator=c.operator,
        )  # fmt: skip

    # --- after a restart --------------------------------------------------------------------

    def _resume(self) -> None:
        """Entries a crash left in the middle (docs/pos-terminal.md, "restart"):
        AUTH_SENT -> reverse (98: the 0200 may have reached the host); AUTHORISED with the
        card step armed -> TORN (the card may have paid: ask it); AUTHORISED before that ->
        reverse (06: the card was never asked to pay)."""
        for entry in self.journal.unfinished():
            if entry.state is State.AUTH_SENT:
                self._to_reversal(jm.auth_unanswered(entry, jm.Reason.NO_ANSWER))
            elif entry.state is State.AUTHORISED:
                card = self.journal.card(entry.entry_id) or {}
                if card.get("armed"):
                    self.journal.save(jm.card_torn(entry))
                else:
                    self._to_reversal(
                        jm.card_not_done(entry, "terminal restarted before the card step")
                    )

    # --- host link --------------------------------------------------------------------------

    def _link_object(self) -> HostLink:
        if self._link is None:
            link = self._link_factory()
            link.stan_source = self.journal.next_stan
            link.batch_no = self.journal.batch_no
            stored = self.journal.working_keys()
            if stored is not None:
                try:
                    link.adopt_working_keys(stored)
                except HostLinkError:
                    self.journal.set_working_keys(None)
            self._link = link
        return self._link

    def _sign_on(self, link: HostLink) -> Response:
        response = link.sign_on()
        if response.approved:
            self.journal.set_working_keys(link.working_keys_field)
            self.journal.set_batch_no(link.batch_no)
            self._sign_on_needed = False
        else:
            self.journal.set_working_keys(None)
        return response

    def _ready(self) -> HostLink:
        """A connected, signed-on link; raises _Stop(NO_HOST) when there is none."""
        link = self._link_object()
        try:
            if not link.connected:
                link.connect()
            if link.mak is None or self._sign_on_needed:
                response = self._sign_on(link)
                if not response.approved:
                    raise _Stop(
                        response.code or TerminalCode.NO_HOST,
                        f"sign-on refused: {response_text(response.code)}",
                    )
        except HostLinkError as exc:
            raise _Stop(TerminalCode.NO_HOST, f"host unavailable: {exc}") from None
        return link

    def _noted(self, response: Response) -> Response:
        if response.sign_on_again or response.code == jm.MAC_ERROR:
            self._sign_on_needed = True
        return response

    def sign_on(self) -> HostOutcome:
        """0800: new working keys and the host's batch number; then forwards what is owed."""
        now = self._clock()
        link = self._link_object()
        try:
            if not link.connected:
                link.connect()
            response = self._sign_on(link)
        except HostLinkError as exc:
            return HostOutcome(False, TerminalCode.NO_HOST, f"host unavailable: {exc}",
                               self.journal.batch_no, now)  # fmt: skip
        if not response.approved:
            text = f"sign-on refused: {response_text(response.code)}"
            return HostOutcome(False, response.code, text, self.journal.batch_no, now)
        self._forward(link)
        return HostOutcome(True, response.code, f"signed on, batch {link.batch_no:06d}",
                           link.batch_no, now)  # fmt: skip

    def echo(self) -> HostOutcome:
        now = self._clock()
        link = self._link_object()
        try:
            response = self._noted(link.echo())
        except HostLinkError as exc:
            return HostOutcome(False, TerminalCode.NO_HOST, f"host unavailable: {exc}",
                               self.journal.batch_no, now)  # fmt: skip
        return HostOutcome(response.approved, response.code, response_text(response.code),
                           self.journal.batch_no, now)  # fmt: skip

    # --- store and forward --------------------------------------------------------------------

    def _to_reversal(self, entry: JournalEntry) -> JournalEntry:
        """Save ``entry`` (now REVERSAL_PENDING) with its 0400's fields."""
        assert entry.state is State.REVERSAL_PENDING and entry.reason is not None
        request = self.journal.request(entry.entry_id)
        return self.journal.save(entry, forward=reversal_request(request, entry.reason.value))

    def _forward_one(self, link: HostLink, entry: JournalEntry) -> tuple[JournalEntry, bool]:
        """Send the owed 0220 / 0400 of ``entry`` once. Returns the entry as saved and whether
        the host could be reached (False: stop forwarding for now)."""
        fields = self.journal.forward(entry.entry_id)
        assert fields is not None, f"entry {entry.entry_id} owes a message but has none"
        tries_max = self.config.reversal_tries_max
        try:
            if entry.state is State.COMPLETION_PENDING:
                response = self._noted(link.send_completion(fields))
            else:
                response = self._noted(link.send_reversal(fields))
        except (ResponseMacError, HostProtocolError) as exc:
            saved = self.journal.save(jm.forward_unanswered(entry, tries_max, code=None))
            log.warning("entry %d: %s", entry.entry_id, exc)
            return saved, True
        except HostLinkError as exc:
            saved = self.journal.save(jm.forward_unanswered(entry, tries_max))
            log.warning("entry %d: %s", entry.entry_id, exc)
            return saved, False
        saved = self.journal.save(jm.forward_answered(entry, response.code, tries_max))
        if response.code == jm.DUPLICATE:
            log.warning("entry %d: the host answered 94 (duplicate): for review", entry.entry_id)
        return saved, True

    def _forward(self, link: HostLink) -> None:
        """Forward everything owed, reversals first; stops at the first unreachable host."""
        for entry in jm.to_forward(self.journal.unfinished()):
            if self._sign_on_needed:
                try:
                    if not self._sign_on(link).approved:
                        return
                except HostLinkError as exc:
                    log.warning("sign-on before forwarding: %s", exc)
                    return
            _, reachable = self._forward_one(link, entry)
            if not reachable:
                return

    def flush(self) -> int:
        """Forward pending reversals and completions now (and finish a day end in progress);
        returns how many remain owed (a day end in progress counts as one)."""
        settlement = self.journal.settlement()
        if jm.to_forward(self.journal.unfinished()) or settlement is not None:
            with contextlib.suppress(_Stop):
                link = self._ready()
                self._forward(link)
                if settlement is not None:
                    self._run_settlement(link, settlement, self._clock())
        owed = len(jm.to_forward(self.journal.unfinished()))
        return owed + (self.journal.settlement() is not None)

    def _clear_backlog(self) -> HostLink:
        """Before a new online transaction (§6): forward what is owed. Raises _Stop while an
        unanswered 0200's reversal is still owed, or a torn transaction waits for its card."""
        link = self._ready()
        self._forward(link)
        settlement = self.journal.settlement()
        if settlement is not None:
            self._run_settlement(link, settlement, self._clock())
            settlement = self.journal.settlement()
            if settlement is not None and settlement["phase"] == "settle":
                raise _Stop(TerminalCode.PENDING, "the day end is not finished: settle again")
        left = jm.blocking(self.journal.unfinished())
        if any(e.state is State.REVERSAL_PENDING for e in left):
            raise _Stop(
                TerminalCode.PENDING,
                "an earlier transaction's reversal is not through yet: try again",
            )
        return self._ready()

    # --- the PSAM and the card ------------------------------------------------------------------

    def _psam_ready(self) -> Psam:
        if self._psam is None:
            try:
                self._psam = card_flows.open_psam(self._psam_link, self.config.issuer_factor)
            except (FlowError, DecodeError) as exc:
                raise _Stop(TerminalCode.PSAM, f"PSAM: {exc}") from None
        return self._psam

    def balance(self) -> CardBalance:
        """The card's ASN and balance, read locally (no host). Raises TerminalError."""
        try:
            info = card_flows.read_card(self.card)
        except (FlowError, DecodeError) as exc:
            raise TerminalError(f"cannot read the card: {exc}") from None
        return CardBalance(info.asn.hex(), info.balance_fen)

    def history(self, limit: int = 20) -> list[JournalEntry]:
        """The newest ``limit`` journal entries, newest first."""
        return self.journal.recent(limit)

    def pending(self) -> list[JournalEntry]:
        """Entries not final yet (owed messages, torn, unanswered), oldest first."""
        return self.journal.unfinished()

    # --- outcomes -------------------------------------------------------------------------------

    def _outcome(
        self,
        entry: JournalEntry,
        approved: bool,
        code: str,
        message: str,
    ) -> TxnOutcome:
        return TxnOutcome(
            kind=entry.kind.value, approved=approved, code=code, message=message,
            amount_fen=entry.amount_fen, asn=entry.asn, rrn=entry.rrn, auth_code=entry.auth_code,
            tac=None if entry.tac is None else bytes.fromhex(entry.tac), stan=entry.stan,
            batch_no=entry.batch_no, business_date_mmdd=entry.business_date_mmdd,
            balance_after_fen=entry.balance_after_fen, at=entry.at,
        )  # fmt: skip

    def _refused(
        self, kind: Kind, amount_fen: int, at: datetime, stop: _Stop, asn: str | None = None
    ) -> TxnOutcome:
        """An outcome for a transaction that sent nothing (not journalled)."""
        return TxnOutcome(
            kind=kind.value, approved=False, code=stop.code, message=stop.message,
            amount_fen=amount_fen, asn=asn, rrn=None, auth_code=None, tac=None, stan=0,
            batch_no=self.journal.batch_no, business_date_mmdd=None, balance_after_fen=None,
            at=at,
        )  # fmt: skip

    # --- the online part common to all three -------------------------------------------------

    def _authorise(
        self, link: HostLink, entry: JournalEntry, request: Mapping[int, FieldValue]
    ) -> tuple[JournalEntry, Authorised | None]:
        """Send the 0200 (its reversal record is ``entry``) and journal what came back."""
        try:
            auth = link.authorise(request)
        except ResponseMacError as exc:
            log.warning("entry %d: %s", entry.entry_id, exc)
            self._sign_on_needed = True
            return self._to_reversal(jm.auth_unanswered(entry, jm.Reason.MAC_ERROR)), None
        except HostLinkError as exc:  # no answer, dropped, or an unreadable answer
            log.warning("entry %d: %s", entry.entry_id, exc)
            return self._to_reversal(jm.auth_unanswered(entry, jm.Reason.NO_ANSWER)), None
        response = self._noted(auth.response)
        if response.approved and _optional_text(response, 37) is None:
            log.warning("entry %d: an approved 0210 without an RRN", entry.entry_id)
            return self._to_reversal(jm.auth_unanswered(entry, jm.Reason.NO_ANSWER)), None
        saved = self.journal.save(
            jm.auth_answered(
                entry, response.code, rrn=_optional_text(response, 37),
                auth_code=_optional_text(response, 38),
                business_date_mmdd=_optional_text(response, 15),
            )
        )  # fmt: skip
        return saved, auth

    def _online(
        self,
        link: HostLink,
        kind: Kind,
        asn: bytes,
        amount_fen: int,
        now: datetime,
        build: Callable[[HostLink], dict[int, FieldValue]],
        card: dict[str, object],
        original_rrn: str | None,
    ) -> tuple[JournalEntry, Authorised | None, HostLink]:
        """Journal and send the 0200 that ``build`` makes (a new STAN each time). Answered A0
        (the host could not check our MAC, and did nothing): sign on again and send a new
        0200 once - the card's INITIALIZE session is still open."""
        for attempt in (1, 2):
            request = build(link)
            entry = self.journal.start(
                kind, amount_fen, link.stan, link.batch_no, now, request, asn=asn.hex(),
                original_rrn=original_rrn, card=card,
            )  # fmt: skip
            entry, auth = self._authorise(link, entry, request)
            if attempt == 2 or not (entry.state is State.DECLINED and entry.code == jm.MAC_ERROR):
                break
            try:
                link = self._ready()  # signs on: _noted asked for it
            except _Stop:
                break
        return entry, auth, link

    def _unapproved(self, entry: JournalEntry) -> TxnOutcome:
        if entry.state is State.DECLINED:
            assert entry.code is not None
            return self._outcome(entry, False, entry.code, response_text(entry.code))
        assert entry.state is State.REVERSAL_PENDING
        why = "bad response MAC" if entry.reason is jm.Reason.MAC_ERROR else "no answer"
        return self._outcome(
            entry, False, TerminalCode.NO_ANSWER,
            f"{why} from the host: nothing was taken; the authorisation will be reversed",
        )  # fmt: skip

    def _paid(
        self, link: HostLink, entry: JournalEntry, done: PurchaseDone | LoadDone, code: str
    ) -> TxnOutcome:
        """The card paid: journal the 0220 and send it once (it stays owed if unanswered)."""
        request = self.journal.request(entry.entry_id)
        assert entry.rrn is not None
        completion = completion_request(request, entry.rrn, done)
        entry = self.journal.save(
            jm.card_done(entry, done.tac.hex(), done.balance_after_fen), forward=completion
        )
        entry, _ = self._forward_one(link, entry)
        what = {Kind.SALE: "paid", Kind.LOAD: "loaded", Kind.REFUND: "refunded"}[entry.kind]
        message = f"{what} {format_fen(entry.amount_fen)} yuan"
        if entry.state is State.COMPLETION_PENDING:
            message += " (the host will be told later)"
        if code == TerminalCode.RECOVERED:
            message = f"the interrupted {entry.kind.value} went through: {message}"
        return self._outcome(entry, True, code, message)

    def _not_paid(self, link: HostLink, entry: JournalEntry, code: str, note: str) -> TxnOutcome:
        """The card certainly did not pay after an approval: reverse (06), once now."""
        entry = self._to_reversal(jm.card_not_done(entry, note))
        entry, _ = self._forward_one(link, entry)
        return self._outcome(entry, False, code, f"{note}; the authorisation is reversed")

    def _torn(self, entry: JournalEntry) -> TxnOutcome:
        entry = self.journal.save(jm.card_torn(entry))
        return self._outcome(
            entry, False, TerminalCode.TORN,
            f"card removed too early: present {_asn_tail(entry.asn)} again",
        )  # fmt: skip

    # --- sale ---------------------------------------------------------------------------------

    def sale(self, amount_fen: int) -> TxnOutcome:
        """A purchase: the card's debit authorised online, completed with the card's TAC."""
        now = self._clock()
        try:
            if not 0 < amount_fen < PURCHASE_LIMIT_FEN:
                raise _Stop(TerminalCode.AMOUNT, "a sale is over 0.00 and under 500.00 yuan")
            recovered = self.recover()
            if recovered is not None:
                return recovered
            link = self._clear_backlog()
            psam = self._psam_ready()
            started = self._card_step(
                lambda: card_flows.begin_purchase(self.card, psam, amount_fen)
            )
        except _Stop as stop:
            return self._refused(Kind.SALE, amount_fen, now, stop)
        entry, _, link = self._online(
            link, Kind.SALE, started.asn, amount_fen, now, lambda ln: ln.purchase_request(started),
            _purchase_card(started), None,
        )  # fmt: skip
        if entry.state is not State.AUTHORISED:
            return self._unapproved(entry)
        try:
            prepared = card_flows.prepare_debit(psam, started, now)
        except (FlowError, DecodeError) as exc:  # the PSAM failed: the card was not asked to pay
            return self._not_paid(link, entry, TerminalCode.PSAM, f"PSAM: {exc}")
        self.journal.save(entry, card=_purchase_card(started, prepared))
        try:
            done = card_flows.debit(self.card, psam, started, prepared)
        except CardRefused as refused:
            code = TerminalCode.BALANCE if refused.sw == SW_BALANCE else TerminalCode.CARD
            return self._not_paid(
                link, entry, code, f"the card refused the debit ({refused.sw:04X})"
            )
        if isinstance(done, TornPurchase):
            return self._torn(entry)
        return self._paid(link, entry, done, "00")

    def _card_step(self, step: Callable[[], _T]) -> _T:
        """A card step before anything was authorised: errors end the transaction."""
        try:
            return step()
        except InsufficientBalance as exc:
            raise _Stop(TerminalCode.BALANCE, str(exc)) from None
        except CardRefused as exc:
            if exc.sw == SW_BALANCE:
                raise _Stop(TerminalCode.BALANCE, "insufficient balance on the card") from None
            raise _Stop(TerminalCode.CARD, f"card: {exc}") from None
        except (FlowError, DecodeError) as exc:  # DecodeError: a card answer we cannot read
            raise _Stop(TerminalCode.CARD, f"card: {exc}") from None

    # --- load and refund ------------------------------------------------------------------------

    def load(self, amount_fen: int) -> TxnOutcome:
        """A top-up against cash: MAC2 from the host."""
        now = self._clock()
        try:
            if not 0 < amount_fen <= BALANCE_CEILING_FEN:
                raise _Stop(TerminalCode.AMOUNT, "a load is over 0.00 and at most 1,000.00 yuan")
            recovered = self.recover()
            if recovered is not None:
                return recovered
            link = self._clear_backlog()
            psam = self._psam_ready()
            started = self._card_step(
                lambda: card_flows.begin_load(self.card, amount_fen, psam.terminal_id)
            )
        except _Stop as stop:
            return self._refused(Kind.LOAD, amount_fen, now, stop)
        return self._credit(
            link, Kind.LOAD, started, lambda ln: ln.load_request(started), now, None
        )

    def refund(self, amount_fen: int, original_rrn: str) -> TxnOutcome:
        """A credit to the card of a sale in this terminal's journal (fields 37 and 61)."""
        now = self._clock()
        try:
            if not 0 < amount_fen < PURCHASE_LIMIT_FEN:
                raise _Stop(TerminalCode.AMOUNT, "a refund is over 0.00 and under 500.00 yuan")
            original = self.journal.by_rrn(original_rrn)
            if (
                original is None
                or original.kind is not Kind.SALE
                or original.state is not State.COMPLETED
                or original.business_date_mmdd is None
            ):
                raise _Stop(TerminalCode.ORIGINAL, f"no completed sale with RRN {original_rrn!r}")
            recovered = self.recover()
            if recovered is not None:
                return recovered
            link = self._clear_backlog()
            psam = self._psam_ready()
            started = self._card_step(
                lambda: card_flows.begin_load(self.card, amount_fen, psam.terminal_id)
            )
            if started.asn.hex() != original.asn:
                raise _Stop(
                    TerminalCode.WRONG_CARD,
                    f"the sale was paid with {_asn_tail(original.asn)}: refund to that card",
                )
            business_date_mmdd = original.business_date_mmdd
            sale = original

            def build(ln: HostLink) -> dict[int, FieldValue]:
                return ln.refund_request_of(
                    started, original_rrn, sale.batch_no, sale.stan, business_date_mmdd
                )

        except _Stop as stop:
            return self._refused(Kind.REFUND, amount_fen, now, stop)
        return self._credit(link, Kind.REFUND, started, build, now, original_rrn)

    def _credit(
        self,
        link: HostLink,
        kind: Kind,
        started: LoadStarted,
        build: Callable[[HostLink], dict[int, FieldValue]],
        now: datetime,
        original_rrn: str | None,
    ) -> TxnOutcome:
        entry, auth, link = self._online(
            link, kind, started.asn, started.amount_fen, now, build, _load_card(started),
            original_rrn,
        )  # fmt: skip
        if entry.state is not State.AUTHORISED or auth is None:
            return self._unapproved(entry)
        try:
            date_bcd, time_bcd, mac2 = auth.load_mac2()
        except HostLinkError as exc:  # approved without a MAC2: the card cannot be credited
            return self._not_paid(link, entry, TerminalCode.CARD, f"host: {exc}")
        self.journal.save(entry, card=_load_card(started, date_bcd=date_bcd, time_bcd=time_bcd))
        try:
            done = card_flows.finish_load(self.card, started, date_bcd, time_bcd, mac2)
        except LoadTorn:
            return self._torn(entry)
        except CardRefused as refused:
            note = f"the card refused the credit ({refused.sw:04X})"
            return self._not_paid(link, entry, TerminalCode.CARD, note)
        return self._paid(link, entry, done, "00")

    # --- a torn transaction and its card ------------------------------------------------------

    def recover(self) -> TxnOutcome | None:
        """Finish the oldest torn transaction with the card now presented: GET TRANSACTION
        PROVE; proved -> 0220 with the card's TAC, not proved -> 0400 (06). None when nothing
        is torn. Another card (or none) gets a WRONG_CARD / CARD outcome and changes nothing.

        ``sale``, ``load`` and ``refund`` call this first: while a transaction is torn, a
        presentation is for it, and nothing new starts (the merchant retrying the same sale
        gets the first one finished, never a second debit)."""
        torn = [e for e in self.journal.unfinished() if e.state is State.TORN]
        if not torn:
            return None
        entry = torn[0]
        card = self.journal.card(entry.entry_id) or {}
        try:
            info = self._card_step(lambda: card_flows.read_card(self.card))
        except _Stop as stop:
            return self._outcome(entry, False, stop.code, f"{stop.message}: present "
                                 f"{_asn_tail(entry.asn)} again")  # fmt: skip
        if info.asn.hex() != entry.asn:
            return self._outcome(
                entry, False, TerminalCode.WRONG_CARD,
                f"an interrupted {entry.kind.value} waits for {_asn_tail(entry.asn)}: "
                "present that card (or abandon it)",
            )  # fmt: skip
        tx_type = int(card["type"])
        counter = int(card["counter"])
        try:
            proof = card_flows.recover(self.card, info.asn, tx_type, counter)
        except (FlowError, DecodeError) as exc:
            return self._outcome(entry, False, TerminalCode.CARD,
                                 f"card: {exc}: present it again")  # fmt: skip
        try:
            link = self._ready()
        except _Stop as stop:
            # Keep it torn: the proof is asked again at the next presentation (it is repeatable).
            return self._outcome(entry, False, stop.code, stop.message)
        if proof is None:
            return self._not_paid(
                link, entry, TerminalCode.RECOVERED,
                f"the interrupted {entry.kind.value} did not happen on the card",
            )  # fmt: skip
        done: PurchaseDone | LoadDone
        asn = bytes.fromhex(str(entry.asn))
        date_bcd, time_bcd = bytes.fromhex(card["date"]), bytes.fromhex(card["time"])
        balance_before = int(card["balance_before_fen"])
        if entry.kind is Kind.SALE:
            done = PurchaseDone(
                asn, entry.amount_fen, balance_before - entry.amount_fen, counter,
                int(card["serial"]), date_bcd, time_bcd, proof.tac, False,
            )  # fmt: skip
        else:
            done = LoadDone(
                asn, entry.amount_fen, balance_before + entry.amount_fen, counter, date_bcd,
                time_bcd, proof.tac,
            )  # fmt: skip
        return self._paid(link, entry, done, TerminalCode.RECOVERED)

    def abandon_torn(self, note: str = "the card did not come back") -> int:
        """Give up on torn transactions (their card will not come back): MANUAL, for the
        merchant and the acquirer. Returns how many."""
        torn = [e for e in self.journal.unfinished() if e.state is State.TORN]
        for entry in torn:
            self.journal.save(jm.abandoned(entry, note))
        return len(torn)

    # --- day end --------------------------------------------------------------------------------

    def settle(self) -> SettlementOutcome:
        """Day end: 0500 with the journal's batch totals; not balanced -> 0320 upload of every
        completion and the end message; the batch number advances on the 0510's approval.

        Refused while a message is still owed or a transaction is torn (they belong to this
        batch). The 0500 and the uploads are journalled: an unanswered 0500 is sent again
        unchanged by the next ``settle`` (or ``flush``, or before the next transaction), so the
        host replays its 0510 (§6); uploads that could not be sent are forwarded later."""
        now = self._clock()
        try:
            link = self._ready()
        except _Stop as stop:
            return self._settlement_outcome(self.journal.batch_no, stop.code, stop.message, now)
        state = self.journal.settlement()
        if state is None:
            self._forward(link)
            left = self.journal.unfinished()
            if left:
                message = f"{len(left)} transaction(s) still owed to the host or torn: not settled"
                return self._settlement_outcome(
                    self.journal.batch_no, TerminalCode.PENDING, message, now
                )
            batch_no = self.journal.batch_no
            link.batch_no = batch_no
            request = link.settlement_request(self._batch_totals(batch_no))
            state = {"batch_no": batch_no, "phase": "settle", "request": encode_fields(request)}
            self.journal.set_settlement(state)
        return self._run_settlement(link, state, now)

    def _settlement_outcome(
        self,
        batch_no: int,
        code: str,
        message: str,
        now: datetime,
        *,
        host_totals: SettlementTotals | None = None,
        balanced: bool = False,
        uploaded: int = 0,
    ) -> SettlementOutcome:
        return SettlementOutcome(
            batch_no, balanced, uploaded, self._batch_totals(batch_no), host_totals, code,
            message, self.journal.batch_no, now,
        )  # fmt: skip

    def _run_settlement(
        self, link: HostLink, state: dict[str, Any], now: datetime
    ) -> SettlementOutcome:
        batch_no = int(state["batch_no"])
        if state["phase"] == "settle":
            try:
                response = self._noted(link.send_settlement(decode_fields(state["request"])))
            except HostLinkError as exc:
                message = f"settlement unanswered ({exc}): settle again to finish"
                return self._settlement_outcome(batch_no, TerminalCode.NO_ANSWER, message, now)
            host_totals = _host_totals(response)
            if not response.approved:
                self.journal.set_settlement(None)
                message = f"settlement refused: {response_text(response.code)}"
                return self._settlement_outcome(
                    batch_no, response.code, message, now, host_totals=host_totals
                )
            next_batch_no = 1 if batch_no >= BATCH_MAX else batch_no + 1
            link.batch_no = next_batch_no
            if host_totals is not None and host_totals.balanced:
                self.journal.set_settlement(None, batch_no=next_batch_no)
                return self._settlement_outcome(
                    batch_no, response.code, "settled, balanced", now,
                    host_totals=host_totals, balanced=True,
                )  # fmt: skip
            paid = [e for e in self.journal.batch(batch_no) if e.card_paid]
            state = {
                **state, "phase": "upload", "host48": _optional_text(response, 48),
                "to_upload": [e.entry_id for e in paid if e.state is State.COMPLETED],
                "uploaded": 0, "end": None,
            }  # fmt: skip
            self.journal.set_settlement(state, batch_no=next_batch_no)
        return self._upload(link, state, now)

    def _upload(self, link: HostLink, state: dict[str, Any], now: datetime) -> SettlementOutcome:
        """The 0320 uploads of a batch the host found not balanced, then the end message;
        each step journalled, so the rest is forwarded later when the host goes away."""
        batch_no = int(state["batch_no"])
        to_upload: list[int] = [int(n) for n in state["to_upload"]]
        host48 = state.get("host48")
        host_totals = None if host48 is None else _decode_totals(str(host48))

        def outcome(message: str) -> SettlementOutcome:
            return self._settlement_outcome(
                batch_no, "00", message, now, host_totals=host_totals,
                uploaded=int(state["uploaded"]),
            )  # fmt: skip

        while int(state["uploaded"]) < len(to_upload):
            completion = self.journal.forward(to_upload[int(state["uploaded"])])
            assert completion is not None
            try:
                link.upload_completion(completion, batch_no)  # any answer will do
            except HostLinkError as exc:
                return outcome(
                    f"settled, not balanced: upload stopped after {state['uploaded']} of "
                    f"{len(to_upload)} ({exc}); the rest is sent later"
                )
            state = {**state, "uploaded": int(state["uploaded"]) + 1}
            self.journal.set_settlement(state)
        if state.get("end") is None:
            end = link.end_upload_request(len(to_upload), batch_no)
            state = {**state, "end": encode_fields(end)}
            self.journal.set_settlement(state)
        try:
            link.send_upload(decode_fields(str(state["end"])))
        except HostLinkError as exc:
            return outcome(f"settled, not balanced: the end of upload is sent later ({exc})")
        self.journal.set_settlement(None)
        return outcome(f"settled, not balanced: {len(to_upload)} transaction(s) uploaded")

    def _batch_totals(self, batch_no: int) -> SettlementTotals:
        t = jm.batch_totals(self.journal.batch(batch_no), batch_no)
        return SettlementTotals(
            t.purchase_amount_fen, t.purchase_count, t.refund_amount_fen, t.refund_count,
            t.load_amount_fen, t.load_count,
        )  # fmt: skip

    def close(self) -> None:
        """Close the host connection (the journal is the caller's to close)."""
        if self._link is not None:
            self._link.close()
            self._link = None


def _decode_totals(field48: str) -> SettlementTotals | None:
    try:
        return decode_settlement_totals(field48)
    except PaycoreError:
        return None


def _host_totals(response: Response) -> SettlementTotals | None:
    field48 = _optional_text(response, 48)
    return None if field48 is None else _decode_totals(field48)


def _purchase_card(
    started: PurchaseStarted, prepared: card_flows.DebitPrepared | None = None
) -> dict[str, object]:
    """What recovering a torn purchase needs (journalled; ``armed`` once DEBIT may be sent)."""
    data: dict[str, object] = {
        "type": pboc.TYPE_EP_PURCHASE, "counter": started.init.offline_counter,
        "balance_before_fen": started.init.balance_fen,
    }  # fmt: skip
    if prepared is not None:
        data |= {
            "serial": prepared.terminal_serial, "date": prepared.date_bcd.hex(),
            "time": prepared.time_bcd.hex(), "armed": True,
        }  # fmt: skip
    return data


def _load_card(
    started: LoadStarted, *, date_bcd: bytes | None = None, time_bcd: bytes | None = None
) -> dict[str, object]:
    """What recovering a torn load or refund needs (``armed`` once CREDIT may be sent)."""
    data: dict[str, object] = {
        "type": pboc.TYPE_EP_LOAD, "counter": started.init.online_counter,
        "balance_before_fen": started.init.balance_fen,
    }  # fmt: skip
    if date_bcd is not None and time_bcd is not None:
        data |= {"date": date_bcd.hex(), "time": time_bcd.hex(), "armed": True}
    return data
