"""GlobalPlatform SCP02, implementation option i=15 (GP Card Spec v2.2 Appendix E; ota.md §1).

Three 3DES static keys; session keys from the 2-byte sequence counter; card and host
cryptograms as full 3DES CBC-MAC with S-ENC; C-MAC = ISO/IEC 9797-1 MAC algorithm 3 with
C-MAC session key over the modified header (CLA with bit 3 set, Lc + 8) and the plain data; the
ICV of each C-MAC after the first is the previous C-MAC encrypted with single DES under the
first half of the C-MAC key (i=15, "ICV encryption"); MAC then encrypt (level 03: the data
padded 80 00.. and 3DES-CBC encrypted with S-ENC, zero IV).

Pure: the sequence counter and the challenges are parameters. ``Channel`` is the immutable
state of an open channel, the same on both sides; ``wrap`` (host) and ``unwrap`` (card) return
the next one. Levels 00, 01 and 03 (R-MAC is optional in SCP02 and not offered).
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
    SecureChannelError,
    StaticKeys,
    check_level,
)

SCP_ID = 0x02
I_PARAMETER = 0x15
LEVELS = frozenset({0x00, 0x01, 0x03})
CARD_CHALLENGE_LEN = 6
SEQUENCE_MAX = 0xFFFF
# GP Card Spec v2.2 §E.4.1: derivation constants.
CONST_C_MAC = b"\x01\x01"
CONST_R_MAC = b"\x01\x02"
CONST_S_ENC = b"\x01\x82"
CONST_S_DEK = b"\x01\x81"
INIT_UPDATE_RESPONSE_LEN = KEY_DIV_DATA_LEN + 2 + 2 + CARD_CHALLENGE_LEN + 8


@dataclass(frozen=True, slots=True)
class SessionKeys:
    s_enc: bytes = field(repr=False)
    c_mac: bytes = field(repr=False)
    r_mac: bytes = field(repr=False)
    s_dek: bytes = field(repr=False)


def derive(base_key: bytes, constant: bytes, sequence: int) -> bytes:
    """GP §E.4.1: 3DES-CBC (zero IV) of constant (2) || sequence counter (2) || 00 x 12."""
    if not 0 <= sequence <= SEQUENCE_MAX:
        raise EncodeError(f"SCP02 sequence counter {sequence} does not fit in 2 bytes")
    return crypto.des_cbc_encrypt(base_key, constant + sequence.to_bytes(2, "big") + bytes(12))


def session_keys(keys: StaticKeys, sequence: int) -> SessionKeys:
    if len(keys.enc) != 16:
        raise SecureChannelError("SCP02 needs 16-byte 3DES keys")
    return SessionKeys(
        s_enc=derive(keys.enc, CONST_S_ENC, sequence),
        c_mac=derive(keys.mac, CONST_C_MAC, sequence),
        r_mac=derive(keys.mac, CONST_R_MAC, sequence),
        s_dek=derive(keys.dek, CONST_S_DEK, sequence),
    )


def card_cryptogram(
    keys: SessionKeys, host_challenge: bytes, sequence: int, card_challenge: bytes
) -> bytes:
    """GP §E.4.2.1: full 3DES CBC-MAC (S-ENC) of host challenge || sequence || card challenge."""
    return crypto.des3_cbc_mac(
        keys.s_enc, host_challenge + sequence.to_bytes(2, "big") + card_challenge
    )


def host_cryptogram(
    keys: SessionKeys, sequence: int, card_challenge: bytes, host_challenge: bytes
) -> bytes:
    """GP §E.4.2.2: full 3DES CBC-MAC (S-ENC) of sequence || card challenge || host challenge."""
    return crypto.des3_cbc_mac(
        keys.s_enc, sequence.to_bytes(2, "big") + card_challenge + host_challenge
    )


@dataclass(frozen=True, slots=True)
class InitUpdateResponse:
    """GP §E.5.1.3: key diversification data (10) || key version (1) || SCP id 02 ||
    sequence counter (2) || card challenge (6) || card cryptogram (8)."""

    key_div_data: bytes
    kvn: int
    sequence: int
    card_challenge: bytes
    card_cryptogram: bytes

    def encode(self) -> bytes:
        return (
            self.key_div_data
            + bytes([self.kvn, SCP_ID])
            + self.sequence.to_bytes(2, "big")
            + self.card_challenge
            + self.card_cryptogram
        )

    @classmethod
    def decode(cls, raw: bytes) -> InitUpdateResponse:
        what = "SCP02 INITIALIZE UPDATE response"
        if len(raw) != INIT_UPDATE_RESPONSE_LEN:
            raise DecodeError(what, min(len(raw), INIT_UPDATE_RESPONSE_LEN), "needs 28 bytes")
        if raw[11] != SCP_ID:
            raise DecodeError(what, 11, f"SCP identifier {raw[11]:02X} is not 02")
        return cls(
            bytes(raw[:10]),
            raw[10],
            int.from_bytes(raw[12:14], "big"),
            bytes(raw[14:20]),
            bytes(raw[20:28]),
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """An open SCP02 channel: session keys, security level and the ICV of the next C-MAC."""

    keys: SessionKeys
    level: int
    icv: bytes = field(repr=False)


def _c_mac(keys: SessionKeys, message: bytes, icv: bytes) -> bytes:
    return crypto.retail_mac(keys.c_mac, message, icv)


def _next_icv(keys: SessionKeys, mac: bytes) -> bytes:
    # i=15 (b5 = 1): the ICV is the previous C-MAC encrypted with single DES, C-MAC key K1.
    return crypto.des_ecb_encrypt(keys.c_mac[:8], mac)


# --- host side ------------------------------------------------------------------------------


def initialize_update(kvn: int, host_challenge: bytes) -> CommandApdu:
    if len(host_challenge) != HOST_CHALLENGE_LEN:
        raise EncodeError("the host challenge is 8 bytes")
    return CommandApdu(0x80, INS_INITIALIZE_UPDATE, kvn, 0x00, host_challenge, le=256)


def open_host(keys: StaticKeys, host_challenge: bytes, response: InitUpdateResponse) -> SessionKeys:
    """The host checks the card cryptogram of the INITIALIZE UPDATE response."""
    session = session_keys(keys, response.sequence)
    expected = card_cryptogram(session, host_challenge, response.sequence, response.card_challenge)
    if not crypto.mac_equal(expected, response.card_cryptogram):
        raise SecureChannelError("the card cryptogram does not verify")
    return session


def external_authenticate(
    session: SessionKeys, response: InitUpdateResponse, host_challenge: bytes, level: int
) -> tuple[CommandApdu, Channel]:
    """EXTERNAL AUTHENTICATE (84 82 level 00 10, host cryptogram || C-MAC, zero ICV)."""
    check_level(level, LEVELS)
    cryptogram = host_cryptogram(
        session, response.sequence, response.card_challenge, host_challenge
    )
    header = bytes([0x80 | CLA_SM, INS_EXTERNAL_AUTHENTICATE, level, 0x00, 16])
    mac = _c_mac(session, header + cryptogram, bytes(8))
    command = CommandApdu(0x84, INS_EXTERNAL_AUTHENTICATE, level, 0x00, cryptogram + mac)
    return command, Channel(session, level, _next_icv(session, mac))


def wrap(channel: Channel, apdu: CommandApdu) -> tuple[CommandApdu, Channel]:
    """Protect a command at the channel's level: C-MAC over the modified header and the plain
    data, then (level 03) the data encrypted. Commands are unchanged at level 00."""
    if not channel.level & C_MAC:
        return apdu, channel
    if apdu.cla & CLA_SM:
        raise EncodeError("the command is already secured")
    cla = apdu.cla | CLA_SM
    if len(apdu.data) + MAC_LEN > DATA_LEN_MAX:
        raise EncodeError("the command data leaves no room for the C-MAC")
    header = bytes([cla, apdu.ins, apdu.p1, apdu.p2, len(apdu.data) + MAC_LEN])
    mac = _c_mac(channel.keys, header + apdu.data, channel.icv)
    data = apdu.data
    if channel.level & C_DECRYPTION and data:
        data = crypto.des_cbc_encrypt(channel.keys.s_enc, crypto.pad80(data))
        if len(data) + MAC_LEN > DATA_LEN_MAX:
            raise EncodeError("the encrypted command data leaves no room for the C-MAC")
    le = 256 if apdu.le is not None else None
    wrapped = CommandApdu(cla, apdu.ins, apdu.p1, apdu.p2, data + mac, le)
    return wrapped, replace(channel, icv=_next_icv(channel.keys, mac))


# --- card side ------------------------------------------------------------------------------


def card_initialize_update(
    keys: StaticKeys,
    *,
    kvn: int,
    key_div_data: bytes,
    sequence: int,
    card_challenge: bytes,
    host_challenge: bytes,
) -> tuple[InitUpdateResponse, SessionKeys]:
    if len(key_div_data) != KEY_DIV_DATA_LEN or len(card_challenge) != CARD_CHALLENGE_LEN:
        raise EncodeError("key diversification data is 10 bytes, the card challenge 6")
    session = session_keys(keys, sequence)
    cryptogram = card_cryptogram(session, host_challenge, sequence, card_challenge)
    return (
        InitUpdateResponse(key_div_data, kvn, sequence, card_challenge, cryptogram),
        session,
    )


def check_external_authenticate(
    session: SessionKeys,
    sequence: int,
    card_challenge: bytes,
    host_challenge: bytes,
    apdu: CommandApdu,
) -> Channel:
    """The card checks EXTERNAL AUTHENTICATE: level, host cryptogram and C-MAC."""
    check_level(apdu.p1, LEVELS)
    if apdu.p2 != 0x00 or len(apdu.data) != 16 or not apdu.cla & CLA_SM:
        raise SecureChannelError("EXTERNAL AUTHENTICATE needs CLA 84, P2 00 and 16 data bytes")
    cryptogram, mac = apdu.data[:8], apdu.data[8:]
    expected = host_cryptogram(session, sequence, card_challenge, host_challenge)
    header = bytes([apdu.cla, apdu.ins, apdu.p1, apdu.p2, 16])
    expected_mac = _c_mac(session, header + cryptogram, bytes(8))
    # Both checks run whatever the first one says (no early exit on the cryptogram).
    cryptogram_ok = crypto.mac_equal(expected, cryptogram)
    mac_ok = crypto.mac_equal(expected_mac, mac)
    if not (cryptogram_ok and mac_ok):
        raise SecureChannelError("the host cryptogram or its C-MAC does not verify")
    return Channel(session, apdu.p1, _next_icv(session, mac))


def unwrap(channel: Channel, apdu: CommandApdu) -> tuple[CommandApdu, Channel]:
    """Check and strip the protection of a command (CLA with bit 3 set). Raises
    SecureChannelError when the C-MAC does not verify or the cryptogram cannot be decrypted;
    the caller then closes the channel."""
    if not channel.level & C_MAC:
        raise SecureChannelError("the channel's security level has no C-MAC")
    if len(apdu.data) < MAC_LEN:
        raise SecureChannelError("the command carries no C-MAC")
    body, mac = apdu.data[:-MAC_LEN], apdu.data[-MAC_LEN:]
    if channel.level & C_DECRYPTION and body:
        if len(body) % crypto.DES_BLOCK:
            raise SecureChannelError("the encrypted data is not whole blocks")
        try:
            body = crypto.unpad80(crypto.des_cbc_decrypt(channel.keys.s_enc, body))
        except ValueError:
            raise SecureChannelError("the decrypted data has no 80 padding") from None
    header = bytes([apdu.cla, apdu.ins, apdu.p1, apdu.p2, len(body) + MAC_LEN])
    expected = _c_mac(channel.keys, header + body, channel.icv)
    if not crypto.mac_equal(expected, mac):
        raise SecureChannelError("the C-MAC does not verify")
    plain = CommandApdu(apdu.cla & ~CLA_SM, apdu.ins, apdu.p1, apdu.p2, body, apdu.le)
    return plain, replace(channel, icv=_next_icv(channel.keys, mac))
