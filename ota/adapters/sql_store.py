"""``ota.ports.OtaStore`` on SQLAlchemy 2 (SQLite by default, PostgreSQL tested).

Tables come from the Alembic migrations of ``ota.adapters.migrate`` (``create_tables``). SIM
keys are encrypted at rest with the OTA key vault (AES-256-GCM), each bound to its ICCID and
key name by associated data (``sim:<iccid>:kic``), and never leave this module except inside a
``SimRecord`` (whose repr hides them). ``reserve_counter`` commits the new counter before it
returns: a packet never goes out under a counter that is not on disk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ota.adapters.keyvault import KeyVault
from ota.domain.asn import ASN_FIRST, asn_of
from ota.domain.campaign import Campaign
from ota.domain.errors import DuplicateError, InvalidRecordError, NotFoundError
from ota.domain.job import Job, JobParams, JobState
from ota.domain.script import JobKind
from ota.domain.sim import Scp80KeySet, SimRecord, next_counter

DEFAULT_URL: Final = "sqlite:///nfcpay-ota.sqlite"
BUSY_TIMEOUT_MS: Final = 5_000
metadata = MetaData()

sims = Table(
    "ota_sims",
    metadata,
    Column("iccid", String(20), primary_key=True),
    Column("imsi", String(15), nullable=False),
    Column("msisdn", String(15), nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("algorithm", String(8), nullable=False),
    Column("kic_enc", LargeBinary, nullable=False),
    Column("kid_enc", LargeBinary, nullable=False),
    Column("dek_enc", LargeBinary, nullable=False),
    Column("counter_last", BigInteger, nullable=False),
    Column("asn", String(16), nullable=True, unique=True),
)
sequences = Table(
    "ota_sequences",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
campaigns = Table(
    "ota_campaigns",
    metadata,
    Column("campaign_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("ceiling_fen", BigInteger, nullable=True),
)
jobs = Table(
    "ota_jobs",
    metadata,
    Column("job_id", Integer, primary_key=True, autoincrement=True),
    Column("iccid", String(20), ForeignKey("ota_sims.iccid"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("ceiling_fen", BigInteger, nullable=True),
    Column("state", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("attempts_max", Integer, nullable=False),
    Column("counters", String(4096), nullable=False),
    Column("por_status", Integer, nullable=True),
    Column("last_sw", Integer, nullable=True),
    Column("detail", String(200), nullable=False),
    Column("result", LargeBinary, nullable=False),
    Column(
        "campaign_id",
        Integer,
        ForeignKey("ota_campaigns.campaign_id"),
        nullable=True,
        index=True,
    ),
)
_KEY_NAMES: Final = ("kic", "kid", "dek")


def make_engine(url: str = DEFAULT_URL, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """An engine for the store. SQLite (as the host's store, ADR 0003): WAL, synchronous FULL,
    foreign keys on, a busy timeout, and ``BEGIN IMMEDIATE`` so that a read-then-write
    transaction (reserving a counter) takes the write lock first and never fails half-way
    because another process wrote in between. PostgreSQL: row locks (``FOR UPDATE``)."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            connection.isolation_level = None  # SQLAlchemy issues BEGIN itself (below)
            cursor = connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class SqlStore:
    def __init__(self, engine: Engine, vault: KeyVault) -> None:
        self._engine = engine
        self._vault = vault

    def __repr__(self) -> str:
        return f"SqlStore({self._engine.url.render_as_string(hide_password=True)})"

    def create_tables(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        from ota.adapters import migrate  # noqa: PLC0415 - migrate's env imports this module

        migrate.upgrade(self._engine)

    # --- SIMs -----------------------------------------------------------------------------

    def add_sim(self, sim: SimRecord) -> None:
        row: dict[str, Any] = {
            "iccid": sim.iccid,
            "imsi": sim.imsi,
            "msisdn": sim.msisdn,
            "key_version": sim.keys.version,
            "algorithm": sim.keys.algorithm,
            "counter_last": sim.counter_last,
            "asn": sim.asn.hex() if sim.asn is not None else None,
        }
        for name in _KEY_NAMES:
            row[f"{name}_enc"] = self._vault.encrypt(getattr(sim.keys, name), _purpose(sim, name))
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(sims).values(**row))
        except IntegrityError:
            raise DuplicateError(f"SIM {sim.iccid} is registered already") from None

    def _sim_of(self, row: Any) -> SimRecord:
        iccid = row.iccid
        keys = {
            name: self._vault.decrypt(getattr(row, f"{name}_enc"), f"sim:{iccid}:{name}")
            for name in _KEY_NAMES
        }
        key_set = Scp80KeySet(row.key_version, row.algorithm, **keys)
        asn = bytes.fromhex(row.asn) if row.asn is not None else None
        return SimRecord(iccid, row.imsi, row.msisdn, key_set, row.counter_last, asn)

    def get_sim(self, iccid: str) -> SimRecord:
        with self._engine.connect() as conn:
            row = conn.execute(select(sims).where(sims.c.iccid == iccid)).first()
        if row is None:
            raise NotFoundError(f"no SIM {iccid}")
        return self._sim_of(row)

    def list_sims(self, limit: int, offset: int = 0) -> Sequence[SimRecord]:
        query = select(sims).order_by(sims.c.iccid).limit(limit).offset(offset)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._sim_of(r) for r in rows]

    def reserve_counter(self, iccid: str) -> int:
        with self._engine.begin() as conn:
            last = conn.execute(
                select(sims.c.counter_last).where(sims.c.iccid == iccid).with_for_update()
            ).scalar()
            if last is None:
                raise NotFoundError(f"no SIM {iccid}")
            counter = next_counter(int(last))
            conn.execute(
                update(sims)
                .where(sims.c.iccid == iccid, sims.c.counter_last == last)
                .values(counter_last=counter)
            )
        return counter

    def assign_asn(self, iccid: str) -> bytes:
        with self._engine.begin() as conn:
            current = conn.execute(
                select(sims.c.asn).where(sims.c.iccid == iccid).with_for_update()
            ).first()
            if current is None:
                raise NotFoundError(f"no SIM {iccid}")
            if current.asn is not None:
                return bytes.fromhex(current.asn)
            number = conn.execute(
                select(sequences.c.value).where(sequences.c.name == "asn").with_for_update()
            ).scalar()
            if number is None:
                number = ASN_FIRST
                conn.execute(insert(sequences).values(name="asn", value=number + 1))
            else:
                conn.execute(
                    update(sequences).where(sequences.c.name == "asn").values(value=number + 1)
                )
            asn = asn_of(int(number))
            conn.execute(update(sims).where(sims.c.iccid == iccid).values(asn=asn.hex()))
        return asn

    # --- jobs -----------------------------------------------------------------------------

    def add_job(
        self, iccid: str, kind: JobKind, params: JobParams, attempts_max: int,
        campaign_id: int | None = None,
    ) -> Job:  # fmt: skip
        with self._engine.begin() as conn:
            return self._add_job(conn, iccid, kind, params, attempts_max, campaign_id)

    def _add_job(
        self, conn: Any, iccid: str, kind: JobKind, params: JobParams, attempts_max: int,
        campaign_id: int | None,
    ) -> Job:  # fmt: skip
        draft = Job(0, iccid, kind, params, attempts_max=attempts_max, campaign_id=campaign_id)
        row = _job_row(draft)
        del row["job_id"]
        try:
            inserted = conn.execute(insert(jobs).values(**row)).inserted_primary_key
        except IntegrityError:
            raise NotFoundError(f"no SIM {iccid}") from None
        assert inserted is not None
        job_id = inserted[0]
        return Job(int(job_id), iccid, kind, params, attempts_max=attempts_max,
                   campaign_id=campaign_id)  # fmt: skip

    def save_job(self, job: Job) -> None:
        row = _job_row(job)
        with self._engine.begin() as conn:
            done = conn.execute(update(jobs).where(jobs.c.job_id == job.job_id).values(**row))
        if done.rowcount != 1:
            raise NotFoundError(f"no job {job.job_id}")

    def get_job(self, job_id: int) -> Job:
        with self._engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        return _job_of(row)

    # --- campaigns ------------------------------------------------------------------------

    def add_campaign(
        self, name: str, kind: JobKind, params: JobParams, iccids: Sequence[str],
        attempts_max: int,
    ) -> Campaign:  # fmt: skip
        Campaign(1, name, kind, params, tuple(iccids))  # the rules, before any write
        with self._engine.begin() as conn:
            inserted = conn.execute(
                insert(campaigns).values(name=name, kind=kind.value, ceiling_fen=params.ceiling_fen)
            ).inserted_primary_key
            assert inserted is not None
            campaign_id = inserted[0]
            for iccid in iccids:
                self._add_job(conn, iccid, kind, params, attempts_max, int(campaign_id))
        return Campaign(int(campaign_id), name, kind, params, tuple(iccids))

    def get_campaign(self, campaign_id: int) -> Campaign:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(campaigns).where(campaigns.c.campaign_id == campaign_id)
            ).first()
            if row is None:
                raise NotFoundError(f"no campaign {campaign_id}")
            query = select(jobs.c.iccid).where(jobs.c.campaign_id == campaign_id)
            iccids = conn.execute(query.order_by(jobs.c.job_id)).scalars().all()
        return Campaign(
            row.campaign_id, row.name, JobKind(row.kind), JobParams(row.ceiling_fen), tuple(iccids)
        )

    def jobs_of_campaign(self, campaign_id: int) -> Sequence[Job]:
        query = select(jobs).where(jobs.c.campaign_id == campaign_id).order_by(jobs.c.job_id)
        with self._engine.connect() as conn:
            return [_job_of(r) for r in conn.execute(query).all()]

    def count_jobs(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())


def _purpose(sim: SimRecord, name: str) -> str:
    return f"sim:{sim.iccid}:{name}"


def _job_row(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "iccid": job.iccid,
        "kind": job.kind.value,
        "ceiling_fen": job.params.ceiling_fen,
        "state": job.state.value,
        "attempts": job.attempts,
        "attempts_max": job.attempts_max,
        "counters": ",".join(str(c) for c in job.counters),
        "por_status": job.por_status,
        "last_sw": job.last_sw,
        "detail": job.detail,
        "result": job.result,
        "campaign_id": job.campaign_id,
    }


def _job_of(row: Any) -> Job:
    try:
        counters = tuple(int(c) for c in row.counters.split(",")) if row.counters else ()
        return Job(
            row.job_id,
            row.iccid,
            JobKind(row.kind),
            JobParams(row.ceiling_fen),
            JobState(row.state),
            row.attempts,
            row.attempts_max,
            counters,
            row.por_status,
            row.last_sw,
            row.detail,
            row.result,
            row.campaign_id,
        )
    except ValueError as exc:
        raise InvalidRecordError(f"job {row.job_id} in the store is damaged: {exc}") from None
