"""`make demo`: the chain as far as it is built, on embedded defaults, printed step by step.

The card (issue 2): issuer keys, a SIM and a PSAM in a temp folder; a load of 100.00 yuan with
the issuer's MAC2; three purchases through the PSAM; a torn purchase recovered with GET
TRANSACTION PROVE; the balance and the card's log. Every TAC is checked with the issuer's keys.

The host (issue 3): the acquiring host on embedded SQLite in the same folder, with the issuer,
a merchant, a terminal and the card registered; the same SIM and PSAM go online through the
POS terminal (issue 4: pos_terminal.service, its SQLite journal, receipts) over ISO 8583 and
TCP: sign-on, a load, purchases (a receipt printed), a refund, the day-end settlement report;
the transactions the host captured; then a purchase torn at a second counter (the card pulled
during DEBIT) and recovered online with the card's proof.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
from paycore.issuer_keys import IssuerKeys
from paycore.money import format_fen, parse_yuan
from paycore.purse import InitLoadResponse, LogRecord, read_record
from pos_terminal.adapters.journal import Journal
from pos_terminal.adapters.sim_reader import LoseAnswerReader, SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import PurchaseDone, TornPurchase
from pos_terminal.domain.journal_model import State
from pos_terminal.domain.receipt import ReceiptHeader, settlement_report, txn_receipt
from pos_terminal.ports import ApduLink
from pos_terminal.service import Terminal as PosTerminal
from pos_terminal.service import TerminalConfig, TxnOutcome

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
HOST_TID2 = "DEMO0002"
PSAM2_TERMINAL_ID = bytes.fromhex("001122334466")
TORN_ONLINE_YUAN = "8.00"
MERCHANT_NAME = "Demo Noodle House"
INS_DEBIT = 0x54
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


def _txn_line(what: str, yuan: str, outcome: TxnOutcome, terminal: PosTerminal) -> str:
    entry = terminal.history(1)[0]  # this transaction, newest in the journal
    completion = entry.code if entry.state is State.COMPLETED and entry.code else "-"
    auth = outcome.code
    balance = "-" if outcome.balance_after_fen is None else format_fen(outcome.balance_after_fen)
    return (
        f"{what:<8} {yuan:>6} yuan  0210 {auth}  RRN {outcome.rrn}  0230 {completion}  "
        f"balance {balance:>6}"
    )


class _PullAtDebit:
    """The in-process reader with the customer's hand: when ``armed``, the next DEBIT FOR
    PURCHASE is processed by the card, then the card leaves before its answer (card.md §4)."""

    def __init__(self, reader: SimReader) -> None:
        self.reader = reader
        self.armed = False

    def transmit(self, apdu: bytes) -> bytes:
        if self.armed and len(apdu) > 1 and apdu[1] == INS_DEBIT:
            self.armed = False
            self.reader.transmit(apdu)
            self.reader.pull()
            raise card_flows.CardGone("card pulled away before its answer arrived")
        return self.reader.transmit(apdu)


def _terminal_clock() -> datetime:
    return datetime.now(SHANGHAI).replace(microsecond=0, tzinfo=None)


@contextmanager
def _pos(
    folder: Path, terminal_id: str, tmk: bytes, port: int, card: ApduLink, psam: ApduLink
) -> Iterator[PosTerminal]:
    """A POS terminal (pos_terminal.service) with its journal in ``folder``."""
    config = TerminalConfig(
        terminal_id=terminal_id, merchant_id=HOST_MID, merchant_name=MERCHANT_NAME,
        host=("127.0.0.1", port), tmk=tmk,
    )  # fmt: skip
    journal = Journal.open(folder / f"{terminal_id}.journal")
    terminal = PosTerminal(config, journal, card, psam, _terminal_clock)
    try:
        yield terminal
    finally:
        terminal.close()
        journal.close()


def _plain(out: Console, text: str) -> None:
    out.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


def _host(
    folder: Path, out: Console, keys: IssuerKeys, sim: SimReader, psam: card_flows.Psam,
    terminal_id: bytes, asn: str = ASN,
) -> None:  # fmt: skip
    """The same SIM and PSAM online against the acquiring host over TCP, through the POS
    terminal service (journal, receipts, settlement); then a torn purchase at a second
    counter, recovered online."""
    # the database stack loads only when the demo runs (not for every `nfcpay` command)
    from acquiring import bootstrap as host_bootstrap  # noqa: PLC0415
    from acquiring.adapters.keyvault import KeyVault  # noqa: PLC0415

    out.rule("[bold]the acquiring host: ISO 8583 over TCP")
    db_url = f"sqlite:///{folder / 'capture.db'}"
    store = host_bootstrap.open_store(db_url, vault=KeyVault(os.urandom(32)))
    today = datetime.now(SHANGHAI).date()
    tmk, tmk2 = os.urandom(16), os.urandom(16)
    psam2_path = folder / "psam2.card"
    card_bootstrap.save_new_image(psam2_path, issuance.new_psam_image(keys, PSAM2_TERMINAL_ID))
    with store.admin() as uow:
        uow.add_issuer(Issuer(HOST_ISSUER, "nfcpay demo issuer"), keys)
        uow.add_merchant(Merchant(HOST_MID, MERCHANT_NAME, "5814", "ACQ1", today))
        uow.add_terminal(Terminal(HOST_TID, HOST_MID, today), tmk)
        uow.add_terminal(Terminal(HOST_TID2, HOST_MID, today), tmk2)
        uow.add_card(CardAccount(asn, HOST_ISSUER))
    server = host_bootstrap.start_in_thread(store, db_url)
    header = ReceiptHeader(MERCHANT_NAME, HOST_MID, HOST_TID)
    try:
        out.print(f"host on 127.0.0.1:{server.port}, capture store capture.db (SQLite)")
        out.print(
            f"registered: issuer keys, merchant {HOST_MID}, terminals {HOST_TID} and "
            f"{HOST_TID2}, the card"
        )
        out.print(f"POS terminal {HOST_TID}: journal {HOST_TID}.journal (SQLite)")
        sim.present()
        with _pos(folder, HOST_TID, tmk, server.port, sim, psam.link) as pos:
            signed = pos.sign_on()
            out.print(
                f"sign-on  0810 {signed.code}: new MAK under the terminal's TMK, KCVs checked, "
                f"batch {signed.batch_no:06d}"
            )
            loaded = pos.load(parse_yuan(HOST_LOAD_YUAN))
            out.print(_txn_line("load", HOST_LOAD_YUAN, loaded, pos))
            bought = []
            for yuan in HOST_PURCHASES_YUAN:
                bought.append(pos.sale(parse_yuan(yuan)))
                out.print(_txn_line("purchase", yuan, bought[-1], pos))
            assert bought[0].rrn is not None
            refunded = pos.refund(parse_yuan(HOST_REFUND_YUAN), bought[0].rrn)
            out.print(_txn_line("refund", HOST_REFUND_YUAN, refunded, pos))
            out.print("the receipt of the first purchase:")
            _plain(out, txn_receipt(bought[0], header))
            settled = pos.settle()
            out.print(
                f"settlement 0510 {settled.code}: terminal and host totals "
                f"{'balanced' if settled.balanced else 'NOT balanced'}, "
                f"next batch {settled.next_batch_no:06d}"
            )
            _plain(out, settlement_report(settled, header))
        with store.admin(readonly=True) as uow:
            page = uow.search_transactions(TxnQuery(terminal_id=HOST_TID))
        out.print("captured by the host (TACs verified with the issuer's keys):")
        out.print(transactions_table(page.items))

        out.rule(f"a torn purchase at counter 2 ({HOST_TID2}), recovered online")
        psam2 = SimReader(card_bootstrap.file_card(psam2_path))
        psam2.present()
        hand = _PullAtDebit(sim)
        with _pos(folder, HOST_TID2, tmk2, server.port, hand, psam2) as pos2:
            pos2.sign_on()
            hand.armed = True
            torn = pos2.sale(parse_yuan(TORN_ONLINE_YUAN))
            out.print(
                f"purchase {TORN_ONLINE_YUAN} yuan: 0210 approved, DEBIT sent, the card pulled "
                f"away before its answer: {torn.code} ({torn.message})"
            )
            sim.present()
            recovered = pos2.recover()
            assert recovered is not None
            tac = "-" if recovered.tac is None else recovered.tac.hex().upper()
            out.print(
                f"same card back: GET TRANSACTION PROVE -> {recovered.message}; "
                f"the card's TAC {tac} went to the host in the 0220"
            )
            _plain(out, txn_receipt(recovered, replace(header, terminal_id=HOST_TID2)))
            settled2 = pos2.settle()
            out.print(f"{HOST_TID2} day end: 0510 {settled2.code}, {settled2.message}")
        sim.pull()
        with store.admin(readonly=True) as uow:
            items = uow.search_transactions(TxnQuery(terminal_id=HOST_TID2)).items
        for item in items:
            verdict = "-" if item.tac_verdict is None else item.tac_verdict.value
            amount = item.completion_amount_fen
            out.print(
                f"the host has it: {item.authorisation.kind.value} "
                f"{format_fen(item.authorisation.amount_fen)} yuan, completion "
                f"{'-' if amount is None else format_fen(amount)} yuan, TAC {verdict}"
            )
    finally:
        server.stop()
        store.close()
