"""Property tests of the ISO 8583 layer (host_protocol.md): round trips of generated valid
messages, frames and fields; arbitrary bytes raise paycore's DecodeError and nothing else; the
frame reader is indifferent to how the stream is cut."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from paycore.errors import DecodeError
from paycore.iso8583 import fields as f
from paycore.iso8583.frame import FrameReader, Header, Tpdu, decode_frame, encode_frame
from paycore.iso8583.mac import (
    WorkingKeys,
    decode_working_keys,
    encode_signed_message,
    encode_working_keys,
    verify_message_mac,
)
from paycore.iso8583.message import FieldValue, decode_message, encode_message
from paycore.iso8583.spec import FIELD_FORMATS, FieldFormat, FieldKind

CODEC = settings(max_examples=300, deadline=None)
CRYPTO = settings(max_examples=50, deadline=None)

DIGITS = "0123456789"
AN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 "
ANS_CHARS = "".join(chr(c) for c in range(0x20, 0x7F))


def field_values(fmt: FieldFormat) -> st.SearchStrategy[FieldValue]:
    low = fmt.length if fmt.fixed else 0
    if fmt.kind is FieldKind.B:
        return st.binary(min_size=low, max_size=fmt.length)
    alphabet = {FieldKind.N: DIGITS, FieldKind.AN: AN_CHARS, FieldKind.ANS: ANS_CHARS}[fmt.kind]
    return st.text(alphabet=alphabet, min_size=low, max_size=fmt.length)


@st.composite
def field_dicts(draw: st.DrawFn) -> dict[int, FieldValue]:
    chosen = draw(st.sets(st.sampled_from(sorted(FIELD_FORMATS))))
    return {n: draw(field_values(FIELD_FORMATS[n])) for n in sorted(chosen)}


mtis = st.text(alphabet=DIGITS, min_size=4, max_size=4)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    return encode_message(draw(mtis), draw(field_dicts()))


# --- messages ---------------------------------------------------------------------------------


@CODEC
@given(mtis, field_dicts())
def test_message_round_trip(mti: str, fields: dict[int, FieldValue]) -> None:
    raw = encode_message(mti, fields)
    message = decode_message(raw)
    assert message.mti == mti
    assert dict(message.fields) == fields
    assert encode_message(message.mti, message.fields) == raw


@CODEC
@given(st.binary(max_size=600))
def test_arbitrary_bytes_into_decode_message(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        message = decode_message(raw)
        assert encode_message(message.mti, message.fields) == raw


@CODEC
@given(messages(), st.data())
def test_damaged_messages_raise_only_decode_error(raw: bytes, data: st.DataObject) -> None:
    """Flip, cut or extend a valid message: it decodes to something that encodes back to the
    same bytes, or it raises DecodeError."""
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    action = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if action == "flip":
        damaged = (
            raw[:index] + bytes([raw[index] ^ data.draw(st.integers(1, 255))]) + raw[index + 1 :]
        )
    elif action == "cut":
        damaged = raw[:index]
    else:
        damaged = raw + data.draw(st.binary(min_size=1, max_size=8))
    with contextlib.suppress(DecodeError):
        message = decode_message(damaged)
        assert encode_message(message.mti, message.fields) == damaged


@CRYPTO
@given(mtis, field_dicts(), st.binary(min_size=16, max_size=16))
def test_signed_messages_verify(mti: str, fields: dict[int, FieldValue], mak: bytes) -> None:
    raw = encode_signed_message(mak, mti, fields)
    assert verify_message_mac(mak, raw)
    assert decode_message(raw).fields.keys() == fields.keys() | {64}


# --- frames -----------------------------------------------------------------------------------

tpdus = st.builds(Tpdu, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
headers = st.builds(Header, st.integers(0, 15), st.integers(0, 15))


@CODEC
@given(tpdus, headers, st.binary(max_size=300))
def test_frame_round_trip(tpdu: Tpdu, header: Header, message: bytes) -> None:
    frame = decode_frame(encode_frame(tpdu, header, message))
    assert (frame.tpdu, frame.header, frame.message) == (tpdu, header, message)
    assert frame.tpdu.swapped().swapped() == tpdu


@CODEC
@given(st.binary(max_size=100))
def test_arbitrary_bytes_into_decode_frame(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        frame = decode_frame(raw)
        again = frame.encode()
        # the same bytes, except the header's version (8) and sub-version (10..12): not kept
        assert (again[:8], again[9], again[13:]) == (raw[:8], raw[9], raw[13:])


@CODEC
@given(st.lists(st.tuples(tpdus, headers, st.binary(max_size=64)), max_size=6), st.data())
def test_reader_is_indifferent_to_chunking(
    frames: list[tuple[Tpdu, Header, bytes]], data: st.DataObject
) -> None:
    encoded = [encode_frame(*parts) for parts in frames]
    stream = b"".join(encoded)
    reader = FrameReader()
    got = []
    position = 0
    while position < len(stream):
        size = data.draw(st.integers(min_value=1, max_value=len(stream) - position))
        got += reader.feed(stream[position : position + size])
        position += size
    assert got == [decode_frame(raw) for raw in encoded]
    assert not reader.pending


@CODEC
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_arbitrary_chunks_into_the_reader(chunks: list[bytes]) -> None:
    reader = FrameReader()
    with contextlib.suppress(DecodeError):
        for chunk in chunks:
            reader.feed(chunk)


# --- fields -----------------------------------------------------------------------------------


def _epurse_value(tag: f.EpurseTag) -> st.SearchStrategy[bytes | int | None]:
    if tag.attribute in {"balance_before_fen", "card_counter", "key_version", "alg_id",
                         "transaction_type", "terminal_serial"}:  # fmt: skip
        inner: st.SearchStrategy[bytes | int] = st.integers(0, (1 << (8 * tag.length)) - 1)
    else:
        inner = st.binary(min_size=tag.length, max_size=tag.length)
    return st.none() | inner


epurse_data = st.builds(
    f.EpurseData, **{tag.attribute: _epurse_value(tag) for tag in f.EPURSE_TAGS}
)


@CODEC
@given(epurse_data)
def test_field_58_round_trip(data: f.EpurseData) -> None:
    assert f.decode_epurse_data(f.encode_epurse_data(data)) == data


@CODEC
@given(st.binary(max_size=120), st.none() | st.sampled_from(list(f.EpurseSet)))
def test_arbitrary_bytes_into_field_58(raw: bytes, required: f.EpurseSet | None) -> None:
    with contextlib.suppress(DecodeError):
        f.decode_epurse_data(raw, required)


amounts = st.integers(0, 10**12 - 1)
counts = st.integers(0, 999)
results = st.sampled_from(list(f.SettlementResult))


@CODEC
@given(
    st.builds(
        f.SettlementTotals, amounts, counts, amounts, counts, amounts, counts, results, results
    )
)
def test_field_48_round_trip(totals: f.SettlementTotals) -> None:
    text = f.encode_settlement_totals(totals)
    assert len(text) == 62
    assert f.decode_settlement_totals(text) == totals


@CODEC
@given(
    st.builds(
        f.Field60,
        st.text(DIGITS, min_size=2, max_size=2),
        st.integers(0, 999_999),
        st.text(DIGITS, min_size=3, max_size=3),
        st.none() | st.text(DIGITS, min_size=1, max_size=1),
    ),
    st.builds(
        f.Field61,
        st.integers(0, 999_999),
        st.integers(0, 999_999),
        st.text(DIGITS, min_size=4, max_size=4),
    ),
)
def test_field_60_61_round_trip(f60: f.Field60, f61: f.Field61) -> None:
    assert f.decode_field60(f.encode_field60(f60)) == f60
    assert f.decode_field61(f.encode_field61(f61)) == f61


@CODEC
@given(st.text(max_size=70))
def test_arbitrary_text_into_field_decoders(text: str) -> None:
    for decoder in (
        f.decode_settlement_totals,
        f.decode_batch_count,
        f.decode_field60,
        f.decode_field61,
    ):
        with contextlib.suppress(DecodeError):
            decoder(text)


@CRYPTO
@given(
    st.binary(min_size=16, max_size=16),
    st.lists(st.binary(min_size=16, max_size=16), min_size=3, max_size=3),
)
def test_working_keys_round_trip(tmk: bytes, keys: list[bytes]) -> None:
    working = WorkingKeys(*keys)
    assert decode_working_keys(tmk, encode_working_keys(tmk, working)) == working
