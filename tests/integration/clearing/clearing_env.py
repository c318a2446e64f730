"""A host capture store seeded for clearing tests (a plain module, not a conftest.py): the
host's own schema and AdminUnitOfWork / HostUnitOfWork create the world and the transactions;
clearing then reads them through the views."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql.store import SqlStore
from acquiring.domain.commission import RuleKind
from acquiring.domain.model import (
    Authorisation,
    BatchTotals,
    BatchUploadRecord,
    CardAccount,
    ChannelPartner,
    CommissionRule,
    Completion,
    Issuer,
    Merchant,
    PartnerContract,
    Reversal,
    ReversalReason,
    TacVerdict,
    Terminal,
    TerminalSettlement,
    TxnKey,
    TxnKind,
)
from paycore.iso8583.fields import ResponseCode
from paycore.issuer_keys import IssuerKeys

DAY = date(2026, 3, 1)
#: 10:00 in Shanghai on DAY; the default cut-off is 00:00 Shanghai on the next day (16:00 UTC).
NOON = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ISSUER = "ISS1"
ISSUER2 = "ISS2"
ACQ = "ACQ1"
ISSUER_KEYS = IssuerKeys(
    1,
    bytes.fromhex("11223344556677888877665544332211"),
    bytes.fromhex("3F013F013F013F013F013F013F013F01"),
    bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
    bytes.fromhex("0102030405060708"),
)
TMK = bytes.fromhex("CA5D92598DCA48CE8A4C76361A9269E9")

#: merchant -> (terminal, rule)
FASTFOOD = "898310000000001"  # percent 1000 bp
CHAIN = "898310000000002"  # percent 100 bp
FIXED = "898310000000003"  # fixed 200 fen
CINEMA = "898310000000004"  # discount 8000 / 6000 -> 2500 bp
RAIL = "898310000000005"  # zero
CAPPED = "898310000000006"  # percent 100 bp, min 5, max 20
TERMINAL_OF = {
    FASTFOOD: "T0000001",
    CHAIN: "T0000002",
    FIXED: "T0000003",
    CINEMA: "T0000004",
    RAIL: "T0000005",
    CAPPED: "T0000006",
}
CARD = "8888000000000001"
CARD2 = "8888000000000002"  # issuer 2


def rules(effective_from: date) -> list[CommissionRule]:
    return [
        CommissionRule(FASTFOOD, RuleKind.PERCENT, effective_from, rate_bp=1000),
        CommissionRule(CHAIN, RuleKind.PERCENT, effective_from, rate_bp=100),
        CommissionRule(FIXED, RuleKind.FIXED, effective_from, fee_fen=200),
        CommissionRule(
            CINEMA, RuleKind.DISCOUNT, effective_from, rate_bp=2500, user_bp=8000, settle_bp=6000
        ),
        CommissionRule(RAIL, RuleKind.ZERO, effective_from),
        CommissionRule(
            CAPPED, RuleKind.PERCENT, effective_from, rate_bp=100, min_fen=5, max_fen=20
        ),
    ]


@dataclass
class World:
    store: SqlStore
    url: str
    _stan: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _counter: dict[tuple[str, str], int] = field(default_factory=dict)

    # --- transactions ------------------------------------------------------------------------

    def txn(
        self,
        merchant_id: str,
        amount_fen: int,
        *,
        kind: TxnKind = TxnKind.PURCHASE,
        day: date = DAY,
        at: datetime | None = None,
        asn: str = CARD,
        complete: bool = True,
        completion_fen: int | None = None,
        completed_at: datetime | None = None,
        verdict: TacVerdict = TacVerdict.OK,
        reverse: bool = False,
        original_rrn: str | None = None,
        batch_no: int = 1,
        counter: int | None = None,
        tac: bytes = bytes.fromhex("B3A0D49C"),
        psam_serial: int | None = None,
        terminal_at: datetime = datetime(2026, 3, 1, 10, 0, 5),
    ) -> Authorisation:
        terminal_id = TERMINAL_OF[merchant_id]
        stan = next(self._stan)
        ck = (asn, "offline" if kind is TxnKind.PURCHASE else "online")
        if counter is None:
            counter = self._counter.get(ck, 0)
        self._counter[ck] = counter + 1
        at = at or NOON + timedelta(days=(day - DAY).days)
        with self.store.unit() as uow:
            auth = Authorisation(
                kind=kind,
                key=TxnKey(terminal_id, batch_no, stan),
                merchant_id=merchant_id,
                asn=asn,
                amount_fen=amount_fen,
                rrn=uow.next_rrn(),
                response_code=ResponseCode.APPROVED,
                business_date=day,
                received_at=at,
                card_counter=counter,
                key_version=1,
                psam_terminal_id=bytes.fromhex("001122334455"),
                balance_before_fen=100_000,
                auth_code=f"{stan:06d}",
                card_random=None if kind is TxnKind.PURCHASE else bytes.fromhex("11223344"),
                original_rrn=original_rrn,
            )
            uow.add_authorisation(auth)
            if complete:
                uow.add_completion(
                    Completion(
                        auth.key,
                        amount_fen if completion_fen is None else completion_fen,
                        tac,
                        verdict,
                        counter,
                        stan if psam_serial is None else psam_serial,
                        terminal_at,
                        day,
                        completed_at or at + timedelta(seconds=1),
                    )
                )
            if reverse:
                uow.add_reversal(
                    Reversal(auth.key, ReversalReason.NO_ANSWER, day, at + timedelta(seconds=2))
                )
        return auth

    def complete_late(self, auth: Authorisation, at: datetime) -> None:
        with self.store.unit() as uow:
            uow.add_completion(
                Completion(
                    auth.key,
                    auth.amount_fen,
                    bytes.fromhex("B3A0D49C"),
                    TacVerdict.OK,
                    auth.card_counter,
                    1,
                    datetime(2026, 3, 1, 23, 59, 0),
                    auth.business_date,
                    at,
                )
            )

    def upload(
        self,
        auth: Authorisation,
        amount_fen: int | None = None,
        rrn: str | None = None,
        stan: int | None = None,
    ) -> None:
        key = auth.key if stan is None else TxnKey(auth.key.terminal_id, auth.key.batch_no, stan)
        with self.store.unit() as uow:
            uow.add_batch_upload(
                BatchUploadRecord(
                    key,
                    auth.kind,
                    auth.asn,
                    auth.amount_fen if amount_fen is None else amount_fen,
                    rrn or auth.rrn,
                    bytes.fromhex("B3A0D49C"),
                    auth.card_counter,
                    1,
                    datetime(2026, 3, 1, 20, 0, 0),
                    auth.received_at + timedelta(minutes=5),
                )
            )

    def settle(
        self, terminal_id: str, terminal: BatchTotals, host: BatchTotals, day: date = DAY
    ) -> None:
        with self.store.unit() as uow:
            uow.add_settlement(
                TerminalSettlement.of(
                    terminal_id, 1, terminal, host, day, NOON + timedelta(hours=6)
                )
            )

    def sql(self, statement: str, **params: object) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(text(statement), params)


def make_world(url: str, *, rules_from: date = DAY) -> World:
    store = SqlStore.open(url, KeyVault(os.urandom(32)))
    with store.admin() as uow:
        uow.add_partner(ChannelPartner("P1", "Partner One"))
        uow.add_partner(ChannelPartner("P2", "Partner Two"))
        uow.add_contract(
            PartnerContract.signing(
                "P1", date(2025, 1, 1), share_bp=5000, expansion_fee_fen=50_000, retention_days=90
            )
        )
        uow.add_contract(PartnerContract.maintenance("P2", date(2025, 1, 1)))
        uow.add_issuer(Issuer(ISSUER, "Issuer One"), ISSUER_KEYS)
        uow.add_issuer(Issuer(ISSUER2, "Issuer Two"), ISSUER_KEYS)
        for n, merchant_id in enumerate(TERMINAL_OF, start=1):
            onboarded = date(2025, 12, 1) if merchant_id == FASTFOOD else date(2025, 6, 1)
            uow.add_merchant(
                Merchant(
                    merchant_id,
                    f"Merchant {n}",
                    "5814",
                    ACQ,
                    onboarded,
                    signing_partner_id="P1" if merchant_id in (FASTFOOD, CHAIN) else None,
                )
            )
            uow.add_terminal(
                Terminal(
                    TERMINAL_OF[merchant_id],
                    merchant_id,
                    date(2025, 6, 1),
                    maintaining_partner_id="P2" if merchant_id in (FASTFOOD, CINEMA) else None,
                ),
                TMK,
            )
        uow.add_card(CardAccount(CARD, ISSUER))
        uow.add_card(CardAccount(CARD2, ISSUER2))
        for rule in rules(rules_from):
            uow.add_commission_rule(rule)
    return World(store, url)


def read(url: str, query: str, **params: object) -> list[tuple[object, ...]]:
    from clearing.adapters.sql.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query), params).all()]
    finally:
        engine.dispose()


def out_dir(tmp: Path) -> Path:
    folder = tmp / "out"
    folder.mkdir(exist_ok=True)
    return folder
