"""SMS transport of secured packets (paycore.ota.sms; ota.md §2): TPDUs, user data headers,
concatenation, the ENVELOPE (SMS-PP DOWNLOAD), SEND SHORT MESSAGE and TERMINAL RESPONSE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paycore.errors import DecodeError, EncodeError
from paycore.ota import sms
from paycore.ota.sms import (
    Address,
    Concatenation,
    InformationElement,
    Reassembly,
    SendShortMessage,
    SmsDeliver,
    SmsPpDownload,
    SmsSubmit,
    TerminalResponse,
    UserData,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "ota_md_packet_vectors.json").read_text()
)
TPDU = VECTORS["tpdu"][0]
CPI = InformationElement(sms.IEI_COMMAND_PACKET)
RPI = InformationElement(sms.IEI_RESPONSE_PACKET)
SCTS = bytes.fromhex("22705200000000")
SERVER = Address("12345678")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- the vector TPDU -------------------------------------------------------------------------


def test_sms_deliver_vector() -> None:
    deliver = SmsDeliver(
        Address(TPDU["originator"], int(TPDU["ton_npi"], 16)),
        h(TPDU["scts"]),
        UserData((CPI,), h(TPDU["packet"])),
    )
    tpdu = deliver.encode()
    assert tpdu.hex() == TPDU["tpdu"]
    # identical to pySim's TPDU but for TP-UDL (byte 16: pySim 03, ota.md: all 37 UD bytes)
    pysim = h(TPDU["pysim_tpdu"])
    assert [i for i in range(len(tpdu)) if tpdu[i] != pysim[i]] == [16]
    assert tpdu[0] == 0x40 and tpdu[7:9] == h("7ff6") and tpdu[16] == 3 + 34
    assert sms.decode_deliver(tpdu) == deliver
    with pytest.raises(DecodeError, match=r"TP-UDL: says 3 octets, 37 follow \(at byte 16\)"):
        sms.decode_deliver(pysim)


def test_envelope_of_the_vector() -> None:
    tpdu = h(TPDU["tpdu"])
    envelope = SmsPpDownload(tpdu).encode()
    assert envelope == h("d13c" + "82028381" + "8b36") + tpdu
    assert sms.decode_sms_pp_download(envelope) == SmsPpDownload(tpdu)
    with_sc = SmsPpDownload(tpdu, Address("8613800755500", 0x91))
    raw = with_sc.encode()
    assert raw == h("d146" + "82028381" + "8608" + "91683108705505f0" + "8b36") + tpdu
    assert sms.decode_sms_pp_download(raw) == with_sc


# --- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "encoded"),
    [
        ("12345678", "0881" + "21436587"),
        ("123", "0381" + "21f3"),
        ("", "0081"),
        ("*#abc", "0581badcfe"),
    ],
)
def test_tp_address(digits: str, encoded: str) -> None:
    assert Address(digits).encode_tp().hex() == encoded


@pytest.mark.parametrize(
    ("digits", "ton_npi", "message"),
    [("12f", 0x81, "not BCD digits"), ("1" * 21, 0x81, "over 20"), ("1", 0x01, "must have b8 set")],
)
def test_bad_addresses(digits: str, ton_npi: int, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        Address(digits, ton_npi)


@pytest.mark.parametrize(
    ("tpdu", "message"),
    [
        ("", "SMS-DELIVER: empty (at byte 0)"),
        ("01", "TP-MTI: 1 is not SMS-DELIVER (at byte 0)"),
        ("40", "TP-OA: length and TON/NPI missing (at byte 1)"),
        ("401581", "TP-OA: 21 digits is over 20 (at byte 1)"),
        ("400801", "TP-OA: TON/NPI 01 lacks b8 (at byte 2)"),
        ("40088121", "TP-OA: 8 digits run past the end (at byte 1)"),
        ("4003812143", "TP-OA: odd digit count without F filler (at byte 4)"),
        ("400381f1f3", "TP-OA: F inside the digits (at byte 3)"),
        ("400381 21f3 7f", "SMS-DELIVER: TP-PID, TP-DCS, TP-SCTS missing (at byte 6)"),
        ("400381 21f3 7f00 22705200000000 00", "TP-DCS: 00 is not 8-bit data (at byte 6)"),
        ("400381 21f3 7ff6 22705200000000", "TP-UDL: missing (at byte 14)"),
        ("400381 21f3 7ff6 22705200000000 8d", "TP-UDL: 141 is over 140 (at byte 14)"),
        (
            "400381 21f3 7ff6 22705200000000 00",
            "UDHL: TP-UDHI is set but the user data is empty (at byte 15)",
        ),
        ("400381 21f3 7ff6 22705200000000 01 05", "UDHL: 5 runs past the user data (at byte 15)"),
        ("400381 21f3 7ff6 22705200000000 02 0170", "UDH: IEI without IEDL (at byte 16)"),
        (
            "400381 21f3 7ff6 22705200000000 03 027001",
            "UDH: IE 70 length 1 runs past UDHL (at byte 17)",
        ),
    ],
)
def test_deliver_errors_name_field_and_offset(tpdu: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        sms.decode_deliver(h(tpdu.replace(" ", "")))
    assert str(info.value) == message


def test_deliver_without_header_and_other_8bit_dcs() -> None:
    deliver = SmsDeliver(SERVER, SCTS, UserData((), b"hello"), pid=0x00, dcs=0x04)
    tpdu = deliver.encode()
    assert tpdu[0] == 0x00
    assert sms.decode_deliver(tpdu) == deliver
    with pytest.raises(EncodeError, match="8-bit"):
        SmsDeliver(SERVER, SCTS, UserData((), b""), dcs=0x00).encode()
    with pytest.raises(EncodeError, match="7 bytes"):
        SmsDeliver(SERVER, b"", UserData((), b"")).encode()


def test_submit_round_trip_and_validity_periods() -> None:
    submit = SmsSubmit(SERVER, UserData((RPI,), h("000b0ab00011000000000000")), 7)
    tpdu = submit.encode()
    assert tpdu[:2] == h("4107")
    assert sms.decode_submit(tpdu) == submit
    # TP-VPF relative (1 octet) and enhanced/absolute (7 octets) are skipped on decode
    relative = bytes((tpdu[0] | 0x10,)) + tpdu[1:8] + tpdu[8:10] + b"\xa7" + tpdu[10:]
    assert sms.decode_submit(relative) == submit
    absolute = bytes((tpdu[0] | 0x18,)) + tpdu[1:10] + bytes(7) + tpdu[10:]
    assert sms.decode_submit(absolute) == submit
    with pytest.raises(DecodeError, match="TP-MTI: 0 is not SMS-SUBMIT"):
        sms.decode_submit(h("4000"))
    with pytest.raises(DecodeError, match="first octet and TP-MR missing"):
        sms.decode_submit(h("41"))


# --- concatenation ---------------------------------------------------------------------------


def test_a_packet_of_137_bytes_fits_one_sms() -> None:
    (one,) = sms.split_packet(bytes(137), sms.IEI_COMMAND_PACKET, 0)
    assert one.encode() == h("027000") + bytes(137)
    assert len(one.encode()) == 140


@pytest.mark.parametrize(
    ("size", "segments"), [(138, 2), (132 + 134, 2), (132 + 134 + 1, 3), (2048, 16)]
)
def test_split_packet_segments(size: int, segments: int) -> None:
    packet = bytes(i & 0xFF for i in range(size))
    parts = sms.split_packet(packet, sms.IEI_COMMAND_PACKET, 0x42)
    assert len(parts) == segments
    assert parts[0].encode()[:8] == h("07" + "7000" + "0003") + bytes((0x42, segments, 1))
    for seq, part in enumerate(parts[1:], start=2):
        assert part.encode()[:6] == h("05" + "0003") + bytes((0x42, segments, seq))
    assert all(len(p.encode()) <= 140 for p in parts)
    assert b"".join(p.payload for p in parts) == packet


def test_split_packet_limits() -> None:
    with pytest.raises(EncodeError, match="over 16"):
        sms.split_packet(bytes(2200), sms.IEI_COMMAND_PACKET, 1)
    with pytest.raises(EncodeError, match="not a secured packet identifier"):
        sms.split_packet(b"", 0x00, 1)
    with pytest.raises(EncodeError, match="reference 65536"):
        sms.split_packet(bytes(300), sms.IEI_COMMAND_PACKET, 0x10000)
    wide = sms.split_packet(bytes(300), sms.IEI_COMMAND_PACKET, 0x1234)
    assert wide[0].header[1] == InformationElement(0x08, h("1234") + bytes((3, 1)))


def _deliveries(packet: bytes, reference: int) -> list[UserData]:
    return [
        sms.decode_deliver(SmsDeliver(SERVER, SCTS, part).encode()).user_data
        for part in sms.split_packet(packet, sms.IEI_COMMAND_PACKET, reference)
    ]


def test_reassembly_in_and_out_of_order_with_duplicates() -> None:
    packet = bytes(i & 0xFF for i in range(400))
    parts = _deliveries(packet, 9)
    assert len(parts) == 3
    for order in ([0, 1, 2], [2, 0, 1], [1, 1, 2, 0]):
        state = Reassembly()
        results = []
        for i in order:
            state, done = state.add("12345678", parts[i])
            results.append(done)
        assert all(r is None for r in results[:-1])
        assert results[-1] == UserData((CPI,), packet)
        assert state == Reassembly()


def test_reassembly_drops_a_partial_message_for_another() -> None:
    first = _deliveries(bytes(300), 1)
    second = _deliveries(bytes(range(200)) * 2, 2)
    state, _ = Reassembly().add("1", first[0])
    state, _ = state.add("1", second[0])
    assert state.reference == 2 and state.pending == 1
    state, _ = state.add("1", first[1])  # the first message's rest starts afresh and waits
    assert state.reference == 1 and state.pending == 1
    state, _ = state.add("2", first[0])  # same reference from another sender: another message
    assert state.sender == "2" and state.pending == 1


def test_single_sms_passes_through_reassembly() -> None:
    (one,) = _deliveries(bytes(20), 0)
    state = Reassembly()
    assert state.add("1", one) == (state, one)


@pytest.mark.parametrize(
    ("ie", "message"),
    [
        (InformationElement(0, h("0102")), "concatenation IE: 2 bytes, not 3"),
        (InformationElement(0, h("010003")), "concatenation IE: segment 3 of 0"),
        (InformationElement(0, h("010203")), "concatenation IE: segment 3 of 2"),
        (InformationElement(0, h("010200")), "concatenation IE: segment 0 of 2"),
        (InformationElement(8, h("000102")), "concatenation IE: 3 bytes, not 4"),
    ],
)
def test_bad_concatenation_elements(ie: InformationElement, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        Reassembly().add("1", UserData((ie,), b""))


def test_reassembly_limits() -> None:
    with pytest.raises(DecodeError, match="17 segments, over the limit"):
        Reassembly().add("1", UserData((Concatenation(1, 17, 1).element(),), b""))
    twice = UserData((Concatenation(1, 2, 1).element(), Concatenation(1, 2, 2).element()), b"")
    with pytest.raises(DecodeError, match="present twice"):
        Reassembly().add("1", twice)


# --- ENVELOPE --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ("", "SMS-PP DOWNLOAD: empty (at byte 0)"),
        ("d0028202", "SMS-PP DOWNLOAD: tag D0 is not D1 (at byte 0)"),
        ("d1", "SMS-PP DOWNLOAD: length missing (at byte 1)"),
        ("d10582028381", "SMS-PP DOWNLOAD: length 5 does not match the 4 bytes (at byte 1)"),
        ("d18205", "SMS-PP DOWNLOAD: length byte 82 is not 00-7F or 81 (at byte 1)"),
        ("d1810400000000", "SMS-PP DOWNLOAD: 81 04 is not the minimal length form (at byte 1)"),
        ("d10400000000", "COMPREHENSION-TLV: 00 is not a tag (at byte 2)"),
        ("d1028b05", "COMPREHENSION-TLV: tag 0B runs past the end (at byte 4)"),
        ("d10482028381", "SMS-PP DOWNLOAD: SMS TPDU (8B) missing (at byte 2)"),
        ("d1048b020000", "SMS-PP DOWNLOAD: device identities missing (at byte 0)"),
        ("d108820281838b020000", "device identities: 8183 is not 8381 (at byte 2)"),
        ("d10c820283818b02000082028381", "SMS-PP DOWNLOAD: tag 02 twice (at byte 10)"),
        (
            "d10c82028381c5020000" + "8b020000",
            "SMS-PP DOWNLOAD: unknown comprehension-required tag 45 (at byte 6)",
        ),
        ("d10b82028381860100" + "8b020000", "address: TON/NPI 00 lacks b8 (at byte 8)"),
        ("d106820283817f00", "COMPREHENSION-TLV: three-byte tag runs past the end (at byte 6)"),
    ],
)
def test_envelope_errors_name_object_and_offset(envelope: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        sms.decode_sms_pp_download(h(envelope))
    assert str(info.value) == message


def test_envelope_accepts_tags_without_cr_and_ignores_unknown_optional_ones() -> None:
    raw = h("d10e" + "02028381" + "4502abcd" + "0b020102" + "7f000100")
    raw = h("d1") + bytes((len(raw) - 2,)) + raw[2:]
    assert sms.decode_sms_pp_download(raw) == SmsPpDownload(h("0102"))


def test_envelope_length_limit() -> None:
    with pytest.raises(EncodeError, match="over 255"):
        SmsPpDownload(bytes(250)).encode()
    long_tpdu = bytes(200)
    raw = SmsPpDownload(long_tpdu).encode()
    assert raw[:3] == h("d181cf") and raw[7:10] == h("8b81c8")
    assert sms.decode_sms_pp_download(raw).tpdu == long_tpdu


# --- proactive SEND SHORT MESSAGE and TERMINAL RESPONSE --------------------------------------


def test_send_short_message_round_trip() -> None:
    tpdu = SmsSubmit(SERVER, UserData((RPI,), h("000b0a") + bytes(10))).encode()
    command = SendShortMessage(tpdu, service_centre=Address("8613800755500", 0x91))
    raw = command.encode()
    assert raw[:2] == bytes((0xD0, len(raw) - 2))
    assert raw[2:11] == h("810301130082028183")
    assert sms.decode_send_short_message(raw) == command
    plain = SendShortMessage(tpdu, command_number=3)
    assert sms.decode_send_short_message(plain.encode()) == plain


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("d00482028183", "SEND SHORT MESSAGE: command details missing (at byte 0)"),
        (
            "d0078103011400820281838b00",
            "proactive command: length 7 does not match the 11 bytes (at byte 1)",
        ),
        (
            "d00b8103011400820281838b00",
            "command details: type 14 is not SEND SHORT MESSAGE (at byte 2)",
        ),
        ("d00b8103011300820281818b00", "device identities: 8181 is not 8183 (at byte 7)"),
        ("d00b8103011300820281830000", "COMPREHENSION-TLV: 00 is not a tag (at byte 11)"),
        (
            "d00981030113008202818300",
            "proactive command: length 9 does not match the 10 bytes (at byte 1)",
        ),
        ("d00781030113008202", "COMPREHENSION-TLV: tag 02 runs past the end (at byte 9)"),
        ("d00b8103001300820281838b00", "command details: command number 00 (at byte 2)"),
    ],
)
def test_send_short_message_errors(raw: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        sms.decode_send_short_message(h(raw))
    assert str(info.value) == message


def test_terminal_response_round_trip() -> None:
    ok = TerminalResponse(1, sms.COMMAND_SEND_SHORT_MESSAGE, 0, sms.RESULT_OK)
    raw = ok.encode()
    assert raw == h("810301130082028281830100")
    assert sms.decode_terminal_response(raw) == ok and ok.successful
    failed = TerminalResponse(1, sms.COMMAND_SEND_SHORT_MESSAGE, 0, 0x35, h("8001"))
    assert sms.decode_terminal_response(failed.encode()) == failed
    assert not failed.successful


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "TERMINAL RESPONSE: command details missing (at byte 0)"),
        ("8102011382028281830100", "command details: 2 bytes, not 3 (at byte 0)"),
        ("8103011300820282818301", "COMPREHENSION-TLV: tag 03 runs past the end (at byte 11)"),
        ("81030113008202828183", "COMPREHENSION-TLV: length missing (at byte 10)"),
        ("810301130082028182830100", "device identities: 8182 is not 8281 (at byte 5)"),
        ("8103011300820282818300", "TERMINAL RESPONSE: result missing or empty (at byte 11)"),
    ],
)
def test_terminal_response_errors(raw: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        sms.decode_terminal_response(h(raw))
    assert str(info.value) == message


# --- the server's conveniences ---------------------------------------------------------------


def test_command_envelopes_and_envelope_apdu() -> None:
    packet = h(TPDU["packet"])
    (data,) = sms.command_envelopes(packet, originator=SERVER, scts=SCTS, reference=0)
    assert sms.decode_sms_pp_download(data).tpdu.hex() == TPDU["tpdu"]
    assert sms.envelope_apdu(data) == h("80c20000") + bytes((len(data),)) + data + b"\x00"
    parts = sms.command_envelopes(bytes(300), originator=SERVER, scts=SCTS, reference=3)
    assert len(parts) == 3
    with pytest.raises(EncodeError, match="not 1-255"):
        sms.envelope_apdu(b"")


def test_por_user_data_of_a_reassembled_submit() -> None:
    por = h("027100000b0ab00011") + bytes(7)
    message = UserData((RPI,), por[3:])
    assert sms.por_user_data(message) == por
    with pytest.raises(DecodeError, match="no response packet identifier"):
        sms.por_user_data(UserData((CPI,), por[3:]))
