"""Fixtures of the card simulator's tests; the helpers live in cardkit.py."""

from __future__ import annotations

import pytest

from card_applet_sim.domain.runtime import Card
from paycore.issuer_keys import IssuerKeys
from tests.unit.card_applet_sim.cardkit import make_keys, psam_card, sim_card


@pytest.fixture
def keys() -> IssuerKeys:
    return make_keys()


@pytest.fixture
def sim(keys: IssuerKeys) -> Card:
    return sim_card(keys)


@pytest.fixture
def psam(keys: IssuerKeys) -> Card:
    return psam_card(keys)
