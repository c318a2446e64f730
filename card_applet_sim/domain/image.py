"""The card image: every applet instance's persistent state, and its file format.

File format (our choice; docs/card-image.md): UTF-8 JSON
``{"format": "nfcpay.card-image", "version": 1, "kind": "sim"|"psam", "instances":
[{"aid": HEX, "type": NAME, "state": {...}}], "sha256": HEX}`` where ``sha256`` is over the
canonical JSON (sorted keys, no spaces) of everything but itself. A file whose checksum, format,
kind or any field is wrong is refused as a whole with a CardImageError that says what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from card_applet_sim.domain.applet import AppletType
from card_applet_sim.domain.errors import CardImageError

FORMAT_NAME = "nfcpay.card-image"
FORMAT_VERSION = 1
KINDS = ("sim", "psam")
#: Which applet types each kind of card may carry (a PSAM is not a SIM).
KIND_APPLET_TYPES = {"sim": frozenset({"wallet", "isd"}), "psam": frozenset({"psam"})}
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")
IMAGE_BYTES_MAX = 1 << 20
INSTANCES_MAX = 16


@dataclass(frozen=True, slots=True)
class Instance:
    aid: bytes
    type_name: str
    state: object


@dataclass(frozen=True, slots=True)
class CardImage:
    kind: str
    instances: tuple[Instance, ...]

    def state_of(self, aid: bytes) -> object:
        for inst in self.instances:
            if inst.aid == aid:
                return inst.state
        raise KeyError(aid.hex())

    def with_state(self, aid: bytes, state: object) -> CardImage:
        return replace(
            self,
            instances=tuple(
                Instance(i.aid, i.type_name, state) if i.aid == aid else i for i in self.instances
            ),
        )


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def encode_image(image: CardImage, types: Mapping[str, AppletType]) -> bytes:
    body: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": image.kind,
        "instances": [
            {
                "aid": i.aid.hex().upper(),
                "type": i.type_name,
                "state": types[i.type_name].state_to_json(i.state),
            }
            for i in image.instances
        ],
    }
    body["sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    return json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"


def decode_image(raw: bytes, types: Mapping[str, AppletType]) -> CardImage:
    """Decode and validate a whole image; raises CardImageError naming the first problem."""
    if len(raw) > IMAGE_BYTES_MAX:
        raise CardImageError(f"image is {len(raw)} bytes, over the {IMAGE_BYTES_MAX} limit")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardImageError(f"not a card image (invalid JSON: {exc})") from None
    except RecursionError:  # e.g. a file of 100,000 '[': the decoder gives up on the depth
        raise CardImageError("not a card image (JSON nested too deeply)") from None
    if not isinstance(body, dict):
        raise CardImageError("not a card image (JSON is not an object)")
    if body.get("format") != FORMAT_NAME:
        raise CardImageError(f"not a card image (format is {body.get('format')!r})")
    if body.get("version") != FORMAT_VERSION:
        raise CardImageError(f"unsupported card image version {body.get('version')!r}")
    expected = body.pop("sha256", None)
    if not isinstance(expected, str):
        raise CardImageError("card image has no sha256 checksum")
    actual = hashlib.sha256(_canonical(body)).hexdigest()
    if not hmac.compare_digest(expected.lower(), actual):
        raise CardImageError("checksum mismatch: the image was edited or damaged")
    extra = set(body) - {"format", "version", "kind", "instances"}
    if extra:
        raise CardImageError(f"unknown fields {sorted(extra)}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise CardImageError(f"unknown card kind {kind!r}")
    raw_instances = body.get("instances")
    if not isinstance(raw_instances, list) or len(raw_instances) > INSTANCES_MAX:
        raise CardImageError("instances must be a list of at most 16 entries")
    instances = tuple(_instance(n, r, types) for n, r in enumerate(raw_instances))
    aids = [i.aid for i in instances]
    if len(set(aids)) != len(aids):
        raise CardImageError("two instances share one AID")
    for inst in instances:
        if inst.type_name not in KIND_APPLET_TYPES[kind]:
            raise CardImageError(f"a {kind} card cannot carry a {inst.type_name} applet")
    if sum(types[i.type_name].manages_content for i in instances) > 1:
        raise CardImageError("a card carries at most one issuer security domain")
    return CardImage(kind, instances)


def _instance(n: int, obj: Any, types: Mapping[str, AppletType]) -> Instance:
    where = f"instances[{n}]"
    if not isinstance(obj, dict) or set(obj) != {"aid", "type", "state"}:
        raise CardImageError(f"{where}: needs exactly aid, type, state")
    aid = hex_field(obj, "aid", where, lengths=range(5, 17))
    type_name = obj["type"]
    if type_name not in types:
        raise CardImageError(f"{where}: unknown applet type {type_name!r}")
    if not isinstance(obj["state"], dict):
        raise CardImageError(f"{where}.state: not an object")
    try:
        state = types[type_name].state_from_json(obj["state"])
    except CardImageError as exc:
        raise CardImageError(f"{where}.state.{exc}") from None
    except (AssertionError, ValueError) as exc:  # an invariant of the state itself
        raise CardImageError(f"{where}.state: inconsistent values ({exc or 'invariant'})") from None
    return Instance(aid, type_name, state)


# --- field validators for applet state codecs ------------------------------------------------


def hex_field(
    obj: Mapping[str, Any], name: str, where: str = "", *, lengths: Sequence[int]
) -> bytes:
    value = obj.get(name)
    prefix = f"{where}." if where else ""
    if not isinstance(value, str):
        raise CardImageError(f"{prefix}{name}: expected hex text")
    if not _HEX.fullmatch(value):
        raise CardImageError(f"{prefix}{name}: not hex")
    raw = bytes.fromhex(value)
    if len(raw) not in lengths:
        raise CardImageError(f"{prefix}{name}: {len(raw)} bytes is not a valid length")
    return raw


def int_field(obj: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CardImageError(f"{name}: expected an integer")
    if not low <= value <= high:
        raise CardImageError(f"{name}: {value} is outside {low}..{high}")
    return value


def exact_keys(
    obj: Mapping[str, Any], keys: set[str], optional: frozenset[str] = frozenset()
) -> None:
    """``obj`` has every key of ``keys``, may have those of ``optional``, and nothing else."""
    missing, extra = keys - set(obj), set(obj) - keys - optional
    if missing or extra:
        raise CardImageError(f"fields: missing {sorted(missing)}, unknown {sorted(extra)}")
