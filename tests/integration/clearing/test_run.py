"""The clearing run end to end on real databases (SQLite file and PostgreSQL schema): the host's
store seeded through its own units of work, clearing reading its views. Expected values are
computed by hand in fen (clearing.md §2-§4) and cross-checked with the pure domain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from acquiring.domain.commission import RuleKind
from acquiring.domain.model import BatchTotals, CommissionRule, Merchant, TacVerdict, TxnKind
from clearing.adapters.files import write_atomic
from clearing.adapters.sql.run import SqlClearingStore, SqlRunUnit
from clearing.adapters.sql.schema import TABLES
from clearing.bootstrap import utc_now
from clearing.domain.commission import CommissionRule as DomainRule
from clearing.domain.commission import commission_fen, returned_commission_fen
from clearing.domain.split import split_commission
from clearing.ports import (
    InvariantBroken,
    RunKind,
    RunOptions,
    RunRefused,
    all_stage_names,
)
from clearing.service import ClearingService, RunResult
from tests.integration.clearing.clearing_env import (
    CAPPED,
    CARD2,
    CHAIN,
    CINEMA,
    DAY,
    FASTFOOD,
    FIXED,
    NOON,
    RAIL,
    TERMINAL_OF,
    make_world,
    out_dir,
    read,
)
from tests.integration.databases import DB_PARAMS, database_url

NEXT = DAY + timedelta(days=1)


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path, schema_prefix="nfcpay_clr") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'capture.db'}"


class RecordingStore(SqlClearingStore):
    """Keeps the open run units, so a test can reach into the run's transaction."""

    units: list[SqlRunUnit]

    def run_unit(self, options: RunOptions) -> Any:
        self.units = getattr(self, "units", [])
        outer = super().run_unit(options)

        class _Wrap:
            def __enter__(inner) -> SqlRunUnit:  # noqa: N805
                unit = outer.__enter__()
                self.units.append(unit)
                return unit

            def __exit__(inner, *exc: Any) -> Any:  # noqa: N805
                return outer.__exit__(*exc)

        return _Wrap()


def service(url: str, tmp: Path) -> tuple[ClearingService, RecordingStore]:
    base = SqlClearingStore.open(url)
    store = RecordingStore(base.engine)
    return ClearingService(store, write_atomic, utc_now, out_dir(tmp)), store


def run(url: str, tmp: Path, day: date = DAY, **kw: Any) -> RunResult:
    svc, store = service(url, tmp)
    try:
        return svc.run(RunOptions(day, **kw))
    finally:
        store.close()


def commission_of(url: str, rrn: str) -> int:
    rows = read(
        url, "SELECT commission_fen FROM clr_detail WHERE rrn = :r AND effect = 'settled'", r=rrn
    )
    assert len(rows) == 1
    value = rows[0][0]
    assert isinstance(value, int)
    return value


def lines(result: RunResult, prefix: str) -> list[str]:
    (path,) = [p for name, p in result.files.items() if name.startswith(prefix)]
    return path.read_text().splitlines()


def clearing_rows(url: str) -> int:
    return sum(len(read(url, f"SELECT 1 FROM {t}")) for t in TABLES)


# --- commission, split, partner share --------------------------------------------------------


def test_worked_values_of_every_rule_kind(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    ff = world.txn(FASTFOOD, 3_850)
    c1 = world.txn(CHAIN, 1_250)
    c2 = world.txn(CHAIN, 50)
    c3 = world.txn(CHAIN, 49)
    cinema = world.txn(CINEMA, 3_599)
    fixed = world.txn(FIXED, 150)
    rail = world.txn(RAIL, 1_000)
    low = world.txn(CAPPED, 100)
    high = world.txn(CAPPED, 49_999)
    result = run(db_url, tmp_path)
    expected = {ff: 385, c1: 13, c2: 1, c3: 0, cinema: 900, fixed: 150, rail: 0, low: 5, high: 20}
    for auth, fen in expected.items():
        assert commission_of(db_url, auth.rrn) == fen, auth.merchant_id
    # cross-check with the domain's reference formula
    assert (
        commission_fen(DomainRule.percent("m", 1, DAY, rate_bp=100, min_fen=5, max_fen=20), 100)
        == 5
    )
    assert (
        commission_fen(DomainRule.discount("m", 1, DAY, user_bp=8000, settle_bp=6000), 3_599) == 900
    )
    assert lines(result, "merchant_settlement") == [
        "merchant_id,business_date,txn_count,gross_fen,commission_fen,refund_fen,load_fen,deposit_fen,net_fen",
        "898310000000001,2026-03-01,1,3850,385,0,0,0,3465",
        "898310000000002,2026-03-01,3,1349,14,0,0,0,1335",
        "898310000000003,2026-03-01,1,150,150,0,0,0,0",
        "898310000000004,2026-03-01,1,3599,900,0,0,0,2699",
        "898310000000005,2026-03-01,1,1000,0,0,0,0,1000",
        "898310000000006,2026-03-01,2,50099,25,0,0,0,50074",
        "TOTAL,,9,60047,1474,0,0,0,58573",
    ]
    # C = 1474: 1031.8 / 294.8 / 147.4 -> 1031 / 294 / 147 + 2 fen to the largest remainders
    # (acquirer 8, issuer 8 -> issuer first on the tie) = 1032 / 295 / 147
    assert split_commission(1_474) == split_commission(1_474)  # the domain agrees below
    s = split_commission(1_474)
    assert (s.issuer_fen, s.acquirer_fen, s.network_fen) == (1032, 295, 147)
    assert lines(result, "party_settlement") == [
        "party_role,party_id,business_date,commission_base_fen,share_fen,payable_fen",
        f"issuer,ISS1,2026-03-01,1474,1032,{60047 - 1032}",
        "acquirer,ACQ1,2026-03-01,1474,295,295",
        "network,CUP,2026-03-01,1474,147,147",
        f"TOTAL,,,,1474,{60047 - 1032 + 295 + 147}",
    ]
    # P1 signed FASTFOOD and CHAIN: C_p = 399, share 5000 bp -> (2*399*5000 + 50000) // 100000
    share = read(db_url, "SELECT partner_id, amount_fen FROM clr_partner_payouts")
    assert share == [("P1", (2 * 399 * 5000 + 50_000) // 100_000)] == [("P1", 40)]
    assert lines(result, "exceptions")[1:] == ["TOTAL,,,,,,0,0,,"]


def test_clearing_md_split_examples_in_the_run(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    world.txn(FASTFOOD, 3_850)  # C = 385 -> 270 / 77 / 38
    world.txn(CHAIN, 1_250, asn=CARD2)  # issuer 2, C = 13 -> 9 / 3 / 1
    run(db_url, tmp_path)
    rows = read(
        db_url,
        "SELECT issuer_id, commission_fen, issuer_fen, acquirer_fen, network_fen "
        "FROM clr_split_groups ORDER BY issuer_id",
    )
    assert rows == [("ISS1", 385, 270, 77, 38), ("ISS2", 13, 9, 3, 1)]


def test_refunds_return_commission_and_the_last_returns_what_is_left(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url)
    original = world.txn(CHAIN, 1_000)  # 100 bp -> c = 10
    r1 = world.txn(CHAIN, 333, kind=TxnKind.REFUND, original_rrn=original.rrn)
    r2 = world.txn(CHAIN, 333, kind=TxnKind.REFUND, original_rrn=original.rrn)
    run(db_url, tmp_path)
    # (2*10*333 + 1000) // 2000 = 3 each
    assert (
        commission_of(db_url, r1.rrn)
        == 3
        == returned_commission_fen(
            original_amount_fen=1_000, original_commission_fen=10, refund_fen=333
        )
    )
    assert commission_of(db_url, r2.rrn) == 3
    r3 = world.txn(CHAIN, 334, kind=TxnKind.REFUND, original_rrn=original.rrn, day=NEXT)
    result = run(db_url, tmp_path, NEXT)
    assert (
        commission_of(db_url, r3.rrn)
        == 4
        == returned_commission_fen(
            original_amount_fen=1_000,
            original_commission_fen=10,
            refund_fen=334,
            refunded_before_fen=666,
            returned_before_fen=6,
        )
    )
    # refunds land on their own date: commission -4, refund 334, net = -334 + 4
    assert (
        lines(result, "merchant_settlement")[1] == "898310000000002,2026-03-02,0,0,-4,334,0,0,-330"
    )


def test_loads_carry_no_commission_and_the_merchant_owes_the_cash(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url)
    world.txn(FASTFOOD, 20_000, kind=TxnKind.LOAD)
    result = run(db_url, tmp_path)
    assert (
        lines(result, "merchant_settlement")[1]
        == "898310000000001,2026-03-01,0,0,0,0,20000,0,-20000"
    )
    postings = read(db_url, "SELECT debit_account, credit_account, amount_fen FROM clr_postings")
    assert postings == [("MERCHANT_PAY:898310000000001", "ISSUER_RECV:ISS1", 20_000)]


def test_rules_in_force_on_the_date_are_used(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url, rules_from=date(2026, 1, 1))
    with world.store.admin() as uow:
        uow.add_commission_rule(CommissionRule(CHAIN, RuleKind.PERCENT, NEXT, rate_bp=200))
    a = world.txn(CHAIN, 1_250)
    b = world.txn(CHAIN, 1_250, day=NEXT)
    run(db_url, tmp_path)
    run(db_url, tmp_path, NEXT)
    assert commission_of(db_url, a.rrn) == 13
    assert commission_of(db_url, b.rrn) == 25
    assert read(
        db_url, "SELECT version FROM clr_rules_used WHERE merchant_id = :m ORDER BY run_id", m=CHAIN
    ) == [(1,), (2,)]


# --- deposits ------------------------------------------------------------------------------------


def test_deposits_are_netted_and_returned(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    world.sql(
        "UPDATE terminals SET deployed_on = :d WHERE terminal_id = :t", d=DAY, t=TERMINAL_OF[CHAIN]
    )
    world.sql(
        "UPDATE terminals SET returned_on = :d WHERE terminal_id = :t", d=DAY, t=TERMINAL_OF[RAIL]
    )
    world.txn(CHAIN, 1_250)
    result = run(db_url, tmp_path)
    assert lines(result, "merchant_settlement")[1:] == [
        "898310000000002,2026-03-01,1,1250,13,0,0,100000,-98763",
        "898310000000005,2026-03-01,0,0,0,0,0,-100000,100000",
        "TOTAL,,1,1250,13,0,0,0,1237",
    ]
    postings = read(
        db_url,
        "SELECT debit_account, credit_account, amount_fen FROM clr_postings "
        "WHERE debit_account LIKE 'DEPOSITS%' OR credit_account LIKE 'DEPOSITS%'",
    )
    assert sorted(postings) == [
        ("DEPOSITS_HELD:898310000000005", "MERCHANT_PAY:898310000000005", 100_000),
        ("MERCHANT_PAY:898310000000002", "DEPOSITS_HELD:898310000000002", 100_000),
    ]


# --- exceptions -----------------------------------------------------------------------------


def test_every_exception_code_and_its_effect(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    ok = world.txn(FASTFOOD, 1_000)
    mismatch = world.txn(FASTFOOD, 2_000, completion_fen=1_999)
    open_ = world.txn(FASTFOOD, 3_000, complete=False)
    bad_tac = world.txn(FASTFOOD, 4_000, verdict=TacVerdict.BAD)
    over = world.txn(FASTFOOD, 49_999, completion_fen=50_000)
    reversed_ = world.txn(FASTFOOD, 5_000, reverse=True)
    # counters on card 2: 10, 10 (duplicate), 13 (gap after 10)
    dup1 = world.txn(CHAIN, 100, asn=CARD2, counter=9)
    dup2 = world.txn(CHAIN, 200, asn=CARD2, counter=9)
    gap = world.txn(CHAIN, 300, asn=CARD2, counter=12)
    # batch 2 of the cinema: one uploaded, one not (HOST_ONLY), one unknown upload (TERMINAL_ONLY)
    up = world.txn(CINEMA, 400, batch_no=2)
    host_only = world.txn(CINEMA, 500, batch_no=2)
    world.upload(up)
    world.upload(up, amount_fen=999, rrn="999999999999", stan=900)
    world.settle(
        TERMINAL_OF[CINEMA],
        BatchTotals(purchase_amount_fen=900, purchase_count=2),
        BatchTotals(purchase_amount_fen=800, purchase_count=2),
    )
    result = run(db_url, tmp_path)
    got = {
        (line.split(",")[0], line.split(",")[3], line.split(",")[8])
        for line in lines(result, "exceptions")[1:-1]
    }
    assert got == {
        ("AMOUNT_MISMATCH", str(mismatch.key.stan), "held"),
        ("NO_COMPLETION", str(open_.key.stan), "held+carried"),
        ("TAC_INVALID", str(bad_tac.key.stan), "held+fraud_report"),
        ("OVER_LIMIT", str(over.key.stan), "rejected"),
        ("COUNTER_DUPLICATE", str(dup1.key.stan), "held"),
        ("COUNTER_DUPLICATE", str(dup2.key.stan), "held"),
        ("COUNTER_GAP", str(gap.key.stan), "reported"),
        ("HOST_ONLY", str(host_only.key.stan), "settled+reported"),
        ("TERMINAL_ONLY", "900", "reported"),
        ("TERMINAL_TOTAL_MISMATCH", "", "reported"),
    }
    assert any(
        "purchase: terminal 2 / 900 fen, host 2 / 800 fen, difference 100 fen" in line
        for line in lines(result, "exceptions")
    )
    assert "authorised 2000, completed 1999" in "".join(lines(result, "exceptions"))
    effects: dict[object, object] = {
        r[0]: r[1] for r in read(db_url, "SELECT rrn, effect FROM clr_detail")
    }
    assert (
        effects[ok.rrn]
        == effects[gap.rrn]
        == effects[host_only.rrn]
        == effects[up.rrn]
        == "settled"
    )
    assert effects[mismatch.rrn] == effects[bad_tac.rrn] == effects[dup1.rrn] == "held"
    assert effects[open_.rrn] == "carried"
    assert effects[over.rrn] == "rejected"
    assert effects[reversed_.rrn] == "reversed"
    # held items: Dr ISSUER_RECV Cr SUSPENSE_RECON; settled FASTFOOD only 1,000
    assert (
        lines(result, "merchant_settlement")[1] == "898310000000001,2026-03-01,1,1000,100,0,0,0,900"
    )
    suspense = read(
        db_url, "SELECT SUM(amount_fen) FROM clr_postings WHERE credit_account = 'SUSPENSE_RECON'"
    )
    assert suspense == [(1_999 + 4_000 + 100 + 200,)]
    assert result.record.counts.carried_count == 1


def test_midnight_cutoff_carries_to_the_next_date(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    late = world.txn(FASTFOOD, 3_850, complete=False)
    # completed one second after 00:00 Shanghai on the next day: too late for DAY
    world.complete_late(late, NOON + timedelta(hours=14, seconds=1))
    first = run(db_url, tmp_path)
    assert [line.split(",")[0] for line in lines(first, "exceptions")[1:-1]] == ["NO_COMPLETION"]
    assert lines(first, "merchant_settlement")[1:] == ["TOTAL,,0,0,0,0,0,0,0"]
    second = run(db_url, tmp_path, NEXT)
    assert (
        lines(second, "merchant_settlement")[1]
        == "898310000000001,2026-03-02,1,3850,385,0,0,0,3465"
    )
    # with a cut-off of 01:00 the same completion is in time for DAY (a fresh database)
    assert run(db_url, tmp_path).no_op  # DAY is closed: same input, same result


def test_a_later_cutoff_settles_on_the_day(sqlite_url: str, tmp_path: Path) -> None:
    from datetime import time

    world = make_world(sqlite_url)
    late = world.txn(FASTFOOD, 3_850, complete=False)
    world.complete_late(late, NOON + timedelta(hours=14, seconds=1))
    result = run(sqlite_url, tmp_path, cutoff=time(1, 0))
    assert (
        lines(result, "merchant_settlement")[1]
        == "898310000000001,2026-03-01,1,3850,385,0,0,0,3465"
    )


# --- idempotency -----------------------------------------------------------------------------


def test_a_rerun_is_a_no_op_with_identical_files(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    world.txn(FASTFOOD, 3_850)
    world.txn(FASTFOOD, 1_000, complete=False)
    first = run(db_url, tmp_path)
    before = {name: path.read_bytes() for name, path in first.files.items()}
    counts = read(
        db_url, "SELECT (SELECT COUNT(*) FROM clr_postings), (SELECT COUNT(*) FROM clr_journal)"
    )
    for path in first.files.values():
        path.unlink()
    with world.store.admin() as uow:  # reference data that changes nothing for DAY
        uow.add_merchant(Merchant("898310000000099", "New", "5814", "ACQ1", NEXT))
        uow.add_commission_rule(CommissionRule("898310000000099", RuleKind.ZERO, DAY))
    second = run(db_url, tmp_path)
    assert second.no_op and second.record.run_id == first.record.run_id
    assert {name: path.read_bytes() for name, path in second.files.items()} == before
    assert (
        read(
            db_url, "SELECT (SELECT COUNT(*) FROM clr_postings), (SELECT COUNT(*) FROM clr_journal)"
        )
        == counts
    )
    svc, store = service(db_url, tmp_path)
    try:
        assert svc.verify(DAY) == []
    finally:
        store.close()


def test_a_changed_input_for_a_closed_date_is_refused(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    world.txn(FASTFOOD, 3_850)
    run(db_url, tmp_path)
    world.txn(FASTFOOD, 100)  # a late item for DAY
    with pytest.raises(RunRefused, match="closed"):
        run(db_url, tmp_path)


def test_a_second_run_of_the_date_at_once_is_refused(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    world.txn(FASTFOOD, 3_850)
    svc, store = service(db_url, tmp_path)
    inside, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def hook(stage: str) -> None:
        if stage == "detail":
            inside.set()
            release.wait(30)

    def first() -> None:
        try:
            outcome.append(svc.run(RunOptions(DAY), hook))
        except Exception as exc:  # pragma: no cover - reported below
            outcome.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(30)
        with pytest.raises(RunRefused):
            run(db_url, tmp_path)
    finally:
        release.set()
        thread.join(30)
        store.close()
    assert isinstance(outcome[0], RunResult) and not outcome[0].no_op


# --- all or nothing --------------------------------------------------------------------------


def test_a_broken_invariant_writes_nothing(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    world.txn(FASTFOOD, 3_850)
    svc, store = service(db_url, tmp_path)

    def hook(stage: str) -> None:
        if stage == "ledger":
            unit = store.units[-1]
            unit.connection.execute(
                text(
                    "INSERT INTO clr_postings (entry_key, run_id, debit_account, credit_account,"
                    " amount_fen) SELECT entry_key, run_id, 'FEE_CLEARING', 'X', 1"
                    " FROM clr_journal WHERE run_id = :r"
                ),
                {"r": unit.run_id},
            )

    try:
        with pytest.raises(InvariantBroken, match="FEE_CLEARING"):
            svc.run(RunOptions(DAY), hook)
    finally:
        store.close()
    assert clearing_rows(db_url) == 0
    assert list(out_dir(tmp_path).iterdir()) == []
    assert not run(db_url, tmp_path).no_op


STAGES = list(all_stage_names(RunKind.DAILY))


@pytest.mark.parametrize("stage", STAGES)
def test_a_failure_at_any_stage_leaves_nothing_and_the_next_run_succeeds(
    sqlite_url: str, tmp_path: Path, stage: str
) -> None:
    world = make_world(sqlite_url)
    world.txn(FASTFOOD, 3_850)
    world.txn(CHAIN, 1_000, complete=False)
    svc, store = service(sqlite_url, tmp_path)

    def hook(name: str) -> None:
        if name == stage:
            raise RuntimeError(f"injected at {name}")

    try:
        with pytest.raises(RuntimeError, match="injected"):
            svc.run(RunOptions(DAY), hook)
    finally:
        store.close()
    assert clearing_rows(sqlite_url) == 0
    assert list(out_dir(tmp_path).iterdir()) == []
    result = run(sqlite_url, tmp_path)
    assert not result.no_op and result.record.counts.txn_count == 2


def test_a_killed_run_leaves_nothing_behind(sqlite_url: str, tmp_path: Path) -> None:
    world = make_world(sqlite_url)
    world.txn(FASTFOOD, 3_850)
    script = f"""
import os, signal
from pathlib import Path
from datetime import date
from clearing.bootstrap import open_service
from clearing.ports import RunOptions
svc, store = open_service({sqlite_url!r}, Path({str(out_dir(tmp_path))!r}))
def hook(stage):
    if stage == "ledger":
        os.kill(os.getpid(), signal.SIGKILL)
svc.run(RunOptions(date(2026, 3, 1)), hook)
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=120, cwd=os.getcwd())
    assert done.returncode == -signal.SIGKILL
    assert clearing_rows(sqlite_url) == 0
    result = run(sqlite_url, tmp_path)
    assert not result.no_op and result.record.counts.settled_count == 1


# --- month end -------------------------------------------------------------------------------


def test_month_end_pays_expansion_maintenance_and_lists_shares(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    last = date(2026, 3, 31)
    with pytest.raises(RunRefused, match="last day"):
        run(db_url, tmp_path, DAY, kind=RunKind.MONTH_END)
    with pytest.raises(RunRefused, match="DAILY"):
        run(db_url, tmp_path, last, kind=RunKind.MONTH_END)
    world.txn(FASTFOOD, 3_850)
    world.txn(FASTFOOD, 3_850, day=last)
    run(db_url, tmp_path)
    run(db_url, tmp_path, last)
    result = run(db_url, tmp_path, last, kind=RunKind.MONTH_END)
    # FASTFOOD onboarded 2025-12-01 + 90 days = 2026-03-01: EXPANSION in March, to P1.
    # P2 maintains T0000001 and T0000004: 5,500 each. Shares: (2*385*5000 + 50000) // 100000 = 39.
    assert lines(result, "partner_statement") == [
        "partner_id,kind,reference,amount_fen",
        "P1,EXPANSION,898310000000001,50000",
        "P1,SHARE,2026-03-01,39",
        "P1,SHARE,2026-03-31,39",
        "P2,MAINTENANCE,T0000001,5500",
        "P2,MAINTENANCE,T0000004,5500",
        "TOTAL,,,61078",
    ]
    postings = read(
        db_url,
        "SELECT debit_account, credit_account, amount_fen FROM clr_postings "
        "WHERE debit_account LIKE '%EXPENSE' ORDER BY credit_account, amount_fen",
    )
    assert postings == [
        ("EXPANSION_FEE_EXPENSE", "PARTNER_PAY:P1", 50_000),
        ("MAINTENANCE_FEE_EXPENSE", "PARTNER_PAY:P2", 5_500),
        ("MAINTENANCE_FEE_EXPENSE", "PARTNER_PAY:P2", 5_500),
    ]
    again = run(db_url, tmp_path, last, kind=RunKind.MONTH_END)
    assert again.no_op
    assert lines(again, "partner_statement") == lines(result, "partner_statement")


def test_dates_are_cleared_in_order(sqlite_url: str, tmp_path: Path) -> None:
    world = make_world(sqlite_url)
    world.txn(FASTFOOD, 3_850)
    world.txn(FASTFOOD, 3_850, day=NEXT)
    run(sqlite_url, tmp_path, NEXT)
    with pytest.raises(RunRefused, match="in order"):
        run(sqlite_url, tmp_path)
    assert run(sqlite_url, tmp_path, NEXT).no_op
