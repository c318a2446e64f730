"""Security parameters of secured packets (ETSI TS 102 225 §5.1, ota.md §2): the SPI, the KIc
and KID coding, one SCP80 key set's keys, the ciphers and checksums, the counter rule, the
minimum security level and the PoR status codes. Pure functions; key bytes never reach a message.

Supported: DES-CBC (single DES), 3DES two-key and three-key outer CBC, AES-CBC (zero ICV);
checksums DES / 3DES CBC-MAC (8 bytes), AES-CMAC (first 8 bytes), CRC-32 (4 bytes). Not
supported (the card answers PoR 06, the builder raises EncodeError): CRC-16 (ota.md names it
without pinning its variant), digital signatures (DS), DES-ECB, proprietary and reserved codings.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from paycore import crypto
from paycore.errors import BadKeyError, DecodeError, EncodeError

SPI_LEN = 2
COUNTER_LEN = 5
#: TS 102 225 §5.1.1: the counter is 5 bytes; at its maximum value it is blocked (status 04).
COUNTER_MAX = (1 << (8 * COUNTER_LEN)) - 1
CC_LEN = 8
CRC32_LEN = 4
KEY_VERSION_MAX = 0x0F


class PorStatus(IntEnum):
    """TS 102 225 §5.2.2 table 5 / TS 31.115 §7: the response status code of a PoR."""

    OK = 0x00
    RC_CC_DS_FAILED = 0x01
    COUNTER_LOW = 0x02
    COUNTER_HIGH = 0x03
    COUNTER_BLOCKED = 0x04
    CIPHERING_ERROR = 0x05
    UNIDENTIFIED_SECURITY_ERROR = 0x06
    INSUFFICIENT_MEMORY = 0x07
    MORE_TIME = 0x08
    TAR_UNKNOWN = 0x09
    INSUFFICIENT_SECURITY_LEVEL = 0x0A
    SMS_SUBMIT_TO_FOLLOW = 0x0B
    USSD_TO_FOLLOW = 0x0C


#: Statuses of a packet whose security processing failed: its PoR is sent unciphered and
#: unsigned (ota.md §2) and nothing of the packet is executed.
SECURITY_FAILURES = frozenset(
    {
        PorStatus.RC_CC_DS_FAILED,
        PorStatus.COUNTER_LOW,
        PorStatus.COUNTER_HIGH,
        PorStatus.COUNTER_BLOCKED,
        PorStatus.CIPHERING_ERROR,
        PorStatus.UNIDENTIFIED_SECURITY_ERROR,
        PorStatus.TAR_UNKNOWN,
        PorStatus.INSUFFICIENT_SECURITY_LEVEL,
    }
)


class Checksum(IntEnum):
    """SPI byte 1 b2b1 (and byte 2 b4b3 for the PoR): redundancy check, cryptographic checksum,
    digital signature. The order is the order of strength used by ``SecurityLevel``."""

    NONE = 0
    RC = 1
    CC = 2
    DS = 3


class CounterMode(IntEnum):
    """SPI byte 1 b5b4 (TS 102 225 §5.1.1)."""

    NONE = 0
    NO_CHECK = 1  # counter available, no replay or sequence checking
    HIGHER = 2  # process if the counter is higher than the stored one
    ONE_HIGHER = 3  # process if the counter is exactly one higher


class PorRequest(IntEnum):
    """SPI byte 2 b2b1."""

    NONE = 0
    ALWAYS = 1
    ON_ERROR = 2


@dataclass(frozen=True, slots=True)
class Spi:
    """The two SPI bytes (TS 102 225 §5.1.1, TS 31.115 §4.2). The default is our profile's
    16 09: ciphered, CC, counter must be higher; PoR always, with CC, not ciphered, returned as
    the ENVELOPE response."""

    checksum: Checksum = Checksum.CC
    ciphered: bool = True
    counter: CounterMode = CounterMode.HIGHER
    por: PorRequest = PorRequest.ALWAYS
    por_checksum: Checksum = Checksum.CC
    por_ciphered: bool = False
    por_by_sms_submit: bool = False

    def __post_init__(self) -> None:
        for name, kind in (
            ("checksum", Checksum),
            ("counter", CounterMode),
            ("por", PorRequest),
            ("por_checksum", Checksum),
        ):
            if not isinstance(getattr(self, name), kind):
                raise EncodeError(f"SPI {name} must be a {kind.__name__}")

    def encode(self) -> bytes:
        first = self.checksum | (0x04 if self.ciphered else 0) | (self.counter << 3)
        second = (
            self.por
            | (self.por_checksum << 2)
            | (0x10 if self.por_ciphered else 0)
            | (0x20 if self.por_by_sms_submit else 0)
        )
        return bytes((first, second))

    @classmethod
    def decode(cls, raw: bytes, offset: int = 0) -> Spi:
        """Decode SPI at ``raw[offset:offset+2]``; reserved bits set are a DecodeError."""
        if len(raw) < offset + SPI_LEN:
            raise DecodeError("SPI", len(raw), "needs 2 bytes")
        first, second = raw[offset], raw[offset + 1]
        # TS 102 225 §5.1.1: SPI byte 1 b8..b6 and byte 2 b8b7 are reserved for future use.
        if first & 0xE0:
            raise DecodeError("SPI", offset, f"byte 1 {first:02X} sets reserved bits b8..b6")
        if second & 0xC0:
            raise DecodeError("SPI", offset + 1, f"byte 2 {second:02X} sets reserved bits b8b7")
        if second & 0x03 == 0x03:
            raise DecodeError("SPI", offset + 1, "PoR request b2b1 = 11 is reserved")
        return cls(
            checksum=Checksum(first & 0x03),
            ciphered=bool(first & 0x04),
            counter=CounterMode((first >> 3) & 0x03),
            por=PorRequest(second & 0x03),
            por_checksum=Checksum((second >> 2) & 0x03),
            por_ciphered=bool(second & 0x10),
            por_by_sms_submit=bool(second & 0x20),
        )


#: ota.md §2: the server's default SPI 16 09, and 16 39 (PoR ciphered, by SMS-SUBMIT).
SPI_DEFAULT = Spi()
SPI_POR_BY_SMS = Spi(por_ciphered=True, por_by_sms_submit=True)


@dataclass(frozen=True, slots=True)
class SecurityLevel:
    """The minimum security an application demands of packets for its TAR (TS 102 226
    §8.2.1.3.2.4.2, our profile in ota.md §2). Each field is a floor on the matching SPI field."""

    ciphered: bool
    checksum: Checksum
    counter: CounterMode

    def allows(self, spi: Spi) -> bool:
        return (
            (spi.ciphered or not self.ciphered)
            and spi.checksum >= self.checksum
            and spi.counter >= self.counter
        )


#: ota.md §2: TAR 000000 (the ISD) needs SPI byte 1 >= 16: ciphering + CC + counter higher.
ISD_MINIMUM_LEVEL = SecurityLevel(ciphered=True, checksum=Checksum.CC, counter=CounterMode.HIGHER)
NO_MINIMUM_LEVEL = SecurityLevel(ciphered=False, checksum=Checksum.NONE, counter=CounterMode.NONE)


# --- keys and algorithms ----------------------------------------------------------------------


class KeyFamily(Enum):
    """What kind of keys an SCP80 key set holds (ota.md §1: a DES set or an AES set)."""

    DES = "des"
    AES = "aes"


_KEY_LENGTHS = {KeyFamily.DES: (8, 16, 24), KeyFamily.AES: (16, 24, 32)}


@dataclass(frozen=True, slots=True)
class OtaKeys:
    """Key 1 (KIc) and key 2 (KID) of one SCP80 key set. The repr never shows key bytes."""

    family: KeyFamily
    kic: bytes = field(repr=False)
    kid: bytes = field(repr=False)

    def __post_init__(self) -> None:
        allowed = _KEY_LENGTHS[self.family]
        for name in ("kic", "kid"):
            length = len(getattr(self, name))
            if length not in allowed:
                raise BadKeyError(
                    f"{self.family.value} {name.upper()} must be {allowed} bytes, got {length}"
                )


class Cipher(Enum):
    """TS 102 225 §5.1.2 (KIc): the ciphering algorithms we implement; all CBC, zero ICV."""

    DES_CBC = "DES-CBC"
    TDES_2KEY = "3DES-CBC-2KEY"
    TDES_3KEY = "3DES-CBC-3KEY"
    AES_CBC = "AES-CBC"

    @property
    def block_size(self) -> int:
        return crypto.AES_BLOCK if self is Cipher.AES_CBC else crypto.DES_BLOCK

    @property
    def family(self) -> KeyFamily:
        return KeyFamily.AES if self is Cipher.AES_CBC else KeyFamily.DES


class ChecksumAlgorithm(Enum):
    """TS 102 225 §5.1.3: the checksum algorithms we implement."""

    CRC32 = "CRC-32"
    DES_MAC = "DES-CBC-MAC"
    TDES_2KEY_MAC = "3DES-CBC-MAC-2KEY"
    TDES_3KEY_MAC = "3DES-CBC-MAC-3KEY"
    AES_CMAC = "AES-CMAC"

    @property
    def length(self) -> int:
        return CRC32_LEN if self is ChecksumAlgorithm.CRC32 else CC_LEN


_DES_MODES = {0x00: Cipher.DES_CBC, 0x04: Cipher.TDES_2KEY, 0x08: Cipher.TDES_3KEY}
_DES_KEY_LEN = {Cipher.DES_CBC: 8, Cipher.TDES_2KEY: 16, Cipher.TDES_3KEY: 24}
_IMPLICIT_DES = {8: Cipher.DES_CBC, 16: Cipher.TDES_2KEY, 24: Cipher.TDES_3KEY}
_MAC_OF = {
    Cipher.DES_CBC: ChecksumAlgorithm.DES_MAC,
    Cipher.TDES_2KEY: ChecksumAlgorithm.TDES_2KEY_MAC,
    Cipher.TDES_3KEY: ChecksumAlgorithm.TDES_3KEY_MAC,
    Cipher.AES_CBC: ChecksumAlgorithm.AES_CMAC,
}
#: TS 102 225 §5.1.3.2: KID b4..b1 of a redundancy check; 0101 = CRC-32 (0001 CRC-16: unsupported).
KID_RC_CRC32 = 0x05


def key_version(kic_or_kid: int) -> int:
    """TS 102 225 §5.1.2/§5.1.3: b8..b5 of KIc/KID name the key set (SCP80 key version)."""
    return (kic_or_kid >> 4) & 0x0F


def _block_algorithm(coding: int, key: bytes, family: KeyFamily) -> Cipher | None:
    """KIc and KID (CC) share the coding: b2b1 00 implicit, 01 DES, 10 AES, 11 proprietary;
    for DES b4b3 00 DES-CBC, 01 3DES 2-key, 10 3DES 3-key, 11 DES-ECB; for AES b4b3 00."""
    kind, mode = coding & 0x03, coding & 0x0C
    if kind == 0x00:  # implicit: the algorithm of the key set
        if family is KeyFamily.AES:
            return Cipher.AES_CBC
        return _IMPLICIT_DES.get(len(key))
    if kind == 0x01 and family is KeyFamily.DES:
        cipher = _DES_MODES.get(mode)
        if cipher is None or _DES_KEY_LEN[cipher] != len(key):
            return None
        return cipher
    if kind == 0x02 and family is KeyFamily.AES and mode == 0x00:
        return Cipher.AES_CBC
    return None


def cipher_for(kic: int, keys: OtaKeys) -> Cipher | None:
    """The cipher KIc names for this key set, or None when it is unsupported or does not match
    the keys (an AES KIc for a DES set, 3-key 3DES for a 16-byte key ...)."""
    return _block_algorithm(kic, keys.kic, keys.family)


def checksum_for(kind: Checksum, kid: int, keys: OtaKeys | None) -> ChecksumAlgorithm | None:
    """The checksum algorithm of SPI b2b1 and KID, or None when unsupported / keys missing.
    ``kind`` must not be NONE."""
    if kind is Checksum.RC:
        return ChecksumAlgorithm.CRC32 if kid & 0x0F == KID_RC_CRC32 else None
    if kind is Checksum.CC and keys is not None:
        cipher = _block_algorithm(kid, keys.kid, keys.family)
        return None if cipher is None else _MAC_OF[cipher]
    return None


def checksum_length(kind: Checksum, kid: int) -> int | None:
    """Length of RC/CC/DS as SPI and KID announce it (the CHL check), None when unknown."""
    if kind is Checksum.NONE:
        return 0
    if kind is Checksum.CC:
        return CC_LEN
    if kind is Checksum.RC and kid & 0x0F == KID_RC_CRC32:
        return CRC32_LEN
    return None


def encrypt(cipher: Cipher, key: bytes, data: bytes) -> bytes:
    """CBC with a zero ICV; ``data`` is already padded to the block size."""
    if cipher is Cipher.AES_CBC:
        return crypto.aes_cbc_encrypt(key, data)
    return crypto.des_cbc_encrypt(key, data)


def decrypt(cipher: Cipher, key: bytes, data: bytes) -> bytes:
    if cipher is Cipher.AES_CBC:
        return crypto.aes_cbc_decrypt(key, data)
    return crypto.des_cbc_decrypt(key, data)


def compute_checksum(algorithm: ChecksumAlgorithm, key: bytes, data: bytes) -> bytes:
    """TS 102 225 §5.1.3: the RC/CC over ``data``.

    DES/3DES: CBC-MAC with zero ICV over the data zero-padded to 8 bytes, the last block (the
    padding is not sent: ota.md §2). AES: CMAC (SP 800-38B, its own padding), first 8 bytes.
    CRC-32: zlib.crc32 (ISO/IEC 13239), 4 bytes big-endian.
    """
    if algorithm is ChecksumAlgorithm.CRC32:
        return (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(CRC32_LEN, "big")
    if algorithm is ChecksumAlgorithm.AES_CMAC:
        return crypto.aes_cmac(key, data)[:CC_LEN]
    padded = data + bytes(-len(data) % crypto.DES_BLOCK)
    return crypto.des_cbc_encrypt(key, padded)[-crypto.DES_BLOCK :]


def checksum_matches(algorithm: ChecksumAlgorithm, key: bytes, data: bytes, got: bytes) -> bool:
    return crypto.mac_equal(compute_checksum(algorithm, key, data), got)


# --- the counter rule ------------------------------------------------------------------------


def check_counter(spi: Spi, stored: int, received: int) -> PorStatus:
    """TS 102 225 §5.1.1 and §5.2.2: the replay rule for a packet whose checksum verified.

    ``stored`` is the counter the card keeps for the key set; ``received`` the packet's CNTR.
    Returns OK, COUNTER_LOW (replayed or lower), COUNTER_HIGH (a gap in "exactly one higher"
    mode) or COUNTER_BLOCKED (the stored counter reached its maximum).
    """
    if not 0 <= stored <= COUNTER_MAX or not 0 <= received <= COUNTER_MAX:
        raise ValueError("counters are 5-byte unsigned values")
    if spi.counter in (CounterMode.NONE, CounterMode.NO_CHECK):
        return PorStatus.OK
    # TS 102 225 §5.1.1: once the counter has reached its maximum value the key set is blocked.
    if stored == COUNTER_MAX:
        return PorStatus.COUNTER_BLOCKED
    # TS 102 225 §5.1.1: "process if and only if counter value is higher than the value in RE".
    if received <= stored:
        return PorStatus.COUNTER_LOW
    # TS 102 225 §5.1.1: "... if and only if counter value is one higher than the value in RE".
    if spi.counter is CounterMode.ONE_HIGHER and received != stored + 1:
        return PorStatus.COUNTER_HIGH
    return PorStatus.OK


def counter_after(spi: Spi, stored: int, received: int) -> int:
    """The counter to store once a packet is accepted: the received one when the SPI asks for
    a checked counter, else the stored one unchanged (our choice: an unchecked counter never
    moves the stored value, so it cannot lower it)."""
    if spi.counter in (CounterMode.HIGHER, CounterMode.ONE_HIGHER):
        return received
    return stored
