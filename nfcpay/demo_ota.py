"""The demo's first step (issue 6 item 6): the day starts by provisioning the SIM over the air.

A blank SIM (its issuer security domain only) is registered with the OTA server (SQLite in the
demo folder, SCP80 keys encrypted at rest under a fresh vault key); an install-wallet job and a
personalise job go to it as secured packets in ENVELOPEs; the server assigns the ASN and the
wallet keys are diversified from the issuer's master keys, so the host derives the same ones."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from rich.console import Console

from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain.issuance import KVN_SCP80, TEST_ISD_KEYS, new_blank_sim_image
from ota import bootstrap as ota_bootstrap
from ota.adapters.delivery import EnvelopeDelivery
from ota.adapters.keyvault import KeyVault
from ota.domain.job import JobParams, JobState
from ota.domain.script import JobKind
from ota.domain.sim import Scp80KeySet, SimRecord
from ota.service import OtaService
from paycore.issuer_keys import IssuerKeys

ICCID = "8986000000000000001"
IMSI = "460001234567890"
MSISDN = "13800000001"


def provision(folder: Path, sim_path: Path, keys: IssuerKeys, today: date, out: Console) -> str:
    """Provision the blank SIM at ``sim_path``; returns the ASN the server assigned (digits)."""
    card_bootstrap.save_new_image(sim_path, new_blank_sim_image())
    card = card_bootstrap.file_card(sim_path)
    card.power_on()
    store = ota_bootstrap.open_store(f"sqlite:///{folder / 'ota.sqlite'}", KeyVault(os.urandom(32)))
    scp80 = TEST_ISD_KEYS.scp80
    sim_keys = Scp80KeySet(KVN_SCP80, "aes", scp80.enc, scp80.mac, scp80.dek)
    service = OtaService(store, EnvelopeDelivery({ICCID: card}), keys, lambda: today)
    service.register(SimRecord(ICCID, IMSI, MSISDN, sim_keys))
    out.print(f"blank SIM {ICCID} registered with the OTA server (SCP80 set 01, AES)")
    for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE):
        job = service.push(ICCID, kind, JobParams())
        if job.state is not JobState.DONE:
            raise AssertionError(f"OTA {kind.value} failed: {job.detail}")
        counters = ", ".join(map(str, job.counters))
        out.print(f"OTA {kind.value:<14} secured packet(s) with counter {counters}: PoR ok")
    card.power_off()
    asn = store.get_sim(ICCID).asn
    assert asn is not None
    return asn.hex()
