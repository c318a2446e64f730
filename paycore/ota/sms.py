"""SMS transport of secured packets (ota.md §2). Pure codecs:

- TP addresses, SMS-DELIVER and SMS-SUBMIT TPDUs with 8-bit user data (3GPP TS 23.040 §9.2);
- the user data header, secured-packet identifiers 70 / 71 (3GPP TS 31.115 §4) and 8-bit or
  16-bit concatenation (TS 23.040 §9.2.3.24.1, .8): ``split_packet`` and ``Reassembly``;
- the ENVELOPE (SMS-PP DOWNLOAD) data object D1 (3GPP TS 31.111 §7.1.1), the proactive SEND
  SHORT MESSAGE D0 (TS 31.111 §6.6.9) and the TERMINAL RESPONSE to it (ETSI TS 102 223 §6.8),
  all in COMPREHENSION-TLV (ETSI TS 101 220 §7.1.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from paycore.errors import DecodeError, EncodeError

# --- constants -------------------------------------------------------------------------------

MTI_DELIVER = 0x00
MTI_SUBMIT = 0x01
TP_UDHI = 0x40
#: TS 23.040 §9.2.3.9: TP-PID 7F = (U)SIM data download.
PID_SIM_DATA_DOWNLOAD = 0x7F
#: TS 23.038 §4: TP-DCS F6 = data coding/message class group, 8-bit data, class 2 (SIM).
DCS_SIM_8BIT = 0xF6
#: TS 23.040 §9.2.3.16: at most 140 octets of user data per SMS.
USER_DATA_LEN_MAX = 140
SCTS_LEN = 7
ADDRESS_DIGITS_MAX = 20
IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08
#: TS 31.115 §4.2 / §4.4: command packet identifier and response packet identifier.
IEI_COMMAND_PACKET = 0x70
IEI_RESPONSE_PACKET = 0x71
#: Our limit on the segments of one concatenated message (the card reassembles in RAM).
SEGMENTS_MAX = 16
#: Our limit on information elements in one user data header.
HEADER_IES_MAX = 8

#: TS 102 223 §8.7 / TS 31.111: device identities.
DEVICE_UICC = 0x81
DEVICE_TERMINAL = 0x82
DEVICE_NETWORK = 0x83
#: TS 101 220 §7.2: BER-TLV tags of the ENVELOPE and of proactive commands.
TAG_SMS_PP_DOWNLOAD = 0xD1
TAG_PROACTIVE_COMMAND = 0xD0
#: TS 101 220 §7.3 COMPREHENSION-TLV tags (without the CR bit b8).
CTAG_COMMAND_DETAILS = 0x01
CTAG_DEVICE_IDENTITIES = 0x02
CTAG_RESULT = 0x03
CTAG_ADDRESS = 0x06
CTAG_SMS_TPDU = 0x0B
CTAG_ALPHA_IDENTIFIER = 0x05
CTAG_ICON_IDENTIFIER = 0x1E
#: TS 102 223 §9.4: type of command SEND SHORT MESSAGE.
COMMAND_SEND_SHORT_MESSAGE = 0x13
#: TS 102 223 §8.12: general result "command performed successfully".
RESULT_OK = 0x00
#: TS 102 221: ENVELOPE, FETCH and TERMINAL RESPONSE fit short APDUs.
APDU_DATA_MAX = 255

_DIGITS = "0123456789*#abc"


# --- TP addresses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """A TP-OA/TP-DA or TS 102 223 address: TON/NPI and the digits (0-9 * # a b c)."""

    digits: str
    ton_npi: int = 0x81

    def __post_init__(self) -> None:
        if not 0x80 <= self.ton_npi <= 0xFF:
            raise EncodeError(f"TON/NPI {self.ton_npi:#x} must have b8 set")
        if len(self.digits) > ADDRESS_DIGITS_MAX:
            raise EncodeError(f"address of {len(self.digits)} digits is over {ADDRESS_DIGITS_MAX}")
        bad = set(self.digits) - set(_DIGITS)
        if bad:
            raise EncodeError(f"address digits {sorted(bad)} are not BCD digits")

    def bcd(self) -> bytes:
        """TS 23.040 §9.1.2.3: semi-octets, low nibble first, F fills an odd count."""
        nibbles = [_DIGITS.index(d) for d in self.digits]
        if len(nibbles) % 2:
            nibbles.append(0x0F)
        return bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))

    def encode_tp(self) -> bytes:
        """TS 23.040 §9.1.2.5: length in digits, TON/NPI, BCD."""
        return bytes((len(self.digits), self.ton_npi)) + self.bcd()

    def encode_ctlv_value(self) -> bytes:
        """TS 102 223 §8.1: TON/NPI then BCD (the length is the TLV's)."""
        return bytes((self.ton_npi,)) + self.bcd()


def _bcd_digits(raw: bytes, count: int, what: str, offset: int) -> str:
    out = []
    for i in range(count):
        byte = raw[i // 2]
        nibble = byte >> 4 if i % 2 else byte & 0x0F
        if nibble == 0x0F:
            raise DecodeError(what, offset + i // 2, "F inside the digits")
        out.append(_DIGITS[nibble])
    if count % 2 and raw[count // 2] >> 4 != 0x0F:
        raise DecodeError(what, offset + count // 2, "odd digit count without F filler")
    return "".join(out)


def _decode_tp_address(raw: bytes, offset: int, what: str) -> tuple[Address, int]:
    if offset + 2 > len(raw):
        raise DecodeError(what, offset, "length and TON/NPI missing")
    count, ton_npi = raw[offset], raw[offset + 1]
    if count > ADDRESS_DIGITS_MAX:
        raise DecodeError(what, offset, f"{count} digits is over {ADDRESS_DIGITS_MAX}")
    if not ton_npi & 0x80:
        raise DecodeError(what, offset + 1, f"TON/NPI {ton_npi:02X} lacks b8")
    size = (count + 1) // 2
    end = offset + 2 + size
    if end > len(raw):
        raise DecodeError(what, offset, f"{count} digits run past the end")
    digits = _bcd_digits(raw[offset + 2 : end], count, what, offset + 2)
    return Address(digits, ton_npi), end


def _decode_ctlv_address(value: bytes, offset: int) -> Address:
    if not value:
        raise DecodeError("address", offset, "empty")
    if len(value) - 1 > ADDRESS_DIGITS_MAX // 2:
        raise DecodeError("address", offset, f"{len(value) - 1} BCD bytes is over the limit")
    if not value[0] & 0x80:
        raise DecodeError("address", offset, f"TON/NPI {value[0]:02X} lacks b8")
    count = 2 * (len(value) - 1)
    if count and value[-1] >> 4 == 0x0F:
        count -= 1
    return Address(_bcd_digits(value[1:], count, "address", offset + 1), value[0])


# --- user data and its header ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InformationElement:
    iei: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class UserData:
    """TP-UD split into its header (information elements; empty = no UDH) and payload."""

    header: tuple[InformationElement, ...]
    payload: bytes = field(repr=False)

    def encode(self) -> bytes:
        if not self.header:
            out = self.payload
        else:
            if len(self.header) > HEADER_IES_MAX:
                raise EncodeError(f"over {HEADER_IES_MAX} information elements")
            body = b""
            for ie in self.header:
                if not 0 <= ie.iei <= 0xFF or len(ie.data) > 0xFF:
                    raise EncodeError(f"information element {ie.iei:#x} does not fit")
                body += bytes((ie.iei, len(ie.data))) + ie.data
            out = bytes((len(body),)) + body + self.payload
        if len(out) > USER_DATA_LEN_MAX:
            raise EncodeError(f"user data of {len(out)} bytes is over {USER_DATA_LEN_MAX}")
        return out

    def find(self, iei: int) -> InformationElement | None:
        for ie in self.header:
            if ie.iei == iei:
                return ie
        return None


def decode_user_data(raw: bytes, has_header: bool, offset: int = 0) -> UserData:
    """TS 23.040 §9.2.3.24: UDHL then IEI/IEDL/IED triplets; ``offset`` is for messages."""
    if len(raw) > USER_DATA_LEN_MAX:
        raise DecodeError("TP-UD", offset, f"{len(raw)} bytes is over {USER_DATA_LEN_MAX}")
    if not has_header:
        return UserData((), bytes(raw))
    if not raw:
        raise DecodeError("UDHL", offset, "TP-UDHI is set but the user data is empty")
    udhl = raw[0]
    if 1 + udhl > len(raw):
        raise DecodeError("UDHL", offset, f"{udhl} runs past the user data")
    ies: list[InformationElement] = []
    i = 1
    while i < 1 + udhl:
        if len(ies) >= HEADER_IES_MAX:
            raise DecodeError("UDH", offset + i, f"over {HEADER_IES_MAX} information elements")
        if i + 2 > 1 + udhl:
            raise DecodeError("UDH", offset + i, "IEI without IEDL")
        iei, iedl = raw[i], raw[i + 1]
        if i + 2 + iedl > 1 + udhl:
            raise DecodeError("UDH", offset + i + 1, f"IE {iei:02X} length {iedl} runs past UDHL")
        ies.append(InformationElement(iei, bytes(raw[i + 2 : i + 2 + iedl])))
        i += 2 + iedl
    return UserData(tuple(ies), bytes(raw[1 + udhl :]))


@dataclass(frozen=True, slots=True)
class Concatenation:
    """TS 23.040 §9.2.3.24.1 (8-bit reference, IEI 00) or .8 (16-bit, IEI 08)."""

    reference: int
    total: int
    sequence: int

    def element(self) -> InformationElement:
        if self.reference > 0xFF:
            return InformationElement(
                IEI_CONCAT_16BIT,
                self.reference.to_bytes(2, "big") + bytes((self.total, self.sequence)),
            )
        return InformationElement(
            IEI_CONCAT_8BIT, bytes((self.reference, self.total, self.sequence))
        )


def concatenation_of(user_data: UserData, offset: int = 0) -> Concatenation | None:
    """The concatenation element of a header, checked (1 <= sequence <= total), or None."""
    found: Concatenation | None = None
    for ie in user_data.header:
        if ie.iei not in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT):
            continue
        size = 3 if ie.iei == IEI_CONCAT_8BIT else 4
        if len(ie.data) != size:
            raise DecodeError("concatenation IE", offset, f"{len(ie.data)} bytes, not {size}")
        if found is not None:
            raise DecodeError("concatenation IE", offset, "present twice")
        reference = int.from_bytes(ie.data[: size - 2], "big")
        total, sequence = ie.data[-2], ie.data[-1]
        if total == 0 or not 1 <= sequence <= total:
            raise DecodeError("concatenation IE", offset, f"segment {sequence} of {total}")
        found = Concatenation(reference, total, sequence)
    return found


def split_packet(packet: bytes, iei: int, reference: int) -> tuple[UserData, ...]:
    """Put a secured packet into as few SMS user data as it takes (TS 31.115 §4.2, TS 23.040
    §9.2.3.24.1): one with header 70 00 (or 71 00) when it fits in 140 bytes, else segments
    whose first header is 70 00 then 00 03 ref total seq, the others 00 03 ref total seq.
    ``reference`` (0-255 8-bit, 256-65535 16-bit IE) is the caller's: codecs draw no randoms."""
    if iei not in (IEI_COMMAND_PACKET, IEI_RESPONSE_PACKET):
        raise EncodeError(f"IEI {iei:#x} is not a secured packet identifier")
    if not 0 <= reference <= 0xFFFF:
        raise EncodeError(f"concatenation reference {reference} is out of range")
    identifier = InformationElement(iei)
    if 3 + len(packet) <= USER_DATA_LEN_MAX:
        return (UserData((identifier,), packet),)
    ie_len = 5 if reference <= 0xFF else 6
    first_room = USER_DATA_LEN_MAX - 1 - 2 - ie_len
    other_room = USER_DATA_LEN_MAX - 1 - ie_len
    total = 1 + -(-(len(packet) - first_room) // other_room)
    if total > SEGMENTS_MAX:
        raise EncodeError(f"packet of {len(packet)} bytes needs {total} SMS, over {SEGMENTS_MAX}")
    out = [
        UserData((identifier, Concatenation(reference, total, 1).element()), packet[:first_room])
    ]
    for seq in range(2, total + 1):
        start = first_room + (seq - 2) * other_room
        out.append(
            UserData(
                (Concatenation(reference, total, seq).element(),),
                packet[start : start + other_room],
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Reassembly:
    """Reassembly of one concatenated message at a time (pure: ``add`` returns a new value).

    The key is (sender, reference, total); a segment of another message drops the partial one
    (our choice: bounded memory, the sender retries). A repeated segment is ignored.
    """

    sender: str = ""
    reference: int = -1
    total: int = 0
    parts: tuple[tuple[int, UserData], ...] = field(default=(), repr=False)

    def add(self, sender: str, user_data: UserData) -> tuple[Reassembly, UserData | None]:
        """Add one SMS; returns the new state and, when complete, the whole message as one
        ``UserData`` (the header of segment 1 without its concatenation IE, then all payloads
        in order). A message that is not concatenated is returned at once."""
        concat = concatenation_of(user_data)
        if concat is None:
            return self, user_data
        if concat.total > SEGMENTS_MAX:
            raise DecodeError("concatenation IE", 0, f"{concat.total} segments, over the limit")
        same = (sender, concat.reference, concat.total) == (self.sender, self.reference, self.total)
        parts = dict(self.parts) if same else {}
        if concat.sequence in parts:
            return self, None
        parts[concat.sequence] = user_data
        if len(parts) < concat.total:
            state = Reassembly(sender, concat.reference, concat.total, tuple(sorted(parts.items())))
            return state, None
        header = tuple(
            ie for ie in parts[1].header if ie.iei not in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT)
        )
        payload = b"".join(parts[seq].payload for seq in range(1, concat.total + 1))
        return Reassembly(), UserData(header, payload)

    @property
    def pending(self) -> int:
        return len(self.parts)


# --- TPDUs -----------------------------------------------------------------------------------


def _is_8bit(dcs: int) -> bool:
    """TS 23.038 §4: general data coding 00xx (uncompressed) with b3b2 = 01, or F_ with b2 = 1."""
    if dcs & 0xC0 == 0x00:
        return not dcs & 0x20 and (dcs >> 2) & 0x03 == 0x01
    if dcs & 0xF0 == 0xF0:
        return bool(dcs & 0x04)
    return False


def _encode_ud(user_data: UserData) -> bytes:
    ud = user_data.encode()
    return bytes((len(ud),)) + ud


def _decode_ud(raw: bytes, i: int, has_header: bool, dcs: int, dcs_at: int) -> UserData:
    if not _is_8bit(dcs):
        raise DecodeError("TP-DCS", dcs_at, f"{dcs:02X} is not 8-bit data")
    if i >= len(raw):
        raise DecodeError("TP-UDL", i, "missing")
    udl = raw[i]
    if udl > USER_DATA_LEN_MAX:
        raise DecodeError("TP-UDL", i, f"{udl} is over {USER_DATA_LEN_MAX}")
    if i + 1 + udl != len(raw):
        raise DecodeError("TP-UDL", i, f"says {udl} octets, {len(raw) - i - 1} follow")
    return decode_user_data(raw[i + 1 :], has_header, i + 1)


@dataclass(frozen=True, slots=True)
class SmsDeliver:
    """SMS-DELIVER (TS 23.040 §9.2.2.1) with 8-bit user data. First octet 40 (TP-UDHI) when
    the user data has a header, 00 otherwise (ota.md §2)."""

    originator: Address
    scts: bytes
    user_data: UserData
    pid: int = PID_SIM_DATA_DOWNLOAD
    dcs: int = DCS_SIM_8BIT

    def encode(self) -> bytes:
        if len(self.scts) != SCTS_LEN:
            raise EncodeError(f"TP-SCTS must be 7 bytes, got {len(self.scts)}")
        if not _is_8bit(self.dcs) or not 0 <= self.pid <= 0xFF:
            raise EncodeError("SMS-DELIVER: TP-DCS must be 8-bit data, TP-PID one byte")
        first = MTI_DELIVER | (TP_UDHI if self.user_data.header else 0)
        return (
            bytes((first,))
            + self.originator.encode_tp()
            + bytes((self.pid, self.dcs))
            + self.scts
            + _encode_ud(self.user_data)
        )


def decode_deliver(raw: bytes) -> SmsDeliver:
    if not raw:
        raise DecodeError("SMS-DELIVER", 0, "empty")
    first = raw[0]
    if first & 0x03 != MTI_DELIVER:
        raise DecodeError("TP-MTI", 0, f"{first & 0x03} is not SMS-DELIVER")
    originator, i = _decode_tp_address(raw, 1, "TP-OA")
    if i + 2 + SCTS_LEN > len(raw):
        raise DecodeError("SMS-DELIVER", len(raw), "TP-PID, TP-DCS, TP-SCTS missing")
    pid, dcs = raw[i], raw[i + 1]
    scts = bytes(raw[i + 2 : i + 2 + SCTS_LEN])
    user_data = _decode_ud(raw, i + 2 + SCTS_LEN, bool(first & TP_UDHI), dcs, i + 1)
    return SmsDeliver(originator, scts, user_data, pid, dcs)


_VP_LENGTH = {0x00: 0, 0x10: 1, 0x08: 7, 0x18: 7}  # TS 23.040 §9.2.3.3 TP-VPF b5b4


@dataclass(frozen=True, slots=True)
class SmsSubmit:
    """SMS-SUBMIT (TS 23.040 §9.2.2.2) with 8-bit user data, no validity period on encode."""

    destination: Address
    user_data: UserData
    message_reference: int = 0
    pid: int = PID_SIM_DATA_DOWNLOAD
    dcs: int = DCS_SIM_8BIT

    def encode(self) -> bytes:
        if not 0 <= self.message_reference <= 0xFF or not 0 <= self.pid <= 0xFF:
            raise EncodeError("SMS-SUBMIT: TP-MR and TP-PID are one byte")
        if not _is_8bit(self.dcs):
            raise EncodeError("SMS-SUBMIT: TP-DCS must be 8-bit data")
        first = MTI_SUBMIT | (TP_UDHI if self.user_data.header else 0)
        return (
            bytes((first, self.message_reference))
            + self.destination.encode_tp()
            + bytes((self.pid, self.dcs))
            + _encode_ud(self.user_data)
        )


def decode_submit(raw: bytes) -> SmsSubmit:
    if len(raw) < 2:
        raise DecodeError("SMS-SUBMIT", len(raw), "first octet and TP-MR missing")
    first = raw[0]
    if first & 0x03 != MTI_SUBMIT:
        raise DecodeError("TP-MTI", 0, f"{first & 0x03} is not SMS-SUBMIT")
    destination, i = _decode_tp_address(raw, 2, "TP-DA")
    vp_len = _VP_LENGTH[first & 0x18]
    if i + 2 + vp_len > len(raw):
        raise DecodeError("SMS-SUBMIT", len(raw), "TP-PID, TP-DCS, TP-VP missing")
    pid, dcs = raw[i], raw[i + 1]
    user_data = _decode_ud(raw, i + 2 + vp_len, bool(first & TP_UDHI), dcs, i + 1)
    return SmsSubmit(destination, user_data, raw[1], pid, dcs)


# --- COMPREHENSION-TLV and BER-TLV -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ctlv:
    """One COMPREHENSION-TLV object: ``tag`` without the CR bit, ``required`` = CR bit."""

    tag: int
    value: bytes
    required: bool
    offset: int
    value_offset: int


def _encode_length(length: int) -> bytes:
    # TS 101 220 §7.1.2: 00-7F in one byte, 80-FF as 81 xx.
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    raise EncodeError(f"TLV length {length} is over 255")


def _ctlv(tag: int, value: bytes, required: bool = True) -> bytes:
    return bytes((tag | (0x80 if required else 0),)) + _encode_length(len(value)) + value


def _decode_length(raw: bytes, i: int, what: str) -> tuple[int, int]:
    if i >= len(raw):
        raise DecodeError(what, i, "length missing")
    first = raw[i]
    if first < 0x80:
        return first, i + 1
    if first == 0x81:
        if i + 1 >= len(raw):
            raise DecodeError(what, i, "81 without the length byte")
        if raw[i + 1] < 0x80:
            raise DecodeError(what, i, f"81 {raw[i + 1]:02X} is not the minimal length form")
        return raw[i + 1], i + 2
    raise DecodeError(what, i, f"length byte {first:02X} is not 00-7F or 81")


def decode_ctlvs(raw: bytes, base: int) -> tuple[Ctlv, ...]:
    """TS 101 220 §7.1.1: single-byte tags (00, 80, FF are not tags) and the three-byte form
    7F xx xx. ``base`` is the offset of ``raw`` in the message, for errors."""
    out: list[Ctlv] = []
    i = 0
    while i < len(raw):
        if len(out) >= HEADER_IES_MAX * 2:
            raise DecodeError("COMPREHENSION-TLV", base + i, "too many objects")
        start = i
        tag_byte = raw[i]
        if tag_byte in (0x00, 0x80, 0xFF):
            raise DecodeError("COMPREHENSION-TLV", base + i, f"{tag_byte:02X} is not a tag")
        if tag_byte == 0x7F:
            if i + 3 > len(raw):
                raise DecodeError("COMPREHENSION-TLV", base + i, "three-byte tag runs past the end")
            required, tag = bool(raw[i + 1] & 0x80), ((raw[i + 1] & 0x7F) << 8) | raw[i + 2]
            i += 3
        else:
            required, tag = bool(tag_byte & 0x80), tag_byte & 0x7F
            i += 1
        length, i = _decode_length(raw, i, "COMPREHENSION-TLV")
        if i + length > len(raw):
            raise DecodeError("COMPREHENSION-TLV", base + i, f"tag {tag:02X} runs past the end")
        out.append(Ctlv(tag, bytes(raw[i : i + length]), required, base + start, base + i))
        i += length
    return tuple(out)


def _decode_ber_one(raw: bytes, tag: int, what: str) -> bytes:
    if not raw:
        raise DecodeError(what, 0, "empty")
    if raw[0] != tag:
        raise DecodeError(what, 0, f"tag {raw[0]:02X} is not {tag:02X}")
    length, i = _decode_length(raw, 1, what)
    if i + length != len(raw):
        raise DecodeError(what, 1, f"length {length} does not match the {len(raw) - i} bytes")
    return bytes(raw[i:])


def _ber_one(tag: int, value: bytes) -> bytes:
    out = bytes((tag,)) + _encode_length(len(value)) + value
    if len(out) > APDU_DATA_MAX + 1:  # FETCH may answer up to 256 bytes
        raise EncodeError(f"BER-TLV {tag:02X} of {len(out)} bytes does not fit an APDU")
    return out


def _single(objects: Sequence[Ctlv], tag: int, what: str) -> Ctlv | None:
    found = [o for o in objects if o.tag == tag]
    if len(found) > 1:
        raise DecodeError(what, found[1].offset, f"tag {tag:02X} twice")
    return found[0] if found else None


def _check_unknown(objects: Sequence[Ctlv], known: set[int], what: str) -> None:
    # TS 102 223 §6.10: unknown objects with the CR flag set cannot be understood.
    for obj in objects:
        if obj.tag not in known and obj.required:
            raise DecodeError(what, obj.offset, f"unknown comprehension-required tag {obj.tag:02X}")


def _device_identities(obj: Ctlv | None, source: int, destination: int, what: str) -> None:
    if obj is None:
        raise DecodeError(what, 0, "device identities missing")
    if obj.value != bytes((source, destination)):
        raise DecodeError(
            "device identities",
            obj.offset,
            f"{obj.value.hex().upper()} is not {source:02X}{destination:02X}",
        )


# --- ENVELOPE (SMS-PP DOWNLOAD) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsPpDownload:
    """TS 31.111 §7.1.1.2: the ENVELOPE data of SMS-PP DOWNLOAD."""

    tpdu: bytes = field(repr=False)
    service_centre: Address | None = None

    def encode(self) -> bytes:
        """D1 len | 82 02 83 81 | [86 SC address] | 8B len TPDU (the ENVELOPE data field)."""
        body = _ctlv(CTAG_DEVICE_IDENTITIES, bytes((DEVICE_NETWORK, DEVICE_UICC)))
        if self.service_centre is not None:
            body += _ctlv(CTAG_ADDRESS, self.service_centre.encode_ctlv_value())
        body += _ctlv(CTAG_SMS_TPDU, self.tpdu)
        out = _ber_one(TAG_SMS_PP_DOWNLOAD, body)
        if len(out) > APDU_DATA_MAX:
            raise EncodeError(f"ENVELOPE data of {len(out)} bytes is over {APDU_DATA_MAX}")
        return out


def decode_sms_pp_download(raw: bytes) -> SmsPpDownload:
    """Decode an ENVELOPE data field; errors name the object and its offset."""
    body = _decode_ber_one(raw, TAG_SMS_PP_DOWNLOAD, "SMS-PP DOWNLOAD")
    base = len(raw) - len(body)
    objects = decode_ctlvs(body, base)
    known = {CTAG_DEVICE_IDENTITIES, CTAG_ADDRESS, CTAG_SMS_TPDU}
    _check_unknown(objects, known, "SMS-PP DOWNLOAD")
    _device_identities(
        _single(objects, CTAG_DEVICE_IDENTITIES, "SMS-PP DOWNLOAD"),
        DEVICE_NETWORK,
        DEVICE_UICC,
        "SMS-PP DOWNLOAD",
    )
    address = _single(objects, CTAG_ADDRESS, "SMS-PP DOWNLOAD")
    tpdu = _single(objects, CTAG_SMS_TPDU, "SMS-PP DOWNLOAD")
    if tpdu is None:
        raise DecodeError("SMS-PP DOWNLOAD", base, "SMS TPDU (8B) missing")
    sc = None if address is None else _decode_ctlv_address(address.value, address.value_offset)
    return SmsPpDownload(tpdu.value, sc)


# --- proactive SEND SHORT MESSAGE and TERMINAL RESPONSE --------------------------------------


@dataclass(frozen=True, slots=True)
class SendShortMessage:
    """TS 31.111 §6.6.9: the proactive command carrying an SMS-SUBMIT TPDU (the PoR)."""

    tpdu: bytes = field(repr=False)
    command_number: int = 1
    qualifier: int = 0x00  # b1 = 0: packing not required
    service_centre: Address | None = None

    def encode(self) -> bytes:
        """D0 len | 81 03 nn 13 qq | 82 02 81 83 | [86 address] | 8B len TPDU."""
        if not 1 <= self.command_number <= 0xFE or not 0 <= self.qualifier <= 0xFF:
            raise EncodeError("command number must be 01-FE, qualifier one byte")
        body = _ctlv(
            CTAG_COMMAND_DETAILS,
            bytes((self.command_number, COMMAND_SEND_SHORT_MESSAGE, self.qualifier)),
        )
        body += _ctlv(CTAG_DEVICE_IDENTITIES, bytes((DEVICE_UICC, DEVICE_NETWORK)))
        if self.service_centre is not None:
            body += _ctlv(CTAG_ADDRESS, self.service_centre.encode_ctlv_value())
        body += _ctlv(CTAG_SMS_TPDU, self.tpdu)
        return _ber_one(TAG_PROACTIVE_COMMAND, body)


def _command_details(obj: Ctlv | None, what: str) -> tuple[int, int, int]:
    if obj is None:
        raise DecodeError(what, 0, "command details missing")
    if len(obj.value) != 3:
        raise DecodeError("command details", obj.offset, f"{len(obj.value)} bytes, not 3")
    return obj.value[0], obj.value[1], obj.value[2]


def decode_send_short_message(raw: bytes) -> SendShortMessage:
    """Decode a FETCH response holding SEND SHORT MESSAGE (the handset's / server's side)."""
    body = _decode_ber_one(raw, TAG_PROACTIVE_COMMAND, "proactive command")
    base = len(raw) - len(body)
    objects = decode_ctlvs(body, base)
    what = "SEND SHORT MESSAGE"
    known = {CTAG_COMMAND_DETAILS, CTAG_DEVICE_IDENTITIES, CTAG_ADDRESS, CTAG_SMS_TPDU}
    _check_unknown(objects, known | {CTAG_ALPHA_IDENTIFIER, CTAG_ICON_IDENTIFIER}, what)
    number, kind, qualifier = _command_details(_single(objects, CTAG_COMMAND_DETAILS, what), what)
    if kind != COMMAND_SEND_SHORT_MESSAGE:
        raise DecodeError("command details", base, f"type {kind:02X} is not SEND SHORT MESSAGE")
    _device_identities(
        _single(objects, CTAG_DEVICE_IDENTITIES, what), DEVICE_UICC, DEVICE_NETWORK, what
    )
    address = _single(objects, CTAG_ADDRESS, what)
    tpdu = _single(objects, CTAG_SMS_TPDU, what)
    if tpdu is None:
        raise DecodeError(what, base, "SMS TPDU (8B) missing")
    sc = None if address is None else _decode_ctlv_address(address.value, address.value_offset)
    if not 1 <= number <= 0xFE:
        raise DecodeError("command details", base, f"command number {number:02X}")
    return SendShortMessage(tpdu.value, number, qualifier, sc)


@dataclass(frozen=True, slots=True)
class TerminalResponse:
    """TS 102 223 §6.8: the terminal's answer to a proactive command."""

    command_number: int
    command_type: int
    qualifier: int
    result: int
    additional: bytes = b""

    @property
    def successful(self) -> bool:
        # TS 102 223 §8.12: results 0x = command performed (successfully, with variations).
        return self.result < 0x10

    def encode(self) -> bytes:
        """81 03 nn tt qq | 82 02 82 81 | 83 len result [additional] (TERMINAL RESPONSE data)."""
        for v in (self.command_number, self.command_type, self.qualifier, self.result):
            if not 0 <= v <= 0xFF:
                raise EncodeError("TERMINAL RESPONSE values are one byte each")
        out = (
            _ctlv(
                CTAG_COMMAND_DETAILS,
                bytes((self.command_number, self.command_type, self.qualifier)),
            )
            + _ctlv(CTAG_DEVICE_IDENTITIES, bytes((DEVICE_TERMINAL, DEVICE_UICC)))
            + _ctlv(CTAG_RESULT, bytes((self.result,)) + self.additional)
        )
        if len(out) > APDU_DATA_MAX:
            raise EncodeError("TERMINAL RESPONSE is over 255 bytes")
        return out


def decode_terminal_response(raw: bytes) -> TerminalResponse:
    what = "TERMINAL RESPONSE"
    objects = decode_ctlvs(raw, 0)
    number, kind, qualifier = _command_details(_single(objects, CTAG_COMMAND_DETAILS, what), what)
    _device_identities(
        _single(objects, CTAG_DEVICE_IDENTITIES, what), DEVICE_TERMINAL, DEVICE_UICC, what
    )
    result = _single(objects, CTAG_RESULT, what)
    if result is None or not result.value:
        raise DecodeError(what, len(raw), "result missing or empty")
    return TerminalResponse(number, kind, qualifier, result.value[0], result.value[1:])


# --- the server's conveniences ---------------------------------------------------------------

INS_ENVELOPE = 0xC2
INS_FETCH = 0x12
INS_TERMINAL_RESPONSE = 0x14


def command_envelopes(
    packet: bytes,
    *,
    originator: Address,
    scts: bytes,
    reference: int,
    service_centre: Address | None = None,
) -> tuple[bytes, ...]:
    """The ENVELOPE (SMS-PP DOWNLOAD) data fields that carry a command packet, one per SMS
    (``split_packet``, then SMS-DELIVER from ``originator``, then D1). Send each as
    ``envelope_apdu``."""
    return tuple(
        SmsPpDownload(SmsDeliver(originator, scts, part).encode(), service_centre).encode()
        for part in split_packet(packet, IEI_COMMAND_PACKET, reference)
    )


def envelope_apdu(data: bytes) -> bytes:
    """TS 102 221 §10.1.1 ENVELOPE: 80 C2 00 00 Lc data 00 (Le 00: the PoR may come back)."""
    if not 1 <= len(data) <= APDU_DATA_MAX:
        raise EncodeError(f"ENVELOPE data of {len(data)} bytes is not 1-255")
    return bytes((0x80, INS_ENVELOPE, 0x00, 0x00, len(data))) + data + b"\x00"


def por_user_data(message: UserData) -> bytes:
    """The PoR TP-UD (``02 71 00`` + the response packet) of a whole SMS-SUBMIT message (after
    ``Reassembly`` when it came in several), ready for ``packet.decode_por``."""
    identifier = message.find(IEI_RESPONSE_PACKET)
    if identifier is None or identifier.data:
        raise DecodeError("UDH", 0, "no response packet identifier 71 00")
    return bytes((0x02, IEI_RESPONSE_PACKET, 0x00)) + message.payload
