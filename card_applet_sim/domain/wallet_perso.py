"""What the issuer security domain does to a wallet instance (ota.md §1): create it empty,
report and change its GP life cycle, lock and unlock it, and store its personalisation DGIs.

Pure functions from one ``WalletState`` to the next; each answers a status word and the new
state (None when nothing changes). A STORE DATA block is all or nothing: the first DGI that is
refused refuses the whole block, and nothing of it is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from card_applet_sim.domain.wallet import (
    PIN_BYTES_MAX,
    PIN_BYTES_MIN,
    PIN_TRIES_MAX,
    Status,
    WalletState,
)
from paycore import crypto
from paycore.errors import DecodeError
from paycore.gp import commands as gp
from paycore.gp import perso
from paycore.gp.dek import Dek
from paycore.purse import EF15_LEN, EF16_LEN, Ef16
from paycore.sw import SW

Outcome = tuple[int, WalletState | None]
#: Our choice: a PBOC-locked wallet (9303, ``status == "locked"``) reports PERSONALIZED with
#: application-specific bit b5 set (GP §11.1.1.2 leaves b4-b7 to the application).
LIFE_PBOC_LOCKED = gp.APP_PERSONALIZED | 0x10
_LIFE_CODES = {
    "installed": gp.APP_INSTALLED,
    "selectable": gp.APP_SELECTABLE,
    "personalized": gp.APP_PERSONALIZED,
}
_KEY_LEN = 16


def new_wallet(*, selectable: bool) -> WalletState:
    """A wallet as INSTALL creates it: no EF15, EF16 or keys, balance and counters zero."""
    return WalletState(
        ef15=b"",
        ef16=b"",
        dpk=b"",
        dlk=b"",
        dtk=b"",
        key_version=1,
        balance_fen=0,
        online_counter=0,
        offline_counter=0,
        life="selectable" if selectable else "installed",
        keys_confirmed=False,
    )


def life_cycle(state: WalletState) -> int:
    """The GP life cycle byte GET STATUS reports (bit 8: locked by SET STATUS)."""
    code = LIFE_PBOC_LOCKED if state.status == "locked" else _LIFE_CODES[state.life]
    return code | (gp.APP_LOCKED if state.status == "blocked" else 0)


def make_selectable(state: WalletState) -> Outcome:
    if state.life != "installed":
        return SW.CONDITIONS_NOT_SATISFIED, None
    return SW.OK, replace(state, life="selectable")


def set_locked(state: WalletState, locked: bool) -> Outcome:
    """SET STATUS lock (P2 80) / unlock (P2 00) back to the previous state. Idempotent (our
    choice, so an OTA job retried after a lost PoR succeeds); a PBOC-locked wallet stays so."""
    if state.status == "locked":
        return SW.CONDITIONS_NOT_SATISFIED, None
    wanted: Status = "blocked" if locked else "active"
    if state.status == wanted:
        return SW.OK, None
    return SW.OK, replace(state, status=wanted)


def personalisable(state: WalletState) -> int:
    """Whether INSTALL [for personalization] may name this wallet."""
    if state.life == "installed" or state.status != "active":
        return SW.CONDITIONS_NOT_SATISFIED
    return SW.OK


def store_data(
    state: WalletState,
    dgis: Sequence[tuple[int, bytes]],
    *,
    dek: Dek,
    encrypted_block: bool,
    last_block: bool,
    confidential: bool,
) -> Outcome:
    """One STORE DATA block of DGIs (ota.md §1). ``confidential``: the block arrived with
    command encryption (C-DECRYPTION, or a ciphered secured packet), which a PIN needs.
    The last block of a wallet not yet PERSONALIZED completes it, or is refused (6985) when
    EF15, EF16 or confirmed keys are still missing."""
    sw = personalisable(state)
    if sw != SW.OK:
        return sw, None
    if not dgis:
        return SW.WRONG_DATA, None
    new = state
    for dgi, value in dgis:
        if state.life == "personalized" and dgi not in perso.UPDATE_DGIS:
            return SW.CONDITIONS_NOT_SATISFIED, None  # only limit and PIN updates
        sw, stored = _store_one(new, dgi, value, dek, encrypted_block, confidential)
        if stored is None:
            return sw, None
        new = stored
    if last_block and new.life != "personalized":
        if not (len(new.ef15) == EF15_LEN and len(new.ef16) == EF16_LEN and new.keys_confirmed):
            return SW.CONDITIONS_NOT_SATISFIED, None
        new = replace(new, life="personalized")
    return SW.OK, new


def _store_one(
    state: WalletState, dgi: int, value: bytes, dek: Dek, encrypted_block: bool, secret: bool
) -> Outcome:
    if dgi == perso.DGI_EF15:
        if len(value) != EF15_LEN:
            return SW.WRONG_DATA, None
        return SW.OK, replace(state, ef15=value)
    if dgi == perso.DGI_EF16:
        try:
            Ef16.decode(value)
        except DecodeError:
            return SW.WRONG_DATA, None
        return SW.OK, replace(state, ef16=value)
    if dgi == perso.DGI_CEILING:
        ceiling = int.from_bytes(value, "big")
        if len(value) != 4 or ceiling == 0 or ceiling < state.balance_fen:
            return SW.WRONG_DATA, None
        return SW.OK, replace(state, ceiling_fen=ceiling)
    if dgi == perso.DGI_PIN:
        if not secret:  # our choice: a PIN travels only under command encryption
            return SW.SECURITY_STATUS_NOT_SATISFIED, None
        if value and not (PIN_BYTES_MIN <= len(value) <= PIN_BYTES_MAX and _bcd(value)):
            return SW.WRONG_DATA, None
        return SW.OK, replace(state, pin_bcd=value or None, pin_tries_left=PIN_TRIES_MAX)
    if dgi == perso.DGI_KEY_VERSION:
        if len(value) != 1:
            return SW.WRONG_DATA, None
        return SW.OK, replace(state, key_version=value[0])
    if dgi == perso.DGI_KEYS:
        if not encrypted_block or len(value) != perso.KEYS_LEN:
            return SW.WRONG_DATA, None
        keys = dek.decrypt(value)
        dpk, dlk, dtk = keys[:16], keys[16:32], keys[32:]
        return SW.OK, replace(state, dpk=dpk, dlk=dlk, dtk=dtk, keys_confirmed=False)
    if dgi == perso.DGI_KCVS:
        if len(value) != perso.KCVS_LEN:
            return SW.WRONG_DATA, None
        if len(state.dpk) != _KEY_LEN:
            return SW.CONDITIONS_NOT_SATISFIED, None  # 8001 first
        expected = b"".join(crypto.kcv_des(k) for k in (state.dpk, state.dlk, state.dtk))
        if not crypto.mac_equal(expected, value):
            return SW.WRONG_DATA, None  # ota.md §1: a wrong KCV answers 6A80, nothing stored
        return SW.OK, replace(state, keys_confirmed=True)
    return SW.REFERENCED_DATA_NOT_FOUND, None  # a DGI the wallet does not know


def _bcd(raw: bytes) -> bool:
    return all((b >> 4) <= 9 and (b & 0x0F) <= 9 for b in raw)
