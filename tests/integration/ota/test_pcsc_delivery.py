"""PC/SC delivery through a real pcscd: a blank simulated SIM served on vpcd slot 0 gets the
wallet and its personalisation over ENVELOPEs sent by pyscard (ota.adapters.pcsc_link), the
PoR as the ENVELOPE response and by FETCH / SEND SHORT MESSAGE / TERMINAL RESPONSE."""

from __future__ import annotations

import pytest

from card_applet_sim import bootstrap
from card_applet_sim.domain.issuance import new_blank_sim_image
from ota.adapters.pcsc_link import PcscLink
from ota.domain.job import JobState
from ota.domain.script import JobKind
from ota.service import OtaConfig
from paycore.ota.security import SPI_DEFAULT, SPI_POR_BY_SMS, Spi
from tests.integration.ota.otakit import fleet, wallet_of
from tests.integration.pcsc_env import READER_SLOT0, ServeCard


@pytest.mark.parametrize("spi", [SPI_DEFAULT, SPI_POR_BY_SMS], ids=["por-in-response", "por-sms"])
def test_a_blank_sim_on_vpcd_is_provisioned_through_pcscd(serve_card: ServeCard, spi: Spi) -> None:
    card = bootstrap.memory_card(new_blank_sim_image())
    serve_card(card, slot=0)
    link = PcscLink(READER_SLOT0)
    link.connect()
    try:
        f = fleet(config=OtaConfig(spi=spi))
        iccid = f.add(1, card, link)
        for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE, JobKind.READ_STATUS):
            job = f.service.push(iccid, kind)
            assert job.state is JobState.DONE, job.detail
    finally:
        link.close()
    wallet = wallet_of(card)
    assert wallet is not None and wallet.life == "personalized"
