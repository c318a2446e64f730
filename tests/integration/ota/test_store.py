"""The OTA server's SQL store on SQLite and PostgreSQL: keys encrypted at rest and bound to
their SIM, counters reserved and persisted, ASNs assigned once, jobs and campaigns kept; and
the whole provisioning and a 50-SIM campaign running on it."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select, update

from ota.adapters.keyvault import KeyVault
from ota.adapters.sql_store import SqlStore, sims
from ota.domain.errors import DuplicateError, KeyVaultError, NotFoundError
from ota.domain.job import JobParams, JobState
from ota.domain.script import JobKind
from tests.integration.ota.otakit import SIM_KEYS, fleet, iccid_of, record_of, wallet_of


def test_a_sim_round_trips_with_its_keys_encrypted_at_rest(sql_store: SqlStore) -> None:
    sql_store.add_sim(record_of(1))
    assert sql_store.get_sim(iccid_of(1)) == record_of(1)
    with sql_store._engine.connect() as conn:
        row = conn.execute(select(sims)).one()
    raw = b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode() for v in row)
    for key in (SIM_KEYS.kic, SIM_KEYS.kid, SIM_KEYS.dek):
        assert key not in raw and key.hex().encode() not in raw.lower()
    shown = repr(sql_store.get_sim(iccid_of(1))).lower()
    assert all(key.hex() not in shown for key in (SIM_KEYS.kic, SIM_KEYS.kid, SIM_KEYS.dek))
    with pytest.raises(DuplicateError):
        sql_store.add_sim(record_of(1))
    with pytest.raises(NotFoundError):
        sql_store.get_sim(iccid_of(2))
    assert [s.iccid for s in sql_store.list_sims(10)] == [iccid_of(1)]


def test_a_key_moved_to_another_sim_or_read_with_another_vault_key_fails(
    sql_store: SqlStore,
) -> None:
    sql_store.add_sim(record_of(1))
    sql_store.add_sim(record_of(2))
    with sql_store._engine.begin() as conn:
        kic = conn.execute(select(sims.c.kic_enc).where(sims.c.iccid == iccid_of(1))).scalar()
        conn.execute(update(sims).where(sims.c.iccid == iccid_of(2)).values(kid_enc=kic))
    with pytest.raises(KeyVaultError, match="sim:"):
        sql_store.get_sim(iccid_of(2))
    other = SqlStore(sql_store._engine, KeyVault(bytes(32)))
    with pytest.raises(KeyVaultError):
        other.get_sim(iccid_of(1))


def test_counters_are_reserved_strictly_increasing_and_persisted(
    sql_store: SqlStore, vault: KeyVault
) -> None:
    sql_store.add_sim(record_of(1))
    assert [sql_store.reserve_counter(iccid_of(1)) for _ in range(5)] == [1, 2, 3, 4, 5]
    reopened = SqlStore(sql_store._engine, vault)
    assert reopened.reserve_counter(iccid_of(1)) == 6
    assert reopened.get_sim(iccid_of(1)).counter_last == 6
    with pytest.raises(NotFoundError):
        sql_store.reserve_counter(iccid_of(9))


def test_an_asn_is_assigned_once_per_sim(sql_store: SqlStore) -> None:
    for n in (1, 2):
        sql_store.add_sim(record_of(n))
    first = sql_store.assign_asn(iccid_of(1))
    assert first.hex() == "8800000000000001"
    assert sql_store.assign_asn(iccid_of(1)) == first
    assert sql_store.assign_asn(iccid_of(2)).hex() == "8800000000000002"
    assert sql_store.get_sim(iccid_of(1)).asn == first


def test_jobs_and_campaigns_round_trip(sql_store: SqlStore) -> None:
    for n in (1, 2, 3):
        sql_store.add_sim(record_of(n))
    job = sql_store.add_job(iccid_of(1), JobKind.UPDATE_LIMIT, JobParams(5_000), 3)
    moved = dataclasses.replace(job.sent().used(7), result=b"\x01\x02").done(b"\x90")
    sql_store.save_job(moved)
    assert sql_store.get_job(job.job_id) == moved
    with pytest.raises(NotFoundError):
        sql_store.get_job(999)
    with pytest.raises(NotFoundError):
        sql_store.add_job(iccid_of(9), JobKind.LOCK, JobParams(), 3)
    campaign = sql_store.add_campaign(
        "lock-all", JobKind.LOCK, JobParams(), [iccid_of(2), iccid_of(3)], 2
    )
    assert sql_store.get_campaign(campaign.campaign_id) == campaign
    jobs = sql_store.jobs_of_campaign(campaign.campaign_id)
    assert [(j.iccid, j.state, j.attempts_max) for j in jobs] == [
        (iccid_of(2), JobState.QUEUED, 2),
        (iccid_of(3), JobState.QUEUED, 2),
    ]


def test_provisioning_on_the_sql_store(sql_store: SqlStore) -> None:
    f = fleet(store=sql_store)
    iccid = f.add(1)
    for kind in (JobKind.INSTALL_WALLET, JobKind.PERSONALISE, JobKind.LOCK, JobKind.UNLOCK):
        job = f.service.push(iccid, kind)
        assert job.state is JobState.DONE, job.detail
    wallet = wallet_of(f.cards[iccid])
    assert wallet is not None and wallet.life == "personalized"
    assert sql_store.get_sim(iccid).counter_last == 4


def test_a_campaign_over_50_sims_with_a_per_sim_report(sql_store: SqlStore) -> None:
    f = fleet(store=sql_store)
    iccids = [f.add(n) for n in range(1, 51)]
    for iccid in iccids[:45]:  # 45 get the wallet package first; 5 stay blank
        assert f.service.push(iccid, JobKind.INSTALL_WALLET).state is JobState.DONE
    campaign = f.service.create_campaign("wave-1", JobKind.PERSONALISE, iccids)
    before = f.service.progress(campaign.campaign_id)
    assert (before.total, before.finished, before.by_state) == (50, 0, (("queued", 50),))
    after = f.service.run_campaign(campaign.campaign_id)
    assert after.by_state == (("done", 45), ("failed", 5)) and after.finished == 50
    report = f.service.report(campaign.campaign_id)
    assert [r.iccid for r in report] == sorted(iccids)
    failed = {r.iccid for r in report if r.state is JobState.FAILED}
    assert failed == set(iccids[45:])
    assert all("6A88" in r.detail for r in report if r.state is JobState.FAILED)
    for iccid in iccids[:45]:
        wallet = wallet_of(f.cards[iccid])
        assert wallet is not None and wallet.life == "personalized"


def test_the_migrations_match_the_tables_and_run_twice(sql_store: SqlStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ota.adapters import migrate
    from ota.adapters.sql_store import metadata

    sql_store.create_tables()  # idempotent
    with sql_store._engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision() == "0001"
        opts = {"compare_type": True, "version_table": migrate.VERSION_TABLE}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, metadata) == []


def test_counters_reserved_from_several_threads_are_all_different(
    db_url: str, vault: KeyVault
) -> None:
    import threading

    from ota.adapters.sql_store import make_engine

    engine = make_engine(db_url)
    store = SqlStore(engine, vault)
    store.create_tables()
    store.add_sim(record_of(1))
    got: list[int] = []
    lock = threading.Lock()

    def reserve() -> None:
        own = SqlStore(make_engine(db_url), vault)  # a connection pool of its own, like a process
        mine = [own.reserve_counter(iccid_of(1)) for _ in range(25)]
        own._engine.dispose()
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == list(range(1, 101))
    assert store.get_sim(iccid_of(1)).counter_last == 100
    engine.dispose()
