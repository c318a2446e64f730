"""A yardstick terminal for the fault tests: host_protocol.md §6 done by the book with nothing
but ``HostLink``, ``card_flows`` and the journal's pure state machine (``journal_model``),
in memory. The fault matrix runs it next to the real ``pos_terminal.service.Terminal``: when the
yardstick agrees three ways and the Terminal does not, the Terminal is at fault; when neither
does, the host (or the harness) is.

Its choices, each the plainest reading of §6:
- the 0200's fields are kept until any response code arrives; no usable 0210 (no answer, a
  dropped connection, a bad MAC) reverses it: 98, or A0 for a bad MAC;
- reversals are forwarded before the next online transaction, up to ``tries_max`` tries, and
  a transaction is not started while one is owed; completions are forwarded until answered,
  byte-for-byte the same fields (the host's retransmission rule);
- settlement counts completed and owed completions of the batch; a 0500 whose answer is lost is
  resolved by signing on (the 0810 carries the host's open batch); not balanced → one 0320 per
  paid transaction of the batch and the end-of-upload 0320, forwarded until answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from paycore.iso8583.fields import (
    EPURSE_TX_LOAD,
    EPURSE_TX_PURCHASE,
    EpurseData,
    ReversalReason,
    SettlementTotals,
    decode_epurse_data,
    decode_settlement_totals,
    encode_epurse_data,
)
from paycore.iso8583.message import FieldValue
from pos_terminal.adapters.host_link import (
    LOAD_SERIAL,
    Authorised,
    HostLink,
    HostLinkError,
    Response,
    ResponseMacError,
)
from pos_terminal.domain import card_flows, journal_model
from pos_terminal.domain.card_flows import LoadDone, Psam, PurchaseDone
from pos_terminal.domain.journal_model import Entry, Kind, Reason, State
from pos_terminal.ports import ApduLink

SETTLE_TRIES_MAX = 3


@dataclass
class _Txn:
    entry: Entry
    request: dict[int, FieldValue]
    auth: Authorised | None = None
    done: PurchaseDone | LoadDone | None = None


@dataclass(frozen=True)
class Settled:
    batch_no: int
    code: str
    balanced: bool
    uploaded: int


class ScriptedTerminal:
    def __init__(
        self,
        link: HostLink,
        card: ApduLink,
        psam: Psam,
        clock: Callable[[], datetime],
        *,
        tries_max: int = journal_model.REVERSAL_TRIES_MAX_DEFAULT,
    ) -> None:
        self.link = link
        self.card = card
        self.psam = psam
        self.clock = clock
        self.tries_max = tries_max
        self._txns: list[_Txn] = []
        #: Owed 0320s: (batch, a paid transaction) or (batch, the count for the end message).
        self._uploads: list[tuple[int, _Txn | int]] = []

    @property
    def entries(self) -> list[Entry]:
        return [t.entry for t in self._txns]

    def close(self) -> None:
        self.link.close()

    # --- online transactions ------------------------------------------------------------------

    def _ready(self) -> bool:
        """Signed on, and no reversal owed (forwarded first, §6)."""
        self.flush()
        if any(t.entry.state is State.REVERSAL_PENDING for t in self._txns):
            return False
        if self.link.mak is None:
            try:
                return self.link.sign_on().approved
            except HostLinkError:
                return False
        return True

    def _authorise(self, kind: Kind, amount_fen: int, request: dict[int, FieldValue]) -> _Txn:
        entry = Entry(
            len(self._txns) + 1, kind, State.AUTH_SENT, amount_fen, int(str(request[11])),
            self.link.batch_no, self.clock(), asn=str(request[2]),
        )  # fmt: skip
        txn = _Txn(entry, request)
        self._txns.append(txn)  # the reversal record, before the 0200 leaves
        try:
            auth = self.link.authorise(request)
        except ResponseMacError:
            txn.entry = journal_model.auth_unanswered(entry, Reason.MAC_ERROR)
            return txn
        except HostLinkError:
            txn.entry = journal_model.auth_unanswered(entry, Reason.NO_ANSWER)
            return txn
        txn.auth = auth
        txn.entry = journal_model.auth_answered(
            entry, auth.code, rrn=auth.rrn or None, business_date_mmdd=auth.business_date_mmdd
        )
        return txn

    def sale(self, amount_fen: int) -> Entry | None:
        if not self._ready():
            return None
        started = card_flows.begin_purchase(self.card, self.psam, amount_fen)
        txn = self._authorise(Kind.SALE, amount_fen, self.link.purchase_request(started))
        if txn.entry.state is State.AUTHORISED:
            done = card_flows.finish_purchase(self.card, self.psam, started, self.clock())
            assert isinstance(done, PurchaseDone), "the card stays in the field in these tests"
            txn.done = done
            txn.entry = journal_model.card_done(txn.entry, done.tac.hex(), done.balance_after_fen)
            self._forward(txn)
        return txn.entry

    def load(self, amount_fen: int) -> Entry | None:
        if not self._ready():
            return None
        started = card_flows.begin_load(self.card, amount_fen, self.psam.terminal_id)
        return self._credit(Kind.LOAD, started, self.link.load_request(started))

    def refund(self, amount_fen: int, original_rrn: str) -> Entry | None:
        original = next(t for t in self._txns if t.entry.rrn == original_rrn)
        assert original.auth is not None
        if not self._ready():
            return None
        started = card_flows.begin_load(self.card, amount_fen, self.psam.terminal_id)
        return self._credit(Kind.REFUND, started, self.link.refund_request(started, original.auth))

    def _credit(
        self, kind: Kind, started: card_flows.LoadStarted, request: dict[int, FieldValue]
    ) -> Entry:
        txn = self._authorise(kind, started.amount_fen, request)
        if txn.entry.state is State.AUTHORISED:
            assert txn.auth is not None
            date_bcd, time_bcd, mac2 = txn.auth.load_mac2()
            done = card_flows.finish_load(self.card, started, date_bcd, time_bcd, mac2)
            txn.done = done
            txn.entry = journal_model.card_done(txn.entry, done.tac.hex(), done.balance_after_fen)
            self._forward(txn)
        return txn.entry

    # --- store and forward ----------------------------------------------------------------------

    def _send_owed(self, txn: _Txn) -> Response:
        if txn.entry.state is State.REVERSAL_PENDING:
            assert txn.entry.reason is not None
            return self.link.reverse(txn.request, ReversalReason(txn.entry.reason.value))
        assert txn.auth is not None and txn.done is not None
        if isinstance(txn.done, PurchaseDone):
            return self.link.complete_purchase(txn.auth, txn.done)
        return self.link.complete_load(txn.auth, txn.done)

    def _forward(self, txn: _Txn) -> None:
        try:
            response = self._send_owed(txn)
        except HostLinkError:
            txn.entry = journal_model.forward_unanswered(txn.entry, self.tries_max)
            return
        txn.entry = journal_model.forward_answered(txn.entry, response.code, self.tries_max)

    def flush(self) -> int:
        """Reversals first, then completions; returns how many remain owed."""
        for entry in journal_model.to_forward(self.entries):
            self._forward(next(t for t in self._txns if t.entry.entry_id == entry.entry_id))
        self._send_uploads()
        return len(journal_model.to_forward(self.entries)) + len(self._uploads)

    # --- settlement -------------------------------------------------------------------------------

    def settle(self) -> Settled | None:
        """0500 (+ 0320s when not balanced); None when the batch could not be closed."""
        self.flush()
        batch = self.link.batch_no
        t = journal_model.batch_totals(self.entries, batch)
        totals = SettlementTotals(
            t.purchase_amount_fen, t.purchase_count, t.refund_amount_fen, t.refund_count,
            t.load_amount_fen, t.load_count,
        )  # fmt: skip
        for _ in range(SETTLE_TRIES_MAX):
            try:
                response = self.link.settle(totals)
            except HostLinkError:
                response = None
            if response is not None and response.approved:
                balanced = decode_settlement_totals(response.text(48)).balanced
                uploaded = 0 if balanced else self._upload(batch)
                return Settled(batch, response.code, balanced, uploaded)
            # No answer, or 12 (the batch is closed already): the 0810 says which batch is open.
            try:
                self.link.sign_on()
            except HostLinkError:
                continue
            if self.link.batch_no != batch:
                return Settled(batch, "resync", True, 0)
        return None

    def _upload(self, batch: int) -> int:
        """Queue one 0320 per paid transaction of the batch and the end-of-upload 0320, then
        send them (what is not answered stays owed: ``flush`` sends it again)."""
        paid = [t for t in self._txns if t.entry.batch_no == batch and t.entry.card_paid]
        self._uploads.extend((batch, t) for t in paid)
        self._uploads.append((batch, len(paid)))
        self._send_uploads()
        return len(paid)

    def _send_uploads(self) -> None:
        while self._uploads:
            batch, item = self._uploads[0]
            try:
                if isinstance(item, int):
                    self.link.end_upload(item, batch)
                else:
                    assert item.auth is not None and item.done is not None
                    self.link.upload(item.auth, completion_field58(item.auth, item.done), batch)
            except HostLinkError:
                return
            self._uploads.pop(0)


def completion_field58(auth: Authorised, done: PurchaseDone | LoadDone) -> bytes:
    """The field 58 of the 0220 (what a 0320 repeats)."""
    request58 = auth.request_fields[58]
    assert isinstance(request58, bytes)
    psam_terminal_id = decode_epurse_data(request58).psam_terminal_id
    purchase = isinstance(done, PurchaseDone)
    return encode_epurse_data(
        EpurseData(
            asn=done.asn, card_counter=done.counter,
            transaction_type=EPURSE_TX_PURCHASE if purchase else EPURSE_TX_LOAD,
            psam_terminal_id=psam_terminal_id,
            terminal_serial=done.terminal_serial if isinstance(done, PurchaseDone) else LOAD_SERIAL,
            date_time_bcd=done.date_bcd + done.time_bcd, tac=done.tac,
        )
    )  # fmt: skip
