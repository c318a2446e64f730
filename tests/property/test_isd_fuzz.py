"""Random APDUs at the issuer security domain (ota.md §1; card.md §1: a status word for every
APDU, never an exception).

Unauthenticated (no session, a session whose handshake random EXTERNAL AUTHENTICATEs break, and
an open session hit by unwrapped or badly MACed commands): no exception and no 6F00, every
response ends with a status word within 256 + 2 bytes, and the card image is unchanged but for
the secure channel sequence counters, which INITIALIZE UPDATE moves forward (Amendment D: every
card challenge is new). Authenticated (commands correctly wrapped, random contents): no
exception, no 6F00, and whatever changed is a valid image that the codec reads back.

Deterministic (``derandomize``, no example database) so the run is the same every time.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card_applet_sim import bootstrap
from card_applet_sim.domain.image import CardImage, decode_image, encode_image
from card_applet_sim.domain.isd_state import IsdState
from card_applet_sim.domain.issuance import with_isd
from card_applet_sim.domain.runtime import Card
from paycore import issuer_keys
from paycore.apdu import CommandApdu
from paycore.gp import commands as gp
from paycore.gp import perso, scp03
from paycore.purse import WALLET_AID
from tests.unit.card_applet_sim.cardkit import det_random, sim_image
from tests.unit.card_applet_sim.gpkit import GpHost

EXAMPLES = 500
APDUS_PER_EXAMPLE = 50
RESPONSE_LEN_MAX = 256 + 2
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

byte = st.integers(0, 0xFF)
CLAS = (0x80, 0x84, 0x00, 0x04, 0x81, 0x85, 0x88, 0x8C, 0xC0, 0xA0)
INS = (0x50, 0x82, 0xCA, 0xE6, 0xE8, 0xE4, 0xF2, 0xF0, 0xD8, 0xE2, 0xA4, 0x70, 0x5C, 0x00)
P1P2 = (0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x0C, 0x10, 0x20, 0x30, 0x40, 0x66, 0x7F, 0x80,
        0x81, 0x88, 0x91, 0xC1, 0xE0, 0xE8, 0xFF)  # fmt: skip
AIDS = (WALLET_AID, gp.ISD_AID, gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, bytes(5))

DGIS = (0x0101, 0x0102, 0x0201, 0x0202, 0x0203, 0x8001, 0x9001)


def put_key(p1: int, data: bytes) -> CommandApdu:
    return CommandApdu(0x80, 0xD8, p1, 0x81, data)


aid = st.sampled_from(AIDS) | st.binary(min_size=5, max_size=16)
well_formed = st.one_of(
    st.builds(gp.install_for_load, aid),
    st.builds(gp.install_for_install, aid, aid, aid),
    st.builds(gp.install_for_personalization, aid),
    st.builds(gp.install_for_make_selectable, aid),
    st.builds(lambda a, r: gp.delete(a, related=r), aid, st.booleans()),
    st.builds(gp.lock_application, aid),
    st.builds(gp.unlock_application, aid),
    st.builds(gp.set_status, st.sampled_from([0x80, 0x40]), byte),
    st.builds(gp.get_status, st.sampled_from([0x80, 0x40, 0x20, 0x10])),
    st.builds(
        lambda b, d, last, enc: gp.store_data(b, gp.encode_dgis(d), last=last, encrypted=enc),
        st.integers(0, 3),
        st.lists(st.tuples(st.sampled_from(DGIS), st.binary(max_size=50)), max_size=3),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(put_key, byte, st.binary(min_size=1, max_size=80)),
    st.sampled_from(gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID), block_len=5)),
)


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    header = bytes(
        [draw(st.sampled_from(CLAS)), draw(st.sampled_from(INS)),
         draw(st.sampled_from(P1P2)), draw(st.sampled_from(P1P2))]
    )  # fmt: skip
    data = draw(st.binary(max_size=40) | st.sampled_from([bytes(8), bytes(16), bytes(24)]))
    le = draw(st.sampled_from([b"", b"\x00", b"\x10"]))
    return header + (bytes([len(data)]) + data if data else b"") + le


@st.composite
def garbled(draw: st.DrawFn) -> bytes:
    """A well-formed GP command, plain or with CLA 84 and a random 8-byte "C-MAC"."""
    command: CommandApdu = draw(well_formed)
    if draw(st.booleans()) and len(command.data) <= 247:
        mac = draw(st.binary(min_size=8, max_size=8))
        command = replace(command, cla=0x84, data=command.data + mac)
    return command.encode()


apdu = st.one_of(st.binary(min_size=0, max_size=40), structured(), garbled())


def fuzz_card() -> Card:
    keys = issuer_keys.generate(det_random(20240517))
    image = with_isd(sim_image(keys))
    card = bootstrap.memory_card(image, det_random(1))
    card.power_on()
    return card


def without_counters(image: CardImage) -> tuple[object, ...]:
    out: list[object] = []
    for inst in image.instances:
        state = inst.state
        if isinstance(state, IsdState):
            state = replace(state, key_sets=tuple(replace(k, counter=0) for k in state.key_sets))
        out.append((inst.aid, inst.type_name, state))
    return tuple(out)


def counters(image: CardImage) -> list[int]:
    return [k.counter for i in image.instances if isinstance(i.state, IsdState)
            for k in i.state.key_sets]  # fmt: skip


def check_response(response: bytes) -> None:
    assert 2 <= len(response) <= RESPONSE_LEN_MAX
    assert response[-2:] != b"\x6f\x00", "an internal error in the ISD"


CARD = fuzz_card()
START = CARD.image


@FUZZ
@given(
    opening=st.sampled_from(["none", "handshake", "session"]),
    apdus=st.lists(apdu, min_size=APDUS_PER_EXAMPLE, max_size=APDUS_PER_EXAMPLE),
)
def test_unauthenticated_random_apdus_change_nothing(opening: str, apdus: list[bytes]) -> None:
    card = CARD
    card.power_on()
    before = card.image
    assert card.transmit(bytes.fromhex("00A4040008") + gp.ISD_AID)[-2:] == b"\x90\x00"
    if opening == "handshake":
        assert card.transmit(scp03.initialize_update(0x30, bytes(8)).encode())[-2:] == b"\x90\x00"
    elif opening == "session":
        GpHost(card).open(0x01)
    for raw in apdus:
        check_response(card.transmit(raw))
    after = card.image
    assert without_counters(after) == without_counters(before)
    assert all(b >= a for a, b in zip(counters(before), counters(after), strict=True))
    assert without_counters(after) == without_counters(START)


@FUZZ
@given(
    level=st.sampled_from([0x01, 0x03, 0x13, 0x33]),
    commands=st.lists(well_formed, min_size=10, max_size=20),
)
def test_authenticated_random_commands_leave_a_valid_card(
    level: int, commands: list[CommandApdu]
) -> None:
    card = bootstrap.memory_card(START, det_random(2))
    card.power_on()
    host = GpHost(card).open(level)
    assert host.dek is not None
    dgis = perso.WalletPerso(bytes(30), bytes(20), bytes(16), bytes(16), bytes(16)).dgis(host.dek)
    for command in [*commands, *perso.store_data_commands(WALLET_AID, dgis)]:
        if len(command.data) > 200:
            continue
        response = host.send(command)
        assert response.sw != 0x6F00, command
    image = card.image
    assert decode_image(encode_image(image, bootstrap.APPLET_TYPES), bootstrap.APPLET_TYPES) == (
        image
    )


def test_the_fuzz_sends_enough_apdus() -> None:
    assert EXAMPLES * APDUS_PER_EXAMPLE >= 25_000
