"""Codecs of the GlobalPlatform card management commands (GP Card Spec v2.3 §11; ota.md §1).

One codec serves both sides: the OTA server and local tools build commands with the functions
below, the simulated SIM's issuer security domain decodes them with the ``decode_*`` functions
(which raise DecodeError naming the field and offset). Identifiers of the ISD and of the wallet
package are ota.md's choices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from paycore import tlv
from paycore.apdu import DATA_LEN_MAX, CommandApdu
from paycore.errors import DecodeError, EncodeError
from paycore.gp.dek import KCV_LEN, Dek, encode_key_component, kcv

ISD_AID = bytes.fromhex("A000000151000000")
WALLET_PACKAGE_AID = bytes.fromhex("F04E464350415901")  # ota.md §1, our choice
WALLET_MODULE_AID = bytes.fromhex("F04E46435041590101")
AID_LEN_MIN, AID_LEN_MAX = 5, 16

CLA_GP = 0x80
INS_DELETE = 0xE4
INS_GET_DATA = 0xCA
INS_GET_STATUS = 0xF2
INS_INSTALL = 0xE6
INS_LOAD = 0xE8
INS_PUT_KEY = 0xD8
INS_SET_STATUS = 0xF0
INS_STORE_DATA = 0xE2

# GP Card Spec v2.3 §11.1.1: life cycle codings.
ELF_LOADED = 0x01
APP_INSTALLED = 0x03
APP_SELECTABLE = 0x07
APP_PERSONALIZED = 0x0F
APP_LOCKED = 0x80  # bit 8 on top of the state it locks
CARD_OP_READY = 0x01
CARD_INITIALIZED = 0x07
CARD_SECURED = 0x0F
CARD_LOCKED = 0x7F
CARD_TERMINATED = 0xFF

# INSTALL P1 (§11.5.2.1)
INSTALL_FOR_LOAD = 0x02
INSTALL_FOR_INSTALL = 0x04
INSTALL_FOR_MAKE_SELECTABLE = 0x08
INSTALL_FOR_PERSONALIZATION = 0x20
# GET STATUS P1 / P2 (§11.4.2)
STATUS_ISD = 0x80
STATUS_APPLICATIONS = 0x40
STATUS_LOAD_FILES = 0x20
STATUS_LOAD_FILES_AND_MODULES = 0x10
STATUS_TLV_FORMAT = 0x02
STATUS_NEXT = 0x01
# SET STATUS P1 (§11.10.2)
SET_STATUS_ISD = 0x80
SET_STATUS_APPLICATION = 0x40
# STORE DATA P1 (§11.11.2.1; ota.md §1)
STORE_LAST_BLOCK = 0x80
STORE_ENCRYPTED = 0x60
STORE_DGI_FORMAT = 0x08
# PUT KEY P2: key identifier 1, several keys (§11.8.2.2)
PUT_KEY_P2_SET = 0x81
LOAD_LAST_BLOCK = 0x80
LOAD_BLOCK_LEN_MAX = 240

# GP status words beyond ISO/IEC 7816-4 (GP Card Spec v2.3 §11.1.3).
SW_AUTHENTICATION_FAILED = 0x6300  # EXTERNAL AUTHENTICATE: host cryptogram
SW_MORE_DATA = 0x6310  # GET STATUS: more entries with P2 "next occurrence"
SW_NOT_ENOUGH_MEMORY = 0x6A84
SW_INVALID_KCV = 0x9485  # ota.md §1 (our choice, as in GP's status word table)


# --- length-value fields ----------------------------------------------------------------------


def _lv(value: bytes, what: str) -> bytes:
    if len(value) > 0xFF:
        raise EncodeError(f"{what} is {len(value)} bytes, a field holds at most 255")
    return bytes([len(value)]) + value


def _decode_lvs(raw: bytes, count: int, what: str) -> list[bytes]:
    fields, i = [], 0
    for n in range(count):
        if i >= len(raw):
            raise DecodeError(what, i, f"field {n + 1} of {count} is missing")
        length = raw[i]
        if i + 1 + length > len(raw):
            raise DecodeError(what, i, f"field {n + 1} length {length} runs past the end")
        fields.append(bytes(raw[i + 1 : i + 1 + length]))
        i += 1 + length
    if i != len(raw):
        raise DecodeError(what, i, f"{len(raw) - i} trailing bytes")
    return fields


def _aid(value: bytes, what: str, offset: int = 0) -> bytes:
    if not AID_LEN_MIN <= len(value) <= AID_LEN_MAX:
        raise DecodeError(what, offset, f"an AID of {len(value)} bytes (5-16 expected)")
    return value


def _check_aid(aid: bytes, what: str) -> bytes:
    if not AID_LEN_MIN <= len(aid) <= AID_LEN_MAX:
        raise EncodeError(f"{what}: an AID is 5-16 bytes, got {len(aid)}")
    return aid


def _command(ins: int, p1: int, p2: int, data: bytes, le: int | None = None) -> CommandApdu:
    if len(data) > DATA_LEN_MAX:
        raise EncodeError(f"command data of {len(data)} bytes does not fit a short APDU")
    return CommandApdu(CLA_GP, ins, p1, p2, data, le)


# --- INSTALL ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstallForLoad:
    load_file_aid: bytes
    sd_aid: bytes = b""
    load_file_hash: bytes = b""

    def encode(self) -> bytes:
        return (
            _lv(_check_aid(self.load_file_aid, "load file"), "load file AID")
            + _lv(self.sd_aid, "security domain AID")
            + _lv(self.load_file_hash, "load file hash")
            + _lv(b"", "load parameters")
            + _lv(b"", "load token")
        )


@dataclass(frozen=True, slots=True)
class InstallForInstall:
    load_file_aid: bytes
    module_aid: bytes
    aid: bytes
    privileges: bytes = b"\x00\x00\x00"  # always 3 bytes once decoded
    #: The application specific parameters (the value of C9 in the install parameters field).
    app_params: bytes = b""

    def encode(self) -> bytes:
        return (
            _lv(_check_aid(self.load_file_aid, "load file"), "load file AID")
            + _lv(_check_aid(self.module_aid, "module"), "module AID")
            + _lv(_check_aid(self.aid, "application"), "application AID")
            + _lv(self.privileges, "privileges")
            + _lv(tlv.encode_one(0xC9, self.app_params), "install parameters")
            + _lv(b"", "install token")
        )


@dataclass(frozen=True, slots=True)
class InstallTarget:
    """INSTALL [for make selectable] and [for personalization]: only the application AID."""

    aid: bytes

    def encode(self) -> bytes:
        return (
            b"\x00\x00"
            + _lv(_check_aid(self.aid, "application"), "application AID")
            + b"\x00\x00\x00"
        )


Install = InstallForLoad | InstallForInstall | InstallTarget


def _privileges(raw: bytes) -> bytes:
    if len(raw) == 1:
        return raw + b"\x00\x00"
    if len(raw) == 3:
        return raw
    raise DecodeError("INSTALL privileges", 0, f"{len(raw)} bytes (1 or 3 expected)")


def decode_install(p1: int, data: bytes) -> Install:
    """The data field of an INSTALL command of kind ``p1`` (02, 04, 08, 0C or 20)."""
    what = "INSTALL data"
    if p1 == INSTALL_FOR_LOAD:
        elf, sd, digest, _params, _token = _decode_lvs(data, 5, what)
        if sd and len(sd) not in range(AID_LEN_MIN, AID_LEN_MAX + 1):
            raise DecodeError(what, 0, "the security domain AID is not 5-16 bytes")
        if digest and len(digest) not in (20, 32, 48, 64):
            raise DecodeError(what, 0, f"a load file hash of {len(digest)} bytes")
        return InstallForLoad(_aid(elf, what), sd, digest)
    if p1 in (INSTALL_FOR_INSTALL, INSTALL_FOR_INSTALL | INSTALL_FOR_MAKE_SELECTABLE):
        elf, module, aid, privileges, params, _token = _decode_lvs(data, 6, what)
        try:
            objects = tlv.decode(params)
        except DecodeError as exc:
            raise DecodeError("install parameters", exc.offset, exc.reason) from None
        c9 = tlv.find(objects, 0xC9)
        if c9 is None:  # GP §11.5.2.3.6: C9 is mandatory, even empty
            raise DecodeError("install parameters", 0, "no application parameters (C9)")
        return InstallForInstall(
            _aid(elf, what), _aid(module, what), _aid(aid, what), _privileges(privileges), c9.value
        )
    if p1 in (INSTALL_FOR_MAKE_SELECTABLE, INSTALL_FOR_PERSONALIZATION):
        fields = _decode_lvs(data, 6, what)
        if fields[0] or fields[1]:
            raise DecodeError(what, 0, "load file and module AIDs must be empty")
        return InstallTarget(_aid(fields[2], what))
    raise DecodeError(what, 0, f"INSTALL kind {p1:02X} is not supported")


def install_for_load(load_file_aid: bytes, load_file_hash: bytes = b"") -> CommandApdu:
    return _command(
        INS_INSTALL,
        INSTALL_FOR_LOAD,
        0x00,
        InstallForLoad(load_file_aid, b"", load_file_hash).encode(),
        256,
    )


def install_for_install(
    load_file_aid: bytes,
    module_aid: bytes,
    aid: bytes,
    *,
    privileges: bytes = b"\x00",
    app_params: bytes = b"",
    make_selectable: bool = True,
) -> CommandApdu:
    p1 = INSTALL_FOR_INSTALL | (INSTALL_FOR_MAKE_SELECTABLE if make_selectable else 0)
    data = InstallForInstall(load_file_aid, module_aid, aid, privileges, app_params).encode()
    return _command(INS_INSTALL, p1, 0x00, data, 256)


def install_for_make_selectable(aid: bytes) -> CommandApdu:
    return _command(
        INS_INSTALL, INSTALL_FOR_MAKE_SELECTABLE, 0x00, InstallTarget(aid).encode(), 256
    )


def install_for_personalization(aid: bytes) -> CommandApdu:
    return _command(
        INS_INSTALL, INSTALL_FOR_PERSONALIZATION, 0x00, InstallTarget(aid).encode(), 256
    )


# --- LOAD ------------------------------------------------------------------------------------


def load_file(package_aid: bytes) -> bytes:
    """ota.md §1: a load file naming a built-in package: ``C4 len 4F len <load file AID>``."""
    return tlv.encode_one(0xC4, tlv.encode_one(0x4F, _check_aid(package_aid, "package")))


def load_file_data_block(raw: bytes) -> bytes:
    """The Load File Data Block (the value of C4) of a whole load file; trailing bytes refused."""
    try:
        objects = tlv.decode(raw)
    except DecodeError as exc:
        raise DecodeError("load file", exc.offset, exc.reason) from None
    if len(objects) != 1 or objects[0].tag != 0xC4:
        raise DecodeError("load file", 0, "expected exactly one C4 load file data block")
    return objects[0].value


def load_file_package(block: bytes) -> bytes:
    """The package AID a Load File Data Block names (exactly one 4F object)."""
    try:
        objects = tlv.decode(block)
    except DecodeError as exc:
        raise DecodeError("load file data block", exc.offset, exc.reason) from None
    if len(objects) != 1 or objects[0].tag != 0x4F:
        raise DecodeError("load file data block", 0, "expected exactly one 4F package AID")
    return _aid(objects[0].value, "load file data block")


def load_commands(raw: bytes, block_len: int = LOAD_BLOCK_LEN_MAX) -> list[CommandApdu]:
    """LOAD blocks numbered from 00, P1 80 on the last."""
    if not 0 < block_len <= LOAD_BLOCK_LEN_MAX or not raw:
        raise EncodeError("bad LOAD block length or empty load file")
    chunks = [raw[i : i + block_len] for i in range(0, len(raw), block_len)]
    if len(chunks) > 0x100:
        raise EncodeError("a load file of more than 256 blocks")
    return [
        _command(INS_LOAD, LOAD_LAST_BLOCK if n == len(chunks) - 1 else 0x00, n, chunk, 256)
        for n, chunk in enumerate(chunks)
    ]


# --- STORE DATA and DGIs ---------------------------------------------------------------------


def encode_dgi(dgi: int, value: bytes) -> bytes:
    """GP §11.11.2.2 / EMV CPS: DGI (2) || length (1, or FF + 2 bytes from 255) || value."""
    if not 0 <= dgi <= 0xFFFF:
        raise EncodeError(f"DGI {dgi:#x} does not fit in 2 bytes")
    if len(value) < 0xFF:
        return dgi.to_bytes(2, "big") + bytes([len(value)]) + value
    if len(value) > 0xFFFF:
        raise EncodeError(f"a DGI of {len(value)} bytes")
    return dgi.to_bytes(2, "big") + b"\xff" + len(value).to_bytes(2, "big") + value


def encode_dgis(dgis: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(encode_dgi(d, v) for d, v in dgis)


def decode_dgis(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        if i + 3 > len(raw):
            raise DecodeError("DGI", i, "DGI header runs past the end")
        dgi = int.from_bytes(raw[i : i + 2], "big")
        length, start = raw[i + 2], i + 3
        if length == 0xFF:
            if i + 5 > len(raw):
                raise DecodeError("DGI", i + 2, "3-byte length runs past the end")
            length, start = int.from_bytes(raw[i + 3 : i + 5], "big"), i + 5
        if start + length > len(raw):
            raise DecodeError("DGI", i, f"DGI {dgi:04X} length {length} runs past the end")
        out.append((dgi, bytes(raw[start : start + length])))
        i = start + length
    return tuple(out)


def store_data(block: int, data: bytes, *, last: bool, encrypted: bool) -> CommandApdu:
    """STORE DATA of DGI-coded data (ota.md §1): P1 b8 last block, b7b6 11 when the block
    carries encrypted DGIs, b5b4 01 DGI format; P2 the block number."""
    if not 0 <= block <= 0xFF:
        raise EncodeError(f"block number {block} does not fit in P2")
    p1 = (
        STORE_DGI_FORMAT | (STORE_LAST_BLOCK if last else 0) | (STORE_ENCRYPTED if encrypted else 0)
    )
    return _command(INS_STORE_DATA, p1, block, data)


# --- PUT KEY ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyComponent:
    key_type: int
    block: bytes = field(repr=False)  # the key component block (encrypted under the DEK)
    kcv: bytes


@dataclass(frozen=True, slots=True)
class PutKeyData:
    """GP §11.8.2.3, basic format: new key version || key data fields."""

    new_kvn: int
    components: tuple[KeyComponent, ...]

    def encode(self) -> bytes:
        out = bytearray([self.new_kvn])
        for c in self.components:
            out.append(c.key_type)
            out += tlv.encode_length(len(c.block)) + c.block
            out += bytes([len(c.kcv)]) + c.kcv
        return bytes(out)

    @classmethod
    def decode(cls, raw: bytes) -> PutKeyData:
        what = "PUT KEY data"
        if not raw:
            raise DecodeError(what, 0, "no key version")
        components: list[KeyComponent] = []
        i = 1
        while i < len(raw):
            if len(components) >= 3:
                raise DecodeError(what, i, "more than three keys")
            key_type = raw[i]
            i += 1
            if i >= len(raw):
                raise DecodeError(what, i, "key length missing")
            length, i = _put_key_length(raw, i)
            if i + length > len(raw):
                raise DecodeError(what, i, f"key block of {length} bytes runs past the end")
            block = bytes(raw[i : i + length])
            i += length
            if i >= len(raw):
                raise DecodeError(what, i, "KCV length missing")
            kcv_len = raw[i]
            if i + 1 + kcv_len > len(raw):
                raise DecodeError(what, i, "KCV runs past the end")
            components.append(KeyComponent(key_type, block, bytes(raw[i + 1 : i + 1 + kcv_len])))
            i += 1 + kcv_len
        if not components:
            raise DecodeError(what, 1, "no key")
        return cls(raw[0], tuple(components))


def _put_key_length(raw: bytes, i: int) -> tuple[int, int]:
    """GP v2.3.1 §11.8.2.3.1: BER lengths, and 80 on one byte meaning 128 (legacy)."""
    first = raw[i]
    if first <= 0x80:
        return first, i + 1
    size = first & 0x7F
    if size > 2 or i + 1 + size > len(raw):
        raise DecodeError("PUT KEY data", i, "bad key length field")
    return int.from_bytes(raw[i + 1 : i + 1 + size], "big"), i + 1 + size


def put_key(
    old_kvn: int, new_kvn: int, keys: Sequence[bytes], key_type: int, dek: Dek
) -> CommandApdu:
    """PUT KEY replacing key set ``old_kvn`` (00 = add a new set) with ``keys`` (ENC, MAC, DEK
    or KIc, KID, DEK) encrypted under ``dek``, each with its KCV."""
    if len(keys) != 3:
        raise EncodeError("a key set is three keys")
    components = tuple(
        KeyComponent(key_type, encode_key_component(dek, k), kcv(key_type, k)) for k in keys
    )
    data = PutKeyData(new_kvn, components).encode()
    return _command(INS_PUT_KEY, old_kvn, PUT_KEY_P2_SET, data, 256)


def put_key_response(new_kvn: int, kcvs: Sequence[bytes]) -> bytes:
    assert all(len(k) == KCV_LEN for k in kcvs)
    return bytes([new_kvn]) + b"".join(kcvs)


# --- SET STATUS, DELETE, GET STATUS, GET DATA ------------------------------------------------


def set_status(scope: int, state: int, aid: bytes = b"") -> CommandApdu:
    return _command(INS_SET_STATUS, scope, state, aid)


def lock_application(aid: bytes) -> CommandApdu:
    return set_status(SET_STATUS_APPLICATION, APP_LOCKED, _check_aid(aid, "application"))


def unlock_application(aid: bytes) -> CommandApdu:
    return set_status(SET_STATUS_APPLICATION, 0x00, _check_aid(aid, "application"))


def delete(aid: bytes, *, related: bool = False) -> CommandApdu:
    data = tlv.encode_one(0x4F, _check_aid(aid, "object"))
    return _command(INS_DELETE, 0x00, 0x80 if related else 0x00, data, 256)


def decode_delete(data: bytes) -> bytes:
    """The AID a DELETE names (exactly one 4F object)."""
    try:
        objects = tlv.decode(data)
    except DecodeError as exc:
        raise DecodeError("DELETE data", exc.offset, exc.reason) from None
    if len(objects) != 1 or objects[0].tag != 0x4F:
        raise DecodeError("DELETE data", 0, "expected exactly one 4F AID")
    return _aid(objects[0].value, "DELETE data")


def get_status(
    subset: int, aid_prefix: bytes = b"", *, next_occurrence: bool = False
) -> CommandApdu:
    p2 = STATUS_TLV_FORMAT | (STATUS_NEXT if next_occurrence else 0)
    return _command(INS_GET_STATUS, subset, p2, tlv.encode_one(0x4F, aid_prefix), 256)


def decode_status_criteria(data: bytes) -> bytes:
    """The AID prefix of GET STATUS search criteria: 4F (optionally followed by a 5C tag list,
    which is ignored: the response always carries the whole entry). Empty data means all."""
    if not data:
        return b""
    try:
        objects = tlv.decode(data)
    except DecodeError as exc:
        raise DecodeError("GET STATUS criteria", exc.offset, exc.reason) from None
    if not objects or objects[0].tag != 0x4F or any(o.tag != 0x5C for o in objects[1:]):
        raise DecodeError("GET STATUS criteria", 0, "expected 4F [5C]")
    if len(objects[0].value) > AID_LEN_MAX:
        raise DecodeError("GET STATUS criteria", 0, "AID prefix over 16 bytes")
    return objects[0].value


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One GET STATUS entry (GP §11.4.3.1 Table 11-36): E3 { 4F, 9F70, C5, C4, 84*, CC }."""

    aid: bytes
    life_cycle: int
    privileges: bytes | None = None
    load_file_aid: bytes | None = None
    modules: tuple[bytes, ...] = ()
    sd_aid: bytes | None = None

    def encode(self) -> bytes:
        body = tlv.encode_one(0x4F, self.aid) + tlv.encode_one(0x9F70, bytes([self.life_cycle]))
        if self.privileges is not None:
            body += tlv.encode_one(0xC5, self.privileges)
        if self.load_file_aid is not None:
            body += tlv.encode_one(0xC4, self.load_file_aid)
        body += b"".join(tlv.encode_one(0x84, m) for m in self.modules)
        if self.sd_aid is not None:
            body += tlv.encode_one(0xCC, self.sd_aid)
        return tlv.encode_one(0xE3, body)

    @classmethod
    def decode(cls, obj: tlv.Tlv) -> RegistryEntry:
        if obj.tag != 0xE3:
            raise DecodeError("GET STATUS response", 0, f"tag {obj.tag:X} is not E3")
        children = obj.children()
        aid, life = tlv.find(children, 0x4F), tlv.find(children, 0x9F70)
        if aid is None or life is None or len(life.value) != 1:
            raise DecodeError("GET STATUS response", 0, "an entry without 4F and 9F70")
        privileges, elf, sd = (tlv.find(children, t) for t in (0xC5, 0xC4, 0xCC))
        return cls(
            aid.value,
            life.value[0],
            privileges.value if privileges else None,
            elf.value if elf else None,
            tuple(c.value for c in children if c.tag == 0x84),
            sd.value if sd else None,
        )


def decode_status_response(raw: bytes) -> tuple[RegistryEntry, ...]:
    return tuple(RegistryEntry.decode(obj) for obj in tlv.decode(raw))


def get_data(tag: int) -> CommandApdu:
    return CommandApdu(CLA_GP, INS_GET_DATA, tag >> 8, tag & 0xFF, le=256)
