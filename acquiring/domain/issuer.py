"""Issuer services the host performs (card.md §3): load MAC1 check and MAC2, TAC verification.
Pure: keys and values in, verdicts out. MACs are compared in constant time."""

from __future__ import annotations

import hmac

from paycore import pboc
from paycore.issuer_keys import IssuerKeys
from paycore.purse import InitLoadResponse


class LoadRefused(Exception):  # noqa: N818 - a verdict
    """The card's load MAC1 does not verify (wrong card keys or a forged request)."""


def load_mac2(
    keys: IssuerKeys,
    asn: bytes,
    init: InitLoadResponse,
    amount_fen: int,
    terminal_id: bytes,
    date_bcd: bytes,
    time_bcd: bytes,
) -> bytes:
    dlk = pboc.card_key(keys.mlk, asn, keys.issuer_factor)
    seslk = pboc.load_session_key(dlk, init.random4, init.online_counter)
    load = pboc.Load(amount_fen, terminal_id)
    if not hmac.compare_digest(pboc.load_mac1(seslk, init.balance_fen, load), init.mac1):
        raise LoadRefused("load MAC1 does not verify")
    return pboc.load_mac2(seslk, load, date_bcd, time_bcd)


def purchase_tac_ok(keys: IssuerKeys, asn: bytes, purchase: pboc.Purchase, tac: bytes) -> bool:
    dtk = pboc.card_key(keys.mtk, asn, keys.issuer_factor)
    return hmac.compare_digest(pboc.purchase_tac(dtk, purchase), tac)


def load_tac_ok(
    keys: IssuerKeys,
    asn: bytes,
    new_balance_fen: int,
    online_counter: int,
    load: pboc.Load,
    date_bcd: bytes,
    time_bcd: bytes,
    tac: bytes,
) -> bool:
    dtk = pboc.card_key(keys.mtk, asn, keys.issuer_factor)
    expected = pboc.load_tac(dtk, new_balance_fen, online_counter, load, date_bcd, time_bcd)
    return hmac.compare_digest(expected, tac)
