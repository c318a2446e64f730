"""The job state machine (ota.md §3) under random event sequences, PoR judging, and the
service over fakes of its ports: counters strictly increasing and never reused across
retries."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ota.adapters.memory_store import MemoryStore
from ota.domain.errors import DeliveryError, JobStateError
from ota.domain.job import Job, JobState, judge
from ota.domain.script import JobKind
from ota.domain.sim import Scp80KeySet, SimRecord
from ota.service import OtaConfig, OtaService
from paycore.ota.packet import Por, PorSecurity
from paycore.ota.remote_apdu import CompactResponse
from paycore.ota.security import PorStatus

EVENTS = st.lists(st.sampled_from(["sent", "used", "done", "failed", "retry"]), max_size=30)


@given(events=EVENTS, attempts_max=st.integers(1, 5))
def test_the_state_machine_under_any_sequence_of_events(
    events: list[str], attempts_max: int
) -> None:
    job = Job(1, "8986000000000000001", JobKind.LOCK, attempts_max=attempts_max)
    counter = 0
    for event in events:
        before = job
        try:
            if event == "sent":
                job = job.sent()
            elif event == "used":
                counter += 1
                job = job.used(counter)
            elif event == "done":
                job = job.done()
            elif event == "failed":
                job = job.failed("refused", sw=0x6985)
            else:
                job = job.retry_or_fail("no PoR")
        except JobStateError:
            assert job is before  # a refused transition changes nothing
            continue
        if before.finished:
            raise AssertionError("a finished job moved")
        assert job.attempts <= job.attempts_max
        assert list(job.counters) == sorted(set(job.counters))
        if event == "retry" and job.state is JobState.FAILED:
            assert before.attempts == before.attempts_max


def test_transitions() -> None:
    job = Job(1, "8986000000000000001", JobKind.LOCK, attempts_max=2)
    with pytest.raises(JobStateError):
        job.done()
    with pytest.raises(JobStateError):
        job.used(1)
    job = job.sent().used(5)
    with pytest.raises(JobStateError, match="not higher"):
        job.used(5)
    job = job.retry_or_fail("lost")
    assert job.state is JobState.RETRYING
    job = job.sent().used(6).retry_or_fail("lost again")
    assert (job.state, job.attempts) == (JobState.FAILED, 2) and "after 2 attempts" in job.detail
    with pytest.raises(JobStateError):
        job.sent()


def por(status: int, data: bytes = b"") -> Por:
    return Por(bytes(3), 1, PorStatus(status), data, True)


def test_judging_a_por() -> None:
    assert judge(por(0, CompactResponse(2, 0x9000).encode()), 2).ok
    stopped = judge(por(0, CompactResponse(1, 0x6985).encode()), 2)
    assert (stopped.ok, stopped.sw, stopped.detail) == (
        False,
        0x6985,
        "command 1 of 2 answered 6985",
    )
    low = judge(por(PorStatus.COUNTER_LOW), 1)
    assert (low.ok, low.por_status, low.retry) == (False, 2, True)
    assert not judge(por(PorStatus.RC_CC_DS_FAILED), 1).retry
    assert judge(por(0, CompactResponse(1, 0x6A88).encode()), 1, empty_ok=True).ok
    assert not judge(por(0, b"\x01"), 1).ok


class SilentDelivery:
    """A network that loses every PoR."""

    def __init__(self) -> None:
        self.counters: list[int] = []

    def send(self, iccid: str, packet: bytes, security: PorSecurity, reference: int) -> Por:
        self.counters.append(int.from_bytes(packet[10:15], "big"))  # CNTR (ciphered: unknown)
        raise DeliveryError("no PoR")


@given(attempts=st.integers(1, 5), jobs=st.integers(1, 4))
def test_retries_never_reuse_a_counter(attempts: int, jobs: int) -> None:
    store = MemoryStore()
    keys = Scp80KeySet(1, "aes", bytes(16), bytes(16), bytes(16))
    store.add_sim(SimRecord("8986000000000000001", "460001234567890", "", keys, counter_last=9))
    service = OtaService(
        store, SilentDelivery(), None, lambda: date(2026, 1, 1), OtaConfig(attempts_max=attempts)
    )
    used: list[int] = []
    for _ in range(jobs):
        job = service.push("8986000000000000001", JobKind.LOCK)
        assert job.state is JobState.FAILED and job.attempts == attempts
        used += job.counters
    assert used == list(range(10, 10 + len(used)))  # strictly increasing, none twice
    assert store.get_sim("8986000000000000001").counter_last == used[-1]
