"""Property tests of the paycore codecs and crypto recipes (hypothesis).

Codecs: encode/decode round trips, and arbitrary bytes either decode to something that encodes
back (for APDUs: to the same bytes) or raise DecodeError, never any other exception.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from paycore import crypto, pboc, tlv
from paycore.apdu import CommandApdu, ResponseApdu, decode_command, decode_response
from paycore.errors import DecodeError, EncodeError, MoneyError
from paycore.money import format_fen, parse_yuan
from paycore.tlv import Tlv

# No deadline: these are not timing tests, and a slow CI machine must not make them flaky.
CODEC = settings(max_examples=300, deadline=None)
CRYPTO = settings(max_examples=100, deadline=None)

byte = st.integers(min_value=0, max_value=0xFF)


# --- APDU ---------------------------------------------------------------------------------


@st.composite
def command_apdus(draw: st.DrawFn, case: int | None = None) -> CommandApdu:
    chosen = draw(st.sampled_from([1, 2, 3, 4])) if case is None else case
    data = draw(st.binary(min_size=1, max_size=255)) if chosen in (3, 4) else b""
    le = draw(st.integers(min_value=1, max_value=256)) if chosen in (2, 4) else None
    return CommandApdu(draw(byte), draw(byte), draw(byte), draw(byte), data, le)


@CODEC
@given(st.data())
def test_command_round_trip_every_case(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from([1, 2, 3, 4]), label="case")
    apdu = data.draw(command_apdus(case))
    raw = apdu.encode()
    assert apdu.case == case
    assert decode_command(raw) == apdu
    assert decode_command(raw).encode() == raw


def near_apdus() -> st.SearchStrategy[bytes]:
    """Bytes that are valid APDUs, or valid APDUs with bytes cut off or added."""
    valid = command_apdus().map(lambda a: a.encode())
    cut = st.tuples(valid, st.integers(min_value=1, max_value=8)).map(lambda t: t[0][: -t[1]])
    added = st.tuples(valid, st.binary(min_size=1, max_size=4)).map(lambda t: t[0] + t[1])
    return st.one_of(valid, cut, added)


@CODEC
@given(st.one_of(st.binary(max_size=300), near_apdus()))
def test_decode_command_arbitrary_bytes(raw: bytes) -> None:
    try:
        apdu = decode_command(raw)
    except DecodeError as err:
        assert err.what == "APDU"
        assert 0 <= err.offset <= len(raw)
        return
    assert isinstance(apdu, CommandApdu)
    assert apdu.encode() == raw


@CODEC
@given(st.binary(max_size=256), st.integers(min_value=0, max_value=0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    resp = ResponseApdu(data, sw)
    raw = resp.encode()
    assert raw == data + bytes([sw >> 8, sw & 0xFF])
    decoded = decode_response(raw)
    assert decoded == resp
    assert (decoded.sw1, decoded.sw2) == (sw >> 8, sw & 0xFF)
    assert decoded.ok == (sw == 0x9000)


@CODEC
@given(st.binary(max_size=300))
def test_decode_response_arbitrary_bytes(raw: bytes) -> None:
    try:
        resp = decode_response(raw)
    except DecodeError as err:
        assert err.what == "response APDU"
        assert 0 <= err.offset <= len(raw)
        assert len(raw) < 2 or len(raw) > 258
        return
    assert isinstance(resp, ResponseApdu)
    assert resp.encode() == raw


# --- BER-TLV ------------------------------------------------------------------------------

# First tag bytes: never 00 or FF; low five bits 11111 announce a multi-byte tag.
FIRST_SINGLE = [b for b in range(0x01, 0xFF) if b & 0x1F != 0x1F]
FIRST_MULTI = [b for b in range(0x01, 0xFF) if b & 0x1F == 0x1F]
first_byte_single = st.sampled_from(FIRST_SINGLE)
first_byte_multi = st.sampled_from(FIRST_MULTI)
continued = st.integers(min_value=0x80, max_value=0xFF)
last = st.integers(min_value=0x00, max_value=0x7F)

tags = st.one_of(
    first_byte_single,
    st.tuples(first_byte_multi, last).map(lambda t: t[0] << 8 | t[1]),
    st.tuples(first_byte_multi, continued, last).map(lambda t: t[0] << 16 | t[1] << 8 | t[2]),
)
values = st.one_of(st.binary(max_size=16), st.binary(min_size=120, max_size=300))
tlvs = st.builds(Tlv, tags, values)


@CODEC
@given(st.lists(tlvs, max_size=6))
def test_tlv_round_trip(objects: list[Tlv]) -> None:
    raw = tlv.encode(objects)
    assert tlv.decode(raw) == tuple(objects)
    for obj in objects:
        assert tlv.decode(obj.encode()) == (obj,)


constructed_tags = st.one_of(
    st.sampled_from([b for b in FIRST_SINGLE if b & 0x20]),
    st.tuples(st.sampled_from([b for b in FIRST_MULTI if b & 0x20]), last).map(
        lambda t: t[0] << 8 | t[1]
    ),
)


@CODEC
@given(constructed_tags, st.lists(tlvs, max_size=4))
def test_tlv_nested_round_trip(parent_tag: int, children: list[Tlv]) -> None:
    parent = Tlv(parent_tag, tlv.encode(children))
    assert parent.constructed
    (decoded,) = tlv.decode(parent.encode())
    assert decoded.children() == tuple(children)


@CODEC
@given(tags)
def test_tlv_tag_round_trip(tag: int) -> None:
    raw = tlv.encode_tag(tag)
    assert 1 <= len(raw) <= 3
    assert int.from_bytes(raw, "big") == tag


@CODEC
@given(st.integers(min_value=-1, max_value=0x1000000))
def test_tlv_every_encodable_tag_decodes(tag: int) -> None:
    # Pair check: whatever encode_tag accepts, decode reads back as the same tag.
    try:
        raw = tlv.encode_one(tag, b"\x01")
    except EncodeError:
        return
    assert tlv.decode(raw) == (Tlv(tag, b"\x01"),)


@CODEC
@given(st.integers(min_value=0, max_value=tlv.LENGTH_MAX))
def test_tlv_length_encoding_is_minimal(length: int) -> None:
    raw = tlv.encode_length(length)
    if length < 0x80:
        assert raw == bytes([length])
    else:
        assert raw[0] == 0x80 | (len(raw) - 1)
        assert raw[1] != 0
        assert int.from_bytes(raw[1:], "big") == length


def near_tlv() -> st.SearchStrategy[bytes]:
    valid = st.lists(tlvs, min_size=1, max_size=4).map(tlv.encode)
    cut = st.tuples(valid, st.integers(min_value=1, max_value=4)).map(lambda t: t[0][: -t[1]])
    added = st.tuples(valid, st.binary(min_size=1, max_size=4)).map(lambda t: t[0] + t[1])
    return st.one_of(valid, cut, added)


@CODEC
@given(st.one_of(st.binary(max_size=200), near_tlv()))
def test_tlv_decode_arbitrary_bytes(raw: bytes) -> None:
    try:
        objects = tlv.decode(raw)
    except DecodeError as err:
        assert err.what == "BER-TLV"
        assert 0 <= err.offset <= len(raw)
        return
    # Lengths may have been written in a longer form than needed; the objects survive.
    assert tlv.decode(tlv.encode(objects)) == objects
    assert len(tlv.encode(objects)) <= len(raw)
    for obj in objects:
        if obj.constructed:
            with contextlib.suppress(DecodeError):
                obj.children()


# --- money --------------------------------------------------------------------------------


@CODEC
@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_money_round_trip(amount_fen: int) -> None:
    text = format_fen(amount_fen)
    assert parse_yuan(text) == amount_fen
    whole, frac = text.split(".")
    assert len(frac) == 2
    assert whole == str(amount_fen // 100)
    if amount_fen % 10 == 0:
        assert parse_yuan(f"{whole}.{frac[0]}") == amount_fen
    if amount_fen % 100 == 0:
        assert parse_yuan(whole) == amount_fen


@CODEC
@given(st.integers(min_value=-(10**14), max_value=-1))
def test_format_negative_is_minus_positive(amount_fen: int) -> None:
    assert format_fen(amount_fen) == "-" + format_fen(-amount_fen)


@CODEC
@given(st.one_of(st.text(max_size=20), st.from_regex(r"[0-9.,+\-e ]{0,16}", fullmatch=True)))
def test_parse_yuan_arbitrary_text(text: str) -> None:
    try:
        amount_fen = parse_yuan(text)
    except MoneyError:
        return
    # Accepted text is plain ASCII digits with at most one point; Decimal is the oracle.
    assert set(text) <= set("0123456789.")
    assert Decimal(text) * 100 == amount_fen
    assert parse_yuan(format_fen(amount_fen)) == amount_fen


# --- crypto -------------------------------------------------------------------------------

des_keys = st.one_of(st.binary(min_size=8, max_size=8), st.binary(min_size=16, max_size=16))
des_keys_any = st.one_of(des_keys, st.binary(min_size=24, max_size=24))
des_data = st.integers(min_value=0, max_value=8).flatmap(
    lambda n: st.binary(min_size=8 * n, max_size=8 * n)
)


@CRYPTO
@given(st.binary(max_size=64), st.sampled_from([8, 16]))
def test_pad80_round_trip(data: bytes, block: int) -> None:
    padded = crypto.pad80(data, block)
    assert len(padded) % block == 0
    assert len(data) < len(padded) <= len(data) + block
    assert padded[: len(data)] == data
    assert crypto.unpad80(padded) == data


@CRYPTO
@given(des_keys_any, des_data)
def test_des_ecb_round_trip(key: bytes, data: bytes) -> None:
    cipher = crypto.des_ecb_encrypt(key, data)
    assert len(cipher) == len(data)
    assert crypto.des_ecb_decrypt(key, cipher) == data


@CRYPTO
@given(des_keys_any, des_data, st.binary(min_size=8, max_size=8))
def test_des_cbc_round_trip(key: bytes, data: bytes, iv: bytes) -> None:
    assert crypto.des_cbc_decrypt(key, crypto.des_cbc_encrypt(key, data, iv), iv) == data


@CRYPTO
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8))
def test_diversify_halves(master: bytes, factor: bytes) -> None:
    key = pboc.diversify(master, factor)
    assert len(key) == 16
    assert key[:8] == crypto.des_ecb_encrypt(master, factor)
    assert key[8:] == crypto.des_ecb_encrypt(master, crypto.xor(factor, b"\xff" * 8))


@CRYPTO
@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=4, max_size=4),
    st.integers(min_value=0, max_value=0xFFFF),
    st.integers(min_value=0, max_value=0xFFFFFFFF),
)
def test_session_keys_deterministic_and_8_bytes(
    key: bytes, random4: bytes, counter: int, serial: int
) -> None:
    sespk = pboc.purchase_session_key(key, random4, counter, serial)
    assert len(sespk) == 8
    assert sespk == pboc.purchase_session_key(key, random4, counter, serial)
    assert sespk == pboc.purchase_session_key(key, random4, counter, serial & 0xFFFF)
    seslk = pboc.load_session_key(key, random4, counter)
    assert len(seslk) == 8
    assert seslk == pboc.load_session_key(key, random4, counter)


@CRYPTO
@given(st.binary(min_size=8, max_size=8), st.binary(max_size=40))
def test_pboc_des_mac_is_4_bytes_and_deterministic(key8: bytes, data: bytes) -> None:
    mac = crypto.pboc_des_mac(key8, data)
    assert len(mac) == 4
    assert crypto.mac_equal(mac, crypto.pboc_des_mac(key8, data))
    assert mac == crypto.des_cbc_encrypt(key8, crypto.pad80(data))[-8:-4]
