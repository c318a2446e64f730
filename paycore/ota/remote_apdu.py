"""Remote APDUs in the compact format (ETSI TS 102 226 §5.1; ota.md §2). Pure.

Command: the secured data is a concatenation of short C-APDUs ``CLA INS P1 P2 P3 [data]``
where P3 is Lc, the number of data bytes that follow (0 = none). Le is not carried: the card
returns whatever response data the command has. Response (the PoR data, TS 102 226 §5.1.2):
number of commands executed (1) | status word of the last one (2) | its response data.
Execution stops at the first command whose status word is not 9000 or 61xx; that command counts
as executed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from paycore.apdu import DATA_LEN_MAX, CommandApdu, ResponseApdu
from paycore.errors import DecodeError, EncodeError

#: Our limit on the commands of one secured packet.
COMMANDS_MAX = 64
#: Response data of the last command carried in a PoR (a short response: 256 bytes at most).
RESPONSE_DATA_MAX = 256
_HEADER = 5

State = TypeVar("State")


def encode_commands(apdus: Sequence[CommandApdu]) -> bytes:
    """Concatenate C-APDUs as CLA INS P1 P2 Lc data (Le dropped; Lc 00 for no data)."""
    if len(apdus) > COMMANDS_MAX:
        raise EncodeError(f"{len(apdus)} commands is over {COMMANDS_MAX}")
    return b"".join(bytes((a.cla, a.ins, a.p1, a.p2, len(a.data))) + a.data for a in apdus)


def decode_commands(data: bytes) -> tuple[CommandApdu, ...]:
    """Split secured data into C-APDUs by their Lc (P3). DecodeError names the command."""
    out: list[CommandApdu] = []
    i = 0
    while i < len(data):
        if len(out) >= COMMANDS_MAX:
            raise DecodeError("compact remote command", i, f"over {COMMANDS_MAX} commands")
        if i + _HEADER > len(data):
            raise DecodeError(
                f"compact remote command {len(out) + 1}", i, "CLA INS P1 P2 P3 do not fit"
            )
        lc = data[i + 4]
        end = i + _HEADER + lc
        if end > len(data):
            raise DecodeError(
                f"compact remote command {len(out) + 1}",
                i + 4,
                f"Lc {lc} runs past the end ({len(data) - i - _HEADER} bytes left)",
            )
        cla, ins, p1, p2 = data[i], data[i + 1], data[i + 2], data[i + 3]
        out.append(CommandApdu(cla, ins, p1, p2, bytes(data[i + _HEADER : end])))
        i = end
    assert all(len(a.data) <= DATA_LEN_MAX for a in out)
    return tuple(out)


def continues(sw: int) -> bool:
    """TS 102 226 §5.1: the script goes on after 9000 and 61xx only."""
    return sw == 0x9000 or sw >> 8 == 0x61


def run_commands(
    apdus: Sequence[CommandApdu],
    state: State,
    execute: Callable[[State, CommandApdu], tuple[ResponseApdu, State]],
) -> tuple[tuple[ResponseApdu, ...], State]:
    """Run the commands in order through ``execute``, threading the state, and stop after the
    first response that does not continue the script. Returns the responses of the commands
    executed (the last one may be the failure) and the final state."""
    responses: list[ResponseApdu] = []
    for apdu in apdus:
        response, state = execute(state, apdu)
        responses.append(response)
        if not continues(response.sw):
            break
    return tuple(responses), state


@dataclass(frozen=True, slots=True)
class CompactResponse:
    """TS 102 226 §5.1.2: the PoR data of a compact script."""

    executed: int
    last_sw: int
    last_data: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.executed <= 0xFF or not 0 <= self.last_sw <= 0xFFFF:
            raise EncodeError("executed is one byte, the status word two")
        if len(self.last_data) > RESPONSE_DATA_MAX:
            raise EncodeError(f"response data of {len(self.last_data)} bytes is over 256")

    def encode(self) -> bytes:
        return bytes((self.executed,)) + self.last_sw.to_bytes(2, "big") + self.last_data

    @classmethod
    def from_responses(cls, responses: Sequence[ResponseApdu]) -> CompactResponse | None:
        """The PoR data for the responses of ``run_commands``; None when nothing ran."""
        if not responses:
            return None
        last = responses[-1]
        return cls(len(responses), last.sw, last.data)

    @property
    def completed(self) -> bool:
        """Whether the last command executed ended the script successfully."""
        return continues(self.last_sw)


def decode_response(data: bytes) -> CompactResponse:
    if len(data) < 3:
        raise DecodeError("compact remote response", len(data), "needs count and status word")
    if len(data) - 3 > RESPONSE_DATA_MAX:
        raise DecodeError("compact remote response", 3 + RESPONSE_DATA_MAX, "data over 256 bytes")
    return CompactResponse(data[0], int.from_bytes(data[1:3], "big"), bytes(data[3:]))
