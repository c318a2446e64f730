"""The card runtime (card.md §1): power, ATR, APDU dispatch, logical channels, SELECT, and the
atomic commit of applet state.

Every APDU gets a status word: decode errors answer 6700, unexpected internal errors 6F00 with
the state unchanged (a reply's new state is committed only after the applet returned cleanly).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from card_applet_sim.domain.applet import Applet, AppletType, RandomSource, Reply
from card_applet_sim.domain.errors import PowerLoss
from card_applet_sim.domain.image import CardImage
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
    ) -> None:
        self._store = store
        self._atr = atr
        self._types = applet_types
        self._random = random_bytes
        self._image: CardImage | None = None
        self._applets: dict[bytes, Applet] = {}
        self._states: dict[bytes, object] = {}
        self._channels: dict[int, bytes | None] = {}
        self._fids: dict[bytes, int | None] = {}

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
        self._applets = {
            i.aid: self._types[i.type_name].factory(i.aid, self._random) for i in image.instances
        }
        self._fids = {i.aid: self._types[i.type_name].fid for i in image.instances}
        self._channels = {0: None}
        return self._atr

    def reset(self) -> bytes:
        return self.power_on()

    def power_off(self) -> None:
        self._image = None
        self._applets = {}
        self._states = {}
        self._channels = {}

    # --- APDUs ---------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        if self._image is None:
            return _sw(SW.NO_PRECISE_DIAGNOSIS)
        try:
            command = decode_command(apdu)
        except DecodeError:
            return _sw(SW.WRONG_LENGTH)
        try:
            reply = self._dispatch(command)
            if reply.state is not None:
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
        self._deselect(channel)
        result = self._applets[aid].select(self._states[aid])
        if result.selected:
            self._channels[channel] = aid
        reply = result.reply
        return reply if with_fci else Reply(reply.sw)
