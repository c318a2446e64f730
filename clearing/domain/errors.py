"""Clearing's exception hierarchy. Bad input gets a named error that says which record and
field broke which rule; each boundary (CLI line, run report) maps these in one place."""

from __future__ import annotations


class ClearingError(Exception):
    """Base of every error raised by clearing."""


class InvalidInput(ClearingError, ValueError):  # noqa: N818 - a verdict on input
    """A value that breaks a record's own rules (a negative amount, a discount rule whose
    equivalent rate is not whole, two versions of a rule in force on one day). ``field`` names
    the offending field."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record = record
        self.field = field
        self.reason = reason
        super().__init__(f"{record}.{field}: {reason}")


def check_int(record: str, name: str, value: object, low: int, high: int | None) -> None:
    """Refuse anything but an integer (``bool`` included) in ``low..high`` (``None``: no top)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(record, name, "must be an integer")
    if value < low or (high is not None and value > high):
        shown = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidInput(record, name, f"must be {shown}, not {value}")
