"""Codecs of the GP card management commands (paycore.gp.commands), DEK ciphers and key
component blocks (paycore.gp.dek), and the wallet's personalisation data (paycore.gp.perso):
round trips, the bytes ota.md fixes, and errors that name the field and offset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycore import crypto, tlv
from paycore.errors import BadKeyError, DecodeError, EncodeError
from paycore.gp import commands as gp
from paycore.gp import perso
from paycore.gp.dek import (
    KEY_TYPE_AES,
    KEY_TYPE_DES,
    Dek,
    decode_key_component,
    encode_key_component,
    kcv,
)
from paycore.purse import WALLET_AID

AID = bytes.fromhex("A0000000038698070199")
aids = st.binary(min_size=5, max_size=16)


def test_ota_md_identifiers() -> None:
    assert gp.ISD_AID.hex().upper() == "A000000151000000"
    assert gp.WALLET_PACKAGE_AID.hex().upper() == "F04E464350415901"
    assert gp.WALLET_MODULE_AID.hex().upper() == "F04E46435041590101"
    assert gp.load_file(gp.WALLET_PACKAGE_AID).hex().upper() == "C40A4F08F04E464350415901"


def test_install_commands_have_the_gp_headers() -> None:
    install = gp.install_for_install(gp.WALLET_PACKAGE_AID, gp.WALLET_MODULE_AID, WALLET_AID)
    assert install.encode()[:4].hex().upper() == "80E60C00"
    perso_ = gp.install_for_personalization(WALLET_AID)
    assert perso_.encode().hex().upper() == "80E620000F000009A0000000038698070100000000"
    assert gp.install_for_load(gp.WALLET_PACKAGE_AID).encode()[:4] == b"\x80\xe6\x02\x00"
    assert gp.install_for_make_selectable(AID).encode()[:4] == b"\x80\xe6\x08\x00"


@given(elf=aids, module=aids, aid=aids, privileges=st.sampled_from([b"\x00", b"\x01\x02\x03"]),
       params=st.binary(max_size=60), selectable=st.booleans())  # fmt: skip
def test_install_for_install_round_trip(
    elf: bytes, module: bytes, aid: bytes, privileges: bytes, params: bytes, selectable: bool
) -> None:
    command = gp.install_for_install(
        elf, module, aid, privileges=privileges, app_params=params, make_selectable=selectable
    )
    decoded = gp.decode_install(command.p1, command.data)
    assert isinstance(decoded, gp.InstallForInstall)
    assert (decoded.load_file_aid, decoded.module_aid, decoded.aid) == (elf, module, aid)
    assert decoded.privileges == privileges.ljust(3, b"\x00")
    assert decoded.app_params == params


def test_install_targets_round_trip() -> None:
    for command in (gp.install_for_personalization(AID), gp.install_for_make_selectable(AID)):
        assert gp.decode_install(command.p1, command.data) == gp.InstallTarget(AID)
    load = gp.install_for_load(gp.WALLET_PACKAGE_AID, bytes(32))
    assert gp.decode_install(load.p1, load.data) == gp.InstallForLoad(
        gp.WALLET_PACKAGE_AID, b"", bytes(32)
    )


@pytest.mark.parametrize(
    ("p1", "data", "message"),
    [
        (0x0C, bytes.fromhex("08F04E464350415901"), "field 2 of 6 is missing (at byte 9)"),
        (0x0C, bytes.fromhex("0F"), "field 1 length 15 runs past the end (at byte 0)"),
        (0x20, bytes.fromhex("000005A00000000100000000"), "1 trailing bytes (at byte 11)"),
        (0x20, bytes.fromhex("000003A00000000000"), "an AID of 3 bytes (5-16 expected)"),
        (0x0C, bytes.fromhex("05A00000000105A00000000105A00000000102000002C90000"),
         "privileges: 2 bytes (1 or 3 expected)"),
        (0x0C, bytes.fromhex("05A00000000105A00000000105A000000001010002010000"),
         "install parameters: no application parameters (C9)"),
        (0x02, bytes.fromhex("05A00000000100030000000000"), "a load file hash of 3 bytes"),
        (0x40, b"", "INSTALL kind 40 is not supported"),
    ],
)  # fmt: skip
def test_install_decode_errors(p1: int, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gp.decode_install(p1, data)


def test_load_blocks_and_load_file() -> None:
    raw = gp.load_file(gp.WALLET_PACKAGE_AID)
    blocks = gp.load_commands(raw, block_len=5)
    assert [(c.p1, c.p2) for c in blocks] == [(0x00, 0), (0x00, 1), (0x80, 2)]
    assert b"".join(c.data for c in blocks) == raw
    block = gp.load_file_data_block(raw)
    assert gp.load_file_package(block) == gp.WALLET_PACKAGE_AID
    with pytest.raises(DecodeError, match="exactly one C4"):
        gp.load_file_data_block(raw + tlv.encode_one(0x4F, AID))
    with pytest.raises(DecodeError, match="exactly one 4F"):
        gp.load_file_package(block + tlv.encode_one(0x4F, AID))
    with pytest.raises(EncodeError):
        gp.load_commands(b"")


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=300)), max_size=5))
def test_dgis_round_trip(dgis: list[tuple[int, bytes]]) -> None:
    assert list(gp.decode_dgis(gp.encode_dgis(dgis))) == dgis


def test_dgi_lengths_and_errors() -> None:
    assert gp.encode_dgi(0x0101, bytes(254))[:3] == b"\x01\x01\xfe"
    assert gp.encode_dgi(0x0101, bytes(255))[:5] == b"\x01\x01\xff\x00\xff"
    with pytest.raises(DecodeError, match=r"DGI 0101 length 5 runs past the end \(at byte 0\)"):
        gp.decode_dgis(bytes.fromhex("01010501"))
    with pytest.raises(DecodeError, match="DGI header runs past the end"):
        gp.decode_dgis(bytes.fromhex("0101"))
    with pytest.raises(DecodeError, match="3-byte length runs past the end"):
        gp.decode_dgis(bytes.fromhex("0101FF00"))


def test_store_data_p1() -> None:
    assert gp.store_data(0, b"x", last=False, encrypted=False).p1 == 0x08
    assert gp.store_data(3, b"x", last=True, encrypted=True).encode()[:4].hex() == "80e2e803"


@pytest.mark.parametrize("dek", [Dek("3des-ecb", bytes(range(16))), Dek("aes-cbc", bytes(16))])
@pytest.mark.parametrize("key_len", [8, 16, 24, 32, 5])
def test_key_components_round_trip(dek: Dek, key_len: int) -> None:
    key = bytes(range(1, key_len + 1))
    block = encode_key_component(dek, key)
    assert (len(block) % dek.block == 0) == (key_len % dek.block == 0)
    assert decode_key_component(dek, block) == key


def test_key_component_errors_and_kcvs() -> None:
    dek = Dek("aes-cbc", bytes(16))
    with pytest.raises(DecodeError, match="clear length 40 does not fit"):
        decode_key_component(dek, b"\x28" + bytes(16))
    with pytest.raises(DecodeError, match="empty"):
        decode_key_component(dek, b"")
    key = bytes(range(16))
    assert kcv(KEY_TYPE_DES, key) == crypto.kcv_des(key)
    assert kcv(KEY_TYPE_AES, key) == crypto.kcv_aes(key)
    with pytest.raises(BadKeyError):
        kcv(0x90, key)
    with pytest.raises(BadKeyError):
        Dek("3des-ecb", bytes(32))
    assert "key" not in repr(dek) or "00" not in repr(dek)


def test_put_key_round_trip_and_legacy_length() -> None:
    dek = Dek("3des-ecb", bytes(range(16)))
    keys = [bytes([n]) * 16 for n in (1, 2, 3)]
    command = gp.put_key(0xFF, 0x20, keys, KEY_TYPE_DES, dek)
    assert (command.cla, command.ins, command.p1, command.p2) == (0x80, 0xD8, 0xFF, 0x81)
    data = gp.PutKeyData.decode(command.data)
    assert data.new_kvn == 0x20
    assert [decode_key_component(dek, c.block) for c in data.components] == keys
    assert [c.kcv for c in data.components] == [crypto.kcv_des(k) for k in keys]
    legacy = gp.PutKeyData.decode(bytes([0x21, 0x88, 0x80]) + bytes(128) + b"\x03abc")
    assert len(legacy.components[0].block) == 128
    for bad, message in (
        (b"", "no key version"),
        (b"\x20", "no key"),
        (b"\x20\x80", "key length missing"),
        (b"\x20\x80\x10" + bytes(4), "runs past the end"),
        (b"\x20\x80\x01\x00", "KCV length missing"),
        (b"\x20\x80\x01\x00\x03ab", "KCV runs past the end"),
    ):
        with pytest.raises(DecodeError, match=message):
            gp.PutKeyData.decode(bad)


def test_status_entries_round_trip() -> None:
    entries = (
        gp.RegistryEntry(gp.ISD_AID, gp.CARD_SECURED, bytes.fromhex("9EFE80")),
        gp.RegistryEntry(WALLET_AID, 0x0F, bytes(3), gp.WALLET_PACKAGE_AID, (), gp.ISD_AID),
        gp.RegistryEntry(
            gp.WALLET_PACKAGE_AID, gp.ELF_LOADED, None, None, (gp.WALLET_MODULE_AID,), gp.ISD_AID
        ),
    )
    raw = b"".join(e.encode() for e in entries)
    assert gp.decode_status_response(raw) == entries
    assert raw.startswith(bytes.fromhex("E3134F08A0000001510000009F70010FC5039EFE80"))


def test_status_criteria_delete_and_set_status() -> None:
    assert gp.decode_status_criteria(b"") == b""
    assert gp.decode_status_criteria(bytes.fromhex("4F00")) == b""
    assert gp.decode_status_criteria(bytes.fromhex("4F02A0005C034F9F70")) == b"\xa0\x00"
    with pytest.raises(DecodeError, match="expected 4F"):
        gp.decode_status_criteria(bytes.fromhex("5C00"))
    assert gp.get_status(0x40).encode().hex().upper() == "80F24002024F0000"
    assert gp.decode_delete(gp.delete(AID, related=True).data) == AID
    assert gp.delete(AID, related=True).p2 == 0x80
    with pytest.raises(DecodeError, match="exactly one 4F"):
        gp.decode_delete(bytes.fromhex("4F05A0000000014F05A000000001"))
    assert gp.lock_application(AID).encode()[:4].hex().upper() == "80F04080"
    assert gp.unlock_application(AID).encode()[:4].hex().upper() == "80F04000"


def test_wallet_perso_dgis_and_blocks() -> None:
    dek = Dek("aes-cbc", bytes(range(16)))
    keys = [bytes([n]) * 16 for n in (1, 2, 3)]
    data = perso.WalletPerso(bytes(30), bytes(20), keys[0], keys[1], keys[2], key_version=2,
                             ceiling_fen=500, pin_bcd=b"\x12\x34")  # fmt: skip
    dgis = data.dgis(dek)
    assert [d for d, _ in dgis] == [0x0101, 0x0102, 0x0203, 0x0201, 0x0202, 0x8001, 0x9001]
    assert dict(dgis)[0x8001] == dek.encrypt(b"".join(keys))
    assert dict(dgis)[0x9001] == b"".join(crypto.kcv_des(k) for k in keys)
    commands = perso.store_data_commands(WALLET_AID, dgis, block_max=60)
    assert commands[0] == gp.install_for_personalization(WALLET_AID)
    blocks = commands[1:]
    assert [c.p2 for c in blocks] == list(range(len(blocks)))
    assert [c.p1 & 0x80 for c in blocks] == [0] * (len(blocks) - 1) + [0x80]
    assert [bool(c.p1 & 0x60) for c in blocks] == [
        any(d == 0x8001 for d, _ in gp.decode_dgis(c.data)) for c in blocks
    ]
    assert [d for c in blocks for d in gp.decode_dgis(c.data)] == dgis
    assert "01010101" not in repr(data)
