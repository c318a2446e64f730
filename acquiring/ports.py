"""Ports of the acquiring host: the capture store.

A ``Store`` hands out units of work. ``with store.unit() as uow:`` is one database
transaction: it commits when the block ends normally and rolls back when it raises, so a
message handler either stores everything it decided (records + exchange log entry) or nothing.

- ``HostUnitOfWork``: exactly what the ISO 8583 message handlers need, on the hot path.
- ``AdminUnitOfWork``: the host's operations plus registration, status changes and queries for
  the admin API and CLI.

Errors: ``DuplicateRecord`` (a unique key is taken: exchange key, RRN, (TID, batch, STAN), ...),
``RecordNotFound`` (a write names a missing record), ``StoreIntegrityError`` (another constraint),
``KeyVaultError`` (a key does not decrypt), all from ``acquiring.domain.errors``. After any of
them the unit of work must be abandoned (leave the ``with`` block by the exception).

Keys go in as plain bytes and come out as plain bytes; the store alone encrypts them at rest.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Protocol

from acquiring.domain.errors import InvalidRecord
from acquiring.domain.model import (
    Authorisation,
    BatchTotals,
    BatchUploadRecord,
    CardAccount,
    CardStatus,
    ChannelPartner,
    CommissionRule,
    Completion,
    DayTotals,
    ExchangeKey,
    ExchangeRecord,
    Issuer,
    Merchant,
    MerchantStatus,
    PartnerContract,
    Reversal,
    ReversalReason,
    TacVerdict,
    Terminal,
    TerminalKeys,
    TerminalSettlement,
    TerminalStatus,
    TxnKey,
    TxnKind,
)
from paycore.iso8583.fields import ResponseCode
from paycore.issuer_keys import IssuerKeys

#: Limit on one page of any listing.
PAGE_LIMIT_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class TerminalSession:
    """What every message needs of its terminal, in one lookup: the record, the MAK of its
    current sign-on (None when it is not signed on or has no MAK) and its merchant."""

    terminal: Terminal
    mak: bytes | None
    merchant: Merchant | None
    #: The exchange-log entry of the key asked for (None: none stored, or none asked for).
    previous: ExchangeRecord | None = None

    def __repr__(self) -> str:  # never the MAK
        return f"TerminalSession({self.terminal.terminal_id}, signed_on={self.mak is not None})"


@dataclass(frozen=True, slots=True)
class TxnState:
    """An authorisation and whether a completion and a reversal apply to it."""

    authorisation: Authorisation
    completed: bool
    reversed: bool


class HostUnitOfWork(Protocol):
    """One transaction on the message path. Every lookup sees this transaction's own writes."""

    # --- reference data -----------------------------------------------------------------------
    def get_terminal_session(
        self, terminal_id: str, exchange_key: ExchangeKey | None = None
    ) -> TerminalSession | None:
        """The terminal, its MAK, its merchant and (``exchange_key`` given, of this terminal)
        that key's exchange-log entry, in one round trip: the message path's first lookup.
        None when the terminal is not registered."""
        ...

    def get_terminal(self, terminal_id: str, *, for_update: bool = False) -> Terminal | None:
        """``for_update`` locks the row until the end of the unit (PostgreSQL ``FOR UPDATE``;
        SQLite write transactions are serialised anyway)."""
        ...

    def get_terminal_keys(self, terminal_id: str) -> TerminalKeys | None: ...

    def get_merchant(self, merchant_id: str, *, for_update: bool = False) -> Merchant | None:
        """Lock with ``for_update`` when enforcing the merchant's daily limit, so two
        concurrent purchases cannot both pass it."""
        ...

    def get_card(self, asn: str, *, for_update: bool = False) -> CardAccount | None:
        """Lock with ``for_update`` when enforcing the card's daily limits."""
        ...

    def get_issuer(self, issuer_id: str) -> Issuer | None: ...

    def get_issuer_keys(self, issuer_id: str, key_version: int) -> IssuerKeys | None: ...

    # --- exchange log (host_protocol.md §6) -----------------------------------------------------
    def get_exchange(self, key: ExchangeKey) -> ExchangeRecord | None: ...

    def put_exchange(self, record: ExchangeRecord) -> None:
        """Raises DuplicateRecord when the key is taken (a concurrent twin won the race: roll
        back and look the key up again to replay or answer 94)."""
        ...

    # --- transactions ---------------------------------------------------------------------------
    def get_authorisation(
        self, key: TxnKey, *, for_update: bool = False
    ) -> Authorisation | None: ...

    def get_authorisation_by_rrn(
        self, rrn: str, *, for_update: bool = False
    ) -> Authorisation | None:
        """Lock the original with ``for_update`` while checking a refund's total."""
        ...

    def get_txn_state(self, key: TxnKey, *, for_update: bool = False) -> TxnState | None:
        """The authorisation of ``key`` with its completion and reversal flags in one round
        trip; ``for_update`` locks the authorisation until the end of the unit."""
        ...

    def get_completion(self, key: TxnKey) -> Completion | None: ...

    def get_reversal(self, key: TxnKey) -> Reversal | None: ...

    def add_authorisation(self, authorisation: Authorisation) -> None:
        """Raises DuplicateRecord for a taken RRN or (TID, batch, STAN)."""
        ...

    def add_completion(self, completion: Completion) -> None:
        """Applies to the authorisation with the same key (RecordNotFound if none; a second
        completion of one authorisation is a DuplicateRecord)."""
        ...

    def add_reversal(self, reversal: Reversal) -> None:
        """Same rules as add_completion: one reversal per authorisation."""
        ...

    def add_batch_upload(self, record: BatchUploadRecord) -> None: ...

    def add_settlement(self, settlement: TerminalSettlement) -> None:
        """One settlement per (TID, batch): a second is a DuplicateRecord."""
        ...

    # --- totals (approved and unreversed; see each) ----------------------------------------------
    def card_day_totals(self, asn: str, business_date: date) -> DayTotals:
        """Approved, unreversed purchases by the card on the business date."""
        ...

    def merchant_day_totals(self, merchant_id: str, business_date: date) -> DayTotals:
        """Approved, unreversed purchases at the merchant on the business date."""
        ...

    def refunded_total_fen(self, original_rrn: str) -> int:
        """Approved, unreversed refunds naming ``original_rrn`` (completed or not)."""
        ...

    def batch_totals(self, terminal_id: str, batch_no: int) -> BatchTotals:
        """Field 48 of the host's side: completed, unreversed transactions of the batch, by
        completion amount."""
        ...

    # --- terminal state -----------------------------------------------------------------------
    def close_batch(self, terminal_id: str, batch_no: int) -> int:
        """Close ``batch_no`` if it is the terminal's open batch: the open batch becomes the next
        number (999999 wraps to 1). Idempotent: closing a batch that is no longer open changes
        nothing. Returns the open batch number after the call."""
        ...

    def sign_on(self, terminal_id: str, mak: bytes, at: datetime) -> None:
        """Store a new MAK (16 bytes, encrypted at rest) and mark the terminal signed on."""
        ...

    def sign_off(self, terminal_id: str) -> None: ...

    def next_rrn(self) -> str:
        """A retrieval reference number never handed out before: 12 digits."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: leaving the block by an exception undoes only what was done
        inside it. The group-commit path runs each message in one (see ADR 0003)."""
        ...


# --- admin queries ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxnQuery:
    """Filters for a transaction search (all optional, combined with AND) and keyset paging:
    results come in ``txn_id`` order, starting after ``after_txn_id``."""

    terminal_id: str | None = None
    merchant_id: str | None = None
    asn: str | None = None
    rrn: str | None = None
    kind: TxnKind | None = None
    response_code: ResponseCode | None = None
    business_date_from: date | None = None
    business_date_to: date | None = None  # inclusive
    after_txn_id: int = 0
    limit: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not 1 <= self.limit <= PAGE_LIMIT_MAX:
            raise InvalidRecord("txn_query", "limit", f"must be 1..{PAGE_LIMIT_MAX}")
        if self.after_txn_id < 0:
            raise InvalidRecord("txn_query", "after_txn_id", "must not be negative")


@dataclass(frozen=True, slots=True)
class TxnSummary:
    """One authorisation with the state of its completion and reversal."""

    txn_id: int
    authorisation: Authorisation
    completion_amount_fen: int | None
    tac_verdict: TacVerdict | None
    reversal_reason: ReversalReason | None


@dataclass(frozen=True, slots=True)
class TxnPage:
    items: tuple[TxnSummary, ...]
    next_after_txn_id: int | None  # None: this was the last page


class AdminUnitOfWork(HostUnitOfWork, Protocol):
    """Registration, status changes and queries (admin API, CLI). Registration of a duplicate
    id raises DuplicateRecord; a reference to a missing record (a terminal of an unknown
    merchant) raises RecordNotFound."""

    def add_partner(self, partner: ChannelPartner) -> None: ...

    def get_partner(self, partner_id: str) -> ChannelPartner | None: ...

    def add_contract(self, contract: PartnerContract) -> PartnerContract:
        """Returns the contract with its assigned ``contract_id``."""
        ...

    def contracts(self, partner_id: str) -> list[PartnerContract]: ...

    def add_merchant(self, merchant: Merchant) -> None: ...

    def add_terminal(self, terminal: Terminal, tmk: bytes) -> None:
        """Registers a terminal with its 16-byte TMK (stored encrypted; the caller shows it to
        the operator exactly once)."""
        ...

    def add_card(self, card: CardAccount) -> None: ...

    def add_issuer(self, issuer: Issuer, keys: IssuerKeys) -> None:
        """Registers an issuer with its first key set (version ``keys.key_version``)."""
        ...

    def add_issuer_keys(self, issuer_id: str, keys: IssuerKeys) -> None:
        """Adds another key version (rotation); a taken version is a DuplicateRecord."""
        ...

    def issuer_key_versions(self, issuer_id: str) -> list[int]:
        """The issuer's stored key versions, ascending (empty for an unknown issuer); no key
        is decrypted."""
        ...

    def add_commission_rule(self, rule: CommissionRule) -> CommissionRule:
        """Stores the merchant's next rule version (``rule.version`` 0) or exactly the version
        given; returns the stored rule."""
        ...

    def commission_rules(self, merchant_id: str) -> list[CommissionRule]:
        """All versions, oldest first."""
        ...

    def set_merchant_status(self, merchant_id: str, status: MerchantStatus) -> None: ...

    def set_terminal_status(self, terminal_id: str, status: TerminalStatus) -> None: ...

    def set_card_status(self, asn: str, status: CardStatus) -> None:
        """``CardStatus.HOT`` puts the card on the hot list; ``ACTIVE`` takes it off."""
        ...

    def list_merchants(
        self, *, after_merchant_id: str = "", limit: int = 100
    ) -> list[Merchant]: ...

    def list_terminals(
        self, *, merchant_id: str | None = None, after_terminal_id: str = "", limit: int = 100
    ) -> list[Terminal]: ...

    def search_transactions(self, query: TxnQuery) -> TxnPage: ...


class Store(Protocol):
    """The capture store: a factory of units of work."""

    def unit(self) -> AbstractContextManager[HostUnitOfWork]:
        """A write transaction for one message (or one commit group)."""
        ...

    def admin(self, *, readonly: bool = False) -> AbstractContextManager[AdminUnitOfWork]:
        """A transaction for the admin API; ``readonly`` ones take no write lock and refuse
        writes."""
        ...

    def close(self) -> None: ...
