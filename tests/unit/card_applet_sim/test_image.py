"""The card image file (card.md §1 persistence): round trip, refusal of every damaged or
hand-edited file as a whole with a message naming the file, mode 0600, stale temp files."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from card_applet_sim import bootstrap
from card_applet_sim.domain.errors import CardImageError
from card_applet_sim.domain.image import CardImage, decode_image, encode_image
from card_applet_sim.domain.wallet import WalletState
from paycore.issuer_keys import IssuerKeys
from paycore.purse import WALLET_AID, select_aid
from tests.unit.card_applet_sim.cardkit import (
    PIN_BCD,
    det_random,
    do_load,
    make_keys,
    ok,
    psam_image,
    sim_image,
)

Body = dict[str, Any]


def saved(tmp_path: Path, image: CardImage, name: str = "sim.card") -> Path:
    path = tmp_path / name
    bootstrap.save_new_image(path, image)
    return path


def edit_with_checksum(path: Path, change: Callable[[Body], None]) -> None:
    """A careful hand edit: change the JSON and recompute the checksum."""
    body = json.loads(path.read_text())
    change(body)
    body.pop("sha256", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body["sha256"] = hashlib.sha256(canonical).hexdigest()
    path.write_text(json.dumps(body, indent=1))


def state_of(body: Body) -> Body:
    state = body["instances"][0]["state"]
    assert isinstance(state, dict)
    return state


def refused(path: Path) -> str:
    """Load the file every way there is; each must refuse it with the same message."""
    with pytest.raises(CardImageError) as excinfo:
        bootstrap.file_card(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: ")
    with pytest.raises(CardImageError) as again:
        bootstrap.file_store(path).load()
    assert str(again.value) == message
    return message


# --- round trip -----------------------------------------------------------------------------


def test_codec_round_trip(keys: IssuerKeys) -> None:
    for image in (sim_image(keys), sim_image(keys, pin_bcd=PIN_BCD), psam_image(keys)):
        raw = encode_image(image, bootstrap.APPLET_TYPES)
        assert decode_image(raw, bootstrap.APPLET_TYPES) == image
        assert encode_image(decode_image(raw, bootstrap.APPLET_TYPES), bootstrap.APPLET_TYPES) == (
            raw
        )


def test_file_round_trip_after_transactions(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys, pin_bcd=PIN_BCD))
    card = bootstrap.file_card(path, random_bytes=det_random(1), expect_kind="sim")
    card.power_on()
    ok(card, select_aid(WALLET_AID))
    ok(card, "00200000021234")
    do_load(card, keys, 4_321)
    in_memory = card.image
    card.power_off()
    reloaded = bootstrap.file_store(path).load()
    assert reloaded == in_memory
    state = reloaded.state_of(WALLET_AID)
    assert isinstance(state, WalletState)
    assert state.balance_fen == 10_000 + 4_321
    assert len(state.log) == 1
    assert len(state.proofs) == 1


def test_new_image_is_not_overwritten(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    with pytest.raises(FileExistsError):
        bootstrap.save_new_image(path, sim_image(keys, balance_fen=5))
    bootstrap.save_new_image(path, sim_image(keys, balance_fen=5), overwrite=True)
    state = bootstrap.file_store(path).load().state_of(WALLET_AID)
    assert isinstance(state, WalletState)
    assert state.balance_fen == 5


def test_file_mode_is_0600(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    card = bootstrap.file_card(path)
    card.power_on()
    ok(card, select_aid(WALLET_AID))
    do_load(card, keys, 1)  # a commit writes a new file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_name(path.name + ".tmp").exists()


def test_expect_kind(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, psam_image(keys), "psam.card")
    with pytest.raises(CardImageError, match=r"psam.card: this is a psam image, not a sim"):
        bootstrap.file_card(path, expect_kind="sim")


# --- refused files --------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _flip_a_key_digit(path: Path) -> None:
    text = path.read_text()
    dpk = json.loads(text)["instances"][0]["state"]["dpk"]
    flipped = ("1" if dpk[0] != "1" else "2") + dpk[1:]
    path.write_text(text.replace(dpk, flipped))


def _edit_balance_by_hand(path: Path) -> None:
    text = path.read_text()
    assert '"balance_fen": 10000' in text
    path.write_text(text.replace('"balance_fen": 10000', '"balance_fen": 99999'))


RAW_DAMAGE: list[tuple[str, Callable[[Path], object], str]] = [
    ("empty", lambda p: p.write_bytes(b""), "not a card image (invalid JSON"),
    ("non-JSON", lambda p: p.write_bytes(b"hello, card"), "not a card image (invalid JSON"),
    ("not UTF-8", lambda p: p.write_bytes(b"\xff\xfe\x00{"), "not a card image (invalid JSON"),
    ("truncated", _truncate, "not a card image (invalid JSON"),
    ("JSON array", lambda p: p.write_text("[]"), "not a card image (JSON is not an object)"),
    ("deep nesting", lambda p: p.write_text("[" * 100_000), "not a card image (JSON nested"),
    ("too big", lambda p: p.write_bytes(b" " * (1 << 20) + b"{}"), "over the 1048576 limit"),
    ("corrupt key", _flip_a_key_digit, "checksum mismatch"),
    ("hand-edited balance", _edit_balance_by_hand, "checksum mismatch"),
]


@pytest.mark.parametrize(
    ("damage", "expected"), [(d, e) for _, d, e in RAW_DAMAGE], ids=[n for n, _, _ in RAW_DAMAGE]
)
def test_damaged_files_are_refused(
    tmp_path: Path, keys: IssuerKeys, damage: Callable[[Path], object], expected: str
) -> None:
    path = saved(tmp_path, sim_image(keys))
    damage(path)
    assert expected in refused(path)


def _set(*keys_and_value: Any) -> Callable[[Body], None]:
    *where, last, value = keys_and_value

    def change(body: Body) -> None:
        target: Any = body
        for k in where:
            target = target[k]
        target[last] = value

    return change


def _state_set(name: str, value: Any) -> Callable[[Body], None]:
    return lambda body: state_of(body).__setitem__(name, value)


def _state_del(name: str) -> Callable[[Body], None]:
    return lambda body: state_of(body).pop(name)


EDITS: list[tuple[str, Callable[[Body], None], str]] = [
    ("wrong format", _set("format", "other.thing"), "not a card image (format is 'other.thing')"),
    ("no format", lambda b: b.pop("format"), "not a card image (format is None)"),
    ("wrong version", _set("version", 2), "unsupported card image version 2"),
    ("version as text", _set("version", "1"), "unsupported card image version '1'"),
    ("unknown field", _set("comment", "hi"), "unknown fields ['comment']"),
    ("unknown kind", _set("kind", "usim"), "unknown card kind 'usim'"),
    ("instances not a list", _set("instances", {}), "instances must be a list"),
    ("too many instances", lambda b: b.__setitem__("instances", b["instances"] * 17),
     "at most 16"),
    ("instance fields", _set("instances", 0, "extra", 1), "instances[0]: needs exactly"),
    ("unknown applet type", _set("instances", 0, "type", "java"),
     "instances[0]: unknown applet type 'java'"),
    ("bad AID hex", _set("instances", 0, "aid", "A0XX"), "instances[0].aid: not hex"),
    ("state not an object", _set("instances", 0, "state", []), "instances[0].state: not an"),
    ("unknown state field", _state_set("note", 1),
     "instances[0].state.fields: missing [], unknown ['note']"),
    ("missing state field", _state_del("ceiling_fen"), "missing ['ceiling_fen']"),
    ("bad key hex", _state_set("dpk", "ZZ" * 16), "instances[0].state.dpk: not hex"),
    ("key as number", _state_set("dlk", 7), "instances[0].state.dlk: expected hex text"),
    ("short key", _state_set("dtk", "00" * 8), "dtk: 8 bytes is not a valid length"),
    ("short EF15", _state_set("ef15", "00" * 29), "ef15: 29 bytes is not a valid length"),
    ("balance over the ceiling", _state_set("balance_fen", 100_001),
     "balance_fen: 100001 is outside 0..100000"),
    ("negative balance", _state_set("balance_fen", -1), "balance_fen: -1 is outside"),
    ("balance as float", _state_set("balance_fen", 10.5), "balance_fen: expected an integer"),
    ("balance as bool", _state_set("balance_fen", True), "balance_fen: expected an integer"),
    ("ceiling zero", _state_set("ceiling_fen", 0), "ceiling_fen: 0 is outside"),
    ("counter over FFFF", _state_set("online_counter", 0x10000), "online_counter: 65536"),
    ("unknown status", _state_set("status", "frozen"), "status: 'frozen' is not one of"),
    ("log too long", _state_set("log", ["00" * 23] * 11), "log: expected a list of at most 10"),
    ("bad log record", _state_set("log", ["00" * 22]), "state.log[0]"),
    ("log record as number", _state_set("log", [5]), "expected hex text"),
    ("proofs not a list", _state_set("proofs", {}), "proofs: expected a list"),
    ("proof type", _state_set("proofs", [{"type": 3, "counter": 1, "mac2": "00" * 4,
                                          "tac": "00" * 4}]), "unknown transaction type 3"),
    ("proof counter 0", _state_set("proofs", [{"type": 6, "counter": 0, "mac2": "00" * 4,
                                               "tac": "00" * 4}]), "counter: 0 is outside"),
    ("proof fields", _state_set("proofs", [{"type": 6}]), "missing ['counter', 'mac2', 'tac']"),
    ("pin too short", _state_set("pin", "12"), "pin: 1 bytes is not a valid length"),
    ("pin tries over 3", _state_set("pin_tries_left", 4), "pin_tries_left: 4 is outside 0..3"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in EDITS], ids=[n for n, _, _ in EDITS]
)
def test_edited_files_are_refused(
    tmp_path: Path, keys: IssuerKeys, change: Callable[[Body], None], expected: str
) -> None:
    path = saved(tmp_path, sim_image(keys))
    edit_with_checksum(path, change)
    assert expected in refused(path)


def test_a_missing_checksum_is_refused(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    body = json.loads(path.read_text())
    del body["sha256"]
    path.write_text(json.dumps(body))
    assert refused(path) == f"{path}: card image has no sha256 checksum"


def test_a_balance_above_a_lower_ceiling_is_refused(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    edit_with_checksum(path, _state_set("ceiling_fen", 5_000))
    assert "balance_fen: 10000 is outside 0..5000" in refused(path)


def test_psam_edits_are_refused(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, psam_image(keys), "psam.card")
    edit_with_checksum(path, _state_set("serial", -1))
    assert "instances[0].state.serial: -1 is outside" in refused(path)
    bootstrap.save_new_image(path, psam_image(keys), overwrite=True)
    edit_with_checksum(path, _state_set("terminal_id", "0011"))
    assert "terminal_id: 2 bytes is not a valid length" in refused(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.card"
    assert refused(path) == f"{path}: no such card image"


def test_a_damaged_file_never_yields_a_half_loaded_card(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    card = bootstrap.file_card(path)  # valid when the card was made
    _edit_balance_by_hand(path)  # ... damaged before it is powered
    with pytest.raises(CardImageError, match="checksum mismatch"):
        card.power_on()
    assert not card.powered
    assert card.transmit(bytes.fromhex("00A4040009") + WALLET_AID) == b"\x6f\x00"


def test_a_failed_reset_leaves_the_card_off(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    card = bootstrap.file_card(path)
    card.power_on()
    ok(card, select_aid(WALLET_AID))
    _truncate(path)
    with pytest.raises(CardImageError, match="invalid JSON"):
        card.reset()
    assert not card.powered
    assert card.transmit(bytes.fromhex("805C000204")) == b"\x6f\x00"


def test_a_stale_tmp_file_is_ignored_and_removed(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    tmp = path.with_name(path.name + ".tmp")
    other = encode_image(sim_image(keys, balance_fen=99_999), bootstrap.APPLET_TYPES)
    tmp.write_bytes(other[: len(other) // 2])  # a commit torn before its rename
    card = bootstrap.file_card(path)
    assert not tmp.exists()
    tmp.write_bytes(other)  # even a complete one is not the truth before the rename
    card.power_on()
    assert not tmp.exists()
    assert ok(card, select_aid(WALLET_AID))
    assert ok(card, "805C000204") == (10_000).to_bytes(4, "big")


def test_other_keys_give_other_images(keys: IssuerKeys) -> None:
    one = encode_image(sim_image(keys), bootstrap.APPLET_TYPES)
    two = encode_image(sim_image(make_keys(9)), bootstrap.APPLET_TYPES)
    assert one != two


def test_an_image_with_two_instances_of_one_aid_is_refused(
    tmp_path: Path, keys: IssuerKeys
) -> None:
    path = saved(tmp_path, sim_image(keys))
    edit_with_checksum(path, lambda body: body["instances"].append(body["instances"][0]))
    assert refused(path) == f"{path}: two instances share one AID"


def test_a_sim_image_carrying_a_psam_applet_is_refused(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, psam_image(keys), "psam.card")
    edit_with_checksum(path, lambda body: body.update(kind="sim"))
    assert refused(path) == f"{path}: a sim card cannot carry a psam applet"


@pytest.mark.parametrize("value", ["4E 46", "4E4", "4e46zz", "0x4E46"])
def test_hex_fields_are_strict(tmp_path: Path, keys: IssuerKeys, value: str) -> None:
    path = saved(tmp_path, sim_image(keys))
    edit_with_checksum(path, lambda body: state_of(body).update(dpk=value))
    assert refused(path) == f"{path}: instances[0].state.dpk: not hex"


def test_a_bad_log_record_is_named_by_its_index(tmp_path: Path, keys: IssuerKeys) -> None:
    path = saved(tmp_path, sim_image(keys))
    edit_with_checksum(path, lambda body: state_of(body).update(log=["00" * 23, "00" * 22]))
    assert refused(path) == f"{path}: instances[0].state.log[1]: 22 bytes is not a valid length"
