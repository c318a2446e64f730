"""The issuer security domain on the simulated SIM (ota.md §1), every command through the card
runtime: SELECT and GET DATA, the public SCP02/SCP03 sessions byte for byte, secure channel
rules, provisioning a blank SIM up to a purchase with the PSAM, the life cycles, STORE DATA,
INSTALL, LOAD, GET STATUS, SET STATUS, DELETE, PUT KEY, and the OTA context API."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.domain import issuance
from card_applet_sim.domain.errors import CardImageError
from card_applet_sim.domain.image import CardImage, Instance, decode_image, encode_image
from card_applet_sim.domain.isd import (
    IsdOtaTarget,
    IsdScp80Keys,
    RemoteScript,
    find_isd,
    ota_security,
    run_remote,
)
from card_applet_sim.domain.isd_state import AppRecord, IsdState, KeyAlgorithm, KeySet
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from paycore import crypto, pboc, tlv
from paycore.apdu import CommandApdu, decode_command
from paycore.gp import commands as gp
from paycore.gp import perso, scp03
from paycore.gp.channel import StaticKeys
from paycore.gp.dek import KEY_TYPE_AES, KEY_TYPE_DES, Dek
from paycore.issuer_keys import IssuerKeys
from paycore.ota.security import ISD_MINIMUM_LEVEL, KeyFamily, Spi
from paycore.purse import WALLET_AID as WALLET
from paycore.purse import InitRequest, initialize_for_purchase, select_aid
from paycore.sw import SW
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import CardRefused
from tests.unit.card_applet_sim.cardkit import (
    ASN,
    NOW,
    PIN_BCD,
    TERMINAL_ID,
    det_random,
    psam_card,
    sim_image,
)
from tests.unit.card_applet_sim.gpkit import (
    Authority,
    GpHost,
    isd_state,
    load_and_install,
    personalise,
    provision,
    raw_send,
    shop,
    wallet_perso_for,
)
from tests.unit.paycore.test_vectors import h, load_vectors

ISD = gp.ISD_AID
OTHER = bytes.fromhex("A0000000038698070102")
OTA_MD = load_vectors("ota_md_gp_vectors.json", "scp02")[0]
OTA_MD_03 = load_vectors("ota_md_gp_vectors.json", "scp03")[0]
PYSIM_03 = load_vectors("pysim_gp_vectors.json", "scp03")
PYSIM_CARD_AID = bytes.fromhex("A0000005591010FFFFFFFF8900000100")


def blank_card(seed: int = 3) -> Card:
    card = bootstrap.memory_card(issuance.new_blank_sim_image(), det_random(seed))
    card.power_on()
    return card


def wallet_of(card: Card, aid: bytes = WALLET) -> WalletState:
    state = card.image.state_of(aid)
    assert isinstance(state, WalletState)
    return state


def aids_of(card: Card) -> list[bytes]:
    return [i.aid for i in card.image.instances]


def provisioned(keys: IssuerKeys, *, scp: str = "scp03", level: int = 0x03) -> Card:
    card = blank_card()
    provision(GpHost(card, scp=scp).open(level), keys)  # type: ignore[arg-type]
    return card


# --- SELECT, GET DATA -------------------------------------------------------------------------


def test_select_returns_the_fci_with_card_data() -> None:
    card = blank_card()
    r = raw_send(card, select_aid(ISD))
    assert r.sw == SW.OK
    fci = tlv.decode(r.data)[0]
    assert fci.tag == 0x6F
    assert fci.find(0x84) == tlv.Tlv(0x84, ISD)
    proprietary = fci.find(0xA5)
    assert proprietary is not None
    recognition = proprietary.find(0x73)
    assert recognition is not None
    oids = [c.children()[0].value.hex().upper() for c in recognition.children() if c.tag == 0x64]
    assert oids == ["2A864886FC6B040215", "2A864886FC6B040370"]  # SCP02 i=15, SCP03 i=70


def test_get_data_without_a_session() -> None:
    card = blank_card()
    raw_send(card, select_aid(ISD))
    card_data = raw_send(card, gp.get_data(0x0066))
    assert card_data.sw == SW.OK and card_data.data.startswith(b"\x66")
    keys = raw_send(card, gp.get_data(0x00E0))
    infos = [c.value for c in tlv.decode(keys.data)[0].children()]
    assert infos[:3] == [bytes([n, 0xFF, 0x80, 16]) for n in (1, 2, 3)]  # SCP02 set FF, DES
    assert bytes([1, 0x30, 0x88, 16]) in infos  # SCP03 set 30, AES
    assert raw_send(card, gp.get_data(0x00C1)).data == bytes.fromhex("C1020000")
    assert raw_send(card, gp.get_data(0x9F7F)).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert raw_send(card, "80CA006601AA").sw == SW.WRONG_LENGTH


# --- the public vectors through the card runtime ----------------------------------------------


def vector_card(record: dict[str, Any], *, scp: str, kvn: int, aid: bytes, seq: int) -> Card:
    state = IsdState(
        "secured",
        (KeySet(kvn, scp, "3des" if scp == "scp02" else "aes",  # type: ignore[arg-type]
                h(record["enc"]), h(record["mac"]), h(record["dek"]), seq - 1),),
        issuance.new_isd_state(with_wallet_package=True).load_files,
    )  # fmt: skip
    challenge = h(OTA_MD["card_challenge"])
    card = bootstrap.memory_card(
        CardImage("sim", (Instance(aid, "isd", state),)), lambda n: challenge[:n]
    )
    card.power_on()
    assert raw_send(card, select_aid(aid)).ok
    return card


def test_the_scp02_session_of_ota_md_through_the_card() -> None:
    v = OTA_MD
    card = vector_card(v, scp="scp02", kvn=0x70, aid=ISD, seq=1)
    # The vector's host asked for KVN 20 and its card answered with set 70; our ISD is strict
    # (GP §11.11: a KVN it does not hold is 6A88) and the host names 70 or 00 (first set).
    assert raw_send(card, v["initialize_update"]).sw == SW.REFERENCED_DATA_NOT_FOUND
    command = decode_command(h(v["initialize_update"]))
    r = raw_send(card, replace(command, p1=0x00))
    assert r.sw == SW.OK
    assert r.data == h(v["initialize_update_response"])
    assert raw_send(card, v["external_authenticate"]).sw == SW.OK
    listing = raw_send(card, v["commands"][0]["wrapped"])  # GET STATUS 20, all load files
    assert listing.sw == SW.OK
    assert gp.decode_status_response(listing.data)[0].aid == gp.WALLET_PACKAGE_AID
    more = load_vectors("pysim_gp_vectors.json", "scp02_more")[0]["commands"]
    assert [raw_send(card, c["wrapped"]).sw for c in more] == [
        SW.OK,  # GET DATA 66
        SW.WRONG_DATA,  # GET STATUS 20 with "5C 05" + 4 bytes: pySim's tag list is short
        SW.OK,  # GET STATUS 80: the ISD
    ]
    assert isd_state(card).key_sets[0].counter == 1


@pytest.mark.parametrize("v", [OTA_MD_03, *PYSIM_03], ids=lambda v: v["name"])
def test_the_scp03_sessions_through_the_card(v: dict[str, Any]) -> None:
    expected = scp03.InitUpdateResponse.decode(h(v["initialize_update_response"]))
    card = vector_card(v, scp="scp03", kvn=expected.kvn, aid=PYSIM_CARD_AID, seq=expected.sequence)
    r = raw_send(card, v["initialize_update"])
    assert r.sw == SW.OK
    assert r.data == h(v["initialize_update_response"])
    assert raw_send(card, v["external_authenticate"]).sw == SW.OK
    script = v["commands"] if "first" not in v else [v["first"], *v["commands"]]
    if v is OTA_MD_03:
        assert script[0]["plain"] == "80E2910006BF3E035C015A00"
    answers = [raw_send(card, c["wrapped"]).sw for c in script]
    # The first is a STORE DATA with no INSTALL [for personalization] (6985): accepted as
    # genuine, so the command counter moved and every later command still unwraps.
    assert answers[0] == SW.CONDITIONS_NOT_SATISFIED
    assert SW.SECURITY_STATUS_NOT_SATISFIED not in answers
    state = card.image.state_of(PYSIM_CARD_AID)
    assert isinstance(state, IsdState) and state.key_sets[0].counter == expected.sequence


# --- secure channel rules ---------------------------------------------------------------------


def test_commands_need_a_session() -> None:
    card = blank_card()
    raw_send(card, select_aid(ISD))
    assert raw_send(card, gp.get_status(0x80)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert raw_send(card, gp.delete(WALLET)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert raw_send(card, "84F280020A4F00" + "00" * 8).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_a_bad_c_mac_closes_the_session(keys: IssuerKeys) -> None:
    card = blank_card()
    host = GpHost(card).open(0x01)
    wrapped = bytearray(host.wrap(gp.get_status(0x80)).encode())
    wrapped[-2] ^= 0x01  # the last byte of the C-MAC (before Le)
    assert raw_send(card, bytes(wrapped)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert host.sw(gp.get_status(0x80)) == SW.SECURITY_STATUS_NOT_SATISFIED  # closed


def test_a_plain_command_in_a_mac_session_closes_it() -> None:
    card = blank_card()
    host = GpHost(card).open(0x01)
    assert raw_send(card, gp.get_status(0x80)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert host.sw(gp.get_status(0x80)) == SW.SECURITY_STATUS_NOT_SATISFIED
    assert raw_send(card, gp.get_data(0x66)).sw == SW.OK  # GET DATA stays public


@pytest.mark.parametrize("kvn", [0xFF, 0x30])
def test_a_wrong_host_cryptogram_answers_6300(kvn: int) -> None:
    card = blank_card()
    raw_send(card, select_aid(ISD))
    assert raw_send(card, scp03.initialize_update(kvn, bytes(8))).sw == SW.OK
    assert raw_send(card, "8482010010" + "00" * 16).sw == gp.SW_AUTHENTICATION_FAILED
    assert raw_send(card, "848201001000").sw == SW.WRONG_LENGTH  # Lc says 16, 1 byte came
    scp = "scp02" if kvn == 0xFF else "scp03"
    right = GpHost(card, scp=scp).open(0x01)  # type: ignore[arg-type]
    assert right.sw(gp.get_status(0x80)) == SW.OK


def test_external_authenticate_must_follow_initialize_update() -> None:
    card = blank_card()
    raw_send(card, select_aid(ISD))
    assert raw_send(card, "848201001000000000000000000000000000000000").sw == (
        SW.CONDITIONS_NOT_SATISFIED
    )
    r = raw_send(card, scp03.initialize_update(0x30, bytes(8)))
    assert r.sw == SW.OK
    raw_send(card, gp.get_data(0x66))  # anything in between drops the handshake
    assert raw_send(card, "848201001000000000000000000000000000000000").sw == (
        SW.CONDITIONS_NOT_SATISFIED
    )


def test_initialize_update_errors_and_levels() -> None:
    card = blank_card()
    raw_send(card, select_aid(ISD))
    assert raw_send(card, scp03.initialize_update(0x31, bytes(8))).sw == (
        SW.REFERENCED_DATA_NOT_FOUND
    )
    assert raw_send(card, scp03.initialize_update(0x01, bytes(8))).sw == (
        SW.REFERENCED_DATA_NOT_FOUND  # an SCP80 set opens no channel
    )
    assert raw_send(card, "8050300007" + "00" * 7).sw == SW.WRONG_LENGTH
    assert raw_send(card, "8050300108" + "00" * 8).sw == SW.WRONG_P1P2
    assert raw_send(card, "0050300008" + "00" * 8).sw == SW.CLA_NOT_SUPPORTED
    # SCP02 has no R-MAC: level 11 is refused at EXTERNAL AUTHENTICATE.
    with pytest.raises(Exception, match="not supported"):
        GpHost(card, scp="scp02").open(0x11)
    for level in (0x00, 0x01, 0x03, 0x11, 0x13, 0x33):
        GpHost(card).open(level)


def test_the_sequence_counter_moves_with_every_initialize_update() -> None:
    card = blank_card()
    raw_send(card, select_aid(ISD))
    challenges = set()
    for n in range(1, 4):
        r = scp03.InitUpdateResponse.decode(
            raw_send(card, scp03.initialize_update(0x30, bytes(8))).data
        )
        assert r.sequence == n
        challenges.add(r.card_challenge)
        assert isd_state(card).key_set(0x30).counter == n  # type: ignore[union-attr]
    assert len(challenges) == 3  # a recorded session can never be replayed
    r02 = raw_send(card, "80500000080000000000000000")  # P1 00: the first set, SCP02 FF
    assert r02.data[10:14] == bytes.fromhex("FF020001")


def test_a_used_up_key_set_refuses_to_open() -> None:
    image = issuance.new_blank_sim_image()
    state = find_isd(image.instances).state  # type: ignore[union-attr]
    assert isinstance(state, IsdState)
    scp03_set = state.key_set(0x30)
    assert scp03_set is not None
    spent = state.with_key_set(replace(scp03_set, counter=0xFFFFFF))
    card = bootstrap.memory_card(CardImage("sim", (Instance(ISD, "isd", spent),)))
    card.power_on()
    raw_send(card, select_aid(ISD))
    assert raw_send(card, scp03.initialize_update(0x30, bytes(8))).sw == (
        SW.CONDITIONS_NOT_SATISFIED
    )


def test_level_00_authenticates_but_changes_nothing(keys: IssuerKeys) -> None:
    card = blank_card()
    host = GpHost(card).open(0x00)
    assert raw_send(card, gp.get_status(0x80)).sw == SW.OK  # plain is the level's format
    before = card.image
    assert raw_send(card, gp.install_for_load(gp.WALLET_PACKAGE_AID)).sw == (
        SW.SECURITY_STATUS_NOT_SATISFIED  # our choice: changes need at least a C-MAC
    )
    assert host.wrap(gp.get_status(0x80)).cla == 0x80  # level 00: nothing to wrap
    assert raw_send(card, "84F280020A4F00" + "00" * 8).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert card.image == before


# --- provisioning a blank SIM -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scp", "level"),
    [("scp03", 0x01), ("scp03", 0x03), ("scp03", 0x13), ("scp03", 0x33),
     ("scp02", 0x01), ("scp02", 0x03)],
)  # fmt: skip
def test_a_blank_sim_gets_a_wallet_that_pays(keys: IssuerKeys, scp: str, level: int) -> None:
    card = blank_card()
    assert aids_of(card) == [ISD]
    host = GpHost(card, scp=scp).open(level)  # type: ignore[arg-type]
    assert host.statuses(gp.STATUS_APPLICATIONS) == ()
    provision(host, keys)
    wallet = wallet_of(card)
    assert wallet.life == "personalized"
    # The keys on the card are the ones the issuer's host derives.
    assert wallet.dpk == pboc.card_key(keys.mpk, ASN)
    assert wallet.dlk == pboc.card_key(keys.mlk, ASN)
    assert wallet.dtk == pboc.card_key(keys.mtk, ASN)
    assert wallet.key_version == keys.key_version
    # Same wallet as direct issuance would make.
    direct = sim_image(keys, balance_fen=0).instances[0].state
    assert wallet == direct
    assert host.life_of(WALLET) == gp.APP_PERSONALIZED
    _, bought = shop(card, keys)
    assert bought.mac2_verified and bought.balance_after_fen == 5_000 - 1_234
    assert issuer.purchase_tac_ok(
        keys,
        ASN,
        pboc.Purchase(1_234, TERMINAL_ID, bought.terminal_serial, bought.date_bcd, bought.time_bcd),
        bought.tac,
    )


def test_two_level_keys_and_a_pin(keys: IssuerKeys) -> None:
    from tests.unit.card_applet_sim.cardkit import make_keys

    two = make_keys(9, two_level=True)
    card = blank_card()
    host = GpHost(card).open(0x03)
    assert load_and_install(host.send) == [SW.OK] * 3
    assert host.dek is not None
    data = replace(wallet_perso_for(two), pin_bcd=PIN_BCD)
    assert set(personalise(host.send, data, host.dek)) == {SW.OK}
    wallet = wallet_of(card)
    assert wallet.dpk == pboc.card_key(two.mpk, ASN, two.issuer_factor)
    assert wallet.pin_bcd == PIN_BCD


def test_a_pin_needs_command_encryption(keys: IssuerKeys) -> None:
    card = blank_card()
    host = GpHost(card).open(0x01)
    assert load_and_install(host.send) == [SW.OK] * 3
    assert host.dek is not None
    data = replace(wallet_perso_for(keys), pin_bcd=PIN_BCD)
    sws = personalise(host.send, data, host.dek)
    assert SW.SECURITY_STATUS_NOT_SATISFIED in sws
    assert wallet_of(card).life == "selectable"


def test_a_half_personalised_wallet_is_unusable_until_completed(keys: IssuerKeys) -> None:
    card = blank_card()
    host = GpHost(card).open(0x03)
    assert load_and_install(host.send) == [SW.OK] * 3
    # Installed: selectable, but every command answers 6985.
    assert raw_send(card, select_aid(WALLET)).sw == SW.OK
    assert raw_send(card, "805C000204").sw == SW.CONDITIONS_NOT_SATISFIED
    reader = SimReader(card)
    reader.present()
    with pytest.raises(CardRefused) as refused:
        card_flows.read_card(reader)
    assert refused.value.sw == SW.CONDITIONS_NOT_SATISFIED
    # Part of the data (EF15, EF16; not the last block).
    host = GpHost(card).open(0x03)
    assert host.dek is not None
    dgis = wallet_perso_for(keys).dgis(host.dek)
    commands = perso.store_data_commands(WALLET, dgis, block_max=60)
    assert len(commands) == 4  # INSTALL [for personalization] and three blocks
    assert [host.sw(c) for c in commands[:3]] == [SW.OK] * 3
    assert wallet_of(card).life == "selectable"
    assert len(wallet_of(card).ef15) == 30
    raw_send(card, select_aid(WALLET))
    assert raw_send(card, initialize_for_purchase(InitRequest(1, 1, TERMINAL_ID))).sw == (
        SW.CONDITIONS_NOT_SATISFIED
    )
    # Completed in a later session: INSTALL [for personalization] again, every block again.
    host = GpHost(card).open(0x03)
    assert host.dek is not None
    assert set(personalise(host.send, wallet_perso_for(keys), host.dek)) == {SW.OK}
    shop(card, keys)


def test_a_half_personalised_wallet_can_be_deleted(keys: IssuerKeys) -> None:
    card = blank_card()
    host = GpHost(card).open(0x03)
    assert load_and_install(host.send) == [SW.OK] * 3
    assert host.ok(gp.delete(WALLET)) == b"\x00"
    assert aids_of(card) == [ISD]
    assert raw_send(card, select_aid(WALLET)).sw == SW.FILE_NOT_FOUND
    host = GpHost(card).open(0x03)
    provision_again = [host.sw(gp.install_for_install(
        gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, WALLET))]  # fmt: skip
    assert provision_again == [SW.OK]
    assert host.dek is not None
    assert set(personalise(host.send, wallet_perso_for(keys), host.dek)) == {SW.OK}
    shop(card, keys)


# --- STORE DATA -------------------------------------------------------------------------------


def installed(level: int = 0x03) -> tuple[Card, GpHost]:
    card = blank_card()
    host = GpHost(card).open(level)
    assert load_and_install(host.send) == [SW.OK] * 3
    return card, host


def store(host: GpHost, dgis: list[tuple[int, bytes]], *, last: bool = True,
          encrypted: bool = False, block: int = 0, perso_first: bool = True) -> int:  # fmt: skip
    if perso_first:
        assert host.ok(gp.install_for_personalization(WALLET)) == b"\x00"
    return host.sw(gp.store_data(block, gp.encode_dgis(dgis), last=last, encrypted=encrypted))


def test_a_wrong_kcv_answers_6a80_and_stores_nothing(keys: IssuerKeys) -> None:
    card, host = installed()
    assert host.dek is not None
    dgis = dict(wallet_perso_for(keys).dgis(host.dek))
    assert store(host, [(0x8001, dgis[0x8001])], last=False, encrypted=True) == SW.OK
    before = wallet_of(card)
    bad = bytearray(dgis[0x9001])
    bad[4] ^= 0x01
    assert store(host, [(0x9001, bytes(bad))], block=1, perso_first=False) == SW.WRONG_DATA
    assert wallet_of(card) == before and not before.keys_confirmed
    # Keys encrypted under another DEK decrypt to other keys: their KCVs do not match either.
    other = Dek("aes-cbc", bytes(16))
    assert store(host, [(0x8001, dict(wallet_perso_for(keys).dgis(other))[0x8001]),
                        (0x9001, dgis[0x9001])], encrypted=True) == SW.WRONG_DATA  # fmt: skip


@pytest.mark.parametrize(
    ("dgis", "options", "sw"),
    [
        ([(0x9001, bytes(9))], {}, SW.CONDITIONS_NOT_SATISFIED),  # KCVs before keys
        ([(0x8001, bytes(48))], {"encrypted": False}, SW.WRONG_DATA),  # keys not flagged
        ([(0x8001, bytes(47))], {"encrypted": True}, SW.WRONG_DATA),
        ([(0x0101, bytes(29))], {}, SW.WRONG_DATA),
        ([(0x0102, b"\xaa" * 20)], {}, SW.WRONG_DATA),  # EF16: not BCD
        ([(0x0201, bytes(4))], {}, SW.WRONG_DATA),  # a ceiling of 0
        ([(0x0202, b"\x12\x3a")], {}, SW.WRONG_DATA),  # not BCD
        ([(0x0203, b"")], {}, SW.WRONG_DATA),
        ([(0x0105, b"x")], {}, SW.REFERENCED_DATA_NOT_FOUND),  # unknown DGI
        ([(0x0101, bytes(30))], {}, SW.CONDITIONS_NOT_SATISFIED),  # last block, incomplete
        ([], {"last": False}, SW.WRONG_DATA),
    ],
)
def test_store_data_refusals_store_nothing(
    dgis: list[tuple[int, bytes]], options: dict[str, bool], sw: int
) -> None:
    card, host = installed()
    before = card.image
    assert store(host, dgis, **options) == sw
    assert card.image == before


def test_store_data_framing() -> None:
    _, host = installed()
    ef15 = gp.encode_dgis([(0x0101, bytes(30))])
    assert host.sw(gp.store_data(0, ef15, last=False, encrypted=False)) == (
        SW.CONDITIONS_NOT_SATISFIED  # no INSTALL [for personalization]
    )
    assert host.ok(gp.install_for_personalization(WALLET)) == b"\x00"
    assert host.sw(gp.store_data(1, ef15, last=False, encrypted=False)) == SW.WRONG_P1P2
    assert host.sw(CommandApdu(0x80, 0xE2, 0x10, 0x00, ef15)) == SW.WRONG_P1P2  # BER-TLV
    assert host.sw(CommandApdu(0x80, 0xE2, 0x28, 0x00, ef15)) == SW.WRONG_P1P2  # b7b6 01
    assert host.sw(CommandApdu(0x80, 0xE2, 0x08, 0x00, ef15 + b"\x01")) == SW.WRONG_DATA
    assert host.sw(gp.store_data(0, ef15, last=False, encrypted=False)) == SW.OK
    assert host.sw(gp.store_data(1, ef15, last=False, encrypted=False)) == SW.OK
    assert host.sw(gp.install_for_personalization(OTHER)) == SW.REFERENCED_DATA_NOT_FOUND
    assert host.sw(gp.install_for_personalization(ISD)) == SW.CONDITIONS_NOT_SATISFIED


def test_a_personalised_wallet_takes_limit_and_pin_updates_only(keys: IssuerKeys) -> None:
    card = provisioned(keys)
    shop(card, keys)
    host = GpHost(card).open(0x03)
    assert store(host, [(0x0201, (50_000).to_bytes(4, "big"))]) == SW.OK
    assert wallet_of(card).ceiling_fen == 50_000
    assert store(host, [(0x0201, (3_000).to_bytes(4, "big"))]) == SW.WRONG_DATA  # < balance
    assert store(host, [(0x0202, PIN_BCD)]) == SW.OK
    assert wallet_of(card).pin_bcd == PIN_BCD
    assert store(host, [(0x0202, b"")]) == SW.OK
    assert wallet_of(card).pin_bcd is None
    assert store(host, [(0x0101, bytes(30))]) == SW.CONDITIONS_NOT_SATISFIED
    assert store(host, [(0x0203, b"\x02")]) == SW.CONDITIONS_NOT_SATISFIED
    assert wallet_of(card).balance_fen == 5_000 - 1_234


# --- INSTALL, LOAD ----------------------------------------------------------------------------


def test_install_needs_the_loaded_package() -> None:
    card = blank_card()
    host = GpHost(card).open(0x01)
    install = gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, WALLET)
    assert host.sw(install) == SW.REFERENCED_DATA_NOT_FOUND
    for block in gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID), block_len=3):
        assert host.sw(block) == SW.OK  # no INSTALL [for load]: our choice, optional
    assert host.statuses(gp.STATUS_LOAD_FILES)[0].aid == gp.WALLET_PACKAGE_AID
    lf = isd_state(card).load_file(gp.WALLET_PACKAGE_AID)
    assert lf is not None
    assert lf.hash == crypto_sha256(gp.load_file_data_block(gp.load_file(gp.WALLET_PACKAGE_AID)))
    wrong_module = gp.install_for_install(gp.WALLET_PACKAGE_AID, OTHER, WALLET)
    assert host.sw(wrong_module) == SW.REFERENCED_DATA_NOT_FOUND
    assert host.ok(install) == b"\x00"
    assert host.sw(install) == SW.WRONG_DATA  # that AID is taken
    sd = gp.install_for_install(
        gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, OTHER, privileges=b"\x80"
    )
    assert host.sw(sd) == SW.WRONG_DATA  # no supplementary security domains
    assert isd_state(card).app(WALLET) == AppRecord(
        WALLET, gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, bytes(3)
    )


def crypto_sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


def test_load_errors() -> None:
    card = blank_card()
    host = GpHost(card).open(0x01)
    unknown = gp.load_file(OTHER)
    assert host.sw(gp.install_for_load(OTHER)) == SW.WRONG_DATA  # not a built-in package
    assert host.sw(gp.load_commands(unknown)[0]) == SW.WRONG_DATA
    blocks = gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID), block_len=4)
    assert host.sw(blocks[1]) == SW.WRONG_P1P2  # block 1 first
    assert host.sw(blocks[0]) == SW.OK
    assert host.sw(blocks[2]) == SW.WRONG_P1P2  # a block skipped
    assert host.sw(CommandApdu(0x80, 0xE8, 0x40, 0x01, b"x")) == SW.WRONG_P1P2
    wrong_hash = gp.install_for_load(gp.WALLET_PACKAGE_AID, bytes(32))
    assert host.ok(wrong_hash) == b"\x00"
    for block in gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID))[:-1]:
        assert host.sw(block) == SW.OK
    assert host.sw(gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID))[-1]) == SW.WRONG_DATA
    assert isd_state(card).load_files == ()
    data_block = gp.load_file_data_block(gp.load_file(gp.WALLET_PACKAGE_AID))
    right_hash = gp.install_for_load(gp.WALLET_PACKAGE_AID, crypto_sha1(data_block))
    assert host.ok(right_hash) == b"\x00"
    assert host.ok(gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID))[0]) == b"\x00"
    assert host.sw(gp.install_for_load(gp.WALLET_PACKAGE_AID)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.sw(gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID))[0]) == (
        SW.CONDITIONS_NOT_SATISFIED  # loaded already
    )
    too_big = CommandApdu(0x80, 0xE8, 0x00, 0x00, bytes(240))
    for n in range(5):  # 1200 bytes: over the 1024 a load file may take
        sw = host.sw(replace(too_big, p2=n))
    assert sw == gp.SW_NOT_ENOUGH_MEMORY


def crypto_sha1(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha1(data).digest()


def test_install_then_make_selectable() -> None:
    card = blank_card()
    host = GpHost(card).open(0x01)
    assert load_and_install(host.send)[:2] == [SW.OK] * 2
    only_install = gp.install_for_install(
        gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, OTHER, make_selectable=False,
        app_params=b"\x01\x02",
    )  # fmt: skip
    assert host.ok(only_install) == b"\x00"
    assert host.life_of(OTHER) == gp.APP_INSTALLED
    assert isd_state(card).app(OTHER).app_params == b"\x01\x02"  # type: ignore[union-attr]
    assert raw_send(card, select_aid(OTHER)).sw == SW.FILE_NOT_FOUND
    host = GpHost(card).open(0x01)
    assert host.sw(gp.install_for_personalization(OTHER)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.ok(gp.install_for_make_selectable(OTHER)) == b"\x00"
    assert host.sw(gp.install_for_make_selectable(OTHER)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.life_of(OTHER) == gp.APP_SELECTABLE
    assert raw_send(card, select_aid(OTHER)).sw == SW.OK


def test_install_errors_and_memory() -> None:
    card = blank_card()
    host = GpHost(card).open(0x01)
    assert load_and_install(host.send) == [SW.OK] * 3
    assert host.sw(CommandApdu(0x80, 0xE6, 0x0C, 0x01, b"")) == SW.WRONG_P1P2
    assert host.sw(CommandApdu(0x80, 0xE6, 0x10, 0x00, b"")) == SW.WRONG_P1P2
    assert host.sw(CommandApdu(0x80, 0xE6, 0x0C, 0x00, b"\x05")) == SW.WRONG_DATA
    for n in range(14):  # 16 instances in all: the ISD, the wallet, 14 more
        aid = bytes.fromhex("A00000000386980701") + bytes([n])
        install = gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, aid)
        assert host.sw(install) == SW.OK
    last = gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, OTHER + b"\x01")
    assert host.sw(last) == gp.SW_NOT_ENOUGH_MEMORY
    assert len(card.image.instances) == 16


# --- GET STATUS -------------------------------------------------------------------------------


def test_get_status_lists_the_content(keys: IssuerKeys) -> None:
    card = provisioned(keys)
    host = GpHost(card).open(0x01)
    assert host.statuses(gp.STATUS_ISD) == (
        gp.RegistryEntry(ISD, gp.CARD_SECURED, bytes.fromhex("9EFE80")),
    )
    assert host.statuses(gp.STATUS_APPLICATIONS) == (
        gp.RegistryEntry(WALLET, 0x0F, bytes(3), gp.WALLET_PACKAGE_AID, (), ISD),
    )
    assert host.statuses(gp.STATUS_LOAD_FILES) == (
        gp.RegistryEntry(gp.WALLET_PACKAGE_AID, 0x01, None, None, (), ISD),
    )
    assert host.statuses(gp.STATUS_LOAD_FILES_AND_MODULES)[0].modules == (gp.WALLET_MODULE_AID,)
    assert host.statuses(gp.STATUS_APPLICATIONS, WALLET[:5])[0].aid == WALLET
    assert host.statuses(gp.STATUS_APPLICATIONS, b"\xf0") == ()
    assert host.sw(CommandApdu(0x80, 0xF2, 0x08, 0x02, b"\x4f\x00")) == SW.WRONG_P1P2
    assert host.sw(CommandApdu(0x80, 0xF2, 0x40, 0x00, b"\x4f\x00")) == SW.WRONG_P1P2
    assert host.sw(CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x5c\x00")) == SW.WRONG_DATA
    assert host.sw(CommandApdu(0x80, 0xF2, 0x40, 0x02)) == SW.OK  # no criteria: all


def test_get_status_pages_with_6310() -> None:
    card = blank_card()
    host = GpHost(card).open(0x03)
    assert load_and_install(host.send) == [SW.OK] * 3
    for n in range(9):
        aid = bytes.fromhex("A00000000386980701") + bytes([n])
        host.ok(gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, aid))
    assert host.sw(gp.get_status(0x40, next_occurrence=True)) == SW.CONDITIONS_NOT_SATISFIED
    entries: list[gp.RegistryEntry] = []
    r = host.send(gp.get_status(0x40))
    pages = 1
    while r.sw == gp.SW_MORE_DATA:
        assert 0 < len(r.data) <= 200
        entries += gp.decode_status_response(r.data)
        r = host.send(gp.get_status(0x40, next_occurrence=True))
        pages += 1
    assert r.sw == SW.OK
    entries += gp.decode_status_response(r.data)
    assert pages > 1
    assert [e.aid for e in entries] == [i.aid for i in card.image.instances[1:]]


# --- SET STATUS -------------------------------------------------------------------------------


def test_lock_and_unlock_the_wallet(keys: IssuerKeys) -> None:
    card = provisioned(keys)
    host = GpHost(card).open(0x01)
    raw_send(card, "0070000001")  # open channel 1, select the wallet there
    assert raw_send(card, "01A4040009" + WALLET.hex()).sw == SW.OK
    assert host.sw(gp.lock_application(WALLET)) == SW.OK
    assert host.sw(gp.lock_application(WALLET)) == SW.OK  # idempotent (OTA retries)
    assert host.life_of(WALLET) == 0x8F
    assert raw_send(card, "815C000204").sw == SW.FUNCTION_NOT_SUPPORTED  # 6A81, selected
    assert raw_send(card, "01A4040009" + WALLET.hex()).sw == SW.SELECTED_FILE_INVALIDATED
    assert host.sw(gp.unlock_application(WALLET)) == SW.OK
    assert host.life_of(WALLET) == 0x0F
    assert wallet_of(card).status == "active"
    shop(card, keys)


def test_set_status_errors(keys: IssuerKeys) -> None:
    card = provisioned(keys)
    host = GpHost(card).open(0x01)
    assert host.sw(gp.lock_application(OTHER)) == SW.REFERENCED_DATA_NOT_FOUND
    assert host.sw(gp.lock_application(ISD)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.sw(gp.set_status(0x40, 0x0F, WALLET)) == SW.WRONG_P1P2
    assert host.sw(gp.set_status(0x60, 0x80, WALLET)) == SW.WRONG_P1P2
    assert host.sw(gp.set_status(0x40, 0x80, b"\x01")) == SW.WRONG_DATA
    assert host.sw(gp.set_status(0x80, 0x42)) == SW.WRONG_P1P2
    assert host.sw(gp.set_status(0x80, gp.CARD_LOCKED, OTHER)) == SW.WRONG_DATA


def test_a_pboc_locked_wallet_cannot_be_unlocked_over_gp(keys: IssuerKeys) -> None:
    image = issuance.with_isd(sim_image(keys))
    wallet = image.instances[0]
    assert isinstance(wallet.state, WalletState)
    locked = replace(wallet, state=replace(wallet.state, status="locked"))
    card = bootstrap.memory_card(CardImage("sim", (locked, image.instances[1])))
    card.power_on()
    host = GpHost(card).open(0x01)
    assert host.life_of(WALLET) == 0x1F
    assert host.sw(gp.unlock_application(WALLET)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.sw(gp.lock_application(WALLET)) == SW.CONDITIONS_NOT_SATISFIED


def test_card_life_cycle(keys: IssuerKeys) -> None:
    card = provisioned(keys)
    host = GpHost(card).open(0x01)
    assert host.sw(gp.set_status(0x80, gp.CARD_INITIALIZED)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.sw(gp.set_status(0x80, gp.CARD_LOCKED, ISD)) == SW.OK
    assert host.statuses(gp.STATUS_ISD)[0].life_cycle == gp.CARD_LOCKED
    assert host.sw(gp.delete(WALLET)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.statuses(gp.STATUS_APPLICATIONS)[0].aid == WALLET  # GET STATUS still works
    assert raw_send(card, select_aid(WALLET)).sw == SW.FILE_NOT_FOUND  # only the ISD
    assert raw_send(card, select_aid(ISD)).sw == SW.OK
    host = GpHost(card).open(0x01)  # a session opens on a locked card
    assert host.sw(gp.set_status(0x80, gp.CARD_SECURED)) == SW.OK
    shop(card, keys)
    host = GpHost(card).open(0x01)
    assert host.sw(gp.set_status(0x80, gp.CARD_TERMINATED)) == SW.OK
    assert host.sw(gp.get_status(0x80)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.sw(gp.set_status(0x80, gp.CARD_SECURED)) == SW.CONDITIONS_NOT_SATISFIED
    assert raw_send(card, select_aid(WALLET)).sw == SW.FILE_NOT_FOUND
    raw_send(card, select_aid(ISD))
    assert raw_send(card, scp03.initialize_update(0x30, bytes(8))).sw == (
        SW.CONDITIONS_NOT_SATISFIED
    )


def test_card_life_moves_forward_from_op_ready() -> None:
    image = issuance.new_blank_sim_image()
    isd = image.instances[0]
    assert isinstance(isd.state, IsdState)
    fresh = CardImage("sim", (replace(isd, state=replace(isd.state, card_life="op_ready")),))
    card = bootstrap.memory_card(fresh)
    card.power_on()
    host = GpHost(card).open(0x01)
    assert host.statuses(gp.STATUS_ISD)[0].life_cycle == gp.CARD_OP_READY
    assert host.sw(gp.set_status(0x80, gp.CARD_LOCKED)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.sw(gp.set_status(0x80, gp.CARD_INITIALIZED)) == SW.OK
    assert host.sw(gp.set_status(0x80, gp.CARD_INITIALIZED)) == SW.OK
    assert host.sw(gp.set_status(0x80, gp.CARD_SECURED)) == SW.OK
    assert host.sw(gp.set_status(0x80, gp.CARD_OP_READY)) == SW.CONDITIONS_NOT_SATISFIED


# --- DELETE -----------------------------------------------------------------------------------


def test_delete(keys: IssuerKeys) -> None:
    card = provisioned(keys)
    raw_send(card, "0070000001")
    assert raw_send(card, "01A4040009" + WALLET.hex()).sw == SW.OK
    host = GpHost(card).open(0x01)
    assert host.sw(gp.delete(OTHER)) == SW.REFERENCED_DATA_NOT_FOUND
    assert host.sw(gp.delete(ISD)) == SW.CONDITIONS_NOT_SATISFIED
    assert host.sw(gp.delete(gp.WALLET_PACKAGE_AID)) == SW.CONDITIONS_NOT_SATISFIED  # in use
    assert host.sw(CommandApdu(0x80, 0xE4, 0x00, 0x40, b"\x4f\x00")) == SW.WRONG_P1P2
    assert host.sw(CommandApdu(0x80, 0xE4, 0x00, 0x00, b"\x4f\x02\x01\x02")) == SW.WRONG_DATA
    assert host.ok(gp.delete(WALLET)) == b"\x00"
    assert aids_of(card) == [ISD]
    assert isd_state(card).apps == ()
    assert raw_send(card, "815C000204").sw == SW.INS_NOT_SUPPORTED  # channel 1: nothing left
    host = GpHost(card).open(0x01)
    assert host.ok(gp.delete(gp.WALLET_PACKAGE_AID)) == b"\x00"
    assert isd_state(card).load_files == ()


def test_delete_a_load_file_with_its_applications(keys: IssuerKeys) -> None:
    card = provisioned(keys)
    host = GpHost(card).open(0x01)
    assert host.ok(gp.delete(gp.WALLET_PACKAGE_AID, related=True)) == b"\x00"
    assert aids_of(card) == [ISD]
    assert isd_state(card).load_files == () and isd_state(card).apps == ()


# --- PUT KEY ----------------------------------------------------------------------------------

AES3 = (b"\xa1" * 16, b"\xa2" * 16, b"\xa3" * 16)
DES3 = (b"\xd1" * 16, b"\xd2" * 16, b"\xd3" * 16)
NEW_AES, NEW_DES = list(AES3), list(DES3)


@pytest.mark.parametrize("scp", ["scp02", "scp03"])
def test_put_key_adds_and_replaces_sets(scp: str) -> None:
    card = blank_card()
    host = GpHost(card, scp=scp).open(0x03)  # type: ignore[arg-type]
    assert host.dek is not None
    added = host.ok(gp.put_key(0x00, 0x31, NEW_AES, KEY_TYPE_AES, host.dek))
    assert added == bytes([0x31]) + b"".join(crypto.kcv_aes(k) for k in NEW_AES)
    replaced = host.ok(gp.put_key(0xFF, 0x20, NEW_DES, KEY_TYPE_DES, host.dek))
    assert replaced == bytes([0x20]) + b"".join(crypto.kcv_des(k) for k in NEW_DES)
    assert [k.kvn for k in isd_state(card).key_sets] == [0x20, 0x30, 0x01, 0x31]
    raw_send(card, select_aid(ISD))
    assert raw_send(card, scp03.initialize_update(0xFF, bytes(8))).sw == (
        SW.REFERENCED_DATA_NOT_FOUND  # the initial set is gone
    )
    new03 = StaticKeys(*NEW_AES)
    assert GpHost(card, keys=new03, kvn=0x31).open(0x33).sw(gp.get_status(0x80)) == SW.OK
    new02 = StaticKeys(*NEW_DES)
    assert (
        GpHost(card, scp="scp02", keys=new02, kvn=0x20).open(0x03).sw(gp.get_status(0x80)) == SW.OK
    )


def test_put_key_refusals_change_nothing() -> None:
    card = blank_card()
    host = GpHost(card).open(0x03)
    assert host.dek is not None
    before = card.image
    command = gp.put_key(0x00, 0x31, NEW_AES, KEY_TYPE_AES, host.dek)
    data = bytearray(command.data)
    data[-1] ^= 0x01  # the last KCV
    assert host.sw(replace(command, data=bytes(data))) == gp.SW_INVALID_KCV
    assert host.sw(gp.put_key(0x00, 0x50, NEW_AES, KEY_TYPE_AES, host.dek)) == SW.WRONG_DATA
    assert host.sw(gp.put_key(0x00, 0x30, NEW_AES, KEY_TYPE_AES, host.dek)) == SW.WRONG_DATA
    assert host.sw(gp.put_key(0x33, 0x33, NEW_AES, KEY_TYPE_AES, host.dek)) == (
        SW.REFERENCED_DATA_NOT_FOUND
    )
    assert host.sw(gp.put_key(0x00, 0x31, NEW_DES, KEY_TYPE_DES, host.dek)) == SW.WRONG_DATA
    assert host.sw(gp.put_key(0x00, 0x21, NEW_AES, KEY_TYPE_AES, host.dek)) == SW.WRONG_DATA
    assert host.sw(replace(command, p2=0x01)) == SW.WRONG_P1P2
    assert host.sw(replace(command, data=command.data[:-4])) == SW.WRONG_DATA
    assert card.image.instances[0].state.key_sets == before.instances[0].state.key_sets  # type: ignore[attr-defined]
    for kvn in range(0x32, 0x37):  # 3 sets + 5 = the 8 a card holds
        assert host.sw(gp.put_key(0x00, kvn, NEW_AES, KEY_TYPE_AES, host.dek)) == SW.OK
    assert host.sw(gp.put_key(0x00, 0x37, NEW_AES, KEY_TYPE_AES, host.dek)) == (
        gp.SW_NOT_ENOUGH_MEMORY
    )


def test_an_scp80_set_replaced_under_its_kvn_keeps_its_counter() -> None:
    image = IsdScp80Keys().with_counter(issuance.new_blank_sim_image(), 0x01, 41)
    card = bootstrap.memory_card(image)
    card.power_on()
    host = GpHost(card).open(0x03)
    assert host.dek is not None
    assert host.ok(gp.put_key(0x01, 0x01, NEW_AES, KEY_TYPE_AES, host.dek))[0] == 0x01
    assert isd_state(card).key_set(0x01) == KeySet(0x01, "scp80", "aes", *AES3, 41)
    assert host.ok(gp.put_key(0x01, 0x02, NEW_DES, KEY_TYPE_DES, host.dek))[0] == 0x02
    assert isd_state(card).key_set(0x02) == KeySet(0x02, "scp80", "3des", *DES3, 0)


# --- the OTA context ---------------------------------------------------------------------------


def remote_script(keys: IssuerKeys, dek: Dek) -> list[CommandApdu]:
    return [
        gp.install_for_load(gp.WALLET_PACKAGE_AID),
        *gp.load_commands(gp.load_file(gp.WALLET_PACKAGE_AID)),
        gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, WALLET),
        *perso.store_data_commands(WALLET, wallet_perso_for(keys, pin_bcd=PIN_BCD).dgis(dek)),
    ]


@pytest.mark.parametrize("algorithm", ["aes", "3des"])
def test_provisioning_in_an_ota_context(keys: IssuerKeys, algorithm: KeyAlgorithm) -> None:
    isd_keys = replace(issuance.TEST_ISD_KEYS, scp80_algorithm=algorithm)
    image = issuance.new_blank_sim_image(isd_keys)
    isd = find_isd(image.instances)
    assert isd is not None and isinstance(isd.state, IsdState)
    security = ota_security(isd.state, 0x01)
    assert security is not None
    dek_mode = "aes-cbc" if algorithm == "aes" else "3des-ecb"
    assert security.dek == Dek(dek_mode, isd_keys.scp80.dek)  # type: ignore[arg-type]
    script = remote_script(keys, security.dek)
    responses, instances = run_remote(image.instances, script, security)
    assert [r.sw for r in responses] == [SW.OK] * len(script)
    card = bootstrap.memory_card(CardImage("sim", instances))
    card.power_on()
    assert wallet_of(card) == sim_image(keys, balance_fen=0, pin_bcd=PIN_BCD).instances[0].state
    reader = SimReader(card)
    reader.present()
    psam_reader = SimReader(psam_card(keys))
    psam_reader.present()
    with pytest.raises(CardRefused):  # the PIN is on: a load needs VERIFY first
        card_flows.load(reader, Authority(keys), 100, TERMINAL_ID, NOW)


def test_a_remote_script_stops_at_the_first_failure(keys: IssuerKeys) -> None:
    image = issuance.new_blank_sim_image()
    security = ota_security(image.instances[0].state, 0x01)  # type: ignore[arg-type]
    assert security is not None
    script = remote_script(keys, security.dek)
    failing = [script[0], gp.delete(OTHER), *script[1:]]
    responses, instances = run_remote(image.instances, failing, security)
    assert [r.sw for r in responses] == [SW.OK, SW.REFERENCED_DATA_NOT_FOUND]
    assert instances == image.instances  # INSTALL [for load] changes nothing persistent
    assert ota_security(image.instances[0].state, 0x30) is None  # type: ignore[arg-type]


def test_remote_rules(keys: IssuerKeys) -> None:
    image = issuance.new_blank_sim_image()
    state = image.instances[0].state
    assert isinstance(state, IsdState)
    unciphered = ota_security(state, 0x01, ciphered=False)
    assert unciphered is not None
    script = RemoteScript(unciphered)
    assert script.process(image.instances, scp03.initialize_update(0x30, bytes(8))).sw == (
        SW.CONDITIONS_NOT_SATISFIED
    )
    assert script.process(image.instances, CommandApdu(0x84, 0xF2, 0x80, 0x02)).sw == (
        SW.CLA_NOT_SUPPORTED
    )
    status = script.process(image.instances, gp.get_status(0x80))
    assert status.sw == SW.OK and status.instances is None
    # A PIN needs a ciphered packet.
    responses, _ = run_remote(image.instances, remote_script(keys, unciphered.dek), unciphered)
    assert responses[-1].sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert script.process((), gp.get_status(0x80)).sw == SW.FILE_NOT_FOUND


def test_the_receiver_adapters(keys: IssuerKeys) -> None:
    image = issuance.new_blank_sim_image()
    store = IsdScp80Keys()
    ota_keys = store.keys(image, 0x01)
    assert ota_keys is not None and ota_keys.family is KeyFamily.AES
    assert ota_keys.kic == issuance.TEST_ISD_KEYS.scp80.enc
    assert ota_keys.kid == issuance.TEST_ISD_KEYS.scp80.mac
    assert store.keys(image, 0x02) is None and store.keys(image, 0x30) is None
    assert store.counter(image, 0x01) == 0
    counted = store.with_counter(image, 0x01, 7)
    assert store.counter(counted, 0x01) == 7 and store.counter(image, 0x01) == 0

    class Context:
        key_version = 0x01
        spi = Spi()

    target = IsdOtaTarget()
    assert target.minimum_level == ISD_MINIMUM_LEVEL
    dek = Dek("aes-cbc", issuance.TEST_ISD_KEYS.scp80.dek)
    responses, new_image = target.execute(counted, remote_script(keys, dek), Context())
    assert all(r.sw == SW.OK for r in responses)
    assert isinstance(new_image, CardImage) and store.counter(new_image, 0x01) == 7
    assert [i.aid for i in new_image.instances] == [ISD, WALLET]

    class Unknown(Context):
        key_version = 0x05

    refused, same = target.execute(counted, remote_script(keys, dek), Unknown())
    assert [r.sw for r in refused] == [SW.CONDITIONS_NOT_SATISFIED] and same is counted


def test_an_ota_lock_reaches_a_selected_wallet_through_the_runtime(keys: IssuerKeys) -> None:
    """A content change committed from outside (as the receiver does) reaches the applets."""
    card = bootstrap.memory_card(issuance.with_isd(sim_image(keys)))
    card.power_on()
    assert raw_send(card, select_aid(WALLET)).ok
    security = ota_security(isd_state(card), 0x01)
    assert security is not None
    reply = RemoteScript(security).process(card.image.instances, gp.lock_application(WALLET))
    assert reply.sw == SW.OK and reply.instances is not None
    card._commit_content(reply.instances)  # what an ENVELOPE's Reply does
    assert raw_send(card, "805C000204").sw == SW.FUNCTION_NOT_SUPPORTED


# --- images -----------------------------------------------------------------------------------


def test_isd_images_round_trip(keys: IssuerKeys) -> None:
    for image in (
        issuance.new_blank_sim_image(),
        issuance.with_isd(sim_image(keys)),
        provisioned(keys).image,
        installed()[0].image,
    ):
        raw = encode_image(image, bootstrap.APPLET_TYPES)
        assert decode_image(raw, bootstrap.APPLET_TYPES) == image


def test_a_directly_issued_sim_with_an_isd_keeps_working(keys: IssuerKeys) -> None:
    card = bootstrap.memory_card(issuance.with_isd(sim_image(keys, balance_fen=0)))
    card.power_on()
    assert aids_of(card) == [WALLET, ISD]
    shop(card, keys)
    host = GpHost(card).open(0x01)
    assert host.statuses(gp.STATUS_APPLICATIONS)[0].load_file_aid == gp.WALLET_PACKAGE_AID


def test_an_old_wallet_image_without_life_is_personalised(keys: IssuerKeys) -> None:
    import json

    raw = encode_image(sim_image(keys), bootstrap.APPLET_TYPES)
    body = json.loads(raw)
    state = body["instances"][0]["state"]
    del state["life"], state["keys_confirmed"]
    body.pop("sha256")
    import hashlib

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body["sha256"] = hashlib.sha256(canonical).hexdigest()
    image = decode_image(json.dumps(body).encode(), bootstrap.APPLET_TYPES)
    assert image == sim_image(keys)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(life="broken"), "life: 'broken' is not one of"),
        (lambda s: s.update(keys_confirmed=1), "keys_confirmed: expected true or false"),
        (lambda s: s.update(dpk=""), "dpk: 0 bytes is not a valid length"),
        (lambda s: s.update(keys_confirmed=False), "inconsistent values"),
    ],
)
def test_wallet_life_fields_are_checked(keys: IssuerKeys, edit: Any, message: str) -> None:
    import json

    body = json.loads(encode_image(sim_image(keys), bootstrap.APPLET_TYPES))
    edit(body["instances"][0]["state"])
    body.pop("sha256")
    import hashlib

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body["sha256"] = hashlib.sha256(canonical).hexdigest()
    with pytest.raises(CardImageError, match=message):
        decode_image(json.dumps(body).encode(), bootstrap.APPLET_TYPES)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(card_life="dead"), "card_life: 'dead' is not one of"),
        (lambda s: s["key_sets"][0].update(scp="scp04"), "is not a key set kind"),
        (lambda s: s["key_sets"][0].update(algorithm="aes"), "is not a key set kind"),
        (lambda s: s["key_sets"][1].update(enc="00" * 24), "the three keys differ in length"),
        (lambda s: s["key_sets"][1].update(kvn=255), "two sets share one key version"),
        (lambda s: s["key_sets"][0].update(counter=0x10000), "counter: 65536 is outside"),
        (lambda s: s.update(apps=[{}]), "fields: missing"),
        (lambda s: s.update(load_files=[1]), r"load_files\[0\]: not an object"),
        (lambda s: s.update(key_div_data="00"), "key_div_data: 1 bytes"),
    ],
)
def test_isd_state_fields_are_checked(edit: Any, message: str) -> None:
    import hashlib
    import json

    body = json.loads(encode_image(issuance.new_blank_sim_image(), bootstrap.APPLET_TYPES))
    edit(body["instances"][0]["state"])
    body.pop("sha256")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body["sha256"] = hashlib.sha256(canonical).hexdigest()
    with pytest.raises(CardImageError, match=message):
        decode_image(json.dumps(body).encode(), bootstrap.APPLET_TYPES)


def test_two_isds_or_an_isd_on_a_psam_are_refused(keys: IssuerKeys) -> None:
    isd = issuance.new_blank_sim_image().instances[0]
    two = CardImage("sim", (isd, replace(isd, aid=OTHER)))
    with pytest.raises(CardImageError, match="at most one issuer security domain"):
        decode_image(encode_image(two, bootstrap.APPLET_TYPES), bootstrap.APPLET_TYPES)
    psam = CardImage("psam", (isd,))
    with pytest.raises(CardImageError, match="a psam card cannot carry a isd applet"):
        decode_image(encode_image(psam, bootstrap.APPLET_TYPES), bootstrap.APPLET_TYPES)


def test_keys_never_appear_in_reprs() -> None:
    state = issuance.new_blank_sim_image().instances[0].state
    text = repr(state) + repr(issuance.TEST_ISD_KEYS)
    assert "key_sets=(KeySet(kvn=255" in text
    assert repr(issuance.GP_TEST_KEY)[2:-1] not in text  # b'@ABC...'
    assert "HIJ" not in text and "XYZ" not in text


def test_the_isd_has_no_files() -> None:
    card = blank_card()
    raw_send(card, select_aid(ISD))
    assert raw_send(card, "00A40000022F00").sw == SW.FILE_NOT_FOUND
    assert raw_send(card, "00B0000000").sw == SW.INS_NOT_SUPPORTED
