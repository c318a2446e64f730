"""The OTA API through FastAPI's test client: tokens and roles, SIMs registered with keys that
never come back (responses and log lines grepped), jobs and campaigns run in-process, OpenAPI
served, errors as problem documents."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from ota.adapters.api import create_app
from ota.adapters.api_auth import Role, TokenAuth, mint_token
from tests.integration.ota.otakit import SIM_KEYS, Fleet, blank_sim, fleet, iccid_of

ADMIN, ADMIN_ENTRY = mint_token("admin-1", Role.ADMIN, lambda n: bytes(range(n)))
OPERATOR, OPERATOR_ENTRY = mint_token("ops-1", Role.OPERATOR, bytes)
KEY_TEXTS = [k.hex() for k in (SIM_KEYS.kic, SIM_KEYS.kid, SIM_KEYS.dek)]


def client_for(f: Fleet) -> TestClient:
    app = create_app(f.service, TokenAuth([ADMIN_ENTRY, OPERATOR_ENTRY]))
    return TestClient(app, raise_server_exceptions=False)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sim_body(n: int) -> dict[str, object]:
    return {
        "iccid": iccid_of(n),
        "imsi": f"46000{n:010d}",
        "msisdn": "13800000001",
        "key_version": 1,
        "algorithm": "aes",
        "kic": KEY_TEXTS[0],
        "kid": KEY_TEXTS[1],
        "dek": KEY_TEXTS[2],
    }


def no_key_in(text: str) -> bool:
    return all(k not in text.lower() for k in KEY_TEXTS)


def test_the_api_refuses_without_a_valid_token_and_operators_only_read() -> None:
    client = client_for(fleet())
    assert client.get("/v1/sims").status_code == 401
    assert client.get("/v1/sims", headers=auth("nfcpay_ota_" + "x" * 40)).status_code == 401
    assert client.get("/v1/sims", headers={"Authorization": "Basic abc"}).status_code == 401
    refused = client.post("/v1/sims", json=sim_body(1), headers=auth(OPERATOR))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/sims", headers=auth(OPERATOR)).json() == []
    job = {"iccid": iccid_of(1), "kind": "lock"}
    assert client.post("/v1/jobs", json=job, headers=auth(OPERATOR)).status_code == 403
    assert client.post("/v1/jobs", json=job, headers=auth(ADMIN)).status_code == 404
    limit = {"iccid": iccid_of(1), "kind": "update-limit"}
    client.post("/v1/sims", json=sim_body(1), headers=auth(ADMIN))
    refused = client.post("/v1/jobs", json=limit, headers=auth(ADMIN))
    assert (refused.status_code, refused.json()["detail"]) == (422, "update-limit needs a ceiling")
    assert client.get("/openapi.json").json()["info"]["title"] == "nfcpay OTA server"


def test_sims_jobs_and_campaigns_never_show_a_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    f = fleet()
    client = client_for(f)
    bodies = []
    for n in (1, 2, 3):
        f.cards[iccid_of(n)] = card = blank_sim(n)
        f.links[iccid_of(n)] = card
        created = client.post("/v1/sims", json=sim_body(n), headers=auth(ADMIN))
        assert created.status_code == 201, created.text
        bodies.append(created.text)
    assert set(created.json()) == {
        "iccid", "imsi", "msisdn", "key_version", "algorithm", "counter_last", "asn"
    }  # fmt: skip
    again = client.post("/v1/sims", json=sim_body(1), headers=auth(ADMIN))
    assert again.status_code == 409
    bodies.append(again.text)
    job = client.post(
        "/v1/jobs", json={"iccid": iccid_of(1), "kind": "install-wallet"}, headers=auth(ADMIN)
    )
    assert job.status_code == 201 and job.json()["state"] == "done", job.text
    perso = client.post(
        "/v1/jobs",
        json={"iccid": iccid_of(1), "kind": "personalise", "ceiling_fen": 50_000},
        headers=auth(ADMIN),
    )
    assert perso.json()["state"] == "done", perso.text
    shown = client.get(f"/v1/jobs/{perso.json()['job_id']}", headers=auth(OPERATOR))
    assert shown.json()["counters"] == [2]
    campaign = client.post(
        "/v1/campaigns",
        json={"name": "wave", "kind": "install-wallet", "iccids": [iccid_of(2), iccid_of(3)]},
        headers=auth(ADMIN),
    )
    assert campaign.status_code == 201, campaign.text
    assert campaign.json()["by_state"] == {"done": 2} and campaign.json()["finished"] == 2
    cid = campaign.json()["campaign_id"]
    later = client.post(
        "/v1/campaigns",
        json={"name": "w2", "kind": "lock", "iccids": [iccid_of(1)], "run": False},
        headers=auth(ADMIN),
    )
    assert later.json()["by_state"] == {"queued": 1}
    ran = client.post(f"/v1/campaigns/{later.json()['campaign_id']}/run", headers=auth(ADMIN))
    assert ran.json()["by_state"] == {"done": 1}, ran.text
    report = client.get(f"/v1/campaigns/{cid}/report", headers=auth(OPERATOR))
    assert [r["iccid"] for r in report.json()] == [iccid_of(2), iccid_of(3)]
    sims = client.get("/v1/sims", headers=auth(OPERATOR))
    one = client.get(f"/v1/sims/{iccid_of(1)}", headers=auth(OPERATOR))
    assert one.json()["asn"] == "8800000000000001" and one.json()["counter_last"] == 3
    missing = client.get(f"/v1/sims/{iccid_of(9)}", headers=auth(OPERATOR))
    assert missing.status_code == 404
    bad = dict(sim_body(4), kic="00" * 15)
    invalid = client.post("/v1/sims", json=bad, headers=auth(ADMIN))
    assert invalid.status_code == 422
    bodies += [job.text, perso.text, shown.text, campaign.text, report.text, sims.text, one.text,
               missing.text, invalid.text]  # fmt: skip
    assert all(no_key_in(b) for b in bodies)
    assert caplog.records and all(no_key_in(r.getMessage()) for r in caplog.records)
    assert no_key_in(caplog.text)
