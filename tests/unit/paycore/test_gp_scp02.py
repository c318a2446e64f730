"""GlobalPlatform SCP02 (paycore.gp.scp02): the ota.md §1 vectors byte for byte, the pySim
session continued, wrap/unwrap round trips at every level and tamper detection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paycore.apdu import CommandApdu, decode_command
from paycore.errors import DecodeError, EncodeError
from paycore.gp import scp02
from paycore.gp.channel import SecureChannelError, StaticKeys
from tests.unit.paycore.test_vectors import h, load_vectors

OTA_MD = "ota_md_gp_vectors.json"
PYSIM = "pysim_gp_vectors.json"
VECTORS = load_vectors(OTA_MD, "scp02")
MORE = load_vectors(PYSIM, "scp02_more")


def static_keys(record: dict[str, Any]) -> StaticKeys:
    return StaticKeys(h(record["enc"]), h(record["mac"]), h(record["dek"]))


def test_the_file_holds_the_ota_md_vector() -> None:
    assert len(VECTORS) == 1
    assert all(r["source"] == "shared/design/ota.md §1 (pySim unit tests)" for r in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_session_keys(v: dict[str, Any]) -> None:
    keys = scp02.session_keys(static_keys(v), int(v["sequence"], 16))
    assert keys.s_enc == h(v["s_enc"])
    assert keys.c_mac == h(v["c_mac"])
    assert keys.s_dek == h(v["s_dek"])


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_the_card_answers_initialize_update_byte_for_byte(v: dict[str, Any]) -> None:
    command = decode_command(h(v["initialize_update"]))
    response, _ = scp02.card_initialize_update(
        static_keys(v),
        kvn=int(v["kvn"], 16),
        key_div_data=bytes(10),
        sequence=int(v["sequence"], 16),
        card_challenge=h(v["card_challenge"]),
        host_challenge=command.data,
    )
    assert response.encode() == h(v["initialize_update_response"])
    assert scp02.InitUpdateResponse.decode(response.encode()) == response


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_host_side_of_the_session(v: dict[str, Any]) -> None:
    host_challenge = h(v["host_challenge"])
    command = scp02.initialize_update(0x20, host_challenge)  # the host asked for KVN 20
    assert command.encode() == h(v["initialize_update"])
    response = scp02.InitUpdateResponse.decode(h(v["initialize_update_response"]))
    session = scp02.open_host(static_keys(v), host_challenge, response)
    auth, channel = scp02.external_authenticate(
        session, response, host_challenge, int(v["level"], 16)
    )
    assert auth.encode() == h(v["external_authenticate"])
    for c in v["commands"]:
        wrapped, channel = scp02.wrap(channel, decode_command(h(c["plain"])))
        assert wrapped.encode() == h(c["wrapped"])
    for c in MORE[0]["commands"]:  # the same session, continued as pySim does
        wrapped, channel = scp02.wrap(channel, decode_command(h(c["plain"])))
        assert wrapped.encode().hex() == c["wrapped"].lower()


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_card_side_of_the_session(v: dict[str, Any]) -> None:
    sequence, challenge = int(v["sequence"], 16), h(v["card_challenge"])
    host_challenge = h(v["host_challenge"])
    _, session = scp02.card_initialize_update(
        static_keys(v),
        kvn=0x70,
        key_div_data=bytes(10),
        sequence=sequence,
        card_challenge=challenge,
        host_challenge=host_challenge,
    )
    channel = scp02.check_external_authenticate(
        session, sequence, challenge, host_challenge, decode_command(h(v["external_authenticate"]))
    )
    assert channel.level == 0x01
    commands = v["commands"] + MORE[0]["commands"]
    for c in commands:
        plain, channel = scp02.unwrap(channel, decode_command(h(c["wrapped"])))
        expected = decode_command(h(c["plain"]))
        assert (plain.cla, plain.ins, plain.p1, plain.p2, plain.data) == (
            expected.cla, expected.ins, expected.p1, expected.p2, expected.data,
        )  # fmt: skip


def test_a_wrong_card_cryptogram_is_refused() -> None:
    v = VECTORS[0]
    raw = bytearray(h(v["initialize_update_response"]))
    raw[-1] ^= 0xFF
    response = scp02.InitUpdateResponse.decode(bytes(raw))
    with pytest.raises(SecureChannelError, match="card cryptogram"):
        scp02.open_host(static_keys(v), h(v["host_challenge"]), response)


def test_a_wrong_host_cryptogram_or_mac_is_refused() -> None:
    v = VECTORS[0]
    sequence, challenge, hc = 1, h(v["card_challenge"]), h(v["host_challenge"])
    session = scp02.session_keys(static_keys(v), sequence)
    good = h(v["external_authenticate"])
    for i in range(5, len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        with pytest.raises(SecureChannelError):
            scp02.check_external_authenticate(
                session, sequence, challenge, hc, decode_command(bytes(bad))
            )


def test_response_codec_errors_name_the_field() -> None:
    with pytest.raises(DecodeError, match="needs 28 bytes"):
        scp02.InitUpdateResponse.decode(bytes(27))
    raw = bytearray(h(VECTORS[0]["initialize_update_response"]))
    raw[11] = 0x03
    with pytest.raises(DecodeError, match=r"SCP identifier 03 is not 02 \(at byte 11\)"):
        scp02.InitUpdateResponse.decode(bytes(raw))


def test_limits() -> None:
    with pytest.raises(EncodeError):
        scp02.derive(bytes(16), scp02.CONST_S_ENC, 0x10000)
    with pytest.raises(EncodeError):
        scp02.initialize_update(0x20, bytes(7))
    with pytest.raises(SecureChannelError):
        scp02.session_keys(StaticKeys(bytes(32), bytes(32), bytes(32)), 1)


# --- round trips and tampering ----------------------------------------------------------------

KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))


def open_pair(level: int, sequence: int = 7) -> tuple[scp02.Channel, scp02.Channel]:
    host_challenge, card_challenge = bytes(range(8)), bytes(range(10, 16))
    response, card_keys = scp02.card_initialize_update(
        KEYS,
        kvn=0x20,
        key_div_data=bytes(10),
        sequence=sequence,
        card_challenge=card_challenge,
        host_challenge=host_challenge,
    )
    host_keys = scp02.open_host(KEYS, host_challenge, response)
    auth, host = scp02.external_authenticate(host_keys, response, host_challenge, level)
    card = scp02.check_external_authenticate(
        card_keys, sequence, card_challenge, host_challenge, auth
    )
    return host, card


commands = st.builds(
    CommandApdu,
    cla=st.sampled_from([0x80, 0x81, 0x82, 0x83]),
    ins=st.integers(0, 0xFF),
    p1=st.integers(0, 0xFF),
    p2=st.integers(0, 0xFF),
    data=st.binary(max_size=200),
    le=st.none() | st.just(256),
)


@settings(max_examples=150, deadline=None)
@given(level=st.sampled_from([0x01, 0x03]), script=st.lists(commands, min_size=1, max_size=6))
def test_wrap_then_unwrap_gives_the_command_back(level: int, script: list[CommandApdu]) -> None:
    host, card = open_pair(level)
    for command in script:
        wrapped, host = scp02.wrap(host, command)
        assert wrapped.cla == command.cla | 0x04
        plain, card = scp02.unwrap(card, wrapped)
        assert plain == command
        if level == 0x03 and command.data:  # encrypted: padded to whole blocks, then the MAC
            assert len(wrapped.data) == (len(command.data) // 8 + 1) * 8 + 8


@settings(max_examples=150, deadline=None)
@given(
    level=st.sampled_from([0x01, 0x03]),
    command=commands,
    where=st.integers(0, 1000),
    flip=st.integers(1, 0xFF),
)
def test_any_tampered_byte_is_detected(
    level: int, command: CommandApdu, where: int, flip: int
) -> None:
    host, card = open_pair(level)
    wrapped, _ = scp02.wrap(host, command)
    raw = bytearray(wrapped.encode())
    positions = [0, 1, 2, 3, *range(5, 5 + len(wrapped.data))]  # header and data, not Lc/Le
    raw[positions[where % len(positions)]] ^= flip
    tampered = decode_command(bytes(raw))
    with pytest.raises(SecureChannelError):
        scp02.unwrap(card, tampered)


def test_a_replayed_command_fails_the_icv_chain() -> None:
    host, card = open_pair(0x01)
    wrapped, host = scp02.wrap(host, CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00"))
    _, card = scp02.unwrap(card, wrapped)
    with pytest.raises(SecureChannelError, match="C-MAC"):
        scp02.unwrap(card, wrapped)


def test_level_00_leaves_commands_alone_and_the_card_refuses_sm() -> None:
    host, card = open_pair(0x00)
    command = CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00")
    assert scp02.wrap(host, command) == (command, host)
    with pytest.raises(SecureChannelError, match="no C-MAC"):
        scp02.unwrap(card, CommandApdu(0x84, 0xF2, 0x80, 0x02, bytes(10)))


def test_levels_beyond_03_are_refused() -> None:
    v = VECTORS[0]
    response = scp02.InitUpdateResponse.decode(h(v["initialize_update_response"]))
    session = scp02.session_keys(static_keys(v), 1)
    for level in (0x02, 0x11, 0x13, 0x33):
        with pytest.raises(SecureChannelError, match="not supported"):
            scp02.external_authenticate(session, response, h(v["host_challenge"]), level)


def test_a_secured_command_cannot_be_wrapped_again_and_must_fit() -> None:
    host, _ = open_pair(0x03)
    with pytest.raises(EncodeError, match="already secured"):
        scp02.wrap(host, CommandApdu(0x84, 0xF2, 0, 0))
    with pytest.raises(EncodeError, match="room for the C-MAC"):
        scp02.wrap(host, CommandApdu(0x80, 0xE2, 0, 0, bytes(248)))
    with pytest.raises(EncodeError, match="encrypted command data"):
        scp02.wrap(host, CommandApdu(0x80, 0xE2, 0, 0, bytes(247)))
