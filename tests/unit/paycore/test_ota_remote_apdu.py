"""TS 102 226 compact remote APDUs (paycore.ota.remote_apdu; ota.md §2)."""

from __future__ import annotations

import pytest

from paycore.apdu import CommandApdu, ResponseApdu
from paycore.errors import DecodeError, EncodeError
from paycore.ota import remote_apdu
from paycore.ota.remote_apdu import CompactResponse

SELECT_MF = CommandApdu(0x00, 0xA4, 0x00, 0x04, bytes.fromhex("3f00"))
GET_STATUS = CommandApdu(0x80, 0xF2, 0x40, 0x02, bytes.fromhex("4f00"), le=256)
SET_STATUS = CommandApdu(0x80, 0xF0, 0x40, 0x80, bytes.fromhex("a00000000386980701"))
NO_DATA = CommandApdu(0x80, 0xCA, 0x00, 0xCF)


def test_the_vector_script_is_one_select() -> None:
    """ota.md §2: the vector packets carry APDU 00a40004023f00."""
    assert remote_apdu.encode_commands([SELECT_MF]).hex() == "00a40004023f00"
    assert remote_apdu.decode_commands(bytes.fromhex("00a40004023f00")) == (SELECT_MF,)


def test_commands_round_trip_without_le() -> None:
    raw = remote_apdu.encode_commands([SELECT_MF, GET_STATUS, NO_DATA, SET_STATUS])
    assert raw.hex() == (
        "00a40004023f00" + "80f24002024f00" + "80ca00cf00" + "80f0408009a00000000386980701"
    )
    decoded = remote_apdu.decode_commands(raw)
    assert decoded == (
        SELECT_MF,
        CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00"),
        NO_DATA,
        SET_STATUS,
    )
    assert remote_apdu.decode_commands(b"") == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("00a400", "compact remote command 1: CLA INS P1 P2 P3 do not fit (at byte 0)"),
        (
            "00a40004023f",
            "compact remote command 1: Lc 2 runs past the end (1 bytes left) (at byte 4)",
        ),
        (
            "00a40004023f00" + "80f2",
            "compact remote command 2: CLA INS P1 P2 P3 do not fit (at byte 7)",
        ),
        (
            "00a40004023f00" + "80f24002ff",
            "compact remote command 2: Lc 255 runs past the end (0 bytes left) (at byte 11)",
        ),
    ],
)
def test_decode_errors_name_the_command_and_offset(raw: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        remote_apdu.decode_commands(bytes.fromhex(raw))
    assert str(info.value) == message


def test_command_count_limit() -> None:
    with pytest.raises(DecodeError, match="over 64 commands"):
        remote_apdu.decode_commands(bytes(5 * 65))
    assert len(remote_apdu.decode_commands(bytes(5 * 64))) == 64
    with pytest.raises(EncodeError, match="65 commands is over 64"):
        remote_apdu.encode_commands([NO_DATA] * 65)


@pytest.mark.parametrize(
    ("sw", "goes_on"),
    [
        (0x9000, True),
        (0x6132, True),
        (0x6100, True),
        (0x6A80, False),
        (0x6310, False),
        (0x9101, False),
    ],
)
def test_the_script_continues_after_9000_and_61xx_only(sw: int, goes_on: bool) -> None:
    assert remote_apdu.continues(sw) is goes_on


def test_run_commands_stops_at_the_first_failure_and_threads_the_state() -> None:
    answers = {
        0xA4: ResponseApdu(b"", 0x6132),
        0xF2: ResponseApdu(b"\xe3\x00", 0x6A88),
        0xF0: ResponseApdu(b"", 0x9000),
    }

    def execute(state: tuple[int, ...], apdu: CommandApdu) -> tuple[ResponseApdu, tuple[int, ...]]:
        return answers[apdu.ins], (*state, apdu.ins)

    start: tuple[int, ...] = ()
    responses, state = remote_apdu.run_commands([SELECT_MF, GET_STATUS, SET_STATUS], start, execute)
    assert state == (0xA4, 0xF2)  # SET STATUS never ran
    assert [r.sw for r in responses] == [0x6132, 0x6A88]
    result = CompactResponse.from_responses(responses)
    assert result == CompactResponse(2, 0x6A88, b"\xe3\x00")
    assert result is not None and not result.completed
    assert result.encode().hex() == "026a88e300"
    assert CompactResponse.from_responses([]) is None


def test_compact_response_of_the_vector_por() -> None:
    """ota.md §2: the 3DES PoR decodes to 1 command, SW 6132, no data."""
    response = remote_apdu.decode_response(bytes.fromhex("016132"))
    assert response == CompactResponse(1, 0x6132, b"")
    assert response.completed


def test_compact_response_limits() -> None:
    with pytest.raises(DecodeError, match="needs count and status word"):
        remote_apdu.decode_response(b"\x01\x90")
    with pytest.raises(DecodeError, match="data over 256 bytes"):
        remote_apdu.decode_response(bytes(3 + 257))
    assert remote_apdu.decode_response(bytes(3 + 256)).last_data == bytes(256)
    with pytest.raises(EncodeError):
        CompactResponse(256, 0x9000)
    with pytest.raises(EncodeError):
        CompactResponse(1, 0x9000, bytes(257))
