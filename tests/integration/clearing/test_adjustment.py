"""ADJUSTMENT runs: held items released on a later date (clearing.md §5), never by editing the
closed date; their own seq and files, fingerprinted and idempotent; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from acquiring.domain.model import Authorisation, TacVerdict, TxnKind
from clearing.adapters.files import write_atomic
from clearing.adapters.sql.run import SqlClearingStore
from clearing.bootstrap import utc_now
from clearing.ports import ReleaseKey, RunKind, RunOptions, RunRefused
from clearing.service import ClearingService, RunResult
from nfcpay.cli import main
from tests.integration.clearing.clearing_env import (
    CHAIN,
    DAY,
    FASTFOOD,
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


def key(auth: Authorisation) -> ReleaseKey:
    return ReleaseKey(auth.key.terminal_id, auth.key.batch_no, auth.key.stan)


def run(url: str, tmp: Path, day: date, kind: RunKind, *keys: ReleaseKey) -> RunResult:
    store = SqlClearingStore.open(url)
    try:
        service = ClearingService(store, write_atomic, utc_now, out_dir(tmp))
        return service.run(RunOptions(day, kind, release=keys))
    finally:
        store.close()


def balance(url: str, account: str) -> int:
    rows = read(
        url,
        """SELECT COALESCE(SUM(CASE WHEN debit_account = :a THEN amount_fen ELSE 0 END), 0)
                - COALESCE(SUM(CASE WHEN credit_account = :a THEN amount_fen ELSE 0 END), 0)
           FROM clr_postings""",
        a=account,
    )
    return int(str(rows[0][0]))  # PostgreSQL sums BIGINT as NUMERIC


def test_release_settles_held_items_on_a_later_date(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    bad_tac = world.txn(FASTFOOD, 3_850, verdict=TacVerdict.BAD)
    world.txn(FASTFOOD, 1_000)
    mismatch = world.txn(CHAIN, 1_250, completion_fen=1_200)
    daily = run(db_url, tmp_path, DAY, RunKind.DAILY)
    assert daily.record.counts.held_count == 2
    assert balance(db_url, "SUSPENSE_RECON") == -(3_850 + 1_200)
    merchant_before = balance(db_url, f"MERCHANT_PAY:{FASTFOOD}")

    with pytest.raises(RunRefused, match="release it later"):
        run(db_url, tmp_path, DAY, RunKind.ADJUSTMENT, key(bad_tac))
    first = run(db_url, tmp_path, NEXT, RunKind.ADJUSTMENT, key(bad_tac))
    assert (first.record.kind, first.record.seq, first.no_op) == (RunKind.ADJUSTMENT, 1, False)
    assert sorted(first.files) == [
        "merchant_settlement_20260302_adj1.csv",
        "party_settlement_20260302_adj1.csv",
    ]
    merchant_lines = first.files["merchant_settlement_20260302_adj1.csv"].read_text()
    assert merchant_lines.splitlines()[1] == f"{FASTFOOD},2026-03-02,1,3850,385,0,0,0,3465"
    # the hold is reversed and the sale posted: the merchant is owed the net, the fee is split
    assert balance(db_url, "SUSPENSE_RECON") == -1_200
    assert balance(db_url, f"MERCHANT_PAY:{FASTFOOD}") == merchant_before - 3_465
    assert balance(db_url, "FEE_CLEARING") == 0
    assert read(
        db_url,
        "SELECT effect, commission_fen, cleared_on FROM clr_detail WHERE txn_id = :t "
        "ORDER BY run_id",
        t=read(db_url, "SELECT txn_id FROM clr_detail WHERE rrn = :r", r=bad_tac.rrn)[0][0],
    )[1][:2] == ("settled", 385)
    # the daily files of the closed date are untouched; the same release again is a no-op
    again = run(db_url, tmp_path, NEXT, RunKind.ADJUSTMENT, key(bad_tac))
    assert again.no_op and again.record.run_id == first.record.run_id
    assert again.record.files == first.record.files

    with pytest.raises(RunRefused, match="was released by the adjustment"):
        run(db_url, tmp_path, NEXT, RunKind.ADJUSTMENT, key(bad_tac), key(mismatch))
    ok = world.txn(FASTFOOD, 10, asn="8888000000000009")
    with pytest.raises(RunRefused, match="is not a held item"):
        run(db_url, tmp_path, NEXT, RunKind.ADJUSTMENT, key(ok))
    second = run(db_url, tmp_path, NEXT, RunKind.ADJUSTMENT, key(mismatch))
    assert second.record.seq == 2
    assert "merchant_settlement_20260302_adj2.csv" in second.files
    assert balance(db_url, "SUSPENSE_RECON") == 0


def test_a_refund_of_a_released_purchase_returns_its_commission(
    db_url: str, tmp_path: Path
) -> None:
    world = make_world(db_url)
    original = world.txn(FASTFOOD, 3_850, verdict=TacVerdict.BAD)
    run(db_url, tmp_path, DAY, RunKind.DAILY)
    run(db_url, tmp_path, NEXT, RunKind.ADJUSTMENT, key(original))
    world.txn(FASTFOOD, 3_850, kind=TxnKind.REFUND, day=NEXT, original_rrn=original.rrn)
    daily = run(db_url, tmp_path, NEXT, RunKind.DAILY)
    line = daily.files["merchant_settlement_20260302.csv"].read_text().splitlines()[1]
    assert line == f"{FASTFOOD},2026-03-02,0,0,-385,3850,0,0,-3465"
    assert balance(db_url, "FEE_CLEARING") == 0


def test_cli_adjustment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    world = make_world(url)
    held = world.txn(FASTFOOD, 3_850, verdict=TacVerdict.BAD)
    world.store.close()
    out = str(tmp_path / "files")
    base = ["clearing", "run", "--db", url, "--out", out]
    assert main([*base, "--date", DAY.isoformat()]) == 0
    release = f"{TERMINAL_OF[FASTFOOD]}:{held.key.batch_no}:{held.key.stan}"
    adjustment = [*base, "--date", NEXT.isoformat(), "--kind", "adjustment"]
    assert main([*adjustment, "--release", release]) == 0
    assert "completed" in capsys.readouterr().out
    assert (tmp_path / "files" / "merchant_settlement_20260302_adj1.csv").is_file()
    assert main([*adjustment, "--release", release]) == 0
    assert "no-op" in capsys.readouterr().out
    verify = ["clearing", "verify", "--date", NEXT.isoformat(), "--db", url, "--out", out]
    assert main(verify) == 0
    assert "invariants hold" in capsys.readouterr().out
    (tmp_path / "files" / "party_settlement_20260302_adj1.csv").write_bytes(b"x\n")
    assert main(verify) == 2
    assert "party_settlement_20260302_adj1.csv" in capsys.readouterr().err
    for args, needle in (
        ([], "--release"),
        (["--release", "T1:x:1"], "TERMINAL:BATCH:STAN"),
        (["--release", "T0000001:1:999"], "not a held item"),
    ):
        assert main([*adjustment, *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nfcpay: error:") and err.count("\n") == 1 and needle in err, err
    assert main([*base, "--date", NEXT.isoformat(), "--release", release]) == 2
    assert "--kind adjustment" in capsys.readouterr().err
