"""Property tests of the OTA codecs (paycore.ota; ota.md §2).

- build -> parse round trips of command packets and PoRs for every algorithm, key length and
  SPI combination;
- arbitrary bytes never raise anything but DecodeError (packets, PoRs, TPDUs, ENVELOPEs,
  proactive commands, terminal responses, compact scripts), and verify_command never raises;
- segment -> reassemble round trips, in any order, through SMS-DELIVER and the ENVELOPE.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paycore.apdu import CommandApdu
from paycore.errors import DecodeError
from paycore.ota import remote_apdu, sms
from paycore.ota.packet import (
    PLAIN_POR,
    Por,
    PorSecurity,
    RefusedCommand,
    VerifiedCommand,
    decode_command,
    decode_por,
    encode_command,
    encode_por,
    verify_command,
)
from paycore.ota.security import (
    COUNTER_MAX,
    Checksum,
    CounterMode,
    KeyFamily,
    OtaKeys,
    PorRequest,
    PorStatus,
    Spi,
)

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
GARBAGE = settings(max_examples=2000, deadline=None, derandomize=True, database=None)

#: (family, key length, KIc/KID codings that name that algorithm explicitly or implicitly)
ALGORITHMS = [
    (KeyFamily.DES, 8, (0x01, 0x00)),
    (KeyFamily.DES, 16, (0x05, 0x00)),
    (KeyFamily.DES, 24, (0x09, 0x00)),
    (KeyFamily.AES, 16, (0x02, 0x00)),
    (KeyFamily.AES, 24, (0x02, 0x00)),
    (KeyFamily.AES, 32, (0x02, 0x00)),
]


@st.composite
def key_sets(draw: st.DrawFn) -> tuple[OtaKeys, int]:
    family, length, codings = draw(st.sampled_from(ALGORITHMS))
    kic = draw(st.binary(min_size=length, max_size=length))
    kid = draw(st.binary(min_size=length, max_size=length))
    version = draw(st.integers(1, 15))
    return OtaKeys(family, kic, kid), version << 4 | draw(st.sampled_from(codings))


spis = st.builds(
    Spi,
    checksum=st.sampled_from([Checksum.NONE, Checksum.RC, Checksum.CC]),
    ciphered=st.booleans(),
    counter=st.sampled_from(list(CounterMode)),
    por=st.sampled_from(list(PorRequest)),
    por_checksum=st.sampled_from([Checksum.NONE, Checksum.RC, Checksum.CC]),
    por_ciphered=st.booleans(),
    por_by_sms_submit=st.booleans(),
)
tars = st.binary(min_size=3, max_size=3)
counters = st.integers(0, COUNTER_MAX)


def _kid(checksum: Checksum, coding: int) -> int:
    return (coding & 0xF0) | 0x05 if checksum is Checksum.RC else coding


@SETTINGS
@given(key_sets(), spis, tars, counters, st.binary(max_size=600))
def test_command_build_parse_round_trip(
    key_set: tuple[OtaKeys, int], spi: Spi, tar: bytes, counter: int, data: bytes
) -> None:
    keys, coding = key_set
    packet = encode_command(
        spi=spi, kic=coding, kid=_kid(spi.checksum, coding), tar=tar, counter=counter,
        data=data, keys=keys,
    )  # fmt: skip
    parsed = decode_command(packet)
    assert (parsed.spi, parsed.tar) == (spi, tar)
    verified = verify_command(parsed, keys)
    assert isinstance(verified, VerifiedCommand)
    assert (verified.data, verified.counter) == (data, counter)


@SETTINGS
@given(
    key_sets(),
    spis,
    tars,
    counters,
    st.sampled_from(list(PorStatus)),
    st.binary(max_size=280),
)
def test_por_build_parse_round_trip(
    key_set: tuple[OtaKeys, int],
    spi: Spi,
    tar: bytes,
    counter: int,
    status: PorStatus,
    data: bytes,
) -> None:
    keys, coding = key_set
    security = PorSecurity.for_command(spi, coding, _kid(spi.por_checksum, coding), keys)
    user_data = encode_por(tar=tar, counter=counter, status=status, data=data, security=security)
    assert decode_por(user_data, security) == Por(tar, counter, status, data, not security.plain)


@SETTINGS
@given(key_sets(), spis, tars, counters, st.binary(max_size=100), st.data())
def test_tampered_commands_are_refused_never_raise(
    key_set: tuple[OtaKeys, int],
    spi: Spi,
    tar: bytes,
    counter: int,
    data: bytes,
    draw: st.DataObject,
) -> None:
    keys, coding = key_set
    packet = bytearray(
        encode_command(
            spi=spi, kic=coding, kid=_kid(spi.checksum, coding), tar=tar, counter=counter,
            data=data, keys=keys,
        )
    )  # fmt: skip
    i = draw.draw(st.integers(2, len(packet) - 1))
    packet[i] ^= draw.draw(st.integers(1, 0xFF))
    try:
        parsed = decode_command(bytes(packet))
    except DecodeError:
        return
    result = verify_command(parsed, keys)
    if spi.checksum is not Checksum.NONE:
        assert isinstance(result, RefusedCommand)


# --- arbitrary bytes: DecodeError only -------------------------------------------------------

SOME_KEYS = OtaKeys(KeyFamily.DES, bytes(range(16)), bytes(range(16, 32)))
SOME_AES = OtaKeys(KeyFamily.AES, bytes(range(16)), bytes(range(16, 32)))
POR_SECURITIES = [
    PLAIN_POR,
    PorSecurity(Checksum.CC, False, 0x15, 0x15, SOME_KEYS),
    PorSecurity(Checksum.CC, True, 0x15, 0x15, SOME_KEYS),
    PorSecurity(Checksum.CC, True, 0x12, 0x12, SOME_AES),
    PorSecurity(Checksum.RC, False, 0x15, 0x15, None),
    PorSecurity(Checksum.NONE, True, 0x12, 0x12, SOME_AES),
]
tlv_like = st.lists(
    st.tuples(st.sampled_from([0x81, 0x82, 0x83, 0x86, 0x8B, 0x02, 0x0B, 0x7F, 0xD0, 0xD1, 0x00]),
              st.binary(max_size=40)),
    max_size=5,
).map(lambda objs: b"".join(bytes((t, len(v))) + v for t, v in objs))  # fmt: skip
garbage = (
    st.binary(max_size=300) | tlv_like | tlv_like.map(lambda b: b"\xd1" + bytes((len(b),)) + b)
)
#: Garbage behind a length that matches (CPL / RPL), so decoding goes past the first check.
framed = st.binary(max_size=200).map(lambda b: len(b).to_bytes(2, "big") + b)
framed_commands = framed | st.tuples(
    st.sampled_from([13, 17, 21, 29]),
    st.integers(0, 0x1F),
    st.integers(0, 0x3E),
    st.binary(min_size=5, max_size=5),
    st.binary(max_size=120),
).map(lambda t: (8 + len(t[4])).to_bytes(2, "big") + bytes((t[0], t[1], t[2])) + t[3] + t[4])


@GARBAGE
@given(garbage | framed_commands)
def test_command_decoder_and_verifier_on_garbage(raw: bytes) -> None:
    try:
        parsed = decode_command(raw)
    except DecodeError:
        return
    for keys in (SOME_KEYS, SOME_AES, None):
        assert isinstance(verify_command(parsed, keys), VerifiedCommand | RefusedCommand)


@GARBAGE
@given(garbage | framed, st.sampled_from(POR_SECURITIES))
def test_por_decoder_on_garbage(raw: bytes, security: PorSecurity) -> None:
    for candidate in (raw, b"\x02\x71\x00" + raw):
        with contextlib.suppress(DecodeError):
            decode_por(candidate, security)


@GARBAGE
@given(garbage)
def test_sms_and_cat_decoders_on_garbage(raw: bytes) -> None:
    decoders = (
        sms.decode_deliver,
        sms.decode_submit,
        sms.decode_sms_pp_download,
        sms.decode_send_short_message,
        sms.decode_terminal_response,
        remote_apdu.decode_commands,
        remote_apdu.decode_response,
        Spi.decode,
    )
    for decode in decoders:
        with contextlib.suppress(DecodeError):
            decode(raw)
    try:
        user_data = sms.decode_user_data(raw[:140], True)
        sms.Reassembly().add("1", user_data)
    except DecodeError:
        pass


@GARBAGE
@given(st.binary(max_size=140), st.booleans(), st.binary(max_size=30))
def test_deliver_with_garbage_user_data(ud: bytes, udhi: bool, oa: bytes) -> None:
    tpdu = bytes((0x40 if udhi else 0x00, 4, 0x81)) + b"\x21\x43" + b"\x7f\xf6" + bytes(7)
    for raw in (tpdu + bytes((len(ud),)) + ud, bytes((0x40, len(oa))) + oa + ud):
        with contextlib.suppress(DecodeError):
            sms.decode_deliver(raw)


# --- round trips of the transport ------------------------------------------------------------

digits = st.text(alphabet="0123456789*#abc", max_size=20)


@SETTINGS
@given(st.binary(max_size=2048), st.integers(0, 0xFFFF), digits, st.randoms(use_true_random=False))
def test_segment_and_reassemble_in_any_order(
    packet: bytes, reference: int, originator: str, rnd: object
) -> None:
    import random

    assert isinstance(rnd, random.Random)
    parts = sms.split_packet(packet, sms.IEI_COMMAND_PACKET, reference)
    assert all(len(p.encode()) <= sms.USER_DATA_LEN_MAX for p in parts)
    envelopes = [
        sms.SmsPpDownload(sms.SmsDeliver(sms.Address(originator), bytes(7), part).encode()).encode()
        for part in parts
    ]
    order = list(range(len(envelopes)))
    rnd.shuffle(order)
    state = sms.Reassembly()
    whole = None
    for n, i in enumerate(order):
        deliver = sms.decode_deliver(sms.decode_sms_pp_download(envelopes[i]).tpdu)
        assert deliver.originator.digits == originator
        state, whole = state.add(deliver.originator.digits, deliver.user_data)
        assert (whole is None) == (n < len(order) - 1)
    assert whole == sms.UserData((sms.InformationElement(sms.IEI_COMMAND_PACKET),), packet)


@SETTINGS
@given(
    st.binary(max_size=140 - 3),
    digits,
    st.integers(0x80, 0xFF),
    st.integers(0, 0xFF),
    st.integers(1, 0xFE),
    st.none() | digits.map(sms.Address),
)
def test_submit_and_send_short_message_round_trip(
    payload: bytes,
    destination: str,
    ton_npi: int,
    reference: int,
    number: int,
    centre: sms.Address | None,
) -> None:
    submit = sms.SmsSubmit(
        sms.Address(destination, ton_npi),
        sms.UserData((sms.InformationElement(sms.IEI_RESPONSE_PACKET),), payload),
        reference,
    )
    assert sms.decode_submit(submit.encode()) == submit
    command = sms.SendShortMessage(submit.encode(), number, service_centre=centre)
    assert sms.decode_send_short_message(command.encode()) == command


@SETTINGS
@given(
    st.lists(
        st.builds(
            CommandApdu,
            st.integers(0, 0xFF),
            st.integers(0, 0xFF),
            st.integers(0, 0xFF),
            st.integers(0, 0xFF),
            st.binary(max_size=255),
        ),
        max_size=8,
    )
)
def test_compact_script_round_trip(apdus: list[CommandApdu]) -> None:
    assert remote_apdu.decode_commands(remote_apdu.encode_commands(apdus)) == tuple(apdus)
