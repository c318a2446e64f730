"""Wiring of the OTA server: the SQL store with its key vault, the issuer keys, a delivery, the
service. The composition root (``nfcpay``, tests, the bench) chooses the links: a PC/SC reader
here, simulated SIMs in-process where the card simulator may be imported."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Final

from ota.adapters.delivery import EnvelopeDelivery
from ota.adapters.keyvault import KeyVault
from ota.adapters.sql_store import DEFAULT_URL, SqlStore, make_engine
from ota.domain.errors import OtaError
from ota.ports import EnvelopeLink
from ota.service import OtaConfig, OtaService
from paycore.errors import PaycoreError
from paycore.issuer_keys import IssuerKeys, parse

DB_ENV: Final = "NFCPAY_OTA_DB"
ISSUER_KEYS_ENV: Final = "NFCPAY_OTA_ISSUER_KEYS"
ISSUER_KEYS_BYTES_MAX: Final = 4_096


def database_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return url or env.get(DB_ENV) or DEFAULT_URL


def open_store(url: str, vault: KeyVault | None = None) -> SqlStore:
    store = SqlStore(make_engine(url), vault if vault is not None else KeyVault.from_env())
    store.create_tables()
    return store


def read_issuer_keys(path: Path | None) -> IssuerKeys | None:
    """The issuer key file (card.md §6) named by ``path`` or NFCPAY_OTA_ISSUER_KEYS; None when
    neither is given (jobs other than personalise need none)."""
    if path is None:
        name = os.environ.get(ISSUER_KEYS_ENV)
        if not name:
            return None
        path = Path(name)
    try:
        if path.stat().st_size > ISSUER_KEYS_BYTES_MAX:
            raise OtaError(f"issuer key file {path} is too large")
        return parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OtaError(f"cannot read issuer key file {path}: {exc.strerror}") from None
    except PaycoreError as exc:
        raise OtaError(f"issuer key file {path}: {exc}") from None


def service(
    store: SqlStore,
    links: Mapping[str, EnvelopeLink] | Callable[[str], EnvelopeLink],
    issuer_keys: IssuerKeys | None,
    config: OtaConfig | None = None,
) -> OtaService:
    return OtaService(
        store, EnvelopeDelivery(links), issuer_keys, date.today, config or OtaConfig()
    )
