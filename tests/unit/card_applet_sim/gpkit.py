"""Helpers of the ISD tests: a host's side of an SCP02/SCP03 session with the simulated SIM's
issuer security domain, and the provisioning of a wallet on a blank SIM, command by command.

Test modules import them from ``tests.unit.card_applet_sim.gpkit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from acquiring.domain import issuer
from card_applet_sim.domain.isd_state import IsdState
from card_applet_sim.domain.issuance import KVN_SCP02_INITIAL, KVN_SCP03, TEST_ISD_KEYS
from card_applet_sim.domain.runtime import Card
from paycore import pboc
from paycore.apdu import CommandApdu, ResponseApdu, decode_response
from paycore.gp import commands as gp
from paycore.gp import perso, scp02, scp03
from paycore.gp.channel import StaticKeys
from paycore.gp.dek import Dek
from paycore.issuer_keys import IssuerKeys
from paycore.purse import WALLET_AID
from paycore.sw import SW
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import LoadDone, PurchaseDone
from tests.unit.card_applet_sim.cardkit import ASN, NOW, TERMINAL_ID, psam_card, sim_image

Scp = Literal["scp02", "scp03"]
HOST_CHALLENGE = bytes.fromhex("1122334455667788")


def isd_state(card: Card) -> IsdState:
    state = card.image.state_of(gp.ISD_AID)
    assert isinstance(state, IsdState)
    return state


def raw_send(card: Card, command: CommandApdu | bytes | str) -> ResponseApdu:
    if isinstance(command, CommandApdu):
        raw = command.encode()
    elif isinstance(command, str):
        raw = bytes.fromhex(command)
    else:
        raw = command
    return decode_response(card.transmit(raw))


class GpHost:
    """The host side of one secure channel session (wraps commands, checks R-MACs)."""

    def __init__(
        self,
        card: Card,
        *,
        scp: Scp = "scp03",
        keys: StaticKeys | None = None,
        kvn: int | None = None,
        isd_aid: bytes = gp.ISD_AID,
        host_challenge: bytes = HOST_CHALLENGE,
    ) -> None:
        self.card = card
        self.scp = scp
        self.keys = keys or (TEST_ISD_KEYS.scp03 if scp == "scp03" else TEST_ISD_KEYS.scp02)
        self.kvn = kvn if kvn is not None else (KVN_SCP03 if scp == "scp03" else KVN_SCP02_INITIAL)
        self.isd_aid = isd_aid
        self.host_challenge = host_challenge
        self.channel: scp02.Channel | scp03.Channel | None = None
        self.dek: Dek | None = None

    def open(self, level: int = 0x03, *, select: bool = True) -> GpHost:
        if select:
            assert raw_send(self.card, CommandApdu(0x00, 0xA4, 0x04, 0x00, self.isd_aid)).ok
        if self.scp == "scp02":
            r = raw_send(self.card, scp02.initialize_update(self.kvn, self.host_challenge))
            assert r.sw == SW.OK, f"{r.sw:04X}"
            r02 = scp02.InitUpdateResponse.decode(r.data)
            keys02 = scp02.open_host(self.keys, self.host_challenge, r02)
            auth, self.channel = scp02.external_authenticate(
                keys02, r02, self.host_challenge, level
            )
            self.dek = Dek("3des-ecb", keys02.s_dek)
        else:
            r = raw_send(self.card, scp03.initialize_update(self.kvn, self.host_challenge))
            assert r.sw == SW.OK, f"{r.sw:04X}"
            r03 = scp03.InitUpdateResponse.decode(r.data)
            keys03 = scp03.open_host(self.keys, self.host_challenge, r03)
            auth, self.channel = scp03.external_authenticate(
                keys03, self.host_challenge, r03.card_challenge, level
            )
            self.dek = Dek("aes-cbc", self.keys.dek)
        r = raw_send(self.card, auth)
        assert r.sw == SW.OK, f"EXTERNAL AUTHENTICATE {r.sw:04X}"
        return self

    def wrap(self, command: CommandApdu) -> CommandApdu:
        assert self.channel is not None
        if isinstance(self.channel, scp02.Channel):
            wrapped, self.channel = scp02.wrap(self.channel, command)
        else:
            wrapped, self.channel = scp03.wrap(self.channel, command)
        return wrapped

    def send(self, command: CommandApdu) -> ResponseApdu:
        r = raw_send(self.card, self.wrap(command))
        if isinstance(self.channel, scp03.Channel):
            return ResponseApdu(scp03.unwrap_response(self.channel, r.data, r.sw), r.sw)
        return r

    def sw(self, command: CommandApdu) -> int:
        return self.send(command).sw

    def ok(self, command: CommandApdu) -> bytes:
        r = self.send(command)
        assert r.sw == SW.OK, f"{command.encode().hex().upper()[:10]}: {r.sw:04X}"
        return r.data

    def statuses(self, subset: int, prefix: bytes = b"") -> tuple[gp.RegistryEntry, ...]:
        r = self.send(gp.get_status(subset, prefix))
        if r.sw == gp.SW_MORE_DATA:
            raise AssertionError("more data: use get_status with next")
        if r.sw == SW.REFERENCED_DATA_NOT_FOUND:
            return ()
        assert r.sw == SW.OK, f"{r.sw:04X}"
        return gp.decode_status_response(r.data)

    def life_of(self, aid: bytes) -> int | None:
        for entry in self.statuses(gp.STATUS_APPLICATIONS):
            if entry.aid == aid:
                return entry.life_cycle
        return None


# --- the issuer's side of provisioning -------------------------------------------------------


def wallet_perso_for(keys: IssuerKeys, *, pin_bcd: bytes | None = None,
                     ceiling_fen: int | None = None) -> perso.WalletPerso:  # fmt: skip
    """EF15/EF16 exactly as direct issuance writes them for cardkit's ASN, the card keys the
    issuer's host derives (paycore.pboc.card_key)."""
    reference = sim_image(keys).instances[0].state
    return perso.WalletPerso(
        ef15=reference.ef15,  # type: ignore[attr-defined]
        ef16=reference.ef16,  # type: ignore[attr-defined]
        dpk=pboc.card_key(keys.mpk, ASN, keys.issuer_factor),
        dlk=pboc.card_key(keys.mlk, ASN, keys.issuer_factor),
        dtk=pboc.card_key(keys.mtk, ASN, keys.issuer_factor),
        key_version=keys.key_version,
        ceiling_fen=ceiling_fen,
        pin_bcd=pin_bcd,
    )


def load_and_install(send: Callable[[CommandApdu], ResponseApdu]) -> list[int]:
    """INSTALL [for load], LOAD of the wallet package, INSTALL [for install and make
    selectable] of the wallet under its default AID; the status words."""
    script = [
        gp.install_for_load(gp.WALLET_PACKAGE_AID),
        *gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID)),
        gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, WALLET_AID),
    ]
    return [send(c).sw for c in script]


def personalise(
    send: Callable[[CommandApdu], ResponseApdu],
    data: perso.WalletPerso,
    dek: Dek,
    *,
    block_max: int = perso.STORE_DATA_BLOCK_MAX,
) -> list[int]:
    """INSTALL [for personalization] and the STORE DATA blocks; the status words."""
    commands = perso.store_data_commands(WALLET_AID, data.dgis(dek), block_max=block_max)
    return [send(c).sw for c in commands]


def provision(host: GpHost, keys: IssuerKeys, *, pin_bcd: bytes | None = None) -> None:
    """A blank SIM's wallet, end to end, over ``host``'s open channel."""
    assert load_and_install(host.send) == [SW.OK] * 3
    assert host.dek is not None
    data = wallet_perso_for(keys, pin_bcd=pin_bcd)
    assert set(personalise(host.send, data, host.dek)) == {SW.OK}


class Authority:
    """The issuer's host authorising a load (MAC2 from the master keys)."""

    def __init__(self, keys: IssuerKeys) -> None:
        self.keys = keys

    def authorise_load(
        self, asn: bytes, init: Any, amount_fen: int, tid: bytes, d: bytes, t: bytes
    ) -> bytes:
        return issuer.load_mac2(self.keys, asn, init, amount_fen, tid, d, t)


def shop(card: Card, keys: IssuerKeys) -> tuple[LoadDone, PurchaseDone]:
    """A load of 50.00 and a purchase of 12.34 through the terminal's flows and the PSAM."""
    reader = SimReader(card)
    reader.present()
    loaded = card_flows.load(reader, Authority(keys), 5_000, TERMINAL_ID, NOW)
    psam_reader = SimReader(psam_card(keys))
    psam_reader.present()
    psam = card_flows.open_psam(psam_reader)
    bought = card_flows.purchase(reader, psam, 1_234, NOW)
    assert isinstance(loaded, LoadDone) and isinstance(bought, PurchaseDone)
    return loaded, bought
