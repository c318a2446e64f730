"""The clearing bench's synthetic day (bench/clearing_data.py) on SQLite and PostgreSQL: what
the clearing views show is what the generator says it made (counts, states, sums, each
purchase's amount/terminal/merchant from the Python formulas), and the day is coherent
(refunds name an earlier completed purchase of the same card at the same terminal, card
counters have no gaps, terminal settlements agree with the host's captures)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, select

from acquiring.adapters.sql import schema
from acquiring.adapters.sql.views import clearing_transactions as ct
from bench import clearing_data
from bench.clearing_data import GeneratedDay, generate
from tests.integration.databases import DB_PARAMS, database_url

TXNS = 2_000
MERCHANTS = 30
SEED = 7


@pytest.fixture(params=DB_PARAMS, scope="module")
def day(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GeneratedDay, Engine]]:
    folder = tmp_path_factory.mktemp("bench_day")
    with (
        database_url(request.param, Path(folder), schema_prefix="nfcpay_bench") as url,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(clearing_data, "CHUNK_ROWS", 700)  # the load in several transactions
        generated = generate(url, TXNS, SEED, merchants=MERCHANTS)
        engine = create_engine(url)
        try:
            yield generated, engine
        finally:
            engine.dispose()


def rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ct).order_by(ct.c.txn_id))]


def test_counts_and_states(day: tuple[GeneratedDay, Engine]) -> None:
    generated, engine = day
    txns = rows(engine)
    assert len(txns) == generated.txn_count == TXNS
    kinds = Counter(t["kind"] for t in txns)
    assert kinds == {
        "purchase": generated.purchases,
        "refund": generated.refunds,
        "load": generated.loads,
    }
    assert generated.refunds == TXNS // 100
    states = Counter((t["kind"], t["state"], t["tac_verdict"]) for t in txns)
    assert states[("purchase", "authorised", None)] == generated.no_completion >= 1
    assert states[("purchase", "reversed", None)] == generated.reversed >= 1
    assert states[("purchase", "completed", "bad")] == generated.bad_tac >= 1
    assert sum(n for (_, state, verdict), n in states.items() if verdict == "ok") == (
        TXNS - generated.no_completion - generated.reversed - generated.bad_tac
    )
    assert {t["business_date"] for t in txns} == {generated.business_date}
    assert [t["txn_id"] for t in txns] == list(range(1, TXNS + 1))


def test_purchases_follow_the_python_formulas(day: tuple[GeneratedDay, Engine]) -> None:
    generated, engine = day
    purchases = [t for t in rows(engine) if t["kind"] == "purchase"]
    total_fen = 0
    for p, txn in enumerate(purchases):
        amount = clearing_data.purchase_amount_fen(p, SEED)
        terminal = clearing_data.purchase_terminal(p, SEED, generated.terminals)
        merchant = clearing_data.merchant_of_terminal(terminal)
        assert (txn["auth_amount_fen"], txn["terminal_id"], txn["merchant_id"]) == (
            amount,
            f"T{terminal:07d}",
            f"8983100{merchant:08d}",
        )
        assert 1 <= amount <= 49_999
        total_fen += amount
    with engine.connect() as conn:
        in_view = conn.execute(
            select(func.sum(ct.c.auth_amount_fen)).where(ct.c.kind == "purchase")
        ).scalar_one()
    assert in_view == total_fen


def test_refunds_name_an_earlier_completed_purchase_of_the_same_card(
    day: tuple[GeneratedDay, Engine],
) -> None:
    _, engine = day
    txns = rows(engine)
    by_rrn = {t["rrn"]: t for t in txns}
    refunds = [t for t in txns if t["kind"] == "refund"]
    assert refunds
    for refund in refunds:
        original = by_rrn[refund["original_rrn"]]
        assert original["kind"] == "purchase"
        assert original["state"] == "completed"
        assert original["txn_id"] < refund["txn_id"]  # type: ignore[operator]
        assert (original["asn"], original["terminal_id"]) == (refund["asn"], refund["terminal_id"])
        assert 1 <= refund["auth_amount_fen"] <= original["auth_amount_fen"]  # type: ignore[operator]
    assert all(t["original_rrn"] is None for t in txns if t["kind"] != "refund")


def test_card_counters_have_no_gaps_or_duplicates(day: tuple[GeneratedDay, Engine]) -> None:
    _, engine = day
    sequences: dict[tuple[object, object], list[int]] = {}
    for t in rows(engine):
        assert t["counter_kind"] == ("offline" if t["kind"] == "purchase" else "online")
        counter = t["txn_counter"]
        assert isinstance(counter, int)
        sequences.setdefault((t["asn"], t["counter_kind"]), []).append(counter)
    for counters in sequences.values():
        assert counters == list(range(counters[0], counters[0] + len(counters)))


def test_instants_lie_in_the_shanghai_business_day(day: tuple[GeneratedDay, Engine]) -> None:
    generated, engine = day
    start = datetime.combine(generated.business_date, datetime.min.time(), UTC) - timedelta(hours=8)
    txns = rows(engine)
    instants = [t["authorised_at"] for t in txns]
    assert instants == [
        start + timedelta(microseconds=clearing_data.offset_us(g, TXNS)) for g in range(TXNS)
    ]
    assert instants == sorted(instants)  # type: ignore[type-var]
    assert start <= instants[0] and instants[-1] < start + timedelta(days=1)  # type: ignore[operator]
    for t in txns:
        if t["state"] == "completed":
            assert t["completed_at"] > t["authorised_at"]  # type: ignore[operator]
            local = t["terminal_datetime"]
            assert isinstance(local, datetime) and local.tzinfo is None
            assert local.date() == generated.business_date


def test_terminal_settlements_agree_with_the_captures(day: tuple[GeneratedDay, Engine]) -> None:
    generated, engine = day
    host: Counter[tuple[object, object, str]] = Counter()
    counts: Counter[tuple[object, object, str]] = Counter()
    for t in rows(engine):
        if t["state"] == "completed":
            key = (t["terminal_id"], t["batch_no"], str(t["kind"]))
            host[key] += t["completion_amount_fen"]  # type: ignore[operator]
            counts[key] += 1
    ts = schema.terminal_settlements
    with engine.connect() as conn:
        settled = conn.execute(select(ts)).all()
    assert len(settled) == generated.settlements == len({k[:2] for k in counts})
    unbalanced = 0
    for s in settled:
        for kind in ("purchase", "refund", "load"):
            key = (s.terminal_id, s.batch_no, kind)
            assert getattr(s, f"host_{kind}_amount_fen") == host[key]
            assert getattr(s, f"host_{kind}_count") == counts[key]
        off = int(s.terminal_id[1:]) % 997 == 3
        assert s.first_half_balanced is (not off)
        assert s.terminal_purchase_count == s.host_purchase_count + off
        unbalanced += off
    assert unbalanced == generated.unbalanced_settlements


def test_reference_data(day: tuple[GeneratedDay, Engine]) -> None:
    generated, engine = day
    d = generated.business_date
    with engine.connect() as conn:
        merchants = conn.execute(select(schema.merchants)).all()
        rules = conn.execute(select(schema.commission_rules)).all()
        terminals = conn.execute(select(schema.terminals)).all()
        issuers = conn.execute(select(schema.issuers.c.issuer_id)).scalars().all()
    assert len(merchants) == MERCHANTS
    in_force = Counter(
        r.merchant_id
        for r in rules
        if r.effective_from <= d and (r.effective_to is None or d < r.effective_to)
    )
    assert set(in_force.values()) == {1}
    assert len(in_force) == MERCHANTS
    assert {r.kind for r in rules} >= {"percent", "fixed", "zero"}
    assert sorted(issuers) == list(clearing_data.ISSUERS)
    busy = Counter(t.merchant_id for t in terminals if t.deployed_on < d and not t.returned_on)
    assert set(busy.values()) == {1, 2, 3}
    assert len(busy) == MERCHANTS
    assert sum(1 for t in terminals if t.deployed_on == d) == generated.deployed_today
    assert sum(1 for t in terminals if t.returned_on == d) == generated.returned_today


def test_generator_refuses_bad_arguments(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValueError, match="txn_count"):
        generate(url, 0, 1)
    with pytest.raises(ValueError, match="merchants"):
        generate(url, 10, 1, merchants=0)


def test_a_cached_day_is_copied_not_generated_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = generate(f"sqlite:///{tmp_path / 'a.db'}", 500, 3, merchants=6, cache_dir=cache)
    assert len(list(cache.glob("clearing_day_500_*.db"))) == 1
    lines: list[str] = []
    second = generate(
        f"sqlite:///{tmp_path / 'b.db'}",
        500,
        3,
        merchants=6,
        cache_dir=cache,
        progress=lines.append,
    )
    assert lines and lines[0].startswith("copied from")
    assert dataclasses.replace(second, elapsed_s=0) == dataclasses.replace(first, elapsed_s=0)
    engine = create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        assert len(rows(engine)) == 500
    finally:
        engine.dispose()
    with pytest.raises(ValueError, match="exists"):
        generate(f"sqlite:///{tmp_path / 'b.db'}", 500, 3, merchants=6, cache_dir=cache)


def test_the_indexes_dropped_for_the_load_are_back(day: tuple[GeneratedDay, Engine]) -> None:
    _, engine = day
    indexes = {
        ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("authorisations")
    }
    assert indexes["ix_authorisations_asn_business_date"] == ["asn", "business_date"]
    assert indexes["ix_authorisations_merchant_id_business_date"] == [
        "merchant_id",
        "business_date",
    ]
    assert indexes["ix_authorisations_business_date"] == ["business_date"]
    assert indexes["ix_authorisations_original_rrn"] == ["original_rrn"]


def test_counts_of_held_purchases_respect_precedence() -> None:
    """A reversed purchase is not also NO_COMPLETION; one never completed has no bad TAC."""
    purchases = 200_000
    held = clearing_data._held  # the Python twin of the SQL predicate
    nc, rev, bad = (
        clearing_data.NO_COMPLETION_MOD,
        clearing_data.REVERSED_MOD,
        clearing_data.BAD_TAC_MOD,
    )
    states = Counter(
        "reversed"
        if held(p, rev)
        else "authorised"
        if held(p, nc)
        else "bad"
        if held(p, bad)
        else "ok"
        for p in range(purchases)
    )
    day = clearing_data.kinds
    assert day(1000) == (989, 10, 1)
    assert states["bad"] == clearing_data._count_held(purchases, bad, (nc, rev)) > 0
    assert states["authorised"] == clearing_data._count_held(purchases, nc, (rev,))
    assert states["reversed"] == clearing_data._count_held(purchases, rev)
    assert held(39_999, nc) and held(39_999, bad)  # an overlap this test is about
