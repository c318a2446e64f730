"""Group commit (ADR 0004): ``answer_group`` runs several requests in one unit of work, a
savepoint each, and commits once. On the real store (a SQLite file per test, the fixtures and
message builders of test_handlers.py); the wire's commit loop is tested over TCP in
tests/integration/acquiring/test_tcp_server.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from acquiring.adapters.sql import schema
from acquiring.adapters.sql.store import SqlStore
from acquiring.domain.model import Authorisation, ExchangeRecord, TxnKey
from acquiring.ports import AdminUnitOfWork, HostUnitOfWork
from acquiring.service import Reply, Request, answer_group, decode_request
from paycore.iso8583.mac import encode_signed_message
from paycore.iso8583.message import FieldValue, decode_message
from tests.unit.acquiring.test_handlers import (  # the shared fixtures and builders
    ASN,
    ASN2,
    MID,
    NOW,
    TID,
    Host,
    completion,
    count,
    counts,
    host,
    purchase,
    signed_on,
    store,
    template_db,
)

__all__ = ["host", "signed_on", "store", "template_db"]  # fixtures used by name


class InjectedError(RuntimeError):
    """A bug in the middle of one request."""


class _FailingUnit:
    """A unit of work in which one card's request fails half-way: its authorisation is
    stored, then writing its exchange-log entry raises."""

    def __init__(self, inner: HostUnitOfWork, asn: str) -> None:
        self._inner = inner
        self._asn = asn
        self._armed = False

    def add_authorisation(self, authorisation: Authorisation) -> None:
        self._inner.add_authorisation(authorisation)
        self._armed = authorisation.asn == self._asn

    def put_exchange(self, record: ExchangeRecord) -> None:
        if self._armed:
            self._armed = False
            raise InjectedError("injected")
        self._inner.put_exchange(record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Store:
    """The real store, with injected failures: ``fail_asn`` (one request raises) and
    ``fail_commits`` (that many units fail at commit, after their work)."""

    def __init__(
        self,
        inner: SqlStore,
        *,
        fail_asn: str = "",
        fail_units: int = 1_000,
        fail_commits: int = 0,
    ) -> None:
        self.inner = inner
        self.fail_asn = fail_asn
        self.fail_units = fail_units  # units in which the request of ``fail_asn`` fails
        self.fail_commits = fail_commits
        self.units = 0

    @contextmanager
    def unit(self) -> Iterator[HostUnitOfWork]:
        self.units += 1
        failing = bool(self.fail_asn) and self.units <= self.fail_units
        with self.inner.unit() as uow:
            yield _FailingUnit(uow, self.fail_asn) if failing else uow
            if self.fail_commits:
                self.fail_commits -= 1
                raise OSError("injected: the commit failed")  # rolls the unit back

    def admin(self, *, readonly: bool = False) -> AbstractContextManager[AdminUnitOfWork]:
        return self.inner.admin(readonly=readonly)

    def close(self) -> None:
        self.inner.close()


def _signed(host: Host, mti: str, fields: dict[int, FieldValue]) -> Request:
    decoded = decode_request(encode_signed_message(host.maks[TID], mti, fields))
    assert isinstance(decoded, Request), decoded
    return decoded


def _group(host: Host, store: Any, requests: list[Request]) -> list[Reply]:
    return answer_group(store, requests, lambda: NOW, host.random_bytes, cutoff=host.cutoff)


def _code(reply: Reply) -> str:
    assert reply.message is not None
    return str(decode_message(reply.message).fields[39])


def test_a_group_commits_every_request_once(signed_on: Host, store: SqlStore) -> None:
    counting = _Store(store)
    requests = [_signed(signed_on, "0200", purchase(signed_on.next_stan())) for _ in range(5)]
    replies = _group(signed_on, counting, requests)
    assert [_code(r) for r in replies] == ["00"] * 5
    assert all(signed_on.mac_ok(r) for r in replies)
    assert counting.units == 1
    assert count(store, schema.authorisations) == 5
    assert count(store, schema.exchanges) == 5


def test_a_request_that_raises_gets_96_and_the_rest_of_its_group_commits(
    signed_on: Host, store: SqlStore
) -> None:
    failing = _Store(store, fail_asn=ASN2)
    first = purchase(signed_on.next_stan())
    broken = purchase(signed_on.next_stan(), asn=ASN2)
    last = purchase(signed_on.next_stan())
    replies = _group(
        signed_on, failing, [_signed(signed_on, "0200", f) for f in (first, broken, last)]
    )
    assert [_code(r) for r in replies] == ["00", "96", "00"]
    assert replies[1].message is not None and 64 not in decode_message(replies[1].message).fields
    assert failing.units == 2  # the group, then the broken request once more alone
    with store.unit() as uow:
        for fields, stored in ((first, True), (broken, False), (last, True)):
            key = TxnKey(TID, 1, int(str(fields[11])))
            assert (uow.get_authorisation(key) is not None) is stored
    # the broken one left nothing, not even its exchange-log entry: a retransmission runs it
    assert count(store, schema.exchanges) == 2
    retry = _group(signed_on, store, [_signed(signed_on, "0200", broken)])
    assert [_code(r) for r in retry] == ["00"]


def test_a_request_that_fails_only_in_its_group_succeeds_alone_after_the_commit(
    signed_on: Host, store: SqlStore
) -> None:
    """A conflict between two groups (PostgreSQL row locks) undoes one request's savepoint;
    run alone after its group's commit, it is answered normally."""
    failing = _Store(store, fail_asn=ASN2, fail_units=1)
    requests = [
        _signed(signed_on, "0200", purchase(signed_on.next_stan(), asn=asn)) for asn in (ASN, ASN2)
    ]
    replies = _group(signed_on, failing, requests)
    assert [_code(r) for r in replies] == ["00", "00"]
    assert failing.units == 2
    assert count(store, schema.authorisations) == 2
    assert count(store, schema.exchanges) == 2


def test_a_twin_in_the_same_group_is_replayed_not_applied_twice(
    signed_on: Host, store: SqlStore
) -> None:
    request = purchase(signed_on.next_stan())
    twins = _group(signed_on, store, [_signed(signed_on, "0200", request)] * 2)
    assert twins[0].message == twins[1].message and _code(twins[0]) == "00"
    assert count(store, schema.authorisations) == 1
    response = decode_message(twins[0].message or b"")
    advice = completion(request, response)
    done = _group(signed_on, store, [_signed(signed_on, "0220", advice)] * 3)
    assert {r.message for r in done} == {done[0].message} and _code(done[0]) == "00"
    assert count(store, schema.completions) == 1  # captured once
    assert count(store, schema.exchanges) == 2


def test_same_key_other_content_in_one_group_is_94(signed_on: Host, store: SqlStore) -> None:
    stan = signed_on.next_stan()
    replies = _group(
        signed_on,
        store,
        [_signed(signed_on, "0200", purchase(stan, 1_000)),
         _signed(signed_on, "0200", purchase(stan, 2_000))],
    )  # fmt: skip
    assert [_code(r) for r in replies] == ["00", "94"]
    assert count(store, schema.authorisations) == 1


def test_a_failed_commit_stores_nothing_of_the_group_and_each_is_answered_alone(
    signed_on: Host, store: SqlStore
) -> None:
    failing = _Store(store, fail_commits=1)
    before = counts(store)
    requests = [
        _signed(signed_on, "0200", purchase(signed_on.next_stan(), asn=asn)) for asn in (ASN, ASN2)
    ]
    replies = _group(signed_on, failing, requests)
    assert [_code(r) for r in replies] == ["00", "00"]
    assert failing.units == 3  # the group that failed, then one unit each
    after = counts(store)
    assert after["authorisations"] == before["authorisations"] + 2
    assert after["exchanges"] == before["exchanges"] + 2


@pytest.mark.parametrize("size", [1, 3])
def test_a_group_answers_like_units_of_one(size: int, signed_on: Host, store: SqlStore) -> None:
    """The same requests, grouped or not, get the same codes (the replies differ only by
    RRN and authorisation code, drawn afresh)."""
    requests = [
        _signed(signed_on, "0200", purchase(signed_on.next_stan(), amount, mid=mid))
        for amount, mid in ((1_000, MID), (60_000, MID), (1_000, "898310048990099"))
    ]
    codes: list[str] = []
    for start in range(0, len(requests), size):
        codes += [_code(r) for r in _group(signed_on, store, requests[start : start + size])]
    assert codes == ["00", "13", "03"]
