"""The admin API of the acquiring host (issue 3 item 5): FastAPI over ``acquiring.ports.Store``.

``create_app(store, auth, counters)`` builds the application; ``ApiServerThread`` serves it with
uvicorn on a background thread (``nfcpay host serve --api-port``, tests, the demo). Endpoints,
roles and examples: docs/api.md. OpenAPI at ``/openapi.json``, Swagger UI at ``/docs`` (both
public); every path under ``/v1`` needs ``Authorization: Bearer <token>`` (401 without a valid
token, 403 when the token's role may not do it: ``api_auth.permits``).

The boundary rules of style.md, and where each is kept:
- Errors become RFC 7807 ``application/problem+json`` bodies in one place (``_problem_of``):
  RecordNotFound 404, DuplicateRecord and StoreIntegrityError 409, InvalidRecord and request
  validation 422, malformed JSON 400; anything else 500 with a generic detail (and a log line).
  Problem bodies never echo the input, so no key or card number comes back in one.
- Keys: a terminal's TMK is returned once, in the 201 of its registration, and only when the
  host generated it; issuer keys are accepted and never returned (an issuer shows its key
  versions). The store encrypts both at rest.
- Logs: one access line per request (method, path and query with card numbers masked, status,
  time); never a body, a header or a key.
- Limits: request bodies (``BODY_BYTES_MAX``, 413 beyond), page sizes (``PAGE_SIZE_MAX``),
  every string and integer of the models.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal, TypeVar

import uvicorn
from fastapi import APIRouter, Body, FastAPI, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acquiring.adapters.api_auth import API_PREFIX, Principal, TokenAuth, bearer_token, permits
from acquiring.counters import LiveCounters
from acquiring.domain.commission import BP_PER_UNIT, RuleKind
from acquiring.domain.errors import (
    AcquiringError,
    DuplicateRecord,
    InvalidRecord,
    RecordNotFound,
    StoreIntegrityError,
)
from acquiring.domain.model import (
    CARD_DAILY_AMOUNT_LIMIT_FEN_DEFAULT,
    CARD_DAILY_COUNT_LIMIT_DEFAULT,
    EXPANSION_FEE_MAX_FEN,
    EXPANSION_FEE_MIN_FEN,
    FIELD4_AMOUNT_MAX_FEN,
    KEY_VERSION_MAX,
    MAINTENANCE_FEE_MONTHLY_FEN_DEFAULT,
    NAME_CHARS_MAX,
    PURCHASE_AMOUNT_MAX_FEN,
    RETENTION_DAYS_DEFAULT,
    RETENTION_DAYS_MAX,
    CardAccount,
    CardStatus,
    ChannelPartner,
    CommissionRule,
    ContractKind,
    Issuer,
    Merchant,
    MerchantStatus,
    PartnerContract,
    PartnerStatus,
    ReversalReason,
    TacVerdict,
    Terminal,
    TerminalStatus,
    TxnKind,
)
from acquiring.domain.rules import SHANGHAI
from acquiring.ports import AdminUnitOfWork, Store, TxnQuery, TxnSummary
from paycore.iso8583.fields import ResponseCode
from paycore.iso8583.mac import key_check_value
from paycore.issuer_keys import IssuerKeys

log = logging.getLogger(__name__)

# --- limits ------------------------------------------------------------------------------------
#: Largest request body accepted (413 beyond): the biggest real one, an issuer, is under 1 KiB.
BODY_BYTES_MAX: Final = 64 * 1024
#: Page sizes of every listing.
PAGE_SIZE_MAX: Final = 200
PAGE_SIZE_DEFAULT: Final = 50
TMK_BYTES: Final = 16
COUNT_LIMIT_MAX: Final = 1_000_000
TXN_ID_MAX: Final = 2**63 - 1
#: Characters of one validation-error location part shown back (input keys can be anything).
LOC_CHARS_MAX: Final = 64
VALIDATION_ERRORS_MAX: Final = 20
#: Shorter quoted inputs are left in messages (no key is that short, and "S" is in "String").
QUOTED_CHARS_MIN: Final = 8
#: Concurrency and keep-alive of the uvicorn server (503 beyond ``concurrency_max``).
CONCURRENCY_MAX_DEFAULT: Final = 32
KEEP_ALIVE_S: Final = 5
START_TIMEOUT_S: Final = 10.0

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "urn:nfcpay:problem:"
#: Runs of 13..19 digits in a logged path or query are card numbers: all but the last 4 masked.
_CARD_NUMBER = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- field types (the domain re-checks every value on construction) ----------------------------


def _iso_date(value: object) -> object:
    """Dates are ``YYYY-MM-DD`` text only (no timestamps, no other forms)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return date.fromisoformat(value)  # ValueError for 2026-02-30: a 422
    raise ValueError("must be a date as YYYY-MM-DD")


def _whole_number(value: object) -> object:
    """JSON has one number type: 12.0 is the integer 12 (as JSON Schema's "integer" says);
    12.5, "12" and true are not integers."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


def _int(low: int, high: int) -> Any:
    return Field(strict=True, ge=low, le=high)


def _text(pattern: str) -> Any:
    return StringConstraints(strict=True, pattern=pattern)


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Mid = Annotated[str, _text(r"^[0-9A-Za-z]{15}$")]
Tid = Annotated[str, _text(r"^[0-9A-Za-z]{8}$")]
Asn = Annotated[str, _text(r"^[0-9]{16}$")]
Mcc = Annotated[str, _text(r"^[0-9]{4}$")]
Rrn = Annotated[str, _text(r"^[0-9A-Za-z]{12}$")]
Code = Annotated[str, _text(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,31}$")]
#: Names: printable ASCII, Latin-1 letters and signs, CJK punctuation, ideographs and full-width
#: forms; spaces inside, none outside (a subset of what the domain's names allow).
_NAME_CHARS: Final = (
    r"!-~\u00A1-\u00AC\u00AE-\u00FF\u3001-\u303F\u3400-\u4DBF\u4E00-\u9FFF\uFF01-\uFF60"
)
NAME_PATTERN: Final = rf"^[{_NAME_CHARS}]([ {_NAME_CHARS}]*[{_NAME_CHARS}])?$"
Name = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=NAME_CHARS_MAX, pattern=NAME_PATTERN),
]
Key16Hex = Annotated[str, _text(r"^[0-9A-Fa-f]{32}$")]
Key8Hex = Annotated[str, _text(r"^[0-9A-Fa-f]{16}$")]
_Whole = BeforeValidator(_whole_number)
Fen = Annotated[int, _int(0, FIELD4_AMOUNT_MAX_FEN), _Whole]
PositiveFen = Annotated[int, _int(1, FIELD4_AMOUNT_MAX_FEN), _Whole]
RuleFen = Annotated[int, _int(0, PURCHASE_AMOUNT_MAX_FEN), _Whole]
Bp = Annotated[int, _int(0, BP_PER_UNIT), _Whole]
PositiveBp = Annotated[int, _int(1, BP_PER_UNIT), _Whole]
KeyVersion = Annotated[int, _int(0, KEY_VERSION_MAX), _Whole]
Count = Annotated[int, _int(0, COUNT_LIMIT_MAX), _Whole]
ExpansionFen = Annotated[int, _int(EXPANSION_FEE_MIN_FEN, EXPANSION_FEE_MAX_FEN), _Whole]
RetentionDays = Annotated[int, _int(0, RETENTION_DAYS_MAX), _Whole]

MidPath = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{15}$", description="Merchant ID (15)")]
TidPath = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{8}$", description="Terminal ID (8)")]
AsnPath = Annotated[str, Path(pattern=r"^[0-9]{16}$", description="Card ASN (16 digits)")]
CodePath = Annotated[str, Path(pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]{0,31}$")]


# --- request and response models ----------------------------------------------------------------


class _In(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class _Query(BaseModel):
    """Query parameters: unknown ones are refused."""

    model_config = ConfigDict(extra="forbid")


class ValidationIssue(BaseModel):
    loc: str = Field(description="Where: body.field, query.name, path.name")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 7807 problem details."""

    type: str = Field(examples=["urn:nfcpay:problem:not-found"])
    title: str
    status: int
    detail: str
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Validation failures (422 only)"
    )


class MerchantIn(_In):
    merchant_id: Mid
    name: Name
    mcc: Mcc
    acquirer_id: Code
    onboarded_on: IsoDate | None = Field(
        default=None, description="Default: today's date in Asia/Shanghai"
    )
    status: MerchantStatus = MerchantStatus.ACTIVE
    signing_partner_id: Code | None = None
    daily_limit_fen: PositiveFen | None = Field(
        default=None, description="Purchases per business date; null: no limit"
    )


class MerchantOut(BaseModel):
    merchant_id: str
    name: str
    mcc: str
    acquirer_id: str
    onboarded_on: date
    status: MerchantStatus
    signing_partner_id: str | None
    daily_limit_fen: int | None

    @staticmethod
    def of(m: Merchant) -> MerchantOut:
        return MerchantOut(
            merchant_id=m.merchant_id,
            name=m.name,
            mcc=m.mcc,
            acquirer_id=m.acquirer_id,
            onboarded_on=m.onboarded_on,
            status=m.status,
            signing_partner_id=m.signing_partner_id,
            daily_limit_fen=m.daily_limit_fen,
        )


class MerchantPage(BaseModel):
    items: list[MerchantOut]
    next_after: str | None = Field(description="Pass as ?after= for the next page; null: last")


class MerchantStatusIn(_In):
    status: MerchantStatus


class TerminalIn(_In):
    terminal_id: Tid
    merchant_id: Mid
    deployed_on: IsoDate | None = Field(
        default=None, description="Default: today's date in Asia/Shanghai"
    )
    status: TerminalStatus = TerminalStatus.ACTIVE
    maintaining_partner_id: Code | None = None
    tmk: Key16Hex | None = Field(
        default=None,
        description="A TMK from a key ceremony (32 hex digits); omit it to have the host "
        "generate one, which the 201 response then shows, once",
    )


class TerminalOut(BaseModel):
    terminal_id: str
    merchant_id: str
    deployed_on: date
    status: TerminalStatus
    maintaining_partner_id: str | None
    batch_no: int
    signed_on: bool

    @staticmethod
    def fields_of(t: Terminal) -> dict[str, Any]:
        return {
            "terminal_id": t.terminal_id,
            "merchant_id": t.merchant_id,
            "deployed_on": t.deployed_on,
            "status": t.status,
            "maintaining_partner_id": t.maintaining_partner_id,
            "batch_no": t.batch_no,
            "signed_on": t.signed_on,
        }

    @staticmethod
    def of(t: Terminal) -> TerminalOut:
        return TerminalOut(**TerminalOut.fields_of(t))


class TerminalRegistered(TerminalOut):
    tmk: str | None = Field(
        description="The generated TMK (32 hex digits), shown here only, never again; null "
        "when the request supplied it"
    )
    tmk_kcv: str = Field(description="Key check value of the TMK (8 hex digits)")
    tmk_source: Literal["generated", "supplied"]


class TerminalPage(BaseModel):
    items: list[TerminalOut]
    next_after: str | None


class TerminalStatusIn(_In):
    status: TerminalStatus


class CardIn(_In):
    asn: Asn
    issuer_id: Code
    status: CardStatus = CardStatus.ACTIVE
    daily_amount_limit_fen: Fen = CARD_DAILY_AMOUNT_LIMIT_FEN_DEFAULT
    daily_count_limit: Count = CARD_DAILY_COUNT_LIMIT_DEFAULT


class CardOut(BaseModel):
    asn: str
    issuer_id: str
    status: CardStatus
    hot_listed: bool
    daily_amount_limit_fen: int
    daily_count_limit: int

    @staticmethod
    def of(c: CardAccount) -> CardOut:
        return CardOut(
            asn=c.asn,
            issuer_id=c.issuer_id,
            status=c.status,
            hot_listed=c.status is CardStatus.HOT,
            daily_amount_limit_fen=c.daily_amount_limit_fen,
            daily_count_limit=c.daily_count_limit,
        )


class IssuerKeyFile(_In):
    """The issuer key file of card.md §6. Accepted, stored encrypted, never returned."""

    key_version: KeyVersion
    mpk: Key16Hex
    mlk: Key16Hex
    mtk: Key16Hex
    issuer_factor: Key8Hex | None = None

    def keys(self) -> IssuerKeys:
        return IssuerKeys(
            self.key_version,
            bytes.fromhex(self.mpk),
            bytes.fromhex(self.mlk),
            bytes.fromhex(self.mtk),
            None if self.issuer_factor is None else bytes.fromhex(self.issuer_factor),
        )

    def __repr__(self) -> str:
        return f"IssuerKeyFile(key_version={self.key_version}, <keys hidden>)"

    __str__ = __repr__


class IssuerIn(_In):
    issuer_id: Code
    name: Name
    keys: IssuerKeyFile


class IssuerOut(BaseModel):
    issuer_id: str
    name: str
    key_versions: list[int]


class _RuleIn(_In):
    effective_from: IsoDate
    effective_to: IsoDate | None = Field(default=None, description="Exclusive; null: open")


class PercentRuleIn(_RuleIn):
    kind: Literal["percent"]
    rate_bp: Bp
    min_fen: RuleFen | None = None
    max_fen: RuleFen | None = None


class FixedRuleIn(_RuleIn):
    kind: Literal["fixed"]
    fee_fen: RuleFen


class DiscountRuleIn(_RuleIn):
    """user_bp / settle_bp of the list price; the equivalent rate on the paid amount,
    (user_bp - settle_bp) x 10000 / user_bp, must be a whole number of bp (else 422)."""

    kind: Literal["discount"]
    user_bp: PositiveBp
    settle_bp: Bp


class ZeroRuleIn(_RuleIn):
    kind: Literal["zero"]


CommissionRuleIn = Annotated[
    PercentRuleIn | FixedRuleIn | DiscountRuleIn | ZeroRuleIn, Field(discriminator="kind")
]


class CommissionRuleOut(BaseModel):
    merchant_id: str
    version: int
    kind: RuleKind
    effective_from: date
    effective_to: date | None
    rate_bp: int | None
    min_fen: int | None
    max_fen: int | None
    fee_fen: int | None
    user_bp: int | None
    settle_bp: int | None

    @staticmethod
    def of(r: CommissionRule) -> CommissionRuleOut:
        return CommissionRuleOut(
            merchant_id=r.merchant_id,
            version=r.version,
            kind=r.kind,
            effective_from=r.effective_from,
            effective_to=r.effective_to,
            rate_bp=r.rate_bp,
            min_fen=r.min_fen,
            max_fen=r.max_fen,
            fee_fen=r.fee_fen,
            user_bp=r.user_bp,
            settle_bp=r.settle_bp,
        )


class PartnerIn(_In):
    partner_id: Code
    name: Name
    status: PartnerStatus = PartnerStatus.ACTIVE


class PartnerOut(BaseModel):
    partner_id: str
    name: str
    status: PartnerStatus


class _ContractIn(_In):
    effective_from: IsoDate
    effective_to: IsoDate | None = Field(default=None, description="Exclusive; null: open")


class SigningContractIn(_ContractIn):
    kind: Literal["signing"]
    share_bp: Bp
    expansion_fee_fen: ExpansionFen
    retention_days: RetentionDays = RETENTION_DAYS_DEFAULT


class MaintenanceContractIn(_ContractIn):
    kind: Literal["maintenance"]
    monthly_fee_fen: Fen = MAINTENANCE_FEE_MONTHLY_FEN_DEFAULT


ContractIn = Annotated[SigningContractIn | MaintenanceContractIn, Field(discriminator="kind")]


class ContractOut(BaseModel):
    contract_id: int
    partner_id: str
    kind: ContractKind
    effective_from: date
    effective_to: date | None
    share_bp: int | None
    expansion_fee_fen: int | None
    retention_days: int | None
    monthly_fee_fen: int | None

    @staticmethod
    def of(c: PartnerContract) -> ContractOut:
        return ContractOut(
            contract_id=c.contract_id,
            partner_id=c.partner_id,
            kind=c.kind,
            effective_from=c.effective_from,
            effective_to=c.effective_to,
            share_bp=c.share_bp,
            expansion_fee_fen=c.expansion_fee_fen,
            retention_days=c.retention_days,
            monthly_fee_fen=c.monthly_fee_fen,
        )


class PageQuery(_Query):
    after: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{0,15}$")] = Field(
        default="", description="The last id of the previous page"
    )
    limit: int = Field(default=PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)


class TerminalPageQuery(PageQuery):
    merchant_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{15}$")] | None = None


class TransactionQuery(_Query):
    terminal_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{8}$")] | None = None
    merchant_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{15}$")] | None = None
    asn: Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")] | None = None
    rrn: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{12}$")] | None = None
    kind: TxnKind | None = None
    response_code: ResponseCode | None = None
    business_date_from: IsoDate | None = None
    business_date_to: IsoDate | None = Field(default=None, description="Inclusive")
    after: int = Field(default=0, ge=0, le=TXN_ID_MAX, description="Cursor: next_after")
    limit: int = Field(default=PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)


class TransactionOut(BaseModel):
    txn_id: int
    kind: TxnKind
    terminal_id: str
    batch_no: int
    stan: int
    merchant_id: str
    asn: str
    amount_fen: int
    rrn: str
    response_code: ResponseCode
    auth_code: str | None
    business_date: date
    received_at: datetime
    card_counter: int
    key_version: int
    balance_before_fen: int
    original_rrn: str | None
    completion_amount_fen: int | None
    tac_verdict: TacVerdict | None
    reversal_reason: ReversalReason | None

    @staticmethod
    def of(s: TxnSummary) -> TransactionOut:
        a = s.authorisation
        return TransactionOut(
            txn_id=s.txn_id,
            kind=a.kind,
            terminal_id=a.key.terminal_id,
            batch_no=a.key.batch_no,
            stan=a.key.stan,
            merchant_id=a.merchant_id,
            asn=a.asn,
            amount_fen=a.amount_fen,
            rrn=a.rrn,
            response_code=a.response_code,
            auth_code=a.auth_code,
            business_date=a.business_date,
            received_at=a.received_at,
            card_counter=a.card_counter,
            key_version=a.key_version,
            balance_before_fen=a.balance_before_fen,
            original_rrn=a.original_rrn,
            completion_amount_fen=s.completion_amount_fen,
            tac_verdict=s.tac_verdict,
            reversal_reason=s.reversal_reason,
        )


class TransactionPage(BaseModel):
    items: list[TransactionOut]
    next_after: int | None = Field(description="Pass as ?after= for the next page; null: last")


class MessageCountOut(BaseModel):
    mti: str
    response_code: str
    count: int


class LatencyOut(BaseModel):
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class CountersOut(BaseModel):
    as_of: datetime
    messages_total: int
    messages: list[MessageCountOut]
    approvals: int = Field(description="0200 authorisations answered 00")
    declines: int = Field(description="0200 authorisations answered otherwise")
    in_flight: int
    latency: LatencyOut | None = Field(description="null until a message was answered")


# --- problems (the one place errors become HTTP) ------------------------------------------------


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        # ASCII only: nothing a client sent can make the body unencodable.
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True, slots=True)
class _Kind:
    status: int
    slug: str
    title: str


#: Store and domain errors, most specific first.
_ERROR_KINDS: Final[tuple[tuple[type[AcquiringError], _Kind], ...]] = (
    (RecordNotFound, _Kind(404, "not-found", "Not found")),
    (DuplicateRecord, _Kind(409, "duplicate", "Already exists")),
    (StoreIntegrityError, _Kind(409, "conflict", "Conflicts with stored records")),
    (InvalidRecord, _Kind(422, "invalid-record", "Invalid record")),
)
_STATUS_SLUGS: Final = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation",
    500: "internal",
    503: "unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + (slug or _STATUS_SLUGS.get(status, str(status))),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def _problem_of(exc: Exception) -> ProblemResponse:
    """Every error that reaches the API's edge, as a problem response."""
    if isinstance(exc, RequestValidationError):
        return _validation_problem(exc)
    if isinstance(exc, StarletteHTTPException):
        status = exc.status_code if 400 <= exc.status_code < 600 else 500
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
        return problem(status, detail, headers=exc.headers)
    for kind, shown in _ERROR_KINDS:
        if isinstance(exc, kind):
            return problem(shown.status, str(exc), slug=shown.slug, title=shown.title)
    # KeyVaultError, a read-only unit asked to write, a database down, a bug: nothing of it is
    # shown, the log has the exception's type (its message may name a table, never a key).
    log.error("internal error: %s", type(exc).__name__)
    return problem(500, "the host could not complete the request", slug="internal")


def _validation_problem(exc: RequestValidationError) -> ProblemResponse:
    issues = list(exc.errors())
    if any(issue.get("type") == "json_invalid" for issue in issues):
        return problem(400, "the request body is not valid JSON", slug="malformed-json")
    shown = [
        {
            "loc": ".".join(str(part)[:LOC_CHARS_MAX] for part in issue.get("loc", ())),
            "msg": _without_input(issue)[:200],
            "type": str(issue.get("type", "invalid"))[:LOC_CHARS_MAX],
        }
        for issue in issues[:VALIDATION_ERRORS_MAX]
    ]  # never the "input" or "ctx" of an issue: they can hold a key
    where = ", ".join(issue["loc"] for issue in shown[:5])
    return problem(
        422,
        f"{len(issues)} invalid value(s): {where}",
        slug="validation",
        title="Invalid request",
        errors=shown,
    )


def _without_input(issue: Mapping[str, Any]) -> str:
    """An issue's message with the offending value cut out (a few messages quote it: a
    string input, the tag of a discriminated union)."""
    msg = str(issue.get("msg", "invalid"))
    quoted = [issue.get("input")]
    if issue.get("type") == "union_tag_invalid":
        quoted.append((issue.get("ctx") or {}).get("tag"))
    for value in quoted:
        if isinstance(value, str) and len(value) >= QUOTED_CHARS_MIN:
            msg = msg.replace(value, "<input>")
    return msg


def _install_problem_handlers(app: FastAPI, routes: Sequence[APIRoute]) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
            # Starlette names only the first route's methods; RFC 9110 §15.5.6 wants all.
            allowed = _allowed_methods(routes, request.scope["path"])
            exc = StarletteHTTPException(405, "Method Not Allowed", {"Allow": allowed})
        return _problem_of(exc)

    for exc_class in (RequestValidationError, StarletteHTTPException, AcquiringError, Exception):
        app.add_exception_handler(exc_class, handle)


def _allowed_methods(routes: Sequence[APIRoute], path: str) -> str:
    methods: set[str] = set()
    for route in routes:
        if route.path_regex.match(path):
            methods.update(route.methods or ())
    return ", ".join(sorted(methods))


def _problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": ref}},
        }
        for status in statuses
    }


# --- the gate: authentication, authorisation, body limit, access log ---------------------------


def mask_card_numbers(text: str) -> str:
    return _CARD_NUMBER.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)


class _Gate:
    """Pure ASGI middleware in front of every route: refuses /v1 requests without a valid
    token (401) or with a role that may not make them (403), reads the body up to the limit
    (413 beyond) and writes the access log line."""

    def __init__(self, app: ASGIApp, *, auth: TokenAuth, body_bytes_max: int) -> None:
        self._app = app
        self._auth = auth
        self._body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, send_noting_status)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope.get("path", "") + ("?" + query if query else "")
            log.info(
                "%s %s -> %d in %.1f ms",
                scope.get("method", "?"),
                mask_card_numbers(target)[:512],
                status[0],
                (time.perf_counter() - started) * 1000,
            )

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            headers = Headers(scope=scope)
            principal = self._auth.authenticate(bearer_token(headers.get("authorization")))
            if principal is None:
                refusal = problem(
                    401,
                    "a valid token is required: Authorization: Bearer <token>",
                    headers={"WWW-Authenticate": 'Bearer realm="nfcpay"'},
                )
                await refusal(scope, receive, send)
                return
            if not permits(principal.role, scope["method"], path):
                refusal = problem(
                    403, f"the {principal.role.value} role may not {scope['method']} {path}"
                )
                await refusal(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        body = await self._read_body(scope, receive)
        if body is None:
            await problem(413, f"request bodies are limited to {self._body_bytes_max} bytes")(
                scope, receive, send
            )
            return
        await self._app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole request body, or None when it is larger than the limit."""
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > 2**40):
            return None
        if declared is not None and int(declared) > self._body_bytes_max:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._body_bytes_max:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="Authorization: Bearer <token>; roles admin, operations, clearing",
)


def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """Who is calling (the gate has authenticated and authorised the request already)."""
    found = request.state.principal
    assert isinstance(found, Principal)
    return found


# --- the application ----------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Context:
    store: Store
    counters: LiveCounters
    clock: Callable[[], datetime]
    random_bytes: Callable[[int], bytes]

    def today(self) -> date:
        """Today in Asia/Shanghai: the default onboarding and deployment date."""
        return self.clock().astimezone(SHANGHAI).date()

    @contextmanager
    def read(self) -> Iterator[AdminUnitOfWork]:
        with self.store.admin(readonly=True) as uow:
            yield uow

    @contextmanager
    def write(self) -> Iterator[AdminUnitOfWork]:
        with self.store.admin() as uow:
            yield uow


def _found(value: T | None, what: str) -> T:
    if value is None:
        raise RecordNotFound(f"{what} is not registered")
    return value


def _location(response: Response, path: str) -> None:
    response.headers["Location"] = path


def create_app(
    store: Store,
    auth: TokenAuth,
    counters: LiveCounters | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
    random_bytes: Callable[[int], bytes] = os.urandom,
    body_bytes_max: int = BODY_BYTES_MAX,
) -> FastAPI:
    """The admin API over ``store``. ``counters`` are the TCP server's (a fresh, idle set when
    None); ``clock`` gives default dates and ``as_of``; ``random_bytes`` generates TMKs."""
    assert 0 < body_bytes_max <= 16 * 1024 * 1024
    ctx = _Context(store, counters if counters is not None else LiveCounters(), clock, random_bytes)
    app = FastAPI(
        title="nfcpay acquiring host: admin API",
        version="1",
        description="Merchants, terminals, cards, issuers, commission rules, partners, "
        "transactions and live counters. Every /v1 path needs a bearer token (docs/api.md).",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(_Gate, auth=auth, body_bytes_max=body_bytes_max)
    common = _problem_responses(400, 401, 403, 413, 422)
    v1 = APIRouter(prefix=API_PREFIX, dependencies=[Security(principal)], responses=common)
    _merchant_routes(v1, ctx)
    _terminal_routes(v1, ctx)
    _card_routes(v1, ctx)
    _issuer_routes(v1, ctx)
    _partner_routes(v1, ctx)
    _transaction_routes(v1, ctx)
    app.include_router(v1)
    operations = [r for r in v1.routes if isinstance(r, APIRoute)]
    app.state.operations = tuple(operations)
    _install_problem_handlers(app, operations)
    _install_openapi(app)
    return app


#: Problems documented per operation, beyond the 400/401/403/422 of every one.
_MISSING: Final = _problem_responses(404)
_CONFLICTS: Final = _problem_responses(404, 409)


def _merchant_routes(v1: APIRouter, ctx: _Context) -> None:
    @v1.post("/merchants", tags=["merchants"], status_code=201, responses=_CONFLICTS)
    def create_merchant(body: MerchantIn, response: Response) -> MerchantOut:
        """Register a merchant."""
        merchant = Merchant(
            body.merchant_id,
            body.name,
            body.mcc,
            body.acquirer_id,
            body.onboarded_on or ctx.today(),
            body.status,
            body.signing_partner_id,
            body.daily_limit_fen,
        )
        with ctx.write() as uow:
            uow.add_merchant(merchant)
        _location(response, f"/v1/merchants/{merchant.merchant_id}")
        return MerchantOut.of(merchant)

    @v1.get("/merchants", tags=["merchants"])
    def list_merchants(page: Annotated[PageQuery, Query()]) -> MerchantPage:
        """Merchants in merchant_id order, a page at a time (keyset paging on ``after``)."""
        with ctx.read() as uow:
            found = uow.list_merchants(after_merchant_id=page.after, limit=page.limit + 1)
        items = found[: page.limit]
        more = len(found) > page.limit
        return MerchantPage(
            items=[MerchantOut.of(m) for m in items],
            next_after=items[-1].merchant_id if more else None,
        )

    @v1.get("/merchants/{merchant_id}", tags=["merchants"], responses=_MISSING)
    def get_merchant(merchant_id: MidPath) -> MerchantOut:
        with ctx.read() as uow:
            return MerchantOut.of(_found(uow.get_merchant(merchant_id), "merchant"))

    @v1.patch("/merchants/{merchant_id}", tags=["merchants"], responses=_CONFLICTS)
    def set_merchant_status(merchant_id: MidPath, body: MerchantStatusIn) -> MerchantOut:
        """Change a merchant's status (active, suspended, closed)."""
        with ctx.write() as uow:
            uow.set_merchant_status(merchant_id, body.status)
            return MerchantOut.of(_found(uow.get_merchant(merchant_id), "merchant"))

    @v1.post(
        "/merchants/{merchant_id}/commission-rules",
        tags=["commission"],
        status_code=201,
        responses=_CONFLICTS,
    )
    def add_commission_rule(
        merchant_id: MidPath,
        body: Annotated[CommissionRuleIn, Body()],
        response: Response,
    ) -> CommissionRuleOut:
        """Add the merchant's next rule version (clearing.md §2), in force from
        ``effective_from``. A discount rule whose equivalent rate is not whole is a 422."""
        rule = _commission_rule(merchant_id, body)
        with ctx.write() as uow:
            _found(uow.get_merchant(merchant_id), "merchant")
            stored = uow.add_commission_rule(rule)
        _location(response, f"/v1/merchants/{merchant_id}/commission-rules")
        return CommissionRuleOut.of(stored)

    @v1.get("/merchants/{merchant_id}/commission-rules", tags=["commission"], responses=_MISSING)
    def list_commission_rules(merchant_id: MidPath) -> list[CommissionRuleOut]:
        """Every version of the merchant's rules, oldest first."""
        with ctx.read() as uow:
            _found(uow.get_merchant(merchant_id), "merchant")
            return [CommissionRuleOut.of(r) for r in uow.commission_rules(merchant_id)]


def _commission_rule(
    merchant_id: str, body: PercentRuleIn | FixedRuleIn | DiscountRuleIn | ZeroRuleIn
) -> CommissionRule:
    start, end = body.effective_from, body.effective_to
    if isinstance(body, PercentRuleIn):
        return CommissionRule(
            merchant_id,
            RuleKind.PERCENT,
            start,
            end,
            rate_bp=body.rate_bp,
            min_fen=body.min_fen,
            max_fen=body.max_fen,
        )
    if isinstance(body, FixedRuleIn):
        return CommissionRule(merchant_id, RuleKind.FIXED, start, end, fee_fen=body.fee_fen)
    if isinstance(body, DiscountRuleIn):
        return CommissionRule.discount(
            merchant_id, start, user_bp=body.user_bp, settle_bp=body.settle_bp, effective_to=end
        )
    return CommissionRule(merchant_id, RuleKind.ZERO, start, end)


def _terminal_routes(v1: APIRouter, ctx: _Context) -> None:
    @v1.post("/terminals", tags=["terminals"], status_code=201, responses=_CONFLICTS)
    def register_terminal(body: TerminalIn, response: Response) -> TerminalRegistered:
        """Register a terminal with its TMK. Without ``tmk`` the host generates one and this
        response shows it, the only time it is ever shown: inject it into the terminal."""
        generated = body.tmk is None
        tmk = ctx.random_bytes(TMK_BYTES) if body.tmk is None else bytes.fromhex(body.tmk)
        assert len(tmk) == TMK_BYTES
        terminal = Terminal(
            body.terminal_id,
            body.merchant_id,
            body.deployed_on or ctx.today(),
            body.status,
            body.maintaining_partner_id,
        )
        with ctx.write() as uow:
            uow.add_terminal(terminal, tmk)
        _location(response, f"/v1/terminals/{terminal.terminal_id}")
        response.headers["Cache-Control"] = "no-store"
        return TerminalRegistered(
            **TerminalOut.fields_of(terminal),
            tmk=tmk.hex().upper() if generated else None,
            tmk_kcv=key_check_value(tmk).hex().upper(),
            tmk_source="generated" if generated else "supplied",
        )

    @v1.get("/terminals", tags=["terminals"])
    def list_terminals(page: Annotated[TerminalPageQuery, Query()]) -> TerminalPage:
        """Terminals in terminal_id order (optionally one merchant's), a page at a time."""
        with ctx.read() as uow:
            found = uow.list_terminals(
                merchant_id=page.merchant_id, after_terminal_id=page.after, limit=page.limit + 1
            )
        items = found[: page.limit]
        more = len(found) > page.limit
        return TerminalPage(
            items=[TerminalOut.of(t) for t in items],
            next_after=items[-1].terminal_id if more else None,
        )

    @v1.get("/terminals/{terminal_id}", tags=["terminals"], responses=_MISSING)
    def get_terminal(terminal_id: TidPath) -> TerminalOut:
        """A terminal, without its keys (they are never shown after registration)."""
        with ctx.read() as uow:
            return TerminalOut.of(_found(uow.get_terminal(terminal_id), "terminal"))

    @v1.patch("/terminals/{terminal_id}", tags=["terminals"], responses=_CONFLICTS)
    def set_terminal_status(terminal_id: TidPath, body: TerminalStatusIn) -> TerminalOut:
        """Change a terminal's status (active, suspended, returned)."""
        with ctx.write() as uow:
            uow.set_terminal_status(terminal_id, body.status)
            return TerminalOut.of(_found(uow.get_terminal(terminal_id), "terminal"))


def _card_routes(v1: APIRouter, ctx: _Context) -> None:
    @v1.post("/cards", tags=["cards"], status_code=201, responses=_CONFLICTS)
    def add_card(body: CardIn, response: Response) -> CardOut:
        card = CardAccount(
            body.asn,
            body.issuer_id,
            body.status,
            body.daily_amount_limit_fen,
            body.daily_count_limit,
        )
        with ctx.write() as uow:
            uow.add_card(card)
        _location(response, f"/v1/cards/{card.asn}")
        return CardOut.of(card)

    @v1.get("/cards/{asn}", tags=["cards"], responses=_MISSING)
    def get_card(asn: AsnPath) -> CardOut:
        with ctx.read() as uow:
            return CardOut.of(_found(uow.get_card(asn), "the card"))

    def set_status(asn: str, status: CardStatus) -> CardOut:
        with ctx.write() as uow:
            uow.set_card_status(asn, status)
            return CardOut.of(_found(uow.get_card(asn), "the card"))

    @v1.put("/cards/{asn}/hot-list", tags=["cards"], responses=_CONFLICTS)
    def hot_list_card(asn: AsnPath) -> CardOut:
        """Put the card on the hot list: every authorisation answers 62 (idempotent)."""
        return set_status(asn, CardStatus.HOT)

    @v1.delete("/cards/{asn}/hot-list", tags=["cards"], responses=_CONFLICTS)
    def clear_card(asn: AsnPath) -> CardOut:
        """Take the card off the hot list (idempotent)."""
        return set_status(asn, CardStatus.ACTIVE)


def _key_versions(uow: AdminUnitOfWork, issuer_id: str) -> list[int]:
    return uow.issuer_key_versions(issuer_id)


def _issuer_routes(v1: APIRouter, ctx: _Context) -> None:
    @v1.post("/issuers", tags=["issuers"], status_code=201, responses=_CONFLICTS)
    def add_issuer(body: IssuerIn, response: Response) -> IssuerOut:
        """Register an issuer with its first key set (the issuer key file of card.md §6).
        The keys are stored encrypted and never returned."""
        issuer = Issuer(body.issuer_id, body.name)
        with ctx.write() as uow:
            uow.add_issuer(issuer, body.keys.keys())
        _location(response, f"/v1/issuers/{issuer.issuer_id}")
        return IssuerOut(
            issuer_id=issuer.issuer_id, name=issuer.name, key_versions=[body.keys.key_version]
        )

    @v1.post("/issuers/{issuer_id}/keys", tags=["issuers"], status_code=201, responses=_CONFLICTS)
    def add_issuer_keys(issuer_id: CodePath, body: IssuerKeyFile) -> IssuerOut:
        """Add another key version (rotation); a version taken already is a 409."""
        with ctx.write() as uow:
            issuer = _found(uow.get_issuer(issuer_id), "issuer")
            uow.add_issuer_keys(issuer_id, body.keys())
            versions = _key_versions(uow, issuer_id)
        return IssuerOut(issuer_id=issuer.issuer_id, name=issuer.name, key_versions=versions)

    @v1.get("/issuers/{issuer_id}", tags=["issuers"], responses=_MISSING)
    def get_issuer(issuer_id: CodePath) -> IssuerOut:
        """An issuer and the versions of its keys (never the keys)."""
        with ctx.read() as uow:
            issuer = _found(uow.get_issuer(issuer_id), "issuer")
            versions = _key_versions(uow, issuer_id)
        return IssuerOut(issuer_id=issuer.issuer_id, name=issuer.name, key_versions=versions)


def _partner_routes(v1: APIRouter, ctx: _Context) -> None:
    @v1.post("/partners", tags=["partners"], status_code=201, responses=_CONFLICTS)
    def add_partner(body: PartnerIn, response: Response) -> PartnerOut:
        partner = ChannelPartner(body.partner_id, body.name, body.status)
        with ctx.write() as uow:
            uow.add_partner(partner)
        _location(response, f"/v1/partners/{partner.partner_id}")
        return PartnerOut(partner_id=partner.partner_id, name=partner.name, status=partner.status)

    @v1.get("/partners/{partner_id}", tags=["partners"], responses=_MISSING)
    def get_partner(partner_id: CodePath) -> PartnerOut:
        with ctx.read() as uow:
            p = _found(uow.get_partner(partner_id), "partner")
        return PartnerOut(partner_id=p.partner_id, name=p.name, status=p.status)

    @v1.post(
        "/partners/{partner_id}/contracts", tags=["partners"], status_code=201, responses=_CONFLICTS
    )
    def add_contract(
        partner_id: CodePath, body: Annotated[ContractIn, Body()], response: Response
    ) -> ContractOut:
        """Add a signing or maintenance contract (clearing.md §4)."""
        if isinstance(body, SigningContractIn):
            contract = PartnerContract.signing(
                partner_id,
                body.effective_from,
                share_bp=body.share_bp,
                expansion_fee_fen=body.expansion_fee_fen,
                retention_days=body.retention_days,
                effective_to=body.effective_to,
            )
        else:
            contract = PartnerContract.maintenance(
                partner_id,
                body.effective_from,
                monthly_fee_fen=body.monthly_fee_fen,
                effective_to=body.effective_to,
            )
        with ctx.write() as uow:
            _found(uow.get_partner(partner_id), "partner")
            stored = uow.add_contract(contract)
        _location(response, f"/v1/partners/{partner_id}/contracts")
        return ContractOut.of(stored)

    @v1.get("/partners/{partner_id}/contracts", tags=["partners"], responses=_MISSING)
    def list_contracts(partner_id: CodePath) -> list[ContractOut]:
        with ctx.read() as uow:
            _found(uow.get_partner(partner_id), "partner")
            return [ContractOut.of(c) for c in uow.contracts(partner_id)]


def _transaction_routes(v1: APIRouter, ctx: _Context) -> None:
    @v1.get("/transactions", tags=["transactions"])
    def search_transactions(q: Annotated[TransactionQuery, Query()]) -> TransactionPage:
        """Authorisations with their completion and reversal, in txn_id order; every filter
        optional, combined with AND (a date range ending before it starts matches nothing);
        cursor paging: pass ``next_after`` as ``after``."""
        query = TxnQuery(
            terminal_id=q.terminal_id,
            merchant_id=q.merchant_id,
            asn=q.asn,
            rrn=q.rrn,
            kind=q.kind,
            response_code=q.response_code,
            business_date_from=q.business_date_from,
            business_date_to=q.business_date_to,
            after_txn_id=q.after,
            limit=q.limit,
        )
        with ctx.read() as uow:
            page = uow.search_transactions(query)
        return TransactionPage(
            items=[TransactionOut.of(s) for s in page.items], next_after=page.next_after_txn_id
        )

    @v1.get("/counters", tags=["counters"])
    def live_counters() -> CountersOut:
        """Messages of the ISO 8583 endpoint since it started: by MTI and response code,
        approvals and declines of authorisations, in flight, latency percentiles."""
        snap = ctx.counters.snapshot()
        return CountersOut.model_validate({"as_of": ctx.clock(), **snap})


# --- OpenAPI --------------------------------------------------------------------------------------


def _install_openapi(app: FastAPI) -> None:
    """The generated spec plus the Problem schema the error responses refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(problem_schema.pop("$defs", {}))
            schemas["Problem"] = problem_schema
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- serving ------------------------------------------------------------------------------------


class CardNumberMask(logging.Filter):
    """Masks card numbers in a record's message and arguments: put on uvicorn's access
    logger, so that a logging setup that turns it back on still never shows a full ASN."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_card_numbers(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                mask_card_numbers(a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _mask_uvicorn_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, CardNumberMask) for f in access.filters):
        access.addFilter(CardNumberMask())


@dataclass(frozen=True, slots=True)
class ApiServerLimits:
    concurrency_max: int = CONCURRENCY_MAX_DEFAULT
    keep_alive_s: int = KEEP_ALIVE_S

    def __post_init__(self) -> None:
        assert 1 <= self.concurrency_max <= 1_024
        assert 1 <= self.keep_alive_s <= 300


class ApiServerThread:
    """uvicorn serving ``app`` on a background thread. ``start()`` returns once the socket
    listens (``port`` is the bound one: pass 0 for an ephemeral port); ``stop()`` ends it.
    uvicorn's own access log is off (it would show card numbers in paths); the app logs each
    request itself with card numbers masked, and uvicorn's access logger gets a filter that
    masks them too, should a logging setup turn it back on (pytest's capture does)."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ApiServerLimits | None = None,
    ) -> None:
        lim = limits or ApiServerLimits()
        self._host = host
        self._requested_port = port
        self._config = uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            limit_concurrency=lim.concurrency_max,
            timeout_keep_alive=lim.keep_alive_s,
        )
        _mask_uvicorn_access_log()
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> ApiServerThread:
        assert self._thread is None, "started already"
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="admin-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the admin API server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> ApiServerThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def route_table(app: FastAPI) -> Sequence[tuple[str, str]]:
    """(method, path) of every /v1 operation of an app ``create_app`` made, sorted."""
    operations: tuple[APIRoute, ...] = app.state.operations
    rows = {(m, route.path) for route in operations for m in route.methods or ()}
    return sorted(rows, key=lambda r: (r[1], r[0]))
