"""Errors of the card simulator."""

from __future__ import annotations


class CardSimError(Exception):
    """Base of the card simulator's errors."""


class CardImageError(CardSimError):
    """A card image that cannot be loaded: damaged, hand-edited, or of an unknown format.
    Loading never yields a half-loaded card: either the whole image is valid or this is raised."""


class PowerLoss(CardSimError):  # noqa: N818 - it is an event, not a failure of the caller
    """The card lost power in the middle of a command (raised by a test's store at a write
    point, or by a reader pulling the card). The runtime is then powered off; whatever the store
    committed is what the next power-on sees."""
