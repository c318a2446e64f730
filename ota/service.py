"""The OTA server's use cases: register SIMs, create and run jobs, run campaigns.

Running a job: plan its packets from the job kind (and, on a retry, from what the card's GET
STATUS shows is done already), then for each packet reserve a counter in the store (persisted
first), build the secured packet, deliver it and judge its PoR. An unknown outcome (no PoR, a
link that failed) retries with fresh counters while attempts remain; a refusal or a failing
command fails the job with the PoR status or the status word."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from ota.domain import campaign as campaigns
from ota.domain import script
from ota.domain.campaign import Campaign
from ota.domain.errors import DeliveryError, OtaError, ScriptError
from ota.domain.job import ATTEMPTS_MAX_DEFAULT, NO_PARAMS, Job, JobParams, JobState, judge
from ota.domain.script import CardContent, JobKind, Personalisation, Step
from ota.domain.sim import SimRecord
from ota.ports import Delivery, OtaStore
from paycore.issuer_keys import IssuerKeys
from paycore.ota.security import SPI_DEFAULT, Spi

log = logging.getLogger(__name__)
PROBE_KINDS: Final = frozenset({JobKind.INSTALL_WALLET, JobKind.PERSONALISE, JobKind.DELETE})


@dataclass(frozen=True, slots=True)
class OtaConfig:
    spi: Spi = SPI_DEFAULT
    script_bytes_max: int = script.SCRIPT_BYTES_MAX
    store_data_block_max: int | None = None
    attempts_max: int = ATTEMPTS_MAX_DEFAULT


class _RefusedError(OtaError):
    def __init__(self, detail: str, por_status: int | None, sw: int | None, retry: bool) -> None:
        super().__init__(detail)
        self.por_status, self.sw, self.retry = por_status, sw, retry


class OtaService:
    def __init__(
        self,
        store: OtaStore,
        delivery: Delivery,
        issuer_keys: IssuerKeys | None,
        today: Callable[[], date],
        config: OtaConfig = OtaConfig(),
    ) -> None:
        self.store = store
        self.delivery = delivery
        self.issuer_keys = issuer_keys
        self.today = today
        self.config = config

    # --- SIMs and jobs --------------------------------------------------------------------

    def register(self, sim: SimRecord) -> None:
        self.store.add_sim(sim)
        log.info("SIM %s registered (SCP80 set %02X)", sim.iccid, sim.keys.version)

    def create_job(
        self, iccid: str, kind: JobKind, params: JobParams = NO_PARAMS,
        campaign_id: int | None = None,
    ) -> Job:  # fmt: skip
        self.store.get_sim(iccid)  # NotFoundError for an unknown SIM
        if kind in (JobKind.UPDATE_LIMIT,) and params.ceiling_fen is None:
            raise ScriptError("update-limit needs a ceiling")
        return self.store.add_job(iccid, kind, params, self.config.attempts_max, campaign_id)

    def push(self, iccid: str, kind: JobKind, params: JobParams = NO_PARAMS) -> Job:
        """Create a job and run it to the end."""
        return self.run(self.create_job(iccid, kind, params).job_id)

    def run(self, job_id: int) -> Job:
        job = self.store.get_job(job_id)
        if job.state is JobState.SENT:  # the server stopped mid-attempt: outcome unknown
            job = job.retry_or_fail("interrupted while sent")
            self.store.save_job(job)
        while not job.finished:
            job = self._attempt(job)
        log.info("job %d (%s, %s): %s %s", job.job_id, job.kind.value, job.iccid,
                 job.state.value, job.detail)  # fmt: skip
        return job

    def _attempt(self, job: Job) -> Job:
        retry = job.attempts > 0
        job = job.sent()
        self.store.save_job(job)
        try:
            content = self._probe(job) if retry and job.kind in PROBE_KINDS else None
            steps = self._steps(job, content)
            result = b""
            for data in script.split(steps, self.config.script_bytes_max) if steps else []:
                result = self._send(job.job_id, data)
        except OtaError as exc:
            job = self._failed(self.store.get_job(job.job_id), exc)
        else:
            job = self.store.get_job(job.job_id).done(result)
        self.store.save_job(job)
        return job

    @staticmethod
    def _failed(job: Job, exc: Exception) -> Job:
        if isinstance(exc, DeliveryError):
            return job.retry_or_fail(str(exc))
        if isinstance(exc, _RefusedError):
            if exc.retry:
                return job.retry_or_fail(str(exc), por_status=exc.por_status)
            return job.failed(str(exc), por_status=exc.por_status, sw=exc.sw)
        return job.failed(str(exc))

    def _send(self, job_id: int, data: bytes, *, empty_ok: bool = False) -> bytes:
        """One packet: reserve its counter (persisted first), send, judge the PoR."""
        job = self.store.get_job(job_id)
        sim = self.store.get_sim(job.iccid)
        counter = self.store.reserve_counter(job.iccid)  # persisted before the packet leaves
        job = job.used(counter)
        self.store.save_job(job)
        packet = script.secure(sim.keys, counter, data, self.config.spi)
        por = self.delivery.send(
            job.iccid, packet, sim.keys.por_security(self.config.spi), counter & 0xFF
        )
        if por.counter != counter and por.secured:
            raise DeliveryError(f"PoR for counter {por.counter}, expected {counter}")
        outcome = judge(por, script.command_count(data), empty_ok=empty_ok)
        if not outcome.ok:
            raise _RefusedError(outcome.detail, outcome.por_status, outcome.sw, outcome.retry)
        return outcome.data

    def _probe(self, job: Job) -> CardContent:
        answers = []
        for step in script.probe_steps():
            answers.append(self._send(job.job_id, script.split([step])[0], empty_ok=True))
        return script.content_of(answers[0], answers[1])

    def _steps(self, job: Job, content: CardContent | None) -> list[Step]:
        kind = job.kind
        if kind is JobKind.INSTALL_WALLET:
            return script.install_steps(content)
        if kind is JobKind.PERSONALISE:
            if self.issuer_keys is None:
                raise ScriptError("no issuer master keys configured: cannot personalise")
            sim = self.store.get_sim(job.iccid)
            asn = self.store.assign_asn(job.iccid)
            perso = Personalisation(
                asn, sim.iccid, sim.msisdn, self.today(), ceiling_fen=job.params.ceiling_fen
            )
            return script.perso_steps(
                self.issuer_keys, sim.keys, perso,
                block_max=self.config.store_data_block_max, content=content,
            )  # fmt: skip
        if kind is JobKind.UPDATE_LIMIT:
            assert job.params.ceiling_fen is not None
            return script.limit_steps(job.params.ceiling_fen)
        return script.simple_steps(kind, content)

    # --- campaigns ------------------------------------------------------------------------

    def create_campaign(
        self, name: str, kind: JobKind, iccids: Sequence[str], params: JobParams = NO_PARAMS
    ) -> Campaign:
        for iccid in iccids:
            self.store.get_sim(iccid)
        if kind is JobKind.UPDATE_LIMIT and params.ceiling_fen is None:
            raise ScriptError("update-limit needs a ceiling")
        return self.store.add_campaign(name, kind, params, iccids, self.config.attempts_max)

    def run_campaign(self, campaign_id: int) -> campaigns.Progress:
        found = self.store.get_campaign(campaign_id)
        for job in self.store.jobs_of_campaign(campaign_id):
            if not job.finished:
                self.run(job.job_id)
        return self.progress(found.campaign_id)

    def progress(self, campaign_id: int) -> campaigns.Progress:
        found = self.store.get_campaign(campaign_id)
        return campaigns.progress(found, self.store.jobs_of_campaign(campaign_id))

    def report(self, campaign_id: int) -> tuple[campaigns.SimOutcome, ...]:
        self.store.get_campaign(campaign_id)
        return campaigns.report(self.store.jobs_of_campaign(campaign_id))
