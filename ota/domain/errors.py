"""One exception hierarchy for the OTA server; messages never carry a key."""

from __future__ import annotations


class OtaError(Exception):
    """Base of every error the OTA server raises on purpose."""


class InvalidRecordError(OtaError):
    """A SIM, job or campaign that breaks a rule (bad ICCID, key length, limit...)."""


class NotFoundError(OtaError):
    """No such SIM, job or campaign."""


class DuplicateError(OtaError):
    """A SIM registered twice."""


class JobStateError(OtaError):
    """A job transition the state machine does not allow."""


class ScriptError(OtaError):
    """A script that cannot be built or split into packets."""


class KeyVaultError(OtaError):
    """Encryption at rest failed: wrong vault key, damaged or moved ciphertext."""


class DeliveryError(OtaError):
    """A packet whose outcome is unknown: the link failed or no PoR came back."""
