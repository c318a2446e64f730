"""paycore.sw: the status words of card.md §1, §2 and §5."""

from __future__ import annotations

import pytest

from paycore.sw import APPLICATION_BLOCKED, SW, sw_bytes, sw_pin_tries_left, sw_wrong_le


@pytest.mark.parametrize(
    ("sw", "value"),
    [
        # card.md §1
        (SW.OK, 0x9000),
        (SW.WRONG_LENGTH, 0x6700),
        (SW.WRONG_P1P2, 0x6A86),
        (SW.WRONG_P1P2_OFFSET, 0x6B00),
        (SW.INS_NOT_SUPPORTED, 0x6D00),
        (SW.CLA_NOT_SUPPORTED, 0x6E00),
        (SW.FILE_NOT_FOUND, 0x6A82),
        (SW.RECORD_NOT_FOUND, 0x6A83),
        (SW.CONDITIONS_NOT_SATISFIED, 0x6985),
        (SW.SECURITY_STATUS_NOT_SATISFIED, 0x6982),
        (SW.NO_PRECISE_DIAGNOSIS, 0x6F00),
        # card.md §2
        (SW.AUTH_METHOD_BLOCKED, 0x6983),
        (SW.MAC_INVALID, 0x9302),
        (SW.APPLICATION_LOCKED, 0x9303),
        (SW.INSUFFICIENT_BALANCE, 0x9401),
        (SW.LIMIT_EXCEEDED, 0x9402),
        (SW.KEY_INDEX_NOT_FOUND, 0x9403),
        (SW.MAC_UNAVAILABLE, 0x9406),
        (APPLICATION_BLOCKED, 0x6A81),
        # ISO/IEC 7816-4
        (SW.LOGICAL_CHANNEL_NOT_SUPPORTED, 0x6881),
        (SW.WRONG_DATA, 0x6A80),
        (SW.FUNCTION_NOT_SUPPORTED, 0x6A81),
        (SW.REFERENCED_DATA_NOT_FOUND, 0x6A88),
        (SW.SELECTED_FILE_INVALIDATED, 0x6999),
    ],
)
def test_status_word_values(sw: SW, value: int) -> None:
    assert sw == value
    assert int(sw) == value


def test_status_words_are_unique() -> None:
    # An IntEnum silently turns a repeated value into an alias; none is wanted here.
    assert len(SW.__members__) == len(list(SW))


@pytest.mark.parametrize(
    ("exact_length", "sw"),
    [(0, 0x6C00), (1, 0x6C01), (0x10, 0x6C10), (255, 0x6CFF), (256, 0x6C00)],
)
def test_sw_wrong_le(exact_length: int, sw: int) -> None:
    assert sw_wrong_le(exact_length) == sw


@pytest.mark.parametrize("exact_length", [-1, 257, 1000])
def test_sw_wrong_le_refuses(exact_length: int) -> None:
    with pytest.raises(ValueError, match=r"^Le correction out of range$"):
        sw_wrong_le(exact_length)


@pytest.mark.parametrize(("tries", "sw"), [(0, 0x63C0), (2, 0x63C2), (3, 0x63C3), (15, 0x63CF)])
def test_sw_pin_tries_left(tries: int, sw: int) -> None:
    assert sw_pin_tries_left(tries) == sw


@pytest.mark.parametrize("tries", [-1, 16])
def test_sw_pin_tries_left_refuses(tries: int) -> None:
    with pytest.raises(ValueError, match=r"^tries out of range$"):
        sw_pin_tries_left(tries)


@pytest.mark.parametrize(
    ("sw", "raw"),
    [(SW.OK, b"\x90\x00"), (SW.MAC_INVALID, b"\x93\x02"), (0x6C10, b"\x6c\x10"), (0, b"\x00\x00")],
)
def test_sw_bytes(sw: int, raw: bytes) -> None:
    assert sw_bytes(sw) == raw
