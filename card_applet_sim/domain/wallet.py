"""The e-wallet applet: a PBOC ED/EP-style electronic purse (card.md §2-§4). EP only.

Amount refusals all happen at INITIALIZE. Any command clears an open INITIALIZE session, so
CREDIT/DEBIT must follow their INITIALIZE directly (our choice, as real cards do); CREDIT/DEBIT
consume the session whether they succeed or fail. Balance, counter, log record and the proof
for GET TRANSACTION PROVE change in one committed state.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from card_applet_sim.domain.applet import JsonObject, RandomSource, Reply, SelectReply
from card_applet_sim.domain.errors import CardImageError
from card_applet_sim.domain.image import exact_keys, hex_field, int_field
from paycore import pboc, tlv
from paycore.apdu import CommandApdu
from paycore.purse import (
    ALG_3DES,
    BALANCE_CEILING_FEN,
    EF15_LEN,
    EF16_LEN,
    KEY_INDEX,
    LOG_RECORD_LEN,
    LOG_RECORDS_MAX,
    PURCHASE_LIMIT_FEN,
    SFI_EF15,
    SFI_EF16,
    SFI_LOG,
    WALLET_FID,
    CreditForLoadRequest,
    DebitRequest,
    DebitResponse,
    InitLoadResponse,
    InitPurchaseResponse,
    InitRequest,
    LogRecord,
    ProveResponse,
)
from paycore.sw import APPLICATION_BLOCKED, SW, sw_pin_tries_left

COUNTER_MAX = 0xFFFF
PIN_TRIES_MAX = 3
PIN_BYTES_MIN, PIN_BYTES_MAX = 2, 6
Status = Literal["active", "blocked", "locked"]
STATUSES: tuple[Status, ...] = ("active", "blocked", "locked")
#: GP application life cycle (ota.md §1). An ISD-installed wallet starts empty (no EF15, EF16
#: or keys) and refuses every command with 6985 until STORE DATA completes it; INSTALLED is not
#: even selectable. GP's LOCKED bit is ``status == "blocked"``, orthogonal to the life cycle.
Life = Literal["installed", "selectable", "personalized"]
LIVES: tuple[Life, ...] = ("installed", "selectable", "personalized")
PROVE_TYPES = (pboc.TYPE_ED_LOAD, pboc.TYPE_EP_LOAD, pboc.TYPE_ED_PURCHASE, pboc.TYPE_EP_PURCHASE)


@dataclass(frozen=True, slots=True)
class Proof:
    """What GET TRANSACTION PROVE returns for the last transaction of a type."""

    tx_type: int
    counter: int  # the counter after the transaction (INITIALIZE value + 1)
    mac2: bytes
    tac: bytes


@dataclass(frozen=True, slots=True)
class WalletState:
    ef15: bytes
    ef16: bytes
    dpk: bytes
    dlk: bytes
    dtk: bytes
    key_version: int
    balance_fen: int
    online_counter: int  # the value the next INITIALIZE FOR LOAD returns
    offline_counter: int  # the value the next INITIALIZE FOR PURCHASE returns
    log: tuple[bytes, ...] = ()  # newest first, at most 10 records of 23 bytes
    proofs: tuple[Proof, ...] = ()  # the last load and the last purchase
    pin_bcd: bytes | None = None  # None: the PIN check for loads is off
    pin_tries_left: int = PIN_TRIES_MAX
    ceiling_fen: int = BALANCE_CEILING_FEN
    status: Status = "active"
    life: Life = "personalized"
    #: STORE DATA DGI 9001 matched the keys of DGI 8001 (always True once PERSONALIZED).
    keys_confirmed: bool = True

    def __post_init__(self) -> None:
        # Pair assertions: checked when written, checked again when read back from the image.
        assert self.life in LIVES
        if self.life == "personalized":
            assert len(self.ef15) == EF15_LEN and len(self.ef16) == EF16_LEN
            assert len(self.dpk) == len(self.dlk) == len(self.dtk) == 16
            assert self.keys_confirmed
        assert 0 <= self.balance_fen <= self.ceiling_fen
        assert 0 <= self.online_counter <= COUNTER_MAX
        assert 0 <= self.offline_counter <= COUNTER_MAX
        assert len(self.log) <= LOG_RECORDS_MAX
        assert all(len(r) == LOG_RECORD_LEN for r in self.log)


@dataclass(frozen=True, slots=True)
class _LoadSession:
    amount_fen: int
    terminal_id: bytes
    seslk: bytes
    counter: int
    old_balance_fen: int


@dataclass(frozen=True, slots=True)
class _PurchaseSession:
    amount_fen: int
    terminal_id: bytes
    random4: bytes
    counter: int


def _log_record(
    counter: int, amount_fen: int, tx_type: int, tid: bytes, d: bytes, t: bytes
) -> bytes:
    return LogRecord(counter, 0, amount_fen, tx_type, tid, d, t).encode()


def _with_proof(proofs: tuple[Proof, ...], proof: Proof) -> tuple[Proof, ...]:
    kind_is_load = proof.tx_type in (pboc.TYPE_ED_LOAD, pboc.TYPE_EP_LOAD)
    kept = tuple(
        p for p in proofs if (p.tx_type in (pboc.TYPE_ED_LOAD, pboc.TYPE_EP_LOAD)) != kind_is_load
    )
    return (*kept, proof)


class WalletApplet:
    type_name: ClassVar[str] = "wallet"
    fid: ClassVar[int | None] = WALLET_FID

    def __init__(self, aid: bytes, random_bytes: RandomSource) -> None:
        self._aid = aid
        self._random = random_bytes
        self._session: _LoadSession | _PurchaseSession | None = None
        self._pin_verified = False
        self._fci: tuple[bytes, bytes] | None = None

    # --- selection -----------------------------------------------------------------------

    def select(self, state: WalletState) -> SelectReply:
        self.deselect()
        if state.life == "installed":  # GP: not selectable before INSTALL [for make selectable]
            return SelectReply(Reply(SW.FILE_NOT_FOUND), selected=False)
        if state.status == "blocked":  # GP LOCKED by OTA (ota.md §1)
            return SelectReply(Reply(SW.SELECTED_FILE_INVALIDATED), selected=False)
        if state.status == "locked":
            return SelectReply(Reply(SW.APPLICATION_LOCKED), selected=True)
        if self._fci is None or self._fci[0] != state.ef15:
            proprietary = tlv.encode_one(0x9F08, b"\x01\x02") + tlv.encode_one(0x9F0C, state.ef15)
            fci = tlv.encode_one(
                0x6F, tlv.encode_one(0x84, self._aid) + tlv.encode_one(0xA5, proprietary)
            )
            self._fci = (state.ef15, fci)
        return SelectReply(Reply(SW.OK, self._fci[1]), selected=True)

    def deselect(self) -> None:
        self._session = None
        self._pin_verified = False

    # --- dispatch ------------------------------------------------------------------------

    def process(self, state: WalletState, c: CommandApdu) -> Reply:
        session, self._session = self._session, None  # any command ends an open session
        if c.cla & 0x0C:
            return Reply(SW.CLA_NOT_SUPPORTED)  # no secure messaging on the wallet
        if state.status == "blocked":
            return Reply(APPLICATION_BLOCKED)
        if state.life != "personalized":  # ota.md §1: not PERSONALIZED refuses with 6985
            return Reply(SW.CONDITIONS_NOT_SATISFIED)
        if not c.cla & 0x80:
            handler = _ISO.get(c.ins)
            if handler is None:
                return Reply(
                    SW.CLA_NOT_SUPPORTED if c.ins in _PROPRIETARY else SW.INS_NOT_SUPPORTED
                )
            if state.status == "locked" and c.ins == 0x20:
                return Reply(SW.APPLICATION_LOCKED)
            return handler(self, state, c)
        proprietary = _PROPRIETARY.get(c.ins)
        if proprietary is None:
            return Reply(SW.CLA_NOT_SUPPORTED if c.ins in _ISO else SW.INS_NOT_SUPPORTED)
        if state.status == "locked":
            return Reply(SW.APPLICATION_LOCKED)
        return proprietary(self, state, c, session)

    # --- ISO commands --------------------------------------------------------------------

    def _select_ef(self, state: WalletState, c: CommandApdu) -> Reply:
        return Reply(SW.FILE_NOT_FOUND)  # EFs are read by SFI only

    def _read_binary(self, state: WalletState, c: CommandApdu) -> Reply:
        if c.data:
            return Reply(SW.WRONG_LENGTH)
        if not c.p1 & 0x80 or c.p1 & 0x60:
            return Reply(SW.FILE_NOT_FOUND)  # no current EF: read by SFI
        sfi = c.p1 & 0x1F
        if sfi == SFI_EF15:
            content = state.ef15
        elif sfi == SFI_EF16:
            content = state.ef16
        else:
            return Reply(SW.FILE_NOT_FOUND)
        if c.p2 >= len(content):
            return Reply(SW.WRONG_P1P2_OFFSET)
        data = content[c.p2 :]
        return Reply(SW.OK, data[: c.le] if c.le is not None else data)

    def _read_record(self, state: WalletState, c: CommandApdu) -> Reply:
        if c.data:
            return Reply(SW.WRONG_LENGTH)
        if c.p2 & 0x07 != 0x04:
            return Reply(SW.WRONG_P1P2)
        if c.p2 >> 3 != SFI_LOG:
            return Reply(SW.FILE_NOT_FOUND)
        if c.p1 == 0 or c.p1 > LOG_RECORDS_MAX:
            return Reply(SW.WRONG_P1P2 if c.p1 == 0 else SW.RECORD_NOT_FOUND)
        if c.p1 > len(state.log):
            return Reply(SW.RECORD_NOT_FOUND)
        return Reply(SW.OK, state.log[c.p1 - 1])

    def _verify(self, state: WalletState, c: CommandApdu) -> Reply:
        if c.p1 != 0 or c.p2 != 0:
            return Reply(SW.WRONG_P1P2)
        if state.pin_bcd is None:
            return Reply(SW.REFERENCED_DATA_NOT_FOUND)
        if state.pin_tries_left == 0:
            return Reply(SW.AUTH_METHOD_BLOCKED)
        if not c.data:  # ISO 7816-4: VERIFY without data asks for the retry counter
            return Reply(SW.OK if self._pin_verified else sw_pin_tries_left(state.pin_tries_left))
        if not PIN_BYTES_MIN <= len(c.data) <= PIN_BYTES_MAX:
            return Reply(SW.WRONG_LENGTH)
        if hmac.compare_digest(c.data, state.pin_bcd):
            self._pin_verified = True
            if state.pin_tries_left == PIN_TRIES_MAX:
                return Reply(SW.OK)
            return Reply(SW.OK, state=replace(state, pin_tries_left=PIN_TRIES_MAX))
        self._pin_verified = False
        left = state.pin_tries_left - 1
        sw = SW.AUTH_METHOD_BLOCKED if left == 0 else sw_pin_tries_left(left)
        return Reply(sw, state=replace(state, pin_tries_left=left))

    # --- purse commands ------------------------------------------------------------------

    def _get_balance(self, state: WalletState, c: CommandApdu, _s: object) -> Reply:
        if c.p1 != 0x00 or c.p2 != 0x02:
            return Reply(SW.WRONG_P1P2)  # ED (P2 01) is not offered
        if c.data:
            return Reply(SW.WRONG_LENGTH)
        return Reply(SW.OK, state.balance_fen.to_bytes(4, "big"))

    def _initialize(self, state: WalletState, c: CommandApdu, _s: object) -> Reply:
        if c.p1 not in (0x00, 0x01) or c.p2 != 0x02:
            return Reply(SW.WRONG_P1P2)
        if len(c.data) != InitRequest.LEN:
            return Reply(SW.WRONG_LENGTH)
        req = InitRequest.decode(c.data)
        if req.key_index != KEY_INDEX:
            return Reply(SW.KEY_INDEX_NOT_FOUND)
        if c.p1 == 0x00:
            return self._initialize_load(state, req)
        return self._initialize_purchase(state, req)

    def _initialize_load(self, state: WalletState, req: InitRequest) -> Reply:
        if state.pin_bcd is not None and not self._pin_verified:
            return Reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        if (
            req.amount_fen == 0
            or state.balance_fen + req.amount_fen > state.ceiling_fen
            or state.online_counter >= COUNTER_MAX
        ):
            return Reply(SW.LIMIT_EXCEEDED)
        random4 = self._random(4)
        seslk = pboc.load_session_key(state.dlk, random4, state.online_counter)
        load = pboc.Load(req.amount_fen, req.terminal_id)
        mac1 = pboc.load_mac1(seslk, state.balance_fen, load)
        self._session = _LoadSession(
            req.amount_fen, req.terminal_id, seslk, state.online_counter, state.balance_fen
        )
        resp = InitLoadResponse(
            state.balance_fen, state.online_counter, state.key_version, ALG_3DES, random4, mac1
        )
        return Reply(SW.OK, resp.encode())

    def _initialize_purchase(self, state: WalletState, req: InitRequest) -> Reply:
        if req.amount_fen > state.balance_fen:
            return Reply(SW.INSUFFICIENT_BALANCE)
        if (
            req.amount_fen == 0
            or req.amount_fen >= PURCHASE_LIMIT_FEN
            or state.offline_counter >= COUNTER_MAX
        ):
            return Reply(SW.LIMIT_EXCEEDED)
        random4 = self._random(4)
        self._session = _PurchaseSession(
            req.amount_fen, req.terminal_id, random4, state.offline_counter
        )
        resp = InitPurchaseResponse(
            state.balance_fen, state.offline_counter, 0, state.key_version, ALG_3DES, random4
        )
        return Reply(SW.OK, resp.encode())

    def _credit_for_load(self, state: WalletState, c: CommandApdu, session: object) -> Reply:
        if c.p1 != 0x00 or c.p2 != 0x00:
            return Reply(SW.WRONG_P1P2)
        if len(c.data) != CreditForLoadRequest.LEN:
            return Reply(SW.WRONG_LENGTH)
        if not isinstance(session, _LoadSession):
            return Reply(SW.CONDITIONS_NOT_SATISFIED)
        req = CreditForLoadRequest.decode(c.data)
        load = pboc.Load(session.amount_fen, session.terminal_id)
        expected = pboc.load_mac2(session.seslk, load, req.date_bcd, req.time_bcd)
        if not hmac.compare_digest(expected, req.mac2):
            return Reply(SW.MAC_INVALID)
        assert session.old_balance_fen == state.balance_fen
        assert session.counter == state.online_counter
        new_balance = state.balance_fen + session.amount_fen
        tac = pboc.load_tac(
            state.dtk, new_balance, session.counter, load, req.date_bcd, req.time_bcd
        )
        counter_after = session.counter + 1
        record = _log_record(
            counter_after, session.amount_fen, load.tx_type, session.terminal_id,
            req.date_bcd, req.time_bcd,
        )  # fmt: skip
        new_state = replace(
            state,
            balance_fen=new_balance,
            online_counter=counter_after,
            log=(record, *state.log)[:LOG_RECORDS_MAX],
            proofs=_with_proof(state.proofs, Proof(load.tx_type, counter_after, req.mac2, tac)),
        )
        return Reply(SW.OK, tac, state=new_state)

    def _debit_for_purchase(self, state: WalletState, c: CommandApdu, session: object) -> Reply:
        if c.p1 != 0x01 or c.p2 != 0x00:
            return Reply(SW.WRONG_P1P2)
        if len(c.data) != DebitRequest.LEN:
            return Reply(SW.WRONG_LENGTH)
        if not isinstance(session, _PurchaseSession):
            return Reply(SW.CONDITIONS_NOT_SATISFIED)
        req = DebitRequest.decode(c.data)
        sespk = pboc.purchase_session_key(
            state.dpk, session.random4, session.counter, req.terminal_serial
        )
        purchase = pboc.Purchase(
            session.amount_fen, session.terminal_id, req.terminal_serial, req.date_bcd, req.time_bcd
        )
        if not hmac.compare_digest(pboc.purchase_mac1(sespk, purchase), req.mac1):
            return Reply(SW.MAC_INVALID)
        assert session.amount_fen <= state.balance_fen
        assert session.counter == state.offline_counter
        tac = pboc.purchase_tac(state.dtk, purchase)
        mac2 = pboc.purchase_mac2(sespk, session.amount_fen)
        counter_after = session.counter + 1
        record = _log_record(
            counter_after, session.amount_fen, purchase.tx_type, session.terminal_id,
            req.date_bcd, req.time_bcd,
        )  # fmt: skip
        new_state = replace(
            state,
            balance_fen=state.balance_fen - session.amount_fen,
            offline_counter=counter_after,
            log=(record, *state.log)[:LOG_RECORDS_MAX],
            proofs=_with_proof(state.proofs, Proof(purchase.tx_type, counter_after, mac2, tac)),
        )
        return Reply(SW.OK, DebitResponse(tac, mac2).encode(), state=new_state)

    def _get_transaction_prove(self, state: WalletState, c: CommandApdu, _s: object) -> Reply:
        if c.p1 != 0x00 or c.p2 not in PROVE_TYPES:
            return Reply(SW.WRONG_P1P2)
        if len(c.data) != 2:
            return Reply(SW.WRONG_LENGTH)
        counter = int.from_bytes(c.data, "big")
        for proof in state.proofs:
            if proof.tx_type == c.p2 and proof.counter == counter:
                return Reply(SW.OK, ProveResponse(proof.mac2, proof.tac).encode())
        return Reply(SW.MAC_UNAVAILABLE)

    # --- image codec ---------------------------------------------------------------------

    @staticmethod
    def state_to_json(state: Any) -> JsonObject:
        assert isinstance(state, WalletState)
        return {
            "ef15": state.ef15.hex().upper(),
            "ef16": state.ef16.hex().upper(),
            "dpk": state.dpk.hex().upper(),
            "dlk": state.dlk.hex().upper(),
            "dtk": state.dtk.hex().upper(),
            "key_version": state.key_version,
            "balance_fen": state.balance_fen,
            "ceiling_fen": state.ceiling_fen,
            "online_counter": state.online_counter,
            "offline_counter": state.offline_counter,
            "log": [r.hex().upper() for r in state.log],
            "proofs": [
                {
                    "type": p.tx_type,
                    "counter": p.counter,
                    "mac2": p.mac2.hex().upper(),
                    "tac": p.tac.hex().upper(),
                }
                for p in state.proofs
            ],
            "pin": state.pin_bcd.hex().upper() if state.pin_bcd is not None else None,
            "pin_tries_left": state.pin_tries_left,
            "status": state.status,
            "life": state.life,
            "keys_confirmed": state.keys_confirmed,
        }

    @staticmethod
    def state_from_json(obj: Mapping[str, Any]) -> WalletState:
        exact_keys(obj, _STATE_KEYS, _OPTIONAL_KEYS)
        life = obj.get("life", "personalized")  # images of version 1 without it: personalised
        if life not in LIVES:
            raise CardImageError(f"life: {life!r} is not one of {LIVES}")
        keys_confirmed = obj.get("keys_confirmed", True)
        if not isinstance(keys_confirmed, bool):
            raise CardImageError("keys_confirmed: expected true or false")
        # Before PERSONALIZED, EF15, EF16 and the keys may still be empty (not stored yet).
        empty = (0,) if life != "personalized" else ()
        ceiling = int_field(obj, "ceiling_fen", 1, 0xFFFFFFFF)
        raw_log = obj["log"]
        if not isinstance(raw_log, list) or len(raw_log) > LOG_RECORDS_MAX:
            raise CardImageError("log: expected a list of at most 10 records")
        log = tuple(
            hex_field({f"log[{i}]": r}, f"log[{i}]", lengths=(LOG_RECORD_LEN,))
            for i, r in enumerate(raw_log)
        )
        raw_proofs = obj["proofs"]
        if not isinstance(raw_proofs, list) or len(raw_proofs) > 2:
            raise CardImageError("proofs: expected a list of at most 2 entries")
        proofs = []
        for p in raw_proofs:
            if not isinstance(p, dict):
                raise CardImageError("proofs: entries must be objects")
            exact_keys(p, {"type", "counter", "mac2", "tac"})
            tx_type = int_field(p, "type", 0, 0xFF)
            if tx_type not in PROVE_TYPES:
                raise CardImageError(f"proofs: unknown transaction type {tx_type}")
            proofs.append(
                Proof(
                    tx_type,
                    int_field(p, "counter", 1, COUNTER_MAX),
                    hex_field(p, "mac2", "proofs", lengths=(4,)),
                    hex_field(p, "tac", "proofs", lengths=(4,)),
                )
            )
        pin = obj["pin"]
        status = obj["status"]
        if status not in STATUSES:
            raise CardImageError(f"status: {status!r} is not one of {STATUSES}")
        balance = int_field(obj, "balance_fen", 0, ceiling)
        return WalletState(
            ef15=hex_field(obj, "ef15", lengths=(*empty, EF15_LEN)),
            ef16=hex_field(obj, "ef16", lengths=(*empty, EF16_LEN)),
            dpk=hex_field(obj, "dpk", lengths=(*empty, 16)),
            dlk=hex_field(obj, "dlk", lengths=(*empty, 16)),
            dtk=hex_field(obj, "dtk", lengths=(*empty, 16)),
            key_version=int_field(obj, "key_version", 0, 0xFF),
            balance_fen=balance,
            online_counter=int_field(obj, "online_counter", 0, COUNTER_MAX),
            offline_counter=int_field(obj, "offline_counter", 0, COUNTER_MAX),
            log=log,
            proofs=tuple(proofs),
            pin_bcd=None if pin is None else hex_field(obj, "pin", lengths=range(2, 7)),
            pin_tries_left=int_field(obj, "pin_tries_left", 0, PIN_TRIES_MAX),
            ceiling_fen=ceiling,
            status=status,
            life=life,
            keys_confirmed=keys_confirmed,
        )


_STATE_KEYS = {
    "ef15", "ef16", "dpk", "dlk", "dtk", "key_version", "balance_fen", "ceiling_fen",
    "online_counter", "offline_counter", "log", "proofs", "pin", "pin_tries_left", "status",
}  # fmt: skip
_OPTIONAL_KEYS = frozenset({"life", "keys_confirmed"})

_ISO = {
    0xA4: WalletApplet._select_ef,
    0xB0: WalletApplet._read_binary,
    0xB2: WalletApplet._read_record,
    0x20: WalletApplet._verify,
}
_PROPRIETARY = {
    0x5C: WalletApplet._get_balance,
    0x50: WalletApplet._initialize,
    0x52: WalletApplet._credit_for_load,
    0x54: WalletApplet._debit_for_purchase,
    0x5A: WalletApplet._get_transaction_prove,
}
