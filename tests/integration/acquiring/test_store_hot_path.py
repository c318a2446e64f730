"""The store's message-path lookups that fold several reads into one round trip, and the
admin listing of an issuer's key versions, on SQLite and PostgreSQL (fixtures and helpers of
test_store.py)."""

from __future__ import annotations

import dataclasses

import pytest

from acquiring.adapters.sql.store import SqlStore
from acquiring.domain.errors import DuplicateRecord, InvalidRecord, RecordNotFound
from acquiring.domain.model import (
    Completion,
    ExchangeKey,
    ExchangeRecord,
    MerchantStatus,
    Reversal,
    ReversalReason,
    TacVerdict,
    TxnKey,
)
from tests.integration.acquiring.test_store import (
    ISSUER,
    ISSUER_KEYS,
    MAK,
    MID,
    MID2,
    NOW,
    TID,
    TID2,
    authorise,
    db_url,
    register,
    store,
    vault_key,
)

__all__ = ["db_url", "store", "vault_key"]  # fixtures used by name


def test_terminal_session_is_terminal_mak_and_merchant(store: SqlStore) -> None:
    register(store)
    with store.admin() as uow:
        uow.set_merchant_status(MID2, MerchantStatus.SUSPENDED)
        uow.sign_off(TID2)
    with store.unit() as uow:
        session = uow.get_terminal_session(TID)
        assert session is not None
        assert session.terminal == uow.get_terminal(TID)
        assert session.merchant == uow.get_merchant(MID)
        assert session.mak == MAK and session.previous is None
        assert "55036372" not in repr(session)  # never the MAK
        other = uow.get_terminal_session(TID2)
        assert other is not None and other.mak is None  # signed off: no MAK to use
        assert other.merchant is not None and other.merchant.status is MerchantStatus.SUSPENDED
        assert uow.get_terminal_session("T9999999") is None


def test_terminal_session_brings_the_exchange_entry_of_its_key(store: SqlStore) -> None:
    register(store)
    key = ExchangeKey(TID, 1, 7, "0200")
    record = ExchangeRecord(key, bytes(32), b"\x02\x10response", NOW)
    with store.unit() as uow:
        uow.put_exchange(record)
    with store.unit() as uow:
        session = uow.get_terminal_session(TID, key)
        assert session is not None and session.previous == record
        for other in (dataclasses.replace(key, stan=8), dataclasses.replace(key, mti="0220")):
            found = uow.get_terminal_session(TID, other)
            assert found is not None and found.previous is None
        with pytest.raises(InvalidRecord):
            uow.get_terminal_session(TID2, key)


def test_txn_state_follows_completion_and_reversal(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        auth = authorise(uow, 1)
        state = uow.get_txn_state(auth.key, for_update=True)
        assert state is not None and state.authorisation == auth
        assert (state.completed, state.reversed) == (False, False)
        done = Completion(
            auth.key, 1_000, bytes(4), TacVerdict.OK, 1, 7, NOW.replace(tzinfo=None),
            auth.business_date, NOW,
        )  # fmt: skip
        uow.add_completion(done)
        uow.add_reversal(Reversal(auth.key, ReversalReason.NO_ANSWER, auth.business_date, NOW))
        state = uow.get_txn_state(auth.key)
        assert state is not None and (state.completed, state.reversed) == (True, True)
        assert uow.get_txn_state(TxnKey(TID, 1, 2)) is None


def test_a_completion_needs_its_approved_authorisation_of_the_same_day(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        auth = authorise(uow, 1)
    completion = Completion(
        auth.key, 1_000, bytes(4), TacVerdict.OK, 1, 7, NOW.replace(tzinfo=None),
        auth.business_date, NOW,
    )  # fmt: skip
    with pytest.raises(RecordNotFound), store.unit() as uow:
        uow.add_completion(dataclasses.replace(completion, key=TxnKey(TID, 1, 99)))
    with pytest.raises(InvalidRecord), store.unit() as uow:
        later = auth.business_date.replace(day=auth.business_date.day + 1)
        uow.add_completion(dataclasses.replace(completion, business_date=later))
    with store.unit() as uow:
        uow.add_completion(completion)
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        uow.add_completion(completion)
    with store.unit() as uow:
        assert uow.get_completion(auth.key) == completion


def test_issuer_key_versions_lists_what_is_stored(store: SqlStore) -> None:
    register(store)
    with store.admin() as uow:
        assert uow.issuer_key_versions(ISSUER) == [1]
        for version in (7, 3, 255, 0):
            uow.add_issuer_keys(ISSUER, dataclasses.replace(ISSUER_KEYS, key_version=version))
    with store.admin(readonly=True) as uow:
        assert uow.issuer_key_versions(ISSUER) == [0, 1, 3, 7, 255]
        assert uow.issuer_key_versions("NOBODY") == []
