"""The PBOC ED/EP purse recipes of card.md §3: diversification, session keys, MAC1/MAC2/TAC.

Shared by the wallet applet (card side), the PSAM and the issuer services of the host.
All keys are 16-byte two-key 3DES keys; session keys and the TAC key are 8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from paycore.crypto import des_ecb_encrypt, pboc_des_mac, xor
from paycore.errors import BadKeyError

KEY_LEN = 16
FACTOR_LEN = 8

TYPE_ED_LOAD = 0x01
TYPE_EP_LOAD = 0x02
TYPE_ED_PURCHASE = 0x05
TYPE_EP_PURCHASE = 0x06


def _need(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def _need_key(name: str, key: bytes) -> None:
    if len(key) != KEY_LEN:
        raise BadKeyError(f"{name} must be {KEY_LEN} bytes, got {len(key)}")


def diversify(master: bytes, factor: bytes) -> bytes:
    """Div(MK, F) = 3DES_MK(F) || 3DES_MK(F xor FF..FF)  (card.md §3)."""
    if len(master) != KEY_LEN:
        raise BadKeyError(f"master key must be {KEY_LEN} bytes, got {len(master)}")
    _need("diversification factor", factor, FACTOR_LEN)
    inverted = bytes(b ^ 0xFF for b in factor)
    return des_ecb_encrypt(master, factor + inverted)


def card_key(master: bytes, asn: bytes, issuer_factor: bytes | None = None) -> bytes:
    """A card key from a master key: one level Div(MK, ASN) or two levels
    Div(Div(MK, F_issuer), ASN) when the issuer key file carries F_issuer (our choice: upper
    factor first)."""
    if issuer_factor is not None:
        master = diversify(master, issuer_factor)
    return diversify(master, asn)


def purchase_session_key(
    dpk: bytes, random4: bytes, offline_counter: int, terminal_serial: int
) -> bytes:
    """SESPK = 3DES_DPK(random(4) || offline counter(2) || low 2 bytes of terminal serial)."""
    _need_key("DPK", dpk)
    _need("card random", random4, 4)
    block = random4 + offline_counter.to_bytes(2, "big") + (terminal_serial & 0xFFFF).to_bytes(2)
    return des_ecb_encrypt(dpk, block)


def load_session_key(dlk: bytes, random4: bytes, online_counter: int) -> bytes:
    """SESLK = 3DES_DLK(random(4) || online counter(2) || 80 00)."""
    _need_key("DLK", dlk)
    _need("card random", random4, 4)
    return des_ecb_encrypt(dlk, random4 + online_counter.to_bytes(2, "big") + b"\x80\x00")


def tac_key(dtk: bytes) -> bytes:
    """The TAC is computed with DTK_L xor DTK_R."""
    if len(dtk) != KEY_LEN:
        raise BadKeyError(f"TAC key must be {KEY_LEN} bytes, got {len(dtk)}")
    return xor(dtk[:8], dtk[8:])


@dataclass(frozen=True, slots=True)
class Purchase:
    """The values a purchase's MACs and TAC are computed over."""

    amount_fen: int
    terminal_id: bytes  # 6 bytes
    terminal_serial: int  # 4 bytes, from the PSAM
    date_bcd: bytes  # YYYYMMDD, 4 bytes
    time_bcd: bytes  # HHMMSS, 3 bytes
    tx_type: int = TYPE_EP_PURCHASE

    def _common(self) -> bytes:
        return self.amount_fen.to_bytes(4, "big") + bytes([self.tx_type]) + self.terminal_id


def purchase_mac1(sespk: bytes, p: Purchase) -> bytes:
    """MAC1 = MAC(SESPK, amount || type || terminal ID || date || time)."""
    return pboc_des_mac(sespk, p._common() + p.date_bcd + p.time_bcd)


def purchase_mac2(sespk: bytes, amount_fen: int) -> bytes:
    """MAC2 = MAC(SESPK, amount)."""
    return pboc_des_mac(sespk, amount_fen.to_bytes(4, "big"))


def purchase_tac(dtk: bytes, p: Purchase) -> bytes:
    """TAC = MAC(DTK_L xor DTK_R, amount || type || terminal ID || serial || date || time)."""
    data = p._common() + p.terminal_serial.to_bytes(4, "big") + p.date_bcd + p.time_bcd
    return pboc_des_mac(tac_key(dtk), data)


@dataclass(frozen=True, slots=True)
class Load:
    amount_fen: int
    terminal_id: bytes
    tx_type: int = TYPE_EP_LOAD


def load_mac1(seslk: bytes, old_balance_fen: int, ld: Load) -> bytes:
    """MAC1 = MAC(SESLK, old balance || amount || type || terminal ID)."""
    data = old_balance_fen.to_bytes(4, "big") + ld.amount_fen.to_bytes(4, "big")
    return pboc_des_mac(seslk, data + bytes([ld.tx_type]) + ld.terminal_id)


def load_mac2(seslk: bytes, ld: Load, date_bcd: bytes, time_bcd: bytes) -> bytes:
    """MAC2 = MAC(SESLK, amount || type || terminal ID || date || time)."""
    data = ld.amount_fen.to_bytes(4, "big") + bytes([ld.tx_type]) + ld.terminal_id
    return pboc_des_mac(seslk, data + date_bcd + time_bcd)


def load_tac(
    dtk: bytes,
    new_balance_fen: int,
    online_counter: int,
    ld: Load,
    date_bcd: bytes,
    time_bcd: bytes,
) -> bytes:
    """TAC = MAC(DTK_L xor DTK_R, new balance || online counter (as INITIALIZE returned it) ||
    amount || type || terminal ID || date || time)."""
    data = (
        new_balance_fen.to_bytes(4, "big")
        + online_counter.to_bytes(2, "big")
        + ld.amount_fen.to_bytes(4, "big")
        + bytes([ld.tx_type])
        + ld.terminal_id
        + date_bcd
        + time_bcd
    )
    return pboc_des_mac(tac_key(dtk), data)
