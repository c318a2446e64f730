"""The wallet's personalisation data (ota.md §1, our choice), shared by the SIM's issuer
security domain (which checks and stores it) and the OTA server (which builds it).

DGIs: 0101 EF15 (30 bytes); 0102 EF16 (20); 0201 balance ceiling (4, fen); 0202 PIN (BCD,
2-6 bytes: the PIN check for loads on; empty: off); 0203 key version of the three keys (1,
default 01; our addition, docs/ota-isd.md); 8001 DPK || DLK || DTK (48) encrypted under the DEK
of the channel; 9001 their KCVs, 3 bytes each, 3DES_K(00 x 8)[:3].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from paycore import crypto
from paycore.apdu import CommandApdu
from paycore.errors import EncodeError
from paycore.gp.commands import encode_dgi, install_for_personalization, store_data
from paycore.gp.dek import Dek

DGI_EF15 = 0x0101
DGI_EF16 = 0x0102
DGI_CEILING = 0x0201
DGI_PIN = 0x0202
DGI_KEY_VERSION = 0x0203
DGI_KEYS = 0x8001
DGI_KCVS = 0x9001
#: The DGIs a wallet needs before it becomes PERSONALIZED.
MANDATORY_DGIS = (DGI_EF15, DGI_EF16, DGI_KEYS, DGI_KCVS)
#: The DGIs a PERSONALIZED wallet still accepts (limit and PIN updates).
UPDATE_DGIS = (DGI_CEILING, DGI_PIN)
ENCRYPTED_DGIS = (DGI_KEYS,)
KEYS_LEN = 48
KCVS_LEN = 9
STORE_DATA_BLOCK_MAX = 239  # leaves room for a C-MAC and the padding of C-ENCRYPTION


@dataclass(frozen=True, slots=True)
class WalletPerso:
    """What the issuer puts on a wallet. Keys are never part of the repr."""

    ef15: bytes
    ef16: bytes
    dpk: bytes = field(repr=False)
    dlk: bytes = field(repr=False)
    dtk: bytes = field(repr=False)
    key_version: int = 1
    ceiling_fen: int | None = None
    pin_bcd: bytes | None = field(default=None, repr=False)

    def dgis(self, dek: Dek) -> list[tuple[int, bytes]]:
        """Every DGI, the keys encrypted under ``dek``, in the order the card needs them."""
        keys = self.dpk + self.dlk + self.dtk
        if len(keys) != KEYS_LEN:
            raise EncodeError("DPK, DLK and DTK are 16 bytes each")
        out = [
            (DGI_EF15, self.ef15),
            (DGI_EF16, self.ef16),
            (DGI_KEY_VERSION, bytes([self.key_version])),
        ]
        if self.ceiling_fen is not None:
            out.append((DGI_CEILING, self.ceiling_fen.to_bytes(4, "big")))
        if self.pin_bcd is not None:
            out.append((DGI_PIN, self.pin_bcd))
        kcvs = b"".join(crypto.kcv_des(k) for k in (self.dpk, self.dlk, self.dtk))
        out += [(DGI_KEYS, dek.encrypt(keys)), (DGI_KCVS, kcvs)]
        return out


def store_data_commands(
    aid: bytes, dgis: Sequence[tuple[int, bytes]], *, block_max: int = STORE_DATA_BLOCK_MAX
) -> list[CommandApdu]:
    """INSTALL [for personalization] of ``aid``, then STORE DATA blocks of whole DGIs (P2
    numbered from 00, P1 b8 on the last, b7b6 11 on blocks carrying an encrypted DGI)."""
    blocks: list[list[tuple[int, bytes]]] = [[]]
    size = 0
    for dgi, value in dgis:
        encoded = len(encode_dgi(dgi, value))
        if encoded > block_max:
            raise EncodeError(f"DGI {dgi:04X} does not fit in one STORE DATA block")
        if size + encoded > block_max and blocks[-1]:
            blocks.append([])
            size = 0
        blocks[-1].append((dgi, value))
        size += encoded
    commands = [install_for_personalization(aid)]
    for n, block in enumerate(blocks):
        data = b"".join(encode_dgi(d, v) for d, v in block)
        encrypted = any(d in ENCRYPTED_DGIS for d, _ in block)
        commands.append(store_data(n, data, last=n == len(blocks) - 1, encrypted=encrypted))
    return commands
