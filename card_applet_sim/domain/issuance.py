"""Issuing test cards: a SIM personalised directly with the wallet (optionally with its issuer
security domain), a blank SIM carrying only the ISD that gets its wallet over the air (ota.md
§1), and a PSAM. Pure: the caller passes today's date."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from card_applet_sim.domain.image import CardImage, Instance
from card_applet_sim.domain.isd import load_file_hash
from card_applet_sim.domain.isd_state import (
    ISD_TYPE_NAME,
    AppRecord,
    IsdState,
    KeyAlgorithm,
    KeySet,
    LoadFile,
    Scp,
)
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.wallet import WalletState
from paycore import bcd, pboc
from paycore.gp.channel import StaticKeys
from paycore.gp.commands import ISD_AID, WALLET_MODULE_AID, WALLET_PACKAGE_AID
from paycore.issuer_keys import IssuerKeys
from paycore.purse import BALANCE_CEILING_FEN, PSAM_AID, WALLET_AID, Ef15, Ef16

#: Our choices for the EF15 fields the contract leaves open (docs/card-image.md).
DEFAULT_ISSUER_ID = bytes.fromhex("4E46435041590001")  # "NFCPAY" 0001
APP_TYPE_EP = 0x02
APP_VERSION = 0x01
VALIDITY_YEARS = 5


class IssuanceError(ValueError):
    """Bad personalisation parameters (one-line message for the CLI)."""


def parse_asn(text: str) -> bytes:
    if len(text) != 16 or not text.isascii() or not text.isdigit():
        raise IssuanceError(f"ASN must be 16 decimal digits, got {text!r}")
    return bcd.encode(text)


def parse_terminal_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(text) != 12 or len(raw) != 6:
        raise IssuanceError(f"terminal ID must be 12 hex digits, got {text!r}")
    return raw


def parse_pin(text: str) -> bytes:
    if not 4 <= len(text) <= 12 or not text.isascii() or not text.isdigit() or len(text) % 2:
        raise IssuanceError("PIN must be 4 to 12 digits, an even count (BCD, 2-6 bytes)")
    return bcd.encode(text)


def new_sim_image(
    keys: IssuerKeys,
    asn: bytes,
    *,
    today: date,
    balance_fen: int = 0,
    pin_bcd: bytes | None = None,
    issuer_id: bytes = DEFAULT_ISSUER_ID,
    iccid: str | None = None,
    msisdn: str = "",
) -> CardImage:
    if not 0 <= balance_fen <= BALANCE_CEILING_FEN:
        raise IssuanceError(f"balance must be 0..{BALANCE_CEILING_FEN} fen")
    expiry = today.replace(year=today.year + VALIDITY_YEARS, day=min(today.day, 28))
    ef15 = Ef15(
        issuer_id,
        APP_TYPE_EP,
        APP_VERSION,
        b"\x00\x00" + asn,
        bcd.encode(today.strftime("%Y%m%d")),
        bcd.encode(expiry.strftime("%Y%m%d")),
        b"\x00\x00",
    )
    asn_digits = asn.hex()
    ef16 = Ef16(iccid if iccid is not None else "8986" + asn_digits[:15], msisdn)
    state = WalletState(
        ef15=ef15.encode(),
        ef16=ef16.encode(),
        dpk=pboc.card_key(keys.mpk, asn, keys.issuer_factor),
        dlk=pboc.card_key(keys.mlk, asn, keys.issuer_factor),
        dtk=pboc.card_key(keys.mtk, asn, keys.issuer_factor),
        key_version=keys.key_version,
        balance_fen=balance_fen,
        online_counter=0,
        offline_counter=0,
        pin_bcd=pin_bcd,
    )
    return CardImage("sim", (Instance(WALLET_AID, "wallet", state),))


# --- the issuer security domain (ota.md §1) ---------------------------------------------------

#: Our choice of key version numbers for a new ISD: the initial SCP02 set FF (GP), one SCP03
#: set 30 and one SCP80 (OTA) set 01.
KVN_SCP02_INITIAL = 0xFF
KVN_SCP03 = 0x30
KVN_SCP80 = 0x01
#: The GlobalPlatform default test key (40..4F): test cards only, never a real card.
GP_TEST_KEY = bytes(range(0x40, 0x50))


@dataclass(frozen=True, slots=True)
class IsdKeys:
    """The key sets a new ISD starts with. Keys are never part of the repr."""

    scp02: StaticKeys = field(repr=False)
    scp03: StaticKeys = field(repr=False)
    scp80: StaticKeys = field(repr=False)  # KIc, KID, DEK
    scp80_algorithm: KeyAlgorithm = "aes"

    def key_sets(self) -> tuple[KeySet, ...]:
        def key_set(kvn: int, scp: Scp, algorithm: KeyAlgorithm, k: StaticKeys) -> KeySet:
            return KeySet(kvn, scp, algorithm, k.enc, k.mac, k.dek)

        return (
            key_set(KVN_SCP02_INITIAL, "scp02", "3des", self.scp02),
            key_set(KVN_SCP03, "scp03", "aes", self.scp03),
            key_set(KVN_SCP80, "scp80", self.scp80_algorithm, self.scp80),
        )


#: Test keys (documented in docs/ota-isd.md): SCP02 and SCP03 use the GP test key for ENC, MAC
#: and DEK; the SCP80 set is AES-128 with KIc 40..4F, KID 50..5F, DEK 60..6F.
TEST_ISD_KEYS = IsdKeys(
    scp02=StaticKeys(GP_TEST_KEY, GP_TEST_KEY, GP_TEST_KEY),
    scp03=StaticKeys(GP_TEST_KEY, GP_TEST_KEY, GP_TEST_KEY),
    scp80=StaticKeys(bytes(range(0x40, 0x50)), bytes(range(0x50, 0x60)), bytes(range(0x60, 0x70))),
)


def new_isd_state(
    isd_keys: IsdKeys = TEST_ISD_KEYS,
    *,
    with_wallet_package: bool = False,
    apps: tuple[AppRecord, ...] = (),
    key_div_data: bytes = bytes(10),
) -> IsdState:
    """An ISD in SECURED state (an issued card). A blank SIM holds no load file: the wallet
    package arrives by LOAD; a directly personalised SIM has it already."""
    load_files = (
        (LoadFile(WALLET_PACKAGE_AID, load_file_hash(WALLET_PACKAGE_AID)),)
        if with_wallet_package
        else ()
    )
    return IsdState("secured", isd_keys.key_sets(), load_files, apps, key_div_data)


def new_blank_sim_image(
    isd_keys: IsdKeys = TEST_ISD_KEYS, *, key_div_data: bytes = bytes(10)
) -> CardImage:
    """A blank SIM: the ISD only, with its initial key sets; the wallet comes over the air."""
    state = new_isd_state(isd_keys, key_div_data=key_div_data)
    return CardImage("sim", (Instance(ISD_AID, ISD_TYPE_NAME, state),))


def with_isd(image: CardImage, isd_keys: IsdKeys = TEST_ISD_KEYS) -> CardImage:
    """A directly personalised SIM image with an ISD added after its wallet: the wallet
    package loaded and the wallet registered as installed from it (privileges 00)."""
    assert image.kind == "sim"
    apps = tuple(
        AppRecord(i.aid, WALLET_PACKAGE_AID, WALLET_MODULE_AID, bytes(3))
        for i in image.instances
        if i.type_name == "wallet"
    )
    state = new_isd_state(isd_keys, with_wallet_package=True, apps=apps)
    return CardImage("sim", (*image.instances, Instance(ISD_AID, ISD_TYPE_NAME, state)))


def new_psam_image(keys: IssuerKeys, terminal_id: bytes) -> CardImage:
    state = PsamState(mpk=keys.mpk, key_version=keys.key_version, terminal_id=terminal_id, serial=0)
    return CardImage("psam", (Instance(PSAM_AID, "psam", state),))
