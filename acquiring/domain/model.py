"""The host's records: reference data (merchants, terminals, cards, issuers, commission rules,
channel partners and their contracts) and the transaction records it captures (authorisations,
completions, reversals, batch uploads, terminal settlements, the exchange log).

Frozen dataclasses that check their own fields on construction and raise ``InvalidRecord``
naming the field. Money is integer fen, rates integer basis points, instants aware datetimes
(UTC in the store), business dates plain ``date`` values in Asia/Shanghai (clearing.md §1).
Keys never live in these records except in ``TerminalKeys``, whose fields are left out of
``repr``; issuer keys are ``paycore.issuer_keys.IssuerKeys`` (also repr-safe).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from acquiring.domain.commission import BP_PER_UNIT, RuleKind, discount_rate_bp
from acquiring.domain.errors import InvalidRecord
from paycore.iso8583.fields import ResponseCode  # field 39 (§5): one table, shared

# --- limits (host_protocol.md §2, clearing.md §1) ---------------------------------------------
#: A single purchase or refund is under 500 yuan.
PURCHASE_AMOUNT_MAX_FEN: Final = 49_999
#: The card's balance ceiling bounds a load (the card itself checks the exact headroom).
LOAD_AMOUNT_MAX_FEN: Final = 100_000
#: Field 4 is n12.
FIELD4_AMOUNT_MAX_FEN: Final = 999_999_999_999
STAN_MAX: Final = 999_999
BATCH_NO_MAX: Final = 999_999
CARD_COUNTER_MAX: Final = 0xFFFF
KEY_VERSION_MAX: Final = 0xFF
PSAM_SERIAL_MAX: Final = 0xFFFF_FFFF
NAME_CHARS_MAX: Final = 80
#: Defaults for a card registered without explicit limits (purchases per business date).
CARD_DAILY_AMOUNT_LIMIT_FEN_DEFAULT: Final = 200_000
CARD_DAILY_COUNT_LIMIT_DEFAULT: Final = 50
#: clearing.md §4: expansion fee bounds, default retention, maintenance fee.
EXPANSION_FEE_MIN_FEN: Final = 20_000
EXPANSION_FEE_MAX_FEN: Final = 200_000
RETENTION_DAYS_DEFAULT: Final = 90
RETENTION_DAYS_MAX: Final = 3_650
MAINTENANCE_FEE_MONTHLY_FEN_DEFAULT: Final = 5_500

_MID = re.compile(r"[0-9A-Za-z]{15}")
_TID = re.compile(r"[0-9A-Za-z]{8}")
_ASN = re.compile(r"[0-9]{16}")
_MCC = re.compile(r"[0-9]{4}")
_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,31}")  # issuer, acquirer, partner ids
_RRN = re.compile(r"[0-9A-Za-z]{12}")
_AUTH_CODE = re.compile(r"[0-9A-Za-z]{6}")
_MTI = re.compile(r"0[0-9]{3}")


class ReversalReason(StrEnum):
    """Field 39 of a 0400 (host_protocol.md §5)."""

    NO_ANSWER = "98"
    MAC_ERROR = "A0"
    OTHER = "06"


class TxnKind(StrEnum):
    PURCHASE = "purchase"
    LOAD = "load"
    REFUND = "refund"


class MerchantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class TerminalStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETURNED = "returned"


class CardStatus(StrEnum):
    ACTIVE = "active"
    HOT = "hot"  # on the hot list: every authorisation answers 62


class PartnerStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class TacVerdict(StrEnum):
    OK = "ok"
    BAD = "bad"


class ContractKind(StrEnum):
    SIGNING = "signing"  # commission share + expansion fee for the merchants a partner signs
    MAINTENANCE = "maintenance"  # monthly fee per terminal the partner looks after


# --- field checks -------------------------------------------------------------------------------


def _match(record: str, name: str, value: object, pattern: re.Pattern[str], form: str) -> None:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidRecord(record, name, f"must be {form}")


def _int(record: str, name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRecord(record, name, f"must be an integer {low}..{high}")


def _opt_int(record: str, name: str, value: object, low: int, high: int) -> None:
    if value is not None:
        _int(record, name, value, low, high)


def _bytes(record: str, name: str, value: object, length: int) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise InvalidRecord(record, name, f"must be {length} bytes")


def _name(record: str, value: object) -> None:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= NAME_CHARS_MAX
        or not value.isprintable()
        or value != value.strip()
    ):
        raise InvalidRecord(
            record, "name", f"must be 1..{NAME_CHARS_MAX} printable characters, no outer spaces"
        )


def _aware(record: str, name: str, value: object) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidRecord(record, name, "must be a timezone-aware datetime")


def _date(record: str, name: str, value: object) -> None:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidRecord(record, name, "must be a date")


def _period(record: str, start: date, end: date | None) -> None:
    _date(record, "effective_from", start)
    if end is not None:
        _date(record, "effective_to", end)
        if end <= start:
            raise InvalidRecord(record, "effective_to", "must be after effective_from")


def _enum(record: str, name: str, value: object, kind: type[StrEnum]) -> None:
    if not isinstance(value, kind):
        raise InvalidRecord(record, name, f"must be a {kind.__name__}")


def check_merchant_id(value: object) -> None:
    _match("merchant", "merchant_id", value, _MID, "15 letters or digits")


def check_terminal_id(value: object) -> None:
    _match("terminal", "terminal_id", value, _TID, "8 letters or digits")


def check_asn(value: object) -> None:
    _match("card", "asn", value, _ASN, "16 digits")


def check_rrn(value: object) -> None:
    _match("authorisation", "rrn", value, _RRN, "12 letters or digits")


# --- reference data -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelPartner:
    partner_id: str
    name: str
    status: PartnerStatus = PartnerStatus.ACTIVE

    def __post_init__(self) -> None:
        _match("partner", "partner_id", self.partner_id, _CODE, "1..32 letters, digits, _ or -")
        _name("partner", self.name)
        _enum("partner", "status", self.status, PartnerStatus)


@dataclass(frozen=True, slots=True)
class PartnerContract:
    """A channel partner's contract (clearing.md §4), effective over [effective_from,
    effective_to). Signing: ``share_bp`` of the acquirer's 20% portion, ``expansion_fee_fen``
    once per merchant after ``retention_days``. Maintenance: ``monthly_fee_fen`` per terminal.
    ``contract_id`` is assigned by the store (0 before it is stored)."""

    partner_id: str
    kind: ContractKind
    effective_from: date
    effective_to: date | None = None
    share_bp: int | None = None
    expansion_fee_fen: int | None = None
    retention_days: int | None = None
    monthly_fee_fen: int | None = None
    contract_id: int = 0

    def __post_init__(self) -> None:
        r = "contract"
        _match(r, "partner_id", self.partner_id, _CODE, "1..32 letters, digits, _ or -")
        _enum(r, "kind", self.kind, ContractKind)
        _period(r, self.effective_from, self.effective_to)
        _int(r, "contract_id", self.contract_id, 0, 2**63 - 1)
        signing = (self.share_bp, self.expansion_fee_fen, self.retention_days)
        if self.kind is ContractKind.SIGNING:
            if self.monthly_fee_fen is not None:
                raise InvalidRecord(r, "monthly_fee_fen", "is for maintenance contracts")
            _int(r, "share_bp", self.share_bp, 0, BP_PER_UNIT)
            _int(
                r,
                "expansion_fee_fen",
                self.expansion_fee_fen,
                EXPANSION_FEE_MIN_FEN,
                EXPANSION_FEE_MAX_FEN,
            )
            _int(r, "retention_days", self.retention_days, 0, RETENTION_DAYS_MAX)
        else:
            if any(v is not None for v in signing):
                raise InvalidRecord(r, "share_bp", "signing terms are for signing contracts")
            _int(r, "monthly_fee_fen", self.monthly_fee_fen, 0, FIELD4_AMOUNT_MAX_FEN)

    @staticmethod
    def signing(
        partner_id: str,
        effective_from: date,
        *,
        share_bp: int,
        expansion_fee_fen: int,
        retention_days: int = RETENTION_DAYS_DEFAULT,
        effective_to: date | None = None,
    ) -> PartnerContract:
        return PartnerContract(
            partner_id,
            ContractKind.SIGNING,
            effective_from,
            effective_to,
            share_bp=share_bp,
            expansion_fee_fen=expansion_fee_fen,
            retention_days=retention_days,
        )

    @staticmethod
    def maintenance(
        partner_id: str,
        effective_from: date,
        *,
        monthly_fee_fen: int = MAINTENANCE_FEE_MONTHLY_FEN_DEFAULT,
        effective_to: date | None = None,
    ) -> PartnerContract:
        return PartnerContract(
            partner_id,
            ContractKind.MAINTENANCE,
            effective_from,
            effective_to,
            monthly_fee_fen=monthly_fee_fen,
        )


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str  # field 42, 15 characters
    name: str
    mcc: str  # merchant category code, 4 digits
    acquirer_id: str
    onboarded_on: date
    status: MerchantStatus = MerchantStatus.ACTIVE
    signing_partner_id: str | None = None
    daily_limit_fen: int | None = None  # purchases per business date; None = no limit

    def __post_init__(self) -> None:
        r = "merchant"
        check_merchant_id(self.merchant_id)
        _name(r, self.name)
        _match(r, "mcc", self.mcc, _MCC, "4 digits")
        _match(r, "acquirer_id", self.acquirer_id, _CODE, "1..32 letters, digits, _ or -")
        _date(r, "onboarded_on", self.onboarded_on)
        _enum(r, "status", self.status, MerchantStatus)
        if self.signing_partner_id is not None:
            _match(r, "signing_partner_id", self.signing_partner_id, _CODE, "a partner id")
        _opt_int(r, "daily_limit_fen", self.daily_limit_fen, 1, FIELD4_AMOUNT_MAX_FEN)


@dataclass(frozen=True, slots=True)
class Terminal:
    """A POS terminal. Its keys are not here: see ``TerminalKeys``."""

    terminal_id: str  # field 41, 8 characters
    merchant_id: str
    deployed_on: date
    status: TerminalStatus = TerminalStatus.ACTIVE
    maintaining_partner_id: str | None = None
    batch_no: int = 1  # the open batch (60.2); settlement closes it and increments
    signed_on: bool = False

    def __post_init__(self) -> None:
        r = "terminal"
        check_terminal_id(self.terminal_id)
        check_merchant_id(self.merchant_id)
        _date(r, "deployed_on", self.deployed_on)
        _enum(r, "status", self.status, TerminalStatus)
        if self.maintaining_partner_id is not None:
            _match(r, "maintaining_partner_id", self.maintaining_partner_id, _CODE, "a partner id")
        _int(r, "batch_no", self.batch_no, 1, BATCH_NO_MAX)
        if not isinstance(self.signed_on, bool):
            raise InvalidRecord(r, "signed_on", "must be a bool")


@dataclass(frozen=True, slots=True)
class TerminalKeys:
    """The terminal's master key and current MAC key (host_protocol.md §3), decrypted from the
    store. Never in ``repr``; ``mak`` is None until the first sign-on."""

    terminal_id: str
    tmk: bytes = field(repr=False)
    mak: bytes | None = field(repr=False, default=None)

    def __post_init__(self) -> None:
        check_terminal_id(self.terminal_id)
        _bytes("terminal_keys", "tmk", self.tmk, 16)
        if self.mak is not None:
            _bytes("terminal_keys", "mak", self.mak, 16)


@dataclass(frozen=True, slots=True)
class CardAccount:
    """What the host knows of a card: its issuer, whether it is hot-listed, and its daily
    purchase limits (per business date, approved and unreversed purchases)."""

    asn: str  # application serial number, 16 digits (field 2)
    issuer_id: str
    status: CardStatus = CardStatus.ACTIVE
    daily_amount_limit_fen: int = CARD_DAILY_AMOUNT_LIMIT_FEN_DEFAULT
    daily_count_limit: int = CARD_DAILY_COUNT_LIMIT_DEFAULT

    def __post_init__(self) -> None:
        r = "card"
        check_asn(self.asn)
        _match(r, "issuer_id", self.issuer_id, _CODE, "1..32 letters, digits, _ or -")
        _enum(r, "status", self.status, CardStatus)
        _int(r, "daily_amount_limit_fen", self.daily_amount_limit_fen, 0, FIELD4_AMOUNT_MAX_FEN)
        _int(r, "daily_count_limit", self.daily_count_limit, 0, 1_000_000)


@dataclass(frozen=True, slots=True)
class Issuer:
    """A card issuer the host acts for (load MAC2, TAC checks). Its master keys are stored per
    key version, encrypted, and read with ``get_issuer_keys``."""

    issuer_id: str
    name: str

    def __post_init__(self) -> None:
        _match("issuer", "issuer_id", self.issuer_id, _CODE, "1..32 letters, digits, _ or -")
        _name("issuer", self.name)


@dataclass(frozen=True, slots=True)
class CommissionRule:
    """A merchant's commission terms (clearing.md §2), in force over [effective_from,
    effective_to). Versions count up per merchant; on a date, the highest version whose period
    contains it is in force. ``version`` 0 means "let the store assign the next one".

    - percent: ``rate_bp``, optional ``min_fen`` / ``max_fen`` per transaction;
    - fixed: ``fee_fen`` per transaction (capped at the amount when applied);
    - discount: ``user_bp`` / ``settle_bp`` of the list price, with ``rate_bp`` the equivalent
      rate on the paid amount, which must be whole (use ``CommissionRule.discount``);
    - zero: nothing.
    """

    merchant_id: str
    kind: RuleKind
    effective_from: date
    effective_to: date | None = None
    rate_bp: int | None = None
    min_fen: int | None = None
    max_fen: int | None = None
    fee_fen: int | None = None
    user_bp: int | None = None
    settle_bp: int | None = None
    version: int = 0

    def __post_init__(self) -> None:
        r = "commission_rule"
        check_merchant_id(self.merchant_id)
        _enum(r, "kind", self.kind, RuleKind)
        _period(r, self.effective_from, self.effective_to)
        _int(r, "version", self.version, 0, 1_000_000)
        allowed = {
            RuleKind.PERCENT: {"rate_bp", "min_fen", "max_fen"},
            RuleKind.FIXED: {"fee_fen"},
            RuleKind.DISCOUNT: {"rate_bp", "user_bp", "settle_bp"},
            RuleKind.ZERO: set(),
        }[self.kind]
        for name in ("rate_bp", "min_fen", "max_fen", "fee_fen", "user_bp", "settle_bp"):
            if name not in allowed and getattr(self, name) is not None:
                raise InvalidRecord(r, name, f"does not apply to a {self.kind.value} rule")
        if self.kind is RuleKind.PERCENT:
            _int(r, "rate_bp", self.rate_bp, 0, BP_PER_UNIT)
            _opt_int(r, "min_fen", self.min_fen, 0, PURCHASE_AMOUNT_MAX_FEN)
            _opt_int(r, "max_fen", self.max_fen, 0, PURCHASE_AMOUNT_MAX_FEN)
            if (
                self.min_fen is not None
                and self.max_fen is not None
                and self.min_fen > self.max_fen
            ):
                raise InvalidRecord(r, "max_fen", "must not be below min_fen")
        elif self.kind is RuleKind.FIXED:
            _int(r, "fee_fen", self.fee_fen, 0, PURCHASE_AMOUNT_MAX_FEN)
        elif self.kind is RuleKind.DISCOUNT:
            _int(r, "user_bp", self.user_bp, 1, BP_PER_UNIT)
            _int(r, "settle_bp", self.settle_bp, 0, BP_PER_UNIT)
            assert self.user_bp is not None and self.settle_bp is not None
            derived = discount_rate_bp(self.user_bp, self.settle_bp)  # raises when not whole
            if self.rate_bp != derived:
                raise InvalidRecord(r, "rate_bp", f"must be the derived rate {derived}")

    @staticmethod
    def discount(
        merchant_id: str,
        effective_from: date,
        *,
        user_bp: int,
        settle_bp: int,
        effective_to: date | None = None,
    ) -> CommissionRule:
        """A discount rule with its equivalent rate derived (refused when not whole)."""
        return CommissionRule(
            merchant_id,
            RuleKind.DISCOUNT,
            effective_from,
            effective_to,
            rate_bp=discount_rate_bp(user_bp, settle_bp),
            user_bp=user_bp,
            settle_bp=settle_bp,
        )

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)


# --- transaction records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxnKey:
    """A terminal's transaction key: (TID, batch, STAN). A 0220 and 0400 share their 0200's."""

    terminal_id: str
    batch_no: int
    stan: int

    def __post_init__(self) -> None:
        check_terminal_id(self.terminal_id)
        _int("txn_key", "batch_no", self.batch_no, 1, BATCH_NO_MAX)
        _int("txn_key", "stan", self.stan, 1, STAN_MAX)


@dataclass(frozen=True, slots=True)
class Authorisation:
    """A 0200 the host decided (approved or declined) for a registered terminal. The business
    date is fixed here, at the decision, and inherited by its completion and reversal.
    ``card_random`` (DF0D) is present for loads and refunds; ``original_rrn`` for refunds."""

    kind: TxnKind
    key: TxnKey
    merchant_id: str
    asn: str
    amount_fen: int
    rrn: str
    response_code: ResponseCode
    business_date: date
    received_at: datetime
    card_counter: int  # DF03, as returned by INITIALIZE (the transaction's counter is +1)
    key_version: int  # DF04
    psam_terminal_id: bytes  # DF07, 6 bytes
    balance_before_fen: int  # DF02
    auth_code: str | None = None  # approved only
    card_random: bytes | None = None  # DF0D
    original_rrn: str | None = None

    def __post_init__(self) -> None:
        r = "authorisation"
        _enum(r, "kind", self.kind, TxnKind)
        check_merchant_id(self.merchant_id)
        check_asn(self.asn)
        _int(r, "amount_fen", self.amount_fen, 0, FIELD4_AMOUNT_MAX_FEN)
        check_rrn(self.rrn)
        _enum(r, "response_code", self.response_code, ResponseCode)
        _date(r, "business_date", self.business_date)
        _aware(r, "received_at", self.received_at)
        _int(r, "card_counter", self.card_counter, 0, CARD_COUNTER_MAX)
        _int(r, "key_version", self.key_version, 0, KEY_VERSION_MAX)
        _bytes(r, "psam_terminal_id", self.psam_terminal_id, 6)
        _int(r, "balance_before_fen", self.balance_before_fen, 0, FIELD4_AMOUNT_MAX_FEN)
        if self.approved:
            _match(r, "auth_code", self.auth_code, _AUTH_CODE, "6 letters or digits")
            high = LOAD_AMOUNT_MAX_FEN if self.kind is TxnKind.LOAD else PURCHASE_AMOUNT_MAX_FEN
            _int(r, "amount_fen", self.amount_fen, 1, high)
        elif self.auth_code is not None:
            raise InvalidRecord(r, "auth_code", "only an approved authorisation has one")
        if self.card_random is not None:
            _bytes(r, "card_random", self.card_random, 4)
        if self.kind is TxnKind.REFUND:
            if self.original_rrn is not None:
                _match(r, "original_rrn", self.original_rrn, _RRN, "12 letters or digits")
            elif self.approved:
                raise InvalidRecord(r, "original_rrn", "an approved refund names its original")
        elif self.original_rrn is not None:
            raise InvalidRecord(r, "original_rrn", "only a refund has an original")

    @property
    def approved(self) -> bool:
        return self.response_code is ResponseCode.APPROVED


@dataclass(frozen=True, slots=True)
class Completion:
    """A 0220 completion advice applied to its authorisation: what the card did (amount, TAC)
    and the host's verdict on the TAC. It inherits the authorisation's business date."""

    key: TxnKey
    amount_fen: int
    tac: bytes  # DF0A
    tac_verdict: TacVerdict
    card_counter: int  # DF03
    psam_serial: int  # DF08
    terminal_datetime: datetime  # DF09: the terminal's local time, naive
    business_date: date
    received_at: datetime

    def __post_init__(self) -> None:
        r = "completion"
        _int(r, "amount_fen", self.amount_fen, 1, FIELD4_AMOUNT_MAX_FEN)
        _bytes(r, "tac", self.tac, 4)
        _enum(r, "tac_verdict", self.tac_verdict, TacVerdict)
        _int(r, "card_counter", self.card_counter, 0, CARD_COUNTER_MAX)
        _int(r, "psam_serial", self.psam_serial, 0, PSAM_SERIAL_MAX)
        if not isinstance(self.terminal_datetime, datetime) or self.terminal_datetime.tzinfo:
            raise InvalidRecord(r, "terminal_datetime", "must be a naive local datetime")
        _date(r, "business_date", self.business_date)
        _aware(r, "received_at", self.received_at)


@dataclass(frozen=True, slots=True)
class Reversal:
    """A 0400 applied to its authorisation (inherits its business date)."""

    key: TxnKey
    reason: ReversalReason
    business_date: date
    received_at: datetime

    def __post_init__(self) -> None:
        _enum("reversal", "reason", self.reason, ReversalReason)
        _date("reversal", "business_date", self.business_date)
        _aware("reversal", "received_at", self.received_at)


@dataclass(frozen=True, slots=True)
class BatchUploadRecord:
    """One 0320 (60.3 = 201): the terminal's own copy of a completion, kept as the terminal
    sent it for three-way reconciliation (it may name an RRN the host never issued)."""

    key: TxnKey
    kind: TxnKind
    asn: str
    amount_fen: int
    rrn: str
    tac: bytes
    card_counter: int
    psam_serial: int
    terminal_datetime: datetime
    received_at: datetime

    def __post_init__(self) -> None:
        r = "batch_upload"
        _enum(r, "kind", self.kind, TxnKind)
        check_asn(self.asn)
        _int(r, "amount_fen", self.amount_fen, 0, FIELD4_AMOUNT_MAX_FEN)
        check_rrn(self.rrn)
        _bytes(r, "tac", self.tac, 4)
        _int(r, "card_counter", self.card_counter, 0, CARD_COUNTER_MAX)
        _int(r, "psam_serial", self.psam_serial, 0, PSAM_SERIAL_MAX)
        if not isinstance(self.terminal_datetime, datetime) or self.terminal_datetime.tzinfo:
            raise InvalidRecord(r, "terminal_datetime", "must be a naive local datetime")
        _aware(r, "received_at", self.received_at)


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """Field 48 of a 0500 (host_protocol.md §5): completed, unreversed transactions of one
    batch. Counts are n3 on the wire (0..999), amounts n12."""

    purchase_amount_fen: int = 0
    purchase_count: int = 0
    refund_amount_fen: int = 0
    refund_count: int = 0
    load_amount_fen: int = 0
    load_count: int = 0

    def __post_init__(self) -> None:
        for name in ("purchase", "refund", "load"):
            amount = getattr(self, f"{name}_amount_fen")
            _int("batch_totals", f"{name}_amount_fen", amount, 0, FIELD4_AMOUNT_MAX_FEN)
            _int("batch_totals", f"{name}_count", getattr(self, f"{name}_count"), 0, 999)

    def first_half_equals(self, other: BatchTotals) -> bool:
        """Purchases and refunds (characters 1..31 of field 48)."""
        return (
            self.purchase_amount_fen,
            self.purchase_count,
            self.refund_amount_fen,
            self.refund_count,
        ) == (
            other.purchase_amount_fen,
            other.purchase_count,
            other.refund_amount_fen,
            other.refund_count,
        )

    def second_half_equals(self, other: BatchTotals) -> bool:
        """Loads (characters 32..62 of field 48)."""
        return (self.load_amount_fen, self.load_count) == (other.load_amount_fen, other.load_count)


@dataclass(frozen=True, slots=True)
class TerminalSettlement:
    """A 0500: the terminal's totals for a batch against the host's own, and the verdict per
    half of field 48 (use ``TerminalSettlement.of`` to compute the verdicts)."""

    terminal_id: str
    batch_no: int
    terminal_totals: BatchTotals
    host_totals: BatchTotals
    first_half_balanced: bool
    second_half_balanced: bool
    business_date: date
    settled_at: datetime

    def __post_init__(self) -> None:
        r = "settlement"
        check_terminal_id(self.terminal_id)
        _int(r, "batch_no", self.batch_no, 1, BATCH_NO_MAX)
        if self.first_half_balanced != self.terminal_totals.first_half_equals(self.host_totals):
            raise InvalidRecord(r, "first_half_balanced", "disagrees with the totals")
        if self.second_half_balanced != self.terminal_totals.second_half_equals(self.host_totals):
            raise InvalidRecord(r, "second_half_balanced", "disagrees with the totals")
        _date(r, "business_date", self.business_date)
        _aware(r, "settled_at", self.settled_at)

    @staticmethod
    def of(
        terminal_id: str,
        batch_no: int,
        terminal_totals: BatchTotals,
        host_totals: BatchTotals,
        business_date: date,
        settled_at: datetime,
    ) -> TerminalSettlement:
        return TerminalSettlement(
            terminal_id,
            batch_no,
            terminal_totals,
            host_totals,
            terminal_totals.first_half_equals(host_totals),
            terminal_totals.second_half_equals(host_totals),
            business_date,
            settled_at,
        )

    @property
    def balanced(self) -> bool:
        return self.first_half_balanced and self.second_half_balanced


@dataclass(frozen=True, slots=True)
class DayTotals:
    """Approved, unreversed purchases on one business date (card or merchant)."""

    amount_fen: int = 0
    count: int = 0


@dataclass(frozen=True, slots=True)
class ExchangeKey:
    """The duplicate key of host_protocol.md §6: (TID, batch, STAN, MTI)."""

    terminal_id: str
    batch_no: int
    stan: int
    mti: str

    def __post_init__(self) -> None:
        r = "exchange"
        _match(r, "terminal_id", self.terminal_id, _TID, "8 letters or digits")
        _int(r, "batch_no", self.batch_no, 0, BATCH_NO_MAX)
        _int(r, "stan", self.stan, 0, STAN_MAX)
        _match(r, "mti", self.mti, _MTI, "4 digits starting with 0")


#: A response replayed to a retransmission is at most one frame (host_protocol.md §1).
EXCHANGE_RESPONSE_BYTES_MAX: Final = 2_048
REQUEST_DIGEST_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class ExchangeRecord:
    """One request the host answered: the digest of its content (the caller decides what the
    content is, e.g. SHA-256 over MTI .. field 63) and the exact response bytes to replay."""

    key: ExchangeKey
    request_digest: bytes = field(repr=False)
    response: bytes = field(repr=False)
    created_at: datetime

    def __post_init__(self) -> None:
        _bytes("exchange", "request_digest", self.request_digest, REQUEST_DIGEST_BYTES)
        if not isinstance(self.response, bytes) or not (
            0 < len(self.response) <= EXCHANGE_RESPONSE_BYTES_MAX
        ):
            raise InvalidRecord(
                "exchange", "response", f"must be 1..{EXCHANGE_RESPONSE_BYTES_MAX} bytes"
            )
        _aware("exchange", "created_at", self.created_at)

    def same_request(self, digest: bytes) -> bool:
        return hmac.compare_digest(self.request_digest, digest)
