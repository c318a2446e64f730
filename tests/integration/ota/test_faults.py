"""Faults between the OTA server and the SIM: power cuts during the card's commit, PoRs lost on
the way back, a link that is down. The server retries with fresh counters, asks the card what
is done already, and never sends a counter twice."""

from __future__ import annotations

import pytest

from card_applet_sim import bootstrap
from card_applet_sim.domain.issuance import new_blank_sim_image
from card_applet_sim.domain.runtime import Card
from ota.domain.job import JobState
from ota.domain.script import JobKind
from tests.integration.ota.otakit import Fleet, fleet, wallet_of
from tests.unit.card_applet_sim.cardkit import PowerCut


class PoweredLink:
    """A handset that powers the SIM up again after a cut (a new session for the server)."""

    def __init__(self, card: Card) -> None:
        self.card = card

    def transmit(self, apdu: bytes) -> bytes:
        if not self.card.powered:
            self.card.power_on()
        return self.card.transmit(apdu)


class LosingLink(PoweredLink):
    """Drops the ``n``-th PoR (an ENVELOPE answer with data): the card ran the packet, the
    server never hears of it."""

    def __init__(self, card: Card, n: int) -> None:
        super().__init__(card)
        self.n = n
        self.seen = 0

    def transmit(self, apdu: bytes) -> bytes:
        response = super().transmit(apdu)
        if apdu[1] == 0xC2 and len(response) > 2:
            self.seen += 1
            if self.seen == self.n:
                raise ConnectionError("SMS-SUBMIT lost in the network")
        return response


def provision(f: Fleet, iccid: str) -> list[int]:
    counters: list[int] = []
    for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE):
        job = f.service.push(iccid, kind)
        assert job.state is JobState.DONE, job.detail
        counters += job.counters
    return counters


def assert_personalised(f: Fleet, iccid: str, counters: list[int]) -> None:
    wallet = wallet_of(f.cards[iccid])
    assert wallet is not None and wallet.life == "personalized"
    assert counters == sorted(set(counters))  # strictly increasing: never reused
    assert counters[-1] == f.service.store.get_sim(iccid).counter_last


@pytest.mark.parametrize("point", ["tmp-written", "renamed"])
@pytest.mark.parametrize("commit", [1, 2])
def test_a_power_cut_during_the_cards_commit_then_a_safe_retry(point: str, commit: int) -> None:
    cut = PowerCut(point, commit)
    card = bootstrap.memory_card(new_blank_sim_image(), hook=cut)
    card.power_on()
    f = fleet()
    iccid = f.add(1, card, PoweredLink(card))
    counters = provision(f, iccid)
    assert cut.fired
    assert_personalised(f, iccid, counters)
    # "renamed": the packet took effect, the retry found it done (probe only); "tmp-written":
    # nothing took effect, the retry sent it again after the probe.
    jobs = [f.service.store.get_job(n) for n in (1, 2)]
    assert [j.attempts for j in jobs] == [2 if n == commit else 1 for n in (1, 2)]


@pytest.mark.parametrize("lost", [1, 2])
def test_a_lost_por_is_retried_without_doing_the_work_twice(lost: int) -> None:
    f = fleet()
    card = bootstrap.memory_card(new_blank_sim_image())
    card.power_on()
    iccid = f.add(2, card, LosingLink(card, lost))
    counters = provision(f, iccid)
    assert_personalised(f, iccid, counters)
    retried = f.service.store.get_job(lost)
    assert retried.attempts == 2 and len(retried.counters) == 3  # packet, then the probe's two


def test_a_link_that_stays_down_fails_the_job_after_bounded_attempts() -> None:
    class DeadLink:
        def transmit(self, apdu: bytes) -> bytes:
            raise OSError("reader unplugged")

    f = fleet()
    iccid = f.add(3, link=DeadLink())
    job = f.service.push(iccid, JobKind.INSTALL_WALLET)
    assert job.state is JobState.FAILED and job.attempts == 3
    assert "reader unplugged" in job.detail and "after 3 attempts" in job.detail
    # every attempt spent a counter (the probe never got further than its first packet)
    assert job.counters == (1, 2, 3)
    assert f.service.store.get_sim(iccid).counter_last == 3


def test_a_job_interrupted_while_sent_is_retried_on_the_next_run() -> None:
    f = fleet()
    iccid = f.add(4)
    job = f.service.create_job(iccid, JobKind.INSTALL_WALLET)
    f.service.store.save_job(job.sent())  # the server died after marking it sent
    done = f.service.run(job.job_id)
    assert (done.state, done.attempts) == (JobState.DONE, 2)
