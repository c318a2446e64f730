"""Shared parts of the OTA server tests: blank simulated SIMs with their registry records, and
services wired to them in-process (the composition a test or the bench makes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from card_applet_sim import bootstrap
from card_applet_sim.domain.issuance import KVN_SCP80, TEST_ISD_KEYS, new_blank_sim_image
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from ota.adapters.delivery import EnvelopeDelivery
from ota.adapters.memory_store import MemoryStore
from ota.domain.sim import Scp80KeySet, SimRecord
from ota.ports import EnvelopeLink, OtaStore
from ota.service import OtaConfig, OtaService
from paycore.issuer_keys import IssuerKeys
from paycore.purse import WALLET_AID
from tests.unit.card_applet_sim.cardkit import det_random, make_keys

TODAY = date(2026, 11, 22)
ISSUER_KEYS = make_keys(7)
SIM_KEYS = Scp80KeySet(
    KVN_SCP80, "aes", TEST_ISD_KEYS.scp80.enc, TEST_ISD_KEYS.scp80.mac, TEST_ISD_KEYS.scp80.dek
)


def iccid_of(n: int) -> str:
    return f"898600{n:013d}"


def record_of(n: int, keys: Scp80KeySet = SIM_KEYS) -> SimRecord:
    return SimRecord(iccid_of(n), f"46000{n:010d}", f"1380000{n:04d}", keys)


def blank_sim(seed: int = 1) -> Card:
    card = bootstrap.memory_card(new_blank_sim_image(), det_random(seed))
    card.power_on()
    return card


def wallet_of(card: Card) -> WalletState | None:
    for instance in card.image.instances:
        if instance.aid == WALLET_AID:
            assert isinstance(instance.state, WalletState)
            return instance.state
    return None


@dataclass
class Fleet:
    """SIMs (simulated cards) reachable by ICCID, and the service that provisions them."""

    service: OtaService
    links: dict[str, EnvelopeLink]
    cards: dict[str, Card]

    def add(
        self, n: int, card: Card | None = None, link: EnvelopeLink | None = None,
        keys: Scp80KeySet = SIM_KEYS,
    ) -> str:  # fmt: skip
        record = record_of(n, keys)
        sim = card if card is not None else blank_sim(n)
        self.cards[record.iccid] = sim
        self.links[record.iccid] = link if link is not None else sim
        self.service.register(record)
        return record.iccid


def fleet(
    store: OtaStore | None = None,
    config: OtaConfig | None = None,
    issuer_keys: IssuerKeys = ISSUER_KEYS,
    today: Callable[[], date] = lambda: TODAY,
) -> Fleet:
    links: dict[str, EnvelopeLink] = {}
    service = OtaService(
        store if store is not None else MemoryStore(),
        EnvelopeDelivery(links),
        issuer_keys,
        today,
        config or OtaConfig(),
    )
    return Fleet(service, links, {})
