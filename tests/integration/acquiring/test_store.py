"""The capture store against real databases: every test runs on SQLite (WAL, a temp file) and
on PostgreSQL (a fresh schema per test on 127.0.0.1:5432, dropped afterwards). PostgreSQL tests
skip when the server is unreachable, except under CI=true, where they fail.

The fixtures (``db_url``, ``vault_key``, ``store``) are in this module; move them to a
conftest.py here when a second store-backed test module needs them."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql import schema
from acquiring.adapters.sql.migrate import current_revision, head_revision
from acquiring.adapters.sql.store import SqlStore, SqlUnitOfWork
from acquiring.adapters.sql.views import VIEW_NAMES, clearing_transactions
from acquiring.domain.commission import RuleKind
from acquiring.domain.errors import (
    DuplicateRecord,
    InvalidRecord,
    KeyVaultError,
    RecordNotFound,
    StoreError,
    StoreIntegrityError,
)
from acquiring.domain.model import (
    Authorisation,
    BatchTotals,
    BatchUploadRecord,
    CardAccount,
    CardStatus,
    ChannelPartner,
    CommissionRule,
    Completion,
    ContractKind,
    DayTotals,
    ExchangeKey,
    ExchangeRecord,
    Issuer,
    Merchant,
    MerchantStatus,
    PartnerContract,
    Reversal,
    ReversalReason,
    TacVerdict,
    Terminal,
    TerminalSettlement,
    TerminalStatus,
    TxnKey,
    TxnKind,
)
from acquiring.ports import AdminUnitOfWork, HostUnitOfWork, Store, TxnQuery
from paycore.iso8583.fields import ResponseCode
from paycore.issuer_keys import IssuerKeys
from tests.integration.databases import DB_PARAMS, database_url

MID = "898310048990001"
MID2 = "898310048990002"
TID = "T0000001"
TID2 = "T0000002"
ASN = "1000000000000001"
ASN2 = "1000000000000002"
ISSUER = "ISS1"
DAY = date(2026, 3, 1)
NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
TMK = bytes.fromhex("CA5D92598DCA48CE8A4C76361A9269E9")
TMK2 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
MAK = bytes.fromhex("55036372B17543ECB173730768B8D6C4")
ISSUER_KEYS = IssuerKeys(
    1,
    bytes.fromhex("11223344556677888877665544332211"),
    bytes.fromhex("3F013F013F013F013F013F013F013F01"),
    bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
    bytes.fromhex("0102030405060708"),
)


def register(store: SqlStore) -> None:
    with store.admin() as uow:
        uow.add_partner(ChannelPartner("P1", "Partner One"))
        uow.add_merchant(
            Merchant(MID, "Noodle House", "5814", "ACQ1", DAY, signing_partner_id="P1")
        )
        uow.add_merchant(Merchant(MID2, "Cinema", "7832", "ACQ1", DAY))
        uow.add_terminal(Terminal(TID, MID, DAY, maintaining_partner_id="P1"), TMK)
        uow.add_terminal(Terminal(TID2, MID2, DAY), TMK2)
        uow.add_issuer(Issuer(ISSUER, "Issuer One"), ISSUER_KEYS)
        uow.add_card(CardAccount(ASN, ISSUER))
        uow.add_card(CardAccount(ASN2, ISSUER))
        uow.sign_on(TID, MAK, NOW)
        uow.sign_on(TID2, MAK, NOW)


def authorise(
    uow: HostUnitOfWork,
    stan: int,
    *,
    kind: TxnKind = TxnKind.PURCHASE,
    amount_fen: int = 1_000,
    code: ResponseCode = ResponseCode.APPROVED,
    day: date = DAY,
    asn: str = ASN,
    terminal_id: str = TID,
    merchant_id: str = MID,
    batch_no: int = 1,
    original_rrn: str | None = None,
) -> Authorisation:
    approved = code is ResponseCode.APPROVED
    record = Authorisation(
        kind=kind,
        key=TxnKey(terminal_id, batch_no, stan),
        merchant_id=merchant_id,
        asn=asn,
        amount_fen=amount_fen,
        rrn=uow.next_rrn(),
        response_code=code,
        business_date=day,
        received_at=NOW,
        card_counter=stan,
        key_version=1,
        psam_terminal_id=bytes.fromhex("001122334455"),
        balance_before_fen=100_000,
        auth_code=f"{stan:06d}" if approved else None,
        card_random=None if kind is TxnKind.PURCHASE else bytes.fromhex("11223344"),
        original_rrn=original_rrn,
    )
    uow.add_authorisation(record)
    return record


def complete(
    uow: HostUnitOfWork,
    auth: Authorisation,
    *,
    amount_fen: int | None = None,
    verdict: TacVerdict = TacVerdict.OK,
) -> Completion:
    record = Completion(
        auth.key,
        auth.amount_fen if amount_fen is None else amount_fen,
        bytes.fromhex("B3A0D49C"),
        verdict,
        auth.card_counter,
        7,
        datetime(2026, 3, 1, 10, 0, 5),
        auth.business_date,
        NOW + timedelta(seconds=1),
    )
    uow.add_completion(record)
    return record


def reverse(uow: HostUnitOfWork, auth: Authorisation) -> Reversal:
    record = Reversal(auth.key, ReversalReason.NO_ANSWER, auth.business_date, NOW)
    uow.add_reversal(record)
    return record


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path, schema_prefix="nfcpay_test") as url:
        yield url


@pytest.fixture
def vault_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def store(db_url: str, vault_key: bytes) -> Iterator[SqlStore]:
    opened = SqlStore.open(db_url, KeyVault(vault_key))
    try:
        yield opened
    finally:
        opened.close()


# --- schema ------------------------------------------------------------------------------------


def test_migrations_apply_from_empty_and_match_the_tables(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision() == "0002"
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, schema.metadata) == []
        inspector = inspect(conn)
        assert set(inspector.get_view_names()) >= set(VIEW_NAMES)
        assert {t.name for t in schema.metadata.sorted_tables} <= set(inspector.get_table_names())


def test_opening_again_is_a_no_op(store: SqlStore, db_url: str, vault_key: bytes) -> None:
    register(store)
    again = SqlStore.open(db_url, KeyVault(vault_key))
    try:
        with again.unit() as uow:
            assert uow.get_merchant(MID) is not None
    finally:
        again.close()


def test_sqlite_pragmas(store: SqlStore) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_the_protocols_are_implemented(store: SqlStore) -> None:
    as_store: Store = store
    with as_store.unit() as host_uow:
        assert isinstance(host_uow, SqlUnitOfWork)
    with store.admin() as admin_uow:
        typed: AdminUnitOfWork = admin_uow
        assert typed is admin_uow


# --- reference data ----------------------------------------------------------------------------


def test_reference_data_round_trips(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        assert uow.get_terminal(TID) == Terminal(
            TID, MID, DAY, maintaining_partner_id="P1", signed_on=True
        )
        merchant = uow.get_merchant(MID, for_update=True)
        assert merchant is not None and merchant.signing_partner_id == "P1"
        assert uow.get_card(ASN) == CardAccount(ASN, ISSUER)
        assert uow.get_issuer(ISSUER) == Issuer(ISSUER, "Issuer One")
        assert uow.get_issuer_keys(ISSUER, 1) == ISSUER_KEYS
        assert uow.get_issuer_keys(ISSUER, 2) is None
        keys = uow.get_terminal_keys(TID)
        assert keys is not None and keys.tmk == TMK and keys.mak == MAK
        assert uow.get_terminal("T9999999") is None
        assert uow.get_terminal_keys("T9999999") is None


def test_registration_errors(store: SqlStore) -> None:
    register(store)
    with pytest.raises(DuplicateRecord), store.admin() as uow:
        uow.add_merchant(Merchant(MID, "Again", "5814", "ACQ1", DAY))
    with pytest.raises(RecordNotFound), store.admin() as uow:
        uow.add_terminal(Terminal("T0000009", "898310048999999", DAY), TMK)
    with pytest.raises(RecordNotFound), store.admin() as uow:
        uow.add_card(CardAccount("1000000000000009", "NOBODY"))
    with pytest.raises(InvalidRecord, match="signed_on"), store.admin() as uow:
        uow.add_terminal(Terminal("T0000009", MID, DAY, signed_on=True), TMK)
    with pytest.raises(RecordNotFound), store.admin() as uow:
        uow.set_merchant_status("898310048999999", MerchantStatus.CLOSED)


def test_status_changes_and_hot_list(store: SqlStore) -> None:
    register(store)
    with store.admin() as uow:
        uow.set_card_status(ASN, CardStatus.HOT)
        uow.set_terminal_status(TID, TerminalStatus.SUSPENDED)
        uow.set_merchant_status(MID, MerchantStatus.SUSPENDED)
        uow.sign_off(TID2)
    with store.unit() as host:
        card, terminal = host.get_card(ASN), host.get_terminal(TID)
        merchant, other = host.get_merchant(MID), host.get_terminal(TID2)
        assert card is not None and card.status is CardStatus.HOT
        assert terminal is not None and terminal.status is TerminalStatus.SUSPENDED
        assert merchant is not None and merchant.status is MerchantStatus.SUSPENDED
        assert other is not None and not other.signed_on


def test_commission_rules_are_versioned(store: SqlStore) -> None:
    register(store)
    with store.admin() as uow:
        v1 = uow.add_commission_rule(CommissionRule(MID, RuleKind.PERCENT, DAY, rate_bp=1000))
        v2 = uow.add_commission_rule(
            CommissionRule.discount(MID, date(2026, 4, 1), user_bp=8000, settle_bp=6000)
        )
        uow.add_commission_rule(CommissionRule(MID2, RuleKind.ZERO, DAY))
        assert (v1.version, v2.version) == (1, 2)
        assert uow.commission_rules(MID) == [v1, v2]
    with pytest.raises(DuplicateRecord), store.admin() as uow:
        uow.add_commission_rule(dataclasses.replace(v1, rate_bp=500))


def test_partners_and_contracts(store: SqlStore) -> None:
    register(store)
    with store.admin() as uow:
        signing = uow.add_contract(
            PartnerContract.signing("P1", DAY, share_bp=3000, expansion_fee_fen=50_000)
        )
        upkeep = uow.add_contract(PartnerContract.maintenance("P1", DAY))
        assert signing.contract_id > 0 and upkeep.contract_id > signing.contract_id
        assert uow.contracts("P1") == [signing, upkeep]
        assert [c.kind for c in uow.contracts("P1")] == [
            ContractKind.SIGNING,
            ContractKind.MAINTENANCE,
        ]
        assert uow.get_partner("P1") == ChannelPartner("P1", "Partner One")


def test_listings_page_by_key(store: SqlStore) -> None:
    register(store)
    with store.admin(readonly=True) as uow:
        assert [m.merchant_id for m in uow.list_merchants(limit=1)] == [MID]
        assert [m.merchant_id for m in uow.list_merchants(after_merchant_id=MID)] == [MID2]
        assert [t.terminal_id for t in uow.list_terminals(merchant_id=MID2)] == [TID2]
        with pytest.raises(InvalidRecord, match="limit"):
            uow.list_terminals(limit=501)


# --- keys at rest ------------------------------------------------------------------------------


def test_keys_are_not_stored_in_clear(store: SqlStore) -> None:
    register(store)
    with store.engine.connect() as conn:
        t = schema.terminals.c
        tmk_ct, mak_ct = conn.execute(select(t.tmk_ct, t.mak_ct).where(t.terminal_id == TID)).one()
        issuer_ct = conn.execute(select(schema.issuer_keys.c.keys_ct)).scalar_one()
    for blob in (tmk_ct, mak_ct, issuer_ct):
        raw = bytes(blob)
        for secret in (TMK, MAK, ISSUER_KEYS.mpk, ISSUER_KEYS.mlk, ISSUER_KEYS.mtk):
            assert secret not in raw
            assert secret.hex().upper().encode() not in raw
            assert secret.hex().encode() not in raw


def test_a_ciphertext_swapped_between_rows_does_not_decrypt(store: SqlStore) -> None:
    register(store)
    with store.engine.begin() as conn:
        t = schema.terminals.c
        other = conn.execute(select(t.tmk_ct).where(t.terminal_id == TID2)).scalar_one()
        conn.execute(schema.terminals.update().where(t.terminal_id == TID).values(tmk_ct=other))
    with pytest.raises(KeyVaultError, match="tmk:T0000001"), store.unit() as uow:
        uow.get_terminal_keys(TID)


def test_a_wrong_vault_key_is_a_clear_error_at_open(store: SqlStore, db_url: str) -> None:
    register(store)
    with pytest.raises(KeyVaultError, match="not the one this store's keys were encrypted under"):
        SqlStore.open(db_url, KeyVault(bytes(32)))
    wrong = SqlStore(store.engine, KeyVault(bytes(32)))  # skipping the check at open
    with pytest.raises(KeyVaultError, match="does not decrypt"), wrong.unit() as uow:
        uow.get_terminal_keys(TID)


def test_sign_on_replaces_the_mak(store: SqlStore) -> None:
    register(store)
    new_mak = bytes(range(16))
    with store.unit() as uow:
        uow.sign_on(TID, new_mak, NOW)
    with store.unit() as uow:
        keys = uow.get_terminal_keys(TID)
        assert keys is not None and keys.mak == new_mak and keys.tmk == TMK
    with pytest.raises(RecordNotFound), store.unit() as uow:
        uow.sign_on("T9999999", new_mak, NOW)


# --- exchange log and uniqueness ---------------------------------------------------------------


def test_exchange_key_is_unique_and_replays_the_response(store: SqlStore) -> None:
    key = ExchangeKey(TID, 1, 11, "0200")
    record = ExchangeRecord(key, bytes(range(32)), b"\x02\x10response", NOW)
    with store.unit() as uow:
        assert uow.get_exchange(key) is None
        uow.put_exchange(record)
        uow.put_exchange(ExchangeRecord(dataclasses.replace(key, mti="0220"), bytes(32), b"x", NOW))
    with store.unit() as uow:
        assert uow.get_exchange(key) == record
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        uow.put_exchange(dataclasses.replace(record, request_digest=bytes(32)))
    with store.unit() as uow:
        stored = uow.get_exchange(key)
        assert stored is not None and stored.same_request(bytes(range(32)))


def test_rrns_are_unique(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        first = authorise(uow, 1)
        rrns = {uow.next_rrn() for _ in range(50)}
    with store.unit() as uow:
        rrns.add(uow.next_rrn())
    assert len(rrns) == 51 and first.rrn not in rrns
    assert all(len(rrn) == 12 and rrn.isdigit() for rrn in rrns)
    with pytest.raises(DuplicateRecord, match="rrn"), store.unit() as uow:
        uow.add_authorisation(dataclasses.replace(first, key=TxnKey(TID, 1, 2)))


def test_terminal_batch_stan_is_unique(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        first = authorise(uow, 1)
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        uow.add_authorisation(dataclasses.replace(first, rrn=uow.next_rrn()))


def test_the_database_refuses_an_approved_amount_out_of_range(store: SqlStore) -> None:
    """A pair assertion: the domain refuses 50,000 fen, and so does a CHECK constraint."""
    register(store)
    with store.unit() as uow:
        good = authorise(uow, 1)
    row = {
        **{c.name: None for c in schema.authorisations.c if c.name != "txn_id"},
        "kind": "purchase",
        "terminal_id": TID,
        "merchant_id": MID,
        "batch_no": 1,
        "stan": 2,
        "asn": ASN,
        "amount_fen": 50_000,
        "rrn": "999999999999",
        "auth_code": "000001",
        "response_code": "00",
        "business_date": DAY,
        "received_at": NOW,
        "card_counter": 0,
        "key_version": 1,
        "psam_terminal_id": "001122334455",
        "balance_before_fen": 0,
    }
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(schema.authorisations.insert().values(**row))
    with store.unit() as uow:
        assert uow.get_authorisation(good.key) == good


# --- units of work -----------------------------------------------------------------------------


class BoomError(Exception):
    pass


def test_a_unit_of_work_rolls_back_on_exception(store: SqlStore) -> None:
    register(store)
    with pytest.raises(BoomError), store.unit() as uow:
        auth = authorise(uow, 1)
        complete(uow, auth)
        uow.put_exchange(ExchangeRecord(ExchangeKey(TID, 1, 1, "0200"), bytes(32), b"r", NOW))
        raise BoomError
    with store.unit() as uow:
        assert uow.get_authorisation(TxnKey(TID, 1, 1)) is None
        assert uow.get_exchange(ExchangeKey(TID, 1, 1, "0200")) is None
    with store.admin(readonly=True) as admin:
        assert admin.search_transactions(TxnQuery()).items == ()


def test_a_unit_with_a_duplicate_stores_nothing(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        uow.put_exchange(ExchangeRecord(ExchangeKey(TID, 1, 1, "0200"), bytes(32), b"r", NOW))
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        authorise(uow, 1)
        uow.put_exchange(ExchangeRecord(ExchangeKey(TID, 1, 1, "0200"), bytes(32), b"r", NOW))
    with store.unit() as uow:
        assert uow.get_authorisation(TxnKey(TID, 1, 1)) is None


def test_a_savepoint_undoes_only_its_own_work(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        kept = authorise(uow, 1)
        with pytest.raises(DuplicateRecord), uow.savepoint():
            authorise(uow, 2)
            uow.add_authorisation(dataclasses.replace(kept, rrn=uow.next_rrn()))
        authorise(uow, 3)
    with store.unit() as uow:
        assert uow.get_authorisation(TxnKey(TID, 1, 1)) == kept
        assert uow.get_authorisation(TxnKey(TID, 1, 2)) is None
        assert uow.get_authorisation(TxnKey(TID, 1, 3)) is not None


def test_a_readonly_unit_refuses_writes(store: SqlStore) -> None:
    register(store)
    with pytest.raises(StoreError, match="read-only"), store.admin(readonly=True) as uow:
        uow.set_card_status(ASN, CardStatus.HOT)


# --- completions, reversals, totals ------------------------------------------------------------


def test_completion_and_reversal_rules(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        auth = authorise(uow, 1)
        declined = authorise(uow, 2, code=ResponseCode.INVALID_CARD)
        completion = complete(uow, auth)
        reversal = reverse(uow, auth)
    with store.unit() as uow:
        assert uow.get_completion(auth.key) == completion
        assert uow.get_reversal(auth.key) == reversal
        assert uow.get_completion(declined.key) is None
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        complete(uow, auth)
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        reverse(uow, auth)
    with pytest.raises(RecordNotFound), store.unit() as uow:
        uow.add_completion(dataclasses.replace(completion, key=TxnKey(TID, 1, 99)))
    with pytest.raises(StoreIntegrityError, match="declined"), store.unit() as uow:
        complete(uow, declined)
    with pytest.raises(InvalidRecord, match="business_date"), store.unit() as uow:
        other = authorise(uow, 3)
        uow.add_completion(
            dataclasses.replace(complete_record(other), business_date=date(2026, 3, 2))
        )


def complete_record(auth: Authorisation) -> Completion:
    return Completion(
        auth.key, auth.amount_fen, bytes(4), TacVerdict.OK, 0, 1, datetime(2026, 3, 1), DAY, NOW
    )


def test_day_totals_count_approved_unreversed_purchases(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        authorise(uow, 1, amount_fen=1_000)
        complete(uow, authorise(uow, 2, amount_fen=2_000))
        reverse(uow, authorise(uow, 3, amount_fen=4_000))  # reversed
        authorise(uow, 4, amount_fen=8_000, code=ResponseCode.OVER_DAILY_AMOUNT_LIMIT)
        authorise(uow, 5, kind=TxnKind.LOAD, amount_fen=16_000)  # a load
        authorise(uow, 6, amount_fen=32_000, day=date(2026, 3, 2))  # another day
        authorise(uow, 7, amount_fen=64, asn=ASN2)  # another card
        authorise(uow, 8, amount_fen=128, asn=ASN2, terminal_id=TID2, merchant_id=MID2)
    with store.unit() as uow:
        assert uow.card_day_totals(ASN, DAY) == DayTotals(3_000, 2)
        assert uow.card_day_totals(ASN2, DAY) == DayTotals(192, 2)
        assert uow.card_day_totals(ASN, date(2026, 3, 2)) == DayTotals(32_000, 1)
        assert uow.card_day_totals(ASN, date(2026, 3, 3)) == DayTotals(0, 0)
        assert uow.merchant_day_totals(MID, DAY) == DayTotals(3_064, 3)
        assert uow.merchant_day_totals(MID2, DAY) == DayTotals(128, 1)


def test_refunded_totals(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        original = authorise(uow, 1, amount_fen=5_000)
        rrn = original.rrn
        authorise(uow, 2, kind=TxnKind.REFUND, amount_fen=1_000, original_rrn=rrn)
        complete(uow, authorise(uow, 3, kind=TxnKind.REFUND, amount_fen=700, original_rrn=rrn))
        reverse(uow, authorise(uow, 4, kind=TxnKind.REFUND, amount_fen=300, original_rrn=rrn))
        authorise(
            uow,
            5,
            kind=TxnKind.REFUND,
            amount_fen=9_000,
            original_rrn=rrn,
            code=ResponseCode.AMOUNT_DIFFERS_FROM_ORIGINAL,
        )
    with store.unit() as uow:
        assert uow.refunded_total_fen(rrn) == 1_700
        assert uow.refunded_total_fen("000000000000") == 0
        found = uow.get_authorisation_by_rrn(rrn, for_update=True)
        assert found == original


def test_batch_totals_count_completed_unreversed_by_completion_amount(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        p1 = authorise(uow, 1, amount_fen=1_000)
        complete(uow, p1)
        complete(uow, authorise(uow, 2, amount_fen=2_000), amount_fen=1_900)  # card did less
        authorise(uow, 3, amount_fen=4_000)  # never completed
        p4 = authorise(uow, 4, amount_fen=8_000)
        complete(uow, p4)
        reverse(uow, p4)  # completed, then reversed
        complete(uow, authorise(uow, 5, kind=TxnKind.LOAD, amount_fen=50_000))
        complete(uow, authorise(uow, 6, kind=TxnKind.REFUND, amount_fen=300, original_rrn=p1.rrn))
        complete(uow, authorise(uow, 7, amount_fen=16_000, batch_no=2))  # next batch
        authorise(uow, 8, amount_fen=5, code=ResponseCode.INVALID_CARD)
    with store.unit() as uow:
        assert uow.batch_totals(TID, 1) == BatchTotals(2_900, 2, 300, 1, 50_000, 1)
        assert uow.batch_totals(TID, 2) == BatchTotals(16_000, 1)
        assert uow.batch_totals(TID, 3) == BatchTotals()


def test_settlement_and_batch_close(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        host = uow.batch_totals(TID, 1)
        terminal_side = BatchTotals(100, 1)
        settlement = TerminalSettlement.of(TID, 1, terminal_side, host, DAY, NOW)
        uow.add_settlement(settlement)
        assert uow.close_batch(TID, 1) == 2
        assert uow.close_batch(TID, 1) == 2  # idempotent
        terminal = uow.get_terminal(TID)
        assert terminal is not None and terminal.batch_no == 2
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        uow.add_settlement(settlement)
    with store.admin() as uow:
        uow.add_terminal(Terminal("T0000009", MID, DAY, batch_no=999_999), TMK)
        assert uow.close_batch("T0000009", 999_999) == 1  # wraps
    with pytest.raises(RecordNotFound), store.unit() as uow:
        uow.close_batch("T9999999", 1)
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM clearing_terminal_settlements")).mappings().one()
        assert row["terminal_purchase_amount_fen"] == 100 and row["host_purchase_count"] == 0
        assert row["verdict"] == "unbalanced"


def test_batch_upload_records(store: SqlStore) -> None:
    register(store)
    record = BatchUploadRecord(
        TxnKey(TID, 1, 5),
        TxnKind.PURCHASE,
        ASN,
        1_000,
        "000000000777",  # an RRN the host never issued is kept as sent
        bytes.fromhex("B3A0D49C"),
        4,
        9,
        datetime(2026, 3, 1, 10, 0),
        NOW,
    )
    with store.unit() as uow:
        uow.add_batch_upload(record)
    with pytest.raises(DuplicateRecord), store.unit() as uow:
        uow.add_batch_upload(record)
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM clearing_batch_uploads")).mappings().one()
        assert (row["rrn"], row["tac"], row["amount_fen"]) == ("000000000777", "B3A0D49C", 1_000)


# --- the clearing view -------------------------------------------------------------------------


def test_the_clearing_view(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        completed = authorise(uow, 1, amount_fen=3_850)
        complete(uow, completed, verdict=TacVerdict.BAD)
        reversed_ = authorise(uow, 2, amount_fen=1_250)
        reverse(uow, reversed_)
        open_ = authorise(uow, 3, kind=TxnKind.LOAD, amount_fen=10_000)
        authorise(uow, 4, code=ResponseCode.CARD_BLOCKED)  # declined: not in the view
        elsewhere = authorise(uow, 1, asn=ASN2, terminal_id=TID2, merchant_id=MID2)
    v = clearing_transactions.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(clearing_transactions).order_by(v.txn_id)).mappings().all()
    assert [r["rrn"] for r in rows] == [completed.rrn, reversed_.rrn, open_.rrn, elsewhere.rrn]
    first, second, third, fourth = rows
    assert first["state"] == "completed"
    assert first["tac_verdict"] == "bad" and first["tac"] == "B3A0D49C"
    assert (first["auth_amount_fen"], first["completion_amount_fen"]) == (3_850, 3_850)
    assert (first["issuer_id"], first["acquirer_id"]) == (ISSUER, "ACQ1")
    assert first["business_date"] in (DAY, DAY.isoformat())  # SQLite returns views' dates as text
    assert (first["card_counter"], first["txn_counter"], first["counter_kind"]) == (1, 2, "offline")
    assert first["psam_terminal_id"] == "001122334455"
    assert first["signing_partner_id"] == "P1" and first["maintaining_partner_id"] == "P1"
    assert second["state"] == "reversed" and second["reversal_reason"] == "98"
    assert second["completion_amount_fen"] is None
    assert third["state"] == "authorised" and third["counter_kind"] == "online"
    assert third["kind"] == "load" and third["tac_verdict"] is None
    assert fourth["merchant_id"] == MID2 and fourth["signing_partner_id"] is None


def test_transaction_search_filters_and_pages(store: SqlStore) -> None:
    register(store)
    with store.unit() as uow:
        for stan in range(1, 8):
            authorise(uow, stan)
        complete(uow, authorise(uow, 8, kind=TxnKind.LOAD, amount_fen=500))
        authorise(uow, 9, code=ResponseCode.INVALID_CARD)
        authorise(uow, 1, asn=ASN2, terminal_id=TID2, merchant_id=MID2)
    with store.admin(readonly=True) as uow:
        seen: list[int] = []
        page = uow.search_transactions(TxnQuery(terminal_id=TID, limit=4))
        while True:
            seen += [item.authorisation.key.stan for item in page.items]
            if page.next_after_txn_id is None:
                break
            page = uow.search_transactions(
                TxnQuery(terminal_id=TID, limit=4, after_txn_id=page.next_after_txn_id)
            )
        assert seen == list(range(1, 10))
        loads = uow.search_transactions(TxnQuery(kind=TxnKind.LOAD)).items
        assert len(loads) == 1 and loads[0].completion_amount_fen == 500
        assert loads[0].tac_verdict is TacVerdict.OK and loads[0].reversal_reason is None
        declined = uow.search_transactions(TxnQuery(response_code=ResponseCode.INVALID_CARD))
        assert [i.authorisation.key.stan for i in declined.items] == [9]
        assert len(uow.search_transactions(TxnQuery(merchant_id=MID2)).items) == 1
        assert len(uow.search_transactions(TxnQuery(asn=ASN2)).items) == 1
        none = TxnQuery(business_date_from=date(2026, 3, 2))
        assert uow.search_transactions(none).items == ()
        assert len(uow.search_transactions(TxnQuery(business_date_to=DAY)).items) == 10


def test_concurrent_writers_are_serialised_without_loss(store: SqlStore) -> None:
    """Four threads each store 25 authorisations in their own units of work at once (SQLite:
    BEGIN IMMEDIATE + busy_timeout; PostgreSQL: row locks and the RRN sequence)."""
    register(store)
    threads_n, per_thread_n = 4, 25
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(per_thread_n):
                with store.unit() as uow:
                    card = uow.get_card(ASN, for_update=True)
                    assert card is not None
                    authorise(uow, worker * 1_000 + i + 1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads_n)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not errors, errors
    with store.unit() as uow:
        assert uow.card_day_totals(ASN, DAY) == DayTotals(
            threads_n * per_thread_n * 1_000, threads_n * per_thread_n
        )


def test_host_processes_starting_together_migrate_once(db_url: str, vault_key: bytes) -> None:
    """Three host processes opening an empty database at once: one migrates, the others wait
    and find the schema current (PostgreSQL: advisory lock; SQLite: BEGIN IMMEDIATE)."""
    script = (
        "import sys; from acquiring.adapters.keyvault import KeyVault; "
        "from acquiring.adapters.sql.store import SqlStore; "
        "SqlStore.open(sys.argv[1], KeyVault(bytes.fromhex(sys.argv[2]))).close()"
    )
    starters = [
        subprocess.Popen([sys.executable, "-c", script, db_url, vault_key.hex()]) for _ in range(3)
    ]
    assert [p.wait(timeout=120) for p in starters] == [0, 0, 0]
    store = SqlStore.open(db_url, KeyVault(vault_key))
    try:
        with store.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            assert conn.execute(text("SELECT count(*) FROM store_meta")).scalar_one() == 1
    finally:
        store.close()
