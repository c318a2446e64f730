"""Every message of host_protocol.md §5 and every response code path of ``acquiring.service``,
message bytes in, message bytes out, on the real capture store: a SQLite file per test, copied
from a template migrated and registered once per session. No sockets (the wire is tested in
tests/integration/acquiring/test_tcp_server.py)."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select

from acquiring.adapters.keyvault import KeyVault
from acquiring.adapters.sql import schema
from acquiring.adapters.sql.store import SqlStore
from acquiring.domain.errors import DuplicateRecord
from acquiring.domain.model import (
    CardAccount,
    CardStatus,
    Issuer,
    Merchant,
    MerchantStatus,
    TacVerdict,
    Terminal,
    TerminalStatus,
    TxnKey,
)
from acquiring.ports import HostUnitOfWork, Store
from acquiring.service import CLOSE, Reply, answer, decode_request
from paycore import bcd, pboc
from paycore.iso8583.fields import (
    EpurseData,
    Field60,
    Field61,
    SettlementTotals,
    decode_epurse_data,
    decode_field60,
    decode_settlement_totals,
    encode_batch_count,
    encode_epurse_data,
    encode_field60,
    encode_field61,
    encode_settlement_totals,
)
from paycore.iso8583.mac import (
    decode_working_keys,
    encode_signed_message,
    key_check_value,
    verify_message_mac,
)
from paycore.iso8583.message import FieldValue, Message, decode_message, encode_message
from paycore.issuer_keys import IssuerKeys

VAULT_KEY = bytes(range(32))
TMK = bytes.fromhex("CA5D92598DCA48CE8A4C76361A9269E9")
TMK2 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
MID = "898310048990001"
MID_SUSPENDED = "898310048990002"
MID_LIMITED = "898310048990003"
TID = "T0000001"
TID_SUSPENDED = "T0000002"
TID_OF_SUSPENDED_MERCHANT = "T0000003"
TID_LIMITED = "T0000004"
TID_UNKNOWN = "T9999999"
ASN = "8888000000000001"
ASN2 = "8888000000000002"
ASN_HOT = "8888000000000003"
ASN_TIGHT = "8888000000000004"  # daily limits 5,000 fen / 2 purchases
ASN_UNKNOWN = "8888000000000099"
ISSUER = "ISS1"
KEYS = IssuerKeys(
    1,
    bytes.fromhex("11223344556677888877665544332211"),
    bytes.fromhex("3F013F013F013F013F013F013F013F01"),
    bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
    None,
)
PSAM_TID = bytes.fromhex("001122334455")
#: 17:30 UTC on 1 March is 01:30 on 2 March in Shanghai: the business date is 2 March.
NOW = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)
CARD_TIME = datetime(2026, 3, 2, 1, 29, 50)  # the terminal's local clock (DF09)
RANDOM4 = bytes.fromhex("11223344")
DAY = date(2026, 1, 5)


# --- fixtures ---------------------------------------------------------------------------------


def _register(store: SqlStore) -> None:
    with store.admin() as uow:
        uow.add_issuer(Issuer(ISSUER, "Issuer One"), KEYS)
        uow.add_merchant(Merchant(MID, "Noodle House", "5814", "ACQ1", DAY))
        uow.add_merchant(
            Merchant(MID_SUSPENDED, "Closed Shop", "5999", "ACQ1", DAY, MerchantStatus.SUSPENDED)
        )
        uow.add_merchant(Merchant(MID_LIMITED, "Kiosk", "5999", "ACQ1", DAY, daily_limit_fen=3_000))
        uow.add_terminal(Terminal(TID, MID, DAY), TMK)
        uow.add_terminal(Terminal(TID_SUSPENDED, MID, DAY, TerminalStatus.SUSPENDED), TMK)
        uow.add_terminal(Terminal(TID_OF_SUSPENDED_MERCHANT, MID_SUSPENDED, DAY), TMK)
        uow.add_terminal(Terminal(TID_LIMITED, MID_LIMITED, DAY), TMK2)
        uow.add_card(CardAccount(ASN, ISSUER))
        uow.add_card(CardAccount(ASN2, ISSUER))
        uow.add_card(CardAccount(ASN_HOT, ISSUER, CardStatus.HOT))
        uow.add_card(CardAccount(ASN_TIGHT, ISSUER, daily_amount_limit_fen=5_000,
                                 daily_count_limit=2))  # fmt: skip


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "capture.db"
    store = SqlStore.open(f"sqlite:///{path}", KeyVault(VAULT_KEY), sqlite_synchronous="NORMAL")
    try:
        _register(store)
    finally:
        store.close()
    return path


@pytest.fixture
def store(template_db: Path, tmp_path: Path) -> Iterator[SqlStore]:
    path = tmp_path / "capture.db"
    for suffix in ("", "-wal"):
        if Path(f"{template_db}{suffix}").exists():
            shutil.copyfile(f"{template_db}{suffix}", f"{path}{suffix}")
    opened = SqlStore.open(
        f"sqlite:///{path}", KeyVault(VAULT_KEY), migrate=False, sqlite_synchronous="NORMAL"
    )
    try:
        yield opened
    finally:
        opened.close()


class Host:
    """Sends request messages to the service as the wire layer would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.now = NOW
        self._random = random.Random(1)
        self.maks: dict[str, bytes] = {}
        self.stan = 0
        self.cutoff = time(0, 0)

    def random_bytes(self, n: int) -> bytes:
        return self._random.randbytes(n)

    def next_stan(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    def raw(self, message: bytes) -> Reply:
        decoded = decode_request(message)
        if isinstance(decoded, Reply):
            return decoded
        return answer(self.store, decoded, self.now, self.random_bytes, cutoff=self.cutoff)

    def send(
        self, mti: str, fields: Mapping[int, FieldValue], *, signed: bool = True
    ) -> tuple[Reply, Message]:
        tid = str(fields[41])
        if signed:
            message = encode_signed_message(self.maks.get(tid, bytes(16)), mti, fields)
        else:
            message = encode_message(mti, fields)
        reply = self.raw(message)
        assert reply.message is not None, reply
        return reply, decode_message(reply.message)

    def sign_on(self, tid: str = TID, mid: str = MID, tmk: bytes = TMK) -> Message:
        fields = {11: self.next_stan(), 41: tid, 42: mid, 60: "00000001004", 63: "01"}
        _, response = self.send("0800", fields, signed=False)
        if response.fields[39] == "00":
            self.maks[tid] = decode_working_keys(tmk, response.binary(62)).mak
        return response

    def mac_ok(self, reply: Reply, tid: str = TID) -> bool:
        assert reply.message is not None
        return verify_message_mac(self.maks[tid], reply.message)


@pytest.fixture
def host(store: SqlStore) -> Host:
    return Host(store)


@pytest.fixture
def signed_on(host: Host) -> Host:
    assert host.sign_on().fields[39] == "00"
    return host


def count(store: SqlStore, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


TABLES = (
    schema.authorisations,
    schema.completions,
    schema.reversals,
    schema.exchanges,
    schema.batch_uploads,
    schema.terminal_settlements,
)


def counts(store: SqlStore) -> dict[str, int]:
    return {t.name: count(store, t) for t in TABLES}


# --- message builders ---------------------------------------------------------------------------


def f60(type_code: str, batch: int = 1, network: str = "000") -> str:
    return encode_field60(Field60(type_code, batch, network))


def purchase(
    stan: str, amount_fen: int = 1_000, *, asn: str = ASN, tid: str = TID, mid: str = MID,
    batch: int = 1, balance_fen: int = 50_000, counter: int = 5,
) -> dict[int, FieldValue]:  # fmt: skip
    epurse = EpurseData(
        asn=bytes.fromhex(asn), balance_before_fen=balance_fen, card_counter=counter,
        key_version=1, alg_id=0, transaction_type=0x06, psam_terminal_id=PSAM_TID,
    )  # fmt: skip
    return {
        2: asn, 3: "000000", 4: f"{amount_fen:012d}", 11: stan, 22: "962", 25: "91", 41: tid,
        42: mid, 49: "156", 58: encode_epurse_data(epurse), 60: f60("22", batch),
    }  # fmt: skip


def _dlk(asn: str) -> bytes:
    return pboc.card_key(KEYS.mlk, bytes.fromhex(asn))


def _dtk(asn: str) -> bytes:
    return pboc.card_key(KEYS.mtk, bytes.fromhex(asn))


def load(
    stan: str, amount_fen: int = 10_000, *, asn: str = ASN, balance_fen: int = 0,
    counter: int = 3, good_mac1: bool = True, code: str = "600000", type_code: str = "45",
) -> dict[int, FieldValue]:  # fmt: skip
    seslk = pboc.load_session_key(_dlk(asn), RANDOM4, counter)
    mac1 = pboc.load_mac1(seslk, balance_fen, pboc.Load(amount_fen, PSAM_TID))
    if not good_mac1:
        mac1 = bytes(4)
    epurse = EpurseData(
        asn=bytes.fromhex(asn), balance_before_fen=balance_fen, card_counter=counter,
        key_version=1, alg_id=0, transaction_type=0x02, psam_terminal_id=PSAM_TID, mac1=mac1,
        card_random=RANDOM4,
    )  # fmt: skip
    return {
        2: asn, 3: code, 4: f"{amount_fen:012d}", 11: stan, 22: "962", 25: "91", 41: TID,
        42: MID, 49: "156", 58: encode_epurse_data(epurse), 60: f60(type_code),
    }  # fmt: skip


def refund(
    stan: str, original: Message, amount_fen: int, *, asn: str = ASN, balance_fen: int = 0,
    original_stan: int | None = None,
) -> dict[int, FieldValue]:  # fmt: skip
    fields = load(stan, amount_fen, asn=asn, balance_fen=balance_fen, code="200000",
                  type_code="25")  # fmt: skip
    trace = int(original.text(11)) if original_stan is None else original_stan
    fields[37] = original.text(37)
    fields[61] = encode_field61(Field61(1, trace, original.text(15)))
    return fields


def completion(
    request: Mapping[int, FieldValue], response: Message, *, amount_fen: int | None = None,
    good_tac: bool = True, serial: int = 7,
) -> dict[int, FieldValue]:  # fmt: skip
    """The 0220 of an approved 0200, with the TAC the card would compute."""
    asn = str(request[2])
    amount = int(str(request[4])) if amount_fen is None else amount_fen
    date_bcd, time_bcd = bcd.date_time(CARD_TIME)
    sent = decode_epurse_data(cast(bytes, request[58]))
    assert sent.card_counter is not None and sent.balance_before_fen is not None
    if request[3] == "000000":
        tac = pboc.purchase_tac(
            _dtk(asn), pboc.Purchase(amount, PSAM_TID, serial, date_bcd, time_bcd)
        )
        tx_type = 0x06
    else:
        ld = pboc.Load(amount, PSAM_TID)
        # a load's MAC2 date is the host's (DF09 of the 0210): the card's TAC uses it too
        host_dt = decode_epurse_data(response.binary(58)).date_time_bcd
        assert host_dt is not None
        date_bcd, time_bcd = host_dt[:4], host_dt[4:]
        new_balance = sent.balance_before_fen + amount
        tac = pboc.load_tac(_dtk(asn), new_balance, sent.card_counter, ld, date_bcd, time_bcd)
        tx_type, serial = 0x02, 0
    if not good_tac:
        tac = bytes(a ^ 0xFF for a in tac)
    epurse = EpurseData(
        asn=bytes.fromhex(asn), card_counter=sent.card_counter, transaction_type=tx_type,
        psam_terminal_id=PSAM_TID, terminal_serial=serial, date_time_bcd=date_bcd + time_bcd,
        tac=tac,
    )  # fmt: skip
    fields = {n: request[n] for n in (2, 3, 11, 25, 41, 42, 49, 60)}
    fields[4] = f"{amount:012d}"
    fields[37] = response.text(37)
    fields[58] = encode_epurse_data(epurse)
    return fields


def reversal(request: Mapping[int, FieldValue], reason: str = "98") -> dict[int, FieldValue]:
    return {**request, 39: reason}


def settlement(stan: str, totals: SettlementTotals, batch: int = 1) -> dict[int, FieldValue]:
    return {
        11: stan, 41: TID, 42: MID, 48: encode_settlement_totals(totals), 49: "156",
        60: f60("00", batch, "201"), 63: "01",
    }  # fmt: skip


def approved_purchase(
    host: Host, amount_fen: int = 1_000, **kw: Any
) -> tuple[dict[int, FieldValue], Message]:
    request = purchase(host.next_stan(), amount_fen, **kw)
    _reply, response = host.send("0200", request)
    assert response.fields[39] == "00", response
    return request, response


# --- sign-on, echo, sign-off ------------------------------------------------------------------


def test_sign_on_issues_working_keys_under_the_tmk(host: Host, store: SqlStore) -> None:
    response = host.sign_on()
    assert response.mti == "0810"
    assert set(response.fields) == {11, 12, 13, 37, 39, 41, 42, 60, 62}
    assert response.fields[39] == "00"
    keys = decode_working_keys(TMK, response.binary(62))  # every KCV checked
    assert len({keys.pik, keys.mak, keys.tdk}) == 3
    assert key_check_value(keys.mak) == response.binary(62)[36:40]
    assert decode_field60(response.text(60)).batch_number == 1
    assert (response.text(12), response.text(13)) == ("013000", "0302")  # Shanghai clock
    with store.unit() as uow:
        stored = uow.get_terminal_keys(TID)
        terminal = uow.get_terminal(TID)
    assert stored is not None and stored.mak == keys.mak
    assert terminal is not None and terminal.signed_on
    second = decode_working_keys(TMK, host.sign_on().binary(62))
    assert second.mak != keys.mak  # a new MAK per sign-on


@pytest.mark.parametrize(
    ("tid", "mid", "code"),
    [
        (TID_UNKNOWN, MID, "97"),
        (TID_SUSPENDED, MID, "58"),
        (TID_OF_SUSPENDED_MERCHANT, MID_SUSPENDED, "03"),
        (TID, MID_SUSPENDED, "03"),  # not the terminal's merchant
    ],
)
def test_sign_on_refused(host: Host, store: SqlStore, tid: str, mid: str, code: str) -> None:
    response = host.sign_on(tid, mid)
    assert response.fields[39] == code
    assert 62 not in response.fields
    with store.unit() as uow:
        terminal = uow.get_terminal(tid)
    assert terminal is None or not terminal.signed_on


def test_echo_and_sign_off(signed_on: Host) -> None:
    fields = {41: TID, 42: MID, 60: f60("00", 1, "301")}
    _, response = signed_on.send("0820", fields, signed=False)
    assert response.mti == "0830"
    assert set(response.fields) == {12, 13, 39, 41, 42, 60}
    assert response.fields[39] == "00"
    _, unknown = signed_on.send("0820", {**fields, 41: TID_UNKNOWN}, signed=False)
    assert unknown.fields[39] == "97"
    off = {11: signed_on.next_stan(), 41: TID, 42: MID, 60: f60("00", 1, "002")}
    _, response = signed_on.send("0820", off, signed=False)
    assert set(response.fields) == {11, 39, 41, 42, 60}
    assert response.fields[39] == "00"
    reply, response = signed_on.send("0200", purchase(signed_on.next_stan()))
    assert response.fields[39] == "A0" and reply.sign_on_again


# --- purchase authorisation -------------------------------------------------------------------


def test_purchase_approved_signed_and_stored(signed_on: Host, store: SqlStore) -> None:
    request = purchase(signed_on.next_stan(), 1_250)
    reply, response = signed_on.send("0200", request)
    assert response.mti == "0210"
    assert set(response.fields) == {2, 3, 4, 11, 12, 13, 15, 25, 37, 38, 39, 41, 42, 49, 60, 64}
    assert response.fields[39] == "00" and not reply.sign_on_again
    assert signed_on.mac_ok(reply)
    assert response.text(15) == "0302"  # Asia/Shanghai business date, not UTC's 0301
    for n in (2, 3, 4, 11, 25, 41, 42, 49, 60):
        assert response.fields[n] == request[n]
    with store.unit() as uow:
        auth = uow.get_authorisation(TxnKey(TID, 1, int(str(request[11]))))
    assert auth is not None and auth.approved
    assert auth.rrn == response.text(37) and auth.auth_code == response.text(38)
    assert auth.business_date == date(2026, 3, 2) and auth.amount_fen == 1_250


def test_a_later_cut_off_moves_the_business_date(signed_on: Host, store: SqlStore) -> None:
    signed_on.now = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 23:30 on 2 March in Shanghai
    _, response = signed_on.send("0200", purchase(signed_on.next_stan()))
    assert response.text(15) == "0302"
    signed_on.cutoff = time(23, 0)  # the business day ends at 23:00
    _, response = signed_on.send("0200", purchase(signed_on.next_stan()))
    assert response.text(15) == "0303"


def test_bad_mac_answers_a0_sign_on_again_nothing_stored(signed_on: Host, store: SqlStore) -> None:
    before = counts(store)
    message = bytearray(encode_signed_message(signed_on.maks[TID], "0200",
                                              purchase(signed_on.next_stan())))  # fmt: skip
    message[-1] ^= 0x01
    reply = signed_on.raw(bytes(message))
    assert reply.code == "A0" and reply.sign_on_again
    assert reply.message is not None and decode_message(reply.message).mti == "0210"
    assert counts(store) == before


def test_purchase_before_sign_on_is_a0(host: Host, store: SqlStore) -> None:
    reply, response = host.send("0200", purchase("000001"))
    assert response.fields[39] == "A0" and reply.sign_on_again
    assert counts(store)["authorisations"] == 0


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"amount_fen": 0}, "13"),
        ({"amount_fen": 50_000}, "13"),
        ({"asn": ASN_UNKNOWN}, "14"),
        ({"asn": ASN_HOT}, "62"),
        ({"asn": ASN_TIGHT, "amount_fen": 5_001}, "61"),
    ],
)
def test_purchase_declines_are_stored(
    signed_on: Host, store: SqlStore, changes: dict[str, Any], code: str
) -> None:
    reply, response = signed_on.send("0200", purchase(signed_on.next_stan(), **changes))
    assert response.fields[39] == code
    assert 38 not in response.fields and 37 in response.fields
    assert signed_on.mac_ok(reply)
    with store.unit() as uow:
        auth = uow.get_authorisation(TxnKey(TID, 1, signed_on.stan))
    assert auth is not None and auth.response_code.value == code


def test_terminal_and_merchant_refusals_store_nothing(signed_on: Host, store: SqlStore) -> None:
    _, response = signed_on.send("0200", purchase(signed_on.next_stan(), mid=MID_SUSPENDED))
    assert response.fields[39] == "03"
    _, response = signed_on.send("0200", purchase(signed_on.next_stan(), tid=TID_UNKNOWN))
    assert response.fields[39] == "97" and 64 not in response.fields
    assert counts(store)["authorisations"] == 0


def test_card_daily_count_and_merchant_daily_limit(signed_on: Host, store: SqlStore) -> None:
    for _ in range(2):
        approved_purchase(signed_on, 100, asn=ASN_TIGHT)
    _, response = signed_on.send("0200", purchase(signed_on.next_stan(), 100, asn=ASN_TIGHT))
    assert response.fields[39] == "65"
    assert signed_on.sign_on(TID_LIMITED, MID_LIMITED, TMK2).fields[39] == "00"
    for amount_fen, code in ((2_000, "00"), (1_001, "61"), (1_000, "00")):  # 3,000 fen a day
        kiosk = purchase(signed_on.next_stan(), amount_fen, tid=TID_LIMITED, mid=MID_LIMITED)
        _, response = signed_on.send("0200", kiosk)
        assert response.fields[39] == code, amount_fen


def test_stale_batch_answers_12_and_sign_on_again(signed_on: Host) -> None:
    reply, response = signed_on.send("0200", purchase(signed_on.next_stan(), batch=7))
    assert response.fields[39] == "12" and reply.sign_on_again


# --- duplicates (§6) --------------------------------------------------------------------------


def test_retransmission_replays_byte_identical(signed_on: Host, store: SqlStore) -> None:
    request = purchase(signed_on.next_stan())
    first, _ = signed_on.send("0200", request)
    after_first = counts(store)
    signed_on.now = NOW + timedelta(seconds=30)  # a later clock changes nothing in a replay
    again, _ = signed_on.send("0200", request)
    assert again.message == first.message
    assert counts(store) == after_first


def test_same_key_other_content_is_94(signed_on: Host, store: SqlStore) -> None:
    request = purchase(signed_on.next_stan(), 1_000)
    signed_on.send("0200", request)
    after_first = counts(store)
    reply, response = signed_on.send("0200", {**request, 4: f"{2_000:012d}"})
    assert response.fields[39] == "94"
    assert signed_on.mac_ok(reply)
    assert counts(store) == after_first


def test_replay_after_a_new_sign_on_carries_the_new_mac(signed_on: Host) -> None:
    request = purchase(signed_on.next_stan())
    _, first = signed_on.send("0200", request)
    signed_on.sign_on()  # a new MAK
    reply, again = signed_on.send("0200", request)
    assert again.fields == {**first.fields, 64: again.fields[64]}
    assert signed_on.mac_ok(reply)


def test_lost_race_runs_again_and_replays(signed_on: Host, store: SqlStore) -> None:
    request = purchase(signed_on.next_stan())
    first, _ = signed_on.send("0200", request)

    class RacingStore:
        """The first unit raises DuplicateRecord, as a twin's commit would make it."""

        def __init__(self) -> None:
            self.units = 0

        def unit(self) -> AbstractContextManager[HostUnitOfWork]:
            self.units += 1
            if self.units == 1:
                raise DuplicateRecord("already stored (race)")
            return store.unit()

    racing = RacingStore()
    decoded = decode_request(encode_signed_message(signed_on.maks[TID], "0200", request))
    assert not isinstance(decoded, Reply)
    reply = answer(cast(Store, racing), decoded, NOW, signed_on.random_bytes)
    assert racing.units == 2 and reply.message == first.message


# --- completion ---------------------------------------------------------------------------------


def test_completion_with_a_good_tac(signed_on: Host, store: SqlStore) -> None:
    request, response = approved_purchase(signed_on, 1_250)
    signed_on.now = NOW + timedelta(days=1)  # completes the next day: inherits 2 March
    reply, done = signed_on.send("0220", completion(request, response))
    assert done.mti == "0230"
    assert set(done.fields) == {2, 3, 4, 11, 15, 25, 37, 39, 41, 42, 49, 60, 64}
    assert done.fields[39] == "00" and done.text(15) == "0302"
    assert done.text(37) == response.text(37)
    assert signed_on.mac_ok(reply)
    with store.unit() as uow:
        stored = uow.get_completion(TxnKey(TID, 1, int(str(request[11]))))
    assert stored is not None and stored.tac_verdict is TacVerdict.OK
    assert stored.business_date == date(2026, 3, 2) and stored.terminal_datetime == CARD_TIME


def test_bad_tac_is_stored_flagged_and_answered_00(signed_on: Host, store: SqlStore) -> None:
    request, response = approved_purchase(signed_on)
    _, done = signed_on.send("0220", completion(request, response, good_tac=False))
    assert done.fields[39] == "00"  # the card was debited
    with store.unit() as uow:
        stored = uow.get_completion(TxnKey(TID, 1, int(str(request[11]))))
    assert stored is not None and stored.tac_verdict is TacVerdict.BAD


def test_completion_retransmitted_applies_once(signed_on: Host, store: SqlStore) -> None:
    request, response = approved_purchase(signed_on)
    first, _ = signed_on.send("0220", completion(request, response))
    after = counts(store)
    again, _ = signed_on.send("0220", completion(request, response))
    assert again.message == first.message and counts(store) == after
    _, other = signed_on.send("0220", completion(request, response, amount_fen=999))
    assert other.fields[39] == "94" and counts(store) == after


def test_completion_without_its_authorisation_is_25(signed_on: Host, store: SqlStore) -> None:
    request, response = approved_purchase(signed_on)
    orphan = completion(request, response)
    orphan[11] = "000777"
    _, done = signed_on.send("0220", orphan)
    assert done.fields[39] == "25"
    wrong_rrn = {**completion(request, response), 37: "999999999999"}
    _, done = signed_on.send("0220", wrong_rrn)
    assert done.fields[39] == "25"
    declined_request = purchase(signed_on.next_stan(), asn=ASN_HOT)
    _, declined = signed_on.send("0200", declined_request)
    _, done = signed_on.send("0220", completion(declined_request, declined))
    assert done.fields[39] == "25"
    assert counts(store)["completions"] == 0


# --- load and refund ----------------------------------------------------------------------------


def test_load_returns_mac2_and_its_completion_verifies(signed_on: Host, store: SqlStore) -> None:
    request = load(signed_on.next_stan(), 10_000, balance_fen=500, counter=3)
    reply, response = signed_on.send("0200", request)
    assert response.fields[39] == "00" and signed_on.mac_ok(reply)
    assert set(response.fields) >= {12, 13, 15, 37, 38, 58, 64}
    data = decode_epurse_data(response.binary(58), None)
    assert data.mac2 is not None and data.date_time_bcd is not None
    assert data.date_time_bcd.hex() == "20260302013000"  # the host's Shanghai time
    seslk = pboc.load_session_key(_dlk(ASN), RANDOM4, 3)
    expected = pboc.load_mac2(seslk, pboc.Load(10_000, PSAM_TID), bytes.fromhex("20260302"),
                              bytes.fromhex("013000"))  # fmt: skip
    assert data.mac2 == expected
    _, done = signed_on.send("0220", completion(request, response))
    assert done.fields[39] == "00"
    with store.unit() as uow:
        stored = uow.get_completion(TxnKey(TID, 1, int(str(request[11]))))
    assert stored is not None and stored.tac_verdict is TacVerdict.OK


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"good_mac1": False}, "05"),
        ({"balance_fen": 95_000, "amount_fen": 5_001}, "13"),  # over the card's ceiling
        ({"amount_fen": 100_001}, "13"),
        ({"asn": ASN_HOT}, "62"),
    ],
)
def test_load_refused(signed_on: Host, changes: dict[str, Any], code: str) -> None:
    _reply, response = signed_on.send("0200", load(signed_on.next_stan(), **changes))
    assert response.fields[39] == code
    assert 58 not in response.fields and 38 not in response.fields


def test_refunds_up_to_the_original_then_64(signed_on: Host, store: SqlStore) -> None:
    _, original = approved_purchase(signed_on, 3_000)
    request = refund(signed_on.next_stan(), original, 2_000)
    reply, response = signed_on.send("0200", request)
    assert response.fields[39] == "00" and signed_on.mac_ok(reply)
    assert decode_epurse_data(response.binary(58)).mac2 is not None
    _, done = signed_on.send("0220", completion(request, response))
    assert done.fields[39] == "00"
    _, over = signed_on.send("0200", refund(signed_on.next_stan(), original, 1_001))
    assert over.fields[39] == "64"
    _, rest = signed_on.send("0200", refund(signed_on.next_stan(), original, 1_000))
    assert rest.fields[39] == "00"
    with store.unit() as uow:
        assert uow.refunded_total_fen(original.text(37)) == 3_000


def test_refund_of_what_was_not_paid_here(signed_on: Host) -> None:
    _, original = approved_purchase(signed_on, 3_000)
    _, other_card = signed_on.send("0200", refund(signed_on.next_stan(), original, 100, asn=ASN2))
    assert other_card.fields[39] == "12"
    unknown = {**refund(signed_on.next_stan(), original, 100), 37: "000000099999"}
    _, response = signed_on.send("0200", unknown)
    assert response.fields[39] == "25"
    bad61 = refund(signed_on.next_stan(), original, 100, original_stan=999)
    _, response = signed_on.send("0200", bad61)
    assert response.fields[39] == "25"


# --- reversal -----------------------------------------------------------------------------------


def test_reversal_applies_once_and_frees_the_daily_limit(signed_on: Host, store: SqlStore) -> None:
    request, _ = approved_purchase(signed_on, 4_000, asn=ASN_TIGHT)
    reply, response = signed_on.send("0400", reversal(request))
    assert response.mti == "0410"
    assert set(response.fields) >= {15, 39, 64} and response.fields[39] == "00"
    assert response.text(15) == "0302" and signed_on.mac_ok(reply)
    after = counts(store)
    again, _ = signed_on.send("0400", reversal(request))
    assert again.message == reply.message and counts(store) == after
    assert after["reversals"] == 1
    _, response = signed_on.send("0200", purchase(signed_on.next_stan(), 4_000, asn=ASN_TIGHT))
    assert response.fields[39] == "00"  # the reversed 4,000 no longer counts


def test_reversal_of_an_unknown_original_is_25_and_stores_nothing(
    signed_on: Host, store: SqlStore
) -> None:
    before = counts(store)
    _, response = signed_on.send("0400", reversal(purchase("000555")))
    assert response.fields[39] == "25"
    assert counts(store) == before


def test_reversal_refusals(signed_on: Host, store: SqlStore) -> None:
    request, response = approved_purchase(signed_on, 1_000)
    _, differs = signed_on.send("0400", reversal({**request, 4: f"{999:012d}"}))
    assert differs.fields[39] == "64"
    signed_on.send("0220", completion(request, response))
    _, after_completion = signed_on.send("0400", reversal(request))
    assert after_completion.fields[39] == "12"
    assert counts(store)["reversals"] == 0


def test_completion_of_a_reversed_authorisation_is_25(signed_on: Host) -> None:
    request, response = approved_purchase(signed_on)
    signed_on.send("0400", reversal(request, "06"))
    _, done = signed_on.send("0220", completion(request, response))
    assert done.fields[39] == "25"


# --- settlement and batch upload ----------------------------------------------------------------


def _totals(purchases: tuple[int, int], loads: tuple[int, int] = (0, 0)) -> SettlementTotals:
    return SettlementTotals(purchases[0], purchases[1], 0, 0, loads[0], loads[1])


def test_settlement_balanced_closes_the_batch(signed_on: Host, store: SqlStore) -> None:
    for amount in (1_000, 2_500):
        request, response = approved_purchase(signed_on, amount)
        signed_on.send("0220", completion(request, response))
    reversed_request, _ = approved_purchase(signed_on, 700)  # reversed: not counted
    signed_on.send("0400", reversal(reversed_request))
    approved_purchase(signed_on, 800)  # never completed: not counted
    request = settlement(signed_on.next_stan(), _totals((3_500, 2)))
    reply, response = signed_on.send("0500", request, signed=False)
    assert response.mti == "0510"
    assert set(response.fields) == {11, 12, 13, 15, 37, 39, 41, 42, 48, 60}
    answered = decode_settlement_totals(response.text(48))
    assert answered.balanced and response.text(48)[30] == "1" and response.text(48)[61] == "1"
    with store.unit() as uow:
        terminal = uow.get_terminal(TID)
    assert terminal is not None and terminal.batch_no == 2
    again, _ = signed_on.send("0500", request, signed=False)
    assert again.message == reply.message  # replayed, not settled twice
    assert counts(store)["terminal_settlements"] == 1
    _, old_batch = signed_on.send("0200", purchase(signed_on.next_stan()))
    assert old_batch.fields[39] == "12"
    assert signed_on.sign_on().text(60)[2:8] == "000002"
    _, new_batch = signed_on.send("0200", purchase(signed_on.next_stan(), batch=2))
    assert new_batch.fields[39] == "00"


def test_settlement_not_balanced(signed_on: Host) -> None:
    request, response = approved_purchase(signed_on, 1_000)
    signed_on.send("0220", completion(request, response))
    totals = _totals((1_000, 1), loads=(5_000, 1))  # the host saw no load
    _, response = signed_on.send("0500", settlement(signed_on.next_stan(), totals), signed=False)
    assert response.fields[39] == "00"
    text = response.text(48)
    assert (text[30], text[61]) == ("1", "2")
    assert text[:30] == encode_settlement_totals(totals)[:30]


def test_settlement_of_another_batch_is_12(signed_on: Host, store: SqlStore) -> None:
    fields = settlement(signed_on.next_stan(), _totals((0, 0)), batch=5)
    _, response = signed_on.send("0500", fields, signed=False)
    assert response.fields[39] == "12"
    assert counts(store)["terminal_settlements"] == 0


def test_batch_upload_and_its_end(signed_on: Host, store: SqlStore) -> None:
    request, response = approved_purchase(signed_on)
    done = completion(request, response)
    upload = {**{n: done[n] for n in (2, 3, 4, 11, 25, 37, 41, 42, 49, 58)},
              60: f60("00", 1, "201")}  # fmt: skip
    _, answer_ = signed_on.send("0320", upload, signed=False)
    assert answer_.mti == "0330" and answer_.fields[39] == "00"
    assert set(answer_.fields) == {11, 39, 41, 42, 60}
    end = {11: signed_on.next_stan(), 41: TID, 42: MID, 48: encode_batch_count(1),
           60: f60("00", 1, "202")}  # fmt: skip
    _, answer_ = signed_on.send("0320", end, signed=False)
    assert answer_.fields[39] == "00"
    assert counts(store)["batch_uploads"] == 1


def test_settlement_needs_a_signed_on_terminal(host: Host) -> None:
    reply, response = host.send("0500", settlement("000001", _totals((0, 0))), signed=False)
    assert response.fields[39] == "A0" and reply.sign_on_again


# --- bad input: 30 or close -------------------------------------------------------------------


def test_garbage_and_unknown_mtis_close(host: Host) -> None:
    assert host.raw(b"") == CLOSE
    assert host.raw(b"\xff\xff\x00") == CLOSE
    assert host.raw(encode_message("0100", {11: "000001", 41: TID})) == CLOSE
    assert host.raw(encode_message("0210", {11: "000001", 39: "00"})) == CLOSE


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({3: "123456"}, "unknown processing code"),
        ({25: "00"}, "service condition"),
        ({49: "840"}, "currency"),
        ({2: ASN2}, "field 2 is not DF01"),
        ({11: "000000"}, "STAN 0"),
        ({60: f60("45")}, "60.1 of a load on a purchase"),
        ({41: "T 000001"}, "TID with a space"),
        ({58: b"\xdf\x01\x08" + bytes.fromhex(ASN)}, "mandatory DF tags missing"),
        ({58: b"\xdf\x01"}, "truncated TLV"),
    ],
)
def test_format_errors_answer_30_with_echoes(
    signed_on: Host, store: SqlStore, change: dict[int, FieldValue], why: str
) -> None:
    fields = {**purchase("000042"), **change}
    _reply, response = signed_on.send("0200", fields)
    assert response.mti == "0210" and response.fields[39] == "30", why
    assert response.fields.get(11) == fields[11]
    assert counts(store)["authorisations"] == 0


def test_undecodable_message_still_answers_30_with_what_could_be_read(host: Host) -> None:
    fields = purchase("000042")
    good = encode_message("0200", fields)
    # field 58 says 250 bytes, fewer follow: fields 2..49 before it are echoed
    cut = len(encode_message("0200", {n: v for n, v in fields.items() if n < 58}))
    broken = good[:cut] + bytes.fromhex("0250") + good[cut + 2 :]
    reply = host.raw(broken)
    assert reply.code == "30" and reply.message is not None
    response = decode_message(reply.message)
    assert response.mti == "0210"
    assert response.fields[11] == "000042" and response.fields[41] == TID
    bad_bcd = bytearray(good)
    bad_bcd[2 + 8 + 1] = 0xAB  # field 2's first digits are not BCD
    reply = host.raw(bytes(bad_bcd))
    assert reply.code == "30"
    trailing = host.raw(good + b"\x00")
    assert trailing.code == "30"


def test_missing_field_answers_30(signed_on: Host) -> None:
    fields = purchase("000042")
    del fields[4]
    _, response = signed_on.send("0200", fields)
    assert response.fields[39] == "30"


# --- internal errors: 96, nothing stored ----------------------------------------------------


class FailingStore:
    """A store whose units of work raise inside ``method`` (after earlier writes)."""

    def __init__(self, store: SqlStore, method: str) -> None:
        self.store = store
        self.method = method

    @contextmanager
    def unit(self) -> Iterator[HostUnitOfWork]:
        with self.store.unit() as uow:
            yield cast(HostUnitOfWork, _Failing(uow, self.method))


class _Failing:
    def __init__(self, uow: HostUnitOfWork, method: str) -> None:
        self._uow = uow
        self._method = method

    def __getattr__(self, name: str) -> Any:
        if name == self._method:
            raise RuntimeError("the database went away")
        return getattr(self._uow, name)


@pytest.mark.parametrize("method", ["put_exchange", "card_day_totals", "next_rrn"])
def test_internal_error_is_96_and_nothing_stored(
    signed_on: Host, store: SqlStore, method: str
) -> None:
    before = counts(store)
    signed_on.store = cast(Store, FailingStore(store, method))
    _reply, response = signed_on.send("0200", purchase(signed_on.next_stan()))
    assert response.fields[39] == "96" and 64 not in response.fields
    assert counts(store) == before
    signed_on.store = store
    _, response = signed_on.send("0200", purchase(signed_on.next_stan()))
    assert response.fields[39] == "00"
