"""Properties of paycore.pn532: round trips, arbitrary bytes into the decoders, chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paycore import pn532
from paycore.errors import DecodeError

payloads = st.binary(min_size=1, max_size=pn532.PAYLOAD_LEN_MAX)
tfis = st.sampled_from([pn532.TFI_HOST, pn532.TFI_PN532])
information_frames = st.builds(pn532.InformationFrame, tfis, payloads)
frames: st.SearchStrategy[pn532.Frame] = st.one_of(
    information_frames,
    st.just(pn532.Ack()),
    st.just(pn532.Nack()),
    st.just(pn532.ErrorFrame()),
)
tg = st.integers(1, 0x3F)
commands: st.SearchStrategy[pn532.Command] = st.one_of(
    st.just(pn532.GetFirmwareVersion()),
    st.builds(pn532.SamConfiguration, st.integers(1, 4), st.integers(0, 255), st.integers(0, 255)),
    st.builds(pn532.InListPassiveTarget, st.integers(1, 2)),
    st.builds(
        pn532.InDataExchange, tg, st.binary(max_size=pn532.DATA_EXCHANGE_CHUNK_MAX), st.booleans()
    ),
    st.builds(pn532.InRelease, st.integers(0, 255)),
)
byte = st.integers(0, 255)
targets = st.builds(
    pn532.TargetA,
    byte,
    st.binary(min_size=2, max_size=2),
    st.just(0x20),
    st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.binary(min_size=0, max_size=20).map(lambda b: bytes([len(b) + 1]) + b),
)
responses: st.SearchStrategy[tuple[int, pn532.Response]] = st.one_of(
    st.builds(pn532.FirmwareVersion, byte, byte, byte, byte).map(lambda r: (0x02, r)),
    st.just((0x14, pn532.SamConfigured())),
    st.lists(targets, max_size=2).map(lambda t: (0x4A, pn532.ListedTargets(tuple(t)))),
    st.builds(
        pn532.DataExchangeResult, byte, st.binary(max_size=pn532.DATA_EXCHANGE_CHUNK_MAX)
    ).map(lambda r: (0x40, r)),
    st.builds(pn532.ReleaseResult, byte).map(lambda r: (0x52, r)),
)


@given(frames)
def test_frame_round_trip(frame: pn532.Frame) -> None:
    raw = frame.encode()
    assert pn532.decode_frame(raw) == frame
    assert pn532.FrameDecoder().feed(raw) == [frame]


@given(commands)
def test_command_round_trip(command: pn532.Command) -> None:
    frame = pn532.decode_frame(pn532.encode_command(command))
    assert isinstance(frame, pn532.InformationFrame)
    assert pn532.decode_command(frame) == command


@given(responses)
def test_response_round_trip(item: tuple[int, pn532.Response]) -> None:
    code, response = item
    frame = pn532.decode_frame(pn532.encode_response(response))
    assert isinstance(frame, pn532.InformationFrame)
    assert pn532.decode_response(frame, code) == response


@given(st.binary(max_size=600))
def test_decode_frame_raises_only_decode_error(raw: bytes) -> None:
    try:
        frame = pn532.decode_frame(raw)
    except DecodeError as exc:
        assert exc.what == "PN532 frame"
        assert 0 <= exc.offset <= len(raw)
    else:
        assert frame.encode() in (raw, b"\x00" + raw)


@given(tfis, payloads, st.sampled_from([0x02, 0x14, 0x4A, 0x40, 0x52, 0x60]))
def test_payload_decoders_raise_only_decode_error(tfi: int, payload: bytes, code: int) -> None:
    frame = pn532.InformationFrame(tfi, payload)
    for decode in (lambda: pn532.decode_command(frame), lambda: pn532.decode_response(frame, code)):
        try:
            decode()
        except DecodeError as exc:
            assert 0 <= exc.offset <= len(payload)


@given(st.lists(st.binary(max_size=64), max_size=30))
def test_decoder_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    decoder = pn532.FrameDecoder()
    fed = 0
    for chunk in chunks:
        for result in decoder.feed(chunk):
            fed_total = fed + len(chunk)
            if isinstance(result, pn532.BadFrame):
                assert 0 <= result.offset < fed_total
                assert isinstance(result.error, DecodeError)
            else:
                assert isinstance(
                    result, pn532.InformationFrame | pn532.Ack | pn532.Nack | pn532.ErrorFrame
                )
        fed += len(chunk)
        assert decoder.skipped <= fed


@given(st.lists(st.one_of(frames, st.binary(max_size=8)), max_size=12), st.data())
def test_random_chunking_gives_the_same_results(
    items: list[pn532.Frame | bytes], data: st.DataObject
) -> None:
    stream = b"".join(i if isinstance(i, bytes) else i.encode() for i in items)
    whole = pn532.FrameDecoder().feed(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = pn532.FrameDecoder()
    pieces: list[pn532.Frame | pn532.BadFrame] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        pieces += decoder.feed(stream[start:cut])
        start = cut
    assert pieces == whole


@given(st.lists(frames, max_size=10), st.binary(max_size=8).filter(lambda b: b"\xff" not in b))
def test_frames_survive_noise_without_start_codes(frames_: list[pn532.Frame], noise: bytes) -> None:
    stream = b"".join(noise + f.encode() for f in frames_)
    assert pn532.FrameDecoder().feed(stream) == frames_
