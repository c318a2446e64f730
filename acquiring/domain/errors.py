"""The acquiring host's exception hierarchy. Every error the host's own code raises is an
``AcquiringError``; each boundary (ISO 8583 response code, HTTP problem, CLI line) maps these in
one place. Messages never contain key material or a full card number."""

from __future__ import annotations


class AcquiringError(Exception):
    """Base of every error raised by the acquiring host."""


class InvalidRecord(AcquiringError, ValueError):  # noqa: N818 - a verdict on input
    """A value that breaks a record's own rules (a 14-character MID, a negative amount, a
    discount rule whose equivalent rate is not whole). ``field`` names the offending field."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record = record
        self.field = field
        self.reason = reason
        super().__init__(f"{record}.{field}: {reason}")


class StoreError(AcquiringError):
    """The capture store refused or failed an operation."""


class DuplicateRecord(StoreError):  # noqa: N818 - names the situation
    """A unique key is already taken (exchange key, RRN, (TID, batch, STAN), MID, ...). The unit
    of work that raised it must be rolled back (leave the ``with`` block with the exception)."""


class RecordNotFound(StoreError, LookupError):  # noqa: N818 - names the situation
    """A write names a record that does not exist (a completion for an unknown authorisation, a
    status change for an unknown merchant)."""


class StoreIntegrityError(StoreError):
    """Any other constraint the database enforces (foreign key, CHECK) was broken: a bug in the
    caller, since the domain checks the same rules first."""


class KeyVaultError(AcquiringError):
    """The key vault cannot work: no key configured, a key of the wrong form, or a ciphertext
    that does not decrypt under this key and row (wrong NFCPAY_KEY, or data moved between rows).
    The message says which, and never contains key material."""
