"""Power cuts at every write point while a blank SIM is provisioned (ota.md §1, card.md §1).

Provisioning over SCP03 commits the card image once per changing command: INITIALIZE UPDATE
(the sequence counter), the last LOAD block, INSTALL, and each STORE DATA block. An uncut run
records the image after each commit; a run cut at the n-th commit must leave exactly the
image before or after that commit. A half-personalised wallet refuses to work, and running
the same provisioning again (it looks at GET STATUS and does what is missing) completes the
card, which then loads and pays with the keys the issuer derives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from card_applet_sim import bootstrap
from card_applet_sim.adapters.stores import WRITE_POINTS, MemoryStore
from card_applet_sim.domain.errors import PowerLoss
from card_applet_sim.domain.image import CardImage
from card_applet_sim.domain.issuance import new_blank_sim_image
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from card_applet_sim.ports import CardStore
from paycore import pboc
from paycore.gp import commands as gp
from paycore.gp import perso
from paycore.issuer_keys import IssuerKeys
from paycore.purse import WALLET_AID, select_aid
from paycore.sw import SW
from tests.unit.card_applet_sim.cardkit import ASN, PowerCut, det_random
from tests.unit.card_applet_sim.gpkit import GpHost, raw_send, shop, wallet_perso_for

BLOCK_MAX = 60  # three STORE DATA blocks
COMMITS = 6  # INITIALIZE UPDATE, last LOAD, INSTALL, 3 x STORE DATA
MEMORY_WRITE_POINTS = ("tmp-written", "renamed")


class Recording:
    """A store that remembers every image committed to it."""

    def __init__(self, inner: CardStore) -> None:
        self.inner = inner
        self.images = [inner.load()]

    def load(self) -> CardImage:
        return self.inner.load()

    def commit(self, image: CardImage) -> None:
        self.inner.commit(image)
        self.images.append(image)


def provision(card: Card, keys: IssuerKeys) -> None:
    """Bring the card's wallet to PERSONALIZED from wherever it is (idempotent)."""
    host = GpHost(card).open(0x03)
    assert host.dek is not None
    if not host.statuses(gp.STATUS_LOAD_FILES):
        host.ok(gp.install_for_load(gp.WALLET_PACKAGE_AID))
        for block in gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID)):
            host.ok(block)
    life = host.life_of(WALLET_AID)
    if life is None:
        host.ok(gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, WALLET_AID))
    if life != gp.APP_PERSONALIZED:
        dgis = wallet_perso_for(keys).dgis(host.dek)
        for command in perso.store_data_commands(WALLET_AID, dgis, block_max=BLOCK_MAX):
            host.ok(command)


def reference_images(keys: IssuerKeys) -> list[CardImage]:
    store = Recording(MemoryStore(new_blank_sim_image()))
    card = bootstrap.card_on_store(store, "sim", det_random(5))
    card.power_on()
    provision(card, keys)
    assert len(store.images) == COMMITS + 1
    return store.images


def check_after_cut(card: Card, keys: IssuerKeys, before: CardImage, after: CardImage) -> None:
    image = card.image
    assert image in (before, after), "a mix of the old and the new image"
    wallet = next((i.state for i in image.instances if i.aid == WALLET_AID), None)
    card.power_on()
    if isinstance(wallet, WalletState) and wallet.life != "personalized":
        # Half personalised: unusable until completed.
        r = raw_send(card, select_aid(WALLET_AID))
        if r.sw == SW.OK:
            assert raw_send(card, "805C000204").sw == SW.CONDITIONS_NOT_SATISFIED
        else:
            assert r.sw == SW.FILE_NOT_FOUND and wallet.life == "installed"
    provision(card, keys)  # the same provisioning again completes the card
    completed = card.image.state_of(WALLET_AID)
    assert isinstance(completed, WalletState) and completed.life == "personalized"
    assert completed.dpk == pboc.card_key(keys.mpk, ASN)
    assert completed.dtk == pboc.card_key(keys.mtk, ASN)
    shop(card, keys)


def cut_run(keys: IssuerKeys, store: CardStore, cut: PowerCut) -> None:
    card = bootstrap.card_on_store(store, "sim", det_random(5))
    card.power_on()
    with pytest.raises(PowerLoss):
        provision(card, keys)
    assert cut.fired and not card.powered


@pytest.mark.parametrize("n", range(1, COMMITS + 1))
@pytest.mark.parametrize("point", WRITE_POINTS)
def test_provisioning_torn_at_every_file_write_point(
    tmp_path: Path, keys: IssuerKeys, point: str, n: int
) -> None:
    images = reference_images(keys)
    path = tmp_path / "sim.card"
    bootstrap.save_new_image(path, new_blank_sim_image())
    cut = PowerCut(point, n)
    cut_run(keys, bootstrap.file_store(path, fsync=False, hook=cut), cut)
    fresh = bootstrap.file_card(path, fsync=False, random_bytes=det_random(6))
    assert not path.with_name(path.name + ".tmp").exists()
    check_after_cut(fresh, keys, images[n - 1], images[n])


@pytest.mark.parametrize("n", range(1, COMMITS + 1))
@pytest.mark.parametrize("point", MEMORY_WRITE_POINTS)
def test_provisioning_torn_at_every_memory_write_point(
    keys: IssuerKeys, point: str, n: int
) -> None:
    images = reference_images(keys)
    cut = PowerCut(point, n)
    store = MemoryStore(new_blank_sim_image(), cut)
    cut_run(keys, store, cut)
    fresh = bootstrap.card_on_store(store, "sim", det_random(6))
    check_after_cut(fresh, keys, images[n - 1], images[n])


def test_the_reference_run_commits_once_per_changing_command(keys: IssuerKeys) -> None:
    images = reference_images(keys)
    wallets = [
        next((i.state for i in image.instances if i.aid == WALLET_AID), None) for image in images
    ]
    assert wallets[:3] == [None, None, None]  # blank, INITIALIZE UPDATE, LOAD
    lives = [w.life for w in wallets[3:] if isinstance(w, WalletState)]
    assert lives == ["selectable"] * 3 + ["personalized"]
