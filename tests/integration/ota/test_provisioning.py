"""The OTA server end to end, in-process: blank simulated SIMs get the wallet package, the
wallet and its personalisation over the air (secured packets in ENVELOPEs, PoRs checked), then
pay with the POS terminal's flows and a PSAM holding the same issuer keys."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.domain.isd import IsdScp80Keys
from card_applet_sim.domain.issuance import (
    KVN_SCP80,
    TEST_ISD_KEYS,
    new_blank_sim_image,
    new_psam_image,
)
from ota.domain.job import JobParams, JobState
from ota.domain.script import JobKind
from ota.service import OtaConfig
from paycore import pboc
from paycore.gp import commands as gp
from paycore.ota.security import SPI_POR_BY_SMS, PorStatus
from paycore.purse import WALLET_AID
from paycore.sw import SW
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import LoadDone, PurchaseDone
from tests.integration.ota.otakit import ISSUER_KEYS, SIM_KEYS, fleet, wallet_of
from tests.unit.card_applet_sim.cardkit import NOW, TERMINAL_ID, send
from tests.unit.card_applet_sim.gpkit import Authority


def counter_on_card(card: object) -> int:
    return IsdScp80Keys().counter(card.image, KVN_SCP80)  # type: ignore[attr-defined]


def test_a_blank_sim_is_provisioned_over_the_air_and_pays() -> None:
    f = fleet()
    iccid = f.add(1)
    card = f.cards[iccid]
    install = f.service.push(iccid, JobKind.INSTALL_WALLET)
    assert (install.state, install.attempts, install.counters) == (JobState.DONE, 1, (1,))
    perso = f.service.push(iccid, JobKind.PERSONALISE, JobParams(ceiling_fen=100_000))
    assert perso.state is JobState.DONE, perso.detail
    assert perso.counters == (2,)
    assert counter_on_card(card) == 2 == f.service.store.get_sim(iccid).counter_last
    wallet = wallet_of(card)
    assert wallet is not None and wallet.life == "personalized"
    asn = f.service.store.get_sim(iccid).asn
    assert asn is not None
    # The keys on the card are the ones the issuer's host derives.
    assert wallet.dpk == pboc.card_key(ISSUER_KEYS.mpk, asn, ISSUER_KEYS.issuer_factor)
    assert wallet.dlk == pboc.card_key(ISSUER_KEYS.mlk, asn, ISSUER_KEYS.issuer_factor)
    assert wallet.dtk == pboc.card_key(ISSUER_KEYS.mtk, asn, ISSUER_KEYS.issuer_factor)
    # A load through the issuer's authority, then a purchase with the PSAM.
    reader = SimReader(card)
    reader.present()
    loaded = card_flows.load(reader, Authority(ISSUER_KEYS), 5_000, TERMINAL_ID, NOW)
    psam = bootstrap.memory_card(new_psam_image(ISSUER_KEYS, TERMINAL_ID))
    psam_reader = SimReader(psam)
    psam_reader.present()
    bought = card_flows.purchase(reader, card_flows.open_psam(psam_reader), 1_234, NOW)
    assert isinstance(loaded, LoadDone) and isinstance(bought, PurchaseDone)
    assert bought.mac2_verified and bought.balance_after_fen == 5_000 - 1_234
    assert issuer.purchase_tac_ok(
        ISSUER_KEYS,
        asn,
        pboc.Purchase(1_234, TERMINAL_ID, bought.terminal_serial, bought.date_bcd, bought.time_bcd),
        bought.tac,
    )


def test_a_personalisation_split_over_packets_repeats_its_install_head() -> None:
    config = OtaConfig(script_bytes_max=100, store_data_block_max=60)
    f = fleet(config=config)
    iccid = f.add(2)
    assert f.service.push(iccid, JobKind.INSTALL_WALLET).state is JobState.DONE
    perso = f.service.push(iccid, JobKind.PERSONALISE)
    assert perso.state is JobState.DONE, perso.detail
    assert perso.counters == (2, 3)  # two packets, INSTALL [for personalization] in each
    assert list(perso.counters) == sorted(set(perso.counters))
    wallet = wallet_of(f.cards[iccid])
    assert wallet is not None and wallet.life == "personalized"


def test_lock_unlock_limit_status_delete() -> None:
    f = fleet()
    iccid = f.add(3)
    card = f.cards[iccid]
    for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE):
        assert f.service.push(iccid, kind).state is JobState.DONE
    select = bytes.fromhex("00a40400") + bytes((len(WALLET_AID),)) + WALLET_AID
    assert f.service.push(iccid, JobKind.LOCK).state is JobState.DONE
    assert send(card, select).sw == SW.SELECTED_FILE_INVALIDATED
    assert f.service.push(iccid, JobKind.UNLOCK).state is JobState.DONE
    assert send(card, select).sw == SW.OK
    limit = f.service.push(iccid, JobKind.UPDATE_LIMIT, JobParams(ceiling_fen=20_000))
    assert limit.state is JobState.DONE, limit.detail
    status = f.service.push(iccid, JobKind.READ_STATUS)
    assert status.state is JobState.DONE
    entries = gp.decode_status_response(status.result)
    assert [(e.aid, e.life_cycle) for e in entries] == [(WALLET_AID, gp.APP_PERSONALIZED)]
    assert f.service.push(iccid, JobKind.DELETE).state is JobState.DONE
    assert wallet_of(card) is None
    assert send(card, select).sw == SW.FILE_NOT_FOUND
    # The package went with it: a second delete finds nothing (the card's status word) ...
    again = f.service.push(iccid, JobKind.DELETE)
    assert (again.state, again.last_sw) == (JobState.FAILED, 0x6A88)
    # ... and the SIM takes a new wallet as a blank one does.
    for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE):
        assert f.service.push(iccid, kind).state is JobState.DONE
    wallet = wallet_of(card)
    assert wallet is not None and wallet.life == "personalized"


def test_por_by_sms_submit() -> None:
    f = fleet(config=OtaConfig(spi=SPI_POR_BY_SMS))
    iccid = f.add(4)
    for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE, JobKind.READ_STATUS):
        job = f.service.push(iccid, kind)
        assert job.state is JobState.DONE, job.detail


def test_a_counter_behind_the_card_is_refused_then_retried_higher() -> None:
    f = fleet()
    # The card has seen counter 2 already (e.g. the server's database was restored).
    image = IsdScp80Keys().with_counter(new_blank_sim_image(), KVN_SCP80, 2)
    card = bootstrap.memory_card(image)
    card.power_on()
    iccid = f.add(5, card)
    job = f.service.push(iccid, JobKind.INSTALL_WALLET)
    assert job.state is JobState.DONE, job.detail
    # attempt 1: 1 refused (02); attempt 2 probes with 2, refused; attempt 3: probe 3 and 4, then 5
    assert job.counters == (1, 2, 3, 4, 5) and job.attempts == 3
    assert counter_on_card(card) == 5


def test_a_refused_packet_fails_the_job_with_the_por_status() -> None:
    f = fleet()
    iccid = f.add(6)
    wrong = replace(f.service.store.get_sim(iccid).keys, kid=bytes(16))
    f.service.store._sims[iccid] = replace(f.service.store.get_sim(iccid), keys=wrong)  # type: ignore[attr-defined]
    job = f.service.push(iccid, JobKind.INSTALL_WALLET)
    assert (job.state, job.por_status) == (JobState.FAILED, PorStatus.RC_CC_DS_FAILED)
    assert wallet_of(f.cards[iccid]) is None


@pytest.mark.parametrize("kind", [JobKind.PERSONALISE, JobKind.LOCK])
def test_a_job_on_an_empty_sim_fails_with_the_cards_status_word(kind: JobKind) -> None:
    f = fleet()
    iccid = f.add(7)
    job = f.service.push(iccid, kind)
    assert job.state is JobState.FAILED and job.last_sw is not None


def test_a_sim_with_a_3des_scp80_key_set() -> None:
    isd_keys = dataclasses.replace(TEST_ISD_KEYS, scp80_algorithm="3des")
    card = bootstrap.memory_card(new_blank_sim_image(isd_keys))
    card.power_on()
    keys = dataclasses.replace(SIM_KEYS, algorithm="3des")
    assert keys.coding == 0x15
    f = fleet()
    iccid = f.add(8, card, keys=keys)
    for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE):
        job = f.service.push(iccid, kind)
        assert job.state is JobState.DONE, job.detail
    wallet = wallet_of(card)
    assert wallet is not None and wallet.life == "personalized"
