"""The admin API over real HTTP: uvicorn on an ephemeral loopback port in front of the capture
store, on SQLite and on PostgreSQL (a fresh schema per test; skipped when the server is
unreachable, failed under CI=true).

Every test's responses are kept: at the end none may be a 5xx, and no key the test handled
(a generated or supplied TMK, issuer keys) may appear in any response body but the one
registration response that shows a generated TMK, nor in any log record."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from acquiring.adapters.api import (
    PAGE_SIZE_MAX,
    ApiServerThread,
    create_app,
    mask_card_numbers,
    route_table,
)
from acquiring.adapters.api_auth import Role, TokenAuth, mint_token
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.counters import LiveCounters
from acquiring.domain.model import (
    Authorisation,
    Completion,
    Reversal,
    ReversalReason,
    TacVerdict,
    TxnKey,
    TxnKind,
)
from acquiring.ports import HostUnitOfWork
from paycore.iso8583.fields import ResponseCode
from paycore.iso8583.mac import key_check_value
from tests.integration.acquiring.host_env import database_url
from tests.integration.databases import DB_PARAMS

MID = "898310048990001"
MID2 = "898310048990002"
TID = "T0000001"
TID2 = "T0000002"
ASN = "1000000000000001"
ASN2 = "1000000000000002"
ISSUER = "ISS1"
PARTNER = "P1"
DAY = date(2026, 3, 1)
NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SUPPLIED_TMK = "00112233445566778899AABBCCDDEEFF"
ISSUER_KEY_FILE = {
    "key_version": 1,
    "mpk": "11223344556677888877665544332211",
    "mlk": "3F013F013F013F013F013F013F013F01",
    "mtk": "0F1E2D3C4B5A69788796A5B4C3D2E1F0",
    "issuer_factor": "0102030405060708",
}
ISSUER_KEY_FILE_2 = {
    "key_version": 2,
    "mpk": "A1A2A3A4A5A6A7A8A9AAABACADAEAFA0",
    "mlk": "B1B2B3B4B5B6B7B8B9BABBBCBDBEBFB0",
    "mtk": "C1C2C3C4C5C6C7C8C9CACBCCCDCECFC0",
    "issuer_factor": None,
}
PROBLEM_TYPE = "application/problem+json"
OPERATIONS = {
    ("POST", "/v1/merchants"),
    ("GET", "/v1/merchants"),
    ("GET", "/v1/merchants/{merchant_id}"),
    ("PATCH", "/v1/merchants/{merchant_id}"),
    ("POST", "/v1/merchants/{merchant_id}/commission-rules"),
    ("GET", "/v1/merchants/{merchant_id}/commission-rules"),
    ("POST", "/v1/terminals"),
    ("GET", "/v1/terminals"),
    ("GET", "/v1/terminals/{terminal_id}"),
    ("PATCH", "/v1/terminals/{terminal_id}"),
    ("POST", "/v1/cards"),
    ("GET", "/v1/cards/{asn}"),
    ("PUT", "/v1/cards/{asn}/hot-list"),
    ("DELETE", "/v1/cards/{asn}/hot-list"),
    ("POST", "/v1/issuers"),
    ("GET", "/v1/issuers/{issuer_id}"),
    ("POST", "/v1/issuers/{issuer_id}/keys"),
    ("POST", "/v1/partners"),
    ("GET", "/v1/partners/{partner_id}"),
    ("POST", "/v1/partners/{partner_id}/contracts"),
    ("GET", "/v1/partners/{partner_id}/contracts"),
    ("GET", "/v1/transactions"),
    ("GET", "/v1/counters"),
}
SAMPLE_PARAMS = {
    "merchant_id": MID,
    "terminal_id": TID,
    "asn": ASN,
    "issuer_id": ISSUER,
    "partner_id": PARTNER,
}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], path)


class CountingRandom:
    """Deterministic TMKs: 16 bytes of n, n+1, ... per call; remembers what it handed out."""

    def __init__(self) -> None:
        self.handed_out: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        value = bytes((0xA0 + len(self.handed_out) + i) % 256 for i in range(n))
        self.handed_out.append(value)
        return value


@dataclass
class Api:
    client: httpx.Client
    store: SqlStore
    counters: LiveCounters
    random: CountingRandom
    tokens: dict[Role, str]
    responses: list[httpx.Response] = field(default_factory=list)

    def headers(self, role: Role | None = Role.ADMIN) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def call(
        self, method: str, path: str, *, role: Role | None = Role.ADMIN, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.call("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.call("PATCH", path, json=body, **kwargs)


def fixed_random(value: int) -> Callable[[int], bytes]:
    return lambda n: bytes([value]) * n


@pytest.fixture(params=DB_PARAMS)
def api(
    request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[Api]:
    caplog.set_level(logging.DEBUG)
    with database_url(request.param, tmp_path) as url:
        store = SqlStore.open(url, KeyVault(os.urandom(32)))
        tokens: dict[Role, str] = {}
        entries = []
        for n, role in enumerate(Role):
            token, entry = mint_token(f"test-{role.value}", role, fixed_random(n))
            tokens[role] = token
            entries.append(entry)
        counters = LiveCounters()
        random = CountingRandom()
        app = create_app(
            store, TokenAuth(entries), counters, clock=lambda: NOW, random_bytes=random
        )
        seen: list[httpx.Response] = []

        def keep(response: httpx.Response) -> None:
            response.read()
            seen.append(response)

        try:
            with (
                ApiServerThread(app) as server,
                httpx.Client(
                    base_url=server.url, timeout=10, event_hooks={"response": [keep]}
                ) as client,
            ):
                yield Api(client, store, counters, random, tokens, seen)
        finally:
            store.close()
    server_errors = [(r.request.method, r.request.url.path) for r in seen if r.status_code >= 500]
    assert server_errors == []
    keys = [k.hex().upper() for k in random.handed_out] + [SUPPLIED_TMK] + key_hex()
    shows_tmk = [r for r in seen if r.status_code == 201 and r.json().get("tmk")]
    for response in seen:
        text = response.text.upper()
        allowed = {response.json()["tmk"]} if response in shows_tmk else set()
        for key in keys:
            if key not in allowed:
                assert key not in text, (response.request.url.path, "shows a key")
    # In teardown, caplog.text holds the teardown's records only: read every phase's. The
    # test's own HTTP client (httpx, httpcore) logs its request URLs: that is not the host.
    records = [
        r
        for when in ("setup", "call", "teardown")
        for r in caplog.get_records(when)
        if not r.name.startswith(("httpx", "httpcore"))
    ]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records)
    assert records, "nothing was logged: the check below would prove nothing"
    for key in keys:
        assert key not in logged.upper(), "a key was logged"
    assert ASN not in logged and ASN2 not in logged, "a card number was logged"


def key_hex() -> list[str]:
    return [
        v.upper()
        for keys in (ISSUER_KEY_FILE, ISSUER_KEY_FILE_2)
        for name, v in keys.items()
        if name != "key_version" and isinstance(v, str)
    ]


def problem_of(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:nfcpay:problem:")
    assert isinstance(body["title"], str) and isinstance(body["detail"], str)
    assert "Traceback" not in response.text
    if slug is not None:
        assert body["type"] == f"urn:nfcpay:problem:{slug}"
    return body


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def merchant_body(mid: str = MID, **extra: Any) -> dict[str, Any]:
    return {"merchant_id": mid, "name": "Noodle House", "mcc": "5814", "acquirer_id": "ACQ1"} | (
        extra
    )


def seed(api: Api) -> None:
    """A partner, two merchants, a terminal, an issuer and two cards, through the API."""
    ok(api.post("/v1/partners", {"partner_id": PARTNER, "name": "Partner One"}), 201)
    ok(api.post("/v1/merchants", merchant_body(signing_partner_id=PARTNER)), 201)
    ok(api.post("/v1/merchants", merchant_body(MID2, name="Cinema", mcc="7832")), 201)
    ok(api.post("/v1/terminals", {"terminal_id": TID, "merchant_id": MID}), 201)
    ok(
        api.post(
            "/v1/issuers", {"issuer_id": ISSUER, "name": "Issuer One", "keys": ISSUER_KEY_FILE}
        ),
        201,
    )
    ok(api.post("/v1/cards", {"asn": ASN, "issuer_id": ISSUER}), 201)
    ok(api.post("/v1/cards", {"asn": ASN2, "issuer_id": ISSUER}), 201)


# --- the surface ---------------------------------------------------------------------------


def test_the_operations_are_these_and_docs_api_md_lists_each(api: Api) -> None:
    routes = set(route_table(create_app(api.store, TokenAuth([]))))
    assert routes == OPERATIONS
    docs = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    for method, path in sorted(routes):
        assert f"`{method} {path}`" in docs, f"docs/api.md does not list {method} {path}"


def test_openapi_and_docs_are_public(api: Api) -> None:
    spec = ok(api.get("/openapi.json", role=None))
    assert set(spec["paths"]) == {p for _, p in OPERATIONS}
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "Problem" in spec["components"]["schemas"]
    docs = api.get("/docs", role=None)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer nfcpay_not-a-token-of-ours-at-all", "Basic YWRtaW46YWRtaW4=", "Bearer"],
)
def test_every_operation_refuses_without_a_valid_token(api: Api, authorization: str | None) -> None:
    seed(api)
    before = ok(api.get("/v1/merchants"))
    for method, path in sorted(OPERATIONS):
        headers = {} if authorization is None else {"Authorization": authorization}
        # A malformed body too: authentication comes first.
        response = api.call(
            method,
            concrete(path),
            role=None,
            headers=headers | {"content-type": "application/json"},
            content=b"{" if method in {"POST", "PUT", "PATCH"} else None,
        )
        body = problem_of(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == 'Bearer realm="nfcpay"', (method, path)
        assert "Bearer" in body["detail"]
    problem_of(api.get("/v1/not-a-route", role=None), 401)
    assert ok(api.get("/v1/merchants")) == before


def test_roles_limit_what_a_token_may_do(api: Api) -> None:
    seed(api)
    for method, path in sorted(OPERATIONS):
        target = concrete(path)
        for role in Role:
            response = api.call(method, target, role=role, json={})
            reading = method == "GET"
            allowed = role is Role.ADMIN or (
                reading
                and (role is Role.OPERATIONS or path in {"/v1/transactions", "/v1/counters"})
            )
            if allowed:
                assert response.status_code not in (401, 403), (role, method, path)
                assert response.status_code < 500
            else:
                body = problem_of(response, 403, "forbidden")
                assert role.value in body["detail"], (role, method, path)


# --- merchants -----------------------------------------------------------------------------


def test_merchant_lifecycle(api: Api) -> None:
    ok(api.post("/v1/partners", {"partner_id": PARTNER, "name": "Partner One"}), 201)
    created = api.post(
        "/v1/merchants", merchant_body(signing_partner_id=PARTNER, daily_limit_fen=500_000)
    )
    assert ok(created, 201) == {
        "merchant_id": MID,
        "name": "Noodle House",
        "mcc": "5814",
        "acquirer_id": "ACQ1",
        "onboarded_on": "2026-03-01",  # today in Shanghai, from the injected clock
        "status": "active",
        "signing_partner_id": PARTNER,
        "daily_limit_fen": 500_000,
    }
    assert created.headers["location"] == f"/v1/merchants/{MID}"
    assert ok(api.get(f"/v1/merchants/{MID}")) == created.json()
    assert ok(api.get(f"/v1/merchants/{MID}", role=Role.OPERATIONS)) == created.json()
    patched = ok(api.patch(f"/v1/merchants/{MID}", {"status": "suspended"}))
    assert patched["status"] == "suspended"
    assert ok(api.get(f"/v1/merchants/{MID}"))["status"] == "suspended"
    chinese = merchant_body(MID2, name="面馆 一号", onboarded_on="2025-12-31")
    assert ok(api.post("/v1/merchants", chinese), 201)["name"] == "面馆 一号"


def test_merchant_errors_are_problems(api: Api) -> None:
    ok(api.post("/v1/merchants", merchant_body()), 201)
    dup = problem_of(api.post("/v1/merchants", merchant_body()), 409, "duplicate")
    assert "merchant" in dup["detail"]
    problem_of(api.get("/v1/merchants/898310048999999"), 404, "not-found")
    problem_of(api.patch("/v1/merchants/898310048999999", {"status": "closed"}), 404)
    problem_of(api.post("/v1/merchants", merchant_body(MID2, signing_partner_id="NOPE")), 404)
    cases: list[tuple[dict[str, Any], str]] = [
        (merchant_body("89831004899000"), "body.merchant_id"),  # 14 characters
        (merchant_body(MID2, mcc="581"), "body.mcc"),
        (merchant_body(MID2, mcc=5814), "body.mcc"),
        (merchant_body(MID2, daily_limit_fen="100"), "body.daily_limit_fen"),
        (merchant_body(MID2, daily_limit_fen=True), "body.daily_limit_fen"),
        (merchant_body(MID2, daily_limit_fen=1.5), "body.daily_limit_fen"),
        (merchant_body(MID2, daily_limit_fen=0), "body.daily_limit_fen"),
        (merchant_body(MID2, daily_limit_fen=10**12), "body.daily_limit_fen"),
        (merchant_body(MID2, status="open"), "body.status"),
        (merchant_body(MID2, name=" padded"), "body.name"),
        (merchant_body(MID2, name="a\u202eb"), "body.name"),  # a bidi override
        (merchant_body(MID2, name="x" * 81), "body.name"),
        (merchant_body(MID2, onboarded_on="2026-02-30"), "body.onboarded_on"),
        (merchant_body(MID2, onboarded_on=1772323200), "body.onboarded_on"),
        (merchant_body(MID2, surprise=1), "body.surprise"),
    ]
    for body, loc in cases:
        problem = problem_of(api.post("/v1/merchants", body), 422, "validation")
        assert [e["loc"] for e in problem["errors"]] == [loc], body
    problem_of(api.patch(f"/v1/merchants/{MID}", {"status": "gone"}), 422)
    problem_of(api.patch(f"/v1/merchants/{MID}", {"status": "closed", "name": "x"}), 422)
    problem_of(api.get("/v1/merchants/short"), 422)
    bad_json = api.call(
        "POST",
        "/v1/merchants",
        content=b'{"merchant_id": ',
        headers={"content-type": "application/json"},
    )
    problem_of(bad_json, 400, "malformed-json")
    # 12.0 is the integer 12 in JSON
    assert (
        ok(api.post("/v1/merchants", merchant_body(MID2, daily_limit_fen=1200.0)), 201)[
            "daily_limit_fen"
        ]
        == 1200
    )
    assert ok(api.get(f"/v1/merchants/{MID}"))["status"] == "active"  # nothing half-done


def test_merchants_are_paged(api: Api) -> None:
    mids = [f"89831004899{n:04d}" for n in range(7)]
    for mid in reversed(mids):
        ok(api.post("/v1/merchants", merchant_body(mid)), 201)
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        page = ok(api.get("/v1/merchants", params={"limit": 3, "after": after}))
        pages += 1
        seen += [m["merchant_id"] for m in page["items"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == seen[-1]
        after = page["next_after"]
    assert seen == mids and pages == 3
    assert ok(api.get("/v1/merchants", params={"limit": 7}))["next_after"] is None
    assert len(ok(api.get("/v1/merchants"))["items"]) == 7
    for params in ({"limit": 0}, {"limit": PAGE_SIZE_MAX + 1}, {"after": "x;--"}, {"page": 2}):
        problem_of(api.get("/v1/merchants", params=params), 422, "validation")


# --- terminals and their TMK -----------------------------------------------------------------


def test_a_generated_tmk_is_shown_once_and_never_again(api: Api) -> None:
    seed(api)  # registered TID with a generated TMK
    first = api.random.handed_out[0]
    registration = next(r for r in api.responses if r.request.url.path == "/v1/terminals")
    shown = registration.json()
    assert shown["tmk"] == first.hex().upper()
    assert shown["tmk_kcv"] == key_check_value(first).hex().upper()
    assert shown["tmk_source"] == "generated"
    assert registration.headers["cache-control"] == "no-store"
    with api.store.admin(readonly=True) as uow:
        keys = uow.get_terminal_keys(TID)
    assert keys is not None and keys.tmk == first
    expected = {
        "terminal_id": TID,
        "merchant_id": MID,
        "deployed_on": "2026-03-01",
        "status": "active",
        "maintaining_partner_id": None,
        "batch_no": 1,
        "signed_on": False,
    }
    assert ok(api.get(f"/v1/terminals/{TID}")) == expected
    assert ok(api.get("/v1/terminals"))["items"] == [expected]
    assert ok(api.get("/v1/terminals", params={"merchant_id": MID2}))["items"] == []
    # Registering again does not show (or change) the key.
    again = problem_of(api.post("/v1/terminals", {"terminal_id": TID, "merchant_id": MID}), 409)
    assert "tmk" not in again
    with api.store.admin(readonly=True) as uow:
        keys = uow.get_terminal_keys(TID)
    assert keys is not None and keys.tmk == first


def test_a_supplied_tmk_is_stored_and_not_echoed(api: Api) -> None:
    seed(api)
    body = {
        "terminal_id": TID2,
        "merchant_id": MID2,
        "tmk": SUPPLIED_TMK.lower(),
        "deployed_on": "2026-02-01",
        "maintaining_partner_id": PARTNER,
        "status": "suspended",
    }
    registered = ok(api.post("/v1/terminals", body), 201)
    assert registered["tmk"] is None and registered["tmk_source"] == "supplied"
    tmk = bytes.fromhex(SUPPLIED_TMK)
    assert registered["tmk_kcv"] == key_check_value(tmk).hex().upper()
    with api.store.admin(readonly=True) as uow:
        keys = uow.get_terminal_keys(TID2)
    assert keys is not None and keys.tmk == tmk
    assert len(api.random.handed_out) == 1  # only seed's terminal drew a key
    assert ok(api.patch(f"/v1/terminals/{TID2}", {"status": "active"}))["status"] == "active"
    assert ok(api.patch(f"/v1/terminals/{TID2}", {"status": "returned"}))["status"] == "returned"


def test_terminal_errors_are_problems(api: Api) -> None:
    seed(api)
    problem_of(
        api.post("/v1/terminals", {"terminal_id": TID2, "merchant_id": "898310048999999"}), 404
    )
    for tmk in ("00" * 15, "zz" * 16, 12, "00" * 17):
        problem = problem_of(
            api.post("/v1/terminals", {"terminal_id": TID2, "merchant_id": MID, "tmk": tmk}), 422
        )
        assert [e["loc"] for e in problem["errors"]] == ["body.tmk"]
        assert "input" not in json.dumps(problem)
    problem_of(api.post("/v1/terminals", {"terminal_id": "T1", "merchant_id": MID}), 422)
    problem_of(api.get("/v1/terminals/T9999999"), 404, "not-found")
    problem_of(api.patch("/v1/terminals/T9999999", {"status": "active"}), 404)
    problem_of(api.patch(f"/v1/terminals/{TID}", {"status": "lost"}), 422)
    with api.store.admin(readonly=True) as uow:
        assert uow.get_terminal(TID2) is None


# --- cards and the hot list ------------------------------------------------------------------


def test_cards_and_the_hot_list(api: Api) -> None:
    seed(api)
    card = ok(api.get(f"/v1/cards/{ASN}"))
    assert card == {
        "asn": ASN,
        "issuer_id": ISSUER,
        "status": "active",
        "hot_listed": False,
        "daily_amount_limit_fen": 200_000,
        "daily_count_limit": 50,
    }
    hot = ok(api.call("PUT", f"/v1/cards/{ASN}/hot-list"))
    assert hot["status"] == "hot" and hot["hot_listed"] is True
    assert ok(api.call("PUT", f"/v1/cards/{ASN}/hot-list")) == hot  # idempotent
    assert ok(api.get(f"/v1/cards/{ASN}", role=Role.OPERATIONS))["hot_listed"] is True
    with api.store.unit() as uow:
        stored = uow.get_card(ASN)
    assert stored is not None and stored.status.value == "hot"
    cleared = ok(api.call("DELETE", f"/v1/cards/{ASN}/hot-list"))
    assert cleared == card
    assert ok(api.call("DELETE", f"/v1/cards/{ASN}/hot-list")) == card
    limits = {"asn": "1000000000000009", "issuer_id": ISSUER, "daily_amount_limit_fen": 0,
              "daily_count_limit": 3, "status": "hot"}  # fmt: skip
    assert ok(api.post("/v1/cards", limits), 201)["hot_listed"] is True


def test_card_errors_are_problems(api: Api) -> None:
    seed(api)
    problem_of(api.post("/v1/cards", {"asn": ASN, "issuer_id": ISSUER}), 409, "duplicate")
    problem_of(api.post("/v1/cards", {"asn": "1000000000000003", "issuer_id": "NOPE"}), 404)
    problem_of(api.get("/v1/cards/1000000000000003"), 404, "not-found")
    problem_of(api.call("PUT", "/v1/cards/1000000000000003/hot-list"), 404)
    problem_of(api.call("DELETE", "/v1/cards/1000000000000003/hot-list"), 404)
    problem_of(api.get("/v1/cards/10000000000000AB"), 422, "validation")
    for body in (
        {"asn": "100000000000000", "issuer_id": ISSUER},
        {"asn": 1000000000000003, "issuer_id": ISSUER},
        {"asn": "1000000000000003", "issuer_id": ISSUER, "daily_count_limit": -1},
        {"asn": "1000000000000003", "issuer_id": ISSUER, "balance_fen": 10},
    ):
        problem_of(api.post("/v1/cards", body), 422, "validation")


# --- issuers: keys in, never out ------------------------------------------------------------


def test_issuer_keys_are_accepted_and_never_returned(api: Api) -> None:
    created = ok(
        api.post(
            "/v1/issuers", {"issuer_id": ISSUER, "name": "Issuer One", "keys": ISSUER_KEY_FILE}
        ),
        201,
    )
    assert created == {"issuer_id": ISSUER, "name": "Issuer One", "key_versions": [1]}
    rotated = ok(api.post(f"/v1/issuers/{ISSUER}/keys", ISSUER_KEY_FILE_2), 201)
    assert rotated["key_versions"] == [1, 2]
    assert ok(api.get(f"/v1/issuers/{ISSUER}", role=Role.OPERATIONS)) == rotated
    with api.store.admin(readonly=True) as uow:
        keys = uow.get_issuer_keys(ISSUER, 2)
    assert keys is not None and keys.mtk == bytes.fromhex(str(ISSUER_KEY_FILE_2["mtk"]))
    assert keys.issuer_factor is None
    problem_of(api.post(f"/v1/issuers/{ISSUER}/keys", ISSUER_KEY_FILE_2), 409, "duplicate")
    problem_of(api.post("/v1/issuers/NOPE/keys", ISSUER_KEY_FILE_2), 404)
    problem_of(
        api.post("/v1/issuers", {"issuer_id": ISSUER, "name": "Again", "keys": ISSUER_KEY_FILE}),
        409,
    )
    problem_of(api.get("/v1/issuers/NOPE"), 404, "not-found")
    for broken in (
        ISSUER_KEY_FILE | {"mpk": str(ISSUER_KEY_FILE["mpk"])[:30]},
        ISSUER_KEY_FILE | {"issuer_factor": str(ISSUER_KEY_FILE["mpk"])},
        ISSUER_KEY_FILE | {"key_version": 256},
        ISSUER_KEY_FILE | {"extra_key": "00"},
        {k: v for k, v in ISSUER_KEY_FILE.items() if k != "mtk"},
    ):
        response = api.post("/v1/issuers", {"issuer_id": "ISS2", "name": "Two", "keys": broken})
        problem = problem_of(response, 422, "validation")
        assert all(e["loc"].startswith("body.keys.") for e in problem["errors"])
    problem_of(api.get("/v1/issuers/ISS2"), 404)


# --- commission rules ----------------------------------------------------------------------


def test_commission_rules_are_versioned_per_merchant(api: Api) -> None:
    seed(api)
    path = f"/v1/merchants/{MID2}/commission-rules"
    rules = [
        {"kind": "percent", "effective_from": "2026-01-01", "rate_bp": 1000, "min_fen": 1,
         "max_fen": 5000},
        {"kind": "fixed", "effective_from": "2026-02-01", "fee_fen": 30},
        {"kind": "discount", "effective_from": "2026-03-01", "effective_to": "2026-04-01",
         "user_bp": 8000, "settle_bp": 6000},
        {"kind": "zero", "effective_from": "2026-04-01"},
    ]  # fmt: skip
    stored = [ok(api.post(path, rule), 201) for rule in rules]
    assert [r["version"] for r in stored] == [1, 2, 3, 4]
    assert stored[2] == {
        "merchant_id": MID2,
        "version": 3,
        "kind": "discount",
        "effective_from": "2026-03-01",
        "effective_to": "2026-04-01",
        "rate_bp": 2500,  # (8000 - 6000) x 10000 / 8000
        "min_fen": None,
        "max_fen": None,
        "fee_fen": None,
        "user_bp": 8000,
        "settle_bp": 6000,
    }
    assert ok(api.get(path)) == stored
    assert ok(api.get(f"/v1/merchants/{MID}/commission-rules")) == []


def test_commission_rule_errors_are_problems(api: Api) -> None:
    seed(api)
    path = f"/v1/merchants/{MID}/commission-rules"
    not_whole = {
        "kind": "discount",
        "effective_from": "2026-03-01",
        "user_bp": 7000,
        "settle_bp": 5000,
    }
    problem = problem_of(api.post(path, not_whole), 422, "invalid-record")
    assert "not a whole number" in problem["detail"]
    domain_refusals = [
        {"kind": "percent", "effective_from": "2026-03-01", "rate_bp": 100, "min_fen": 50,
         "max_fen": 10},
        {"kind": "zero", "effective_from": "2026-03-01", "effective_to": "2026-03-01"},
        {"kind": "discount", "effective_from": "2026-03-01", "user_bp": 6000, "settle_bp": 8000},
    ]  # fmt: skip
    for rule in domain_refusals:
        problem_of(api.post(path, rule), 422, "invalid-record")
    schema_refusals = [
        {"kind": "percent", "effective_from": "2026-03-01"},
        {"kind": "percent", "effective_from": "2026-03-01", "rate_bp": 10_001},
        {"kind": "fixed", "effective_from": "2026-03-01", "fee_fen": 30, "rate_bp": 5},
        {"kind": "fixed", "effective_from": "2026-03-01", "fee_fen": 50_000},
        {"kind": "discount", "effective_from": "2026-03-01", "user_bp": 0, "settle_bp": 0},
        {"kind": "tiered", "effective_from": "2026-03-01"},
        {"kind": "zero"},
        {"kind": "zero", "effective_from": "01/03/2026"},
    ]
    for rule in schema_refusals:
        problem_of(api.post(path, rule), 422, "validation")
    tagged = {"kind": "k" + SUPPLIED_TMK, "effective_from": "2026-03-01"}
    problem = problem_of(api.post(path, tagged), 422, "validation")
    assert SUPPLIED_TMK not in json.dumps(problem) and "<input>" in json.dumps(problem)
    assert ok(api.get(path)) == []
    zero = {"kind": "zero", "effective_from": "2026-03-01"}
    problem_of(api.post("/v1/merchants/898310048999999/commission-rules", zero), 404)
    problem_of(api.get("/v1/merchants/898310048999999/commission-rules"), 404)


# --- partners and contracts ------------------------------------------------------------------


def test_partners_and_contracts(api: Api) -> None:
    seed(api)
    assert ok(api.get(f"/v1/partners/{PARTNER}")) == {
        "partner_id": PARTNER,
        "name": "Partner One",
        "status": "active",
    }
    contracts_path = f"/v1/partners/{PARTNER}/contracts"
    signing = ok(
        api.post(
            contracts_path,
            {
                "kind": "signing",
                "effective_from": "2026-01-01",
                "share_bp": 1000,
                "expansion_fee_fen": 50_000,
            },
        ),
        201,
    )
    assert signing == {
        "contract_id": signing["contract_id"],
        "partner_id": PARTNER,
        "kind": "signing",
        "effective_from": "2026-01-01",
        "effective_to": None,
        "share_bp": 1000,
        "expansion_fee_fen": 50_000,
        "retention_days": 90,
        "monthly_fee_fen": None,
    }
    maintenance = ok(
        api.post(contracts_path, {"kind": "maintenance", "effective_from": "2026-01-01"}), 201
    )
    assert maintenance["monthly_fee_fen"] == 5_500 and maintenance["share_bp"] is None
    assert ok(api.get(contracts_path)) == [signing, maintenance]
    assert maintenance["contract_id"] > signing["contract_id"]
    problem_of(api.post("/v1/partners", {"partner_id": PARTNER, "name": "Again"}), 409)
    problem_of(api.get("/v1/partners/NOPE"), 404)
    problem_of(api.get("/v1/partners/NOPE/contracts"), 404)
    maintenance_body = {"kind": "maintenance", "effective_from": "2026-01-01"}
    problem_of(api.post("/v1/partners/NOPE/contracts", maintenance_body), 404)
    for body in (
        {"kind": "signing", "effective_from": "2026-01-01", "share_bp": 1000,
         "expansion_fee_fen": 19_999},
        {"kind": "signing", "effective_from": "2026-01-01", "share_bp": 1000,
         "expansion_fee_fen": 50_000, "monthly_fee_fen": 10},
        {"kind": "maintenance", "effective_from": "2026-01-01", "share_bp": 10},
        {"kind": "referral", "effective_from": "2026-01-01"},
    ):  # fmt: skip
        problem_of(api.post(contracts_path, body), 422, "validation")
    backwards = maintenance_body | {"effective_to": "2025-12-31"}
    problem_of(api.post(contracts_path, backwards), 422, "invalid-record")
    problem_of(api.post("/v1/partners", {"partner_id": "bad id", "name": "x"}), 422)
    assert len(ok(api.get(contracts_path))) == 2


# --- transactions --------------------------------------------------------------------------


def authorise(
    uow: HostUnitOfWork,
    stan: int,
    *,
    kind: TxnKind = TxnKind.PURCHASE,
    code: ResponseCode = ResponseCode.APPROVED,
    day: date = DAY,
    asn: str = ASN,
    amount_fen: int = 1_000,
) -> Authorisation:
    approved = code is ResponseCode.APPROVED
    record = Authorisation(
        kind=kind,
        key=TxnKey(TID, 1, stan),
        merchant_id=MID,
        asn=asn,
        amount_fen=amount_fen,
        rrn=uow.next_rrn(),
        response_code=code,
        business_date=day,
        received_at=NOW,
        card_counter=stan,
        key_version=1,
        psam_terminal_id=bytes.fromhex("001122334455"),
        balance_before_fen=100_000,
        auth_code=f"{stan:06d}" if approved else None,
        card_random=None if kind is TxnKind.PURCHASE else bytes.fromhex("11223344"),
    )
    uow.add_authorisation(record)
    return record


def capture(api: Api) -> list[Authorisation]:
    """Ten authorisations over three business dates: purchases (one declined, one completed,
    one reversed) and loads, on two cards."""
    made: list[Authorisation] = []
    with api.store.unit() as uow:
        for stan in range(1, 11):
            kind = TxnKind.LOAD if stan % 4 == 0 else TxnKind.PURCHASE
            code = ResponseCode.OVER_DAILY_AMOUNT_LIMIT if stan == 3 else ResponseCode.APPROVED
            day = DAY + timedelta(days=(stan - 1) // 4)
            made.append(
                authorise(uow, stan, kind=kind, code=code, day=day, asn=ASN if stan % 2 else ASN2)
            )
        first = made[0]
        uow.add_completion(
            Completion(
                first.key,
                1_000,
                bytes.fromhex("B3A0D49C"),
                TacVerdict.OK,
                1,
                7,
                datetime(2026, 3, 1, 10, 0, 5),
                DAY,
                NOW,
            )
        )
        uow.add_reversal(Reversal(made[1].key, ReversalReason.NO_ANSWER, DAY, NOW))
    return made


def test_transactions_are_searched_and_paged(api: Api) -> None:
    seed(api)
    made = capture(api)
    everything = ok(api.get("/v1/transactions", role=Role.CLEARING))
    assert [t["stan"] for t in everything["items"]] == list(range(1, 11))
    assert everything["next_after"] is None
    first = everything["items"][0]
    assert first == {
        "txn_id": first["txn_id"],
        "kind": "purchase",
        "terminal_id": TID,
        "batch_no": 1,
        "stan": 1,
        "merchant_id": MID,
        "asn": ASN,  # operators see card numbers; the logs do not
        "amount_fen": 1_000,
        "rrn": made[0].rrn,
        "response_code": "00",
        "auth_code": "000001",
        "business_date": "2026-03-01",
        "received_at": "2026-03-01T02:00:00Z",
        "card_counter": 1,
        "key_version": 1,
        "balance_before_fen": 100_000,
        "original_rrn": None,
        "completion_amount_fen": 1_000,
        "tac_verdict": "ok",
        "reversal_reason": None,
    }
    assert everything["items"][1]["reversal_reason"] == "98"

    def stans(**params: Any) -> list[int]:
        return [t["stan"] for t in ok(api.get("/v1/transactions", params=params))["items"]]

    assert stans(asn=ASN) == [1, 3, 5, 7, 9]
    assert stans(kind="load") == [4, 8]
    assert stans(response_code="61") == [3]
    assert stans(business_date_from="2026-03-02") == [5, 6, 7, 8, 9, 10]
    assert stans(business_date_from="2026-03-02", business_date_to="2026-03-02") == [5, 6, 7, 8]
    assert stans(business_date_from="2026-03-03", business_date_to="2026-03-01") == []
    assert stans(terminal_id=TID, merchant_id=MID, asn=ASN2, kind="purchase") == [2, 6, 10]
    assert stans(terminal_id=TID2) == [] and stans(merchant_id=MID2) == []
    assert stans(rrn=made[4].rrn) == [5]

    pages: list[list[int]] = []
    after = 0
    while True:
        page = ok(api.get("/v1/transactions", params={"limit": 4, "after": after}))
        pages.append([t["stan"] for t in page["items"]])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    for params in (
        {"limit": PAGE_SIZE_MAX + 1},
        {"limit": 0},
        {"after": -1},
        {"asn": "123"},
        {"kind": "topup"},
        {"response_code": "XX"},
        {"business_date_from": "yesterday"},
        {"terminal": TID},
    ):
        problem_of(api.get("/v1/transactions", params=params), 422, "validation")


# --- counters, limits, logs ------------------------------------------------------------------


def test_live_counters(api: Api) -> None:
    empty = ok(api.get("/v1/counters", role=Role.CLEARING))
    assert empty["messages_total"] == 0 and empty["latency"] is None
    assert empty["as_of"] == "2026-03-01T02:00:00Z"
    api.counters.record("0200", "00", 4.0)
    api.counters.record("0200", "51", 6.0)
    api.counters.record("0800", "00", 1.0)
    with api.counters.in_flight():
        counters = ok(api.get("/v1/counters", role=Role.OPERATIONS))
    assert counters["messages"] == [
        {"mti": "0200", "response_code": "00", "count": 1},
        {"mti": "0200", "response_code": "51", "count": 1},
        {"mti": "0800", "response_code": "00", "count": 1},
    ]
    assert (counters["approvals"], counters["declines"], counters["in_flight"]) == (1, 1, 1)
    assert counters["latency"]["count"] == 3 and counters["latency"]["max_ms"] == 6.0


def test_bodies_are_limited(api: Api) -> None:
    big = merchant_body(name="x" * 70_000)
    problem_of(api.post("/v1/merchants", big), 413, "body-too-large")
    problem_of(api.post("/v1/merchants", big, role=None), 401)  # no token: refused first
    assert ok(api.get("/v1/merchants"))["items"] == []


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    problem_of(api.get("/v1/nothing-here"), 404)
    not_allowed = api.call("DELETE", "/v1/merchants")
    problem_of(not_allowed, 405)
    assert not_allowed.headers["allow"] == "GET, POST"


def test_the_log_masks_card_numbers(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    seed(api)
    ok(api.get(f"/v1/cards/{ASN}"))
    ok(api.get("/v1/transactions", params={"asn": ASN2}))
    lines = [r.getMessage() for r in caplog.records if r.name == "acquiring.adapters.api"]
    assert f"GET /v1/cards/************{ASN[-4:]} -> 200" in "\n".join(lines)
    assert any(f"asn=************{ASN2[-4:]}" in line for line in lines)
    assert mask_card_numbers("rrn 000000000012 asn 6222021234567890123") == (
        "rrn 000000000012 asn ***************0123"
    )
