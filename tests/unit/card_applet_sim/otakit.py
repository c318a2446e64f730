"""Helpers of the OTA receiver tests: a fake ISD (the receiver's RemoteTarget and Scp80KeyStore
ports, its key sets and counters kept in its own instance of the card image) and the server's
side of SMS-PP (secured packet -> SMS-DELIVER -> ENVELOPE APDUs).

The fake ISD's commands (INS): E2 records its data in the log (9000); F2 answers E3 02 4F 00;
CA answers 250 bytes; EE installs a "fake-applet" instance with the AID in its data; DD deletes
the instance named by its data; 66 raises (an internal error); 6A answers 6A80; anything else
6D00. Every command that ran leaves "<key version>:<APDU hex>" in the log.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card_applet_sim import bootstrap
from card_applet_sim.adapters.stores import MemoryStore, WritePointHook
from card_applet_sim.domain.applet import (
    AppletType,
    JsonObject,
    RandomSource,
    Reply,
    SelectReply,
)
from card_applet_sim.domain.atr import SIM_ATR
from card_applet_sim.domain.image import CardImage, Instance
from card_applet_sim.domain.ota_receiver import TAR_ISD, OtaContext, OtaReceiver
from card_applet_sim.domain.runtime import Card
from paycore.apdu import CommandApdu, ResponseApdu
from paycore.ota import remote_apdu, sms
from paycore.ota.packet import PLAIN_POR, decode_por, encode_command
from paycore.ota.security import (
    ISD_MINIMUM_LEVEL,
    NO_MINIMUM_LEVEL,
    SPI_DEFAULT,
    KeyFamily,
    OtaKeys,
    SecurityLevel,
    Spi,
)
from paycore.sw import SW
from tests.unit.card_applet_sim.cardkit import det_random, make_keys, sim_image

ISD_AID = bytes.fromhex("A000000151000000")
OPEN_TAR = bytes.fromhex("B00010")  # a second target with no minimum security level
SERVER = sms.Address("12345678")
SCTS = bytes.fromhex("22705200000000")
KEYS_3DES = OtaKeys(KeyFamily.DES, bytes.fromhex("300102030405060708090a0b0c0d0e0f"),
                    bytes.fromhex("301102030405060708090a0b0c0d0e0f"))  # fmt: skip
KEYS_AES = OtaKeys(KeyFamily.AES, bytes.fromhex("200102030405060708090a0b0c0d0e0f"),
                   bytes.fromhex("201102030405060708090a0b0c0d0e0f"))  # fmt: skip
KEYS_3DES3 = OtaKeys(KeyFamily.DES, bytes(range(24)), bytes(range(24, 48)))
KEYS_DES = OtaKeys(KeyFamily.DES, bytes(range(8)), bytes(range(8, 16)))
#: Key sets of the fake ISD: version -> (keys, KIc/KID byte).
KEY_SETS: Mapping[int, tuple[OtaKeys, int]] = {
    1: (KEYS_3DES, 0x15),
    2: (KEYS_AES, 0x22),
    3: (KEYS_3DES3, 0x39),
    4: (KEYS_DES, 0x41),
}
BIG_RESPONSE = bytes(range(250))


@dataclass(frozen=True, slots=True)
class FakeIsdState:
    keys: tuple[tuple[int, OtaKeys], ...]
    counters: tuple[tuple[int, int], ...] = ()
    log: tuple[str, ...] = ()


class FakeApplet:
    def __init__(self, aid: bytes, random_bytes: RandomSource) -> None:
        self.aid = aid

    def select(self, state: Any) -> SelectReply:
        return SelectReply(Reply(SW.OK), True)

    def deselect(self) -> None:
        return None

    def process(self, state: Any, apdu: CommandApdu) -> Reply:
        return Reply(SW.INS_NOT_SUPPORTED)


def _no_json(state: Any) -> JsonObject:
    raise NotImplementedError


def _from_json(obj: Mapping[str, Any]) -> object:
    raise NotImplementedError


FAKE_TYPES: Mapping[str, AppletType] = {
    **bootstrap.APPLET_TYPES,
    "fake-isd": AppletType("fake-isd", None, FakeApplet, _no_json, _from_json),
    "fake-applet": AppletType("fake-applet", None, FakeApplet, _no_json, _from_json),
}


class FakeIsd:
    """The receiver's RemoteTarget and Scp80KeyStore, state in the image's fake-isd instance."""

    def __init__(self, minimum_level: SecurityLevel = ISD_MINIMUM_LEVEL) -> None:
        self._minimum = minimum_level

    @property
    def minimum_level(self) -> SecurityLevel:
        return self._minimum

    @staticmethod
    def state(image: CardImage) -> FakeIsdState:
        state = image.state_of(ISD_AID)
        assert isinstance(state, FakeIsdState)
        return state

    def keys(self, image: CardImage, key_version: int) -> OtaKeys | None:
        return dict(self.state(image).keys).get(key_version)

    def counter(self, image: CardImage, key_version: int) -> int:
        return dict(self.state(image).counters).get(key_version, 0)

    def with_counter(self, image: CardImage, key_version: int, counter: int) -> CardImage:
        state = self.state(image)
        counters = dict(state.counters)
        counters[key_version] = counter
        return image.with_state(ISD_AID, replace(state, counters=tuple(sorted(counters.items()))))

    def execute(
        self, image: CardImage, apdus: Sequence[CommandApdu], context: OtaContext
    ) -> tuple[Sequence[ResponseApdu], CardImage]:
        def step(image: CardImage, apdu: CommandApdu) -> tuple[ResponseApdu, CardImage]:
            state = self.state(image)
            entry = f"{context.key_version}:{apdu.encode().hex()}"
            image = image.with_state(ISD_AID, replace(state, log=(*state.log, entry)))
            if apdu.ins == 0xE2:
                return ResponseApdu(b"", SW.OK), image
            if apdu.ins == 0xF2:
                return ResponseApdu(bytes.fromhex("e3024f00"), SW.OK), image
            if apdu.ins == 0xCA:
                return ResponseApdu(BIG_RESPONSE, SW.OK), image
            if apdu.ins == 0xEE:
                added = Instance(apdu.data, "fake-applet", "installed")
                return ResponseApdu(b"", SW.OK), replace(image, instances=(*image.instances, added))
            if apdu.ins == 0xDD:
                kept = tuple(i for i in image.instances if i.aid != apdu.data)
                return ResponseApdu(b"", SW.OK), replace(image, instances=kept)
            if apdu.ins == 0x66:
                raise RuntimeError("boom")
            if apdu.ins == 0x6A:
                return ResponseApdu(b"", SW.WRONG_DATA), image
            return ResponseApdu(b"", SW.INS_NOT_SUPPORTED), image

        return remote_apdu.run_commands(apdus, image, step)


def ota_image(counters: Mapping[int, int] | None = None) -> CardImage:
    """The test SIM (wallet) plus the fake ISD holding KEY_SETS and ``counters``."""
    base = sim_image(make_keys())
    isd = FakeIsdState(
        keys=tuple((v, keys) for v, (keys, _) in KEY_SETS.items()),
        counters=tuple(sorted((counters or {}).items())),
    )
    return replace(base, instances=(Instance(ISD_AID, "fake-isd", isd), *base.instances))


@dataclass
class OtaCard:
    card: Card
    store: MemoryStore
    receiver: OtaReceiver

    @property
    def image(self) -> CardImage:
        return self.store.load()

    @property
    def isd(self) -> FakeIsdState:
        return FakeIsd.state(self.image)

    def send(self, apdu: bytes) -> ResponseApdu:
        raw = self.card.transmit(apdu)
        return ResponseApdu(raw[:-2], int.from_bytes(raw[-2:], "big"))


def ota_card(
    counters: Mapping[int, int] | None = None, hook: WritePointHook | None = None
) -> OtaCard:
    store = (
        MemoryStore(ota_image(counters)) if hook is None else MemoryStore(ota_image(counters), hook)
    )
    isd = FakeIsd()
    receiver = OtaReceiver({TAR_ISD: isd, OPEN_TAR: FakeIsd(NO_MINIMUM_LEVEL)}, isd)
    card = Card(
        store, atr=SIM_ATR, applet_types=FAKE_TYPES, random_bytes=det_random(3), ota=receiver
    )
    card.power_on()
    return OtaCard(card, store, receiver)


# --- the server's side -------------------------------------------------------------------


def script(*apdus: str) -> bytes:
    return b"".join(bytes.fromhex(a) for a in apdus)


def packet(
    data: bytes,
    counter: int,
    *,
    version: int = 1,
    spi: Spi = SPI_DEFAULT,
    tar: bytes = TAR_ISD,
    keys: OtaKeys | None = None,
    kic: int | None = None,
    kid: int | None = None,
) -> bytes:
    set_keys, coding = KEY_SETS[version]
    return encode_command(
        spi=spi,
        kic=coding if kic is None else kic,
        kid=coding if kid is None else kid,
        tar=tar,
        counter=counter,
        data=data,
        keys=set_keys if keys is None else keys,
    )


def envelope_apdus(
    secured: bytes, *, reference: int = 0, service_centre: sms.Address | None = None
) -> list[bytes]:
    """ENVELOPE (SMS-PP DOWNLOAD) APDUs for a command packet, one per SMS."""
    fields = sms.command_envelopes(
        secured,
        originator=SERVER,
        scts=SCTS,
        reference=reference,
        service_centre=service_centre,
    )
    return [sms.envelope_apdu(data) for data in fields]


def envelope_apdu(secured: bytes) -> bytes:
    (only,) = envelope_apdus(secured)
    return only


# --- malformed ENVELOPEs ---------------------------------------------------------------------

ENVELOPES_PER_EXAMPLE = 100
EXAMPLES = 500
#: ota.md / issue 6: at least 50,000 malformed ENVELOPEs per fuzzed card.
ENVELOPES_MIN = EXAMPLES * ENVELOPES_PER_EXAMPLE
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: (kind, where, value): how one corpus entry is spoiled.
mutation = st.tuples(st.integers(0, 7), st.integers(0, 1 << 16), st.integers(0, 0xFF))
REFUSALS = (1, 2, 3, 4, 5, 6, 9, 10)


def mutate(kind: int, where: int, value: int, base: bytes) -> bytes:
    pos = where % (len(base) + 1)
    if kind == 0:
        return base[:pos]  # truncated
    if kind == 1:
        return base[:pos] + bytes((value,)) + base[pos + 1 :]  # a byte replaced
    if kind == 2:
        return base[:pos] + bytes((value,)) + base[pos:]  # a byte inserted
    if kind == 3:
        return base[:pos] + base[pos + 1 :]  # a byte dropped
    if kind == 4:
        return random.Random(where * 256 + value).randbytes(value)  # garbage
    if kind == 5:
        flipped = bytearray(base)
        flipped[where % len(base)] ^= 1 << (value & 7)
        return bytes(flipped)  # one bit flipped
    if kind == 6:
        return base[: pos // 2] + base[pos:]  # a run cut out
    return base  # unmutated: the corpus is refused as it is (replay, TAR, level, key set)


def envelope_data(secured: bytes, reference: int = 5) -> list[bytes]:
    """The ENVELOPE data fields (no APDU header) of a packet, one per SMS."""
    return [apdu[5:-1] for apdu in envelope_apdus(secured, reference=reference)]


def fuzz_envelopes(
    card: Card, store: MemoryStore, corpus: Sequence[bytes], run_settings: settings
) -> int:
    """Send mutated ENVELOPEs built from ``corpus`` (entries the card must refuse even
    unmutated). Each must get 9000 with no data or a plain PoR of a refusal, 6A80, 6700 or
    6A86 -- never 6F00 (an exception inside the receiver), never 91xx (an accepted packet) --
    and the card's image must stay the very same object, with no commit. Returns the count."""
    image = store.load()
    commits = store.commits
    sent = [0]

    @run_settings
    @given(
        st.lists(mutation, min_size=ENVELOPES_PER_EXAMPLE, max_size=ENVELOPES_PER_EXAMPLE),
        st.integers(0, len(corpus) - 1),
    )
    def run(mutations: list[tuple[int, int, int]], start: int) -> None:
        for n, (kind, where, value) in enumerate(mutations):
            data = mutate(kind, where, value, corpus[(start + n) % len(corpus)])[:255]
            p1p2 = b"\x00\x00" if value % 17 else bytes((value, where & 0xFF))
            apdu = b"\x80\xc2" + p1p2 + (bytes((len(data),)) + data if data else b"")
            raw = card.transmit(apdu)
            sw = int.from_bytes(raw[-2:], "big")
            allowed = (SW.OK, SW.WRONG_DATA, SW.WRONG_LENGTH, SW.WRONG_P1P2)
            assert sw in allowed, f"{sw:04X} for {apdu.hex()}"
            if raw[:-2]:
                assert decode_por(raw[:-2], PLAIN_POR).status in REFUSALS, apdu.hex()
            sent[0] += 1
        assert store.load() is image and store.commits == commits

    run()
    return sent[0]
