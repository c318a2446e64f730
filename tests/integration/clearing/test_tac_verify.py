"""`clearing verify --issuer-keys`: every completion's TAC recomputed from the issuer's master
key file and compared with the host's recorded verdict. The TACs are real: purchases made by a
simulated SIM and PSAM (card_applet_sim issued with the world's issuer keys, the terminal's own
purchase flow)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from acquiring.domain.model import TacVerdict, TxnKind
from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.domain import issuance
from clearing.bootstrap import open_service
from clearing.domain.tac import TacOutcome
from clearing.ports import RunOptions
from nfcpay.cli import main
from paycore import issuer_keys
from pos_terminal.adapters.sim_reader import SimReader
from pos_terminal.domain import card_flows
from tests.integration.clearing.clearing_env import (
    CARD,
    CHAIN,
    DAY,
    FASTFOOD,
    ISSUER,
    ISSUER2,
    ISSUER_KEYS,
    World,
    make_world,
    out_dir,
)
from tests.integration.databases import DB_PARAMS, database_url

TERMINAL_ID = bytes.fromhex("001122334455")


@pytest.fixture(params=DB_PARAMS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path, schema_prefix="nfcpay_clr") as url:
        yield url


def _sim_purchases(amounts: list[int], at: datetime) -> list[card_flows.PurchaseDone]:
    """Real purchases on a SIM issued for CARD with the world's issuer keys."""
    sim_image = issuance.new_sim_image(
        ISSUER_KEYS, issuance.parse_asn(CARD), today=DAY, balance_fen=100_000
    )
    sim = SimReader(card_bootstrap.memory_card(sim_image))
    psam_reader = SimReader(
        card_bootstrap.memory_card(issuance.new_psam_image(ISSUER_KEYS, TERMINAL_ID))
    )
    sim.present()
    psam_reader.present()
    psam = card_flows.open_psam(psam_reader, ISSUER_KEYS.issuer_factor)
    done = []
    for amount in amounts:
        result = card_flows.purchase(sim, psam, amount, at)
        assert isinstance(result, card_flows.PurchaseDone)
        done.append(result)
    return done


def _seed(world: World) -> None:
    at = datetime(2026, 3, 1, 10, 0, 5)
    good, flagged = _sim_purchases([3_850, 1_250], at)
    for done, verdict, merchant in (
        (good, TacVerdict.OK, FASTFOOD),
        (flagged, TacVerdict.BAD, CHAIN),
    ):
        world.txn(
            merchant,
            done.amount_fen,
            tac=done.tac,
            psam_serial=done.terminal_serial,
            terminal_at=at,
            counter=done.counter,
            verdict=verdict,
        )
    # a TAC the card never made, that the host nevertheless recorded as good
    world.txn(FASTFOOD, 700, tac=bytes.fromhex("00000000"), counter=2)
    world.txn(FASTFOOD, 10_000, kind=TxnKind.LOAD)  # no balance in the view: not re-verifiable


def test_real_sim_tacs_are_re_verified_and_mismatches_reported(db_url: str, tmp_path: Path) -> None:
    world = make_world(db_url)
    _seed(world)
    world.store.close()
    service, store = open_service(db_url, out_dir(tmp_path))
    try:
        service.run(RunOptions(DAY))
        report = service.verify_tacs(DAY, {ISSUER: ISSUER_KEYS})
        assert report.counts == {
            TacOutcome.AGREES: 1,  # the genuine TAC recorded as good
            TacOutcome.MISMATCH: 2,  # genuine recorded bad; forged recorded good
            TacOutcome.NO_KEY: 0,
            TacOutcome.NOT_VERIFIABLE: 1,
        }
        assert len(report.mismatches) == 2
        assert any("recorded bad, the issuer key gives ok" in m for m in report.mismatches)
        assert any("recorded ok, the issuer key gives bad" in m for m in report.mismatches)

        other = issuer_keys.generate(lambda n: bytes(range(1, n + 1)))
        wrong = service.verify_tacs(DAY, {ISSUER: other})
        assert wrong.counts[TacOutcome.AGREES] == 1  # the forged one: bad under any key
        assert wrong.counts[TacOutcome.MISMATCH] == 2
        absent = service.verify_tacs(DAY, {ISSUER2: ISSUER_KEYS})
        assert absent.counts[TacOutcome.NO_KEY] == 3
    finally:
        store.close()


def test_cli_verify_with_and_without_issuer_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    world = make_world(url)
    good, _ = _sim_purchases([3_850, 100], datetime(2026, 3, 1, 10, 0, 5))
    world.txn(
        FASTFOOD,
        good.amount_fen,
        tac=good.tac,
        psam_serial=good.terminal_serial,
        counter=good.counter,
    )
    world.store.close()
    out = str(tmp_path / "files")
    key_file = tmp_path / "iss1.json"
    key_file.write_text(ISSUER_KEYS.to_json(), encoding="utf-8")
    base = ["clearing", "verify", "--date", DAY.isoformat(), "--db", url, "--out", out]

    assert main(["clearing", "run", "--date", DAY.isoformat(), "--db", url, "--out", out]) == 0
    capsys.readouterr()
    assert main(base) == 0
    assert "TACs were not re-verified" in capsys.readouterr().out
    assert main([*base, "--issuer-keys", f"{ISSUER}={key_file}"]) == 0
    stdout = capsys.readouterr().out
    assert "TACs re-verified: 1 (1 agree with the host, 0 mismatch)" in " ".join(stdout.split())
    assert ISSUER_KEYS.mtk.hex().upper() not in stdout

    other = tmp_path / "other.json"
    other.write_text(
        issuer_keys.generate(lambda n: bytes(range(1, n + 1))).to_json(), encoding="utf-8"
    )
    assert main([*base, "--issuer-keys", f"{ISSUER}={other}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the issuer key gives bad" in err
    for bad in ("ISS1", f"ISS1={tmp_path / 'missing.json'}"):
        assert main([*base, "--issuer-keys", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nfcpay: error: --issuer-keys") and err.count("\n") == 1
