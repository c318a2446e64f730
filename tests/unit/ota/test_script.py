"""The OTA server's pure domain: jobs as GP scripts, the split into secured packets (the
INSTALL [for personalization] head repeated, STORE DATA renumbered, limits), the SCP80 key set
coding, and packets built with the counters they are given."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ota.domain.errors import InvalidRecordError, ScriptError
from ota.domain.script import (
    JobKind,
    Personalisation,
    Step,
    content_of,
    install_steps,
    limit_steps,
    perso_steps,
    secure,
    simple_steps,
    split,
)
from ota.domain.sim import Scp80KeySet, SimRecord, next_counter
from paycore import pboc
from paycore.apdu import CommandApdu
from paycore.gp import commands as gp
from paycore.gp.perso import DGI_KEYS
from paycore.issuer_keys import IssuerKeys
from paycore.ota.packet import decode_command, verify_command
from paycore.ota.remote_apdu import decode_commands
from paycore.ota.security import COUNTER_MAX
from paycore.purse import WALLET_AID

KEYS = Scp80KeySet(1, "aes", bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
ISSUER = IssuerKeys(1, bytes(range(1, 17)), bytes(range(2, 18)), bytes(range(3, 19)))
ASN = bytes.fromhex("8800000000000001")
PERSO = Personalisation(ASN, "8986000000000000001", "13800000001", date(2026, 11, 22))


def commands_of(packet_data: bytes) -> list[CommandApdu]:
    return list(decode_commands(packet_data))


def test_install_is_one_packet_load_then_install() -> None:
    (packet,) = split(install_steps())
    ins = [(c.ins, c.p1) for c in commands_of(packet)]
    assert ins == [(0xE6, 0x02), (0xE8, 0x80), (0xE6, 0x0C)]


def test_personalisation_is_install_for_personalization_then_store_data() -> None:
    (packet,) = split(perso_steps(ISSUER, KEYS, PERSO))
    commands = commands_of(packet)
    assert (commands[0].ins, commands[0].p1) == (0xE6, 0x20)
    assert [c.ins for c in commands[1:]] == [0xE2]
    assert commands[1].p1 & gp.STORE_LAST_BLOCK and commands[1].p1 & gp.STORE_ENCRYPTED
    dgis = dict(gp.decode_dgis(commands[1].data))
    keys = KEYS.data_key().decrypt(dgis[DGI_KEYS])
    assert keys == b"".join(
        pboc.card_key(m, ASN) for m in (ISSUER.mpk, ISSUER.mlk, ISSUER.mtk)
    )  # diversified from the issuer's master keys for the ASN


@given(block=st.integers(60, 120), room=st.integers(40, 300))
def test_a_split_personalisation_repeats_its_head_and_renumbers(block: int, room: int) -> None:
    budget = block + room  # a block, its header and the INSTALL head always fit
    packets = split(perso_steps(ISSUER, KEYS, PERSO, block_max=block), budget)
    blocks = []
    for data in packets:
        assert len(data) <= budget
        commands = commands_of(data)
        head = gp.install_for_personalization(WALLET_AID)
        assert (commands[0].ins, commands[0].p1, commands[0].data) == (head.ins, head.p1, head.data)
        assert [c.p2 for c in commands[1:]] == list(range(len(commands) - 1))
        blocks += commands[1:]
    assert [bool(b.p1 & gp.STORE_LAST_BLOCK) for b in blocks] == [False] * (len(blocks) - 1) + [
        True
    ]
    whole = b"".join(b.data for b in blocks)
    (one,) = split(perso_steps(ISSUER, KEYS, PERSO))
    assert whole == commands_of(one)[1].data  # the same DGIs, in order


def test_steps_share_a_packet_while_they_fit_and_an_indivisible_one_must_fit() -> None:
    steps = [*install_steps(), *perso_steps(ISSUER, KEYS, PERSO)]
    assert len(split(steps)) == 1
    assert len(split(steps, 200)) == 2
    big = Step(tuple(CommandApdu(0x80, 0xE2, 0, 0, bytes(200)) for _ in range(2)))
    with pytest.raises(ScriptError, match="does not fit"):
        split([big], 300)
    with pytest.raises(ScriptError, match="budget"):
        split([big], 10)


def test_retries_leave_out_what_the_card_shows_done() -> None:
    nothing = content_of(b"", b"")
    assert len(commands_of(split(install_steps(nothing))[0])) == 3
    loaded = content_of(gp.RegistryEntry(gp.WALLET_PACKAGE_AID, 1).encode(), b"")
    assert [c.ins for c in commands_of(split(install_steps(loaded))[0])] == [0xE6]
    personal = gp.RegistryEntry(WALLET_AID, gp.APP_PERSONALIZED).encode()
    done = content_of(gp.RegistryEntry(gp.WALLET_PACKAGE_AID, 1).encode(), personal)
    assert install_steps(done) == []
    assert perso_steps(ISSUER, KEYS, PERSO, content=done) == []
    assert simple_steps(JobKind.DELETE, nothing) == []
    (delete,) = commands_of(split(simple_steps(JobKind.DELETE, done))[0])
    expected = gp.delete(gp.WALLET_PACKAGE_AID, related=True)
    assert (delete.ins, delete.p2, delete.data) == (expected.ins, 0x80, expected.data)
    with pytest.raises(ScriptError):
        content_of(b"\xe3\x01", b"")


def test_simple_jobs_and_limits() -> None:
    lock = commands_of(split(simple_steps(JobKind.LOCK))[0])
    assert lock == [gp.lock_application(WALLET_AID)]
    limit = commands_of(split(limit_steps(20_000))[0])
    assert limit[1].data == bytes.fromhex("02010400004E20")
    with pytest.raises(ScriptError, match="ceiling"):
        limit_steps(0)
    with pytest.raises(ScriptError):
        simple_steps(JobKind.PERSONALISE)


@pytest.mark.parametrize(
    ("algorithm", "length", "coding"), [("aes", 16, 0x12), ("3des", 16, 0x15), ("3des", 24, 0x19)]
)
def test_the_packet_is_secured_with_the_counter_given(
    algorithm: str, length: int, coding: int
) -> None:
    keys = Scp80KeySet(1, algorithm, bytes(length), bytes(range(length)), bytes(length))  # type: ignore[arg-type]
    assert keys.coding == coding
    data = split(simple_steps(JobKind.LOCK))[0]
    verified = verify_command(decode_command(secure(keys, 41, data)), keys.ota_keys())
    assert (verified.counter, verified.data) == (41, data)  # type: ignore[union-attr]


def test_records_check_their_fields_and_hide_keys() -> None:
    with pytest.raises(InvalidRecordError, match="KIC"):
        Scp80KeySet(1, "aes", bytes(15), bytes(16), bytes(16))
    with pytest.raises(InvalidRecordError, match="version"):
        Scp80KeySet(0, "aes", bytes(16), bytes(16), bytes(16))
    with pytest.raises(InvalidRecordError, match="ICCID"):
        SimRecord("12ab", "460001234567890", "", KEYS)
    sim = SimRecord("8986000000000000001", "460001234567890", "", KEYS)
    assert all(k.hex() not in repr(sim) for k in (KEYS.kic, KEYS.kid, KEYS.dek))
    assert next_counter(5) == 6
    with pytest.raises(InvalidRecordError, match="exhausted"):
        next_counter(COUNTER_MAX)
