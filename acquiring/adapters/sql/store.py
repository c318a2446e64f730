"""The capture store on SQLAlchemy Core: implements ``acquiring.ports.Store`` (and both unit of
work protocols) for SQLite and PostgreSQL.

Keys are encrypted with the ``KeyVault`` before they reach a statement and decrypted after they
leave a row; each ciphertext is bound to its row by its purpose string (``tmk:<TID>``,
``mak:<TID>``, ``issuer-keys:<issuer>:<version>``). Database constraint errors are translated
here, in one place, into the store errors of ``acquiring.domain.errors``; their messages name
the constraint, never the values (which may hold a card number).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Final, TypeAlias, cast

from sqlalchemy import (
    URL,
    Connection,
    Dialect,
    Engine,
    Row,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql import schema as s
from acquiring.adapters.sql import statements as q
from acquiring.adapters.sql.engine import (
    POOL_SIZE_DEFAULT,
    READONLY_OPTION,
    SqliteSynchronous,
    make_engine,
)
from acquiring.adapters.sql.migrate import upgrade
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
    PartnerStatus,
    Reversal,
    ReversalReason,
    TacVerdict,
    Terminal,
    TerminalKeys,
    TerminalSettlement,
    TerminalStatus,
    TxnKey,
    TxnKind,
)
from acquiring.ports import (
    PAGE_LIMIT_MAX,
    TerminalSession,
    TxnPage,
    TxnQuery,
    TxnState,
    TxnSummary,
)
from paycore import issuer_keys as issuer_key_file
from paycore.errors import DecodeError
from paycore.iso8583.fields import ResponseCode
from paycore.issuer_keys import IssuerKeys

AnyRow: TypeAlias = Row[*tuple[Any, ...]]
RRN_MAX: Final = 999_999_999_999
_VAULT_CHECK_NAME: Final = "vault_check"
_VAULT_CHECK_PLAIN: Final = b"nfcpay capture store vault check v1"
_APPROVED: Final = ResponseCode.APPROVED.value


def _tmk_purpose(terminal_id: str) -> str:
    return f"tmk:{terminal_id}"


def _mak_purpose(terminal_id: str) -> str:
    return f"mak:{terminal_id}"


def _issuer_keys_purpose(issuer_id: str, key_version: int) -> str:
    return f"issuer-keys:{issuer_id}:{key_version}"


#: Issuer key sets kept decrypted and parsed, per store (key sets are never changed in place:
#: a rotation adds a version; the cache is keyed by the ciphertext too).
ISSUER_KEYS_CACHE_MAX: Final = 256


class _Prepared:
    """A prebuilt statement compiled once for one dialect, executed on the DBAPI cursor: the
    message path skips SQLAlchemy's per-execution work (about 25 µs a statement, most of a
    message's database cost on SQLite). Binds and results go through the same type
    processors SQLAlchemy itself would apply (dates as text on SQLite, ``UtcDateTime``)."""

    __slots__ = ("binds", "defaults", "order", "results", "row", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str]) -> None:
        column_keys = list(keys) if isinstance(statement, Insert) else None
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=column_keys))
        self.sql: str = compiled.string
        names = compiled.bind_names
        self.defaults: dict[str, Any] = {
            name: bind.value for bind, name in names.items() if bind.value is not None
        }
        binds: list[tuple[str, Callable[[Any], Any]]] = []
        for name, process in compiled._bind_processors.items():
            assert callable(process), name  # tuple-valued binds: not on the message path
            binds.append((name, process))
        self.binds = tuple(binds)
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        columns = compiled._result_columns
        self.results: tuple[Callable[[Any], Any] | None, ...] | None = None
        self.row: Any = None
        if columns and not isinstance(statement, Insert):
            processors = tuple(c.type._cached_result_processor(dialect, None) for c in columns)
            self.results = processors if any(processors) else None
            self.row = namedtuple("PreparedRow", [c.keyname for c in columns], rename=True)  # type: ignore[misc]

    def args(self, params: Mapping[str, Any]) -> Any:
        values = {**self.defaults, **params} if self.defaults else dict(params)
        for name, process in self.binds:
            values[name] = process(values[name])
        if self.order is None:
            return values
        return tuple(values[name] for name in self.order)

    def shaped(self, raw: Sequence[Any]) -> Any:
        results = self.results
        if results is not None:
            raw = [v if f is None else f(v) for f, v in zip(results, raw, strict=True)]
        return self.row._make(raw)


class SqlStore:
    """``acquiring.ports.Store`` on an SQLAlchemy engine."""

    def __init__(self, engine: Engine, vault: KeyVault) -> None:
        self._engine = engine
        self._vault = vault
        self._prepared: dict[tuple[int, tuple[str, ...]], _Prepared] = {}
        self._issuer_keys: dict[tuple[str, int, bytes], IssuerKeys] = {}
        self._integrity_error: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError

    @classmethod
    def open(
        cls,
        url: str | URL,
        vault: KeyVault,
        *,
        migrate: bool = True,
        sqlite_synchronous: SqliteSynchronous = "FULL",
        pool_size: int = POOL_SIZE_DEFAULT,
    ) -> SqlStore:
        """Connect, bring the schema up to date (``migrate``) and prove the vault key is the
        one this store's keys were encrypted under (KeyVaultError otherwise)."""
        engine = make_engine(url, sqlite_synchronous=sqlite_synchronous, pool_size=pool_size)
        try:
            if migrate:
                upgrade(engine)
            store = cls(engine, vault)
            store.check_vault()
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def engine(self) -> Engine:
        return self._engine

    def check_vault(self) -> None:
        """First use: record an encrypted check value. Later: decrypt it, so a wrong
        ``NFCPAY_KEY`` fails at start with a clear message rather than at the first sign-on."""
        with self.unit() as uow:
            assert isinstance(uow, SqlUnitOfWork)
            uow.check_vault()

    def prepared(self, statement: ClauseElement, keys: tuple[str, ...]) -> _Prepared:
        """``statement`` compiled for this engine (inserts: for exactly the columns ``keys``);
        cached for the store's lifetime (statements are module constants)."""
        cache_key = (id(statement), keys)
        found = self._prepared.get(cache_key)
        if found is None:
            found = _Prepared(statement, self._engine.dialect, keys)
            self._prepared[cache_key] = found
        return found

    def cached_issuer_keys(self, key: tuple[str, int, bytes]) -> IssuerKeys | None:
        return self._issuer_keys.get(key)

    def cache_issuer_keys(self, key: tuple[str, int, bytes], keys: IssuerKeys) -> None:
        if len(self._issuer_keys) >= ISSUER_KEYS_CACHE_MAX:
            self._issuer_keys.clear()
        self._issuer_keys[key] = keys

    @property
    def integrity_error(self) -> type[Exception]:
        return self._integrity_error

    @contextmanager
    def unit(self) -> Iterator[SqlUnitOfWork]:
        with self._engine.connect() as conn, conn.begin():
            yield SqlUnitOfWork(conn, self._vault, readonly=False, store=self)

    @contextmanager
    def admin(self, *, readonly: bool = False) -> Iterator[SqlUnitOfWork]:
        with self._engine.connect() as conn:
            if readonly:
                conn.execution_options(**{READONLY_OPTION: True})
            with conn.begin():
                yield SqlUnitOfWork(conn, self._vault, readonly=readonly, store=self)

    def close(self) -> None:
        self._engine.dispose()


@contextmanager
def _translated() -> Iterator[None]:
    """Map a database constraint error to a store error, naming the constraint only."""
    try:
        yield
    except IntegrityError as exc:
        raise _store_error(exc) from None


def _store_error(exc: IntegrityError) -> StoreError:
    return _driver_store_error(exc.orig)


def _driver_store_error(orig: BaseException | None) -> StoreError:
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:  # psycopg
        diag = getattr(orig, "diag", None)
        name = getattr(diag, "constraint_name", None) or "?"
        if sqlstate == "23505":
            return DuplicateRecord(f"already stored (constraint {name})")
        if sqlstate == "23503":
            return RecordNotFound(f"a referenced record does not exist (constraint {name})")
        return StoreIntegrityError(f"constraint {name} violated (SQLSTATE {sqlstate})")
    message = str(orig)  # sqlite3: "UNIQUE constraint failed: table.col, ..." (no values)
    if message.startswith("UNIQUE constraint failed"):
        return DuplicateRecord(f"already stored ({message})")
    if message.startswith("FOREIGN KEY constraint failed"):
        return RecordNotFound("a referenced record does not exist (foreign key)")
    return StoreIntegrityError(message)


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex().upper()


def _unhex(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _key_params(key: TxnKey) -> dict[str, Any]:
    return {"terminal_id": key.terminal_id, "batch_no": key.batch_no, "stan": key.stan}


class SqlUnitOfWork:
    """One database transaction. Implements HostUnitOfWork and AdminUnitOfWork."""

    _savepoints = itertools.count(1)

    def __init__(
        self, conn: Connection, vault: KeyVault, *, readonly: bool, store: SqlStore
    ) -> None:
        self._conn = conn
        self._vault = vault
        self._readonly = readonly
        self._store = store
        self._postgres = conn.dialect.name == "postgresql"
        self._cursor: Any = None

    # --- plumbing ---------------------------------------------------------------------------

    def _raw(self, prepared: _Prepared, params: Mapping[str, Any]) -> Any:
        """Run a prepared statement on the DBAPI cursor; the cursor."""
        cursor = self._raw_cursor()
        try:
            cursor.execute(prepared.sql, prepared.args(params))
        except self._store.integrity_error as exc:
            raise _driver_store_error(exc) from None
        return cursor

    def _raw_one(self, statement: ClauseElement, params: Mapping[str, Any]) -> Any:
        """The first row of a prebuilt statement (named fields, processed values), or None."""
        prepared = self._store.prepared(statement, tuple(params))
        rows = self._raw(prepared, params).fetchall()  # to the end: no statement left open
        return prepared.shaped(rows[0]) if rows else None

    def _raw_all(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        prepared = self._store.prepared(statement, tuple(params))
        return [prepared.shaped(row) for row in self._raw(prepared, params).fetchall()]

    def _raw_write(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        """Run a prebuilt INSERT / UPDATE; the number of rows it changed."""
        self._writable()
        prepared = self._store.prepared(statement, tuple(params))
        return int(self._raw(prepared, params).rowcount)

    def _writable(self) -> None:
        if self._readonly:
            raise StoreError("this unit of work is read-only")

    def _execute(self, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        with _translated():
            return self._conn.execute(statement, params)

    def _one(self, statement: Any, params: Mapping[str, Any] | None = None) -> AnyRow | None:
        return self._conn.execute(statement, params).first()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        name = f"nfcpay_sp_{next(self._savepoints)}"
        cursor = self._raw_cursor()
        cursor.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
            cursor.execute(f"RELEASE SAVEPOINT {name}")
            raise
        cursor.execute(f"RELEASE SAVEPOINT {name}")

    def _raw_cursor(self) -> Any:
        if self._cursor is None:
            dbapi_connection = self._conn.connection.dbapi_connection
            assert dbapi_connection is not None
            self._cursor = dbapi_connection.cursor()
        return self._cursor

    def check_vault(self) -> None:
        row = self._one(
            select(s.store_meta.c.value).where(s.store_meta.c.name == _VAULT_CHECK_NAME)
        )
        if row is None:
            blob = self._vault.encrypt(_VAULT_CHECK_PLAIN, _VAULT_CHECK_NAME)
            self._execute(insert(s.store_meta).values(name=_VAULT_CHECK_NAME, value=blob))
            return
        try:
            plain = self._vault.decrypt(row.value, _VAULT_CHECK_NAME)
        except KeyVaultError:
            raise KeyVaultError(
                "the vault key (NFCPAY_KEY) is not the one this store's keys were encrypted "
                "under: start with the original key"
            ) from None
        if plain != _VAULT_CHECK_PLAIN:
            raise KeyVaultError("the store's vault check value is damaged")

    # --- reference data ---------------------------------------------------------------------

    def get_terminal(self, terminal_id: str, *, for_update: bool = False) -> Terminal | None:
        stmt = q.TERMINAL_FOR_UPDATE if for_update else q.TERMINAL
        row = self._raw_one(stmt, {"terminal_id": terminal_id})
        return None if row is None else _terminal(row)

    def get_terminal_session(
        self, terminal_id: str, exchange_key: ExchangeKey | None = None
    ) -> TerminalSession | None:
        if exchange_key is None:
            row = self._raw_one(q.TERMINAL_SESSION, {"terminal_id": terminal_id})
        else:
            if exchange_key.terminal_id != terminal_id:
                raise InvalidRecord("exchange", "terminal_id", "must be the session's terminal")
            params = {
                "terminal_id": terminal_id,
                "batch_no": exchange_key.batch_no,
                "stan": exchange_key.stan,
                "mti": exchange_key.mti,
            }
            row = self._raw_one(q.TERMINAL_SESSION_EXCHANGE, params)
        if row is None:
            return None
        previous = None
        if exchange_key is not None and row.x_response is not None:
            previous = ExchangeRecord(
                exchange_key, bytes(row.x_request_digest), bytes(row.x_response), row.x_created_at
            )
        terminal = _terminal(row)
        mak = None
        if terminal.signed_on and row.mak_ct is not None:
            mak = self._vault.decrypt(row.mak_ct, _mak_purpose(terminal_id))
        merchant = None
        if row.m_merchant_id is not None:
            merchant = Merchant(
                row.m_merchant_id,
                row.m_name,
                row.m_mcc,
                row.m_acquirer_id,
                row.m_onboarded_on,
                MerchantStatus(row.m_status),
                row.m_signing_partner_id,
                row.m_daily_limit_fen,
            )
        return TerminalSession(terminal, mak, merchant, previous)

    def get_terminal_keys(self, terminal_id: str) -> TerminalKeys | None:
        row = self._raw_one(q.TERMINAL_KEYS, {"terminal_id": terminal_id})
        if row is None:
            return None
        tmk = self._vault.decrypt(row.tmk_ct, _tmk_purpose(terminal_id))
        mak_ct = row.mak_ct
        mak = None if mak_ct is None else self._vault.decrypt(mak_ct, _mak_purpose(terminal_id))
        return TerminalKeys(terminal_id, tmk, mak)

    def get_merchant(self, merchant_id: str, *, for_update: bool = False) -> Merchant | None:
        stmt = q.MERCHANT_FOR_UPDATE if for_update else q.MERCHANT
        row = self._raw_one(stmt, {"merchant_id": merchant_id})
        return None if row is None else _merchant(row)

    def get_card(self, asn: str, *, for_update: bool = False) -> CardAccount | None:
        row = self._raw_one(q.CARD_FOR_UPDATE if for_update else q.CARD, {"asn": asn})
        if row is None:
            return None
        return CardAccount(
            row.asn,
            row.issuer_id,
            CardStatus(row.status),
            row.daily_amount_limit_fen,
            row.daily_count_limit,
        )

    def get_issuer(self, issuer_id: str) -> Issuer | None:
        row = self._raw_one(q.ISSUER, {"issuer_id": issuer_id})
        return None if row is None else Issuer(row.issuer_id, row.name)

    def get_issuer_keys(self, issuer_id: str, key_version: int) -> IssuerKeys | None:
        row = self._raw_one(q.ISSUER_KEYS, {"issuer_id": issuer_id, "key_version": key_version})
        if row is None:
            return None
        cache_key = (issuer_id, key_version, bytes(row.keys_ct))
        cached = self._store.cached_issuer_keys(cache_key)
        if cached is not None:
            return cached
        plain = self._vault.decrypt(row.keys_ct, _issuer_keys_purpose(issuer_id, key_version))
        try:
            keys = issuer_key_file.parse(plain.decode("utf-8"))
        except (DecodeError, UnicodeDecodeError):
            raise StoreError(f"issuer {issuer_id} key version {key_version} is damaged") from None
        if keys.key_version != key_version:
            raise StoreError(f"issuer {issuer_id} key version {key_version} is mislabelled")
        self._store.cache_issuer_keys(cache_key, keys)
        return keys

    def issuer_key_versions(self, issuer_id: str) -> list[int]:
        rows = self._raw_all(q.ISSUER_KEY_VERSIONS, {"issuer_id": issuer_id})
        return [int(row.key_version) for row in rows]

    # --- exchange log -----------------------------------------------------------------------

    def get_exchange(self, key: ExchangeKey) -> ExchangeRecord | None:
        params = {
            "terminal_id": key.terminal_id,
            "batch_no": key.batch_no,
            "stan": key.stan,
            "mti": key.mti,
        }
        row = self._raw_one(q.EXCHANGE, params)
        if row is None:
            return None
        return ExchangeRecord(key, bytes(row.request_digest), bytes(row.response), row.created_at)

    def put_exchange(self, record: ExchangeRecord) -> None:
        self._writable()
        k = record.key
        self._raw_write(
            q.PUT_EXCHANGE,
            {
                "terminal_id": k.terminal_id,
                "batch_no": k.batch_no,
                "stan": k.stan,
                "mti": k.mti,
                "request_digest": record.request_digest,
                "response": record.response,
                "created_at": record.created_at,
            },
        )

    # --- transactions -----------------------------------------------------------------------

    def get_authorisation(self, key: TxnKey, *, for_update: bool = False) -> Authorisation | None:
        stmt = q.AUTHORISATION_FOR_UPDATE if for_update else q.AUTHORISATION
        row = self._raw_one(stmt, _key_params(key))
        return None if row is None else _authorisation(row)

    def get_authorisation_by_rrn(
        self, rrn: str, *, for_update: bool = False
    ) -> Authorisation | None:
        stmt = q.AUTHORISATION_BY_RRN_FOR_UPDATE if for_update else q.AUTHORISATION_BY_RRN
        row = self._raw_one(stmt, {"rrn": rrn})
        return None if row is None else _authorisation(row)

    def get_txn_state(self, key: TxnKey, *, for_update: bool = False) -> TxnState | None:
        stmt = q.TXN_STATE_FOR_UPDATE if for_update else q.TXN_STATE
        row = self._raw_one(stmt, _key_params(key))
        if row is None:
            return None
        return TxnState(_authorisation(row), bool(row.completed), bool(row.reversed))

    def get_completion(self, key: TxnKey) -> Completion | None:
        row = self._raw_one(q.COMPLETION, _key_params(key))
        if row is None:
            return None
        return Completion(
            key,
            row.amount_fen,
            bytes.fromhex(row.tac),
            TacVerdict(row.tac_verdict),
            row.card_counter,
            row.psam_serial,
            row.terminal_datetime,
            row.business_date,
            row.received_at,
        )

    def get_reversal(self, key: TxnKey) -> Reversal | None:
        row = self._raw_one(q.REVERSAL, _key_params(key))
        if row is None:
            return None
        return Reversal(key, ReversalReason(row.reason_code), row.business_date, row.received_at)

    def add_authorisation(self, authorisation: Authorisation) -> None:
        self._writable()
        a, key = authorisation, authorisation.key
        self._raw_write(
            q.ADD_AUTHORISATION,
            {
                "kind": a.kind.value,
                "terminal_id": key.terminal_id,
                "merchant_id": a.merchant_id,
                "batch_no": key.batch_no,
                "stan": key.stan,
                "asn": a.asn,
                "amount_fen": a.amount_fen,
                "rrn": a.rrn,
                "auth_code": a.auth_code,
                "response_code": a.response_code.value,
                "business_date": a.business_date,
                "received_at": a.received_at,
                "card_counter": a.card_counter,
                "key_version": a.key_version,
                "psam_terminal_id": _hex(a.psam_terminal_id),
                "balance_before_fen": a.balance_before_fen,
                "card_random": _hex(a.card_random),
                "original_rrn": a.original_rrn,
            },
        )

    def _applies_to(self, key: TxnKey, business_date: date, record: str) -> int:
        """The stored authorisation a completion or reversal applies to: it must exist, be
        approved, and have the business date the record inherits."""
        row = self._raw_one(q.APPLIES_TO, _key_params(key))
        if row is None:
            raise RecordNotFound(f"{record}: no authorisation for this terminal, batch and STAN")
        if row.response_code != _APPROVED:
            raise StoreIntegrityError(f"{record}: the authorisation was declined")
        if row.business_date != business_date:
            raise InvalidRecord(record, "business_date", "must be its authorisation's")
        return int(row.txn_id)

    def add_completion(self, completion: Completion) -> None:
        self._writable()
        c = completion
        params = {
            **_key_params(c.key),
            "amount_fen": c.amount_fen,
            "tac": _hex(c.tac),
            "tac_verdict": c.tac_verdict.value,
            "card_counter": c.card_counter,
            "psam_serial": c.psam_serial,
            "terminal_datetime": c.terminal_datetime,
            "business_date": c.business_date,
            "received_at": c.received_at,
        }
        if self._raw_write(q.ADD_COMPLETION_APPLIED, params) != 1:
            self._applies_to(c.key, c.business_date, "completion")  # raises: says why
            raise StoreIntegrityError("completion: not stored")  # pragma: no cover

    def add_reversal(self, reversal: Reversal) -> None:
        self._writable()
        r = reversal
        params = {
            **_key_params(r.key),
            "reason_code": r.reason.value,
            "business_date": r.business_date,
            "received_at": r.received_at,
        }
        if self._raw_write(q.ADD_REVERSAL_APPLIED, params) != 1:
            self._applies_to(r.key, r.business_date, "reversal")  # raises: says why
            raise StoreIntegrityError("reversal: not stored")  # pragma: no cover

    def add_batch_upload(self, record: BatchUploadRecord) -> None:
        self._writable()
        u, key = record, record.key
        self._raw_write(
            q.ADD_BATCH_UPLOAD,
            {
                "terminal_id": key.terminal_id,
                "batch_no": key.batch_no,
                "stan": key.stan,
                "kind": u.kind.value,
                "asn": u.asn,
                "amount_fen": u.amount_fen,
                "rrn": u.rrn,
                "tac": _hex(u.tac),
                "card_counter": u.card_counter,
                "psam_serial": u.psam_serial,
                "terminal_datetime": u.terminal_datetime,
                "received_at": u.received_at,
            },
        )

    def add_settlement(self, settlement: TerminalSettlement) -> None:
        self._writable()
        st = settlement
        values: dict[str, Any] = {
            "terminal_id": st.terminal_id,
            "batch_no": st.batch_no,
            "business_date": st.business_date,
            "settled_at": st.settled_at,
            "first_half_balanced": st.first_half_balanced,
            "second_half_balanced": st.second_half_balanced,
        }
        for prefix, totals in (("terminal", st.terminal_totals), ("host", st.host_totals)):
            for field in dataclasses.fields(BatchTotals):
                values[f"{prefix}_{field.name}"] = getattr(totals, field.name)
        self._raw_write(q.ADD_SETTLEMENT, values)

    # --- totals -----------------------------------------------------------------------------

    def card_day_totals(self, asn: str, business_date: date) -> DayTotals:
        row = self._raw_one(q.CARD_DAY, {"asn": asn, "business_date": business_date})
        assert row is not None
        return DayTotals(int(row[0]), int(row[1]))

    def merchant_day_totals(self, merchant_id: str, business_date: date) -> DayTotals:
        row = self._raw_one(
            q.MERCHANT_DAY, {"merchant_id": merchant_id, "business_date": business_date}
        )
        assert row is not None
        return DayTotals(int(row[0]), int(row[1]))

    def refunded_total_fen(self, original_rrn: str) -> int:
        row = self._raw_one(q.REFUNDED, {"original_rrn": original_rrn})
        assert row is not None
        return int(row[0])

    def batch_totals(self, terminal_id: str, batch_no: int) -> BatchTotals:
        rows = self._raw_all(q.BATCH_TOTALS, {"terminal_id": terminal_id, "batch_no": batch_no})
        values: dict[str, int] = {}
        for kind, amount_fen, count in rows:
            values[f"{TxnKind(kind).value}_amount_fen"] = int(amount_fen)
            values[f"{TxnKind(kind).value}_count"] = int(count)
        return BatchTotals(**values)

    # --- terminal state ---------------------------------------------------------------------

    def close_batch(self, terminal_id: str, batch_no: int) -> int:
        self._writable()
        self._raw_write(q.CLOSE_BATCH, {"tid": terminal_id, "open_batch_no": batch_no})
        row = self._raw_one(q.BATCH_NO, {"terminal_id": terminal_id})
        if row is None:
            raise RecordNotFound(f"terminal {terminal_id} is not registered")
        return int(row.batch_no)

    def sign_on(self, terminal_id: str, mak: bytes, at: datetime) -> None:
        self._writable()
        TerminalKeys(terminal_id, bytes(16), mak)  # checks the MAK's form
        mak_ct = self._vault.encrypt(mak, _mak_purpose(terminal_id))
        changed = self._raw_write(q.SIGN_ON, {"tid": terminal_id, "mak_ct": mak_ct, "at": at})
        if changed != 1:
            raise RecordNotFound(f"terminal {terminal_id} is not registered")

    def sign_off(self, terminal_id: str) -> None:
        self._writable()
        changed = self._raw_write(q.SIGN_OFF, {"tid": terminal_id})
        if changed != 1:
            raise RecordNotFound(f"terminal {terminal_id} is not registered")

    def next_rrn(self) -> str:
        self._writable()
        stmt = q.NEXT_RRN_POSTGRES if self._postgres else q.NEXT_RRN_SQLITE
        row = self._raw_one(stmt, {})
        assert row is not None
        value = int(row[0])
        if not 0 < value <= RRN_MAX:
            raise StoreError("RRN counter exhausted")
        return f"{value:012d}"

    # --- admin: registration ----------------------------------------------------------------

    def add_partner(self, partner: ChannelPartner) -> None:
        self._writable()
        p = partner
        self._execute(
            insert(s.partners).values(partner_id=p.partner_id, name=p.name, status=p.status.value)
        )

    def get_partner(self, partner_id: str) -> ChannelPartner | None:
        row = self._one(select(s.partners).where(s.partners.c.partner_id == partner_id))
        if row is None:
            return None
        return ChannelPartner(row.partner_id, row.name, PartnerStatus(row.status))

    def add_contract(self, contract: PartnerContract) -> PartnerContract:
        self._writable()
        c = contract
        result = self._execute(
            insert(s.partner_contracts).values(
                partner_id=c.partner_id,
                kind=c.kind.value,
                effective_from=c.effective_from,
                effective_to=c.effective_to,
                share_bp=c.share_bp,
                expansion_fee_fen=c.expansion_fee_fen,
                retention_days=c.retention_days,
                monthly_fee_fen=c.monthly_fee_fen,
            )
        )
        return dataclasses.replace(c, contract_id=int(result.inserted_primary_key[0]))

    def contracts(self, partner_id: str) -> list[PartnerContract]:
        pc = s.partner_contracts
        rows = self._conn.execute(
            select(pc).where(pc.c.partner_id == partner_id).order_by(pc.c.contract_id)
        ).all()
        return [
            PartnerContract(
                row.partner_id,
                ContractKind(row.kind),
                row.effective_from,
                row.effective_to,
                row.share_bp,
                row.expansion_fee_fen,
                row.retention_days,
                row.monthly_fee_fen,
                row.contract_id,
            )
            for row in rows
        ]

    def add_merchant(self, merchant: Merchant) -> None:
        self._writable()
        m = merchant
        self._execute(
            insert(s.merchants).values(
                merchant_id=m.merchant_id,
                name=m.name,
                mcc=m.mcc,
                acquirer_id=m.acquirer_id,
                onboarded_on=m.onboarded_on,
                status=m.status.value,
                signing_partner_id=m.signing_partner_id,
                daily_limit_fen=m.daily_limit_fen,
            )
        )

    def add_terminal(self, terminal: Terminal, tmk: bytes) -> None:
        self._writable()
        t = terminal
        TerminalKeys(t.terminal_id, tmk)  # checks the TMK's form
        if t.signed_on:
            raise InvalidRecord("terminal", "signed_on", "a new terminal has not signed on")
        self._execute(
            insert(s.terminals).values(
                terminal_id=t.terminal_id,
                merchant_id=t.merchant_id,
                deployed_on=t.deployed_on,
                status=t.status.value,
                maintaining_partner_id=t.maintaining_partner_id,
                batch_no=t.batch_no,
                signed_on=False,
                tmk_ct=self._vault.encrypt(tmk, _tmk_purpose(t.terminal_id)),
                mak_ct=None,
            )
        )

    def add_card(self, card: CardAccount) -> None:
        self._writable()
        c = card
        self._execute(
            insert(s.cards).values(
                asn=c.asn,
                issuer_id=c.issuer_id,
                status=c.status.value,
                daily_amount_limit_fen=c.daily_amount_limit_fen,
                daily_count_limit=c.daily_count_limit,
            )
        )

    def add_issuer(self, issuer: Issuer, keys: IssuerKeys) -> None:
        self._writable()
        self._execute(insert(s.issuers).values(issuer_id=issuer.issuer_id, name=issuer.name))
        self.add_issuer_keys(issuer.issuer_id, keys)

    def add_issuer_keys(self, issuer_id: str, keys: IssuerKeys) -> None:
        self._writable()
        purpose = _issuer_keys_purpose(issuer_id, keys.key_version)
        blob = self._vault.encrypt(keys.to_json().encode("utf-8"), purpose)
        self._execute(
            insert(s.issuer_keys).values(
                issuer_id=issuer_id, key_version=keys.key_version, keys_ct=blob
            )
        )

    def add_commission_rule(self, rule: CommissionRule) -> CommissionRule:
        self._writable()
        r = s.commission_rules.c
        version = rule.version
        if version == 0:
            row = self._one(
                select(func.coalesce(func.max(r.version), 0)).where(
                    r.merchant_id == rule.merchant_id
                )
            )
            assert row is not None
            version = int(row[0]) + 1
        stored = dataclasses.replace(rule, version=version)
        self._execute(
            insert(s.commission_rules).values(
                merchant_id=stored.merchant_id,
                version=stored.version,
                kind=stored.kind.value,
                effective_from=stored.effective_from,
                effective_to=stored.effective_to,
                rate_bp=stored.rate_bp,
                min_fen=stored.min_fen,
                max_fen=stored.max_fen,
                fee_fen=stored.fee_fen,
                user_bp=stored.user_bp,
                settle_bp=stored.settle_bp,
            )
        )
        return stored

    def commission_rules(self, merchant_id: str) -> list[CommissionRule]:
        cr = s.commission_rules
        rows = self._conn.execute(
            select(cr).where(cr.c.merchant_id == merchant_id).order_by(cr.c.version)
        ).all()
        return [
            CommissionRule(
                row.merchant_id,
                RuleKind(row.kind),
                row.effective_from,
                row.effective_to,
                row.rate_bp,
                row.min_fen,
                row.max_fen,
                row.fee_fen,
                row.user_bp,
                row.settle_bp,
                row.version,
            )
            for row in rows
        ]

    # --- admin: status --------------------------------------------------------------------

    def _set(self, table: Any, where: Any, values: dict[str, Any], what: str) -> None:
        self._writable()
        result = self._execute(update(table).where(where).values(**values))
        if result.rowcount != 1:
            raise RecordNotFound(f"{what} is not registered")

    def set_merchant_status(self, merchant_id: str, status: MerchantStatus) -> None:
        self._set(
            s.merchants,
            s.merchants.c.merchant_id == merchant_id,
            {"status": MerchantStatus(status).value},
            f"merchant {merchant_id}",
        )

    def set_terminal_status(self, terminal_id: str, status: TerminalStatus) -> None:
        self._set(
            s.terminals,
            s.terminals.c.terminal_id == terminal_id,
            {"status": TerminalStatus(status).value},
            f"terminal {terminal_id}",
        )

    def set_card_status(self, asn: str, status: CardStatus) -> None:
        self._set(s.cards, s.cards.c.asn == asn, {"status": CardStatus(status).value}, "the card")

    # --- admin: queries -------------------------------------------------------------------

    def list_merchants(self, *, after_merchant_id: str = "", limit: int = 100) -> list[Merchant]:
        _check_limit(limit)
        m = s.merchants
        rows = self._conn.execute(
            select(m)
            .where(m.c.merchant_id > after_merchant_id)
            .order_by(m.c.merchant_id)
            .limit(limit)
        ).all()
        return [_merchant(row) for row in rows]

    def list_terminals(
        self, *, merchant_id: str | None = None, after_terminal_id: str = "", limit: int = 100
    ) -> list[Terminal]:
        _check_limit(limit)
        t = s.terminals.c
        stmt = q.TERMINAL_COLUMNS.where(t.terminal_id > after_terminal_id)
        if merchant_id is not None:
            stmt = stmt.where(t.merchant_id == merchant_id)
        rows = self._conn.execute(stmt.order_by(t.terminal_id).limit(limit)).all()
        return [_terminal(row) for row in rows]

    def search_transactions(self, query: TxnQuery) -> TxnPage:
        a, k, r = s.authorisations, s.completions, s.reversals
        stmt = (
            select(
                a,
                k.c.amount_fen.label("completion_amount_fen"),
                k.c.tac_verdict.label("tac_verdict"),
                r.c.reason_code.label("reversal_reason"),
            )
            .outerjoin(k, k.c.txn_id == a.c.txn_id)
            .outerjoin(r, r.c.txn_id == a.c.txn_id)
            .where(a.c.txn_id > query.after_txn_id)
        )
        filters: list[tuple[Any, Any]] = [
            (a.c.terminal_id, query.terminal_id),
            (a.c.merchant_id, query.merchant_id),
            (a.c.asn, query.asn),
            (a.c.rrn, query.rrn),
            (a.c.kind, None if query.kind is None else query.kind.value),
            (a.c.response_code, None if query.response_code is None else query.response_code.value),
        ]
        for column, value in filters:
            if value is not None:
                stmt = stmt.where(column == value)
        if query.business_date_from is not None:
            stmt = stmt.where(a.c.business_date >= query.business_date_from)
        if query.business_date_to is not None:
            stmt = stmt.where(a.c.business_date <= query.business_date_to)
        rows = self._conn.execute(stmt.order_by(a.c.txn_id).limit(query.limit + 1)).all()
        more = len(rows) > query.limit
        items = tuple(
            TxnSummary(
                int(row.txn_id),
                _authorisation(row),
                row.completion_amount_fen,
                None if row.tac_verdict is None else TacVerdict(row.tac_verdict),
                None if row.reversal_reason is None else ReversalReason(row.reversal_reason),
            )
            for row in rows[: query.limit]
        )
        return TxnPage(items, items[-1].txn_id if more else None)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not 1 <= limit <= PAGE_LIMIT_MAX:
        raise InvalidRecord("page", "limit", f"must be 1..{PAGE_LIMIT_MAX}")


def _terminal(row: Any) -> Terminal:
    return Terminal(
        row.terminal_id,
        row.merchant_id,
        row.deployed_on,
        TerminalStatus(row.status),
        row.maintaining_partner_id,
        row.batch_no,
        bool(row.signed_on),
    )


def _merchant(row: Any) -> Merchant:
    return Merchant(
        row.merchant_id,
        row.name,
        row.mcc,
        row.acquirer_id,
        row.onboarded_on,
        MerchantStatus(row.status),
        row.signing_partner_id,
        row.daily_limit_fen,
    )


def _authorisation(row: Any) -> Authorisation:
    psam = _unhex(row.psam_terminal_id)
    assert psam is not None
    return Authorisation(
        kind=TxnKind(row.kind),
        key=TxnKey(row.terminal_id, row.batch_no, row.stan),
        merchant_id=row.merchant_id,
        asn=row.asn,
        amount_fen=row.amount_fen,
        rrn=row.rrn,
        response_code=ResponseCode(row.response_code),
        business_date=row.business_date,
        received_at=row.received_at,
        card_counter=row.card_counter,
        key_version=row.key_version,
        psam_terminal_id=psam,
        balance_before_fen=row.balance_before_fen,
        auth_code=row.auth_code,
        card_random=_unhex(row.card_random),
        original_rrn=row.original_rrn,
    )
