"""Random APDUs against a powered SIM (wallet selected) and a PSAM (card.md §1: every
malformed APDU gets a status word, never an exception).

Over 100,000 APDUs in all (each test asserts its own share): pure random bytes, structured
APDUs with the wallet's and the PSAM's CLA/INS and random P1/P2/Lc/data/Le, well-formed purse
commands with random contents (so CREDIT/DEBIT/CREDIT SAM reach their MAC checks), and
truncated or over-long variants. Invariants: no exception escapes, every response ends with a
status word and is at most 256 + 2 bytes, and the wallet's balance, counters, log and proofs
never change (random data cannot make a valid MAC; the card has no PIN, so a random VERIFY
cannot change a tries counter). The PSAM's serial only moves by one, and only when an INIT SAM
answers 9000 with that serial.

Deterministic (``derandomize``, no example database) so the run is the same every time.
"""

from __future__ import annotations

import random
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card_applet_sim import bootstrap
from card_applet_sim.domain.issuance import new_psam_image, new_sim_image
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from paycore import issuer_keys
from paycore.purse import PSAM_AID, WALLET_AID

APDUS_PER_EXAMPLE_MIN = 50
APDUS_PER_EXAMPLE_MAX = 60
EXAMPLES = 500  # per test; 4 tests x 500 x >= 50 = >= 100,000 APDUs
APDUS_PER_TEST_MIN = EXAMPLES * APDUS_PER_EXAMPLE_MIN
RESPONSE_LEN_MAX = 256 + 2

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

byte = st.integers(0, 0xFF)
CLAS = (0x00, 0x80, 0x01, 0x81, 0x02, 0x03, 0x83, 0x04, 0x84, 0x0C, 0x10, 0x20, 0x40, 0x90, 0xFF)
INS = (0xA4, 0xB0, 0xB2, 0x20, 0x5C, 0x50, 0x52, 0x54, 0x5A, 0x70, 0x72)
P1P2 = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x80, 0x95, 0x96, 0x98, 0xC4, 0xC0)
DATA_LENS = (1, 2, 4, 7, 9, 11, 15, 28, 36)
TERMINAL_ID = bytes.fromhex("001122334455")


def _keys() -> issuer_keys.IssuerKeys:
    return issuer_keys.generate(random.Random(20240517).randbytes)


def _card(kind: str) -> Card:
    keys = _keys()
    if kind == "sim":
        image = new_sim_image(
            keys, bytes.fromhex("8888000000000001"), today=date(2024, 5, 17), balance_fen=50_000
        )
    else:
        image = new_psam_image(keys, TERMINAL_ID)
    return bootstrap.memory_card(image, random.Random(kind).randbytes)


# --- strategies -----------------------------------------------------------------------------


def _encode(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
    out = bytes([cla, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    if le is not None:
        out += bytes([le])
    return out


# Strategies are built once: building one inside a composite costs a validation per draw.
cla_s = st.sampled_from(CLAS) | byte
ins_s = st.sampled_from(INS) | byte
p1p2_s = st.sampled_from(P1P2) | byte
size_s = st.sampled_from((0, 0, *DATA_LENS)) | st.integers(0, 255)
le_s = st.none() | byte
channel_s = st.sampled_from((0, 1, 2, 3))
amount_s = st.sampled_from((0, 1, 100, 49_999, 50_000, 100_000)) | st.integers(0, (1 << 32) - 1)
init_p1_s = st.sampled_from((0x00, 0x01))
init_le_s = st.sampled_from((None, 0x00, 0x10))
prove_type_s = st.sampled_from((0x01, 0x02, 0x05, 0x06)) | byte
sam_len_s = st.sampled_from((28, 36))
purchase_type_s = st.sampled_from((0x05, 0x06))
select_data_s = st.sampled_from((WALLET_AID, PSAM_AID, WALLET_AID[:5], b"\x10\x01", b"?\x00"))
balance_p2_s = st.sampled_from((0x02, 0x01))
pin_s = st.binary(max_size=8)
extra_s = st.binary(min_size=1, max_size=8)
which_s = st.integers(0, 9)
how_s = st.integers(0, 3)
_binary_of: dict[int, st.SearchStrategy[bytes]] = {}


def binary_of(size: int) -> st.SearchStrategy[bytes]:
    strategy = _binary_of.get(size)
    if strategy is None:
        strategy = _binary_of[size] = st.binary(min_size=size, max_size=size)
    return strategy


@st.composite
def structured_apdus(draw: st.DrawFn) -> bytes:
    """The wallet's and the PSAM's CLA/INS with random P1/P2/Lc/data/Le."""
    cla, ins, p1, p2 = draw(cla_s), draw(ins_s), draw(p1p2_s), draw(p1p2_s)
    data = draw(binary_of(draw(size_s)))
    return _encode(cla, ins, p1, p2, data, draw(le_s))


@st.composite
def purse_commands(draw: st.DrawFn) -> bytes:
    """Well-formed commands of the wallet and the PSAM with random contents."""
    which = draw(which_s)
    if which == 0:  # INITIALIZE FOR LOAD / PURCHASE, key index 01
        data = b"\x01" + draw(amount_s).to_bytes(4, "big") + TERMINAL_ID
        return _encode(0x80, 0x50, draw(init_p1_s), 0x02, data, draw(init_le_s))
    if which == 1:  # CREDIT FOR LOAD with a random MAC2
        return _encode(0x80, 0x52, 0x00, 0x00, draw(binary_of(11)), 4)
    if which == 2:  # DEBIT FOR PURCHASE with a random MAC1
        return _encode(0x80, 0x54, 0x01, 0x00, draw(binary_of(15)), 8)
    if which == 3:  # GET TRANSACTION PROVE
        return _encode(0x80, 0x5A, 0x00, draw(prove_type_s), draw(binary_of(2)), 8)
    if which == 4:  # INIT SAM FOR PURCHASE with random fields, 28 or 36 bytes
        sam = bytearray(draw(binary_of(draw(sam_len_s))))
        if draw(st.booleans()):  # often a key version / alg / type the PSAM accepts
            sam[18], sam[19], sam[10] = 1, 0, draw(purchase_type_s)
        return _encode(0x80, 0x70, 0x00, 0x00, bytes(sam), 8)
    if which == 5:  # CREDIT SAM FOR PURCHASE with a random MAC2
        return _encode(0x80, 0x72, 0x00, 0x00, draw(binary_of(4)), None)
    if which == 6:  # READ BINARY / READ RECORD with random offsets
        ins = 0xB0 if draw(st.booleans()) else 0xB2
        return _encode(0x00, ins, draw(byte), draw(byte), b"", draw(le_s))
    if which == 7:  # VERIFY (the card has no PIN: 6A88, nothing changes)
        return _encode(0x00, 0x20, 0x00, 0x00, draw(pin_s), None)
    if which == 8:  # SELECT by AID or FID, MANAGE CHANNEL
        if draw(st.booleans()):
            data = draw(select_data_s)
            return _encode(draw(channel_s), 0xA4, draw(byte), draw(byte), data, 0)
        return _encode(draw(channel_s), 0x70, draw(byte), draw(byte), b"", 1)
    return _encode(0x80, 0x5C, 0x00, draw(balance_p2_s), b"", draw(byte))


@st.composite
def mangled(draw: st.DrawFn, inner: st.SearchStrategy[bytes]) -> bytes:
    """An APDU truncated, extended, or with an Lc that lies."""
    raw = draw(inner)
    how = draw(how_s)
    if how == 0 and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == 1:
        return raw + draw(extra_s)
    if how == 2 and len(raw) > 5:
        lied = bytearray(raw)
        lied[4] = draw(byte)
        return bytes(lied)
    return raw


@st.composite
def mac_checks(draw: st.DrawFn) -> tuple[bytes, ...]:
    """An INITIALIZE the card accepts and, directly after it, a CREDIT or DEBIT (or, for the
    PSAM, an INIT SAM and a CREDIT SAM) with random contents: the MAC checks themselves."""
    which = draw(st.integers(0, 2))
    amount = draw(st.integers(1, 49_999))
    if which == 0:
        init = b"\x01" + amount.to_bytes(4, "big") + TERMINAL_ID
        return (
            _encode(0x80, 0x50, 0x00, 0x02, init, 0x10),
            _encode(0x80, 0x52, 0x00, 0x00, draw(binary_of(11)), 4),
        )
    if which == 1:
        init = b"\x01" + amount.to_bytes(4, "big") + TERMINAL_ID
        return (
            _encode(0x80, 0x50, 0x01, 0x02, init, 0x0F),
            _encode(0x80, 0x54, 0x01, 0x00, draw(binary_of(15)), 8),
        )
    sam = bytearray(draw(binary_of(draw(sam_len_s))))
    sam[6:10] = amount.to_bytes(4, "big")
    sam[10], sam[18], sam[19] = draw(purchase_type_s), 1, 0
    return (
        _encode(0x80, 0x70, 0x00, 0x00, bytes(sam), 8),
        _encode(0x80, 0x72, 0x00, 0x00, draw(binary_of(4)), None),
    )


def _one(apdu: bytes) -> tuple[bytes, ...]:
    return (apdu,)


raw_bytes = st.binary(max_size=270)
any_apdu = st.one_of(
    raw_bytes, structured_apdus(), purse_commands(), mangled(structured_apdus() | purse_commands())
)


def apdu_lists(element: st.SearchStrategy[bytes]) -> st.SearchStrategy[list[bytes]]:
    return st.lists(element, min_size=APDUS_PER_EXAMPLE_MIN, max_size=APDUS_PER_EXAMPLE_MAX)


def chunk_lists(chunk: st.SearchStrategy[tuple[bytes, ...]]) -> st.SearchStrategy[list[bytes]]:
    """Lists of chunks of one or two APDUs that must be sent back to back, flattened."""
    chunks = st.lists(chunk, min_size=APDUS_PER_EXAMPLE_MIN, max_size=APDUS_PER_EXAMPLE_MAX)
    return chunks.map(lambda cs: [apdu for c in cs for apdu in c])


purse_chunks = (purse_commands() | mangled(purse_commands())).map(_one) | mac_checks()


# --- the invariants -------------------------------------------------------------------------


def _check_response(response: bytes) -> None:
    assert 2 <= len(response) <= RESPONSE_LEN_MAX
    assert response[-2] in (0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E,
                            0x6F, 0x90, 0x93, 0x94)  # fmt: skip


class WalletFuzz:
    def __init__(self) -> None:
        self.card = _card("sim")
        self.card.power_on()
        self.image = self.card.image
        self.state = self.card.image.state_of(WALLET_AID)
        assert isinstance(self.state, WalletState)
        self.apdus = 0

    def run(self, apdus: list[bytes]) -> None:
        card = self.card
        card.reset()
        assert card.transmit(b"\x00\xa4\x04\x00\x09" + WALLET_AID)[-2:] == b"\x90\x00"
        for apdu in apdus:
            _check_response(card.transmit(apdu))
            assert card.image is self.image  # nothing was ever committed
        self.apdus += len(apdus)
        card.reset()
        assert card.transmit(b"\x00\xa4\x04\x00\x09" + WALLET_AID)[-2:] == b"\x90\x00"
        assert card.transmit(b"\x80\x5c\x00\x02\x04") == (50_000).to_bytes(4, "big") + b"\x90\x00"
        state = card.image.state_of(WALLET_AID)
        assert isinstance(state, WalletState)
        assert (state.balance_fen, state.online_counter, state.offline_counter) == (
            50_000, 0, 0,
        )  # fmt: skip
        assert (state.log, state.proofs) == ((), ())
        assert state == self.state


class PsamFuzz:
    def __init__(self) -> None:
        self.card = _card("psam")
        self.card.power_on()
        first = self.card.image.state_of(PSAM_AID)
        assert isinstance(first, PsamState)
        self.first = first
        self.apdus = 0

    def serial(self) -> int:
        state = self.card.image.state_of(PSAM_AID)
        assert isinstance(state, PsamState)
        assert (state.mpk, state.terminal_id, state.key_version) == (
            self.first.mpk, self.first.terminal_id, self.first.key_version,
        )  # fmt: skip
        return state.serial

    def run(self, apdus: list[bytes]) -> None:
        card = self.card
        card.reset()
        assert card.transmit(b"\x00\xa4\x04\x00\x08" + PSAM_AID)[-2:] == b"\x90\x00"
        for apdu in apdus:
            before = self.serial()
            response = card.transmit(apdu)
            _check_response(response)
            after = self.serial()
            if after != before:
                # Only a successful INIT SAM moves the serial, by one, and answers it.
                assert after == before + 1
                assert response[-2:] == b"\x90\x00"
                assert response[:4] == after.to_bytes(4, "big")
                assert apdu[1] == 0x70
        self.apdus += len(apdus)


def test_wallet_random_bytes() -> None:
    fuzz = WalletFuzz()

    @FUZZ
    @given(apdu_lists(raw_bytes | mangled(raw_bytes)))
    def run(apdus: list[bytes]) -> None:
        fuzz.run(apdus)

    run()
    assert fuzz.apdus >= APDUS_PER_TEST_MIN


def test_wallet_structured_apdus() -> None:
    fuzz = WalletFuzz()

    @FUZZ
    @given(apdu_lists(any_apdu))
    def run(apdus: list[bytes]) -> None:
        fuzz.run(apdus)

    run()
    assert fuzz.apdus >= APDUS_PER_TEST_MIN


def test_wallet_purse_commands() -> None:
    fuzz = WalletFuzz()

    @FUZZ
    @given(chunk_lists(purse_chunks))
    def run(apdus: list[bytes]) -> None:
        fuzz.run(apdus)

    run()
    assert fuzz.apdus >= APDUS_PER_TEST_MIN


def test_psam_apdus() -> None:
    fuzz = PsamFuzz()

    @FUZZ
    @given(chunk_lists(any_apdu.map(_one) | mac_checks()))
    def run(apdus: list[bytes]) -> None:
        fuzz.run(apdus)

    run()
    assert fuzz.apdus >= APDUS_PER_TEST_MIN
