"""Campaigns: one job kind over many SIMs, with progress and a per-SIM report (ota.md §3)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ota.domain.errors import InvalidRecordError
from ota.domain.job import Job, JobParams, JobState
from ota.domain.script import JobKind

CAMPAIGN_SIMS_MAX: Final = 100_000
NAME_CHARS_MAX: Final = 64


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: int
    name: str
    kind: JobKind
    params: JobParams
    iccids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.name) <= NAME_CHARS_MAX or not self.name.isprintable():
            raise InvalidRecordError(
                f"campaign name must be 1..{NAME_CHARS_MAX} printable characters"
            )
        if not 1 <= len(self.iccids) <= CAMPAIGN_SIMS_MAX:
            raise InvalidRecordError(f"a campaign covers 1..{CAMPAIGN_SIMS_MAX} SIMs")
        if len(set(self.iccids)) != len(self.iccids):
            raise InvalidRecordError("a campaign lists each SIM once")


@dataclass(frozen=True, slots=True)
class SimOutcome:
    iccid: str
    job_id: int
    state: JobState
    attempts: int
    detail: str


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    by_state: tuple[tuple[str, int], ...]

    @property
    def finished(self) -> int:
        counts = dict(self.by_state)
        return counts.get(JobState.DONE.value, 0) + counts.get(JobState.FAILED.value, 0)


def progress(campaign: Campaign, jobs: Sequence[Job]) -> Progress:
    counts = Counter(j.state.value for j in jobs)
    return Progress(len(campaign.iccids), tuple(sorted(counts.items())))


def report(jobs: Sequence[Job]) -> tuple[SimOutcome, ...]:
    """One line per SIM, in ICCID order."""
    return tuple(
        SimOutcome(j.iccid, j.job_id, j.state, j.attempts, j.detail)
        for j in sorted(jobs, key=lambda j: j.iccid)
    )
