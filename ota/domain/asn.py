"""The ASNs the server assigns (ota.md §3): a sequence of 16-digit numbers, BCD-coded."""

from __future__ import annotations

from typing import Final

from ota.domain.errors import InvalidRecordError
from paycore import bcd

#: Our choice: OTA-personalised wallets take ASNs 8800000000000001 and up (directly issued test
#: cards use other ranges).
ASN_FIRST: Final = 8_800_000_000_000_001
ASN_LAST: Final = 8_899_999_999_999_999


def asn_of(number: int) -> bytes:
    if not ASN_FIRST <= number <= ASN_LAST:
        raise InvalidRecordError("the ASN range of the OTA server is used up")
    return bcd.encode(f"{number:016d}")
