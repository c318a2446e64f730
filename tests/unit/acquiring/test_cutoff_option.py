"""``nfcpay host serve --cutoff HH:MM``: parsed by the CLI, carried by ``ServeOptions`` to the
service, which dates an approval at the cut-off itself on the next business day (clearing.md
§1, Asia/Shanghai). Real store (test_handlers.py's fixtures), no sockets."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from acquiring import bootstrap
from acquiring.adapters.sql.store import SqlStore
from acquiring.cli import HostCliError, parse_cutoff
from acquiring.service import Request, decode_request
from paycore.iso8583.mac import encode_signed_message
from paycore.iso8583.message import decode_message
from tests.unit.acquiring.test_handlers import (
    TID,
    Host,
    host,
    purchase,
    signed_on,
    store,
    template_db,
)

__all__ = ["host", "signed_on", "store", "template_db"]  # fixtures used by name


@pytest.mark.parametrize(
    ("text", "expected"),
    [("00:00", time(0, 0)), ("23:00", time(23, 0)), ("07:05", time(7, 5)), ("23:59", time(23, 59))],
)
def test_cutoff_parses_hh_mm(text: str, expected: time) -> None:
    assert parse_cutoff(text) == expected


@pytest.mark.parametrize(
    "text", ["24:00", "23:60", "7:05", "0700", "23:00:00", "", "ab:cd", "-1:00"]
)
def test_a_bad_cutoff_is_one_clear_error(text: str) -> None:
    with pytest.raises(HostCliError, match="HH:MM"):
        parse_cutoff(text)


def test_serve_options_refuse_a_bad_process_count() -> None:
    with pytest.raises(ValueError, match="processes"):
        bootstrap.ServeOptions(processes=0)


@pytest.mark.parametrize(
    ("utc", "business_day"),
    [
        (datetime(2026, 3, 2, 14, 59, 59, tzinfo=UTC), "0302"),  # 22:59:59 in Shanghai
        (datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC), "0303"),  # 23:00:00: the next day's
        (datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC), "0303"),  # 23:59:59
        (datetime(2026, 3, 2, 16, 0, 0, tzinfo=UTC), "0303"),  # 00:00 on 3 March
    ],
)
def test_the_configured_cutoff_dates_an_approval_at_the_boundary(
    utc: datetime, business_day: str, signed_on: Host, store: SqlStore
) -> None:
    options = bootstrap.ServeOptions(cutoff=parse_cutoff("23:00"))
    service = bootstrap.host_service(
        store, clock=lambda: utc, random_bytes=signed_on.random_bytes, cutoff=options.cutoff
    )
    raw = encode_signed_message(signed_on.maks[TID], "0200", purchase(signed_on.next_stan()))
    request = decode_request(raw)
    assert isinstance(request, Request)
    (reply,) = service.answer_group([request])
    assert reply.message is not None
    response = decode_message(reply.message)
    assert response.fields[39] == "00"
    assert response.fields[15] == business_day
