"""The issuer security domain (ISD) of the simulated SIM, AID A000000151000000 (ota.md §1).

On the contact interface it is an applet like the others, selected by AID, answering GP
commands over SCP02 (levels 00, 01, 03) or SCP03 (00, 01, 03, 11, 13, 33): INITIALIZE UPDATE /
EXTERNAL AUTHENTICATE, then INSTALL, LOAD, STORE DATA, SET STATUS, DELETE, GET STATUS, PUT KEY
wrapped (CLA 84) as the session's level says; GET DATA (66 card data, E0 key information, C1
sequence counter) without a session. Over the air the same commands arrive in a secured packet
and run in an *OTA context* (below). It is the card's ``ContentManager``: the runtime hands it
the card's instances and commits the whole new instance tuple it answers with, in one commit
(ADR 0002, 0005), so INSTALL, DELETE and STORE DATA into a wallet are atomic like any command.

API for the OTA receiver (card_applet_sim/domain/ota_receiver.py) -- pure functions and two
adapters to the receiver's protocols; the receiver commits what they return:

- ``IsdScp80Keys()`` (the receiver's ``Scp80KeyStore``): ``keys(image, kvn) -> OtaKeys | None``
  (KIc, KID of SCP80 set 01-0F), ``counter(image, kvn) -> int`` (the last counter accepted),
  ``with_counter(image, kvn, counter) -> CardImage``.
- ``IsdOtaTarget()`` (the receiver's ``RemoteTarget`` for TAR 000000): ``minimum_level``
  (ota.md §2: ciphering + CC + counter higher) and ``execute(image, apdus, context) ->
  (responses, image)``: the C-APDUs run in order in the OTA context of ``context.key_version``
  (the DEK is key 3 of that SCP80 set, 3DES-ECB for a DES set, AES-CBC zero IV for an AES set)
  and stop after the first that does not answer 9000/61xx (TS 102 226 §5.1).
- Underneath, for any other caller (the OTA server's tests, a bench): ``ota_security(state,
  kvn, ciphered=True) -> OtaSecurity | None`` and ``run_remote(instances, apdus, security) ->
  (responses, instances)``; ``RemoteScript(security).process(instances, apdu) -> Reply`` runs
  one command at a time (``Reply.instances`` is the new content, None when unchanged).
  ``find_isd(instances) -> Instance | None`` finds the ISD's instance.

One script (one secured packet) is one GP "session" (our choice, docs/ota-isd.md): INSTALL [for
personalization] and the STORE DATA blocks it governs, and INSTALL [for load] with its LOAD
blocks, belong in the same packet; INITIALIZE UPDATE and EXTERNAL AUTHENTICATE have no meaning
over the air (6985). A packet counts as command-encrypted (a PIN DGI may travel) when ciphered.

Status words: no session 6982; a C-MAC or cryptogram that fails 6982 (the session closes; the
host cryptogram of EXTERNAL AUTHENTICATE 6300); security level too low 6982; unknown AID 6A88;
wrong data 6A80; wrong KCV in PUT KEY 9485; memory full 6A84; not allowed now 6985. Our
choices where ota.md is silent: docs/ota-isd.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from card_applet_sim.domain import wallet_perso
from card_applet_sim.domain.applet import JsonObject, RandomSource, Reply, SelectReply
from card_applet_sim.domain.image import INSTANCES_MAX, CardImage, Instance
from card_applet_sim.domain.isd_state import (
    APP_PARAMS_LEN_MAX,
    CARD_LIFE_CODES,
    COUNTER_MAX,
    ISD_TYPE_NAME,
    KEY_SETS_MAX,
    LOAD_FILES_MAX,
    AppRecord,
    CardLife,
    IsdState,
    KeyAlgorithm,
    KeySet,
    LoadFile,
    key_set_allowed,
    scp_of_new_kvn,
    state_from_json,
    state_to_json,
)
from card_applet_sim.domain.wallet import WalletState
from paycore import tlv
from paycore.apdu import CommandApdu, ResponseApdu
from paycore.crypto import mac_equal
from paycore.errors import DecodeError
from paycore.gp import commands as gp
from paycore.gp import scp02, scp03
from paycore.gp.channel import (
    C_DECRYPTION,
    C_MAC,
    CLA_SM,
    INS_EXTERNAL_AUTHENTICATE,
    INS_INITIALIZE_UPDATE,
    SecureChannelError,
)
from paycore.gp.dek import KCV_LEN, KEY_TYPE_AES, KEY_TYPE_DES, Dek, decode_key_component, kcv
from paycore.ota import remote_apdu
from paycore.ota.security import ISD_MINIMUM_LEVEL, KeyFamily, OtaKeys, SecurityLevel, Spi
from paycore.sw import SW

ISD_PRIVILEGES = bytes.fromhex("9EFE80")  # SD, card lock/terminate/reset, CVM, ... (GP §11.1.2)
LOAD_FILE_LEN_MAX = 1024
GET_STATUS_DATA_MAX = 200  # leaves room for R-ENC padding and an R-MAC in 256 bytes
OK_00 = b"\x00"  # GP: INSTALL, LOAD (last block) and DELETE answer one byte 00
_GP_SCP_OIDS = (
    bytes.fromhex("2A864886FC6B040215"),  # SCP02 i=15
    bytes.fromhex("2A864886FC6B040370"),  # SCP03 i=70
)


@dataclass(frozen=True, slots=True)
class Package:
    """A built-in executable load file of the simulator (ota.md §1) and its one module."""

    load_file_aid: bytes
    module_aid: bytes
    type_name: str


PACKAGES = (Package(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, "wallet"),)


def package(load_file_aid: bytes) -> Package | None:
    for p in PACKAGES:
        if p.load_file_aid == load_file_aid:
            return p
    return None


def load_file_hash(package_aid: bytes) -> bytes:
    """SHA-256 of the Load File Data Block of the load file naming ``package_aid``."""
    return hashlib.sha256(gp.load_file_data_block(gp.load_file(package_aid))).digest()


# --- transient work of a session or a script ------------------------------------------------


@dataclass
class _Load:
    load_file_aid: bytes | None  # from INSTALL [for load], if one came
    expected_hash: bytes
    data: bytearray = field(default_factory=bytearray)
    next_block: int = 0


@dataclass
class _Work:
    """What one secure channel session (or one remote script) is in the middle of."""

    perso_aid: bytes | None = None
    perso_block: int = 0
    load: _Load | None = None
    status_cursor: tuple[int, bytes, int] | None = None  # P1, AID prefix, next entry


@dataclass(frozen=True, slots=True)
class _Security:
    level: int  # GP security level bits (C_MAC, C_DECRYPTION, ...)
    dek: Dek = field(repr=False)


@dataclass(frozen=True, slots=True)
class OtaSecurity:
    """The security context of one secured packet (ota.md §1): the SCP80 key set that secured
    it and whether it was ciphered. Its DEK decrypts STORE DATA DGI 8001 and PUT KEY keys."""

    kvn: int
    dek: Dek = field(repr=False)
    ciphered: bool = True


def ota_security(state: IsdState, kvn: int, *, ciphered: bool = True) -> OtaSecurity | None:
    """The OTA context of SCP80 key set ``kvn``, None when the ISD holds no such set."""
    ks = state.key_set(kvn)
    if ks is None or ks.scp != "scp80":
        return None
    return OtaSecurity(kvn, ks.data_encryption(), ciphered)


def find_isd(instances: Sequence[Instance]) -> Instance | None:
    for inst in instances:
        if inst.type_name == ISD_TYPE_NAME:
            return inst
    return None


# --- the command engine, shared by the contact and the OTA paths ----------------------------


@dataclass
class _Ctx:
    isd_aid: bytes
    state: IsdState
    instances: tuple[Instance, ...]
    security: _Security | None  # None: not authenticated
    work: _Work

    def instance(self, aid: bytes) -> Instance | None:
        for inst in self.instances:
            if inst.aid == aid:
                return inst
        return None

    def content(
        self,
        state: IsdState | None = None,
        *,
        put: Instance | None = None,
        drop: frozenset[bytes] = frozenset(),
    ) -> tuple[Instance, ...]:
        """The card's instances with the ISD's new state, ``put`` added or replaced, and
        ``drop`` removed."""
        isd_state = self.state if state is None else state
        out = []
        for inst in self.instances:
            if inst.aid in drop:
                continue
            if inst.aid == self.isd_aid:
                out.append(Instance(inst.aid, inst.type_name, isd_state))
            elif put is not None and inst.aid == put.aid:
                out.append(put)
            else:
                out.append(inst)
        if put is not None and all(i.aid != put.aid for i in self.instances):
            out.append(put)
        return tuple(out)


def _execute(ctx: _Ctx, c: CommandApdu) -> Reply:
    """A plain (unwrapped) GP command to the ISD."""
    if c.ins == gp.INS_GET_DATA:
        return _get_data(ctx, c)
    handler = _COMMANDS.get(c.ins)
    if handler is None:
        return Reply(SW.INS_NOT_SUPPORTED)
    if c.cla & 0x80 != gp.CLA_GP:
        return Reply(SW.CLA_NOT_SUPPORTED)
    if ctx.security is None:
        return Reply(SW.SECURITY_STATUS_NOT_SATISFIED)
    if c.ins != gp.INS_GET_STATUS and not ctx.security.level & C_MAC:
        return Reply(SW.SECURITY_STATUS_NOT_SATISFIED)  # our choice: changes need a C-MAC
    life = ctx.state.card_life
    if life == "terminated":
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    if life == "card_locked" and not (
        c.ins == gp.INS_GET_STATUS or (c.ins == gp.INS_SET_STATUS and c.p1 == gp.SET_STATUS_ISD)
    ):
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    if c.ins != gp.INS_GET_STATUS:
        ctx.work.status_cursor = None
    return handler(ctx, c)


# --- GET DATA, GET STATUS ---------------------------------------------------------------------


def card_data() -> bytes:
    """GP Card Spec v2.3 Table H-1 (tag 66): the card recognition data (73)."""
    return tlv.encode_one(0x66, _recognition_data())


def _recognition_data() -> bytes:
    body = (
        tlv.encode_one(0x06, bytes.fromhex("2A864886FC6B01"))
        + tlv.encode_one(0x60, tlv.encode_one(0x06, bytes.fromhex("2A864886FC6B02020301")))
        + tlv.encode_one(0x63, tlv.encode_one(0x06, bytes.fromhex("2A864886FC6B03")))
        + b"".join(tlv.encode_one(0x64, tlv.encode_one(0x06, oid)) for oid in _GP_SCP_OIDS)
    )
    return tlv.encode_one(0x73, body)


def _get_data(ctx: _Ctx, c: CommandApdu) -> Reply:
    if c.data:
        return Reply(SW.WRONG_LENGTH)
    tag = (c.p1 << 8) | c.p2
    if tag == 0x0066:
        return Reply(SW.OK, card_data())
    if tag == 0x00E0:  # GP §11.3.3.1: key information template, C0 per key
        infos = b"".join(
            tlv.encode_one(0xC0, bytes([key_id, ks.kvn, ks.key_type, len(ks.enc)]))
            for ks in ctx.state.key_sets
            for key_id in (1, 2, 3)
        )
        return Reply(SW.OK, tlv.encode_one(0xE0, infos))
    if tag == 0x00C1:  # sequence counter of the default (first secure channel) key set
        ks = ctx.state.channel_key_set(0x00)
        if ks is None:
            return Reply(SW.REFERENCED_DATA_NOT_FOUND)
        width = 2 if ks.scp == "scp02" else 3
        return Reply(SW.OK, tlv.encode_one(0xC1, ks.counter.to_bytes(width, "big")))
    return Reply(SW.REFERENCED_DATA_NOT_FOUND)


def _entries(ctx: _Ctx, subset: int, prefix: bytes) -> list[gp.RegistryEntry]:
    state = ctx.state
    if subset == gp.STATUS_ISD:
        entries = [gp.RegistryEntry(ctx.isd_aid, CARD_LIFE_CODES[state.card_life], ISD_PRIVILEGES)]
    elif subset == gp.STATUS_APPLICATIONS:
        entries = []
        for inst in ctx.instances:
            if inst.aid == ctx.isd_aid:
                continue
            record = state.app(inst.aid)
            life = (
                wallet_perso.life_cycle(inst.state)
                if isinstance(inst.state, WalletState)
                else gp.APP_SELECTABLE
            )
            entries.append(
                gp.RegistryEntry(
                    inst.aid,
                    life,
                    record.privileges if record else bytes(3),
                    record.load_file_aid if record else None,
                    (),
                    ctx.isd_aid,
                )
            )
    else:
        with_modules = subset == gp.STATUS_LOAD_FILES_AND_MODULES
        entries = []
        for f in state.load_files:
            pkg = package(f.aid)
            modules = (pkg.module_aid,) if pkg and with_modules else ()
            entries.append(gp.RegistryEntry(f.aid, gp.ELF_LOADED, None, None, modules, ctx.isd_aid))
    return [e for e in entries if e.aid.startswith(prefix)]


def _get_status(ctx: _Ctx, c: CommandApdu) -> Reply:
    subset = c.p1
    if subset not in (
        gp.STATUS_ISD,
        gp.STATUS_APPLICATIONS,
        gp.STATUS_LOAD_FILES,
        gp.STATUS_LOAD_FILES_AND_MODULES,
    ) or c.p2 not in (gp.STATUS_TLV_FORMAT, gp.STATUS_TLV_FORMAT | gp.STATUS_NEXT):
        return Reply(SW.WRONG_P1P2)
    try:
        prefix = gp.decode_status_criteria(c.data)
    except DecodeError:
        return Reply(SW.WRONG_DATA)
    start = 0
    if c.p2 & gp.STATUS_NEXT:
        cursor = ctx.work.status_cursor
        if cursor is None or cursor[:2] != (subset, prefix):
            return Reply(SW.CONDITIONS_NOT_SATISFIED)
        start = cursor[2]
    ctx.work.status_cursor = None
    entries = _entries(ctx, subset, prefix)[start:]
    if not entries:
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    out, taken = b"", 0
    for entry in entries:
        raw = entry.encode()
        if taken and len(out) + len(raw) > GET_STATUS_DATA_MAX:
            break
        out += raw
        taken += 1
    if taken < len(entries):
        ctx.work.status_cursor = (subset, prefix, start + taken)
        return Reply(gp.SW_MORE_DATA, out)
    return Reply(SW.OK, out)


# --- SET STATUS, DELETE ----------------------------------------------------------------------

#: GP §5.1.1: the card life cycle moves forward only, except CARD_LOCKED back to SECURED.
_CARD_MOVES: dict[CardLife, tuple[CardLife, ...]] = {
    "op_ready": ("initialized", "secured", "terminated"),
    "initialized": ("secured", "terminated"),
    "secured": ("card_locked", "terminated"),
    "card_locked": ("secured", "terminated"),
    "terminated": (),
}
_CARD_LIFE_BY_CODE = {code: life for life, code in CARD_LIFE_CODES.items()}


def _set_status(ctx: _Ctx, c: CommandApdu) -> Reply:
    if c.p1 == gp.SET_STATUS_ISD:
        if c.data not in (b"", ctx.isd_aid):
            return Reply(SW.WRONG_DATA)
        target = _CARD_LIFE_BY_CODE.get(c.p2)
        if target is None:
            return Reply(SW.WRONG_P1P2)
        if target == ctx.state.card_life:
            return Reply(SW.OK)
        if target not in _CARD_MOVES[ctx.state.card_life]:
            return Reply(SW.CONDITIONS_NOT_SATISFIED)
        new_state = replace(ctx.state, card_life=target)
        return Reply(SW.OK, instances=ctx.content(new_state))
    if c.p1 != gp.SET_STATUS_APPLICATION:
        return Reply(SW.WRONG_P1P2)
    if c.p2 not in (gp.APP_LOCKED, 0x00):
        return Reply(SW.WRONG_P1P2)
    if not gp.AID_LEN_MIN <= len(c.data) <= gp.AID_LEN_MAX:
        return Reply(SW.WRONG_DATA)
    if c.data == ctx.isd_aid:
        return Reply(SW.CONDITIONS_NOT_SATISFIED)  # the ISD's state is the card's: P1 80
    inst = ctx.instance(c.data)
    if inst is None:
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    if not isinstance(inst.state, WalletState):
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    sw, new = wallet_perso.set_locked(inst.state, c.p2 == gp.APP_LOCKED)
    if new is None:
        return Reply(sw)
    return Reply(sw, instances=ctx.content(put=Instance(inst.aid, inst.type_name, new)))


def _delete(ctx: _Ctx, c: CommandApdu) -> Reply:
    if c.p1 != 0x00 or c.p2 not in (0x00, 0x80):
        return Reply(SW.WRONG_P1P2)
    try:
        aid = gp.decode_delete(c.data)
    except DecodeError:
        return Reply(SW.WRONG_DATA)
    state = ctx.state
    if aid == ctx.isd_aid:
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    if ctx.instance(aid) is not None:
        new_state = replace(state, apps=tuple(a for a in state.apps if a.aid != aid))
        return Reply(SW.OK, OK_00, instances=ctx.content(new_state, drop=frozenset({aid})))
    if state.load_file(aid) is None:
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    dependents = frozenset(
        i.aid for i in ctx.instances if i.aid != ctx.isd_aid and _comes_from(ctx, i, aid)
    )
    if dependents and c.p2 != 0x80:  # GP §11.2: P2 80 deletes the load file and its apps
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    new_state = replace(
        state,
        load_files=tuple(f for f in state.load_files if f.aid != aid),
        apps=tuple(a for a in state.apps if a.aid not in dependents),
    )
    return Reply(SW.OK, OK_00, instances=ctx.content(new_state, drop=dependents))


def _comes_from(ctx: _Ctx, inst: Instance, load_file_aid: bytes) -> bool:
    """Whether an instance was installed from that load file (by its registry entry, or by
    its type for instances issued directly, without an entry)."""
    record = ctx.state.app(inst.aid)
    if record is not None:
        return record.load_file_aid == load_file_aid
    pkg = package(load_file_aid)
    return pkg is not None and inst.type_name == pkg.type_name


# --- INSTALL, LOAD ---------------------------------------------------------------------------


def _install(ctx: _Ctx, c: CommandApdu) -> Reply:
    if c.p2 != 0x00:
        return Reply(SW.WRONG_P1P2)
    if c.p1 not in (
        gp.INSTALL_FOR_LOAD,
        gp.INSTALL_FOR_INSTALL,
        gp.INSTALL_FOR_INSTALL | gp.INSTALL_FOR_MAKE_SELECTABLE,
        gp.INSTALL_FOR_MAKE_SELECTABLE,
        gp.INSTALL_FOR_PERSONALIZATION,
    ):
        return Reply(SW.WRONG_P1P2)
    try:
        request = gp.decode_install(c.p1, c.data)
    except DecodeError:
        return Reply(SW.WRONG_DATA)
    if isinstance(request, gp.InstallForLoad):
        return _install_for_load(ctx, request)
    if isinstance(request, gp.InstallForInstall):
        return _install_for_install(ctx, request, c.p1 & gp.INSTALL_FOR_MAKE_SELECTABLE != 0)
    inst = ctx.instance(request.aid)
    if inst is None:
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    if not isinstance(inst.state, WalletState):
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    if c.p1 == gp.INSTALL_FOR_MAKE_SELECTABLE:
        sw, new = wallet_perso.make_selectable(inst.state)
        if new is None:
            return Reply(sw)
        return Reply(
            SW.OK, OK_00, instances=ctx.content(put=Instance(inst.aid, inst.type_name, new))
        )
    sw = wallet_perso.personalisable(inst.state)
    if sw != SW.OK:
        return Reply(sw)
    ctx.work.perso_aid, ctx.work.perso_block = inst.aid, 0
    return Reply(SW.OK, OK_00)


def _install_for_load(ctx: _Ctx, request: gp.InstallForLoad) -> Reply:
    if package(request.load_file_aid) is None:
        return Reply(SW.WRONG_DATA)  # only the simulator's built-in packages can be loaded
    if request.sd_aid not in (b"", ctx.isd_aid):
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    if ctx.state.load_file(request.load_file_aid) is not None:
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    ctx.work.load = _Load(request.load_file_aid, request.load_file_hash)
    return Reply(SW.OK, OK_00)


def _install_for_install(ctx: _Ctx, request: gp.InstallForInstall, selectable: bool) -> Reply:
    pkg = package(request.load_file_aid)
    if pkg is None or ctx.state.load_file(request.load_file_aid) is None:
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    if request.module_aid != pkg.module_aid:
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    if ctx.instance(request.aid) is not None or ctx.state.load_file(request.aid) is not None:
        return Reply(SW.WRONG_DATA)  # our choice: an AID already on the card
    if request.privileges[0] & 0x80 or len(request.app_params) > APP_PARAMS_LEN_MAX:
        return Reply(SW.WRONG_DATA)  # no supplementary security domains
    if len(ctx.instances) >= INSTANCES_MAX or len(ctx.state.apps) >= INSTANCES_MAX - 1:
        return Reply(gp.SW_NOT_ENOUGH_MEMORY)
    record = AppRecord(
        request.aid, pkg.load_file_aid, pkg.module_aid, request.privileges, request.app_params
    )
    new_state = replace(
        ctx.state, apps=(*(a for a in ctx.state.apps if a.aid != request.aid), record)
    )
    wallet = wallet_perso.new_wallet(selectable=selectable)
    put = Instance(request.aid, pkg.type_name, wallet)
    return Reply(SW.OK, OK_00, instances=ctx.content(new_state, put=put))


_HASHES: dict[int, Callable[[bytes], Any]] = {
    20: hashlib.sha1,
    32: hashlib.sha256,
    48: hashlib.sha384,
    64: hashlib.sha512,
}


def _load(ctx: _Ctx, c: CommandApdu) -> Reply:
    if c.p1 not in (0x00, gp.LOAD_LAST_BLOCK):
        return Reply(SW.WRONG_P1P2)
    load = ctx.work.load
    if load is None:
        if c.p2 != 0:
            return Reply(SW.WRONG_P1P2)
        load = ctx.work.load = _Load(None, b"")  # our choice: INSTALL [for load] optional
    if c.p2 != load.next_block:
        return Reply(SW.WRONG_P1P2)
    if len(load.data) + len(c.data) > LOAD_FILE_LEN_MAX:
        ctx.work.load = None
        return Reply(gp.SW_NOT_ENOUGH_MEMORY)
    load.data += c.data
    load.next_block += 1
    if c.p1 != gp.LOAD_LAST_BLOCK:
        return Reply(SW.OK)
    ctx.work.load = None
    try:
        block = gp.load_file_data_block(bytes(load.data))
        aid = gp.load_file_package(block)
    except DecodeError:
        return Reply(SW.WRONG_DATA)
    if package(aid) is None or load.load_file_aid not in (None, aid):
        return Reply(SW.WRONG_DATA)
    if load.expected_hash:
        digest = _HASHES[len(load.expected_hash)](block).digest()
        if digest != load.expected_hash:
            return Reply(SW.WRONG_DATA)
    if ctx.state.load_file(aid) is not None:
        return Reply(SW.CONDITIONS_NOT_SATISFIED)
    if len(ctx.state.load_files) >= LOAD_FILES_MAX:
        return Reply(gp.SW_NOT_ENOUGH_MEMORY)
    loaded = LoadFile(aid, hashlib.sha256(block).digest())
    new_state = replace(ctx.state, load_files=(*ctx.state.load_files, loaded))
    return Reply(SW.OK, OK_00, instances=ctx.content(new_state))


# --- STORE DATA, PUT KEY ---------------------------------------------------------------------


def _store_data(ctx: _Ctx, c: CommandApdu) -> Reply:
    work = ctx.work
    assert ctx.security is not None
    if work.perso_aid is None:
        return Reply(SW.CONDITIONS_NOT_SATISFIED)  # no INSTALL [for personalization]
    structure, encryption = c.p1 & 0x18, c.p1 & gp.STORE_ENCRYPTED
    if structure != gp.STORE_DGI_FORMAT or encryption not in (0x00, gp.STORE_ENCRYPTED):
        return Reply(SW.WRONG_P1P2)
    if c.p1 & 0x06 or c.p2 != work.perso_block:
        return Reply(SW.WRONG_P1P2)
    try:
        dgis = gp.decode_dgis(c.data)
    except DecodeError:
        return Reply(SW.WRONG_DATA)
    inst = ctx.instance(work.perso_aid)
    if inst is None or not isinstance(inst.state, WalletState):
        work.perso_aid = None
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    last = bool(c.p1 & gp.STORE_LAST_BLOCK)
    sw, new = wallet_perso.store_data(
        inst.state,
        dgis,
        dek=ctx.security.dek,
        encrypted_block=encryption == gp.STORE_ENCRYPTED,
        last_block=last,
        confidential=bool(ctx.security.level & C_DECRYPTION),
    )
    if new is None:
        return Reply(sw)
    work.perso_block += 1
    if last:
        work.perso_aid = None
    return Reply(SW.OK, instances=ctx.content(put=Instance(inst.aid, inst.type_name, new)))


def _put_key(ctx: _Ctx, c: CommandApdu) -> Reply:
    assert ctx.security is not None
    if c.p2 != gp.PUT_KEY_P2_SET:
        return Reply(SW.WRONG_P1P2)
    try:
        request = gp.PutKeyData.decode(c.data)
    except DecodeError:
        return Reply(SW.WRONG_DATA)
    state, old_kvn, new_kvn = ctx.state, c.p1, request.new_kvn
    scp = scp_of_new_kvn(new_kvn)
    old = state.key_set(old_kvn) if old_kvn else None
    if old_kvn and old is None:
        return Reply(SW.REFERENCED_DATA_NOT_FOUND)
    if scp is None or len(request.components) != 3:
        return Reply(SW.WRONG_DATA)
    if new_kvn != old_kvn and state.key_set(new_kvn) is not None:
        return Reply(SW.WRONG_DATA)  # that KVN names another set
    key_type = request.components[0].key_type
    algorithm: KeyAlgorithm = "3des" if key_type == KEY_TYPE_DES else "aes"
    if key_type not in (KEY_TYPE_DES, KEY_TYPE_AES) or any(
        k.key_type != key_type or len(k.kcv) != KCV_LEN for k in request.components
    ):
        return Reply(SW.WRONG_DATA)
    try:
        keys = [decode_key_component(ctx.security.dek, k.block) for k in request.components]
    except (DecodeError, ValueError):
        return Reply(SW.WRONG_DATA)
    if len({len(k) for k in keys}) != 1 or not key_set_allowed(scp, algorithm, len(keys[0])):
        return Reply(SW.WRONG_DATA)
    kcvs = [kcv(key_type, k) for k in keys]
    checks = [mac_equal(a, b.kcv) for a, b in zip(kcvs, request.components, strict=True)]
    if not all(checks):
        return Reply(gp.SW_INVALID_KCV)
    if old is None and len(state.key_sets) >= KEY_SETS_MAX:
        return Reply(gp.SW_NOT_ENOUGH_MEMORY)
    # Our choice: a set replaced under the same KVN and protocol keeps its counter, so an
    # SCP80 counter (and an SCP03 challenge sequence) never goes backwards for a KVN.
    counter = old.counter if old is not None and old.kvn == new_kvn and old.scp == scp else 0
    new_set = KeySet(new_kvn, scp, algorithm, keys[0], keys[1], keys[2], counter)
    new_state = state.with_key_set(new_set, replacing=old_kvn or None)
    return Reply(SW.OK, gp.put_key_response(new_kvn, kcvs), instances=ctx.content(new_state))


_COMMANDS: dict[int, Callable[[_Ctx, CommandApdu], Reply]] = {
    gp.INS_GET_STATUS: _get_status,
    gp.INS_SET_STATUS: _set_status,
    gp.INS_DELETE: _delete,
    gp.INS_INSTALL: _install,
    gp.INS_LOAD: _load,
    gp.INS_STORE_DATA: _store_data,
    gp.INS_PUT_KEY: _put_key,
}


# --- the applet on the contact interface ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Handshake:
    """INITIALIZE UPDATE answered; EXTERNAL AUTHENTICATE must follow at once."""

    key_set: KeySet
    host_challenge: bytes
    card_challenge: bytes
    sequence: int
    keys02: scp02.SessionKeys | None
    keys03: scp03.SessionKeys | None


@dataclass
class _Session:
    channel: scp02.Channel | scp03.Channel
    dek: Dek = field(repr=False)

    @property
    def level(self) -> int:
        return self.channel.level


class IsdApplet:
    """The ISD on the contact interface. Transient state: the handshake, the open secure
    channel session and the work in progress (personalisation target, LOAD blocks), all lost on
    reset, deselection, a new INITIALIZE UPDATE or a failed C-MAC."""

    type_name: ClassVar[str] = ISD_TYPE_NAME
    fid: ClassVar[int | None] = None

    def __init__(self, aid: bytes, random_bytes: RandomSource) -> None:
        self._aid = aid
        self._random = random_bytes
        self._handshake: _Handshake | None = None
        self._session: _Session | None = None
        self._work = _Work()

    # --- selection -----------------------------------------------------------------------

    def select(self, state: IsdState) -> SelectReply:
        self.deselect()
        proprietary = _recognition_data() + tlv.encode_one(0x9F65, b"\xff")  # max Lc
        fci = tlv.encode_one(
            0x6F, tlv.encode_one(0x84, self._aid) + tlv.encode_one(0xA5, proprietary)
        )
        return SelectReply(Reply(SW.OK, fci), selected=True)

    def deselect(self) -> None:
        self._handshake = None
        self._session = None
        self._work = _Work()

    def admits(self, state: IsdState, aid: bytes) -> bool:
        return state.card_life not in ("card_locked", "terminated")

    def process(self, state: IsdState, c: CommandApdu) -> Reply:
        """Reached only for SELECT by FID of an EF inside the selected ISD (the runtime hands
        every other command to ``process_content``): the ISD has no EFs."""
        return Reply(SW.FILE_NOT_FOUND)

    # --- commands ------------------------------------------------------------------------

    def process_content(
        self, state: IsdState, c: CommandApdu, instances: tuple[Instance, ...]
    ) -> Reply:
        handshake, self._handshake = self._handshake, None
        if c.cla & 0x08:
            return Reply(SW.CLA_NOT_SUPPORTED)  # ISO secure messaging is not offered
        if c.ins in (INS_INITIALIZE_UPDATE, INS_EXTERNAL_AUTHENTICATE):
            if not c.cla & 0x80:
                return Reply(SW.CLA_NOT_SUPPORTED)
            if c.ins == INS_EXTERNAL_AUTHENTICATE:
                return self._external_authenticate(handshake, c)
            if not c.cla & CLA_SM:
                return self._initialize_update(state, c)
        session = self._session
        secured = bool(c.cla & CLA_SM)
        if secured:
            if session is None:
                return Reply(SW.SECURITY_STATUS_NOT_SATISFIED)
            try:
                c = self._unwrap(session, c)
            except SecureChannelError:
                self._close()
                return Reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        elif session is not None and session.level & C_MAC and c.ins != gp.INS_GET_DATA:
            self._close()  # GP: a command without the level's protection ends the session
            return Reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        ctx = _Ctx(
            self._aid,
            state,
            instances,
            _Security(session.level, session.dek) if session is not None else None,
            self._work,
        )
        reply = _execute(ctx, c)
        if secured and self._session is session and session is not None:
            channel = session.channel
            if isinstance(channel, scp03.Channel):
                data = scp03.wrap_response(channel, reply.data, reply.sw)
                reply = replace(reply, data=data)
        return reply

    def _close(self) -> None:
        self._session = None
        self._work = _Work()

    def _unwrap(self, session: _Session, c: CommandApdu) -> CommandApdu:
        channel = session.channel
        if isinstance(channel, scp02.Channel):
            plain, session.channel = scp02.unwrap(channel, c)
        else:
            plain, session.channel = scp03.unwrap(channel, c)
        return plain

    def _initialize_update(self, state: IsdState, c: CommandApdu) -> Reply:
        self._close()  # GP: INITIALIZE UPDATE aborts any session
        if state.card_life == "terminated":
            return Reply(SW.CONDITIONS_NOT_SATISFIED)
        if c.p2 != 0x00:
            return Reply(SW.WRONG_P1P2)
        if len(c.data) != 8:
            return Reply(SW.WRONG_LENGTH)
        ks = state.channel_key_set(c.p1)
        if ks is None:
            return Reply(SW.REFERENCED_DATA_NOT_FOUND)
        sequence = ks.counter + 1
        if sequence > COUNTER_MAX[ks.scp]:
            return Reply(SW.CONDITIONS_NOT_SATISFIED)  # the key set is used up
        if ks.scp == "scp02":
            challenge = self._random(scp02.CARD_CHALLENGE_LEN)
            r02, keys02 = scp02.card_initialize_update(
                ks.static_keys,
                kvn=ks.kvn,
                key_div_data=state.key_div_data,
                sequence=sequence,
                card_challenge=challenge,
                host_challenge=c.data,
            )
            response, keys03 = r02.encode(), None
        else:
            r03, keys03 = scp03.card_initialize_update(
                ks.static_keys,
                kvn=ks.kvn,
                key_div_data=state.key_div_data,
                sequence=sequence,
                sd_aid=self._aid,
                host_challenge=c.data,
            )
            challenge, response, keys02 = r03.card_challenge, r03.encode(), None
        # Amendment D §6.2.2.1: the sequence counter moves with every card challenge, so a
        # recorded session can never be replayed; committed before the response leaves.
        self._handshake = _Handshake(ks, c.data, challenge, sequence, keys02, keys03)
        new_state = state.with_key_set(replace(ks, counter=sequence))
        return Reply(SW.OK, response, state=new_state)

    def _external_authenticate(self, handshake: _Handshake | None, c: CommandApdu) -> Reply:
        self._close()
        if handshake is None:
            return Reply(SW.CONDITIONS_NOT_SATISFIED)  # no INITIALIZE UPDATE just before
        levels = scp02.LEVELS if handshake.keys02 is not None else scp03.LEVELS
        if c.p1 not in levels or c.p2 != 0x00:
            return Reply(SW.WRONG_P1P2)
        try:
            if handshake.keys02 is not None:
                channel: scp02.Channel | scp03.Channel = scp02.check_external_authenticate(
                    handshake.keys02,
                    handshake.sequence,
                    handshake.card_challenge,
                    handshake.host_challenge,
                    c,
                )
                dek = Dek("3des-ecb", handshake.keys02.s_dek)
            else:
                assert handshake.keys03 is not None
                channel = scp03.check_external_authenticate(
                    handshake.keys03, handshake.host_challenge, handshake.card_challenge, c
                )
                dek = handshake.key_set.data_encryption()
        except SecureChannelError:
            return Reply(gp.SW_AUTHENTICATION_FAILED)
        self._session = _Session(channel, dek)
        return Reply(SW.OK)

    # --- image codec ---------------------------------------------------------------------

    @staticmethod
    def state_to_json(state: Any) -> JsonObject:
        return state_to_json(state)

    @staticmethod
    def state_from_json(obj: Any) -> IsdState:
        return state_from_json(obj)


# --- the OTA path ---------------------------------------------------------------------------


class RemoteScript:
    """One script of remote C-APDUs (one secured packet) run against the ISD in an OTA context
    (ota.md §1-§2). Commands are plain (CLA 80 or 00, no secure messaging: the packet's own
    security covers them); the script's work (personalisation target, LOAD blocks) lasts until
    the object is dropped."""

    def __init__(self, security: OtaSecurity) -> None:
        level = C_MAC | (C_DECRYPTION if security.ciphered else 0)
        self._security = _Security(level, security.dek)
        self._work = _Work()

    def process(self, instances: tuple[Instance, ...], apdu: CommandApdu) -> Reply:
        """One command; ``Reply.instances`` is the card's new content (None: unchanged)."""
        isd = find_isd(instances)
        if isd is None or not isinstance(isd.state, IsdState):
            return Reply(SW.FILE_NOT_FOUND)
        if apdu.cla & (CLA_SM | 0x08):
            return Reply(SW.CLA_NOT_SUPPORTED)
        if apdu.ins in (INS_INITIALIZE_UPDATE, INS_EXTERNAL_AUTHENTICATE):
            return Reply(SW.CONDITIONS_NOT_SATISFIED)  # the secured packet is the channel
        ctx = _Ctx(isd.aid, isd.state, instances, self._security, self._work)
        return _execute(ctx, apdu)


def run_remote(
    instances: tuple[Instance, ...], apdus: Sequence[CommandApdu], security: OtaSecurity
) -> tuple[tuple[ResponseApdu, ...], tuple[Instance, ...]]:
    """Run a script in order, stopping after the first command that does not answer 9000 or
    61xx (TS 102 226 §5.1); the responses of the commands run and the resulting content."""
    script = RemoteScript(security)

    def step(
        content: tuple[Instance, ...], apdu: CommandApdu
    ) -> tuple[ResponseApdu, tuple[Instance, ...]]:
        reply = script.process(content, apdu)
        data = reply.data if reply.sw == SW.OK or reply.sw >> 8 in (0x61, 0x62, 0x63) else b""
        new = reply.instances if reply.instances is not None else content
        return ResponseApdu(data, reply.sw), new

    return remote_apdu.run_commands(apdus, instances, step)


class _PacketContext(Protocol):
    """What the ISD reads of the receiver's OtaContext (ota_receiver.OtaContext)."""

    @property
    def key_version(self) -> int: ...

    @property
    def spi(self) -> Spi: ...


class IsdOtaTarget:
    """The ISD as the OTA receiver's ``RemoteTarget`` for TAR 000000."""

    @property
    def minimum_level(self) -> SecurityLevel:
        return ISD_MINIMUM_LEVEL

    def execute(
        self, image: CardImage, apdus: Sequence[CommandApdu], context: _PacketContext
    ) -> tuple[Sequence[ResponseApdu], CardImage]:
        """The responses of the commands run and the image with every effect."""
        isd = find_isd(image.instances)
        security = (
            ota_security(isd.state, context.key_version, ciphered=context.spi.ciphered)
            if isd is not None and isinstance(isd.state, IsdState)
            else None
        )
        if security is None:  # the receiver checked the set exists; be safe anyway
            return (ResponseApdu(b"", SW.CONDITIONS_NOT_SATISFIED),), image
        responses, instances = run_remote(image.instances, apdus, security)
        return responses, replace(image, instances=instances)


class IsdScp80Keys:
    """The ISD's SCP80 key sets as the OTA receiver's ``Scp80KeyStore``."""

    def keys(self, image: CardImage, key_version: int) -> OtaKeys | None:
        ks = self._set(image, key_version)
        if ks is None:
            return None
        family = KeyFamily.DES if ks.algorithm == "3des" else KeyFamily.AES
        return OtaKeys(family, ks.enc, ks.mac)

    def counter(self, image: CardImage, key_version: int) -> int:
        ks = self._set(image, key_version)
        return ks.counter if ks is not None else 0

    def with_counter(self, image: CardImage, key_version: int, counter: int) -> CardImage:
        isd = find_isd(image.instances)
        ks = self._set(image, key_version)
        assert isd is not None and isinstance(isd.state, IsdState) and ks is not None
        new_state = isd.state.with_key_set(replace(ks, counter=counter))
        return replace(
            image,
            instances=tuple(
                Instance(i.aid, i.type_name, new_state) if i.aid == isd.aid else i
                for i in image.instances
            ),
        )

    @staticmethod
    def _set(image: CardImage, key_version: int) -> KeySet | None:
        isd = find_isd(image.instances)
        if isd is None or not isinstance(isd.state, IsdState):
            return None
        ks = isd.state.key_set(key_version)
        return ks if ks is not None and ks.scp == "scp80" else None
