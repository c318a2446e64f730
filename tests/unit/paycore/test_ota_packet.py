"""TS 102 225 secured packets (paycore.ota.packet, paycore.ota.security; ota.md §2).

The public check values of ota.md §2 and the rest of pySim's OTA vectors
(tests/vectors/ota_md_packet_vectors.json) are reproduced byte for byte, both ways; every SPI,
KIc and KID variant round-trips; every security failure gets its PoR status; truncated and
garbage packets raise DecodeError only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paycore.errors import BadKeyError, DecodeError, EncodeError
from paycore.ota import remote_apdu
from paycore.ota.packet import (
    COMMAND_PACKET_LEN_MAX,
    COMMAND_UDH,
    PLAIN_POR,
    Por,
    PorCheckError,
    PorSecurity,
    RefusedCommand,
    VerifiedCommand,
    command_user_data,
    decode_command,
    decode_por,
    encode_command,
    encode_por,
    verify_command,
)
from paycore.ota.security import (
    COUNTER_MAX,
    ISD_MINIMUM_LEVEL,
    SPI_DEFAULT,
    SPI_POR_BY_SMS,
    Checksum,
    CounterMode,
    KeyFamily,
    OtaKeys,
    PorStatus,
    Spi,
    check_counter,
    counter_after,
    key_version,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "ota_md_packet_vectors.json").read_text()
)
OTA_MD_SOURCE = "shared/design/ota.md §2 (pySim unit tests)"
Record = dict[str, Any]

TAR = bytes.fromhex("b00011")
DATA = bytes.fromhex("00a40004023f00")
DES2 = OtaKeys(KeyFamily.DES, bytes(range(16)), bytes(range(16, 32)))
DES3 = OtaKeys(KeyFamily.DES, bytes(range(24)), bytes(range(24, 48)))
DES1 = OtaKeys(KeyFamily.DES, bytes(range(8)), bytes(range(8, 16)))
AES128 = OtaKeys(KeyFamily.AES, bytes(range(16)), bytes(range(16, 32)))
AES192 = OtaKeys(KeyFamily.AES, bytes(range(24)), bytes(range(24, 48)))
AES256 = OtaKeys(KeyFamily.AES, bytes(range(32)), bytes(range(32, 64)))


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def keys_of(record: Record) -> OtaKeys:
    keyset = VECTORS["keysets"][record["keyset"]]
    return OtaKeys(KeyFamily(keyset["family"]), h(keyset["kic"]), h(keyset["kid"]))


def names(records: list[Record]) -> list[str]:
    return [r["name"] for r in records]


def test_every_ota_md_check_value_is_a_vector() -> None:
    ota_md = [
        r["packet"] if "packet" in r else r["por_user_data"]
        for group in ("command", "por")
        for r in VECTORS[group]
        if r["source"] == OTA_MD_SOURCE
    ]
    assert ota_md == [
        "00201506193535b00011ae733256918d050b87c94fbfe12e4dc402f262c41cf67f2f",
        "00281506192222b00011e87cceebb2d93083011ce294f93fc4d8de80da1abae8c37ca3e72ec4432e5058",
        "027100001c12b000118bb989492c632529326a2f4681feb37c825bc9021c9f6d0b",
    ]
    for keyset in ("sja5_3des", "sja5_aes128"):
        assert VECTORS["keysets"][keyset]["source"] == OTA_MD_SOURCE


# --- vectors --------------------------------------------------------------------------------


@pytest.mark.parametrize("record", VECTORS["command"], ids=names(VECTORS["command"]))
def test_command_vector_is_reproduced_byte_for_byte(record: Record) -> None:
    packet = encode_command(
        spi=Spi.decode(h(record["spi"])),
        kic=int(record["kic"], 16),
        kid=int(record["kid"], 16),
        tar=h(record["tar"]),
        counter=record["counter"],
        data=h(record["data"]),
        keys=keys_of(record),
    )
    assert packet.hex() == record["packet"]
    if "pysim_output" in record:  # pySim leaves CPL out of unciphered packets
        assert packet[2:].hex() == record["pysim_output"]
    assert (
        key_version(int(record["kic"], 16)) == VECTORS["keysets"][record["keyset"]]["key_version"]
    )


@pytest.mark.parametrize("record", VECTORS["command"], ids=names(VECTORS["command"]))
def test_command_vector_decodes_and_verifies(record: Record) -> None:
    parsed = decode_command(h(record["packet"]))
    assert parsed.spi.encode().hex() == record["spi"]
    assert parsed.tar.hex() == record["tar"]
    verified = verify_command(parsed, keys_of(record))
    assert isinstance(verified, VerifiedCommand)
    assert verified.data.hex() == record["data"]
    assert verified.counter == record["counter"]
    assert verified.tar.hex() == record["tar"]


@pytest.mark.parametrize("record", VECTORS["por"], ids=names(VECTORS["por"]))
def test_por_vector_decodes_to_its_status_and_compact_response(record: Record) -> None:
    spi = Spi.decode(h(record["spi"]))
    security = PorSecurity.for_command(
        spi, int(record["kic"], 16), int(record["kid"], 16), keys_of(record)
    )
    por = decode_por(h(record["por_user_data"]), security)
    assert por.tar.hex() == record["tar"]
    assert por.counter == record["counter"]
    assert por.status == int(record["status"], 16) == PorStatus.OK
    assert por.secured == (not security.plain)
    response = remote_apdu.decode_response(por.data)
    assert response.executed == record["executed"]
    assert f"{response.last_sw:04x}" == record["last_sw"]
    assert response.last_data.hex() == record["last_data"]


@pytest.mark.parametrize("record", VECTORS["por"], ids=names(VECTORS["por"]))
def test_card_side_por_builder_reproduces_the_real_cards_por(record: Record) -> None:
    spi = Spi.decode(h(record["spi"]))
    security = PorSecurity.for_command(
        spi, int(record["kic"], 16), int(record["kid"], 16), keys_of(record)
    )
    data = remote_apdu.CompactResponse(record["executed"], int(record["last_sw"], 16)).encode()
    por = encode_por(
        tar=h(record["tar"]),
        counter=record["counter"],
        status=PorStatus(int(record["status"], 16)),
        data=data,
        security=security,
    )
    assert por.hex() == record["por_user_data"]


@pytest.mark.parametrize("record", VECTORS["por_tampered"], ids=names(VECTORS["por_tampered"]))
def test_tampered_por_vector_fails_its_checksum(record: Record) -> None:
    security = PorSecurity.for_command(
        Spi.decode(h(record["spi"])),
        int(record["kic"], 16),
        int(record["kid"], 16),
        keys_of(record),
    )
    with pytest.raises(PorCheckError, match=r"PoR checksum: 3DES-CBC-MAC-2KEY does not match"):
        decode_por(h(record["por_user_data"]), security)


def test_command_user_data_prefixes_the_command_packet_identifier() -> None:
    packet = h(VECTORS["command"][0]["packet"])
    assert command_user_data(packet) == COMMAND_UDH + packet == h("027000") + packet


# --- SPI ------------------------------------------------------------------------------------


def test_spi_of_our_profile() -> None:
    assert SPI_DEFAULT.encode() == h("1609")
    assert SPI_POR_BY_SMS.encode() == h("1639")
    assert ISD_MINIMUM_LEVEL.allows(Spi.decode(h("1600")))
    assert ISD_MINIMUM_LEVEL.allows(Spi.decode(h("1e00")))  # counter exactly +1 is stronger
    assert not ISD_MINIMUM_LEVEL.allows(Spi.decode(h("0e00")))  # counter without check
    assert not ISD_MINIMUM_LEVEL.allows(Spi.decode(h("1200")))  # not ciphered
    assert not ISD_MINIMUM_LEVEL.allows(Spi.decode(h("1500")))  # RC instead of CC


def test_every_spi_value_decodes_or_names_the_reserved_bits() -> None:
    accepted = 0
    for value in range(0x10000):
        raw = value.to_bytes(2, "big")
        try:
            spi = Spi.decode(raw)
        except DecodeError as exc:
            assert exc.what == "SPI"
            assert exc.offset in (0, 1)
            continue
        accepted += 1
        assert spi.encode() == raw
    assert accepted == 32 * 48  # b5..b1 of byte 1; b6..b1 of byte 2 without PoR b2b1 = 11


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("2000", "SPI: byte 1 20 sets reserved bits b8..b6 (at byte 0)"),
        ("0040", "SPI: byte 2 40 sets reserved bits b8b7 (at byte 1)"),
        ("0003", "SPI: PoR request b2b1 = 11 is reserved (at byte 1)"),
        ("00", "SPI: needs 2 bytes (at byte 1)"),
    ],
)
def test_spi_errors_name_the_byte(raw: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        Spi.decode(h(raw))
    assert str(info.value) == message


# --- every algorithm, SPI and KIc/KID variant -------------------------------------------------

#: (keys, KIc/KID coding for version 1) -- explicit codings and the implicit one (x0).
ALGORITHMS = [
    pytest.param(DES1, 0x11, id="DES-CBC"),
    pytest.param(DES2, 0x15, id="3DES-2KEY"),
    pytest.param(DES3, 0x19, id="3DES-3KEY"),
    pytest.param(AES128, 0x12, id="AES-128"),
    pytest.param(AES192, 0x12, id="AES-192"),
    pytest.param(AES256, 0x12, id="AES-256"),
    pytest.param(DES2, 0x10, id="implicit-3DES-2KEY"),
    pytest.param(DES3, 0x10, id="implicit-3DES-3KEY"),
    pytest.param(AES128, 0x10, id="implicit-AES"),
]
SPI1_VARIANTS = [
    first | counter << 3
    for first in (0x00, 0x01, 0x02, 0x04, 0x05, 0x06)  # none/RC/CC, unciphered and ciphered
    for counter in range(4)
]


def _kid_for(spi: Spi, coding: int) -> int:
    return 0x15 if spi.checksum is Checksum.RC else coding  # RC: KID x5 = CRC-32


@pytest.mark.parametrize(("keys", "coding"), ALGORITHMS)
@pytest.mark.parametrize("first", SPI1_VARIANTS, ids=lambda v: f"SPI1={v:02X}")
def test_every_command_variant_round_trips(keys: OtaKeys, coding: int, first: int) -> None:
    spi = Spi.decode(bytes((first, 0x09)))
    kid = _kid_for(spi, coding)
    for data in (b"", DATA, bytes(range(200))):
        packet = encode_command(
            spi=spi, kic=coding, kid=kid, tar=TAR, counter=0x0102030405, data=data, keys=keys
        )
        parsed = decode_command(packet)
        assert parsed.chl == 13 + {Checksum.NONE: 0, Checksum.RC: 4, Checksum.CC: 8}[spi.checksum]
        verified = verify_command(parsed, keys)
        assert isinstance(verified, VerifiedCommand), verified
        assert (verified.data, verified.counter, verified.tar) == (data, 0x0102030405, TAR)
        if spi.ciphered:
            assert data not in packet or not data
            block = 16 if keys.family is KeyFamily.AES else 8
            assert (len(packet) - 10) % block == 0
        else:
            assert packet.endswith(data)  # unciphered: no padding (ota.md §2)


@pytest.mark.parametrize(("keys", "coding"), ALGORITHMS)
@pytest.mark.parametrize(
    "second", [0x01, 0x05, 0x09, 0x11, 0x15, 0x19, 0x21, 0x29, 0x39, 0x02, 0x0A, 0x1A]
)
def test_every_por_variant_round_trips(keys: OtaKeys, coding: int, second: int) -> None:
    spi = Spi.decode(bytes((0x16, second)))
    security = PorSecurity.for_command(
        spi, coding, _kid_for(Spi(checksum=spi.por_checksum), coding), keys
    )
    for status, data in ((PorStatus.OK, h("019000")), (PorStatus.SMS_SUBMIT_TO_FOLLOW, b"")):
        ud = encode_por(tar=TAR, counter=77, status=status, data=data, security=security)
        assert ud[:3] == h("027100")
        por = decode_por(ud, security)
        assert por == Por(TAR, 77, status, data, secured=not security.plain)


def test_keys_never_appear_in_a_repr() -> None:
    text = repr(DES2) + repr(PorSecurity.for_command(SPI_DEFAULT, 0x15, 0x15, DES2))
    assert DES2.kic.hex() not in text and DES2.kid.hex() not in text
    assert "kic" not in text.lower().replace("kic=", "")  # only the KIc byte, never the key


@pytest.mark.parametrize(
    ("family", "kic", "kid"),
    [(KeyFamily.DES, 15, 16), (KeyFamily.AES, 16, 8), (KeyFamily.DES, 16, 32)],
)
def test_bad_key_lengths_are_refused(family: KeyFamily, kic: int, kid: int) -> None:
    with pytest.raises(BadKeyError):
        OtaKeys(family, bytes(kic), bytes(kid))


@pytest.mark.parametrize(
    ("spi", "kic", "kid", "keys", "message"),
    [
        (SPI_DEFAULT, 0x12, 0x15, DES2, "command: KIc 12 is unsupported or does not fit the keys"),
        (SPI_DEFAULT, 0x19, 0x15, DES2, "command: KIc 19 is unsupported or does not fit the keys"),
        (SPI_DEFAULT, 0x1D, 0x15, DES2, "command: KIc 1D is unsupported or does not fit the keys"),
        (SPI_DEFAULT, 0x13, 0x15, DES2, "command: KIc 13 is unsupported or does not fit the keys"),
        (
            SPI_DEFAULT,
            0x16,
            0x16,
            AES128,
            "command: KIc 16 is unsupported or does not fit the keys",
        ),
        (SPI_DEFAULT, 0x15, 0x15, None, "command: ciphering needs keys"),
        (
            Spi(checksum=Checksum.RC),
            0x15,
            0x11,
            DES2,
            "command: RC with KID 11 is unsupported or has no keys",
        ),
        (
            Spi(checksum=Checksum.RC),
            0x15,
            0x10,
            DES2,
            "command: RC with KID 10 is unsupported or has no keys",
        ),
        (
            Spi(checksum=Checksum.DS),
            0x15,
            0x15,
            DES2,
            "command: DS with KID 15 is unsupported or has no keys",
        ),
        (
            Spi(ciphered=False),
            0x15,
            0x15,
            None,
            "command: CC with KID 15 is unsupported or has no keys",
        ),
    ],
)
def test_unsupported_algorithms_are_an_encode_error(
    spi: Spi, kic: int, kid: int, keys: OtaKeys | None, message: str
) -> None:
    """CRC-16 (KID x1), implicit RC (x0), DS, DES-ECB (KIc xD), proprietary (x3) and
    mismatched key sets are refused by name (CRC-16's variant is not pinned by ota.md)."""
    with pytest.raises(EncodeError) as info:
        encode_command(spi=spi, kic=kic, kid=kid, tar=TAR, counter=1, data=DATA, keys=keys)
    assert str(info.value) == message


def test_encoder_limits() -> None:
    with pytest.raises(EncodeError, match="TAR must be 3 bytes"):
        encode_command(
            spi=SPI_DEFAULT, kic=0x15, kid=0x15, tar=b"\0", counter=1, data=b"", keys=DES2
        )
    with pytest.raises(EncodeError, match="not a 5-byte unsigned value"):
        encode_command(
            spi=SPI_DEFAULT,
            kic=0x15,
            kid=0x15,
            tar=TAR,
            counter=COUNTER_MAX + 1,
            data=b"",
            keys=DES2,
        )
    with pytest.raises(EncodeError, match="over the 2048 limit"):
        encode_command(
            spi=SPI_DEFAULT, kic=0x15, kid=0x15, tar=TAR, counter=1, data=bytes(2030), keys=DES2
        )
    with pytest.raises(EncodeError, match="KIc must be one byte"):
        encode_command(spi=SPI_DEFAULT, kic=256, kid=0x15, tar=TAR, counter=1, data=b"", keys=DES2)
    with pytest.raises(EncodeError, match="PoR data of 281 bytes"):
        encode_por(tar=TAR, counter=0, status=PorStatus.OK, data=bytes(281), security=PLAIN_POR)


# --- card side: security failures ------------------------------------------------------------


def _packet(spi: Spi = SPI_DEFAULT, keys: OtaKeys = DES2, data: bytes = DATA, **kw: int) -> bytes:
    return encode_command(
        spi=spi,
        kic=kw.get("kic", 0x15),
        kid=kw.get("kid", 0x15),
        tar=TAR,
        counter=kw.get("counter", 5),
        data=data,
        keys=keys,
    )


def _refusal(packet: bytes, keys: OtaKeys | None) -> RefusedCommand:
    result = verify_command(decode_command(packet), keys)
    assert isinstance(result, RefusedCommand), result
    return result


def test_wrong_keys_fail_the_checksum() -> None:
    wrong = OtaKeys(KeyFamily.DES, bytes(16), bytes(16))
    refusal = _refusal(_packet(), wrong)
    assert refusal.status is PorStatus.RC_CC_DS_FAILED
    assert refusal.reason == "3DES-CBC-MAC-2KEY does not match"
    only_kid_wrong = OtaKeys(KeyFamily.DES, DES2.kic, bytes(16))
    assert _refusal(_packet(), only_kid_wrong).status is PorStatus.RC_CC_DS_FAILED


@pytest.mark.parametrize("first", [0x02, 0x06, 0x01, 0x05], ids=["CC", "CC-ciph", "RC", "RC-ciph"])
def test_any_flipped_bit_fails_the_checksum(first: int) -> None:
    spi = Spi.decode(bytes((first, 0x09)))
    packet = _packet(spi, kid=_kid_for(spi, 0x15))
    for i in range(10, len(packet)):
        for bit in (0x01, 0x80):
            bad = bytearray(packet)
            bad[i] ^= bit
            assert _refusal(bytes(bad), DES2).status is PorStatus.RC_CC_DS_FAILED, (i, bit)
    # the clear header is checksummed too (a changed TAR or counter mode is caught)
    for i in (8, 4):
        bad = bytearray(packet)
        bad[i] ^= 0x10
        result = verify_command(decode_command(bytes(bad)), DES2)
        assert isinstance(result, RefusedCommand)
        assert result.status is PorStatus.RC_CC_DS_FAILED


def test_ciphered_part_not_whole_blocks_is_a_ciphering_error() -> None:
    packet = _packet()
    cut = (len(packet) - 3 - 2).to_bytes(2, "big") + packet[2:-3]
    refusal = _refusal(cut, DES2)
    assert refusal.status is PorStatus.CIPHERING_ERROR
    assert refusal.reason == "ciphered part of 21 bytes is not whole 8-byte blocks"


def test_pcntr_over_the_data_is_a_ciphering_error() -> None:
    """Ciphered, no checksum: wrong keys decrypt to a random PCNTR; over the data -> 05."""
    spi = Spi(checksum=Checksum.NONE, counter=CounterMode.NONE)
    packet = _packet(spi)
    statuses = set()
    for seed in range(40):
        other = OtaKeys(KeyFamily.DES, bytes([seed]) * 16, DES2.kid)
        result = verify_command(decode_command(packet), other)
        statuses.add(result.status if isinstance(result, RefusedCommand) else PorStatus.OK)
    assert PorStatus.CIPHERING_ERROR in statuses


def test_missing_or_mismatched_keys_are_an_unidentified_security_error() -> None:
    assert _refusal(_packet(), None).status is PorStatus.UNIDENTIFIED_SECURITY_ERROR
    assert _refusal(_packet(), AES128).status is PorStatus.UNIDENTIFIED_SECURITY_ERROR
    signed_only = _packet(Spi(ciphered=False))
    assert _refusal(signed_only, None).status is PorStatus.UNIDENTIFIED_SECURITY_ERROR
    # CRC-16 (KID x1) and DS are not supported: the packet is refused, not misread.
    crc16 = h("0015") + h("0f") + h("0119") + h("1511") + TAR + bytes(6) + h("0000") + DATA
    crc16 = (len(crc16) - 2).to_bytes(2, "big") + crc16[2:]
    assert _refusal(crc16, DES2).status is PorStatus.UNIDENTIFIED_SECURITY_ERROR


# --- the counter rule ------------------------------------------------------------------------

HIGHER = Spi(counter=CounterMode.HIGHER)
ONE_HIGHER = Spi(counter=CounterMode.ONE_HIGHER)


@pytest.mark.parametrize(
    ("spi", "stored", "received", "status"),
    [
        (HIGHER, 5, 6, PorStatus.OK),
        (HIGHER, 5, 900, PorStatus.OK),
        (HIGHER, 5, 5, PorStatus.COUNTER_LOW),  # replayed
        (HIGHER, 5, 4, PorStatus.COUNTER_LOW),
        (HIGHER, 0, 0, PorStatus.COUNTER_LOW),
        (HIGHER, COUNTER_MAX - 1, COUNTER_MAX, PorStatus.OK),
        (HIGHER, COUNTER_MAX, COUNTER_MAX, PorStatus.COUNTER_BLOCKED),
        (HIGHER, COUNTER_MAX, 0, PorStatus.COUNTER_BLOCKED),
        (ONE_HIGHER, 5, 6, PorStatus.OK),
        (ONE_HIGHER, 5, 5, PorStatus.COUNTER_LOW),
        (ONE_HIGHER, 5, 3, PorStatus.COUNTER_LOW),
        (ONE_HIGHER, 5, 7, PorStatus.COUNTER_HIGH),  # a gap
        (ONE_HIGHER, COUNTER_MAX, COUNTER_MAX, PorStatus.COUNTER_BLOCKED),
        (Spi(counter=CounterMode.NO_CHECK), 5, 1, PorStatus.OK),
        (Spi(counter=CounterMode.NONE), 5, 1, PorStatus.OK),
    ],
)
def test_check_counter(spi: Spi, stored: int, received: int, status: PorStatus) -> None:
    assert check_counter(spi, stored, received) is status


def test_counter_after_moves_only_checked_counters() -> None:
    assert counter_after(HIGHER, 5, 9) == 9
    assert counter_after(ONE_HIGHER, 5, 6) == 6
    assert counter_after(Spi(counter=CounterMode.NO_CHECK), 5, 1) == 5
    assert counter_after(Spi(counter=CounterMode.NONE), 5, 1) == 5
    with pytest.raises(ValueError, match="5-byte"):
        check_counter(HIGHER, -1, 0)


# --- framing errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        ("", "CPL: needs 2 bytes (at byte 0)"),
        ("00", "CPL: needs 2 bytes (at byte 1)"),
        ("0005", "CPL: says 5 bytes follow, 0 do (at byte 0)"),
        ("0000", "CHL: missing (at byte 2)"),
        ("00010c", "CHL: 12 is under 13 (at byte 2)"),
        ("00011e", "CHL: 30 announces over 16 checksum bytes (at byte 2)"),
        ("00010d", "CHL: header of 13 bytes runs past the end (at byte 2)"),
        (
            "000e0d" + "e000" + "1515" + "b00011" + "0000000000" + "00",
            "SPI: byte 1 E0 sets reserved bits b8..b6 (at byte 3)",
        ),
        (
            "000e0d" + "0200" + "1515" + "b00011" + "0000000000" + "00",
            "CHL: 13 does not fit SPI/KID (their RC/CC/DS is 8 bytes) (at byte 2)",
        ),
        (
            "00120d" + "0100" + "1515" + "b00011" + "0000000000" + "00" + "00000000",
            "CHL: 13 does not fit SPI/KID (their RC/CC/DS is 4 bytes) (at byte 2)",
        ),
    ],
)
def test_framing_errors_name_field_and_offset(packet: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_command(h(packet))
    assert str(info.value) == message


def test_packet_over_the_limit_is_refused() -> None:
    with pytest.raises(DecodeError, match="over the limit"):
        decode_command(bytes(COMMAND_PACKET_LEN_MAX + 1))


@pytest.mark.parametrize("record", VECTORS["command"], ids=names(VECTORS["command"]))
def test_every_truncation_and_extension_is_a_decode_error(record: Record) -> None:
    packet = h(record["packet"])
    for n in range(len(packet)):
        with pytest.raises(DecodeError):
            decode_command(packet[:n])
    with pytest.raises(DecodeError, match="CPL: says"):
        decode_command(packet + b"\x00")


def test_truncation_with_cpl_fixed_up_is_refused_by_security() -> None:
    """A consistent CPL over a shortened packet passes framing but never security."""
    packet = h(VECTORS["command"][0]["packet"])
    keys = keys_of(VECTORS["command"][0])
    for n in range(3 + 21, len(packet)):  # CHL 21: the header is there, ciphered or not
        cut = (n - 2).to_bytes(2, "big") + packet[2:n]
        result = verify_command(decode_command(cut), keys)
        assert isinstance(result, RefusedCommand)
        assert result.status in (PorStatus.CIPHERING_ERROR, PorStatus.RC_CC_DS_FAILED)


# --- PoR, server side ------------------------------------------------------------------------

SECURED = PorSecurity.for_command(SPI_DEFAULT, 0x15, 0x15, DES2)
CIPHERED = PorSecurity.for_command(SPI_POR_BY_SMS, 0x15, 0x15, DES2)


@pytest.mark.parametrize("security", [SECURED, CIPHERED], ids=["CC", "CC+ciphered"])
def test_plain_por_of_a_refused_packet_is_accepted_unsecured(security: PorSecurity) -> None:
    for status in (PorStatus.RC_CC_DS_FAILED, PorStatus.COUNTER_LOW, PorStatus.TAR_UNKNOWN):
        ud = encode_por(tar=TAR, counter=0, status=status, data=b"", security=PLAIN_POR)
        assert ud == h("027100000b0a") + TAR + bytes(6) + bytes((status,))
        assert decode_por(ud, security) == Por(TAR, 0, status, b"", secured=False)


def test_plain_por_claiming_success_is_refused_where_security_was_asked() -> None:
    ud = encode_por(tar=TAR, counter=0, status=PorStatus.OK, data=b"", security=PLAIN_POR)
    with pytest.raises(PorCheckError) as info:
        decode_por(ud, SECURED)
    assert str(info.value) == "PoR: unsecured PoR reports OK, not a refusal (at byte 15)"
    assert decode_por(ud, PLAIN_POR).status is PorStatus.OK


def test_por_with_any_flipped_bit_is_refused() -> None:
    for security in (SECURED, CIPHERED):
        ud = encode_por(
            tar=TAR, counter=9, status=PorStatus.OK, data=h("019000"), security=security
        )
        for i in range(3, len(ud)):
            bad = bytearray(ud)
            bad[i] ^= 0x01
            with pytest.raises(DecodeError):
                decode_por(bytes(bad), security)


@pytest.mark.parametrize(
    ("ud", "message"),
    [
        ("027000", "PoR UDH: must start 02 71 00 (response packet identifier) (at byte 0)"),
        ("027100", "RPL: needs 2 bytes (at byte 3)"),
        ("0271000001", "RPL: says 1 bytes follow, 0 do (at byte 3)"),
        ("02710000020a00", "RHL: RHL and TAR missing (at byte 7)"),
        ("02710000040900b000", "RHL: 9 is not 10 plus a checksum length (at byte 5)"),
        ("02710000040ab00011", "RHL: header of 10 bytes runs past the end (at byte 5)"),
        (
            "027100000b0ab00011" + "0000000000" + "00" + "0f",
            "PoR status: 0F is reserved (at byte 15)",
        ),
        (
            "027100000c0ab00011" + "0000000000" + "05" + "00" + "00",
            "PCNTR: 5 is over the 1 bytes of data (at byte 14)",
        ),
    ],
)
def test_por_framing_errors_name_field_and_offset(ud: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_por(h(ud), PLAIN_POR)
    assert str(info.value) == message


def test_every_truncation_of_a_por_is_a_decode_error() -> None:
    record = VECTORS["por"][0]
    security = PorSecurity.for_command(Spi.decode(h(record["spi"])), 0x35, 0x35, keys_of(record))
    ud = h(record["por_user_data"])
    for n in range(len(ud)):
        with pytest.raises(DecodeError):
            decode_por(ud[:n], security)


def test_key_version_is_the_high_nibble_of_kic_and_kid() -> None:
    assert key_version(0x35) == 3 and key_version(0x22) == 2 and key_version(0xF9) == 15
