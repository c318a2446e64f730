"""The card runtime (card.md §1): power, ATR, APDU dispatch, logical channels, SELECT, and the
atomic commit of applet state.

Every APDU gets a status word: decode errors answer 6700, unexpected internal errors 6F00 with
the state unchanged (a reply's new state is committed only after the applet returned cleanly).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

from card_applet_sim.domain.applet import Applet, AppletType, ContentManager, RandomSource, Reply
from card_applet_sim.domain.errors import PowerLoss
from card_applet_sim.domain.image import CardImage, Instance
from card_applet_sim.domain.ota_receiver import CLA_PROACTIVE, OTA_INS, OtaReceiver
from card_applet_sim.ports import CardStore
from paycore.apdu import CommandApdu, decode_command
from paycore.errors import DecodeError
from paycore.sw import SW, sw_wrong_le

log = logging.getLogger("nfcpay.card")

CHANNELS_MAX = 4  # basic channel 0 and logical channels 1-3
AID_LEN_MAX = 16
INS_MANAGE_CHANNEL = 0x70
INS_SELECT = 0xA4
FID_MF = 0x3F00

_SW_BYTES = {int(sw): int(sw).to_bytes(2, "big") for sw in SW}


def _sw(sw: int) -> bytes:
    return _SW_BYTES.get(sw) or sw.to_bytes(2, "big")


def _keeps_data(sw: int) -> bool:
    """Only success and warnings (61xx, 62xx, 63xx) carry response data."""
    return sw == SW.OK or (sw >> 8) in (0x61, 0x62, 0x63)


class Card:
    """A simulated card: the applets of one image behind one contact/contactless interface."""

    def __init__(
        self,
        store: CardStore,
        *,
        atr: bytes,
        applet_types: Mapping[str, AppletType],
        random_bytes: RandomSource,
        ota: OtaReceiver | None = None,
    ) -> None:
        self._store = store
        self._ota = ota  # ota.md §2: ENVELOPE / FETCH / TERMINAL RESPONSE (SIMs with an ISD)
        self._atr = atr
        self._types = applet_types
        self._random = random_bytes
        self._image: CardImage | None = None
        self._applets: dict[bytes, Applet] = {}
        self._states: dict[bytes, object] = {}
        self._channels: dict[int, bytes | None] = {}
        self._fids: dict[bytes, int | None] = {}
        self._managers: dict[bytes, ContentManager] = {}  # the ISD (ota.md §1)

    # --- power ---------------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def powered(self) -> bool:
        return self._image is not None

    @property
    def image(self) -> CardImage:
        """The committed image (loads it if the card is off)."""
        return self._image if self._image is not None else self._store.load()

    def power_on(self) -> bytes:
        self.power_off()  # a reset whose image cannot be loaded leaves the card off, not half-reset
        image = self._store.load()
        self._image = image
        self._states = {i.aid: i.state for i in image.instances}
        self._applets, self._fids = {}, {}
        self._add_applets(image.instances)
        self._channels = {0: None}
        if self._ota is not None:
            self._ota.reset()
        return self._atr

    def reset(self) -> bytes:
        return self.power_on()

    def power_off(self) -> None:
        self._image = None
        self._applets = {}
        self._states = {}
        self._channels = {}
        self._managers = {}
        if self._ota is not None:
            self._ota.reset()

    # --- APDUs ---------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        if self._image is None:
            return _sw(SW.NO_PRECISE_DIAGNOSIS)
        try:
            command = decode_command(apdu)
        except DecodeError:
            return _sw(SW.WRONG_LENGTH)
        try:
            if self._ota is not None and command.cla == CLA_PROACTIVE and command.ins in OTA_INS:
                return self._ota_command(command)
            reply = self._dispatch(command)
            if reply.instances is not None:
                self._commit_content(reply.instances)
            elif reply.state is not None:
                self._commit(command, reply.state)
        except PowerLoss:
            self.power_off()
            raise
        except Exception:
            log.exception("internal error on INS %02X; state unchanged", command.ins)
            return _sw(SW.NO_PRECISE_DIAGNOSIS)
        data = reply.data if _keeps_data(reply.sw) else b""
        if (
            reply.state is None
            and reply.instances is None
            and command.le is not None
            and command.le < len(data)
            and reply.sw == SW.OK
        ):
            # card.md §1: a wrong explicit Le may answer 6Cxx (exact length); only for commands
            # that changed nothing, so a committed result (a TAC) is never withheld.
            return _sw(sw_wrong_le(len(data)))
        return data + _sw(reply.sw)

    def _commit(self, command: CommandApdu, state: object) -> None:
        assert self._image is not None
        aid = self._channels[command.cla & 0x03]
        assert aid is not None, "only a selected applet can change state"
        new_image = self._image.with_state(aid, state)
        self._store.commit(new_image)
        self._image = new_image
        self._states[aid] = state

    # --- OTA (ota.md §2): on the basic channel, before applet dispatch ------------------------

    def _ota_command(self, command: CommandApdu) -> bytes:
        assert self._image is not None and self._ota is not None
        reply = self._ota.handle(self._image, command)
        if reply.image is not None:  # the counter and every effect: one commit (ADR 0002)
            self._commit_content(reply.image.instances)
        return reply.encode()

    def _dispatch(self, c: CommandApdu) -> Reply:
        cla = c.cla
        if cla == 0xFF:
            return Reply(SW.CLA_NOT_SUPPORTED)
        if cla & 0x40:  # further interindustry class: channels 4-19
            return Reply(SW.LOGICAL_CHANNEL_NOT_SUPPORTED)
        if cla & 0x10:
            return Reply(SW.COMMAND_CHAINING_NOT_SUPPORTED)
        if cla & 0x20:
            return Reply(SW.CLA_NOT_SUPPORTED)
        channel = cla & 0x03
        if channel not in self._channels:
            return Reply(SW.LOGICAL_CHANNEL_NOT_SUPPORTED)
        interindustry = not cla & 0x80
        if interindustry and not cla & 0x0C:
            if c.ins == INS_MANAGE_CHANNEL:
                return self._manage_channel(channel, c)
            if c.ins == INS_SELECT and c.p1 == 0x04:
                return self._select_aid(channel, c)
            if c.ins == INS_SELECT and c.p1 == 0x00:
                return self._select_fid(channel, c)
        aid = self._channels[channel]
        if aid is None:
            if c.ins in (0xB0, 0xB2):
                return Reply(SW.FILE_NOT_FOUND)
            return Reply(SW.INS_NOT_SUPPORTED)
        manager = self._managers.get(aid)
        if manager is not None:
            return manager.process_content(self._states[aid], c, self._image_now().instances)
        return self._applets[aid].process(self._states[aid], c)

    # --- logical channels (ISO/IEC 7816-4 §11.1.2) ---------------------------------------

    def _manage_channel(self, channel: int, c: CommandApdu) -> Reply:
        if c.data:
            return Reply(SW.WRONG_LENGTH)
        if c.p1 == 0x00:  # open
            if c.p2 == 0:
                free = [n for n in range(1, CHANNELS_MAX) if n not in self._channels]
                if not free:
                    return Reply(SW.FUNCTION_NOT_SUPPORTED)
                self._channels[free[0]] = None
                return Reply(SW.OK, bytes([free[0]]))
            if not 1 <= c.p2 < CHANNELS_MAX:
                return Reply(SW.WRONG_P1P2)
            if c.p2 in self._channels:
                return Reply(SW.CONDITIONS_NOT_SATISFIED)
            self._channels[c.p2] = None
            return Reply(SW.OK)
        if c.p1 == 0x80:  # close
            target = c.p2 or channel
            if target == 0 or target >= CHANNELS_MAX:
                return Reply(SW.WRONG_P1P2)
            if target not in self._channels:
                return Reply(SW.LOGICAL_CHANNEL_NOT_SUPPORTED)
            self._deselect(target)
            del self._channels[target]
            return Reply(SW.OK)
        return Reply(SW.WRONG_P1P2)

    # --- SELECT --------------------------------------------------------------------------

    def _deselect(self, channel: int) -> None:
        aid = self._channels.get(channel)
        if aid is not None:
            self._applets[aid].deselect()
        self._channels[channel] = None

    def _select_aid(self, channel: int, c: CommandApdu) -> Reply:
        occurrence, response = c.p2 & 0x03, c.p2 & 0x0C
        if c.p2 & 0xF0 or occurrence not in (0x00, 0x02):
            return Reply(SW.WRONG_P1P2)
        if len(c.data) > AID_LEN_MAX:
            return Reply(SW.WRONG_LENGTH)
        matches = [a for a in self._applets if a.startswith(c.data)]
        if occurrence == 0x02:  # next occurrence after the current selection
            current = self._channels[channel]
            if current in matches:
                matches = matches[matches.index(current) + 1 :]
        if not matches:
            return Reply(SW.FILE_NOT_FOUND)
        return self._select(channel, matches[0], with_fci=response != 0x0C)

    def _select_fid(self, channel: int, c: CommandApdu) -> Reply:
        if len(c.data) != 2:
            return Reply(SW.WRONG_LENGTH)
        fid = int.from_bytes(c.data, "big")
        if fid == FID_MF:
            self._deselect(channel)
            return Reply(SW.OK)
        for aid, applet_fid in self._fids.items():
            if applet_fid == fid:
                return self._select(channel, aid, with_fci=c.p2 & 0x0C != 0x0C)
        current = self._channels[channel]
        if current is not None:  # an EF inside the selected application
            return self._applets[current].process(self._states[current], c)
        return Reply(SW.FILE_NOT_FOUND)

    def _select(self, channel: int, aid: bytes, *, with_fci: bool) -> Reply:
        for other, selected in self._channels.items():
            if other != channel and selected == aid:  # applets here are not multi-selectable
                return Reply(SW.CONDITIONS_NOT_SATISFIED)
        if aid not in self._managers and not all(
            m.admits(self._states[m_aid], aid) for m_aid, m in self._managers.items()
        ):
            return Reply(SW.FILE_NOT_FOUND)  # GP: a locked card selects only its ISD
        self._deselect(channel)
        result = self._applets[aid].select(self._states[aid])
        if result.selected:
            self._channels[channel] = aid
        reply = result.reply
        return reply if with_fci else Reply(reply.sw)

    # --- card content management (ota.md §1): a ContentManager's whole new content ---------

    def _image_now(self) -> CardImage:
        assert self._image is not None
        return self._image

    def _add_applets(self, instances: tuple[Instance, ...]) -> None:
        for inst in instances:
            applet_type = self._types[inst.type_name]
            applet = applet_type.factory(inst.aid, self._random)
            self._applets[inst.aid] = applet
            self._fids[inst.aid] = applet_type.fid
            if applet_type.manages_content:
                self._managers[inst.aid] = cast(ContentManager, applet)

    def _commit_content(self, instances: tuple[Instance, ...]) -> None:
        """Commit a new instance tuple as one image, then follow it: applets of deleted
        instances leave their channels, new instances get applet objects."""
        image = self._image_now()
        aids = [i.aid for i in instances]
        assert len(set(aids)) == len(aids), "two instances share one AID"
        new_image = CardImage(image.kind, instances)
        self._store.commit(new_image)
        self._image = new_image
        gone = set(self._applets) - set(aids)
        for channel, selected in self._channels.items():
            if selected in gone:
                self._deselect(channel)
        for aid in gone:
            del self._applets[aid], self._fids[aid]
            self._managers.pop(aid, None)
        for inst in instances:  # changed from outside: drop the applet's sessions, PIN state
            known = inst.aid in self._applets and inst.aid not in self._managers
            if known and self._states[inst.aid] is not inst.state:
                self._applets[inst.aid].deselect()
        self._add_applets(tuple(i for i in instances if i.aid not in self._applets))
        self._states = {i.aid: i.state for i in instances}
