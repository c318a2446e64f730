"""GlobalPlatform SCP03 (GP Card Spec v2.3 Amendment D v1.2; ota.md §1), S8 mode, i=70.

AES static keys (128/192/256); every derived value comes from the NIST SP 800-108 KDF in
counter mode with AES-CMAC as PRF, laid out as Amendment D §4.1.5 says: label = 00 x 11 ||
derivation constant, separator 00, L (2 bytes, bits), counter i (1 byte), context. Constants:
00 card cryptogram, 01 host cryptogram, 02 pseudo-random card challenge, 04 S-ENC, 06 S-MAC,
07 S-RMAC. Context = host challenge || card challenge (the card challenge: sequence counter (3)
|| AID of the security domain).

Commands: encrypt then MAC. C-DECRYPTION pads 80 00.. to 16 and encrypts with AES-CBC under
S-ENC, ICV = AES_S-ENC(command counter as 16 bytes), the counter incremented for every command
of a level with C-DECRYPTION (even one without data). C-MAC = AES-CMAC(S-MAC, MAC chaining value
|| modified header || data) chained in full, the first 8 bytes sent. Responses (R-MAC, R-ENC):
R-ENC with ICV = AES_S-ENC(80 || counter (15 bytes)); R-MAC = AES-CMAC(S-RMAC, MAC chaining
value || data || SW) over success and warning responses only. Levels 00, 01, 03, 11, 13, 33.

Pure: challenges and the sequence counter are parameters; ``Channel`` is the immutable state of
an open channel, the same on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from paycore import crypto
from paycore.apdu import DATA_LEN_MAX, CommandApdu
from paycore.errors import DecodeError, EncodeError
from paycore.gp.channel import (
    C_DECRYPTION,
    C_MAC,
    CLA_SM,
    HOST_CHALLENGE_LEN,
    INS_EXTERNAL_AUTHENTICATE,
    INS_INITIALIZE_UPDATE,
    KEY_DIV_DATA_LEN,
    MAC_LEN,
    R_ENCRYPTION,
    R_MAC,
    SecureChannelError,
    StaticKeys,
    check_level,
    mac_cla,
)

SCP_ID = 0x03
#: i=70: pseudo-random card challenge (b5), R-MAC (b6) and R-ENCRYPTION (b7) supported, S8.
I_PARAMETER = 0x70
LEVELS = frozenset({0x00, 0x01, 0x03, 0x11, 0x13, 0x33})
CHALLENGE_LEN = 8
SEQUENCE_MAX = 0xFFFFFF
# Amendment D §4.1.5 Table 4-1: derivation constants.
CONST_CARD_CRYPTOGRAM = 0x00
CONST_HOST_CRYPTOGRAM = 0x01
CONST_CARD_CHALLENGE = 0x02
CONST_S_ENC = 0x04
CONST_S_MAC = 0x06
CONST_S_RMAC = 0x07
INIT_UPDATE_RESPONSE_LEN = KEY_DIV_DATA_LEN + 3 + CHALLENGE_LEN + 8 + 3
_KDF_BLOCKS_MAX = 0xFF


def kdf(key: bytes, constant: int, context: bytes, length_bits: int) -> bytes:
    """Amendment D §4.1.5: SP 800-108 counter-mode KDF with AES-CMAC; ``length_bits`` of output."""
    if length_bits <= 0 or length_bits % 8 or length_bits > 0xFFFF:
        raise EncodeError(f"KDF output of {length_bits} bits is not supported")
    blocks = -(-length_bits // 128)
    if blocks > _KDF_BLOCKS_MAX:
        raise EncodeError("KDF output too long for a 1-byte counter")
    fixed = bytes(11) + bytes([constant]) + b"\x00" + length_bits.to_bytes(2, "big")
    out = b"".join(crypto.aes_cmac(key, fixed + bytes([i]) + context) for i in range(1, blocks + 1))
    return out[: length_bits // 8]


@dataclass(frozen=True, slots=True)
class SessionKeys:
    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)
    s_rmac: bytes = field(repr=False)


def session_keys(keys: StaticKeys, host_challenge: bytes, card_challenge: bytes) -> SessionKeys:
    """Amendment D §6.2.1: session keys as long as the static keys."""
    context = host_challenge + card_challenge
    bits = len(keys.enc) * 8
    return SessionKeys(
        s_enc=kdf(keys.enc, CONST_S_ENC, context, bits),
        s_mac=kdf(keys.mac, CONST_S_MAC, context, bits),
        s_rmac=kdf(keys.mac, CONST_S_RMAC, context, bits),
    )


def pseudo_random_card_challenge(enc_key: bytes, sequence: int, sd_aid: bytes) -> bytes:
    """Amendment D §6.2.2.1: KDF(Key-ENC, 02, L 0040, sequence counter (3) || SD AID)."""
    if not 0 <= sequence <= SEQUENCE_MAX:
        raise EncodeError(f"SCP03 sequence counter {sequence} does not fit in 3 bytes")
    return kdf(enc_key, CONST_CARD_CHALLENGE, sequence.to_bytes(3, "big") + sd_aid, 64)


def card_cryptogram(keys: SessionKeys, host_challenge: bytes, card_challenge: bytes) -> bytes:
    return kdf(keys.s_mac, CONST_CARD_CRYPTOGRAM, host_challenge + card_challenge, 64)


def host_cryptogram(keys: SessionKeys, host_challenge: bytes, card_challenge: bytes) -> bytes:
    return kdf(keys.s_mac, CONST_HOST_CRYPTOGRAM, host_challenge + card_challenge, 64)


@dataclass(frozen=True, slots=True)
class InitUpdateResponse:
    """Amendment D §7.1.1.6: key diversification data (10) || key version (1) || SCP id 03 ||
    i (1) || card challenge (8) || card cryptogram (8) || sequence counter (3)."""

    key_div_data: bytes
    kvn: int
    i_parameter: int
    card_challenge: bytes
    card_cryptogram: bytes
    sequence: int

    def encode(self) -> bytes:
        return (
            self.key_div_data
            + bytes([self.kvn, SCP_ID, self.i_parameter])
            + self.card_challenge
            + self.card_cryptogram
            + self.sequence.to_bytes(3, "big")
        )

    @classmethod
    def decode(cls, raw: bytes) -> InitUpdateResponse:
        what = "SCP03 INITIALIZE UPDATE response"
        if len(raw) != INIT_UPDATE_RESPONSE_LEN:
            raise DecodeError(what, min(len(raw), INIT_UPDATE_RESPONSE_LEN), "needs 32 bytes")
        if raw[11] != SCP_ID:
            raise DecodeError(what, 11, f"SCP identifier {raw[11]:02X} is not 03")
        return cls(
            bytes(raw[:10]),
            raw[10],
            raw[12],
            bytes(raw[13:21]),
            bytes(raw[21:29]),
            int.from_bytes(raw[29:32], "big"),
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """An open SCP03 channel: session keys, level, MAC chaining value, command counter."""

    keys: SessionKeys
    level: int
    mac_chain: bytes = field(repr=False)
    counter: int = 0


def _icv(keys: SessionKeys, counter: int, *, response: bool) -> bytes:
    block = bytearray(counter.to_bytes(16, "big"))
    if response:
        block[0] = 0x80  # Amendment D §6.2.7
    return crypto.aes_ecb_encrypt(keys.s_enc, bytes(block))


def _cmac(channel: Channel, header: bytes, data: bytes) -> bytes:
    return crypto.aes_cmac(channel.keys.s_mac, channel.mac_chain + header + data)


# --- host side ------------------------------------------------------------------------------


def initialize_update(kvn: int, host_challenge: bytes) -> CommandApdu:
    if len(host_challenge) != HOST_CHALLENGE_LEN:
        raise EncodeError("the host challenge is 8 bytes")
    return CommandApdu(0x80, INS_INITIALIZE_UPDATE, kvn, 0x00, host_challenge, le=256)


def open_host(keys: StaticKeys, host_challenge: bytes, response: InitUpdateResponse) -> SessionKeys:
    """The host checks the card cryptogram of the INITIALIZE UPDATE response."""
    session = session_keys(keys, host_challenge, response.card_challenge)
    expected = card_cryptogram(session, host_challenge, response.card_challenge)
    if not crypto.mac_equal(expected, response.card_cryptogram):
        raise SecureChannelError("the card cryptogram does not verify")
    return session


def external_authenticate(
    session: SessionKeys, host_challenge: bytes, card_challenge: bytes, level: int
) -> tuple[CommandApdu, Channel]:
    """EXTERNAL AUTHENTICATE (84 82 level 00 10, host cryptogram || C-MAC; never encrypted)."""
    check_level(level, LEVELS)
    cryptogram = host_cryptogram(session, host_challenge, card_challenge)
    channel = Channel(session, level, bytes(16))
    header = bytes([0x84, INS_EXTERNAL_AUTHENTICATE, level, 0x00, 16])
    chain = _cmac(channel, header, cryptogram)
    command = CommandApdu(0x84, INS_EXTERNAL_AUTHENTICATE, level, 0x00, cryptogram + chain[:8])
    return command, replace(channel, mac_chain=chain)


def wrap(channel: Channel, apdu: CommandApdu) -> tuple[CommandApdu, Channel]:
    """Protect a command at the channel's level (unchanged at level 00)."""
    if not channel.level & C_MAC:
        return apdu, channel
    if apdu.cla & CLA_SM:
        raise EncodeError("the command is already secured")
    data, counter = apdu.data, channel.counter
    if channel.level & C_DECRYPTION:
        counter += 1
        if data:
            data = crypto.aes_cbc_encrypt(
                channel.keys.s_enc,
                crypto.pad80(data, crypto.AES_BLOCK),
                _icv(channel.keys, counter, response=False),
            )
    if len(data) + MAC_LEN > DATA_LEN_MAX:
        raise EncodeError("the command data leaves no room for the C-MAC")
    header = bytes([mac_cla(apdu.cla), apdu.ins, apdu.p1, apdu.p2, len(data) + MAC_LEN])
    chain = _cmac(channel, header, data)
    le = 256 if apdu.le is not None else None
    wrapped = CommandApdu(apdu.cla | CLA_SM, apdu.ins, apdu.p1, apdu.p2, data + chain[:8], le)
    return wrapped, replace(channel, mac_chain=chain, counter=counter)


def unwrap_response(channel: Channel, data: bytes, sw: int) -> bytes:
    """Check the R-MAC and decrypt a response (levels with R-MAC); error responses carry none."""
    if not channel.level & R_MAC or not _protected_sw(sw):
        return data
    if len(data) < MAC_LEN:
        raise SecureChannelError("the response carries no R-MAC")
    body, mac = data[:-MAC_LEN], data[-MAC_LEN:]
    expected = crypto.aes_cmac(channel.keys.s_rmac, channel.mac_chain + body + sw.to_bytes(2))
    if not crypto.mac_equal(expected[:MAC_LEN], mac):
        raise SecureChannelError("the R-MAC does not verify")
    if channel.level & R_ENCRYPTION and body:
        if len(body) % crypto.AES_BLOCK:
            raise SecureChannelError("the encrypted response is not whole blocks")
        icv = _icv(channel.keys, channel.counter, response=True)
        try:
            return crypto.unpad80(crypto.aes_cbc_decrypt(channel.keys.s_enc, body, icv))
        except ValueError:
            raise SecureChannelError("the decrypted response has no 80 padding") from None
    return body


def _protected_sw(sw: int) -> bool:
    """Amendment D §6.2.5: only 9000 and warnings (62xx, 63xx) get R-MAC / R-ENC."""
    return sw == 0x9000 or (sw >> 8) in (0x62, 0x63)


# --- card side ------------------------------------------------------------------------------


def card_initialize_update(
    keys: StaticKeys,
    *,
    kvn: int,
    key_div_data: bytes,
    sequence: int,
    sd_aid: bytes,
    host_challenge: bytes,
) -> tuple[InitUpdateResponse, SessionKeys]:
    """The card's INITIALIZE UPDATE: pseudo-random card challenge from ``sequence`` and the
    security domain's AID, session keys, card cryptogram."""
    if len(key_div_data) != KEY_DIV_DATA_LEN or len(host_challenge) != HOST_CHALLENGE_LEN:
        raise EncodeError("key diversification data is 10 bytes, the host challenge 8")
    challenge = pseudo_random_card_challenge(keys.enc, sequence, sd_aid)
    session = session_keys(keys, host_challenge, challenge)
    cryptogram = card_cryptogram(session, host_challenge, challenge)
    response = InitUpdateResponse(key_div_data, kvn, I_PARAMETER, challenge, cryptogram, sequence)
    return response, session


def check_external_authenticate(
    session: SessionKeys, host_challenge: bytes, card_challenge: bytes, apdu: CommandApdu
) -> Channel:
    check_level(apdu.p1, LEVELS)
    if apdu.p2 != 0x00 or len(apdu.data) != 16 or not apdu.cla & CLA_SM:
        raise SecureChannelError("EXTERNAL AUTHENTICATE needs CLA 84, P2 00 and 16 data bytes")
    cryptogram, mac = apdu.data[:8], apdu.data[8:]
    channel = Channel(session, apdu.p1, bytes(16))
    header = bytes([mac_cla(apdu.cla), apdu.ins, apdu.p1, apdu.p2, 16])
    chain = _cmac(channel, header, cryptogram)
    cryptogram_ok = crypto.mac_equal(
        host_cryptogram(session, host_challenge, card_challenge), cryptogram
    )
    mac_ok = crypto.mac_equal(chain[:MAC_LEN], mac)
    if not (cryptogram_ok and mac_ok):
        raise SecureChannelError("the host cryptogram or its C-MAC does not verify")
    return replace(channel, mac_chain=chain)


def unwrap(channel: Channel, apdu: CommandApdu) -> tuple[CommandApdu, Channel]:
    """Check the C-MAC, then decrypt. Raises SecureChannelError; the caller closes the channel."""
    if not channel.level & C_MAC:
        raise SecureChannelError("the channel's security level has no C-MAC")
    if len(apdu.data) < MAC_LEN:
        raise SecureChannelError("the command carries no C-MAC")
    body, mac = apdu.data[:-MAC_LEN], apdu.data[-MAC_LEN:]
    header = bytes([mac_cla(apdu.cla), apdu.ins, apdu.p1, apdu.p2, len(apdu.data)])
    chain = _cmac(channel, header, body)
    if not crypto.mac_equal(chain[:MAC_LEN], mac):
        raise SecureChannelError("the C-MAC does not verify")
    counter = channel.counter
    if channel.level & C_DECRYPTION:
        counter += 1
        if body:
            if len(body) % crypto.AES_BLOCK:
                raise SecureChannelError("the encrypted data is not whole blocks")
            icv = _icv(channel.keys, counter, response=False)
            try:
                body = crypto.unpad80(crypto.aes_cbc_decrypt(channel.keys.s_enc, body, icv))
            except ValueError:
                raise SecureChannelError("the decrypted data has no 80 padding") from None
    plain = CommandApdu(apdu.cla & ~CLA_SM, apdu.ins, apdu.p1, apdu.p2, body, apdu.le)
    return plain, replace(channel, mac_chain=chain, counter=counter)


def wrap_response(channel: Channel, data: bytes, sw: int) -> bytes:
    """The card protects a response: R-ENC of the data, then the R-MAC appended. Error
    responses and levels without R-MAC are unchanged."""
    if not channel.level & R_MAC or not _protected_sw(sw):
        return data
    if channel.level & R_ENCRYPTION and data:
        icv = _icv(channel.keys, channel.counter, response=True)
        data = crypto.aes_cbc_encrypt(channel.keys.s_enc, crypto.pad80(data, crypto.AES_BLOCK), icv)
    mac = crypto.aes_cmac(channel.keys.s_rmac, channel.mac_chain + data + sw.to_bytes(2))
    return data + mac[:MAC_LEN]
