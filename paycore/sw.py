"""ISO/IEC 7816-4 and PBOC ED/EP status words used across nfcpay (card.md §1, §2, §5)."""

from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    OK = 0x9000
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81  # also: application blocked (temporarily, by OTA)
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    WRONG_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2_OFFSET = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    COMMAND_CHAINING_NOT_SUPPORTED = 0x6884
    NO_PRECISE_DIAGNOSIS = 0x6F00
    SELECTED_FILE_INVALIDATED = 0x6999
    # PBOC ED/EP (JR/T 0025) purse status words
    MAC_INVALID = 0x9302
    APPLICATION_LOCKED = 0x9303
    INSUFFICIENT_BALANCE = 0x9401
    LIMIT_EXCEEDED = 0x9402
    KEY_INDEX_NOT_FOUND = 0x9403
    MAC_UNAVAILABLE = 0x9406  # JR/T 0025: the MAC/TAC asked for is not available


APPLICATION_BLOCKED = SW.FUNCTION_NOT_SUPPORTED


def sw_wrong_le(exact_length: int) -> int:
    """6Cxx: wrong Le, xx = the exact length available (00 means 256)."""
    if not 0 <= exact_length <= 256:
        raise ValueError("Le correction out of range")
    return 0x6C00 | (exact_length & 0xFF)


def sw_pin_tries_left(tries_left: int) -> int:
    """63Cx: verification failed, x tries left."""
    if not 0 <= tries_left <= 15:
        raise ValueError("tries out of range")
    return 0x63C0 | tries_left


def sw_bytes(sw: int) -> bytes:
    return sw.to_bytes(2, "big")
