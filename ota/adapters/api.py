"""The OTA server's API (ota.md §3): FastAPI over ``ota.service.OtaService``.

OpenAPI at ``/openapi.json`` and Swagger UI at ``/docs`` (public); everything under ``/v1``
needs ``Authorization: Bearer <token>``: 401 without a valid token, 403 when the token's role
may not (``api_auth.permits``: operators read only).

- SIMs: ``POST /v1/sims`` registers a SIM with its SCP80 keys (accepted, never returned: the
  SIM view has the key version and algorithm only); ``GET /v1/sims``, ``GET /v1/sims/{iccid}``.
- Jobs: ``POST /v1/jobs`` creates a job and (``run``, default true) runs it; ``POST
  /v1/jobs/{id}/run``; ``GET /v1/jobs/{id}``.
- Campaigns: ``POST /v1/campaigns`` (``run`` as jobs); ``POST /v1/campaigns/{id}/run``;
  ``GET /v1/campaigns/{id}`` (progress), ``GET /v1/campaigns/{id}/report`` (one line per SIM).
- Errors are ``application/problem+json`` (RFC 7807), mapped in one place (``_problem``):
  not found 404, duplicate 409, invalid input 422, other OTA errors 400, anything else 500.
  Problem bodies never echo the input, so no key comes back in one.
- Logs: one access line per request (method, path, status); never a body or a header.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from ota.adapters.api_auth import TokenAuth, TokenEntry, bearer_token, permits
from ota.domain.errors import (
    DuplicateError,
    InvalidRecordError,
    NotFoundError,
    OtaError,
    ScriptError,
)
from ota.domain.job import Job, JobParams
from ota.domain.script import JobKind
from ota.domain.sim import Scp80KeySet, SimRecord
from ota.service import OtaService

log = logging.getLogger(__name__)
PROBLEM: Final = "application/problem+json"
PAGE_SIZE_MAX: Final = 500
CEILING_MAX_FEN: Final = 100_000_000
_HEX_KEY = r"^([0-9A-Fa-f]{32}|[0-9A-Fa-f]{48}|[0-9A-Fa-f]{64})$"


class SimIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    iccid: str = Field(pattern=r"^[0-9]{18,20}$")
    imsi: str = Field(pattern=r"^[0-9]{6,15}$")
    msisdn: str = Field(default="", pattern=r"^[0-9]{0,15}$")
    key_version: int = Field(ge=1, le=15)
    algorithm: Literal["aes", "3des"]
    kic: str = Field(pattern=_HEX_KEY, description="hex; write-only, never returned")
    kid: str = Field(pattern=_HEX_KEY, description="hex; write-only, never returned")
    dek: str = Field(pattern=_HEX_KEY, description="hex; write-only, never returned")
    counter_last: int = Field(default=0, ge=0, le=(1 << 40) - 1)


class SimOut(BaseModel):
    iccid: str
    imsi: str
    msisdn: str
    key_version: int
    algorithm: str
    counter_last: int
    asn: str | None


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iccid: str = Field(pattern=r"^[0-9]{18,20}$")
    kind: JobKind
    ceiling_fen: int | None = Field(default=None, ge=1, le=CEILING_MAX_FEN)
    run: bool = True


class JobOut(BaseModel):
    job_id: int
    iccid: str
    kind: JobKind
    state: str
    attempts: int
    attempts_max: int
    counters: list[int]
    por_status: int | None
    last_sw: str | None
    detail: str
    result: str
    campaign_id: int | None


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: JobKind
    iccids: list[Annotated[str, Field(pattern=r"^[0-9]{18,20}$")]] = Field(
        min_length=1, max_length=10_000
    )
    ceiling_fen: int | None = Field(default=None, ge=1, le=CEILING_MAX_FEN)
    run: bool = True


class ProgressOut(BaseModel):
    campaign_id: int
    name: str
    kind: JobKind
    total: int
    finished: int
    by_state: dict[str, int]


class OutcomeOut(BaseModel):
    iccid: str
    job_id: int
    state: str
    attempts: int
    detail: str


def _sim_out(sim: SimRecord) -> SimOut:
    return SimOut(
        iccid=sim.iccid,
        imsi=sim.imsi,
        msisdn=sim.msisdn,
        key_version=sim.keys.version,
        algorithm=sim.keys.algorithm,
        counter_last=sim.counter_last,
        asn=sim.asn.hex() if sim.asn is not None else None,
    )


def _job_out(job: Job) -> JobOut:
    return JobOut(
        job_id=job.job_id,
        iccid=job.iccid,
        kind=job.kind,
        state=job.state.value,
        attempts=job.attempts,
        attempts_max=job.attempts_max,
        counters=list(job.counters),
        por_status=job.por_status,
        last_sw=f"{job.last_sw:04X}" if job.last_sw is not None else None,
        detail=job.detail,
        result=job.result.hex().upper(),
        campaign_id=job.campaign_id,
    )


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def create_app(service: OtaService, auth: TokenAuth) -> FastAPI:
    """The application; one service call at a time (the simulated SIMs are not thread-safe)."""
    lock = threading.Lock()
    app = FastAPI(
        title="nfcpay OTA server",
        version="1",
        description="SIM registry, OTA jobs and campaigns (GlobalPlatform over SMS-PP).",
    )

    def principal(request: Request) -> TokenEntry:
        entry = auth.authenticate(bearer_token(request.headers.get("authorization")))
        if entry is None:
            raise StarletteHTTPException(401, "a valid bearer token is needed")
        if not permits(entry.role, request.method):
            raise StarletteHTTPException(403, f"role {entry.role.value} may not do this")
        return entry

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(principal)])

    @v1.post("/sims", status_code=201, response_model=SimOut)
    def add_sim(body: SimIn) -> SimOut:
        keys = Scp80KeySet(
            body.key_version,
            body.algorithm,
            bytes.fromhex(body.kic),
            bytes.fromhex(body.kid),
            bytes.fromhex(body.dek),
        )
        sim = SimRecord(body.iccid, body.imsi, body.msisdn, keys, body.counter_last)
        with lock:
            service.register(sim)
            return _sim_out(service.store.get_sim(sim.iccid))

    @v1.get("/sims", response_model=list[SimOut])
    def list_sims(
        limit: int = Query(100, ge=1, le=PAGE_SIZE_MAX), offset: int = Query(0, ge=0)
    ) -> list[SimOut]:
        with lock:
            return [_sim_out(s) for s in service.store.list_sims(limit, offset)]

    @v1.get("/sims/{iccid}", response_model=SimOut)
    def get_sim(iccid: str) -> SimOut:
        with lock:
            return _sim_out(service.store.get_sim(iccid))

    @v1.post("/jobs", status_code=201, response_model=JobOut)
    def add_job(body: JobIn) -> JobOut:
        with lock:
            job = service.create_job(body.iccid, body.kind, JobParams(body.ceiling_fen))
            if body.run:
                job = service.run(job.job_id)
            return _job_out(job)

    @v1.post("/jobs/{job_id}/run", response_model=JobOut)
    def run_job(job_id: int) -> JobOut:
        """Run a job created with ``"run": false`` (or retry one left RETRYING)."""
        with lock:
            return _job_out(service.run(job_id))

    @v1.get("/jobs/{job_id}", response_model=JobOut)
    def get_job(job_id: int) -> JobOut:
        with lock:
            return _job_out(service.store.get_job(job_id))

    def _progress(campaign_id: int) -> ProgressOut:
        found = service.store.get_campaign(campaign_id)
        progress = service.progress(campaign_id)
        return ProgressOut(
            campaign_id=campaign_id,
            name=found.name,
            kind=found.kind,
            total=progress.total,
            finished=progress.finished,
            by_state=dict(progress.by_state),
        )

    @v1.post("/campaigns", status_code=201, response_model=ProgressOut)
    def add_campaign(body: CampaignIn) -> ProgressOut:
        with lock:
            found = service.create_campaign(
                body.name, body.kind, body.iccids, JobParams(body.ceiling_fen)
            )
            if body.run:
                service.run_campaign(found.campaign_id)
            return _progress(found.campaign_id)

    @v1.post("/campaigns/{campaign_id}/run", response_model=ProgressOut)
    def run_campaign(campaign_id: int) -> ProgressOut:
        """Run every unfinished job of the campaign, one SIM after the other."""
        with lock:
            service.run_campaign(campaign_id)
            return _progress(campaign_id)

    @v1.get("/campaigns/{campaign_id}", response_model=ProgressOut)
    def get_campaign(campaign_id: int) -> ProgressOut:
        with lock:
            return _progress(campaign_id)

    @v1.get("/campaigns/{campaign_id}/report", response_model=list[OutcomeOut])
    def get_report(campaign_id: int) -> list[OutcomeOut]:
        with lock:
            return [
                OutcomeOut(
                    iccid=r.iccid,
                    job_id=r.job_id,
                    state=r.state.value,
                    attempts=r.attempts,
                    detail=r.detail,
                )
                for r in service.report(campaign_id)
            ]

    app.include_router(v1)

    @app.exception_handler(OtaError)
    def _ota_error(_request: Request, exc: OtaError) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            return _problem(404, "Not found", str(exc))
        if isinstance(exc, DuplicateError):
            return _problem(409, "Conflict", str(exc))
        if isinstance(exc, InvalidRecordError | ScriptError):
            return _problem(422, "Invalid", str(exc))
        return _problem(400, "Refused", str(exc))

    @app.exception_handler(RequestValidationError)
    def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()})
        return _problem(422, "Invalid request", f"invalid fields: {', '.join(fields)}")

    @app.exception_handler(StarletteHTTPException)
    def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _problem(exc.status_code, "Error", str(exc.detail))
        if exc.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(Exception)
    def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return _problem(500, "Internal error", "internal error")

    @app.middleware("http")
    async def _access_log(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        log.info("%s %s %d", request.method, request.url.path, response.status_code)
        return response

    return app
