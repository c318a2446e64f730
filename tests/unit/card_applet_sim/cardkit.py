"""Fixtures and helpers of the card simulator's unit tests: deterministic issuer keys, SIM and
PSAM images and cards, and the purse transactions spelled out APDU by APDU (card.md §2-§5).

Test modules import them from ``tests.unit.card_applet_sim.cardkit``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.domain.applet import RandomSource
from card_applet_sim.domain.errors import PowerLoss
from card_applet_sim.domain.image import CardImage
from card_applet_sim.domain.issuance import new_psam_image, new_sim_image, parse_asn, parse_pin
from card_applet_sim.domain.psam import PsamState
from card_applet_sim.domain.runtime import Card
from card_applet_sim.domain.wallet import WalletState
from paycore import bcd, issuer_keys, pboc
from paycore.apdu import CommandApdu, ResponseApdu, decode_response
from paycore.issuer_keys import IssuerKeys
from paycore.purse import (
    KEY_INDEX,
    PSAM_AID,
    WALLET_AID,
    CreditForLoadRequest,
    DebitRequest,
    DebitResponse,
    InitLoadResponse,
    InitPurchaseResponse,
    InitRequest,
    SamInitRequest,
    SamInitResponse,
    credit_for_load,
    debit_for_purchase,
    initialize_for_load,
    initialize_for_purchase,
    sam_credit_purchase,
    sam_init_purchase,
    select_aid,
)
from paycore.sw import SW

ASN_TEXT = "8888000000000001"
ASN = parse_asn(ASN_TEXT)
TERMINAL_ID = bytes.fromhex("001122334455")
TODAY = date(2024, 5, 17)
NOW = datetime(2024, 5, 17, 10, 30, 15)
PIN_TEXT = "1234"
PIN_BCD = parse_pin(PIN_TEXT)
START_BALANCE_FEN = 10_000


def det_random(seed: int) -> RandomSource:
    """A deterministic random source (the card's challenges, test keys)."""
    return random.Random(seed).randbytes


def make_keys(seed: int = 1, *, two_level: bool = False) -> IssuerKeys:
    return issuer_keys.generate(det_random(seed), two_level=two_level)


def sim_image(
    keys: IssuerKeys, *, balance_fen: int = START_BALANCE_FEN, pin_bcd: bytes | None = None
) -> CardImage:
    return new_sim_image(keys, ASN, today=TODAY, balance_fen=balance_fen, pin_bcd=pin_bcd)


def psam_image(keys: IssuerKeys) -> CardImage:
    return new_psam_image(keys, TERMINAL_ID)


# --- APDU helpers ---------------------------------------------------------------------------


def send(card: Card, command: CommandApdu | bytes | str) -> ResponseApdu:
    """Transmit and decode; ``str`` commands are hex (spaces allowed)."""
    if isinstance(command, CommandApdu):
        raw = command.encode()
    elif isinstance(command, str):
        raw = bytes.fromhex(command)
    else:
        raw = command
    return decode_response(card.transmit(raw))


def ok(card: Card, command: CommandApdu | bytes | str) -> bytes:
    response = send(card, command)
    assert response.sw == SW.OK, f"{response.sw:04X}"
    return response.data


def sw_of(card: Card, command: CommandApdu | bytes | str) -> int:
    return send(card, command).sw


def wallet_state(card: Card) -> WalletState:
    state = card.image.state_of(WALLET_AID)
    assert isinstance(state, WalletState)
    return state


def psam_state(card: Card) -> PsamState:
    state = card.image.state_of(PSAM_AID)
    assert isinstance(state, PsamState)
    return state


def powered(card: Card, aid: bytes) -> Card:
    card.power_on()
    ok(card, select_aid(aid))
    return card


def sim_card(
    keys: IssuerKeys,
    *,
    balance_fen: int = START_BALANCE_FEN,
    pin_bcd: bytes | None = None,
    seed: int = 7,
) -> Card:
    """A powered in-memory SIM with the wallet selected."""
    image = sim_image(keys, balance_fen=balance_fen, pin_bcd=pin_bcd)
    return powered(bootstrap.memory_card(image, det_random(seed)), WALLET_AID)


def psam_card(keys: IssuerKeys) -> Card:
    """A powered in-memory PSAM with its application selected."""
    return powered(bootstrap.memory_card(psam_image(keys), det_random(99)), PSAM_AID)


class PowerCut:
    """A write-point hook that cuts the power at the ``n``-th call of ``point``."""

    def __init__(self, point: str, n: int = 1) -> None:
        self.point = point
        self.n = n
        self.seen = 0
        self.fired = False

    def __call__(self, point: str) -> None:
        if point == self.point:
            self.seen += 1
            if self.seen == self.n:
                self.fired = True
                raise PowerLoss(f"power cut at {point} #{self.n}")


# --- the purse transactions, APDU by APDU ---------------------------------------------------


def date_time(now: datetime = NOW) -> tuple[bytes, bytes]:
    return bcd.date_time(now)


@dataclass(frozen=True, slots=True)
class LoadResult:
    init: InitLoadResponse
    date_bcd: bytes
    time_bcd: bytes
    mac2: bytes
    tac: bytes


def init_load(card: Card, amount_fen: int) -> InitLoadResponse:
    return InitLoadResponse.decode(
        ok(card, initialize_for_load(InitRequest(KEY_INDEX, amount_fen, TERMINAL_ID)))
    )


def load_mac2(keys: IssuerKeys, init: InitLoadResponse, amount_fen: int) -> bytes:
    d, t = date_time()
    return issuer.load_mac2(keys, ASN, init, amount_fen, TERMINAL_ID, d, t)


def do_load(card: Card, keys: IssuerKeys, amount_fen: int) -> LoadResult:
    """INITIALIZE FOR LOAD, MAC2 from the issuer, CREDIT FOR LOAD; asserts 9000."""
    init = init_load(card, amount_fen)
    d, t = date_time()
    mac2 = issuer.load_mac2(keys, ASN, init, amount_fen, TERMINAL_ID, d, t)
    tac = ok(card, credit_for_load(CreditForLoadRequest(d, t, mac2)))
    return LoadResult(init, d, t, mac2, tac)


def load_tac_ok(keys: IssuerKeys, result: LoadResult, amount_fen: int) -> bool:
    return issuer.load_tac_ok(
        keys, ASN, result.init.balance_fen + amount_fen, result.init.online_counter,
        pboc.Load(amount_fen, TERMINAL_ID), result.date_bcd, result.time_bcd, result.tac,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PurchaseStart:
    init: InitPurchaseResponse
    sam: SamInitResponse
    date_bcd: bytes
    time_bcd: bytes

    def debit_command(self, mac1: bytes | None = None) -> CommandApdu:
        return debit_for_purchase(
            DebitRequest(self.sam.terminal_serial, self.date_bcd, self.time_bcd,
                         self.sam.mac1 if mac1 is None else mac1)
        )  # fmt: skip

    def purchase(self, amount_fen: int) -> pboc.Purchase:
        return pboc.Purchase(
            amount_fen, TERMINAL_ID, self.sam.terminal_serial, self.date_bcd, self.time_bcd
        )


def init_purchase(card: Card, amount_fen: int) -> InitPurchaseResponse:
    return InitPurchaseResponse.decode(
        ok(card, initialize_for_purchase(InitRequest(KEY_INDEX, amount_fen, TERMINAL_ID)))
    )


def start_purchase(
    card: Card, psam: Card, amount_fen: int, issuer_factor: bytes | None = None
) -> PurchaseStart:
    """INITIALIZE FOR PURCHASE on the card, INIT SAM FOR PURCHASE on the PSAM."""
    init = init_purchase(card, amount_fen)
    d, t = date_time()
    request = SamInitRequest(
        init.random4, init.offline_counter, amount_fen, pboc.TYPE_EP_PURCHASE, d, t,
        init.key_version, init.alg_id, ASN, issuer_factor,
    )  # fmt: skip
    sam = SamInitResponse.decode(ok(psam, sam_init_purchase(request)))
    return PurchaseStart(init, sam, d, t)


def do_purchase(
    card: Card, psam: Card, amount_fen: int, issuer_factor: bytes | None = None
) -> tuple[PurchaseStart, DebitResponse]:
    """A whole purchase; the PSAM verifies the card's MAC2. Asserts 9000 everywhere."""
    start = start_purchase(card, psam, amount_fen, issuer_factor)
    debit = DebitResponse.decode(ok(card, start.debit_command()))
    ok(psam, sam_credit_purchase(debit.mac2))
    return start, debit
