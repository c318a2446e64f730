"""Terminal crash recovery: the real ``Terminal`` runs in its own process (terminal_driver.py)
over its journal file and file-backed SIM and PSAM images, kills itself with SIGKILL at a named
point of a sale, a load, a refund, a reversal or a settlement, and is started again: it
flushes and sells again. Then the card, the journal and the host agree (agreement.py), no STAN
was used twice and the batch number did not go backwards.

The host runs in this process; the terminal reaches it through a fault proxy, which here only
records the requests (their STANs) except where a case scripts a fault to set the scene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from card_applet_sim import bootstrap as card_bootstrap
from pos_terminal.adapters.journal import Journal
from pos_terminal.adapters.sim_reader import SimReader
from tests.integration.acquiring.host_env import MID, TerminalSetup
from tests.integration.pos_faults import agreement
from tests.integration.pos_faults.fault_proxy import Fault, FaultProxy, Seen
from tests.integration.pos_faults.scenarios import purchase_around_terminal
from tests.integration.pos_faults.terminal_driver import KILL_ENV
from tests.integration.pos_faults.world import (
    OPENING_BALANCE_FEN,
    TIMEOUT_S,
    World,
    new_psam_image,
    new_sim_image,
)

REPO = Path(__file__).resolve().parents[3]
DRIVER_TIMEOUT_S = 60
#: After the restart: owed messages first, then a sale (which finishes a torn transaction
#: first when there is one), another sale, and a last flush.
RESTART = ("flush", "sale:100", "sale:100", "flush")
#: Requests that take a new STAN (the others reuse their transaction's).
NEW_STAN_MTIS = frozenset({"0200", "0500", "0800"})


@dataclass(frozen=True)
class Crash:
    name: str
    point: str  # terminal_driver's NFCPAY_TEST_KILL_AT
    crash: tuple[str, ...]  # the commands of the run that dies
    before: tuple[str, ...] = ()  # commands run (and finished) first, in their own process
    scene: tuple[str, Fault] | None = None  # a fault scripted before ``before``
    settle_again: bool = False  # a settlement case settles again after the restart
    #: The host gets a purchase (another card, the terminal's ID and keys) after ``before``:
    #: the settlement does not balance and the terminal uploads.
    unbalanced: bool = False


CRASHES = [
    Crash("sale-before-0200", "before-send:0200", ("sign_on", "sale:1500")),
    Crash("sale-after-0200-sent", "after-send:0200", ("sign_on", "sale:1500")),
    Crash("sale-after-0210-read", "after-receive:0210", ("sign_on", "sale:1500")),
    Crash("sale-before-debit", "before-card:54", ("sign_on", "sale:1500")),
    Crash("sale-after-debit", "after-card:54", ("sign_on", "sale:1500")),
    Crash("sale-after-0220-sent", "after-send:0220", ("sign_on", "sale:1500")),
    Crash("sale-after-0230-read", "after-receive:0230", ("sign_on", "sale:1500")),
    Crash("load-after-0200-sent", "after-send:0200", ("sign_on", "load:2000")),
    Crash("load-after-0210-read", "after-receive:0210", ("sign_on", "load:2000")),
    Crash("load-after-credit", "after-card:52", ("sign_on", "load:2000")),
    Crash("load-after-0220-sent", "after-send:0220", ("sign_on", "load:2000")),
    Crash(
        "refund-after-0210-read", "after-receive:0210", ("refund-last:700",),
        before=("sign_on", "sale:3000"),
    ),
    Crash(
        "refund-after-credit", "after-card:52", ("refund-last:700",),
        before=("sign_on", "sale:3000"),
    ),
    Crash(
        "reversal-after-0400-sent", "after-send:0400", ("flush",),
        before=("sign_on", "sale:1500"), scene=("0200", Fault.SWALLOW),
    ),
    Crash(
        "settle-after-0500-sent", "after-send:0500", ("settle",),
        before=("sign_on", "sale:1500"), settle_again=True,
    ),
    Crash(
        "settle-after-0510-read", "after-receive:0510", ("settle",),
        before=("sign_on", "sale:1500"), settle_again=True,
    ),
    Crash(
        "settle-upload-after-0320-sent", "after-send:0320", ("settle",),
        before=("sign_on", "sale:1500", "sale:1200"), settle_again=True, unbalanced=True,
    ),
]  # fmt: skip

#: Known defects of the Terminal, by case name: each is an xfail(strict) naming the bug.
KNOWN: dict[str, str] = {}


class CrashRig:
    def __init__(self, world: World, setup: TerminalSetup, proxy: FaultProxy, folder: Path):
        self.world = world
        self.setup = setup
        self.proxy = proxy
        self.sim_path = folder / "sim.json"
        self.psam_path = folder / "psam.json"
        self.journal_path = folder / "journal.db"
        card_bootstrap.save_new_image(self.sim_path, new_sim_image(setup))
        card_bootstrap.save_new_image(self.psam_path, new_psam_image(setup))
        self.setup_path = folder / "terminal.json"
        host, port = proxy.address
        self.setup_path.write_text(
            json.dumps(
                {
                    "host": host, "port": port, "terminal_id": setup.terminal_id,
                    "merchant_id": MID, "tmk": setup.tmk.hex(), "timeout_s": TIMEOUT_S,
                    "sim": str(self.sim_path), "psam": str(self.psam_path),
                    "journal": str(self.journal_path),
                }
            )
        )  # fmt: skip

    def run(
        self, commands: tuple[str, ...], kill_at: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
        if kill_at is not None:
            env[KILL_ENV] = kill_at
        return subprocess.run(
            [sys.executable, "-m", "tests.integration.pos_faults.terminal_driver",
             str(self.setup_path), *commands],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S,
            check=False,
        )  # fmt: skip

    def working_keys_and_batch(self) -> tuple[bytes, int]:
        journal = Journal.open(self.journal_path)
        try:
            keys = journal.working_keys()
            assert keys is not None, "the terminal has not signed on"
            return keys, journal.batch_no
        finally:
            journal.close()

    def journal_meta(self) -> tuple[int, int, int]:
        """(last STAN, batch number, newest entry's id) as the journal file holds them."""
        journal = Journal.open(self.journal_path)
        try:
            newest = journal.recent(1)
            return journal.stan, journal.batch_no, newest[0].entry_id if newest else 0
        finally:
            journal.close()


@pytest.fixture
def crash_rig(world: World, tmp_path: Path) -> Iterator[CrashRig]:
    with FaultProxy(world.address) as proxy:
        yield CrashRig(world, world.take(), proxy, tmp_path)


def _ran(result: subprocess.CompletedProcess[str], what: str) -> str:
    return f"{what}: exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _new_stans(requests: list[Seen]) -> list[tuple[str, str]]:
    """(MTI, STAN) of the requests that take a new STAN, retransmissions left out."""
    seen: list[tuple[str, str]] = []
    for r in requests:
        takes_new = r.mti in NEW_STAN_MTIS or (r.mti == "0320" and r.network_code == "202")
        if takes_new and (r.mti, r.stan) not in seen:
            seen.append((r.mti, r.stan))
    return seen


@pytest.mark.parametrize(
    "crash",
    [
        pytest.param(
            c,
            id=c.name,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN[c.name])] if c.name in KNOWN else [],
        )
        for c in CRASHES
    ],
)
def test_crash_and_restart(crash: Crash, crash_rig: CrashRig) -> None:
    r = crash_rig
    if crash.scene is not None:
        r.proxy.inject(*crash.scene)
    if crash.before:
        before = r.run(crash.before)
        assert before.returncode == 0, _ran(before, "the run before the crash")
    other_asns: set[str] = set()
    if crash.unbalanced:
        keys, batch_no = r.working_keys_and_batch()
        other_asns.add(
            purchase_around_terminal(r.world, r.setup.terminal_id, r.setup.tmk, keys, batch_no)
        )
    died = r.run(crash.crash, kill_at=crash.point)
    assert died.returncode == -9, _ran(died, f"the run meant to die at {crash.point}")
    stan_at_crash, batch_at_crash, newest_at_crash = r.journal_meta()
    r.proxy.clear()

    restart = ("flush", "settle", *RESTART) if crash.settle_again else RESTART
    after = r.run(restart)
    assert after.returncode == 0, _ran(after, "the run after the restart")

    journal_file = Journal.open(r.journal_path)
    try:
        journal = list(reversed(journal_file.recent(1_000)))
        stan_now, batch_now = journal_file.stan, journal_file.batch_no
    finally:
        journal_file.close()
    sim = SimReader(card_bootstrap.file_card(r.sim_path))
    sim.present()
    card = agreement.card_state(sim)
    host = [
        row
        for row in agreement.host_rows(r.world.store, r.setup.terminal_id)
        if row.asn not in other_asns
    ]
    transcript = r.proxy.transcript() + "\n" + _ran(after, "restart")
    found = agreement.problems(OPENING_BALANCE_FEN, card, journal, host)

    stans = _new_stans(r.proxy.requests())
    numbers = [int(stan) for _, stan in stans]
    if numbers != sorted(set(numbers)):
        found.append(f"a STAN was used twice or went backwards: {stans}")
    after_restart = [e.stan for e in journal if e.entry_id > newest_at_crash]
    if not all(stan > stan_at_crash for stan in after_restart) or stan_now < stan_at_crash:
        found.append(
            f"STAN went backwards: {stan_at_crash} at the crash, then {after_restart}, "
            f"journal says {stan_now}"
        )
    if batch_now < batch_at_crash:
        found.append(f"batch went backwards: {batch_at_crash} at the crash, now {batch_now}")
    outcomes = [json.loads(line) for line in after.stdout.splitlines() if line.strip()]
    for o in outcomes:
        code = o["result"].get("code")
        host_code = isinstance(code, str) and len(code) == 2
        if o["command"].startswith("sale") and host_code and code != "00":
            found.append(f"{o['command']} after the restart declined by the host: {code}")
    if crash.settle_again:
        host_batch = agreement.host_batch_no(r.world.store, r.setup.terminal_id)
        settled = [o["result"] for o in outcomes if o["command"] == "settle"]
        if batch_now != host_batch or settled[0].get("next_batch_no") != host_batch:
            found.append(
                f"terminal batch {batch_now} (settle said {settled[0].get('next_batch_no')},"
                f" {settled[0].get('message')!r}), host batch {host_batch}"
            )
    if crash.unbalanced:
        paid = sorted(
            (e.batch_no, e.stan, e.amount_fen) for e in journal if e.batch_no == 1 and e.card_paid
        )
        uploads = agreement.host_uploads(r.world.store, r.setup.terminal_id)
        if uploads != paid:
            found.append(f"batch uploads {uploads}, the journal's batch 1 {paid}")
    if found:
        raise AssertionError(agreement.report(found, card, journal, host, transcript))
