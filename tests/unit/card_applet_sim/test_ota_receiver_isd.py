"""The OTA receiver wired to the real issuer security domain (card_applet_sim.domain.isd):
TAR 000000 runs GP commands from secured packets; the SCP80 counter lives in the ISD's key set
and moves with the commands' effects in one commit; refusals change nothing; 50,000 malformed
ENVELOPEs against the real ISD change nothing either."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from card_applet_sim import bootstrap
from card_applet_sim.adapters.stores import MemoryStore
from card_applet_sim.domain.image import CardImage
from card_applet_sim.domain.isd import IsdScp80Keys
from card_applet_sim.domain.issuance import KVN_SCP80, TEST_ISD_KEYS, with_isd
from card_applet_sim.domain.ota_receiver import TAR_ISD
from card_applet_sim.domain.runtime import Card
from paycore.apdu import ResponseApdu
from paycore.ota import remote_apdu, sms
from paycore.ota.packet import POR_UDH, Por, PorSecurity, decode_por, encode_command
from paycore.ota.security import (
    SPI_DEFAULT,
    SPI_POR_BY_SMS,
    CounterMode,
    KeyFamily,
    OtaKeys,
    PorStatus,
    Spi,
)
from paycore.purse import WALLET_AID
from paycore.sw import SW
from tests.unit.card_applet_sim.cardkit import det_random, make_keys, sim_image
from tests.unit.card_applet_sim.otakit import (
    ENVELOPES_MIN,
    FUZZ,
    envelope_apdu,
    envelope_data,
    fuzz_envelopes,
)

KEYS = OtaKeys(KeyFamily.AES, TEST_ISD_KEYS.scp80.enc, TEST_ISD_KEYS.scp80.mac)
CODING = KVN_SCP80 << 4 | 0x02  # AES, key set 01
SELECT_WALLET = bytes.fromhex("00a40400") + bytes((len(WALLET_AID),)) + WALLET_AID
LOCK = f"80f04080{len(WALLET_AID):02x}{WALLET_AID.hex()}"
UNLOCK = f"80f04000{len(WALLET_AID):02x}{WALLET_AID.hex()}"
GET_STATUS_APPS = "80f24002024f00"


@dataclass
class IsdCard:
    card: Card
    store: MemoryStore

    def send(self, apdu: bytes) -> ResponseApdu:
        raw = self.card.transmit(apdu)
        return ResponseApdu(raw[:-2], int.from_bytes(raw[-2:], "big"))

    def counter(self) -> int:
        return IsdScp80Keys().counter(self.store.load(), KVN_SCP80)


def isd_card(counter: int = 0) -> IsdCard:
    image: CardImage = with_isd(sim_image(make_keys()))
    if counter:
        image = IsdScp80Keys().with_counter(image, KVN_SCP80, counter)
    store = MemoryStore(image)
    card = bootstrap.card_on_store(store, "sim", det_random(11))  # a SIM comes with its receiver
    card.power_on()
    return IsdCard(card, store)


def secured(script: str, counter: int, spi: Spi = SPI_DEFAULT, coding: int = CODING) -> bytes:
    return encode_command(
        spi=spi,
        kic=coding,
        kid=coding,
        tar=TAR_ISD,
        counter=counter,
        data=bytes.fromhex(script),
        keys=KEYS,
    )


def por(card: IsdCard, apdu: bytes, spi: Spi = SPI_DEFAULT) -> Por:
    response = card.send(apdu)
    assert response.sw == SW.OK, f"{response.sw:04X}"
    return decode_por(response.data, PorSecurity.for_command(spi, CODING, CODING, KEYS))


def test_get_status_over_the_air() -> None:
    card = isd_card()
    result = por(card, envelope_apdu(secured(GET_STATUS_APPS, 1)))
    assert (result.status, result.secured, result.counter) == (PorStatus.OK, True, 1)
    response = remote_apdu.decode_response(result.data)
    assert (response.executed, response.last_sw) == (1, 0x9000)
    assert response.last_data[:1] == b"\xe3" and WALLET_AID in response.last_data
    assert card.counter() == 1 and card.store.commits == 1


def test_lock_and_unlock_the_wallet_over_the_air_with_counters() -> None:
    card = isd_card(counter=41)
    lock = envelope_apdu(secured(LOCK, 42))
    assert remote_apdu.decode_response(por(card, lock).data).last_sw == 0x9000
    assert card.send(SELECT_WALLET).sw == SW.SELECTED_FILE_INVALIDATED  # 6999: locked
    assert card.counter() == 42 and card.store.commits == 1
    # the same packet again is a replay: refused, unciphered, unsigned, nothing changes
    image = card.store.load()
    replay = por(card, lock)
    assert (replay.status, replay.secured) == (PorStatus.COUNTER_LOW, False)
    assert card.store.load() is image
    unlock = envelope_apdu(secured(UNLOCK, 43))
    assert remote_apdu.decode_response(por(card, unlock).data).last_sw == 0x9000
    assert card.send(SELECT_WALLET).sw == SW.OK
    assert card.counter() == 43 and card.store.commits == 2


@pytest.mark.parametrize(
    ("apdu_of", "status"),
    [
        (lambda: envelope_apdu(secured(LOCK, 5, spi=Spi(counter=CounterMode.NO_CHECK))), 0x0A),
        (lambda: envelope_apdu(secured(LOCK, 5, spi=Spi(ciphered=False))), 0x0A),
        (lambda: envelope_apdu(secured(LOCK, 5, coding=0x22)), 0x06),  # no SCP80 set 02
        (lambda: envelope_apdu(secured(LOCK, 0)), 0x02),
        (lambda: envelope_apdu(secured(LOCK, 9, spi=Spi(counter=CounterMode.ONE_HIGHER))), 0x03),
    ],
    ids=["no-counter-check", "unciphered", "unknown-key-set", "replay", "gap"],
)
def test_refusals_by_the_real_isd_change_nothing(apdu_of: Callable[[], bytes], status: int) -> None:
    card = isd_card()
    image = card.store.load()
    result = por(card, apdu_of())
    assert (result.status, result.secured, result.data) == (status, False, b"")
    assert card.store.load() is image and card.store.commits == 0
    assert card.send(SELECT_WALLET).sw == SW.OK


def test_a_failing_gp_command_stops_the_script() -> None:
    card = isd_card()
    unknown = "80f04080" + "08" + "a000000003869899"  # SET STATUS of an AID the card lacks
    result = por(card, envelope_apdu(secured(unknown + LOCK, 1)))
    response = remote_apdu.decode_response(result.data)
    assert (response.executed, response.last_sw) == (1, 0x6A88)
    assert card.send(SELECT_WALLET).sw == SW.OK  # LOCK never ran
    assert card.counter() == 1  # the packet was authentic: its counter is spent


def test_por_by_sms_submit_from_the_real_isd() -> None:
    card = isd_card()
    response = card.send(envelope_apdu(secured(GET_STATUS_APPS, 1, spi=SPI_POR_BY_SMS)))
    assert response.sw >> 8 == 0x91
    security = PorSecurity.for_command(SPI_POR_BY_SMS, CODING, CODING, KEYS)
    assert decode_por(response.data, security).status is PorStatus.SMS_SUBMIT_TO_FOLLOW
    fetched = card.send(bytes((0x80, 0x12, 0, 0, response.sw & 0xFF)))
    submit = sms.decode_submit(sms.decode_send_short_message(fetched.data).tpdu)
    full = decode_por(POR_UDH + submit.user_data.payload, security)
    assert (full.status, full.secured) == (PorStatus.OK, True)
    assert remote_apdu.decode_response(full.data).last_data[:1] == b"\xe3"
    ack = sms.TerminalResponse(1, sms.COMMAND_SEND_SHORT_MESSAGE, 0, sms.RESULT_OK).encode()
    assert card.send(bytes((0x80, 0x14, 0, 0, len(ack))) + ack).sw == SW.OK


def test_50000_malformed_envelopes_against_the_real_isd() -> None:
    stored = 1000
    card = isd_card(counter=stored)
    corpus = [
        data
        for packet in (
            secured(GET_STATUS_APPS + LOCK, stored),  # a replay
            secured(LOCK, stored - 7),
            secured(LOCK, stored + 1, spi=Spi(counter=CounterMode.NO_CHECK)),  # level 0A
            secured(LOCK, stored + 1, coding=0x22),  # no key set 02
            secured(LOCK, stored, spi=SPI_POR_BY_SMS),
            secured(" ".join([LOCK] * 20).replace(" ", ""), stored),  # two SMS
        )
        for data in envelope_data(packet)
    ]
    assert fuzz_envelopes(card.card, card.store, corpus, FUZZ) >= ENVELOPES_MIN
    assert card.counter() == stored
    assert card.send(SELECT_WALLET).sw == SW.OK
