"""OTA jobs and their state machine (ota.md §3):

    QUEUED -> SENT -> DONE
                   -> FAILED   (PoR status, or the card's status word)
                   -> RETRYING -> SENT ...   (bounded: ``attempts_max``)

A retry never reuses a counter: every packet gets a freshly reserved one (``counters`` keeps
them all, strictly increasing). Pure values; the service moves them and the store keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from ota.domain.errors import InvalidRecordError, JobStateError
from ota.domain.script import JobKind
from paycore.errors import PaycoreError
from paycore.ota.packet import Por
from paycore.ota.remote_apdu import CompactResponse, decode_response
from paycore.ota.security import PorStatus

ATTEMPTS_MAX_DEFAULT: Final = 3
ATTEMPTS_MAX_LIMIT: Final = 10
COUNTERS_MAX: Final = 256  # per job: packets x attempts
DETAIL_CHARS_MAX: Final = 200
SW_NO_ENTRY: Final = 0x6A88


class JobState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    RETRYING = "retrying"


TERMINAL: Final = frozenset({JobState.DONE, JobState.FAILED})
_NEXT: Final = {
    JobState.QUEUED: frozenset({JobState.SENT}),
    JobState.SENT: frozenset({JobState.DONE, JobState.FAILED, JobState.RETRYING}),
    JobState.RETRYING: frozenset({JobState.SENT, JobState.FAILED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class JobParams:
    """What a job needs besides the SIM: a ceiling (personalise, update-limit)."""

    ceiling_fen: int | None = None


NO_PARAMS: Final = JobParams()


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    iccid: str
    kind: JobKind
    params: JobParams = NO_PARAMS
    state: JobState = JobState.QUEUED
    attempts: int = 0
    attempts_max: int = ATTEMPTS_MAX_DEFAULT
    counters: tuple[int, ...] = ()
    por_status: int | None = None
    last_sw: int | None = None
    detail: str = ""
    result: bytes = field(default=b"", repr=False)
    campaign_id: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.attempts_max <= ATTEMPTS_MAX_LIMIT:
            raise InvalidRecordError(f"attempts_max must be 1..{ATTEMPTS_MAX_LIMIT}")
        if not 0 <= self.attempts <= self.attempts_max:
            raise InvalidRecordError("attempts out of range")
        if len(self.counters) > COUNTERS_MAX:
            raise InvalidRecordError(f"a job uses at most {COUNTERS_MAX} counters")
        # Invariant: counters strictly increase (a counter is never reused).
        assert all(a < b for a, b in zip(self.counters, self.counters[1:], strict=False))

    def _to(self, state: JobState, **changes: object) -> Job:
        if state not in _NEXT[self.state]:
            raise JobStateError(f"job {self.job_id}: {self.state.value} -> {state.value}")
        return replace(self, state=state, **changes)  # type: ignore[arg-type]

    def sent(self) -> Job:
        """A new attempt starts (QUEUED or RETRYING -> SENT)."""
        if self.attempts >= self.attempts_max:
            raise JobStateError(f"job {self.job_id}: no attempt left")
        return self._to(JobState.SENT, attempts=self.attempts + 1)

    def used(self, counter: int) -> Job:
        """A packet of the current attempt went out with ``counter``."""
        if self.state is not JobState.SENT:
            raise JobStateError(f"job {self.job_id}: a counter used while {self.state.value}")
        if self.counters and counter <= self.counters[-1]:
            raise JobStateError(f"job {self.job_id}: counter {counter} is not higher")
        return replace(self, counters=(*self.counters, counter))

    def done(self, result: bytes = b"") -> Job:
        return self._to(JobState.DONE, result=result, detail="", por_status=0)

    def failed(self, detail: str, *, por_status: int | None = None, sw: int | None = None) -> Job:
        return self._to(
            JobState.FAILED, detail=detail[:DETAIL_CHARS_MAX], por_status=por_status, last_sw=sw
        )

    def retry_or_fail(self, detail: str, *, por_status: int | None = None) -> Job:
        """Outcome unknown (no PoR, link lost): retry while attempts remain."""
        if self.attempts < self.attempts_max:
            return self._to(
                JobState.RETRYING, detail=detail[:DETAIL_CHARS_MAX], por_status=por_status
            )
        return self.failed(f"{detail} (after {self.attempts} attempts)", por_status=por_status)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True, slots=True)
class PacketOutcome:
    """What one PoR says: ``ok``; or a refusal (``por_status``) or a failing command (``sw``);
    ``retry`` when sending again with a new counter may help (our counter was behind)."""

    ok: bool
    detail: str = ""
    por_status: int | None = None
    sw: int | None = None
    data: bytes = field(default=b"", repr=False)
    retry: bool = False


def judge(por: Por, commands: int, *, empty_ok: bool = False) -> PacketOutcome:
    """The outcome of a packet of ``commands`` C-APDUs from its verified PoR (ota.md §2);
    ``empty_ok``: a GET STATUS finding no entry (6A88) is an empty answer, not a failure."""
    if por.status is not PorStatus.OK:
        name = PorStatus(por.status).name.lower()
        retry = por.status == PorStatus.COUNTER_LOW
        return PacketOutcome(False, f"PoR {por.status:02X} ({name})", int(por.status), retry=retry)
    if commands == 0:
        return PacketOutcome(True)
    try:
        response: CompactResponse = decode_response(por.data)
    except PaycoreError as exc:
        return PacketOutcome(False, f"PoR data: {exc}", 0)
    if empty_ok and response.executed == commands and response.last_sw == SW_NO_ENTRY:
        return PacketOutcome(True, sw=response.last_sw)
    if response.executed != commands or not response.completed:
        return PacketOutcome(
            False,
            f"command {response.executed} of {commands} answered {response.last_sw:04X}",
            0,
            response.last_sw,
        )
    return PacketOutcome(True, data=response.last_data, sw=response.last_sw)
