"""Jobs as GlobalPlatform scripts (ota.md §1, docs/ota-isd.md) and their split into secured
packets (ota.md §2). One packet is one OTA session on the card, so a step that needs a session
head (INSTALL [for personalization] before STORE DATA) repeats it in every packet it spans,
with the STORE DATA blocks numbered from 00 again; only the very last block says "last".

Pure: the SIM's keys, the issuer's keys, the ASN and today's date are passed in; counters are
given to ``secure`` one packet at a time, by the caller who reserved them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Final

from ota.domain.errors import ScriptError
from ota.domain.sim import Scp80KeySet
from paycore import bcd, pboc
from paycore.apdu import CommandApdu
from paycore.errors import PaycoreError
from paycore.gp import commands as gp
from paycore.gp.perso import DGI_CEILING, WalletPerso, store_data_commands
from paycore.issuer_keys import IssuerKeys
from paycore.ota.packet import encode_command
from paycore.ota.remote_apdu import COMMANDS_MAX, decode_commands, encode_commands
from paycore.ota.security import SPI_DEFAULT, Spi
from paycore.purse import BALANCE_CEILING_FEN, WALLET_AID, Ef15, Ef16

TAR_ISD: Final = bytes(3)  # ota.md §2: TAR 000000 is the ISD
#: Limit on the remote APDUs of one packet (compact format, before security). The card takes
#: up to 2,048 bytes from CPL on (16 SMS); this leaves room for the header, CC and padding.
SCRIPT_BYTES_MAX: Final = 1_024
SCRIPT_BYTES_MIN: Final = 64
#: Our EF15 choices for wallets personalised over the air (as direct issuance: card-image.md).
ISSUER_ID: Final = bytes.fromhex("4E46435041590001")
APP_TYPE_EP: Final = 0x02
APP_VERSION: Final = 0x01
VALIDITY_YEARS: Final = 5


class JobKind(StrEnum):
    INSTALL_WALLET = "install-wallet"
    PERSONALISE = "personalise"
    LOCK = "lock"
    UNLOCK = "unlock"
    DELETE = "delete"
    UPDATE_LIMIT = "update-limit"
    READ_STATUS = "status"


@dataclass(frozen=True, slots=True)
class Step:
    """Commands that must share a packet (``head`` + ``body``), or, when ``divisible``, that may
    be spread over several packets each starting with ``head`` (STORE DATA blocks)."""

    body: tuple[CommandApdu, ...]
    head: CommandApdu | None = None
    divisible: bool = False


@dataclass(frozen=True, slots=True)
class Personalisation:
    """What a personalisation puts on the wallet besides the keys."""

    asn: bytes
    iccid: str
    msisdn: str
    today: date
    ceiling_fen: int | None = None
    pin_bcd: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CardContent:
    """What GET STATUS told us: load files and applications with their life cycle."""

    load_files: frozenset[bytes]
    apps: tuple[tuple[bytes, int], ...]

    def life_of(self, aid: bytes) -> int | None:
        return next((life for a, life in self.apps if a == aid), None)


def wallet_perso(keys: IssuerKeys, p: Personalisation) -> WalletPerso:
    """EF15 and EF16 as direct issuance writes them; DPK/DLK/DTK diversified from the issuer's
    master keys for the ASN (paycore.pboc.card_key), so the host derives the same keys."""
    expiry = p.today.replace(year=p.today.year + VALIDITY_YEARS, day=min(p.today.day, 28))
    ef15 = Ef15(
        ISSUER_ID,
        APP_TYPE_EP,
        APP_VERSION,
        b"\x00\x00" + p.asn,
        bcd.encode(p.today.strftime("%Y%m%d")),
        bcd.encode(expiry.strftime("%Y%m%d")),
        b"\x00\x00",
    )
    try:
        return WalletPerso(
            ef15=ef15.encode(),
            ef16=Ef16(p.iccid, p.msisdn).encode(),
            dpk=pboc.card_key(keys.mpk, p.asn, keys.issuer_factor),
            dlk=pboc.card_key(keys.mlk, p.asn, keys.issuer_factor),
            dtk=pboc.card_key(keys.mtk, p.asn, keys.issuer_factor),
            key_version=keys.key_version,
            ceiling_fen=p.ceiling_fen,
            pin_bcd=p.pin_bcd,
        )
    except PaycoreError as exc:
        raise ScriptError(f"personalisation data: {exc}") from None


def _check_ceiling(ceiling_fen: int) -> None:
    if not 1 <= ceiling_fen <= BALANCE_CEILING_FEN:
        raise ScriptError(f"balance ceiling must be 1..{BALANCE_CEILING_FEN} fen")


def install_steps(content: CardContent | None = None) -> list[Step]:
    """LOAD of the wallet package (a blank SIM holds none) and INSTALL [for install and make
    selectable] of the wallet, in one packet; what ``content`` shows done already is left out
    (a retry after a lost PoR)."""
    load = [gp.install_for_load(gp.WALLET_PACKAGE_AID)]
    load += gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID))
    install = [gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, WALLET_AID)]
    if content is None:
        return [Step((*load, *install))]
    body: list[CommandApdu] = []
    if gp.WALLET_PACKAGE_AID not in content.load_files:
        body += load
    if content.life_of(WALLET_AID) is None:
        body += install
    return [Step(tuple(body))] if body else []


def perso_steps(
    keys: IssuerKeys,
    sim_keys: Scp80KeySet,
    p: Personalisation,
    *,
    block_max: int | None = None,
    content: CardContent | None = None,
) -> list[Step]:
    """INSTALL [for personalization] of the wallet, then STORE DATA with every DGI, the card keys
    encrypted under the SIM's SCP80 DEK (ota.md §1). Nothing when ``content`` shows the wallet
    personalised already."""
    if p.ceiling_fen is not None:
        _check_ceiling(p.ceiling_fen)
    if content is not None:
        life = content.life_of(WALLET_AID)
        if life is not None and life & 0x7F == gp.APP_PERSONALIZED:
            return []
    dgis = wallet_perso(keys, p).dgis(sim_keys.data_key())
    extra = {} if block_max is None else {"block_max": block_max}
    try:
        commands = store_data_commands(WALLET_AID, dgis, **extra)
    except PaycoreError as exc:
        raise ScriptError(f"STORE DATA: {exc}") from None
    return [Step(tuple(commands[1:]), head=commands[0], divisible=True)]


def limit_steps(ceiling_fen: int) -> list[Step]:
    """A PERSONALIZED wallet still takes DGI 0201 (docs/ota-isd.md)."""
    _check_ceiling(ceiling_fen)
    data = gp.encode_dgi(DGI_CEILING, ceiling_fen.to_bytes(4, "big"))
    store = gp.store_data(0, data, last=True, encrypted=False)
    return [Step((store,), head=gp.install_for_personalization(WALLET_AID))]


def simple_steps(kind: JobKind, content: CardContent | None = None) -> list[Step]:
    """Lock, unlock (idempotent on the card), delete (nothing when already gone), status."""
    if kind is JobKind.LOCK:
        return [Step((gp.lock_application(WALLET_AID),))]
    if kind is JobKind.UNLOCK:
        return [Step((gp.unlock_application(WALLET_AID),))]
    if kind is JobKind.DELETE:
        # The wallet package with its instances (DELETE P2 80): the SIM is blank again, and a
        # later install-wallet starts from LOAD as on a new SIM.
        if content is not None:
            if gp.WALLET_PACKAGE_AID in content.load_files:
                return [Step((gp.delete(gp.WALLET_PACKAGE_AID, related=True),))]
            if content.life_of(WALLET_AID) is not None:
                return [Step((gp.delete(WALLET_AID),))]
            return []
        return [Step((gp.delete(gp.WALLET_PACKAGE_AID, related=True),))]
    if kind is JobKind.READ_STATUS:
        return [Step((gp.get_status(gp.STATUS_APPLICATIONS),))]
    raise ScriptError(f"{kind.value} is not a simple job")


def probe_steps() -> list[Step]:
    """What a retry asks first: load files, then applications (one packet each: a compact PoR
    carries the last command's data only)."""
    return [
        Step((gp.get_status(gp.STATUS_LOAD_FILES),)),
        Step((gp.get_status(gp.STATUS_APPLICATIONS),)),
    ]


def content_of(load_files_data: bytes, apps_data: bytes) -> CardContent:
    """The probe's two GET STATUS answers (an empty answer is no entry)."""
    try:
        files = gp.decode_status_response(load_files_data) if load_files_data else ()
        apps = gp.decode_status_response(apps_data) if apps_data else ()
    except PaycoreError as exc:
        raise ScriptError(f"GET STATUS answer: {exc}") from None
    return CardContent(frozenset(e.aid for e in files), tuple((e.aid, e.life_cycle) for e in apps))


def _renumber(blocks: Sequence[CommandApdu], last_overall: bool) -> list[CommandApdu]:
    """STORE DATA blocks of one packet numbered from 00; "last" only on the step's end."""
    out = []
    for n, block in enumerate(blocks):
        last = last_overall and n == len(blocks) - 1
        encrypted = bool(block.p1 & gp.STORE_ENCRYPTED)
        out.append(gp.store_data(n, block.data, last=last, encrypted=encrypted))
    return out


def _size(commands: Sequence[CommandApdu]) -> int:
    return len(encode_commands(commands)) if commands else 0


def split(steps: Sequence[Step], script_bytes_max: int = SCRIPT_BYTES_MAX) -> list[bytes]:
    """The compact remote-APDU data of each packet (TS 102 226 §5.1), packed greedily: whole
    steps share a packet while they fit; a divisible step too large for the room left starts
    its own packets, its head repeated in each."""
    if not SCRIPT_BYTES_MIN <= script_bytes_max <= SCRIPT_BYTES_MAX * 2:
        raise ScriptError(f"packet budget must be {SCRIPT_BYTES_MIN}..{SCRIPT_BYTES_MAX * 2}")
    packets: list[list[CommandApdu]] = []
    current: list[CommandApdu] = []

    def fits(extra: Sequence[CommandApdu], base: Sequence[CommandApdu]) -> bool:
        both = [*base, *extra]
        try:
            return len(both) <= COMMANDS_MAX and _size(both) <= script_bytes_max
        except PaycoreError as exc:
            raise ScriptError(f"remote APDUs: {exc}") from None

    for step in steps:
        whole = ([step.head] if step.head else []) + list(step.body)
        if fits(whole, current):
            current += whole
            continue
        if current:
            packets.append(current)
            current = []
        if fits(whole, []):
            current = whole
            continue
        if not step.divisible or step.head is None:
            raise ScriptError(f"a step of {_size(whole)} bytes does not fit in one packet")
        remaining = list(step.body)
        while remaining:
            part: list[CommandApdu] = []
            while remaining and fits([step.head, *part, remaining[0]], []):
                part.append(remaining.pop(0))
            if not part:
                raise ScriptError("a STORE DATA block does not fit in one packet")
            packets.append([step.head, *_renumber(part, not remaining)])
    if current:
        packets.append(current)
    try:
        return [encode_commands(p) for p in packets]
    except PaycoreError as exc:
        raise ScriptError(f"remote APDUs: {exc}") from None


def command_count(script: bytes) -> int:
    """How many C-APDUs a packet's script carries (for checking the PoR's count)."""
    return len(decode_commands(script))


def secure(sim_keys: Scp80KeySet, counter: int, script: bytes, spi: Spi = SPI_DEFAULT) -> bytes:
    """The secured command packet (CPL to the end) for TAR 000000 with ``counter``."""
    try:
        return encode_command(
            spi=spi,
            kic=sim_keys.coding,
            kid=sim_keys.coding,
            tar=TAR_ISD,
            counter=counter,
            data=script,
            keys=sim_keys.ota_keys(),
        )
    except PaycoreError as exc:
        raise ScriptError(f"secured packet: {exc}") from None
