"""A SIM in the registry (ota.md §3): ICCID, IMSI, MSISDN and its SCP80 key set (TS 102 225
key version, algorithm, KIc, KID, DEK) with the last counter used. Keys never appear in a repr."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from ota.domain.errors import InvalidRecordError
from paycore.gp.dek import Dek
from paycore.ota.packet import PorSecurity
from paycore.ota.security import COUNTER_MAX, KEY_VERSION_MAX, KeyFamily, OtaKeys, Spi

Scp80Algorithm = Literal["aes", "3des"]
ALGORITHMS: Final = ("aes", "3des")
_ICCID = re.compile(r"[0-9]{18,20}")  # ITU-T E.118: up to 20 digits (our Ef16 holds 20)
_IMSI = re.compile(r"[0-9]{6,15}")
_MSISDN = re.compile(r"[0-9]{0,15}")
_KEY_LENGTHS: Final = {"aes": (16, 24, 32), "3des": (16, 24)}


@dataclass(frozen=True, slots=True)
class Scp80KeySet:
    """One SCP80 key set: key 1 KIc, key 2 KID, key 3 DEK (ota.md §1)."""

    version: int
    algorithm: Scp80Algorithm
    kic: bytes = field(repr=False)
    kid: bytes = field(repr=False)
    dek: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.version <= KEY_VERSION_MAX:
            raise InvalidRecordError(f"SCP80 key version must be 1..{KEY_VERSION_MAX}")
        if self.algorithm not in ALGORITHMS:
            raise InvalidRecordError(f"SCP80 algorithm must be one of {', '.join(ALGORITHMS)}")
        lengths = _KEY_LENGTHS[self.algorithm]
        for name in ("kic", "kid", "dek"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) not in lengths:
                raise InvalidRecordError(
                    f"{name.upper()} must be {'/'.join(map(str, lengths))} bytes for "
                    f"{self.algorithm}"
                )

    @property
    def coding(self) -> int:
        """KIc = KID byte (TS 102 225 §5.1.2): b8..b5 key version; AES x2, 3DES 2-key x5,
        3-key x9."""
        three_key = 0x09 if len(self.kic) == 24 else 0x05
        low = 0x02 if self.algorithm == "aes" else three_key
        return self.version << 4 | low

    def ota_keys(self) -> OtaKeys:
        family = KeyFamily.AES if self.algorithm == "aes" else KeyFamily.DES
        return OtaKeys(family, self.kic, self.kid)

    def data_key(self) -> Dek:
        """The DEK of the set in the set's algorithm (ota.md §1: AES-CBC zero IV / 3DES-ECB)."""
        return Dek("aes-cbc" if self.algorithm == "aes" else "3des-ecb", self.dek)

    def por_security(self, spi: Spi) -> PorSecurity:
        return PorSecurity.for_command(spi, self.coding, self.coding, self.ota_keys())


@dataclass(frozen=True, slots=True)
class SimRecord:
    """A SIM the server may reach. ``counter_last`` is the last SCP80 counter reserved for its
    key set (a reserved counter is spent whether or not its packet arrived)."""

    iccid: str
    imsi: str
    msisdn: str
    keys: Scp80KeySet = field(repr=False)
    counter_last: int = 0
    asn: bytes | None = None  # assigned by the server at the first personalisation

    def __post_init__(self) -> None:
        if _ICCID.fullmatch(self.iccid) is None:
            raise InvalidRecordError("ICCID must be 18 to 20 digits")
        if _IMSI.fullmatch(self.imsi) is None:
            raise InvalidRecordError("IMSI must be 6 to 15 digits")
        if _MSISDN.fullmatch(self.msisdn) is None:
            raise InvalidRecordError("MSISDN must be up to 15 digits")
        if not 0 <= self.counter_last <= COUNTER_MAX:
            raise InvalidRecordError(f"counter must be 0..{COUNTER_MAX}")
        if self.asn is not None and len(self.asn) != 8:
            raise InvalidRecordError("ASN must be 8 bytes (16 BCD digits)")


def next_counter(counter_last: int) -> int:
    """The counter after ``counter_last`` (TS 102 225 §5.1.1: the card wants it higher)."""
    if counter_last >= COUNTER_MAX:
        raise InvalidRecordError("the SCP80 counter of this key set is exhausted")
    return counter_last + 1
