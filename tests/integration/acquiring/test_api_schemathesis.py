"""Schemathesis over the admin API's whole OpenAPI document, with an admin token, against a
SQLite store holding a little reference data: no request, valid or not, gets a 5xx, and every
response conforms to the document (status codes, content types, schemas), and no operation
ignores its authentication.

Deterministic (``derandomize``), a bounded number of examples per operation, well under a
minute in all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from acquiring.adapters.api import create_app
from acquiring.adapters.api_auth import Role, TokenAuth, mint_token
from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.counters import LiveCounters
from acquiring.domain.model import CardAccount, ChannelPartner, Issuer, Merchant, Terminal
from acquiring.ports import AdminUnitOfWork, HostUnitOfWork
from paycore.issuer_keys import IssuerKeys

EXAMPLES_MAX = 30
MID = "898310048990001"
TID = "T0000001"
ASN = "1000000000000001"
DAY = date(2026, 3, 1)
#: Operations whose bodies obey rules a JSON schema cannot state (effective_to after
#: effective_from, a discount's whole-number rate, min_fen <= max_fen): the domain answers
#: 422 invalid-record to some schema-valid bodies, by design.
DOMAIN_RULED = frozenset(
    {"/v1/merchants/{merchant_id}/commission-rules", "/v1/partners/{partner_id}/contracts"}
)
ADMIN_TOKEN, ADMIN_ENTRY = mint_token("fuzz-admin", Role.ADMIN, lambda n: b"\x07" * n)


class _StoreSlot:
    """The store the module's application talks to, put in place by the ``seeded_store``
    fixture (the application and its schema exist at import, so that each operation becomes
    its own test item; schemathesis' lazy ``from_fixture`` does not run on pytest 9)."""

    def __init__(self) -> None:
        self.store: SqlStore | None = None

    def _current(self) -> SqlStore:
        assert self.store is not None, "the seeded_store fixture is not active"
        return self.store

    def unit(self) -> AbstractContextManager[HostUnitOfWork]:
        return self._current().unit()

    def admin(self, *, readonly: bool = False) -> AbstractContextManager[AdminUnitOfWork]:
        return self._current().admin(readonly=readonly)

    def close(self) -> None:
        pass


SLOT = _StoreSlot()
COUNTERS = LiveCounters()
APP = create_app(
    SLOT, TokenAuth([ADMIN_ENTRY]), COUNTERS, clock=lambda: datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    folder: Path = tmp_path_factory.mktemp("api-fuzz")
    store = SqlStore.open(f"sqlite:///{folder / 'capture.db'}", KeyVault(os.urandom(32)))
    with store.admin() as uow:
        uow.add_partner(ChannelPartner("P1", "Partner One"))
        uow.add_merchant(Merchant(MID, "Noodle House", "5814", "ACQ1", DAY))
        uow.add_terminal(Terminal(TID, MID, DAY), bytes(range(16)))
        uow.add_issuer(
            Issuer("ISS1", "Issuer One"), IssuerKeys(1, b"\x11" * 16, b"\x22" * 16, b"\x33" * 16)
        )
        uow.add_card(CardAccount(ASN, "ISS1"))
    COUNTERS.record("0200", "00", 3.5)
    SLOT.store = store
    try:
        yield store
    finally:
        SLOT.store = None
        store.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_MAX,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_the_document_holds(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        excluded_checks=[positive_data_acceptance] if case.operation.path in DOMAIN_RULED else None,
    )
