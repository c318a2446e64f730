"""The PSAM applet (card.md §5): the terminal's secure access module for purchases.

Holds the purchase master key MPK, the terminal ID and a persisted terminal transaction serial.
INIT SAM FOR PURCHASE increments and commits the serial before it answers, so a serial is never
handed out twice, whatever the power does.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from card_applet_sim.domain.applet import JsonObject, RandomSource, Reply, SelectReply
from card_applet_sim.domain.image import exact_keys, hex_field, int_field
from paycore import pboc, tlv
from paycore.apdu import CommandApdu
from paycore.purse import (
    ALG_3DES,
    INS_READ_BINARY,
    INS_SAM_CREDIT_PURCHASE,
    INS_SAM_INIT_PURCHASE,
    SFI_PSAM_TERMINAL_ID,
    SamInitRequest,
    SamInitResponse,
)
from paycore.sw import SW

SERIAL_MAX = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class PsamState:
    mpk: bytes
    key_version: int
    terminal_id: bytes
    serial: int  # the last serial handed out; the next INIT returns serial + 1

    def __post_init__(self) -> None:
        assert len(self.mpk) == 16 and len(self.terminal_id) == 6
        assert 0 <= self.serial <= SERIAL_MAX


@dataclass(frozen=True, slots=True)
class _Session:
    sespk: bytes
    amount_fen: int


class PsamApplet:
    type_name: ClassVar[str] = "psam"
    fid: ClassVar[int | None] = None

    def __init__(self, aid: bytes, random_bytes: RandomSource) -> None:
        self._aid = aid
        self._session: _Session | None = None

    def select(self, state: PsamState) -> SelectReply:
        self.deselect()
        return SelectReply(
            Reply(SW.OK, tlv.encode_one(0x6F, tlv.encode_one(0x84, self._aid))), True
        )

    def deselect(self) -> None:
        self._session = None

    def process(self, state: PsamState, c: CommandApdu) -> Reply:
        session, self._session = self._session, None
        if c.cla & 0x0C:
            return Reply(SW.CLA_NOT_SUPPORTED)
        if not c.cla & 0x80:
            if c.ins == INS_READ_BINARY:
                return self._read_binary(state, c)
            return Reply(SW.INS_NOT_SUPPORTED)
        if c.ins == INS_SAM_INIT_PURCHASE:
            return self._init_purchase(state, c)
        if c.ins == INS_SAM_CREDIT_PURCHASE:
            return self._credit_purchase(c, session)
        return Reply(SW.INS_NOT_SUPPORTED)

    def _read_binary(self, state: PsamState, c: CommandApdu) -> Reply:
        if c.data:
            return Reply(SW.WRONG_LENGTH)
        if c.p1 != 0x80 | SFI_PSAM_TERMINAL_ID:
            return Reply(SW.FILE_NOT_FOUND)
        if c.p2 >= len(state.terminal_id):
            return Reply(SW.WRONG_P1P2_OFFSET)
        data = state.terminal_id[c.p2 :]
        return Reply(SW.OK, data[: c.le] if c.le is not None else data)

    def _init_purchase(self, state: PsamState, c: CommandApdu) -> Reply:
        if c.p1 != 0 or c.p2 != 0:
            return Reply(SW.WRONG_P1P2)
        if len(c.data) not in (SamInitRequest.LEN, SamInitRequest.LEN_WITH_FACTOR):
            return Reply(SW.WRONG_LENGTH)
        req = SamInitRequest.decode(c.data)
        if req.key_version != state.key_version or req.alg_id != ALG_3DES:
            return Reply(SW.KEY_INDEX_NOT_FOUND)
        if req.tx_type not in (pboc.TYPE_ED_PURCHASE, pboc.TYPE_EP_PURCHASE) or req.amount_fen == 0:
            return Reply(SW.WRONG_DATA)
        if state.serial >= SERIAL_MAX:
            return Reply(SW.LIMIT_EXCEEDED)
        serial = state.serial + 1
        dpk = pboc.card_key(state.mpk, req.asn, req.issuer_factor)
        sespk = pboc.purchase_session_key(dpk, req.card_random, req.card_offline_counter, serial)
        purchase = pboc.Purchase(
            req.amount_fen, state.terminal_id, serial, req.date_bcd, req.time_bcd, req.tx_type
        )
        mac1 = pboc.purchase_mac1(sespk, purchase)
        self._session = _Session(sespk, req.amount_fen)
        return Reply(
            SW.OK, SamInitResponse(serial, mac1).encode(), state=replace(state, serial=serial)
        )

    def _credit_purchase(self, c: CommandApdu, session: _Session | None) -> Reply:
        if c.p1 != 0 or c.p2 != 0:
            return Reply(SW.WRONG_P1P2)
        if len(c.data) != 4:
            return Reply(SW.WRONG_LENGTH)
        if session is None:
            return Reply(SW.CONDITIONS_NOT_SATISFIED)
        expected = pboc.purchase_mac2(session.sespk, session.amount_fen)
        return Reply(SW.OK if hmac.compare_digest(expected, c.data) else SW.MAC_INVALID)

    @staticmethod
    def state_to_json(state: Any) -> JsonObject:
        assert isinstance(state, PsamState)
        return {
            "mpk": state.mpk.hex().upper(),
            "key_version": state.key_version,
            "terminal_id": state.terminal_id.hex().upper(),
            "serial": state.serial,
        }

    @staticmethod
    def state_from_json(obj: Mapping[str, Any]) -> PsamState:
        exact_keys(obj, {"mpk", "key_version", "terminal_id", "serial"})
        return PsamState(
            mpk=hex_field(obj, "mpk", lengths=(16,)),
            key_version=int_field(obj, "key_version", 0, 0xFF),
            terminal_id=hex_field(obj, "terminal_id", lengths=(6,)),
            serial=int_field(obj, "serial", 0, SERIAL_MAX),
        )
