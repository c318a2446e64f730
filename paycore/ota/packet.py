"""The secured command packet and the proof of receipt (ETSI TS 102 225 §5.1-5.2, SMS framing
of 3GPP TS 31.115 §4; ota.md §2). Pure: bytes in, frozen dataclasses out, and back.

Command packet (what ``encode_command`` returns and ``decode_command`` reads; the SMS user data
header 02 70 00 in front of it is the SMS layer's, see ``command_user_data``)::

    CPL(2) | CHL(1) | SPI(2) | KIc | KID | TAR(3) | CNTR(5) | PCNTR | RC/CC/DS | data | padding
                                                  \\______ ciphered when SPI1 b3 = 1 ______/

PoR (what ``encode_por`` returns and ``decode_por`` reads: the whole TP-UD, header included,
because the PoR checksum covers the 02 71 00 bytes)::

    02 71 00 | RPL(2) | RHL(1) | TAR(3) | CNTR(5) | PCNTR | status | RC/CC/DS | data | padding
                                         \\________ ciphered when SPI2 b5 = 1 ________/
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paycore.errors import DecodeError, EncodeError
from paycore.ota.security import (
    COUNTER_LEN,
    COUNTER_MAX,
    SECURITY_FAILURES,
    Checksum,
    ChecksumAlgorithm,
    Cipher,
    OtaKeys,
    PorStatus,
    Spi,
    checksum_for,
    checksum_length,
    cipher_for,
    compute_checksum,
    decrypt,
    encrypt,
    key_version,
)
from paycore.ota.security import checksum_matches as _checksum_matches

#: TS 31.115 §4.2: UDHL 02, IEI 70 (command packet identifier), IEDL 00.
COMMAND_UDH = bytes.fromhex("027000")
#: TS 31.115 §4.4: UDHL 02, IEI 71 (response packet identifier), IEDL 00.
POR_UDH = bytes.fromhex("027100")
TAR_LEN = 3
#: TS 102 225 §5.1: CHL counts SPI(2) KIc KID TAR(3) CNTR(5) PCNTR = 13 plus RC/CC/DS.
COMMAND_HEADER_BASE = 13
#: TS 102 225 §5.2.1 (TS 31.115 §4.4): RHL counts TAR(3) CNTR(5) PCNTR status = 10 plus RC/CC/DS.
POR_HEADER_BASE = 10
CHECKSUM_LEN_MAX = 16
#: Our limit on a command packet (CPL to the end): 16 concatenated SMS hold 2,142 bytes.
COMMAND_PACKET_LEN_MAX = 2048
#: Our limit on PoR data: a compact response (3 bytes) with up to 256 bytes of response data,
#: with room to spare; the PoR user data stays under 320 bytes.
POR_DATA_LEN_MAX = 280
POR_USER_DATA_LEN_MAX = 320
_COUNTER_PCNTR_LEN = COUNTER_LEN + 1


@dataclass(frozen=True, slots=True)
class CommandPacket:
    """A received command packet, framing checked, security not yet: the clear header and
    ``body`` (CNTR to the end, ciphered or not; never shown in a repr)."""

    spi: Spi
    kic: int
    kid: int
    tar: bytes
    #: The RC/CC/DS length that CHL announces (CHL - 13).
    checksum_length: int
    body: bytes = field(repr=False)

    @property
    def chl(self) -> int:
        return COMMAND_HEADER_BASE + self.checksum_length

    def clear_header(self) -> bytes:
        """CPL | CHL | SPI | KIc | KID | TAR: the first part of the checksummed bytes."""
        cpl = 1 + 7 + len(self.body)  # CHL, SPI(2) KIc KID TAR(3), then CNTR to the end
        return (
            cpl.to_bytes(2, "big")
            + bytes((self.chl,))
            + self.spi.encode()
            + bytes((self.kic, self.kid))
            + self.tar
        )


@dataclass(frozen=True, slots=True)
class VerifiedCommand:
    """A command packet whose ciphering and checksum checked out (the counter rule is the
    caller's: ``security.check_counter``). ``data`` is the secured data without padding."""

    spi: Spi
    kic: int
    kid: int
    tar: bytes
    counter: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RefusedCommand:
    """A command packet refused by security processing: the PoR status and why."""

    status: PorStatus
    reason: str


def command_user_data(packet: bytes) -> bytes:
    """TS 31.115 §4.2: the TP-UD of a single-SMS command packet: 02 70 00 then the packet."""
    return COMMAND_UDH + packet


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"{name} must be one byte, got {value}")


def _check_tar_counter(tar: bytes, counter: int) -> None:
    if len(tar) != TAR_LEN:
        raise EncodeError(f"TAR must be 3 bytes, got {len(tar)}")
    if not 0 <= counter <= COUNTER_MAX:
        raise EncodeError(f"counter {counter} is not a 5-byte unsigned value")


def _security_for_encode(
    checksum: Checksum, ciphered: bool, kic: int, kid: int, keys: OtaKeys | None, what: str
) -> tuple[Cipher | None, ChecksumAlgorithm | None]:
    cipher: Cipher | None = None
    if ciphered:
        if keys is None:
            raise EncodeError(f"{what}: ciphering needs keys")
        cipher = cipher_for(kic, keys)
        if cipher is None:
            raise EncodeError(f"{what}: KIc {kic:02X} is unsupported or does not fit the keys")
    algorithm: ChecksumAlgorithm | None = None
    if checksum is not Checksum.NONE:
        algorithm = checksum_for(checksum, kid, keys)
        if algorithm is None:
            raise EncodeError(
                f"{what}: {checksum.name} with KID {kid:02X} is unsupported or has no keys"
            )
    return cipher, algorithm


def _mac_key(algorithm: ChecksumAlgorithm, keys: OtaKeys | None) -> bytes:
    if algorithm is ChecksumAlgorithm.CRC32:
        return b""
    assert keys is not None, "a cryptographic checksum is only resolved with keys"
    return keys.kid


# --- the command packet ----------------------------------------------------------------------


def encode_command(
    *,
    spi: Spi,
    kic: int,
    kid: int,
    tar: bytes,
    counter: int,
    data: bytes,
    keys: OtaKeys | None,
) -> bytes:
    """Build a command packet (server side), from CPL to the end.

    TS 102 225 §5.1: padding (zero bytes, PCNTR = their number) brings CNTR..data to the block
    size when ciphered; unciphered packets carry no padding (ota.md §2). The checksum covers
    CPL..PCNTR, data and padding (not the 02 70 00 header; not the RC/CC/DS field itself).
    """
    _check_byte("KIc", kic)
    _check_byte("KID", kid)
    _check_tar_counter(tar, counter)
    cipher, algorithm = _security_for_encode(spi.checksum, spi.ciphered, kic, kid, keys, "command")
    n = 0 if algorithm is None else algorithm.length
    pad = 0
    if cipher is not None:
        pad = -(_COUNTER_PCNTR_LEN + n + len(data)) % cipher.block_size
    chl = COMMAND_HEADER_BASE + n
    cpl = 1 + chl + len(data) + pad
    if 2 + cpl > COMMAND_PACKET_LEN_MAX:
        raise EncodeError(
            f"command packet of {2 + cpl} bytes is over the {COMMAND_PACKET_LEN_MAX} limit"
        )
    header = cpl.to_bytes(2, "big") + bytes((chl,)) + spi.encode() + bytes((kic, kid)) + tar
    counter_pcntr = counter.to_bytes(COUNTER_LEN, "big") + bytes((pad,))
    padding = bytes(pad)
    checksum = b""
    if algorithm is not None:
        checksum = compute_checksum(
            algorithm, _mac_key(algorithm, keys), header + counter_pcntr + data + padding
        )
    secured = counter_pcntr + checksum + data + padding
    if cipher is not None:
        assert keys is not None
        secured = encrypt(cipher, keys.kic, secured)
    return header + secured


def decode_command(packet: bytes) -> CommandPacket:
    """Check a command packet's framing (card side): CPL, CHL against SPI/KID, the header.

    Raises DecodeError naming the field and offset. Security is ``verify_command``'s job.
    """
    n = len(packet)
    if n > COMMAND_PACKET_LEN_MAX:
        raise DecodeError("command packet", COMMAND_PACKET_LEN_MAX, f"{n} bytes is over the limit")
    if n < 2:
        raise DecodeError("CPL", n, "needs 2 bytes")
    cpl = int.from_bytes(packet[0:2], "big")
    if cpl != n - 2:
        raise DecodeError("CPL", 0, f"says {cpl} bytes follow, {n - 2} do")
    if n < 3:
        raise DecodeError("CHL", n, "missing")
    chl = packet[2]
    if chl < COMMAND_HEADER_BASE:
        raise DecodeError("CHL", 2, f"{chl} is under 13")
    if chl - COMMAND_HEADER_BASE > CHECKSUM_LEN_MAX:
        raise DecodeError("CHL", 2, f"{chl} announces over {CHECKSUM_LEN_MAX} checksum bytes")
    if 3 + chl > n:
        raise DecodeError("CHL", 2, f"header of {chl} bytes runs past the end")
    spi = Spi.decode(packet, 3)
    kic, kid = packet[5], packet[6]
    tar = bytes(packet[7:10])
    checksum_len = chl - COMMAND_HEADER_BASE
    expected = checksum_length(spi.checksum, kid)
    # TS 102 225 §5.1: CHL = 13 + length of RC/CC/DS, as SPI and KID define it.
    if expected is not None and expected != checksum_len:
        raise DecodeError(
            "CHL", 2, f"{chl} does not fit SPI/KID (their RC/CC/DS is {expected} bytes)"
        )
    return CommandPacket(spi, kic, kid, tar, checksum_len, bytes(packet[10:]))


def verify_command(packet: CommandPacket, keys: OtaKeys | None) -> VerifiedCommand | RefusedCommand:
    """Card side, in the order of ota.md §2: decrypt, then verify the checksum. ``keys`` are
    the key set named by KIc/KID (None when the card holds no such key set)."""
    spi = packet.spi
    body = packet.body
    if spi.ciphered:
        # TS 102 225 §5.1.2: KIc names the algorithm and the key set.
        cipher = None if keys is None else cipher_for(packet.kic, keys)
        if cipher is None or keys is None:
            return RefusedCommand(
                PorStatus.UNIDENTIFIED_SECURITY_ERROR,
                f"no key set {key_version(packet.kic)} or unsupported KIc {packet.kic:02X}",
            )
        if not body or len(body) % cipher.block_size:
            return RefusedCommand(
                PorStatus.CIPHERING_ERROR,
                f"ciphered part of {len(body)} bytes is not whole {cipher.block_size}-byte blocks",
            )
        body = decrypt(cipher, keys.kic, body)
    n = packet.checksum_length
    if len(body) < _COUNTER_PCNTR_LEN + n:
        status = PorStatus.CIPHERING_ERROR if spi.ciphered else PorStatus.RC_CC_DS_FAILED
        return RefusedCommand(status, "secured part is shorter than CNTR, PCNTR and RC/CC/DS")
    counter_pcntr = body[:_COUNTER_PCNTR_LEN]
    received = body[_COUNTER_PCNTR_LEN : _COUNTER_PCNTR_LEN + n]
    rest = body[_COUNTER_PCNTR_LEN + n :]
    if spi.checksum is not Checksum.NONE:
        algorithm = checksum_for(spi.checksum, packet.kid, keys)
        if algorithm is None:
            return RefusedCommand(
                PorStatus.UNIDENTIFIED_SECURITY_ERROR,
                f"no key set or unsupported {spi.checksum.name} KID {packet.kid:02X}",
            )
        # TS 102 225 §5.1.3: the checksum covers CPL..PCNTR, the data and the padding.
        covered = packet.clear_header() + counter_pcntr + rest
        if not _checksum_matches(algorithm, _mac_key(algorithm, keys), covered, received):
            return RefusedCommand(PorStatus.RC_CC_DS_FAILED, f"{algorithm.value} does not match")
    pcntr = counter_pcntr[COUNTER_LEN]
    if pcntr > len(rest):
        return RefusedCommand(
            PorStatus.CIPHERING_ERROR, f"PCNTR {pcntr} is over the {len(rest)} bytes of data"
        )
    return VerifiedCommand(
        spi=spi,
        kic=packet.kic,
        kid=packet.kid,
        tar=packet.tar,
        counter=int.from_bytes(counter_pcntr[:COUNTER_LEN], "big"),
        data=bytes(rest[: len(rest) - pcntr]),
    )


# --- the proof of receipt --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PorSecurity:
    """How a PoR is secured (SPI byte 2 b4b3, b5 of the command; the command's KIc/KID and
    key set). ``PLAIN_POR`` is the unciphered, unsigned form of a refused packet."""

    checksum: Checksum
    ciphered: bool
    kic: int
    kid: int
    keys: OtaKeys | None = field(repr=False)

    @classmethod
    def for_command(cls, spi: Spi, kic: int, kid: int, keys: OtaKeys | None) -> PorSecurity:
        return cls(spi.por_checksum, spi.por_ciphered, kic, kid, keys)

    @property
    def plain(self) -> bool:
        return self.checksum is Checksum.NONE and not self.ciphered

    def supported(self) -> bool:
        """Whether a PoR can be secured this way with these keys (checked before executing)."""
        try:
            _security_for_encode(self.checksum, self.ciphered, self.kic, self.kid, self.keys, "PoR")
        except EncodeError:
            return False
        return self.checksum is not Checksum.DS


PLAIN_POR = PorSecurity(Checksum.NONE, False, 0, 0, None)


@dataclass(frozen=True, slots=True)
class Por:
    """A decoded proof of receipt. ``secured`` says whether it carried a checksum or ciphering
    (False for a PoR asked for in the clear, and for the plain PoR of a refused packet)."""

    tar: bytes
    counter: int
    status: PorStatus
    data: bytes
    secured: bool


class PorCheckError(DecodeError):
    """A PoR whose checksum does not verify, or an unsecured PoR claiming success where a
    secured one was asked for (a DecodeError: the bytes are not a valid PoR for these keys)."""


def encode_por(
    *, tar: bytes, counter: int, status: PorStatus, data: bytes, security: PorSecurity
) -> bytes:
    """Build a PoR (card side): the whole TP-UD, 02 71 00 first.

    TS 102 225 §5.2.1 / TS 31.115 §4.4: RPL counts everything after itself, RHL = 10 + RC/CC/DS
    length; the checksum covers 02 71 00, RPL..status, the data and the padding; a ciphered PoR
    covers CNTR to the end, padded like a command (zero bytes, PCNTR = their number).
    """
    _check_tar_counter(tar, counter)
    if len(data) > POR_DATA_LEN_MAX:
        raise EncodeError(f"PoR data of {len(data)} bytes is over the {POR_DATA_LEN_MAX} limit")
    if security.checksum is Checksum.DS:
        raise EncodeError("PoR: digital signatures are not supported")
    cipher, algorithm = _security_for_encode(
        security.checksum, security.ciphered, security.kic, security.kid, security.keys, "PoR"
    )
    n = 0 if algorithm is None else algorithm.length
    pad = 0
    if cipher is not None:
        pad = -(_COUNTER_PCNTR_LEN + 1 + n + len(data)) % cipher.block_size
    rhl = POR_HEADER_BASE + n
    rpl = 1 + rhl + len(data) + pad
    head = rpl.to_bytes(2, "big") + bytes((rhl,)) + tar
    counter_to_status = counter.to_bytes(COUNTER_LEN, "big") + bytes((pad, status))
    padding = bytes(pad)
    checksum = b""
    if algorithm is not None:
        checksum = compute_checksum(
            algorithm,
            _mac_key(algorithm, security.keys),
            POR_UDH + head + counter_to_status + data + padding,
        )
    secured = counter_to_status + checksum + data + padding
    if cipher is not None:
        assert security.keys is not None
        secured = encrypt(cipher, security.keys.kic, secured)
    out = POR_UDH + head + secured
    assert len(out) <= POR_USER_DATA_LEN_MAX
    return out


def _por_status(value: int, offset: int) -> PorStatus:
    try:
        return PorStatus(value)
    except ValueError:
        raise DecodeError("PoR status", offset, f"{value:02X} is reserved") from None


def decode_por(user_data: bytes, security: PorSecurity) -> Por:
    """Decode and verify a PoR (server side) given how the command asked for it to be secured.

    An unciphered, unsigned PoR (RHL 10, no data) is accepted in place of a secured one only
    when its status is a security failure: a refused packet's PoR (ota.md §2). Raises
    DecodeError (framing) or PorCheckError (checksum, or an unsecured claim of success).
    """
    n = len(user_data)
    if n > POR_USER_DATA_LEN_MAX:
        raise DecodeError("PoR", POR_USER_DATA_LEN_MAX, f"{n} bytes is over the limit")
    if user_data[:3] != POR_UDH:
        raise DecodeError("PoR UDH", 0, "must start 02 71 00 (response packet identifier)")
    if n < 5:
        raise DecodeError("RPL", n, "needs 2 bytes")
    rpl = int.from_bytes(user_data[3:5], "big")
    if rpl != n - 5:
        raise DecodeError("RPL", 3, f"says {rpl} bytes follow, {n - 5} do")
    if n < 9:
        raise DecodeError("RHL", n, "RHL and TAR missing")
    rhl = user_data[5]
    if rhl < POR_HEADER_BASE or rhl - POR_HEADER_BASE > CHECKSUM_LEN_MAX:
        raise DecodeError("RHL", 5, f"{rhl} is not 10 plus a checksum length")
    if 6 + rhl > n:
        raise DecodeError("RHL", 5, f"header of {rhl} bytes runs past the end")
    tar = bytes(user_data[6:9])
    body = user_data[9:]
    plain_form = rhl == POR_HEADER_BASE and rpl == 1 + POR_HEADER_BASE
    if security.plain or plain_form:
        if rhl != POR_HEADER_BASE:
            raise DecodeError("RHL", 5, f"{rhl} announces a checksum this PoR does not carry")
        status = _por_status(body[6], 15)
        if not security.plain and status not in SECURITY_FAILURES:
            raise PorCheckError("PoR", 15, f"unsecured PoR reports {status.name}, not a refusal")
        pcntr = body[5]
        rest = body[7:]
        if pcntr > len(rest):
            raise DecodeError("PCNTR", 14, f"{pcntr} is over the {len(rest)} bytes of data")
        return Por(
            tar,
            int.from_bytes(body[:COUNTER_LEN], "big"),
            status,
            bytes(rest[: len(rest) - pcntr]),
            secured=False,
        )
    cipher, algorithm = _security_for_decode(security)
    expected_n = 0 if algorithm is None else algorithm.length
    if rhl != POR_HEADER_BASE + expected_n:
        raise DecodeError("RHL", 5, f"{rhl} does not fit the {expected_n}-byte PoR checksum")
    if cipher is not None:
        assert security.keys is not None
        if not body or len(body) % cipher.block_size:
            raise DecodeError("PoR", 9, f"ciphered part of {len(body)} bytes is not whole blocks")
        body = decrypt(cipher, security.keys.kic, body)
    if len(body) < _COUNTER_PCNTR_LEN + 1 + expected_n:
        raise DecodeError("PoR", n, "CNTR, PCNTR, status and checksum do not fit")
    counter_to_status = body[: _COUNTER_PCNTR_LEN + 1]
    received = body[_COUNTER_PCNTR_LEN + 1 : _COUNTER_PCNTR_LEN + 1 + expected_n]
    rest = body[_COUNTER_PCNTR_LEN + 1 + expected_n :]
    if algorithm is not None:
        covered = bytes(user_data[:9]) + counter_to_status + rest
        if not _checksum_matches(algorithm, _mac_key(algorithm, security.keys), covered, received):
            raise PorCheckError("PoR checksum", 16, f"{algorithm.value} does not match")
    status = _por_status(counter_to_status[6], 15)
    pcntr = counter_to_status[5]
    if pcntr > len(rest):
        raise DecodeError("PCNTR", 14, f"{pcntr} is over the {len(rest)} bytes of data")
    return Por(
        tar,
        int.from_bytes(counter_to_status[:COUNTER_LEN], "big"),
        status,
        bytes(rest[: len(rest) - pcntr]),
        secured=True,
    )


def _security_for_decode(security: PorSecurity) -> tuple[Cipher | None, ChecksumAlgorithm | None]:
    try:
        return _security_for_encode(
            security.checksum,
            security.ciphered,
            security.kic,
            security.kid,
            security.keys,
            "PoR",
        )
    except EncodeError as exc:
        raise DecodeError("PoR security", 0, str(exc)) from None
