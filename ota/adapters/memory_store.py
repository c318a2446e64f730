"""``ota.ports.OtaStore`` in memory: unit tests and the in-process bench (no encryption at rest:
nothing leaves the process)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ota.domain.asn import ASN_FIRST, asn_of
from ota.domain.campaign import Campaign
from ota.domain.errors import DuplicateError, InvalidRecordError, NotFoundError
from ota.domain.job import Job, JobParams
from ota.domain.script import JobKind
from ota.domain.sim import SimRecord, next_counter


class MemoryStore:
    def __init__(self) -> None:
        self._sims: dict[str, SimRecord] = {}
        self._jobs: dict[int, Job] = {}
        self._campaigns: dict[int, Campaign] = {}
        self._asn_next = ASN_FIRST

    def add_sim(self, sim: SimRecord) -> None:
        if sim.iccid in self._sims:
            raise DuplicateError(f"SIM {sim.iccid} is registered already")
        self._sims[sim.iccid] = sim

    def get_sim(self, iccid: str) -> SimRecord:
        sim = self._sims.get(iccid)
        if sim is None:
            raise NotFoundError(f"no SIM {iccid}")
        return sim

    def list_sims(self, limit: int, offset: int = 0) -> Sequence[SimRecord]:
        return sorted(self._sims.values(), key=lambda s: s.iccid)[offset : offset + limit]

    def reserve_counter(self, iccid: str) -> int:
        sim = self.get_sim(iccid)
        counter = next_counter(sim.counter_last)
        self._sims[iccid] = replace(sim, counter_last=counter)
        return counter

    def assign_asn(self, iccid: str) -> bytes:
        sim = self.get_sim(iccid)
        if sim.asn is None:
            sim = replace(sim, asn=asn_of(self._asn_next))
            self._asn_next += 1
            self._sims[iccid] = sim
        assert sim.asn is not None
        return sim.asn

    def add_job(
        self, iccid: str, kind: JobKind, params: JobParams, attempts_max: int,
        campaign_id: int | None = None,
    ) -> Job:  # fmt: skip
        self.get_sim(iccid)
        job = Job(len(self._jobs) + 1, iccid, kind, params, attempts_max=attempts_max,
                  campaign_id=campaign_id)  # fmt: skip
        self._jobs[job.job_id] = job
        return job

    def save_job(self, job: Job) -> None:
        if job.job_id not in self._jobs:
            raise NotFoundError(f"no job {job.job_id}")
        self._jobs[job.job_id] = job

    def get_job(self, job_id: int) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def add_campaign(
        self, name: str, kind: JobKind, params: JobParams, iccids: Sequence[str],
        attempts_max: int,
    ) -> Campaign:  # fmt: skip
        for iccid in iccids:
            self.get_sim(iccid)
        found = Campaign(len(self._campaigns) + 1, name, kind, params, tuple(iccids))
        if not iccids:
            raise InvalidRecordError("a campaign covers at least one SIM")
        self._campaigns[found.campaign_id] = found
        for iccid in found.iccids:
            self.add_job(iccid, kind, params, attempts_max, found.campaign_id)
        return found

    def get_campaign(self, campaign_id: int) -> Campaign:
        found = self._campaigns.get(campaign_id)
        if found is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        return found

    def jobs_of_campaign(self, campaign_id: int) -> Sequence[Job]:
        return [j for j in self._jobs.values() if j.campaign_id == campaign_id]
