"""The SIM's OTA receiver through the card runtime (ota.md §2), against a fake ISD.

Bad input: replayed packets, counters too low / too high / exhausted, bad checksums, wrong
keys, unknown TARs, an insufficient security level, truncated and garbage ENVELOPEs all get
the right PoR status or status word, run nothing and leave the card image untouched (not a
single commit). Accepted packets store the counter and every effect in one commit.
"""

from __future__ import annotations

import pytest

from card_applet_sim.domain.errors import PowerLoss
from card_applet_sim.domain.ota_receiver import TAR_ISD
from paycore.apdu import CommandApdu
from paycore.ota import remote_apdu, sms
from paycore.ota.packet import PLAIN_POR, POR_UDH, Por, PorSecurity, decode_por
from paycore.ota.security import (
    COUNTER_MAX,
    SPI_DEFAULT,
    SPI_POR_BY_SMS,
    Checksum,
    CounterMode,
    KeyFamily,
    OtaKeys,
    PorRequest,
    PorStatus,
    Spi,
)
from paycore.sw import SW
from tests.unit.card_applet_sim.cardkit import PowerCut
from tests.unit.card_applet_sim.otakit import (
    BIG_RESPONSE,
    ENVELOPES_MIN,
    FUZZ,
    KEY_SETS,
    KEYS_3DES,
    OPEN_TAR,
    SERVER,
    OtaCard,
    envelope_apdu,
    envelope_apdus,
    envelope_data,
    fuzz_envelopes,
    ota_card,
    packet,
    script,
)

STORE = "80e2000003010203"
STORE_LOG = "1:80e2000003010203"
GET_STATUS = "80f24000024f00"
FAIL = "806a000000"
COUNTER = 41


def security(spi: Spi = SPI_DEFAULT, version: int = 1) -> PorSecurity:
    keys, coding = KEY_SETS[version]
    return PorSecurity.for_command(spi, coding, coding, keys)


def por_of(card: OtaCard, apdu: bytes, spi: Spi = SPI_DEFAULT, version: int = 1) -> Por:
    response = card.send(apdu)
    assert response.sw == SW.OK, f"{response.sw:04X}"
    return decode_por(response.data, security(spi, version))


def refused(card: OtaCard, apdu: bytes, status: PorStatus, spi: Spi = SPI_DEFAULT) -> None:
    """The packet is refused with ``status``: a plain PoR, nothing run, nothing committed."""
    before = card.image
    por = por_of(card, apdu, spi)
    assert (por.status, por.data, por.secured) == (status, b"", False)
    assert card.image is before
    assert card.store.commits == 0


# --- accepted packets ------------------------------------------------------------------------


@pytest.mark.parametrize("version", sorted(KEY_SETS), ids=["3DES", "AES", "3DES-3KEY", "DES"])
def test_accepted_packet_runs_its_script_and_stores_the_counter_in_one_commit(
    version: int,
) -> None:
    card = ota_card({version: COUNTER})
    apdu = envelope_apdu(packet(script(STORE, GET_STATUS), COUNTER + 1, version=version))
    por = por_of(card, apdu, version=version)
    assert (por.tar, por.counter, por.status, por.secured) == (TAR_ISD, COUNTER + 1, 0, True)
    assert remote_apdu.decode_response(por.data) == remote_apdu.CompactResponse(
        2, 0x9000, bytes.fromhex("e3024f00")
    )
    assert card.isd.counters == ((version, COUNTER + 1),)
    assert card.isd.log == (f"{version}:80e2000003010203", f"{version}:80f24000024f00")
    assert card.store.commits == 1


def test_counter_exactly_one_higher_mode() -> None:
    spi = Spi(counter=CounterMode.ONE_HIGHER)
    card = ota_card({1: COUNTER})
    assert por_of(card, envelope_apdu(packet(script(STORE), COUNTER + 1, spi=spi)), spi).status == 0
    assert card.isd.counters == ((1, COUNTER + 1),)


def test_a_failing_command_stops_the_script_but_what_ran_is_committed_with_the_counter() -> None:
    card = ota_card({1: COUNTER})
    apdu = envelope_apdu(packet(script(STORE, FAIL, STORE), COUNTER + 1))
    por = por_of(card, apdu)
    assert por.status is PorStatus.OK
    assert remote_apdu.decode_response(por.data) == remote_apdu.CompactResponse(2, 0x6A80)
    assert card.isd.log == (STORE_LOG, "1:806a0000")
    assert card.isd.counters == ((1, COUNTER + 1),)
    assert card.store.commits == 1


def test_por_on_error_only() -> None:
    spi = Spi(por=PorRequest.ON_ERROR)
    card = ota_card({1: COUNTER})
    response = card.send(envelope_apdu(packet(script(STORE), COUNTER + 1, spi=spi)))
    assert (response.sw, response.data) == (SW.OK, b"")  # success: no PoR
    failing = por_of(card, envelope_apdu(packet(script(FAIL), COUNTER + 2, spi=spi)), spi)
    assert remote_apdu.decode_response(failing.data).last_sw == 0x6A80
    replayed = por_of(card, envelope_apdu(packet(script(STORE), COUNTER + 2, spi=spi)), spi)
    assert replayed.status is PorStatus.COUNTER_LOW


def test_no_por_at_all() -> None:
    spi = Spi(por=PorRequest.NONE)
    card = ota_card({1: COUNTER})
    response = card.send(envelope_apdu(packet(script(STORE), COUNTER + 1, spi=spi)))
    assert (response.sw, response.data) == (SW.OK, b"")
    assert card.isd.log == (STORE_LOG,)
    response = card.send(envelope_apdu(packet(script(STORE), COUNTER + 1, spi=spi)))
    assert (response.sw, response.data) == (SW.OK, b"")  # refused silently
    assert card.isd.log == (STORE_LOG,)


def test_empty_script_only_moves_the_counter() -> None:
    card = ota_card({1: COUNTER})
    por = por_of(card, envelope_apdu(packet(b"", COUNTER + 5)))
    assert (por.status, por.data) == (PorStatus.OK, b"")
    assert card.isd.counters == ((1, COUNTER + 5),) and card.isd.log == ()


def test_authentic_script_that_does_not_split_runs_nothing_but_spends_the_counter() -> None:
    card = ota_card({1: COUNTER})
    por = por_of(card, envelope_apdu(packet(bytes.fromhex("80e20000"), COUNTER + 1)))
    assert remote_apdu.decode_response(por.data) == remote_apdu.CompactResponse(0, 0x6700)
    assert card.isd.log == () and card.isd.counters == ((1, COUNTER + 1),)


def test_open_tar_accepts_a_packet_without_security() -> None:
    spi = Spi(checksum=Checksum.NONE, ciphered=False, counter=CounterMode.NONE,
              por_checksum=Checksum.NONE)  # fmt: skip
    card = ota_card()
    apdu = envelope_apdu(packet(script(STORE), 0, spi=spi, tar=OPEN_TAR))
    por = por_of(card, apdu, spi)
    assert (por.tar, por.status, por.secured) == (OPEN_TAR, PorStatus.OK, False)
    assert card.isd.counters == ()  # no counter: nothing stored


def test_crc32_packet_to_an_open_tar() -> None:
    spi = Spi(checksum=Checksum.RC, ciphered=False, counter=CounterMode.NONE,
              por_checksum=Checksum.RC)  # fmt: skip
    card = ota_card()
    apdu = envelope_apdu(packet(script(STORE), 0, spi=spi, tar=OPEN_TAR, kid=0x15))
    response = card.send(apdu)
    por = decode_por(response.data, PorSecurity.for_command(spi, 0x15, 0x15, None))
    assert (por.status, por.secured) == (PorStatus.OK, True)
    bad = bytearray(apdu)
    bad[-2] ^= 1  # the last data byte (the last APDU byte is Le)
    por = decode_por(card.send(bytes(bad)).data, PLAIN_POR)
    assert por.status is PorStatus.RC_CC_DS_FAILED


# --- refused packets: the right status, nothing run, nothing committed -----------------------


def test_replayed_packet() -> None:
    card = ota_card({1: COUNTER})
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1))
    assert por_of(card, apdu).status is PorStatus.OK
    commits, image = card.store.commits, card.image
    por = por_of(card, apdu)
    assert (por.status, por.secured) == (PorStatus.COUNTER_LOW, False)
    assert card.image is image and card.store.commits == commits
    assert card.isd.log == (STORE_LOG,)


@pytest.mark.parametrize(
    ("spi", "counter", "status"),
    [
        (SPI_DEFAULT, COUNTER, PorStatus.COUNTER_LOW),
        (SPI_DEFAULT, COUNTER - 1, PorStatus.COUNTER_LOW),
        (SPI_DEFAULT, 0, PorStatus.COUNTER_LOW),
        (Spi(counter=CounterMode.ONE_HIGHER), COUNTER, PorStatus.COUNTER_LOW),
        (Spi(counter=CounterMode.ONE_HIGHER), COUNTER - 3, PorStatus.COUNTER_LOW),
        (Spi(counter=CounterMode.ONE_HIGHER), COUNTER + 2, PorStatus.COUNTER_HIGH),
        (Spi(counter=CounterMode.ONE_HIGHER), COUNTER_MAX, PorStatus.COUNTER_HIGH),
    ],
)
def test_counter_too_low_or_too_high(spi: Spi, counter: int, status: PorStatus) -> None:
    card = ota_card({1: COUNTER})
    before = card.image
    por = por_of(card, envelope_apdu(packet(script(STORE), counter, spi=spi)), spi)
    assert (por.status, por.counter, por.secured) == (status, counter, False)
    assert card.image is before and card.store.commits == 0


def test_exhausted_counter_blocks_the_key_set() -> None:
    card = ota_card({1: COUNTER_MAX - 1})
    assert por_of(card, envelope_apdu(packet(script(STORE), COUNTER_MAX))).status == 0
    for counter in (COUNTER_MAX, 0, 5):
        por = por_of(card, envelope_apdu(packet(script(STORE), counter)))
        assert por.status is PorStatus.COUNTER_BLOCKED
    assert card.isd.log == (STORE_LOG,)
    # another key set is not blocked
    assert por_of(card, envelope_apdu(packet(script(STORE), 1, version=2)), version=2).status == 0


def test_bad_checksum() -> None:
    card = ota_card({1: COUNTER})
    apdu = bytearray(envelope_apdu(packet(script(STORE), COUNTER + 1)))
    apdu[-3] ^= 0x40  # inside the ciphered part
    refused(card, bytes(apdu), PorStatus.RC_CC_DS_FAILED)


def test_wrong_keys() -> None:
    card = ota_card({1: COUNTER})
    wrong = OtaKeys(KeyFamily.DES, bytes(16), bytes(range(16)))
    refused(
        card,
        envelope_apdu(packet(script(STORE), COUNTER + 1, keys=wrong)),
        PorStatus.RC_CC_DS_FAILED,
    )
    right_kic_wrong_kid = OtaKeys(KeyFamily.DES, KEYS_3DES.kic, bytes(16))
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1, keys=right_kic_wrong_kid))
    refused(card, apdu, PorStatus.RC_CC_DS_FAILED)


def test_unknown_key_set_and_mismatched_algorithm() -> None:
    card = ota_card({1: COUNTER})
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1, kic=0x95, kid=0x95))  # set 9: none
    refused(card, apdu, PorStatus.UNIDENTIFIED_SECURITY_ERROR)
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1, kic=0x15, kid=0x25))  # two sets
    refused(card, apdu, PorStatus.UNIDENTIFIED_SECURITY_ERROR)
    # KIc says AES for key set 1, which is a 3DES set
    spi = Spi()
    aes = packet(script(STORE), COUNTER + 1, version=2, kic=0x12, kid=0x12)
    refused(card, envelope_apdu(aes), PorStatus.UNIDENTIFIED_SECURITY_ERROR, spi)
    # a digital signature (SPI1 b2b1 = 11) is not supported: 06 before anything is checked
    signed = bytearray(packet(script(STORE), COUNTER + 1))
    signed[3] |= 0x03
    refused(card, envelope_apdu(bytes(signed)), PorStatus.UNIDENTIFIED_SECURITY_ERROR)


def test_unknown_tar() -> None:
    card = ota_card({1: COUNTER})
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1, tar=bytes.fromhex("B00099")))
    before = card.image
    por = por_of(card, apdu)
    assert (por.tar, por.status, por.counter) == (bytes.fromhex("B00099"), PorStatus.TAR_UNKNOWN, 0)
    assert card.image is before and card.store.commits == 0


@pytest.mark.parametrize(
    "first",
    [0x00, 0x02, 0x06, 0x0E, 0x14, 0x12, 0x15, 0x0A],
    ids=lambda v: f"SPI1={v:02X}",
)
def test_insufficient_security_level_for_the_isd(first: int) -> None:
    """TAR 000000 needs SPI1 >= 16: ciphered, CC, counter higher (or exactly +1)."""
    spi = Spi.decode(bytes((first, 0x01)))
    card = ota_card({1: COUNTER})
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1, spi=spi))  # KID 15: CC or CRC-32
    refused(card, apdu, PorStatus.INSUFFICIENT_SECURITY_LEVEL, spi)


# --- malformed ENVELOPEs: a status word, nothing run, nothing committed ----------------------


def test_every_truncation_of_an_envelope_is_refused_without_effect() -> None:
    card = ota_card({1: COUNTER})
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1))
    before = card.image
    for n in range(len(apdu) - 1):
        cut = apdu[:n]
        if n > 5:
            cut = cut[:4] + bytes((n - 5,)) + cut[5:]  # a consistent Lc over a truncated body
        response = card.send(cut)
        assert response.sw in (SW.WRONG_DATA, SW.WRONG_LENGTH, SW.OK), (n, hex(response.sw))
        if response.sw == SW.OK:  # only possible with a PoR of a refused packet
            assert decode_por(response.data, PLAIN_POR).status in (1, 5)
    assert card.image is before and card.store.commits == 0


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("80c2000000", SW.WRONG_LENGTH),  # no data
        ("80c20100" + "06d1048b020000", SW.WRONG_P1P2),
        ("80c2000004d1028b00", SW.WRONG_DATA),  # no device identities
        ("80c20000" + "08d006820283818b00", SW.WRONG_DATA),  # not SMS-PP DOWNLOAD
        ("80c20000" + "0ad10882028381" + "8b020000", SW.WRONG_DATA),  # garbage TPDU
        ("80c20000ffff" + "00" * 254, SW.WRONG_DATA),
        ("8012000000", SW.CONDITIONS_NOT_SATISFIED),  # FETCH, nothing pending
        ("8014000003830100", SW.CONDITIONS_NOT_SATISFIED),  # TERMINAL RESPONSE, nothing pending
        ("8012010000", SW.WRONG_P1P2),
    ],
)
def test_garbage_commands_get_a_status_word(apdu: str, sw: int) -> None:
    card = ota_card({1: COUNTER})
    before = card.image
    assert card.send(bytes.fromhex(apdu)).sw == sw
    assert card.image is before and card.store.commits == 0


def _deliver_apdu(tpdu: bytes) -> bytes:
    return CommandApdu(0x80, 0xC2, 0, 0, sms.SmsPpDownload(tpdu).encode()).encode()


def test_sms_that_is_not_a_secured_packet_is_refused() -> None:
    card = ota_card({1: COUNTER})
    secured = packet(script(STORE), COUNTER + 1)
    plain_sms = sms.SmsDeliver(SERVER, bytes(7), sms.UserData((), secured)).encode()
    assert card.send(_deliver_apdu(plain_sms)).sw == SW.WRONG_DATA  # no 70 00 header
    other_pid = sms.SmsDeliver(
        SERVER, bytes(7), sms.UserData((sms.InformationElement(0x70),), secured), pid=0x00
    ).encode()
    assert card.send(_deliver_apdu(other_pid)).sw == SW.WRONG_DATA
    with_data = sms.SmsDeliver(
        SERVER, bytes(7), sms.UserData((sms.InformationElement(0x70, b"\x01"),), secured)
    ).encode()
    assert card.send(_deliver_apdu(with_data)).sw == SW.WRONG_DATA
    assert card.store.commits == 0


# --- internal errors and power cuts ----------------------------------------------------------


def test_an_internal_error_in_the_target_commits_nothing() -> None:
    card = ota_card({1: COUNTER})
    before = card.image
    response = card.send(envelope_apdu(packet(script(STORE, "8066000000"), COUNTER + 1)))
    assert response.sw == SW.NO_PRECISE_DIAGNOSIS
    assert card.image is before and card.store.commits == 0
    # the counter was not spent: the same packet number can be sent again with a good script
    assert por_of(card, envelope_apdu(packet(script(STORE), COUNTER + 1))).status == 0


@pytest.mark.parametrize("point", ["tmp-written", "renamed"])
def test_power_cut_during_the_commit(point: str) -> None:
    cut = PowerCut(point)
    card = ota_card({1: COUNTER}, hook=cut)
    apdu = envelope_apdu(packet(script(STORE), COUNTER + 1))
    with pytest.raises(PowerLoss):
        card.send(apdu)
    assert not card.card.powered
    card.card.power_on()
    if point == "tmp-written":  # torn before the swap: old image, the packet can come again
        assert card.isd.log == () and card.isd.counters == ((1, COUNTER),)
        assert por_of(card, apdu).status is PorStatus.OK
    else:  # after the swap: counter and effect together, the packet is now a replay
        assert card.isd.log == (STORE_LOG,) and card.isd.counters == ((1, COUNTER + 1),)
        assert por_of(card, apdu).status is PorStatus.COUNTER_LOW


# --- the card content changes through OTA ----------------------------------------------------


def test_instances_installed_and_deleted_over_the_air_become_selectable_or_go() -> None:
    card = ota_card({1: COUNTER})
    aid = bytes.fromhex("F04E4643504159010101")
    install = f"80ee0000{len(aid):02x}{aid.hex()}"
    select = bytes.fromhex(f"00a40400{len(aid):02x}{aid.hex()}")
    assert card.send(select).sw == SW.FILE_NOT_FOUND
    assert por_of(card, envelope_apdu(packet(script(install), COUNTER + 1))).status == 0
    assert card.send(select).sw == SW.OK
    delete = f"80dd0000{len(aid):02x}{aid.hex()}"
    assert por_of(card, envelope_apdu(packet(script(delete), COUNTER + 2))).status == 0
    assert card.send(select).sw == SW.FILE_NOT_FOUND
    assert card.send(bytes.fromhex("80ca000000")).sw == SW.INS_NOT_SUPPORTED  # deselected


def test_wallet_keeps_working_next_to_the_receiver() -> None:
    card = ota_card({1: COUNTER})
    assert card.send(bytes.fromhex("00a4040009a00000000386980701")).sw == SW.OK
    assert card.send(bytes.fromhex("805c000204")).sw == SW.OK  # GET BALANCE
    assert por_of(card, envelope_apdu(packet(script(STORE), COUNTER + 1))).status == 0
    assert card.send(bytes.fromhex("805c000204")).sw == SW.OK


# --- concatenated packets --------------------------------------------------------------------


def test_concatenated_packet_is_reassembled_and_committed_once() -> None:
    card = ota_card({1: COUNTER})
    commands = [f"80e20000{64:02x}" + bytes([i]).hex() * 64 for i in range(8)]
    apdus = envelope_apdus(packet(script(*commands), COUNTER + 1), reference=7)
    assert len(apdus) == 5
    for apdu in apdus[:-1]:
        response = card.send(apdu)
        assert (response.sw, response.data) == (SW.OK, b"")
        assert card.store.commits == 0
    por = por_of(card, apdus[-1])
    assert remote_apdu.decode_response(por.data) == remote_apdu.CompactResponse(8, 0x9000)
    assert len(card.isd.log) == 8 and card.store.commits == 1


def test_out_of_order_segments_and_a_reset_in_between() -> None:
    card = ota_card({1: COUNTER})
    commands = [f"80e20000{100:02x}" + "ab" * 100] * 3
    apdus = envelope_apdus(packet(script(*commands), COUNTER + 1), reference=1)
    assert len(apdus) == 3
    assert card.send(apdus[2]).sw == SW.OK
    assert card.send(apdus[0]).sw == SW.OK
    card.card.reset()  # transient: the segments are gone
    assert card.send(apdus[1]).data == b""
    assert card.send(apdus[2]).data == b""
    por = por_of(card, apdus[0])
    assert remote_apdu.decode_response(por.data).executed == 3


# --- PoR by SMS-SUBMIT: 91xx, FETCH, TERMINAL RESPONSE ---------------------------------------


def _fetch(card: OtaCard, length: int) -> bytes:
    response = card.send(bytes((0x80, 0x12, 0, 0, length & 0xFF)))
    assert response.sw == SW.OK
    return response.data


def _terminal_response(card: OtaCard, result: int = 0) -> int:
    tr = sms.TerminalResponse(1, sms.COMMAND_SEND_SHORT_MESSAGE, 0, result).encode()
    return card.send(CommandApdu(0x80, 0x14, 0, 0, tr).encode()).sw


def test_por_by_sms_submit() -> None:
    spi = SPI_POR_BY_SMS
    card = ota_card({1: COUNTER})
    sc = sms.Address("8613800755500", 0x91)
    (apdu,) = envelope_apdus(packet(script(GET_STATUS), COUNTER + 1, spi=spi), service_centre=sc)
    response = card.send(apdu)
    assert response.sw >> 8 == 0x91
    short = decode_por(response.data, security(spi))
    assert (short.status, short.data, short.secured) == (PorStatus.SMS_SUBMIT_TO_FOLLOW, b"", True)
    assert card.store.commits == 1  # executed and committed before the 91xx left the card
    length = response.sw & 0xFF
    assert card.send(bytes((0x80, 0x12, 0, 0, length + 1))).sw == 0x6C00 | length
    command = sms.decode_send_short_message(_fetch(card, length))
    assert command.service_centre == sc
    submit = sms.decode_submit(command.tpdu)
    assert submit.destination == SERVER
    assert submit.user_data.header == (sms.InformationElement(0x71),)
    por = decode_por(POR_UDH + submit.user_data.payload, security(spi))
    assert (por.status, por.counter) == (PorStatus.OK, COUNTER + 1)
    assert remote_apdu.decode_response(por.data).last_data == bytes.fromhex("e3024f00")
    assert _fetch(card, length) == _fetch(card, length)  # FETCH again: the same command
    assert _terminal_response(card) == SW.OK
    assert card.send(bytes.fromhex("8012000000")).sw == SW.CONDITIONS_NOT_SATISFIED


def test_long_por_goes_by_concatenated_sms_submit() -> None:
    """A PoR too long for the ENVELOPE response (our choice) goes by SMS-SUBMIT too."""
    card = ota_card({1: COUNTER})
    response = card.send(envelope_apdu(packet(script("80ca000000"), COUNTER + 1)))
    assert response.sw >> 8 == 0x91
    assert decode_por(response.data, security()).status is PorStatus.SMS_SUBMIT_TO_FOLLOW
    state = sms.Reassembly()
    whole = None
    length = response.sw & 0xFF
    while whole is None:
        submit = sms.decode_submit(sms.decode_send_short_message(_fetch(card, length)).tpdu)
        state, whole = state.add("card", submit.user_data)
        sw = _terminal_response(card)
        length = sw & 0xFF
        assert sw == SW.OK if whole is not None else sw >> 8 == 0x91
    assert whole.find(0x71) is not None
    por = decode_por(POR_UDH + whole.payload, security())
    assert remote_apdu.decode_response(por.data).last_data == BIG_RESPONSE


def test_failed_send_short_message_drops_the_por_and_reset_drops_pending() -> None:
    card = ota_card({1: COUNTER})
    response = card.send(envelope_apdu(packet(script("80ca000000"), COUNTER + 1)))
    assert card.receiver.pending == 3  # a 281-byte PoR: 3 SMS
    assert _terminal_response(card, result=0x35) == SW.OK
    assert card.receiver.pending == 0
    card.send(envelope_apdu(packet(script("80ca000000"), COUNTER + 2)))
    assert card.receiver.pending == 3
    card.card.reset()
    assert card.receiver.pending == 0
    assert response.sw >> 8 == 0x91


def test_refused_packet_asking_por_by_sms_gets_its_plain_por_at_once() -> None:
    card = ota_card({1: COUNTER})
    apdu = envelope_apdu(packet(script(STORE), COUNTER, spi=SPI_POR_BY_SMS))
    por = por_of(card, apdu, SPI_POR_BY_SMS)
    assert (por.status, por.secured) == (PorStatus.COUNTER_LOW, False)
    assert card.receiver.pending == 0


def test_bad_terminal_responses() -> None:
    card = ota_card({1: COUNTER})
    card.send(envelope_apdu(packet(script(STORE), COUNTER + 1, spi=SPI_POR_BY_SMS)))
    assert card.send(bytes.fromhex("801400000100")).sw == SW.WRONG_DATA
    other = sms.TerminalResponse(1, 0x14, 0, 0).encode()
    assert card.send(CommandApdu(0x80, 0x14, 0, 0, other).encode()).sw == SW.WRONG_DATA
    assert card.receiver.pending == 1


# --- 50,000 malformed ENVELOPEs --------------------------------------------------------------

STORED = 1000


def _corpus() -> list[bytes]:
    """ENVELOPE data fields the card must refuse even unmutated: replays (counter <= stored),
    an unknown TAR, an insufficient SPI, unknown key sets, segments of such packets."""
    out: list[bytes] = []
    sources = [
        packet(script(STORE, GET_STATUS), STORED),
        packet(script(STORE), 3, version=2),
        packet(script(STORE), STORED, version=3, spi=Spi(counter=CounterMode.ONE_HIGHER)),
        packet(script(STORE), STORED + 1, tar=bytes.fromhex("B00099")),
        packet(script(STORE), STORED + 1, spi=Spi(counter=CounterMode.NO_CHECK)),
        packet(script(STORE), STORED + 1, kic=0x95, kid=0x95),
        packet(script(STORE), STORED, spi=SPI_POR_BY_SMS),
        packet(script(*[STORE] * 30), STORED - 1),
    ]
    for secured in sources:
        out.extend(envelope_data(secured))
    return out


def test_50000_malformed_envelopes_never_escape_nor_change_the_card() -> None:
    """At least 50,000 malformed ENVELOPEs (deterministic): each gets 9000 with a plain PoR of
    a refusal (or no PoR), 6A80, 6700 or 6A86 -- never 6F00 (no exception inside the receiver),
    never 91xx (nothing accepted) -- and the card image is the very same object at the end."""
    card = ota_card({1: STORED, 2: STORED, 3: STORED})
    assert fuzz_envelopes(card.card, card.store, _corpus(), FUZZ) >= ENVELOPES_MIN
    assert card.isd.log == () and card.receiver.pending == 0
