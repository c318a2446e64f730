"""`make demo`: the chain as far as it is built, on embedded defaults, printed step by step.

The card (issue 2): issuer keys, a SIM and a PSAM in a temp folder; a load of 100.00 yuan with
the issuer's MAC2; three purchases through the PSAM; a torn purchase recovered with GET
TRANSACTION PROVE; the balance and the card's log. Every TAC is checked with the issuer's keys.

The host (issue 3): the acquiring host on embedded SQLite in the same folder, with the issuer,
a merchant, a terminal and the card registered; the same SIM and PSAM go online through the
terminal's ISO 8583 link over TCP: sign-on, a load, purchases, a refund, settlement; then the
transactions the host captured.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from acquiring.cli import transactions_table
from acquiring.domain import issuer
from acquiring.domain.model import CardAccount, Issuer, Merchant, Terminal
from acquiring.ports import TxnQuery
from card_applet_sim import bootstrap as card_bootstrap
from card_applet_sim.adapters.keyfile import read_keys, write_keys
from card_applet_sim.domain import issuance
from paycore import issuer_keys, pboc
from paycore.iso8583.fields import SettlementTotals, decode_settlement_totals
from paycore.issuer_keys import IssuerKeys
from paycore.money import format_fen, parse_yuan
from paycore.purse import InitLoadResponse, LogRecord, read_record
from pos_terminal.adapters.host_link import (
    HostLink,
    OnlineResult,
    online_load,
    online_purchase,
    online_refund,
)
from pos_terminal.adapters.sim_reader import LoseAnswerReader, SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import PurchaseDone, TornPurchase

ASN = "8888000000000001"
TERMINAL_ID = "001122334455"
PURCHASES_YUAN = ("12.50", "3.00", "45.80")
TORN_PURCHASE_YUAN = "8.88"
TX_NAMES = {pboc.TYPE_EP_LOAD: "load", pboc.TYPE_EP_PURCHASE: "purchase"}
HOST_ISSUER = "NFCPAY"
HOST_MID = "898310048990001"
HOST_TID = "DEMO0001"
HOST_LOAD_YUAN = "50.00"
HOST_PURCHASES_YUAN = ("18.00", "6.50")
HOST_REFUND_YUAN = "5.00"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class IssuerAuthority:
    """The load authority played in-process by the issuer's keys (the host does it later)."""

    keys: IssuerKeys

    def authorise_load(
        self,
        asn: bytes,
        init: InitLoadResponse,
        amount_fen: int,
        terminal_id: bytes,
        date_bcd: bytes,
        time_bcd: bytes,
    ) -> bytes:
        return issuer.load_mac2(self.keys, asn, init, amount_fen, terminal_id, date_bcd, time_bcd)


def _purchase_tac_ok(keys: IssuerKeys, done: PurchaseDone, terminal_id: bytes) -> bool:
    p = pboc.Purchase(
        done.amount_fen, terminal_id, done.terminal_serial, done.date_bcd, done.time_bcd
    )
    return issuer.purchase_tac_ok(keys, done.asn, p, done.tac)


def run(*, keep: bool = False, console: Console | None = None) -> None:
    out = console or Console()
    folder = Path(tempfile.mkdtemp(prefix="nfcpay-demo-"))
    try:
        _run(folder, out)
    finally:
        if keep:
            out.print(f"[dim]images kept in {folder}[/dim]")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, out: Console) -> None:
    keys_path, sim_path, psam_path = (
        folder / "issuer.keys",
        folder / "sim.card",
        folder / "psam.card",
    )
    now = datetime.now(SHANGHAI).replace(microsecond=0, tzinfo=None)
    terminal_id = bytes.fromhex(TERMINAL_ID)

    out.rule("[bold]nfcpay demo: SIM wallet and PSAM")
    write_keys(keys_path, issuer_keys.generate(os.urandom))
    keys = read_keys(keys_path)
    out.print(f"issuer keys (version {keys.key_version}) written to {keys_path.name}, mode 0600")
    from nfcpay import demo_ota  # noqa: PLC0415 - the OTA server's stack loads for the demo only

    asn = demo_ota.provision(folder, sim_path, keys, now.date(), out)  # the day starts OTA
    card_bootstrap.save_new_image(psam_path, issuance.new_psam_image(keys, terminal_id))
    out.print(f"SIM personalised over the air: ASN {asn}, keys diversified from it")
    out.print(f"PSAM issued for terminal {TERMINAL_ID}")

    sim = SimReader(card_bootstrap.file_card(sim_path))
    psam_reader = SimReader(card_bootstrap.file_card(psam_path))
    psam_reader.present()
    psam = card_flows.open_psam(psam_reader)
    sim.present()

    loaded = card_flows.load(sim, IssuerAuthority(keys), parse_yuan("100.00"), terminal_id, now)
    load_ok = issuer.load_tac_ok(
        keys, loaded.asn, loaded.balance_after_fen, loaded.counter,
        pboc.Load(loaded.amount_fen, terminal_id), loaded.date_bcd, loaded.time_bcd, loaded.tac,
    )  # fmt: skip
    out.print(
        f"load     {format_fen(loaded.amount_fen):>6} yuan  balance "
        f"{format_fen(loaded.balance_after_fen):>6}  MAC2 from issuer  "
        f"TAC {loaded.tac.hex().upper()} {'ok' if load_ok else 'BAD'}"
    )

    for n, yuan in enumerate(PURCHASES_YUAN):
        result = card_flows.purchase(
            sim, psam, parse_yuan(yuan), now + timedelta(minutes=5 * n + 5)
        )
        assert isinstance(result, PurchaseDone)
        tac_ok = _purchase_tac_ok(keys, result, terminal_id)
        out.print(
            f"purchase {format_fen(result.amount_fen):>6} yuan  balance "
            f"{format_fen(result.balance_after_fen):>6}  PSAM serial {result.terminal_serial}, "
            f"MAC2 {'ok' if result.mac2_verified else 'BAD'}  "
            f"TAC {result.tac.hex().upper()} {'ok' if tac_ok else 'BAD'}"
        )

    out.rule("torn purchase")
    torn = card_flows.purchase(
        LoseAnswerReader(sim, ins=0x54), psam, parse_yuan(TORN_PURCHASE_YUAN),
        now + timedelta(minutes=30),
    )  # fmt: skip
    assert isinstance(torn, TornPurchase)
    out.print(f"purchase {TORN_PURCHASE_YUAN} yuan: card pulled away during DEBIT, no answer")
    sim.present()
    out.print(f"same card back: ASN matches; GET TRANSACTION PROVE 06, counter {torn.counter + 1}")
    recovered = card_flows.recover_purchase(sim, torn)
    if recovered is None:
        out.print("card says the debit did not happen: the purchase may be retried")
    else:
        tac_ok = _purchase_tac_ok(keys, recovered, terminal_id)
        out.print(
            f"card proves the debit happened: TAC {recovered.tac.hex().upper()} "
            f"{'verified' if tac_ok else 'BAD'}; no second debit"
        )

    out.rule("the card now")
    info = card_flows.read_card(sim)
    sim_log = sim
    expected = parse_yuan("100.00") - sum(
        parse_yuan(y) for y in (*PURCHASES_YUAN, TORN_PURCHASE_YUAN)
    )
    out.print(
        f"balance {format_fen(info.balance_fen)} yuan "
        f"(100.00 loaded - {' - '.join((*PURCHASES_YUAN, TORN_PURCHASE_YUAN))} = "
        f"{format_fen(expected)})"
    )
    table = Table("#", "date", "time", "type", "yuan", "counter", "terminal",
                  title="card log (EF 0x18, newest first)")  # fmt: skip
    for n in range(1, 11):
        try:
            raw = card_flows.send(sim_log, read_record(n), "READ RECORD")
        except card_flows.CardRefused:
            break
        r = LogRecord.decode(raw)
        d, t = r.date_bcd.hex(), r.time_bcd.hex()
        table.add_row(
            str(n), f"{d[:4]}-{d[4:6]}-{d[6:]}", f"{t[:2]}:{t[2:4]}:{t[4:]}",
            TX_NAMES.get(r.tx_type, f"{r.tx_type:02X}"), format_fen(r.amount_fen),
            str(r.counter), r.terminal_id.hex().upper(),
        )  # fmt: skip
    sim.pull()
    out.print(table)
    if info.balance_fen != expected:
        raise AssertionError("demo balance does not add up")

    _host(folder, out, keys, sim, psam, terminal_id, asn)


def _online_line(what: str, yuan: str, result: OnlineResult, sim: SimReader) -> str:
    auth = result.auth
    completion = "-" if result.completion is None else result.completion.code
    balance = format_fen(card_flows.read_card(sim).balance_fen)
    return (
        f"{what:<8} {yuan:>6} yuan  0210 {auth.code}  RRN {auth.rrn}  0230 {completion}  "
        f"balance {balance:>6}"
    )


def _host(
    folder: Path, out: Console, keys: IssuerKeys, sim: SimReader, psam: card_flows.Psam,
    terminal_id: bytes, asn: str = ASN,
) -> None:  # fmt: skip
    """The same SIM and PSAM online against the acquiring host over TCP."""
    # the database stack loads only when the demo runs (not for every `nfcpay` command)
    from acquiring import bootstrap as host_bootstrap  # noqa: PLC0415
    from acquiring.adapters.keyvault import KeyVault  # noqa: PLC0415

    out.rule("[bold]the acquiring host: ISO 8583 over TCP")
    db_url = f"sqlite:///{folder / 'capture.db'}"
    store = host_bootstrap.open_store(db_url, vault=KeyVault(os.urandom(32)))
    today = datetime.now(SHANGHAI).date()
    tmk = os.urandom(16)
    with store.admin() as uow:
        uow.add_issuer(Issuer(HOST_ISSUER, "nfcpay demo issuer"), keys)
        uow.add_merchant(Merchant(HOST_MID, "Demo Noodle House", "5814", "ACQ1", today))
        uow.add_terminal(Terminal(HOST_TID, HOST_MID, today), tmk)
        uow.add_card(CardAccount(asn, HOST_ISSUER))
    server = host_bootstrap.start_in_thread(store, db_url)
    try:
        out.print(f"host on 127.0.0.1:{server.port}, capture store capture.db (SQLite)")
        out.print(f"registered: issuer keys, merchant {HOST_MID}, terminal {HOST_TID}, the card")
        sim.present()
        with HostLink(("127.0.0.1", server.port), HOST_TID, HOST_MID, tmk) as link:
            signed = link.sign_on()
            out.print(
                f"sign-on  0810 {signed.code}: new MAK under the terminal's TMK, KCVs checked, "
                f"batch {link.batch_no:06d}"
            )
            loaded = online_load(link, sim, parse_yuan(HOST_LOAD_YUAN), terminal_id)
            out.print(_online_line("load", HOST_LOAD_YUAN, loaded, sim))
            bought = []
            for yuan in HOST_PURCHASES_YUAN:
                now = datetime.now(SHANGHAI).replace(microsecond=0, tzinfo=None)
                bought.append(online_purchase(link, sim, psam, parse_yuan(yuan), now))
                out.print(_online_line("purchase", yuan, bought[-1], sim))
            refunded = online_refund(
                link, sim, bought[0].auth, parse_yuan(HOST_REFUND_YUAN), terminal_id
            )
            out.print(_online_line("refund", HOST_REFUND_YUAN, refunded, sim))
            totals = SettlementTotals(
                sum(parse_yuan(y) for y in HOST_PURCHASES_YUAN), len(HOST_PURCHASES_YUAN),
                parse_yuan(HOST_REFUND_YUAN), 1, parse_yuan(HOST_LOAD_YUAN), 1,
            )  # fmt: skip
            settled = link.settle(totals)
            verdict = decode_settlement_totals(settled.text(48))
            out.print(
                f"settlement 0510 {settled.code}: terminal and host totals "
                f"{'balanced' if verdict.balanced else 'NOT balanced'}, "
                f"next batch {link.batch_no:06d}"
            )
        sim.pull()
        with store.admin(readonly=True) as uow:
            page = uow.search_transactions(TxnQuery(terminal_id=HOST_TID))
        out.print("captured by the host (TACs verified with the issuer's keys):")
        out.print(transactions_table(page.items))
    finally:
        server.stop()
        store.close()
