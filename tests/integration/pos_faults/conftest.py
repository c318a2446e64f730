"""Fixtures of the fault tests: one host per test module (SQLite; ``world_any`` also on
PostgreSQL), and per test a rig: a fresh terminal, card, PSAM and fault proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.databases import DB_PARAMS, database_url
from tests.integration.pos_faults.world import Rig, World, rig, running_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("host")
    with database_url("sqlite", folder) as url, running_world(url) as w:
        yield w


@pytest.fixture(scope="module", params=DB_PARAMS)
def world_any(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("host")
    with (
        database_url(request.param, folder, schema_prefix="nfcpay_faults") as url,
        running_world(url) as w,
    ):
        yield w


@pytest.fixture
def a_rig(world: World) -> Iterator[Rig]:
    with rig(world) as r:
        yield r
