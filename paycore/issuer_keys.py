"""The issuer key file of card.md §6 (test keys in the clear, for simulations and test benches):
``{"key_version": 1, "mpk": HEX32, "mlk": HEX32, "mtk": HEX32, "issuer_factor": HEX16 | null}``.
This module only turns the JSON text into a value and back; the file mode (0600) is the
writer's job. Keys never appear in ``repr`` or in error messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from paycore.errors import DecodeError

_FIELDS = {"key_version", "mpk", "mlk", "mtk", "issuer_factor"}


@dataclass(frozen=True, slots=True)
class IssuerKeys:
    key_version: int
    mpk: bytes = field(repr=False)  # purchase master key
    mlk: bytes = field(repr=False)  # load master key
    mtk: bytes = field(repr=False)  # TAC master key
    issuer_factor: bytes | None = field(default=None, repr=False)

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "key_version": self.key_version,
                    "mpk": self.mpk.hex().upper(),
                    "mlk": self.mlk.hex().upper(),
                    "mtk": self.mtk.hex().upper(),
                    "issuer_factor": (
                        self.issuer_factor.hex().upper() if self.issuer_factor is not None else None
                    ),
                },
                indent=1,
            )
            + "\n"
        )


def generate(random_bytes: Any, key_version: int = 1, *, two_level: bool = False) -> IssuerKeys:
    """New random test keys; ``random_bytes(n)`` is the caller's random source."""
    return IssuerKeys(
        key_version,
        random_bytes(16),
        random_bytes(16),
        random_bytes(16),
        random_bytes(8) if two_level else None,
    )


def parse(text: str) -> IssuerKeys:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError("issuer key file", exc.pos, "not valid JSON") from None
    if not isinstance(obj, dict):
        raise DecodeError("issuer key file", 0, "not a JSON object")
    missing, extra = _FIELDS - set(obj), set(obj) - _FIELDS
    if missing or extra:
        raise DecodeError(
            "issuer key file", 0, f"missing fields {sorted(missing)}, unknown {sorted(extra)}"
        )
    version = obj["key_version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= 0xFF:
        raise DecodeError("issuer key file", 0, "key_version must be an integer 0..255")
    factor = obj["issuer_factor"]
    return IssuerKeys(
        version,
        _key(obj, "mpk", 16),
        _key(obj, "mlk", 16),
        _key(obj, "mtk", 16),
        None if factor is None else _key(obj, "issuer_factor", 8),
    )


def _key(obj: dict[str, Any], name: str, length: int) -> bytes:
    value = obj[name]
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != length:
        raise DecodeError("issuer key file", 0, f"{name} must be {2 * length} hex digits")
    return raw
