"""The OTA server's ports: where SIMs, jobs and campaigns are kept, and how a secured packet
reaches a SIM. Adapters satisfy them structurally."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ota.domain.campaign import Campaign
from ota.domain.job import Job, JobParams
from ota.domain.script import JobKind
from ota.domain.sim import SimRecord
from paycore.ota.packet import Por, PorSecurity


class OtaStore(Protocol):
    def add_sim(self, sim: SimRecord) -> None: ...

    def get_sim(self, iccid: str) -> SimRecord: ...

    def list_sims(self, limit: int, offset: int = 0) -> Sequence[SimRecord]: ...

    def reserve_counter(self, iccid: str) -> int:
        """Persist and return the SIM's next SCP80 counter, before its packet leaves: a crash
        after this never reuses the counter."""
        ...

    def assign_asn(self, iccid: str) -> bytes:
        """The SIM's ASN, assigned once (the next in the server's sequence) and kept."""
        ...

    def add_job(
        self, iccid: str, kind: JobKind, params: JobParams, attempts_max: int,
        campaign_id: int | None = None,
    ) -> Job: ...  # fmt: skip

    def save_job(self, job: Job) -> None: ...

    def get_job(self, job_id: int) -> Job: ...

    def add_campaign(
        self,
        name: str,
        kind: JobKind,
        params: JobParams,
        iccids: Sequence[str],
        attempts_max: int,
    ) -> Campaign:
        """The campaign and one QUEUED job per SIM, in one transaction."""
        ...  # fmt: skip

    def get_campaign(self, campaign_id: int) -> Campaign: ...

    def jobs_of_campaign(self, campaign_id: int) -> Sequence[Job]: ...


class EnvelopeLink(Protocol):
    """A SIM reached by APDUs (a simulated card in-process, or a SIM in a PC/SC reader):
    ``transmit`` takes a C-APDU and returns the response data followed by SW1 SW2."""

    def transmit(self, apdu: bytes) -> bytes: ...


class Delivery(Protocol):
    """Sends one secured packet (CPL to the end) to a SIM and returns its verified PoR; raises
    ``DeliveryError`` when the outcome is unknown (no PoR, link lost)."""

    def send(self, iccid: str, packet: bytes, security: PorSecurity, reference: int) -> Por: ...
