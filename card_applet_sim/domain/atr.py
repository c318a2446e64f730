"""Answers to reset (ISO/IEC 7816-3) for the simulated cards."""

from __future__ import annotations


def build_atr(name: bytes) -> bytes:
    """A plausible T=1 ATR: TS 3B, T0 8K, TD1 80 (TD2 follows), TD2 01 (T=1), historical
    bytes = category 80 + COMPACT-TLV tag 5 (issuer data) carrying ``name``, then TCK."""
    if not 1 <= len(name) <= 13:
        raise ValueError("ATR name must be 1..13 bytes")
    historical = bytes([0x80, 0x50 | len(name)]) + name
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


SIM_ATR = build_atr(b"nfcpay-SIM")
PSAM_ATR = build_atr(b"nfcpay-SAM")
