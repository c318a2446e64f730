"""A synthetic business day in the host's capture store, for the clearing bench (issue 5: a
10-million-transaction day). Set-based: every big table is filled by one INSERT ... SELECT over
a number series (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL) with integer
formulas, never a Python loop per transaction. The schema is the host's own, created by its
migrations; secondary indexes of ``authorisations`` whose keys arrive in random order are
dropped for the load and re-created from their own definitions afterwards. The load commits
every CHUNK_ROWS rows. ``check_constraints=False`` (SQLite only) skips the tables' CHECK
constraints during the load (about a fifth of the time); the tests generate with them on.
``cache_dir`` (SQLite) keeps a finished day and copies it on the next call with the same
arguments.

Where the time goes (SQLite, 10M): the unique index on (terminal_id, batch_no, stan) takes
its keys in random order (every terminal trades all day), and its random inserts dominate;
SQLite cannot defer a UNIQUE constraint's index, so that cost stays.

What a day holds (``txn_count`` = N approved authorisations, in capture order g = 0..N-1):
- in every block of 1,000 consecutive g: 989 purchases, 10 refunds, 1 load (so ~1% refunds);
  a refund takes back all or half of a purchase made earlier in its block, at the same
  terminal, on the same card, and names it in ``original_rrn``;
- 10,000 merchants (1, 2 or 3 terminals each, by merchant index mod 3) with a mix of rules
  (percent with and without min/max, fixed fee, the cinema's discount 8000/6000, 1000 bp,
  zero; some with an older rule version that ended before the day), 40 signing partners with
  contracts, 12 maintaining partners, 3 issuers, one acquirer;
- cards: N // 10 of them; each card's purchases count up its offline counter without a gap,
  its loads and refunds its online counter;
- purchase volume skewed towards low terminal numbers (so some merchants are big);
- completions with TAC verdict ``ok``, except: a purchase in ~5,000 is never completed
  (NO_COMPLETION), one in ~10,000 is reversed (reason 98, never completed), one in ~20,000 has a
  ``bad`` TAC verdict; refund originals are never among them;
- one 0500 terminal settlement per (terminal, batch), balanced except for terminals whose
  index is 3 mod 997 (the terminal counted one purchase of 1.00 yuan more).

Timestamps: the business date is Asia/Shanghai; the day runs from 16:00 UTC the day before;
captures follow HOUR_WEIGHTS (quiet nights, meal-time peaks), increasing with g.

    python -m bench.clearing_data sqlite:////tmp/day.db 10000000 --skip-checks --cache /tmp/days
    python -m bench.clearing_data \
        'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dday' 1000000
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import psycopg
from sqlalchemy import make_url

from acquiring.adapters.sql.migrate import head_revision, upgrade

BUSINESS_DATE: Final = date(2026, 3, 16)
MERCHANTS_DEFAULT: Final = 10_000
ISSUERS: Final = ("ISS001", "ISS002", "ISS003")
ACQUIRER: Final = "ACQ001"
SIGNING_PARTNERS: Final = 40
MAINTAINING_PARTNERS: Final = 12
TXN_COUNT_MAX: Final = 100_000_000
#: Rows per transaction of the load (SQLite keeps the hot index pages in its cache).
CHUNK_ROWS: Final = 1_000_000
BLOCK: Final = 1_000
PURCHASES_PER_BLOCK: Final = 989
REFUNDS_PER_BLOCK: Final = 10  # slots 989..998; slot 999 is a load
STAN_MAX: Final = 999_999
DAY_US: Final = 86_400_000_000
HOUR_US: Final = 3_600_000_000
#: Relative traffic per local hour 0..23 (a quiet night, breakfast, lunch and dinner peaks);
#: capture instants follow it, still increasing with g.
HOUR_WEIGHTS: Final = (
    1,
    1,
    1,
    1,
    1,
    2,
    4,
    8,
    10,
    8,
    7,
    12,
    14,
    10,
    7,
    6,
    7,
    10,
    13,
    12,
    9,
    7,
    4,
    2,
)
#: Purchases that are held back: p % modulus == residue (never a refund original).
NO_COMPLETION_MOD: Final = (4_999, 7)
REVERSED_MOD: Final = (9_973, 11)
BAD_TAC_MOD: Final = (19_997, 5)
UNBALANCED_TERMINAL_MOD: Final = (997, 3)
#: A refund in slot k of a block refunds the purchase in slot k * 97 + 13 of that block.
ORIGINAL_STEP: Final = 97
ORIGINAL_OFFSET: Final = 13
#: The multiplicative hash of a purchase index: h = (p * _K + seed * 97,531) mod _M.
_K: Final = 2_654_435_761
_M: Final = 4_294_967_296
LOAD_AMOUNTS_FEN: Final = (5_000, 10_000, 20_000, 50_000, 100_000)
#: Indexes re-built after the load rather than kept up to date row by row (their keys arrive
#: in random order); the indexes on business_date and original_rrn get their keys in rowid
#: order (one date; NULL for all but refunds) and are cheaper to keep.
_REBUILT_INDEXES: Final = (
    "ix_authorisations_asn_business_date",
    "ix_authorisations_merchant_id_business_date",
)
#: PostgreSQL builds any index faster after the load than during it.
_REBUILT_INDEXES_PG: Final = (
    *_REBUILT_INDEXES,
    "ix_authorisations_business_date",
    "ix_authorisations_original_rrn",
)


@dataclass(frozen=True, slots=True)
class GeneratedDay:
    """What ``generate`` put in the store (all counted from the formulas, not the database)."""

    business_date: date
    txn_count: int
    purchases: int
    refunds: int
    loads: int
    merchants: int
    terminals: int  # with transactions; plus idle_terminal_count(merchants) without
    deployed_today: int
    returned_today: int
    cards: int
    no_completion: int
    reversed: int
    bad_tac: int
    settlements: int
    unbalanced_settlements: int
    elapsed_s: float


# --- the formulas, once in Python (for the counts and the tests) and once in SQL -------------


def terminal_count(merchants: int) -> int:
    """Merchant 3b has 1 terminal, 3b+1 has 2, 3b+2 has 3 (terminals in blocks of six)."""
    return 6 * (merchants // 3) + (0, 1, 3)[merchants % 3]


def idle_terminal_count(merchants: int) -> int:
    """Terminals after the busy ones: even ones deployed on the day, odd ones returned on it."""
    return max(2, merchants // 100)


def merchant_of_terminal(t: int) -> int:
    return 3 * (t // 6) + (0, 1, 1, 2, 2, 2)[t % 6]


def _hash(p: int, seed: int) -> int:
    return (p * _K + seed * 97_531) % _M


def purchase_amount_fen(p: int, seed: int) -> int:
    """The amount of purchase p: 1..49,435 fen, skewed towards small amounts."""
    h = _hash(p, seed)
    return 1 + (h % 1_499) * (1 + (h // 1_499) % 33)


def purchase_terminal(p: int, seed: int, terminals: int) -> int:
    h = _hash(p, seed)
    return (h % terminals) * ((h // 65_536) % terminals) // terminals


def refund_amount_fen(k: int, original_fen: int) -> int:
    return original_fen if k % 2 == 0 else max(1, original_fen // 2)


def offset_us(g: int, txn_count: int) -> int:
    """Microseconds into the business day of capture g (HOUR_WEIGHTS; increasing in g)."""
    weight = sum(HOUR_WEIGHTS)
    x = g * weight
    cumulative = 0
    for hour, w in enumerate(HOUR_WEIGHTS):
        if x < (cumulative + w) * txn_count:
            return hour * HOUR_US + (x - cumulative * txn_count) * HOUR_US // (w * txn_count)
        cumulative += w
    raise ValueError("g must be below txn_count")


def _offset_us_sql(g: str, n: int) -> str:
    """offset_us in SQL (integer arithmetic; no overflow for n <= TXN_COUNT_MAX)."""
    weight = sum(HOUR_WEIGHTS)
    branches = []
    cumulative = 0
    for hour, w in enumerate(HOUR_WEIGHTS):
        branches.append(
            f"WHEN ({g}) * {weight} < {(cumulative + w) * n} THEN {hour * HOUR_US}"
            f" + (({g}) * {weight} - {cumulative * n}) * {HOUR_US} / {w * n}"
        )
        cumulative += w
    return f"(CASE {' '.join(branches)} END)"


def _held(p: int, modulus: tuple[int, int]) -> bool:
    return p % modulus[0] == modulus[1] and (p % PURCHASES_PER_BLOCK) % ORIGINAL_STEP != (
        ORIGINAL_OFFSET
    )


def kinds(txn_count: int) -> tuple[int, int, int]:
    """(purchases, refunds, loads) among g = 0..txn_count-1."""
    full, rest = divmod(txn_count, BLOCK)
    purchases = full * PURCHASES_PER_BLOCK + min(rest, PURCHASES_PER_BLOCK)
    refunds = full * REFUNDS_PER_BLOCK + max(0, min(rest - PURCHASES_PER_BLOCK, REFUNDS_PER_BLOCK))
    return purchases, refunds, txn_count - purchases - refunds


def _count_held(
    purchases: int, modulus: tuple[int, int], unless: tuple[tuple[int, int], ...] = ()
) -> int:
    """Purchases picked by ``modulus`` and by none of ``unless`` (a reversal wins over a
    missing completion; a purchase never completed has no TAC verdict)."""
    return sum(
        1
        for p in range(modulus[1], purchases, modulus[0])
        if _held(p, modulus) and not any(_held(p, other) for other in unless)
    )


# --- SQL per dialect -----------------------------------------------------------------------


class _Dialect:
    """The few places SQLite and PostgreSQL spell things differently."""

    def __init__(self, name: str, day: date) -> None:
        self.pg = name == "postgresql"
        self.day = day

    def numbers(self, count_sql: str) -> tuple[str, str]:
        """(prefix, FROM clause) of a series n(g) = 0..count-1 (BIGINT)."""
        if self.pg:
            return "", f"FROM generate_series(0::bigint, ({count_sql}) - 1) AS n(g)"
        return (
            f"WITH RECURSIVE n(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM n "
            f"WHERE g + 1 < ({count_sql}))",
            "FROM n",
        )

    def fence(self) -> str:
        """Ends a subquery the planner must not flatten (so its columns are computed once)."""
        return " OFFSET 0" if self.pg else " LIMIT -1 OFFSET 0"

    def dec(self, expr: str, width: int) -> str:
        if self.pg:
            return f"lpad(({expr})::text, {width}, '0')"
        return f"substr('{'0' * width}' || ({expr}), -{width})"  # expr in 0..10^width-1

    def hex(self, expr: str, width: int) -> str:
        if self.pg:
            return f"upper(lpad(to_hex({expr}), {width}, '0'))"
        return f"printf('%0{width}X', {expr})"

    def date(self) -> str:
        return f"CAST('{self.day.isoformat()}' AS DATE)" if self.pg else f"'{self.day}'"

    def instant(self, us_expr: str) -> str:
        """The UTC instant ``us_expr`` microseconds (0 to 32 hours) after the business day
        began (local 00:00 Asia/Shanghai = 16:00 UTC the day before); on SQLite in
        SQLAlchemy's text format, by arithmetic (cheaper than strftime)."""
        start = self.day - timedelta(days=1)
        if self.pg:
            return f"(TIMESTAMPTZ '{start} 16:00:00+00' + ({us_expr}) * INTERVAL '1 microsecond')"
        sec = f"(({us_expr}) / 1000000)"
        return (
            f"printf('%s %02d:%02d:%02d.%06d', "
            f"CASE WHEN {sec} < 28800 THEN '{start}' ELSE '{self.day}' END, "
            f"(16 + {sec} / 3600) % 24, {sec} / 60 % 60, {sec} % 60, ({us_expr}) % 1000000)"
        )

    def local(self, instant: str, us_expr: str, seconds: int) -> str:
        """DF09: the terminal's local clock (Asia/Shanghai, no zone) ``seconds`` after the
        instant ``us_expr`` microseconds into the day, in whole seconds."""
        if self.pg:
            return (
                f"date_trunc('second', ({instant} AT TIME ZONE 'Asia/Shanghai') "
                f"+ INTERVAL '{seconds} seconds')"
            )
        sec = f"(({us_expr}) / 1000000 + {seconds})"
        return (
            f"printf('%s %02d:%02d:%02d.000000', "
            f"CASE WHEN {sec} < 86400 THEN '{self.day}' ELSE '{self.day + timedelta(days=1)}' END,"
            f" {sec} / 3600 % 24, {sec} / 60 % 60, {sec} % 60)"
        )


class _Db:
    """A DB-API connection of either kind with autocommit off; ``run`` executes SQL text."""

    def __init__(self, db_url: str) -> None:
        url = make_url(db_url)
        self.name = url.get_backend_name()
        self.conn: Any
        if self.name == "sqlite":
            if not url.database:
                raise ValueError("a SQLite file URL is needed: sqlite:////path/to/day.db")
            self.conn = sqlite3.connect(url.database, isolation_level=None)
            for pragma in (
                "journal_mode=OFF",  # a fresh bench file: regenerate it after a crash
                "synchronous=OFF",
                "cache_size=-2097152",  # 2 GiB: the hot B-tree pages of a 10M-row load stay cached
                "temp_store=MEMORY",  # the sorts of GROUP BY and CREATE INDEX
                "threads=2",
                "foreign_keys=OFF",
            ):
                self.conn.execute(f"PRAGMA {pragma}")
            self.conn.execute("BEGIN")
        elif self.name == "postgresql":
            options = url.query.get("options")
            self.conn = psycopg.connect(
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                user=url.username,
                password=url.password,
                dbname=url.database,
                options=options if isinstance(options, str) else None,
            )
            self.conn.execute("SET synchronous_commit = off")
            self.conn.execute("SET maintenance_work_mem = '256MB'")
        else:
            raise ValueError(f"unsupported database {self.name!r}")

    def run(self, sql: str) -> None:
        self.conn.execute(sql)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor = self.conn.cursor()
        cursor.executemany(self._sql(sql), rows)

    def one(self, sql: str) -> Any:
        return self.conn.execute(sql).fetchone()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.name == "postgresql" else sql

    def commit(self) -> None:
        """Commits and, on SQLite, begins the next transaction at once."""
        if self.name == "sqlite":
            self.conn.execute("COMMIT")
            self.conn.execute("BEGIN")
        else:
            self.conn.commit()

    def close(self) -> None:
        if self.name == "sqlite":
            self.conn.execute("PRAGMA journal_mode=WAL")  # the host's mode (ADR 0003)
        self.conn.close()


# --- reference data ------------------------------------------------------------------------


def _reference_data(
    db: _Db, d: _Dialect, merchants: int, cards: int, txn_count: int, seed: int
) -> int:
    rnd = random.Random(seed)
    day = d.day
    db.many("INSERT INTO issuers (issuer_id, name) VALUES (?, ?)",
            [(i, f"Issuer {n}") for n, i in enumerate(ISSUERS, 1)])  # fmt: skip
    partners = [(f"PS{n:04d}", f"Signing partner {n}", "active") for n in range(SIGNING_PARTNERS)]
    partners += [
        (f"PM{n:04d}", f"Maintaining partner {n}", "active") for n in range(MAINTAINING_PARTNERS)
    ]
    db.many("INSERT INTO partners (partner_id, name, status) VALUES (?, ?, ?)", partners)
    db.many(
        "INSERT INTO partner_contracts (partner_id, kind, effective_from, effective_to, share_bp,"
        " expansion_fee_fen, retention_days, monthly_fee_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (f"PS{n:04d}", "signing", date(2024, 1, 1), None, 1_000 + 100 * (n % 41),
             20_000 + 4_500 * (n % 41), 90, None)
            for n in range(SIGNING_PARTNERS)
        ]
        + [
            (f"PM{n:04d}", "maintenance", date(2024, 1, 1), None, None, None, None, 5_500)
            for n in range(MAINTAINING_PARTNERS)
        ],
    )  # fmt: skip
    merchant_rows = []
    rule_rows: list[tuple[Any, ...]] = []
    for m in range(merchants):
        mid = f"8983100{m:08d}"
        onboarded = day - timedelta(days=rnd.randint(1, 900))
        signing = f"PS{rnd.randrange(SIGNING_PARTNERS):04d}" if rnd.random() < 0.9 else None
        merchant_rows.append(
            (mid, f"Merchant {m}", "5812", ACQUIRER, onboarded, "active", signing, None)
        )
        rule_rows.extend(_rules(rnd, mid, onboarded))
    db.many(
        "INSERT INTO merchants (merchant_id, name, mcc, acquirer_id, onboarded_on, status,"
        " signing_partner_id, daily_limit_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        merchant_rows,
    )
    db.many(
        "INSERT INTO commission_rules (merchant_id, version, kind, effective_from, effective_to,"
        " rate_bp, min_fen, max_fen, fee_fen, user_bp, settle_bp)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rule_rows,
    )
    terminals = terminal_count(merchants)
    batch_next = _batches(txn_count) + 1  # the batch each terminal opened after its 0500s
    rows: list[tuple[Any, ...]] = [
        (f"T{t:07d}", f"8983100{merchant_of_terminal(t):08d}", day - timedelta(days=400), None,
         "active", f"PM{t % MAINTAINING_PARTNERS:04d}", batch_next)
        for t in range(terminals)
    ]  # fmt: skip
    # Deposit movements (clearing.md §4): terminals deployed on the day (a deposit collected)
    # and terminals returned on the day (a deposit paid back); neither has transactions.
    for n in range(idle_terminal_count(merchants)):
        t = terminals + n
        merchant = f"8983100{(n * 37) % merchants:08d}"
        partner = f"PM{t % MAINTAINING_PARTNERS:04d}"
        if n % 2 == 0:
            rows.append((f"T{t:07d}", merchant, day, None, "active", partner, 1))
        else:
            old = day - timedelta(days=200)
            rows.append((f"T{t:07d}", merchant, old, day, "returned", partner, 1))
    db.many(
        "INSERT INTO terminals (terminal_id, merchant_id, deployed_on, returned_on, status,"
        " maintaining_partner_id, batch_no, signed_on, signed_on_at, tmk_ct, mak_ct)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*row, False, None, b"bench: no key", None) for row in rows],
    )
    prefix, source = d.numbers(str(cards))
    db.run(
        f"{prefix} INSERT INTO cards (asn, issuer_id, status, daily_amount_limit_fen,"
        f" daily_count_limit) SELECT '8888' || {d.dec('g', 12)},"
        f" CASE g % 3 WHEN 0 THEN '{ISSUERS[0]}' WHEN 1 THEN '{ISSUERS[1]}'"
        f" ELSE '{ISSUERS[2]}' END, 'active', 10000000, 1000 {source}"
    )
    return terminals


def _batches(txn_count: int) -> int:
    return 1 + max(txn_count - 1, 0) // STAN_MAX


def _rules(rnd: random.Random, mid: str, onboarded: date) -> list[tuple[Any, ...]]:
    """One merchant's rule versions: the one in force (version 1, or 2 after an older one)."""
    roll = rnd.random()
    rule: tuple[str, int | None, int | None, int | None, int | None, int | None, int | None]
    rows: list[tuple[Any, ...]] = []
    start = onboarded
    if rnd.random() < 0.05 and onboarded < BUSINESS_DATE - timedelta(days=60):
        changed = onboarded + timedelta(days=30)
        rows.append((mid, 1, "percent", onboarded, changed, 150, None, None, None, None, None))
        start = changed
    version = len(rows) + 1
    if roll < 0.45:
        rate = rnd.choice((30, 50, 60, 100, 125, 200, 300))
        rule = ("percent", rate, None, None, None, None, None)
    elif roll < 0.60:
        rule = ("percent", rnd.choice((100, 150, 250)), rnd.randint(1, 10),
                rnd.choice((200, 500, 2_000)), None, None, None)  # fmt: skip
    elif roll < 0.70:
        rule = ("fixed", None, None, None, rnd.randint(10, 100), None, None)
    elif roll < 0.75:
        rule = ("discount", 2_500, None, None, None, 8_000, 6_000)  # the cinema
    elif roll < 0.80:
        rule = ("percent", 1_000, None, None, None, None, None)  # the fast-food chain
    elif roll < 0.90:
        rule = ("percent", 100, None, None, None, None, None)  # the 1% chain
    else:
        rule = ("zero", None, None, None, None, None, None)  # supermarkets, light rail
    kind, rate_bp, min_fen, max_fen, fee_fen, user_bp, settle_bp = rule
    rows.append(
        (mid, version, kind, start, None, rate_bp, min_fen, max_fen, fee_fen, user_bp, settle_bp)
    )
    return rows


# --- transactions --------------------------------------------------------------------------


def _txn_columns() -> str:
    return (
        "txn_id, kind, terminal_id, merchant_id, batch_no, stan, asn, amount_fen, rrn,"
        " auth_code, response_code, business_date, received_at, card_counter, key_version,"
        " psam_terminal_id, balance_before_fen, card_random, original_rrn"
    )


def _merchant_sql(t: str) -> str:
    return (
        f"(3 * (({t}) / 6) + CASE ({t}) % 6 WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 1 ELSE 2 END)"
    )


def _common(d: _Dialect, g: str, t: str) -> str:
    """terminal_id, merchant_id, batch_no, stan of transaction ``g`` at terminal ``t``."""
    return (
        f"'T' || {d.dec(t, 7)}, '8983100' || {d.dec(_merchant_sql(t), 8)},"
        f" 1 + ({g}) / {STAN_MAX}, 1 + ({g}) % {STAN_MAX}"
    )


def _purchase_series(
    d: _Dialect, first: int, end: int, seed: int, terminals: int
) -> tuple[str, str]:
    """(prefix, FROM clause) of rows (p, g, h, t) for purchases p = first..end-1: its capture
    index g, hash h and terminal t, each computed once per row (SQLite: carried by the
    recursive CTE)."""
    s = (first * _K + seed * 97_531) % _M
    g0 = (first // PURCHASES_PER_BLOCK) * BLOCK + first % PURCHASES_PER_BLOCK

    def t_of(h: str) -> str:
        return f"(({h}) % {terminals}) * ((({h}) / 65536) % {terminals}) / {terminals}"

    g_of = f"((p + 1) / {PURCHASES_PER_BLOCK}) * {BLOCK} + (p + 1) % {PURCHASES_PER_BLOCK}"
    if d.pg:
        return "", (
            f"FROM (SELECT p, g, h, {t_of('h')} AS t FROM (SELECT p,"
            f" (p / {PURCHASES_PER_BLOCK}) * {BLOCK} + p % {PURCHASES_PER_BLOCK} AS g,"
            f" (p * {_K} + {seed * 97_531}) % {_M} AS h"
            f" FROM generate_series({first}::bigint, {end - 1}) AS series(p) OFFSET 0) a"
            " OFFSET 0) q"
        )
    h_next = f"(h + {_K}) % {_M}"
    return (
        f"WITH RECURSIVE q(p, g, h, t) AS (SELECT {first}, {g0}, {s}, {t_of(str(s))}"
        f" UNION ALL SELECT p + 1, {g_of}, {h_next}, {t_of(h_next)} FROM q"
        f" WHERE p + 1 < {end})",
        "FROM q",
    )


def _purchases(
    db: _Db, d: _Dialect, n: int, seed: int, terminals: int, cards: int, first: int, end: int
) -> None:
    prefix, source = _purchase_series(d, first, end, seed, terminals)
    amount = "(1 + (h % 1499) * (1 + (h / 1499) % 33))"
    counter = f"((p % {cards}) * 37 + {seed}) % 500 + p / {cards}"
    db.run(
        f"{prefix} INSERT INTO authorisations ({_txn_columns()})"
        f" SELECT g + 1, 'purchase', {_common(d, 'g', 't')},"
        f" '8888' || {d.dec(f'p % {cards}', 12)}, {amount}, {d.dec('g + 1', 12)},"
        f" {d.dec('(g * 7) % 1000000', 6)}, '00', {d.date()},"
        f" {d.instant('us')}, {counter}, 1,"
        f" {d.hex(f'{0x001122330000} + t', 12)}, 50000 + h % 50000, {d.hex('h', 8)}, NULL"
        f" FROM (SELECT p, g, h, t, {_offset_us_sql('g', n)} AS us {source}{d.fence()}) u"
    )


def _online(db: _Db, d: _Dialect, n: int, seed: int, terminals: int, cards: int) -> None:
    """Refunds and loads (~1.1%): their online counters need a per-card row number."""
    blocks = (n + BLOCK - 1) // BLOCK
    prefix, source = d.numbers(str(blocks * (BLOCK - PURCHASES_PER_BLOCK)))
    per = BLOCK - PURCHASES_PER_BLOCK
    # k = slot - 989: 0..9 refund, 10 load; p_orig the refunded purchase
    g = f"((g / {per}) * {BLOCK} + {PURCHASES_PER_BLOCK} + g % {per})"
    po = (
        f"((g / {per}) * {PURCHASES_PER_BLOCK} + (g % {per}) * {ORIGINAL_STEP} + {ORIGINAL_OFFSET})"
    )
    h = f"((po * 2654435761 + {seed * 97_531}) % 4294967296)"
    t_orig = f"(({h} % {terminals}) * (({h} / 65536) % {terminals}) / {terminals})"
    amount_orig = f"(1 + ({h} % 1499) * (1 + ({h} / 1499) % 33))"
    lh = f"((blk * 40503 + {seed}) % 4294967296)"
    base = "((card * 11 + " + str(seed) + ") % 300)"
    inner = (
        f"SELECT gg, blk, k, po, "
        f" CASE WHEN k < {REFUNDS_PER_BLOCK} THEN po % {cards} ELSE (blk * 7919) % {cards} END"
        f" AS card,"
        f" CASE WHEN k < {REFUNDS_PER_BLOCK} THEN {t_orig} ELSE {lh} % {terminals} END AS t,"
        f" CASE WHEN k >= {REFUNDS_PER_BLOCK} THEN"
        f" CASE blk % 5 WHEN 0 THEN 5000 WHEN 1 THEN 10000 WHEN 2 THEN 20000 WHEN 3 THEN 50000"
        f" ELSE 100000 END"
        f" WHEN k % 2 = 0 THEN {amount_orig}"
        f" ELSE (CASE WHEN {amount_orig} / 2 < 1 THEN 1 ELSE {amount_orig} / 2 END) END AS amount"
        f" FROM (SELECT {g} AS gg, g / {per} AS blk, g % {per} AS k, {po} AS po {source}) s"
        f" WHERE gg < {n}"
    )
    db.run(
        f"{prefix} INSERT INTO authorisations ({_txn_columns()})"
        f" SELECT gg + 1, CASE WHEN k < {REFUNDS_PER_BLOCK} THEN 'refund' ELSE 'load' END,"
        f" {_common(d, 'gg', 't')}, '8888' || {d.dec('card', 12)}, amount,"
        f" {d.dec('gg + 1', 12)}, {d.dec('(gg * 7) % 1000000', 6)}, '00', {d.date()},"
        f" {d.instant(_offset_us_sql('gg', n))},"
        f" {base} + ROW_NUMBER() OVER (PARTITION BY card ORDER BY gg) - 1, 1,"
        f" {d.hex(f'{0x001122330000} + t', 12)}, 0, {d.hex('(gg * 40503) % 4294967296', 8)},"
        f" CASE WHEN k < {REFUNDS_PER_BLOCK} THEN"
        f" {d.dec(f'blk * {BLOCK} + k * {ORIGINAL_STEP} + {ORIGINAL_OFFSET} + 1', 12)} END"
        f" FROM ({inner}) x"
    )


def _held_sql(p: str, modulus: tuple[int, int]) -> str:
    return (
        f"({p} % {modulus[0]} = {modulus[1]}"
        f" AND ({p} % {PURCHASES_PER_BLOCK}) % {ORIGINAL_STEP} <> {ORIGINAL_OFFSET})"
    )


def _purchase_index_sql() -> str:
    return f"(((a.txn_id - 1) / {BLOCK}) * {PURCHASES_PER_BLOCK} + (a.txn_id - 1) % {BLOCK})"


def _not_completed_sql() -> str:
    """Purchases never completed: NO_COMPLETION ones and reversed ones."""
    p = _purchase_index_sql()
    return (
        f"(a.kind = 'purchase' AND ({_held_sql(p, NO_COMPLETION_MOD)}"
        f" OR {_held_sql(p, REVERSED_MOD)}))"
    )


def _completions_and_reversals(db: _Db, d: _Dialect, n: int, first: int, end: int) -> None:
    """Completions and reversals of the transactions with txn_id first..end-1."""
    p = _purchase_index_sql()
    bad = f"(a.kind = 'purchase' AND {_held_sql(p, BAD_TAC_MOD)})"
    # the offset into the day is computed once per row (the fenced subquery is not flattened)
    rows = (
        f"SELECT a.txn_id, a.amount_fen, a.card_counter, a.business_date, a.received_at,"
        f" CASE WHEN {bad} THEN 'bad' ELSE 'ok' END AS verdict,"
        f" {_offset_us_sql('a.txn_id - 1', n)} AS us FROM authorisations a"
        f" WHERE a.txn_id >= {first} AND a.txn_id < {end}"
    )
    db.run(
        "INSERT INTO completions (txn_id, amount_fen, tac, tac_verdict, card_counter,"
        " psam_serial, terminal_datetime, business_date, received_at)"
        f" SELECT txn_id, amount_fen, {d.hex('(txn_id * 2654435761) % 4294967296', 8)},"
        f" verdict, card_counter, txn_id, {d.local('received_at', 'us', 1)}, business_date,"
        f" {d.instant('us + 2000000')}"
        f" FROM ({rows} AND NOT {_not_completed_sql()}{d.fence()}) c"
    )
    db.run(
        "INSERT INTO reversals (txn_id, reason_code, business_date, received_at)"
        f" SELECT txn_id, '98', business_date, {d.instant('us + 30000000')}"
        f" FROM ({rows} AND a.kind = 'purchase' AND {_held_sql(p, REVERSED_MOD)}"
        f"{d.fence()}) r"
    )


_TOTALS: Final = ("pa", "pc", "ra", "rc", "la", "lc")


def _settlements(db: _Db, d: _Dialect, txn_count: int) -> None:
    """The host's totals per (terminal, batch): completed, unreversed transactions (a
    completion's amount is the authorised one). Summed chunk by chunk of txn_id into a
    temporary table (small sorts), then once more per (terminal, batch)."""
    parts = []
    for kind in ("purchase", "refund", "load"):
        parts.append(f"COALESCE(SUM(CASE WHEN a.kind = '{kind}' THEN a.amount_fen END), 0)")
        parts.append(f"COUNT(CASE WHEN a.kind = '{kind}' THEN 1 END)")
    db.run(
        "CREATE TEMPORARY TABLE bench_totals (terminal_id VARCHAR(8), batch_no INTEGER,"
        f" {', '.join(f'{c} BIGINT' for c in _TOTALS)})"
    )
    for first in range(1, txn_count + 1, CHUNK_ROWS):
        db.run(
            f"INSERT INTO bench_totals SELECT a.terminal_id, a.batch_no, {', '.join(parts)}"
            # on SQLite a rowid range and a sort, not the (terminal, batch, stan) index
            f" FROM authorisations a{'' if d.pg else ' NOT INDEXED'}"
            f" WHERE a.txn_id >= {first} AND a.txn_id < {first + CHUNK_ROWS}"
            f" AND NOT {_not_completed_sql()} GROUP BY a.terminal_id, a.batch_no"
        )
    sums = [f"SUM({c})" for c in _TOTALS]
    off = f"(CAST(substr(terminal_id, 2) AS INTEGER) % {UNBALANCED_TERMINAL_MOD[0]}" + (
        f" = {UNBALANCED_TERMINAL_MOD[1]})"
    )
    terminal = [
        f"{sums[0]} + CASE WHEN {off} THEN 100 ELSE 0 END",
        f"{sums[1]} + CASE WHEN {off} THEN 1 ELSE 0 END",
        *sums[2:],
    ]
    cols = (
        "purchase_amount_fen",
        "purchase_count",
        "refund_amount_fen",
        "refund_count",
        "load_amount_fen",
        "load_count",
    )
    db.run(
        "INSERT INTO terminal_settlements (terminal_id, batch_no, business_date, settled_at,"
        f" {', '.join('terminal_' + c for c in cols)}, {', '.join('host_' + c for c in cols)},"
        " first_half_balanced, second_half_balanced)"
        f" SELECT terminal_id, batch_no, {d.date()}, {d.instant(f'{DAY_US} - 1')},"
        f" {', '.join(terminal)}, {', '.join(sums)}, NOT {off}, {'true' if d.pg else '1'}"
        " FROM bench_totals GROUP BY terminal_id, batch_no"
    )
    db.run("DROP TABLE bench_totals")


def _rebuilt_indexes(db: _Db) -> tuple[str, ...]:
    return _REBUILT_INDEXES if db.name == "sqlite" else _REBUILT_INDEXES_PG


def _index_definitions(db: _Db) -> list[str]:
    names = _rebuilt_indexes(db)
    if db.name == "sqlite":
        listed = ", ".join(f"'{n}'" for n in names)
        rows = db.conn.execute(
            f"SELECT sql FROM sqlite_master WHERE type = 'index' AND name IN ({listed})"
        ).fetchall()
    else:
        rows = db.conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND indexname = ANY(%s)",
            (list(names),),
        ).fetchall()
    definitions = [r[0] for r in rows]
    if len(definitions) != len(names):
        raise RuntimeError(f"expected the indexes {names}, found {definitions}")
    return definitions


def generate(
    db_url: str,
    txn_count: int,
    seed: int,
    *,
    merchants: int = MERCHANTS_DEFAULT,
    business_date: date = BUSINESS_DATE,
    check_constraints: bool = True,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> GeneratedDay:
    """Create the host schema at ``db_url`` (empty database or schema) and fill it with one
    business day of ``txn_count`` approved transactions. Deterministic in ``seed``.

    ``cache_dir`` (SQLite only): a finished day is kept there, keyed by its arguments, the
    schema revision and this module's source, and later calls copy the file instead of
    generating it again (a 10M-transaction day takes minutes; a copy, seconds)."""
    if not 1 <= txn_count <= TXN_COUNT_MAX:
        raise ValueError(f"txn_count must be 1..{TXN_COUNT_MAX}")
    if not 1 <= merchants <= 1_000_000:
        raise ValueError("merchants must be 1..1000000")
    if not 0 <= seed < 1_000_000:
        raise ValueError("seed must be 0..999999")
    url = make_url(db_url)
    if cache_dir is None or url.get_backend_name() != "sqlite" or not url.database:
        return _generate(
            db_url, txn_count, seed, merchants, business_date, check_constraints, progress
        )
    target = Path(url.database)
    if target.exists() and target.stat().st_size > 0:
        raise ValueError(f"{target} exists: the day goes into a new SQLite file")
    key = hashlib.sha256(
        f"{txn_count}/{seed}/{merchants}/{business_date}/{head_revision()}/".encode()
        + Path(__file__).read_bytes()
    ).hexdigest()[:16]
    cached = cache_dir / f"clearing_day_{txn_count}_{key}.db"
    meta = cached.with_suffix(".json")
    started = time.perf_counter()
    if cached.exists() and meta.exists():
        shutil.copyfile(cached, target)
        fields = json.loads(meta.read_text())
        fields["business_date"] = date.fromisoformat(fields["business_date"])
        fields["elapsed_s"] = time.perf_counter() - started
        if progress is not None:
            progress(f"copied from {cached}: {fields['elapsed_s']:.1f} s")
        return GeneratedDay(**fields)
    day = _generate(db_url, txn_count, seed, merchants, business_date, check_constraints, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    temp = cached.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(target, temp)
    os.replace(temp, cached)
    fields = dataclasses.asdict(day) | {"business_date": day.business_date.isoformat()}
    meta.write_text(json.dumps(fields))
    return day


def _generate(
    db_url: str,
    txn_count: int,
    seed: int,
    merchants: int,
    business_date: date,
    check_constraints: bool,
    progress: Callable[[str], None] | None,
) -> GeneratedDay:
    report = progress or (lambda _line: None)
    started = time.perf_counter()

    def say(step: str) -> None:
        report(f"{step}: {time.perf_counter() - started:.1f} s, cpu {time.process_time():.1f} s")

    upgrade(db_url)
    say("schema ready")
    db = _Db(db_url)
    try:
        d = _Dialect(db.name, business_date)
        cards = max(1, txn_count // 10)
        terminals = _reference_data(db, d, merchants, cards, txn_count, seed)
        say("reference data")
        if not check_constraints and db.name == "sqlite":
            db.run("PRAGMA ignore_check_constraints = ON")
        definitions = _index_definitions(db)
        for name in _rebuilt_indexes(db):
            db.run(f"DROP INDEX {name}")
        purchases = kinds(txn_count)[0]
        for first in range(0, purchases, CHUNK_ROWS):
            end = min(purchases, first + CHUNK_ROWS)
            _purchases(db, d, txn_count, seed, terminals, cards, first, end)
            db.commit()  # chunks: committed pages become clean and cheap to evict
        say("purchases")
        _online(db, d, txn_count, seed, terminals, cards)
        say("refunds and loads")
        for first in range(1, txn_count + 1, CHUNK_ROWS):
            _completions_and_reversals(db, d, txn_count, first, first + CHUNK_ROWS)
            db.commit()
        say("completions")
        _settlements(db, d, txn_count)
        say("settlements")
        for definition in definitions:
            db.run(definition)
        say("indexes")
        db.commit()
        if db.name == "postgresql":
            db.conn.autocommit = True
            db.run("ANALYZE")
        else:
            db.run("PRAGMA analysis_limit = 1000")
            db.run("ANALYZE")
            db.run("COMMIT")
        settlements = db.one("SELECT COUNT(*) FROM terminal_settlements")[0]
        unbalanced = db.one(
            "SELECT COUNT(*) FROM terminal_settlements WHERE NOT first_half_balanced"
        )[0]
    finally:
        db.close()
    purchases, refunds, loads = kinds(txn_count)
    return GeneratedDay(
        business_date=business_date,
        txn_count=txn_count,
        purchases=purchases,
        refunds=refunds,
        loads=loads,
        merchants=merchants,
        terminals=terminals,
        deployed_today=(idle_terminal_count(merchants) + 1) // 2,
        returned_today=idle_terminal_count(merchants) // 2,
        cards=cards,
        no_completion=_count_held(purchases, NO_COMPLETION_MOD, (REVERSED_MOD,)),
        reversed=_count_held(purchases, REVERSED_MOD),
        bad_tac=_count_held(purchases, BAD_TAC_MOD, (NO_COMPLETION_MOD, REVERSED_MOD)),
        settlements=int(settlements),
        unbalanced_settlements=int(unbalanced),
        elapsed_s=time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clearing_data", description=__doc__)
    parser.add_argument("db_url", help="sqlite:////path/day.db or a PostgreSQL schema URL")
    parser.add_argument("txn_count", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--merchants", type=int, default=MERCHANTS_DEFAULT)
    parser.add_argument(
        "--skip-checks", action="store_true", help="SQLite: no CHECK constraints during the load"
    )
    parser.add_argument("--cache", type=Path, help="SQLite: keep/copy finished days here")
    args = parser.parse_args(argv)
    try:
        day = generate(
            args.db_url,
            args.txn_count,
            args.seed,
            merchants=args.merchants,
            check_constraints=not args.skip_checks,
            cache_dir=args.cache,
            progress=lambda line: print(f"  {line}", flush=True),
        )
    except (ValueError, RuntimeError, sqlite3.Error, psycopg.Error) as exc:
        print(f"clearing_data: {exc}", file=sys.stderr)
        return 2
    print(day)
    print(f"{day.txn_count:,} transactions in {day.elapsed_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
