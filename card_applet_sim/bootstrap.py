"""Wires the card simulator: applet types, stores, the runtime."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from card_applet_sim.adapters.stores import FileStore, MemoryStore, WritePointHook, write_image
from card_applet_sim.domain.applet import AppletType, RandomSource
from card_applet_sim.domain.atr import PSAM_ATR, SIM_ATR
from card_applet_sim.domain.errors import CardImageError
from card_applet_sim.domain.image import CardImage, encode_image
from card_applet_sim.domain.isd import IsdApplet, IsdOtaTarget, IsdScp80Keys
from card_applet_sim.domain.ota_receiver import TAR_ISD, OtaReceiver
from card_applet_sim.domain.psam import PsamApplet
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletApplet
from card_applet_sim.ports import CardStore
from paycore.purse import WALLET_FID

APPLET_TYPES: Mapping[str, AppletType] = {
    t.type_name: t
    for t in (
        AppletType(
            "wallet",
            WALLET_FID,
            WalletApplet,
            WalletApplet.state_to_json,
            WalletApplet.state_from_json,
        ),
        AppletType("psam", None, PsamApplet, PsamApplet.state_to_json, PsamApplet.state_from_json),
        AppletType(
            "isd",
            None,
            IsdApplet,
            IsdApplet.state_to_json,
            IsdApplet.state_from_json,
            manages_content=True,
        ),
    )
}
ATR_BY_KIND = {"sim": SIM_ATR, "psam": PSAM_ATR}


def card_on_store(store: CardStore, kind: str, random_bytes: RandomSource = os.urandom) -> Card:
    """A card on its store; a SIM also gets the OTA receiver (ENVELOPE to the ISD, TAR 000000)."""
    ota = OtaReceiver({TAR_ISD: IsdOtaTarget()}, IsdScp80Keys()) if kind == "sim" else None
    return Card(
        store, atr=ATR_BY_KIND[kind], applet_types=APPLET_TYPES, random_bytes=random_bytes, ota=ota
    )


def memory_card(
    image: CardImage, random_bytes: RandomSource = os.urandom, hook: WritePointHook | None = None
) -> Card:
    store = MemoryStore(image) if hook is None else MemoryStore(image, hook)
    return card_on_store(store, image.kind, random_bytes)


def file_store(path: Path, *, fsync: bool = True, hook: WritePointHook | None = None) -> FileStore:
    if hook is None:
        return FileStore(path, APPLET_TYPES, fsync=fsync)
    return FileStore(path, APPLET_TYPES, fsync=fsync, on_write_point=hook)


def file_card(
    path: Path,
    *,
    fsync: bool = True,
    random_bytes: RandomSource = os.urandom,
    expect_kind: str | None = None,
) -> Card:
    """A card backed by its image file. Loads (and so validates) the image once up front."""
    store = file_store(path, fsync=fsync)
    image = store.load()
    if expect_kind is not None and image.kind != expect_kind:
        raise CardImageError(f"{path}: this is a {image.kind} image, not a {expect_kind}")
    return card_on_store(store, image.kind, random_bytes)


def save_new_image(path: Path, image: CardImage, *, overwrite: bool = False) -> None:
    write_image(path, encode_image(image, APPLET_TYPES), exclusive=not overwrite)
