"""paycore.pn532: the frames and commands of pcsc.md "Serial NFC reader (PN532 over UART)"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paycore import pn532
from paycore.errors import DecodeError, EncodeError

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "pcsc_md_pn532_vectors.json").read_text(
        encoding="utf-8"
    )
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def records(group: str) -> list[dict[str, Any]]:
    out = VECTORS[group]
    assert out
    for record in out:
        assert record["source"] == "shared/design/pcsc.md"
    return list(out)


# --- the known frames of pcsc.md ------------------------------------------------------------


@pytest.mark.parametrize("vector", records("frames"), ids=lambda v: v["name"])
def test_known_frames_decode_and_encode(vector: dict[str, Any]) -> None:
    raw = h(vector["frame"])
    frame = pn532.decode_frame(raw)
    kinds = {
        "information": pn532.InformationFrame,
        "ack": pn532.Ack,
        "nack": pn532.Nack,
        "error": pn532.ErrorFrame,
    }
    assert isinstance(frame, kinds[vector["kind"]])
    if isinstance(frame, pn532.InformationFrame):
        assert frame.tfi == int(vector["tfi"], 16)
        assert frame.payload == h(vector["payload"])
    assert frame.encode() == raw
    assert pn532.FrameDecoder().feed(raw) == [frame]


def test_known_constants() -> None:
    by_kind = {v["kind"]: h(v["frame"]) for v in records("frames")}
    assert by_kind["ack"] == pn532.ACK
    assert by_kind["nack"] == pn532.NACK
    assert by_kind["error"] == pn532.ERROR_FRAME
    assert h(records("wake_up")[0]["bytes"]) == pn532.WAKE_UP


def test_get_firmware_version_known_answer() -> None:
    host, answer = (h(v["frame"]) for v in records("frames")[:2])
    assert pn532.encode_command(pn532.GetFirmwareVersion()) == host
    frame = pn532.decode_frame(answer)
    assert isinstance(frame, pn532.InformationFrame)
    version = pn532.decode_response(frame, pn532.CMD_GET_FIRMWARE_VERSION)
    assert version == pn532.FirmwareVersion(0x32, 0x01, 0x06, 0x07)
    assert pn532.encode_response(version) == answer


@pytest.mark.parametrize("vector", records("commands"), ids=lambda v: v["name"])
def test_known_command_payloads(vector: dict[str, Any]) -> None:
    payload = h(vector["command"])
    command = pn532.decode_command(pn532.InformationFrame(pn532.TFI_HOST, payload))
    assert pn532.command_payload(command) == payload
    if "response" in vector:
        response = pn532.decode_response(
            pn532.InformationFrame(pn532.TFI_PN532, h(vector["response"])), payload[0]
        )
        assert pn532.response_payload(response) == h(vector["response"])


# --- checksums --------------------------------------------------------------------------------


def test_both_checksums_hold_on_every_encoded_frame() -> None:
    for payload in (b"\x02", bytes(range(254)), b"\x40\x01" + b"\xff" * 252):
        raw = pn532.encode_frame(pn532.TFI_HOST, payload)
        length, lcs = raw[3], raw[4]
        assert (length + lcs) & 0xFF == 0
        assert length == len(payload) + 1
        assert sum(raw[5 : 5 + length + 1]) & 0xFF == 0
        assert raw[-1] == 0


def test_bad_length_checksum() -> None:
    with pytest.raises(DecodeError) as e:
        pn532.decode_frame(h("0000FF02FDD4022A00"))
    assert str(e.value) == "PN532 frame: length checksum FD does not match LEN 02 (at byte 4)"


def test_bad_data_checksum() -> None:
    with pytest.raises(DecodeError) as e:
        pn532.decode_frame(h("0000FF02FED4022B00"))
    assert str(e.value) == "PN532 frame: data checksum 2B does not match (at byte 7)"


# --- every frame kind, malformed --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "offset", "reason"),
    [
        ("", 0, "start code 00 FF expected"),
        ("00", 0, "start code 00 FF expected"),
        ("0000FE02FED4022A00", 0, "start code 00 FF expected"),
        ("0000FF02FED4022A", 8, "frame is truncated"),
        ("0000FF02FED4022A0000", 9, "trailing bytes after the frame"),
        ("0000FF00FF01", 5, "ACK frame without its postamble 00"),
        ("0000FFFF0001", 5, "NACK frame without its postamble 00"),
        ("0000FFFFFF0003FDD4022A00", 3, "extended frame (LEN FF FF): not supported"),
        ("0000FF02FED4022A01", 8, "missing postamble 00"),
        ("0000FF02FE7F027F00", 5, "error frame (TFI 7F) with data"),
        ("0000FF02FEAA025400", 5, "TFI AA: D4, D5 or 7F expected"),
        ("0000FF01FFD42C00", 5, "information frame without a command code"),
        ("0000FF0100D42C00", 4, "length checksum 00 does not match LEN 01"),
    ],
)
def test_malformed_frames(raw: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        pn532.decode_frame(h(raw))
    assert (e.value.what, e.value.offset, e.value.reason) == ("PN532 frame", offset, reason)


def test_preamble_is_optional() -> None:
    assert pn532.decode_frame(h("00FF00FF00")) == pn532.Ack()


def test_information_frame_limits() -> None:
    with pytest.raises(EncodeError):
        pn532.InformationFrame(pn532.TFI_HOST, b"")
    with pytest.raises(EncodeError):
        pn532.InformationFrame(pn532.TFI_HOST, bytes(255))
    with pytest.raises(EncodeError):
        pn532.InformationFrame(0x7F, b"\x02")
    longest = pn532.encode_frame(pn532.TFI_PN532, bytes(254))
    assert len(longest) == pn532.FRAME_LEN_MAX
    assert pn532.decode_frame(longest) == pn532.InformationFrame(pn532.TFI_PN532, bytes(254))


# --- the incremental decoder ------------------------------------------------------------------


def test_decoder_skips_wake_up_and_noise_and_resynchronises() -> None:
    good = pn532.encode_command(pn532.GetFirmwareVersion())
    stream = pn532.WAKE_UP + b"\x12\x34" + h("0000FF02FED4022B00") + good + pn532.ACK
    decoder = pn532.FrameDecoder()
    out = decoder.feed(stream)
    assert out == [
        pn532.BadFrame(len(pn532.WAKE_UP) + 2 + 7, "data checksum 2B does not match"),
        pn532.InformationFrame(pn532.TFI_HOST, b"\x02"),
        pn532.Ack(),
    ]
    bad = out[0]
    assert isinstance(bad, pn532.BadFrame)
    assert bad.error.what == "PN532 frame"


def test_decoder_byte_by_byte() -> None:
    stream = pn532.ACK + pn532.encode_response(pn532.FirmwareVersion(0x32, 1, 6, 7))
    decoder = pn532.FrameDecoder()
    out: list[pn532.Frame | pn532.BadFrame] = []
    for b in stream:
        out += decoder.feed(bytes([b]))
    assert out == [pn532.Ack(), pn532.InformationFrame(pn532.TFI_PN532, h("0332010607"))]


def test_decoder_reports_extended_frame_and_bad_lcs() -> None:
    decoder = pn532.FrameDecoder()
    out = decoder.feed(h("0000FFFFFF0003FDD4022A00") + h("0000FF02FDD4022A00") + pn532.NACK)
    assert out == [
        pn532.BadFrame(3, "extended frame (LEN FF FF): not supported"),
        pn532.BadFrame(12 + 4, "length checksum FD does not match LEN 02"),
        pn532.Nack(),
    ]


def test_decoder_buffer_is_bounded() -> None:
    decoder = pn532.FrameDecoder()
    assert decoder.feed(b"\x55" * 10_000) == []
    assert decoder.skipped == 10_000
    assert decoder.feed(h("0000FFF90A") + bytes(300)) != []  # LEN F9 then no DCS: bad frame


# --- commands and responses -------------------------------------------------------------------


COMMANDS: list[pn532.Command] = [
    pn532.GetFirmwareVersion(),
    pn532.SamConfiguration(),
    pn532.InListPassiveTarget(1),
    pn532.InDataExchange(1, h("00A4040000")),
    pn532.InDataExchange(1, bytes(252), more=True),
    pn532.InRelease(1),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_command_round_trip(command: pn532.Command) -> None:
    frame = pn532.decode_frame(pn532.encode_command(command))
    assert isinstance(frame, pn532.InformationFrame)
    assert pn532.decode_command(frame) == command


TARGET = pn532.TargetA(1, h("0004"), 0x20, h("08123456"), h("0578807002"))
RESPONSES: list[tuple[int, pn532.Response, str]] = [
    (0x02, pn532.FirmwareVersion(0x32, 1, 6, 7), "0332010607"),
    (0x14, pn532.SamConfigured(), "15"),
    (0x4A, pn532.ListedTargets((TARGET,)), "4B01010004200408123456" + "0578807002"),
    (0x4A, pn532.ListedTargets(()), "4B00"),
    (0x4A, pn532.ListedTargets((pn532.TargetA(1, h("0004"), 0x08, h("01020304")),)),
     "4B0101000408040102030" + "4"),
    (0x40, pn532.DataExchangeResult(0x00, h("9000")), "41009000"),
    (0x40, pn532.DataExchangeResult(0x40, h("AA")), "4140AA"),
    (0x40, pn532.DataExchangeResult(0x01), "4101"),
    (0x52, pn532.ReleaseResult(0x00), "5300"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "response", "payload"), RESPONSES)
def test_response_round_trip(code: int, response: pn532.Response, payload: str) -> None:
    assert pn532.response_payload(response) == h(payload)
    frame = pn532.decode_frame(pn532.encode_response(response))
    assert isinstance(frame, pn532.InformationFrame)
    assert pn532.decode_response(frame, code) == response


def test_data_exchange_status_bits() -> None:
    result = pn532.DataExchangeResult(0x41)
    assert result.more and result.error == pn532.STATUS_TIMEOUT
    assert pn532.DataExchangeResult(0x00).error == pn532.STATUS_OK
    assert pn532.InformationFrame(pn532.TFI_HOST, h("4041")).code == 0x40
    command = pn532.decode_command(pn532.InformationFrame(pn532.TFI_HOST, h("4041AABB")))
    assert command == pn532.InDataExchange(1, h("AABB"), more=True)


@pytest.mark.parametrize(
    ("payload", "what", "offset", "reason"),
    [
        ("03", "PN532 command", 0, "unknown command code 03"),
        ("0200", "PN532 GetFirmwareVersion", 1, "trailing bytes"),
        ("14", "PN532 SAMConfiguration", 1, "Mode missing"),
        ("1405", "PN532 SAMConfiguration", 1, "Mode 05: 01..04 expected"),
        ("1401140100", "PN532 SAMConfiguration", 4, "trailing bytes"),
        ("4A01", "PN532 InListPassiveTarget", 2, "MaxTg and BrTy expected"),
        ("4A0300", "PN532 InListPassiveTarget", 1, "MaxTg 3: 1..2 expected"),
        ("4A0101", "PN532 InListPassiveTarget", 2, "BrTy 01: only 00 (106 kbps type A)"),
        ("4A010000", "PN532 InListPassiveTarget", 3,
         "InitiatorData is not supported at 106 kbps type A"),
        ("40", "PN532 InDataExchange", 1, "Tg missing"),
        ("4000", "PN532 InDataExchange", 1, "Tg 00: 01..3F expected"),
        ("52", "PN532 InRelease", 1, "2 bytes expected, 1 present"),
    ],
)  # fmt: skip
def test_malformed_commands(payload: str, what: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        pn532.decode_command(pn532.InformationFrame(pn532.TFI_HOST, h(payload)))
    assert (e.value.what, e.value.offset, e.value.reason) == (what, offset, reason)


def test_command_with_pn532_tfi_is_refused() -> None:
    with pytest.raises(DecodeError, match="a command has TFI D4"):
        pn532.decode_command(pn532.InformationFrame(pn532.TFI_PN532, h("02")))


@pytest.mark.parametrize(
    ("code", "payload", "what", "offset", "reason"),
    [
        (0x02, "0232", "PN532 response", 0, "response code 02, 03 expected"),
        (0x02, "033201", "PN532 GetFirmwareVersion response", 3, "5 bytes expected, 3 present"),
        (0x14, "1500", "PN532 SAMConfiguration response", 1, "trailing bytes"),
        (0x4A, "4B", "PN532 InListPassiveTarget response", 1, "NbTg missing"),
        (0x4A, "4B03", "PN532 InListPassiveTarget response", 1, "NbTg 3: at most 2"),
        (0x4A, "4B01010004", "PN532 InListPassiveTarget response", 5,
         "target data is truncated"),
        (0x4A, "4B010100042005", "PN532 InListPassiveTarget response", 6,
         "NFCIDLength 5: 4, 7 or 10 expected"),
        (0x4A, "4B0101000420040812", "PN532 InListPassiveTarget response", 9,
         "NFCID1 is truncated"),
        (0x4A, "4B01010004200408123456", "PN532 InListPassiveTarget response", 11,
         "ATS missing (SEL_RES says ISO 14443-4)"),
        (0x4A, "4B0101000420040812345600", "PN532 InListPassiveTarget response", 11,
         "ATS length byte TL is 00"),
        (0x4A, "4B010100042004081234560578", "PN532 InListPassiveTarget response", 13,
         "ATS is truncated (TL 5)"),
        (0x4A, "4B010100040804010203040000", "PN532 InListPassiveTarget response", 11,
         "trailing bytes"),
        (0x40, "41", "PN532 InDataExchange response", 1, "Status missing"),
        (0x52, "530000", "PN532 InRelease response", 2, "trailing bytes"),
        (0x60, "61", "PN532 response", 0, "unknown command code 60"),
    ],
)  # fmt: skip
def test_malformed_responses(code: int, payload: str, what: str, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        pn532.decode_response(pn532.InformationFrame(pn532.TFI_PN532, h(payload)), code)
    assert (e.value.what, e.value.offset, e.value.reason) == (what, offset, reason)


def test_response_with_host_tfi_is_refused() -> None:
    with pytest.raises(DecodeError, match="a response has TFI D5"):
        pn532.decode_response(pn532.InformationFrame(pn532.TFI_HOST, h("03")), 0x02)


@pytest.mark.parametrize(
    "value",
    [
        pn532.InListPassiveTarget(3),
        pn532.InDataExchange(0, b""),
        pn532.InDataExchange(1, bytes(253)),
        pn532.SamConfiguration(mode=256),
        pn532.InRelease(-1),
    ],
)
def test_unencodable_commands(value: pn532.Command) -> None:
    with pytest.raises(EncodeError):
        pn532.encode_command(value)


@pytest.mark.parametrize(
    "value",
    [
        pn532.DataExchangeResult(0, bytes(253)),
        pn532.ListedTargets((pn532.TargetA(1, h("00"), 0x20, h("08123456"), h("01")),)),
        pn532.ListedTargets((pn532.TargetA(1, h("0004"), 0x20, h("0812"), h("01")),)),
        pn532.ListedTargets((pn532.TargetA(1, h("0004"), 0x20, h("08123456"), h("0301")),)),
        pn532.ListedTargets((pn532.TargetA(1, h("0004"), 0x08, h("08123456"), h("01")),)),
        pn532.FirmwareVersion(0x132, 1, 6, 7),
    ],
)
def test_unencodable_responses(value: pn532.Response) -> None:
    with pytest.raises(EncodeError):
        pn532.encode_response(value)
