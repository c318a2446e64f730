"""A torn load (card.md §4): CREDIT FOR LOAD unanswered -> LoadTorn; the same card then proves
the credit (GET TRANSACTION PROVE 02, online counter + 1) or shows it did not happen."""

from __future__ import annotations

import random
from datetime import date, datetime

import pytest

from acquiring.domain import issuer
from card_applet_sim import bootstrap
from card_applet_sim.domain import issuance
from paycore import bcd, issuer_keys, pboc
from paycore.issuer_keys import IssuerKeys
from pos_terminal.adapters.sim_reader import LoseAnswerReader, SimReader
from pos_terminal.domain import card_flows
from pos_terminal.domain.card_flows import CardGone, LoadTorn
from pos_terminal.ports import ApduLink

TERMINAL_ID = bytes.fromhex("001122334455")
NOW = datetime(2026, 11, 22, 9, 0, 0)
INS_CREDIT_FOR_LOAD = 0x52


class PullBefore:
    """Takes the card away just before it would see INS ``ins``."""

    def __init__(self, reader: SimReader, ins: int) -> None:
        self._reader, self._ins = reader, ins

    def transmit(self, apdu: bytes) -> bytes:
        if apdu[1] == self._ins:
            self._reader.pull()
            raise CardGone("card pulled away")
        return self._reader.transmit(apdu)


def setup() -> tuple[IssuerKeys, SimReader]:
    keys = issuer_keys.generate(random.Random(3).randbytes)
    image = issuance.new_sim_image(
        keys, issuance.parse_asn("8888000000000077"), today=date(2026, 11, 22), balance_fen=1_000
    )
    sim = SimReader(bootstrap.memory_card(image, random.Random(4).randbytes))
    sim.present()
    return keys, sim


def torn_load(keys: IssuerKeys, link: ApduLink, sim: SimReader) -> LoadTorn:
    started = card_flows.begin_load(sim, 2_500, TERMINAL_ID)
    date_bcd, time_bcd = bcd.date_time(NOW)
    mac2 = issuer.load_mac2(keys, started.asn, started.init, 2_500, TERMINAL_ID, date_bcd, time_bcd)
    with pytest.raises(LoadTorn) as torn:
        card_flows.finish_load(link, started, date_bcd, time_bcd, mac2)
    return torn.value


def test_the_card_proves_a_credit_whose_answer_was_lost() -> None:
    keys, sim = setup()
    torn = torn_load(keys, LoseAnswerReader(sim, INS_CREDIT_FOR_LOAD), sim)
    sim.present()
    done = card_flows.recover_load(sim, torn)
    assert done is not None and done.balance_after_fen == 3_500
    load = pboc.Load(2_500, TERMINAL_ID)
    assert issuer.load_tac_ok(
        keys, done.asn, 3_500, done.counter, load, done.date_bcd, done.time_bcd, done.tac
    )
    assert card_flows.read_card(sim).balance_fen == 3_500


def test_a_credit_that_never_reached_the_card_is_not_proven() -> None:
    keys, sim = setup()
    torn = torn_load(keys, PullBefore(sim, INS_CREDIT_FOR_LOAD), sim)
    assert isinstance(torn, CardGone)  # callers that only know CardGone still catch it
    sim.present()
    assert card_flows.recover_load(sim, torn) is None
    assert card_flows.read_card(sim).balance_fen == 1_000
