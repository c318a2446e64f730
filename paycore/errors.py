"""The paycore exception hierarchy. Codec errors name what was being decoded and the byte offset."""

from __future__ import annotations


class PaycoreError(Exception):
    """Base of every error raised by paycore."""


class DecodeError(PaycoreError, ValueError):
    """Bytes that do not follow a format. ``what`` names the format/field, ``offset`` the byte."""

    def __init__(self, what: str, offset: int, reason: str) -> None:
        self.what = what
        self.offset = offset
        self.reason = reason
        super().__init__(f"{what}: {reason} (at byte {offset})")


class EncodeError(PaycoreError, ValueError):
    """A value that cannot be encoded (out of range, too long)."""


class MoneyError(PaycoreError, ValueError):
    """Text that is not an amount of money in the accepted form."""


class BadKeyError(PaycoreError, ValueError):
    """A key of the wrong length or form. The message never contains key material."""
