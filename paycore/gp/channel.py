"""What the two secure channel protocols share (GP Card Spec v2.3 §10; Amendment D): the
static key set, the security levels, the error, and the modified class byte of a C-MAC."""

from __future__ import annotations

from dataclasses import dataclass, field

from paycore.errors import BadKeyError, PaycoreError

#: Security level bits (GP Card Spec v2.3 Table 10-1, P1 of EXTERNAL AUTHENTICATE).
C_MAC = 0x01
C_DECRYPTION = 0x02
R_MAC = 0x10
R_ENCRYPTION = 0x20
NO_SECURITY = 0x00

CLA_SM = 0x04  # GP proprietary secure messaging, C-MAC in the last 8 bytes of the data
INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82
KEY_DIV_DATA_LEN = 10
HOST_CHALLENGE_LEN = 8
MAC_LEN = 8


class SecureChannelError(PaycoreError, ValueError):
    """A cryptogram or C-MAC that does not verify, a command that cannot be unwrapped, or a
    response whose R-MAC fails. The message never contains key material."""


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """A secure channel key set: Key-ENC, Key-MAC, Key-DEK (16-byte 3DES for SCP02, AES-128/
    192/256 for SCP03). Keys are never part of the repr."""

    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)

    def __post_init__(self) -> None:
        lengths = {len(self.enc), len(self.mac), len(self.dek)}
        if len(lengths) != 1 or lengths.pop() not in (16, 24, 32):
            raise BadKeyError("a key set needs three keys of one length: 16, 24 or 32 bytes")


def mac_cla(cla: int) -> int:
    """GP Amendment D §6.2.4: the class byte a C-MAC covers: logical channel number zero, bit 4
    zero, bit 3 one (GP proprietary secure messaging)."""
    return (cla & 0xF0) | CLA_SM


def check_level(level: int, allowed: frozenset[int]) -> None:
    if level not in allowed:
        raise SecureChannelError(f"security level {level:02X} is not supported")
