"""The persistent state of the issuer security domain (ota.md §1) and its card image codec.

The card life cycle, the key sets (SCP02, SCP03 and SCP80, with their counters), the executable
load files on the card and the registry entries of the applications the ISD installed. The
applications' own state (a wallet's life cycle, keys, balance) lives in their instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from card_applet_sim.domain.applet import JsonObject
from card_applet_sim.domain.errors import CardImageError
from card_applet_sim.domain.image import exact_keys, hex_field, int_field
from paycore.gp import commands as gp
from paycore.gp.channel import StaticKeys
from paycore.gp.dek import KEY_TYPE_AES, KEY_TYPE_DES, Dek

ISD_TYPE_NAME = "isd"
KEY_SETS_MAX = 8
LOAD_FILES_MAX = 4
APPS_MAX = 15
APP_PARAMS_LEN_MAX = 64
KEY_DIV_DATA_LEN = 10

CardLife = Literal["op_ready", "initialized", "secured", "card_locked", "terminated"]
CARD_LIFE_CODES: dict[CardLife, int] = {
    "op_ready": gp.CARD_OP_READY,
    "initialized": gp.CARD_INITIALIZED,
    "secured": gp.CARD_SECURED,
    "card_locked": gp.CARD_LOCKED,
    "terminated": gp.CARD_TERMINATED,
}
CARD_LIVES: tuple[CardLife, ...] = tuple(CARD_LIFE_CODES)
Scp = Literal["scp02", "scp03", "scp80"]
SCPS: tuple[Scp, ...] = ("scp02", "scp03", "scp80")
KeyAlgorithm = Literal["3des", "aes"]
ALGORITHMS: tuple[KeyAlgorithm, ...] = ("3des", "aes")
#: The largest counter of each protocol: SCP02 sequence (2 bytes), SCP03 (3), SCP80 (5).
COUNTER_MAX: dict[Scp, int] = {"scp02": 0xFFFF, "scp03": 0xFFFFFF, "scp80": (1 << 40) - 1}
_KEY_LENGTHS: dict[tuple[Scp, KeyAlgorithm], tuple[int, ...]] = {
    ("scp02", "3des"): (16,),
    ("scp03", "aes"): (16, 24, 32),
    ("scp80", "3des"): (16, 24),
    ("scp80", "aes"): (16, 24, 32),
}


def scp_of_new_kvn(kvn: int) -> Scp | None:
    """ota.md §1: what a key version number names when PUT KEY creates a set: SCP80 01-0F,
    SCP02 20-2F, SCP03 30-3F; nothing else (FF is only ever the initial set)."""
    if 0x01 <= kvn <= 0x0F:
        return "scp80"
    if 0x20 <= kvn <= 0x2F:
        return "scp02"
    if 0x30 <= kvn <= 0x3F:
        return "scp03"
    return None


@dataclass(frozen=True, slots=True)
class KeySet:
    """One key set: ENC/MAC/DEK of a secure channel, or KIc/KID/DEK of SCP80 (keys 1, 2, 3).

    ``counter``: for SCP02/SCP03 the last sequence counter an INITIALIZE UPDATE used; for SCP80
    the last counter of an accepted secured packet (kept by the OTA receiver)."""

    kvn: int
    scp: Scp
    algorithm: KeyAlgorithm
    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    counter: int = 0

    def __post_init__(self) -> None:
        assert 0x01 <= self.kvn <= 0xFF
        assert (self.scp, self.algorithm) in _KEY_LENGTHS
        lengths = _KEY_LENGTHS[(self.scp, self.algorithm)]
        assert len(self.enc) == len(self.mac) == len(self.dek) and len(self.enc) in lengths
        assert 0 <= self.counter <= COUNTER_MAX[self.scp]

    @property
    def static_keys(self) -> StaticKeys:
        return StaticKeys(self.enc, self.mac, self.dek)

    @property
    def key_type(self) -> int:
        return KEY_TYPE_DES if self.algorithm == "3des" else KEY_TYPE_AES

    def data_encryption(self) -> Dek:
        """The static DEK as a cipher: AES-CBC (zero IV) for AES sets, 3DES-ECB for DES sets
        (ota.md §1; the SCP02 channel uses its session DEK instead)."""
        return Dek("3des-ecb" if self.algorithm == "3des" else "aes-cbc", self.dek)


def key_set_allowed(scp: Scp, algorithm: KeyAlgorithm, key_len: int) -> bool:
    return key_len in _KEY_LENGTHS.get((scp, algorithm), ())


@dataclass(frozen=True, slots=True)
class LoadFile:
    """An executable load file on the card: its AID and the SHA-256 of its Load File Data
    Block (what LOAD carried; the hash a direct issuance computes for the same load file)."""

    aid: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class AppRecord:
    """The ISD's registry entry of an application it installed."""

    aid: bytes
    load_file_aid: bytes
    module_aid: bytes
    privileges: bytes  # 3 bytes
    app_params: bytes = b""  # the value of C9 at INSTALL


@dataclass(frozen=True, slots=True)
class IsdState:
    card_life: CardLife
    key_sets: tuple[KeySet, ...]
    load_files: tuple[LoadFile, ...] = ()
    apps: tuple[AppRecord, ...] = ()
    key_div_data: bytes = bytes(KEY_DIV_DATA_LEN)

    def __post_init__(self) -> None:
        assert self.card_life in CARD_LIVES
        assert len(self.key_sets) <= KEY_SETS_MAX
        assert len({k.kvn for k in self.key_sets}) == len(self.key_sets), "one KVN, one set"
        assert len(self.load_files) <= LOAD_FILES_MAX
        assert len({f.aid for f in self.load_files}) == len(self.load_files)
        assert len(self.apps) <= APPS_MAX
        assert len({a.aid for a in self.apps}) == len(self.apps)
        assert len(self.key_div_data) == KEY_DIV_DATA_LEN

    def key_set(self, kvn: int) -> KeySet | None:
        for ks in self.key_sets:
            if ks.kvn == kvn:
                return ks
        return None

    def channel_key_set(self, kvn: int) -> KeySet | None:
        """GP §11.11: the set INITIALIZE UPDATE names; 00 = the first SCP02/SCP03 set."""
        for ks in self.key_sets:
            if ks.scp != "scp80" and kvn in (0x00, ks.kvn):
                return ks
        return None

    def with_key_set(self, new: KeySet, replacing: int | None = None) -> IsdState:
        """``new`` in place of the set ``replacing`` (default: its own KVN), or appended."""
        old = new.kvn if replacing is None else replacing
        if self.key_set(old) is None:
            return replace(self, key_sets=(*self.key_sets, new))
        return replace(self, key_sets=tuple(new if ks.kvn == old else ks for ks in self.key_sets))

    def load_file(self, aid: bytes) -> LoadFile | None:
        for f in self.load_files:
            if f.aid == aid:
                return f
        return None

    def app(self, aid: bytes) -> AppRecord | None:
        for a in self.apps:
            if a.aid == aid:
                return a
        return None


# --- image codec ------------------------------------------------------------------------------


def state_to_json(state: Any) -> JsonObject:
    assert isinstance(state, IsdState)
    return {
        "card_life": state.card_life,
        "key_div_data": state.key_div_data.hex().upper(),
        "key_sets": [
            {
                "kvn": ks.kvn,
                "scp": ks.scp,
                "algorithm": ks.algorithm,
                "enc": ks.enc.hex().upper(),
                "mac": ks.mac.hex().upper(),
                "dek": ks.dek.hex().upper(),
                "counter": ks.counter,
            }
            for ks in state.key_sets
        ],
        "load_files": [
            {"aid": f.aid.hex().upper(), "hash": f.hash.hex().upper()} for f in state.load_files
        ],
        "apps": [
            {
                "aid": a.aid.hex().upper(),
                "load_file": a.load_file_aid.hex().upper(),
                "module": a.module_aid.hex().upper(),
                "privileges": a.privileges.hex().upper(),
                "params": a.app_params.hex().upper(),
            }
            for a in state.apps
        ],
    }


_AID_LENGTHS = range(gp.AID_LEN_MIN, gp.AID_LEN_MAX + 1)


def _list(obj: Mapping[str, Any], name: str, limit: int) -> list[Any]:
    value = obj[name]
    if not isinstance(value, list) or len(value) > limit:
        raise CardImageError(f"{name}: expected a list of at most {limit} entries")
    for n, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise CardImageError(f"{name}[{n}]: not an object")
    return value


def _key_set(obj: Mapping[str, Any], where: str) -> KeySet:
    exact_keys(obj, {"kvn", "scp", "algorithm", "enc", "mac", "dek", "counter"})
    scp, algorithm = obj["scp"], obj["algorithm"]
    if scp not in SCPS or algorithm not in ALGORITHMS or (scp, algorithm) not in _KEY_LENGTHS:
        raise CardImageError(f"{where}: {scp!r} with {algorithm!r} is not a key set kind")
    lengths = _KEY_LENGTHS[(scp, algorithm)]
    enc, mac, dek = (hex_field(obj, k, where, lengths=lengths) for k in ("enc", "mac", "dek"))
    if not len(enc) == len(mac) == len(dek):
        raise CardImageError(f"{where}: the three keys differ in length")
    return KeySet(
        int_field(obj, "kvn", 1, 0xFF),
        scp,
        algorithm,
        enc,
        mac,
        dek,
        int_field(obj, "counter", 0, COUNTER_MAX[scp]),
    )


def state_from_json(obj: Mapping[str, Any]) -> IsdState:
    exact_keys(obj, {"card_life", "key_div_data", "key_sets", "load_files", "apps"})
    life = obj["card_life"]
    if life not in CARD_LIVES:
        raise CardImageError(f"card_life: {life!r} is not one of {CARD_LIVES}")
    key_sets = tuple(
        _key_set(k, f"key_sets[{n}]") for n, k in enumerate(_list(obj, "key_sets", KEY_SETS_MAX))
    )
    if len({k.kvn for k in key_sets}) != len(key_sets):
        raise CardImageError("key_sets: two sets share one key version number")
    load_files = []
    for n, f in enumerate(_list(obj, "load_files", LOAD_FILES_MAX)):
        where = f"load_files[{n}]"
        exact_keys(f, {"aid", "hash"})
        load_files.append(
            LoadFile(hex_field(f, "aid", where, lengths=_AID_LENGTHS),
                     hex_field(f, "hash", where, lengths=(32,)))
        )  # fmt: skip
    apps = []
    for n, a in enumerate(_list(obj, "apps", APPS_MAX)):
        where = f"apps[{n}]"
        exact_keys(a, {"aid", "load_file", "module", "privileges", "params"})
        apps.append(
            AppRecord(
                hex_field(a, "aid", where, lengths=_AID_LENGTHS),
                hex_field(a, "load_file", where, lengths=_AID_LENGTHS),
                hex_field(a, "module", where, lengths=_AID_LENGTHS),
                hex_field(a, "privileges", where, lengths=(3,)),
                hex_field(a, "params", where, lengths=range(APP_PARAMS_LEN_MAX + 1)),
            )
        )
    if len({f.aid for f in load_files}) != len(load_files):
        raise CardImageError("load_files: two load files share one AID")
    if len({a.aid for a in apps}) != len(apps):
        raise CardImageError("apps: two entries share one AID")
    return IsdState(
        life,
        key_sets,
        tuple(load_files),
        tuple(apps),
        hex_field(obj, "key_div_data", lengths=(KEY_DIV_DATA_LEN,)),
    )
