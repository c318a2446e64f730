"""Personalising test cards directly (the OTA path comes later): a SIM carrying the wallet,
and a PSAM. Pure: the caller passes today's date."""

from __future__ import annotations

from datetime import date

from card_applet_sim.domain.image import CardImage, Instance
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.wallet import WalletState
from paycore import bcd, pboc
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


def new_psam_image(keys: IssuerKeys, terminal_id: bytes) -> CardImage:
    state = PsamState(mpk=keys.mpk, key_version=keys.key_version, terminal_id=terminal_id, serial=0)
    return CardImage("psam", (Instance(PSAM_AID, "psam", state),))
