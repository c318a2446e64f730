"""Codecs of the wallet applet's and the PSAM's command data and responses (card.md §2, §5).

One codec serves both sides: the simulated card decodes requests and encodes responses; a
terminal encodes requests and decodes responses. Each ``decode`` checks the exact length.
"""

from __future__ import annotations

from dataclasses import dataclass

from paycore import bcd
from paycore.apdu import CommandApdu
from paycore.errors import DecodeError, EncodeError

WALLET_AID = bytes.fromhex("A00000000386980701")
WALLET_FID = 0x1001
PSAM_AID = bytes.fromhex("F04E464350534D01")  # card.md §5, our choice

SFI_EF15 = 0x15
SFI_EF16 = 0x16
SFI_LOG = 0x18
SFI_PSAM_TERMINAL_ID = 0x16
EF15_LEN = 30
EF16_LEN = 20
LOG_RECORDS_MAX = 10
LOG_RECORD_LEN = 23

#: card.md §2: INITIALIZE FOR PURCHASE refuses 50,000 fen and above (under 500 yuan only).
PURCHASE_LIMIT_FEN = 50_000
#: card.md §2: balance ceiling, our choice echoing the PBOC e-cash limit.
BALANCE_CEILING_FEN = 100_000
KEY_INDEX = 0x01
ALG_3DES = 0x00

CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80
INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_READ_RECORD = 0xB2
INS_VERIFY = 0x20
INS_GET_BALANCE = 0x5C
INS_INITIALIZE = 0x50
INS_CREDIT_FOR_LOAD = 0x52
INS_DEBIT_FOR_PURCHASE = 0x54
INS_GET_TRANSACTION_PROVE = 0x5A
INS_SAM_INIT_PURCHASE = 0x70
INS_SAM_CREDIT_PURCHASE = 0x72


def _exact(what: str, raw: bytes, length: int) -> None:
    if len(raw) != length:
        raise DecodeError(what, min(len(raw), length), f"needs {length} bytes, got {len(raw)}")


def _u32(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise EncodeError(f"{what} {value} does not fit in 4 bytes")
    return value.to_bytes(4, "big")


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} {value} does not fit in 2 bytes")
    return value.to_bytes(2, "big")


def _fixed(value: bytes, length: int, what: str) -> bytes:
    if len(value) != length:
        raise EncodeError(f"{what} must be {length} bytes, got {len(value)}")
    return value


@dataclass(frozen=True, slots=True)
class InitRequest:
    """INITIALIZE FOR LOAD / PURCHASE data: key index (1) || amount (4) || terminal ID (6)."""

    key_index: int
    amount_fen: int
    terminal_id: bytes

    LEN = 11

    def encode(self) -> bytes:
        return (
            bytes([self.key_index])
            + _u32(self.amount_fen, "amount")
            + _fixed(self.terminal_id, 6, "terminal ID")
        )

    @classmethod
    def decode(cls, raw: bytes) -> InitRequest:
        _exact("INITIALIZE data", raw, cls.LEN)
        return cls(raw[0], int.from_bytes(raw[1:5], "big"), bytes(raw[5:11]))


@dataclass(frozen=True, slots=True)
class InitLoadResponse:
    balance_fen: int
    online_counter: int
    key_version: int
    alg_id: int
    random4: bytes
    mac1: bytes

    LEN = 16

    def encode(self) -> bytes:
        return (
            _u32(self.balance_fen, "balance")
            + _u16(self.online_counter, "counter")
            + bytes([self.key_version, self.alg_id])
            + _fixed(self.random4, 4, "random")
            + _fixed(self.mac1, 4, "MAC1")
        )

    @classmethod
    def decode(cls, raw: bytes) -> InitLoadResponse:
        _exact("INITIALIZE FOR LOAD response", raw, cls.LEN)
        return cls(
            int.from_bytes(raw[0:4], "big"),
            int.from_bytes(raw[4:6], "big"),
            raw[6],
            raw[7],
            bytes(raw[8:12]),
            bytes(raw[12:16]),
        )


@dataclass(frozen=True, slots=True)
class InitPurchaseResponse:
    balance_fen: int
    offline_counter: int
    overdraft_limit_fen: int
    key_version: int
    alg_id: int
    random4: bytes

    LEN = 15

    def encode(self) -> bytes:
        if not 0 <= self.overdraft_limit_fen <= 0xFFFFFF:
            raise EncodeError("overdraft limit does not fit in 3 bytes")
        return (
            _u32(self.balance_fen, "balance")
            + _u16(self.offline_counter, "counter")
            + self.overdraft_limit_fen.to_bytes(3, "big")
            + bytes([self.key_version, self.alg_id])
            + _fixed(self.random4, 4, "random")
        )

    @classmethod
    def decode(cls, raw: bytes) -> InitPurchaseResponse:
        _exact("INITIALIZE FOR PURCHASE response", raw, cls.LEN)
        return cls(
            int.from_bytes(raw[0:4], "big"),
            int.from_bytes(raw[4:6], "big"),
            int.from_bytes(raw[6:9], "big"),
            raw[9],
            raw[10],
            bytes(raw[11:15]),
        )


@dataclass(frozen=True, slots=True)
class CreditForLoadRequest:
    date_bcd: bytes
    time_bcd: bytes
    mac2: bytes

    LEN = 11

    def encode(self) -> bytes:
        return (
            _fixed(self.date_bcd, 4, "date")
            + _fixed(self.time_bcd, 3, "time")
            + _fixed(self.mac2, 4, "MAC2")
        )

    @classmethod
    def decode(cls, raw: bytes) -> CreditForLoadRequest:
        _exact("CREDIT FOR LOAD data", raw, cls.LEN)
        return cls(bytes(raw[0:4]), bytes(raw[4:7]), bytes(raw[7:11]))


@dataclass(frozen=True, slots=True)
class DebitRequest:
    terminal_serial: int
    date_bcd: bytes
    time_bcd: bytes
    mac1: bytes

    LEN = 15

    def encode(self) -> bytes:
        return (
            _u32(self.terminal_serial, "terminal serial")
            + _fixed(self.date_bcd, 4, "date")
            + _fixed(self.time_bcd, 3, "time")
            + _fixed(self.mac1, 4, "MAC1")
        )

    @classmethod
    def decode(cls, raw: bytes) -> DebitRequest:
        _exact("DEBIT FOR PURCHASE data", raw, cls.LEN)
        return cls(
            int.from_bytes(raw[0:4], "big"), bytes(raw[4:8]), bytes(raw[8:11]), bytes(raw[11:15])
        )


@dataclass(frozen=True, slots=True)
class DebitResponse:
    tac: bytes
    mac2: bytes

    LEN = 8

    def encode(self) -> bytes:
        return _fixed(self.tac, 4, "TAC") + _fixed(self.mac2, 4, "MAC2")

    @classmethod
    def decode(cls, raw: bytes) -> DebitResponse:
        _exact("DEBIT FOR PURCHASE response", raw, cls.LEN)
        return cls(bytes(raw[0:4]), bytes(raw[4:8]))


@dataclass(frozen=True, slots=True)
class ProveResponse:
    """GET TRANSACTION PROVE response: MAC2 (4) || TAC (4) of the proven transaction."""

    mac2: bytes
    tac: bytes

    LEN = 8

    def encode(self) -> bytes:
        return _fixed(self.mac2, 4, "MAC2") + _fixed(self.tac, 4, "TAC")

    @classmethod
    def decode(cls, raw: bytes) -> ProveResponse:
        _exact("GET TRANSACTION PROVE response", raw, cls.LEN)
        return cls(bytes(raw[0:4]), bytes(raw[4:8]))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """EF 0x18 record: counter (2) || overdraft limit (3) || amount (4) || type (1) ||
    terminal ID (6) || date (4) || time (3). ``counter`` is the counter after the transaction."""

    counter: int
    overdraft_limit_fen: int
    amount_fen: int
    tx_type: int
    terminal_id: bytes
    date_bcd: bytes
    time_bcd: bytes

    def encode(self) -> bytes:
        return (
            _u16(self.counter, "counter")
            + self.overdraft_limit_fen.to_bytes(3, "big")
            + _u32(self.amount_fen, "amount")
            + bytes([self.tx_type])
            + _fixed(self.terminal_id, 6, "terminal ID")
            + _fixed(self.date_bcd, 4, "date")
            + _fixed(self.time_bcd, 3, "time")
        )

    @classmethod
    def decode(cls, raw: bytes) -> LogRecord:
        _exact("log record", raw, LOG_RECORD_LEN)
        return cls(
            int.from_bytes(raw[0:2], "big"),
            int.from_bytes(raw[2:5], "big"),
            int.from_bytes(raw[5:9], "big"),
            raw[9],
            bytes(raw[10:16]),
            bytes(raw[16:20]),
            bytes(raw[20:23]),
        )


@dataclass(frozen=True, slots=True)
class Ef15:
    """Public application data (card.md §2). ``asn`` is bytes 12..19 of the file."""

    issuer_id: bytes  # 8
    app_type: int
    app_version: int
    serial10: bytes  # 10; the last 8 bytes are the ASN
    start_date_bcd: bytes  # 4
    expiry_date_bcd: bytes  # 4
    issuer_data: bytes  # 2

    @property
    def asn(self) -> bytes:
        return self.serial10[2:]

    def encode(self) -> bytes:
        return (
            _fixed(self.issuer_id, 8, "issuer ID")
            + bytes([self.app_type, self.app_version])
            + _fixed(self.serial10, 10, "application serial")
            + _fixed(self.start_date_bcd, 4, "start date")
            + _fixed(self.expiry_date_bcd, 4, "expiry date")
            + _fixed(self.issuer_data, 2, "issuer data")
        )

    @classmethod
    def decode(cls, raw: bytes) -> Ef15:
        _exact("EF15", raw, EF15_LEN)
        return cls(
            bytes(raw[0:8]),
            raw[8],
            raw[9],
            bytes(raw[10:20]),
            bytes(raw[20:24]),
            bytes(raw[24:28]),
            bytes(raw[28:30]),
        )


@dataclass(frozen=True, slots=True)
class Ef16:
    """SIM data (card.md §2, our choice): ICCID (10, BCD, F-padded) || MSISDN (10)."""

    iccid: str
    msisdn: str

    def encode(self) -> bytes:
        return bcd.encode_f_padded(self.iccid, 10) + bcd.encode_f_padded(self.msisdn, 10)

    @classmethod
    def decode(cls, raw: bytes) -> Ef16:
        _exact("EF16", raw, EF16_LEN)
        return cls(bcd.decode_f_padded(raw[:10], "ICCID"), bcd.decode_f_padded(raw[10:], "MSISDN"))


@dataclass(frozen=True, slots=True)
class SamInitRequest:
    """INIT SAM FOR PURCHASE data (card.md §5): 28 bytes, or 36 with the issuer factor."""

    card_random: bytes
    card_offline_counter: int
    amount_fen: int
    tx_type: int
    date_bcd: bytes
    time_bcd: bytes
    key_version: int
    alg_id: int
    asn: bytes
    issuer_factor: bytes | None = None

    LEN = 28
    LEN_WITH_FACTOR = 36

    def encode(self) -> bytes:
        out = (
            _fixed(self.card_random, 4, "card random")
            + _u16(self.card_offline_counter, "counter")
            + _u32(self.amount_fen, "amount")
            + bytes([self.tx_type])
            + _fixed(self.date_bcd, 4, "date")
            + _fixed(self.time_bcd, 3, "time")
            + bytes([self.key_version, self.alg_id])
            + _fixed(self.asn, 8, "ASN")
        )
        if self.issuer_factor is not None:
            out += _fixed(self.issuer_factor, 8, "issuer factor")
        return out

    @classmethod
    def decode(cls, raw: bytes) -> SamInitRequest:
        if len(raw) not in (cls.LEN, cls.LEN_WITH_FACTOR):
            raise DecodeError("INIT SAM FOR PURCHASE data", len(raw), "needs 28 or 36 bytes")
        return cls(
            bytes(raw[0:4]),
            int.from_bytes(raw[4:6], "big"),
            int.from_bytes(raw[6:10], "big"),
            raw[10],
            bytes(raw[11:15]),
            bytes(raw[15:18]),
            raw[18],
            raw[19],
            bytes(raw[20:28]),
            bytes(raw[28:36]) if len(raw) == cls.LEN_WITH_FACTOR else None,
        )


@dataclass(frozen=True, slots=True)
class SamInitResponse:
    terminal_serial: int
    mac1: bytes

    LEN = 8

    def encode(self) -> bytes:
        return _u32(self.terminal_serial, "terminal serial") + _fixed(self.mac1, 4, "MAC1")

    @classmethod
    def decode(cls, raw: bytes) -> SamInitResponse:
        _exact("INIT SAM FOR PURCHASE response", raw, cls.LEN)
        return cls(int.from_bytes(raw[0:4], "big"), bytes(raw[4:8]))


# --- command builders (terminal side) -------------------------------------------------------


def select_aid(aid: bytes) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_SELECT, 0x04, 0x00, aid, 256)


def read_binary(sfi: int, offset: int = 0, le: int = 256) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_READ_BINARY, 0x80 | sfi, offset, le=le)


def read_record(number: int, sfi: int = SFI_LOG) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_READ_RECORD, number, (sfi << 3) | 0x04, le=LOG_RECORD_LEN)


def verify_pin(pin: str) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_VERIFY, 0x00, 0x00, bcd.encode(pin))


def get_balance() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_BALANCE, 0x00, 0x02, le=4)


def initialize_for_load(req: InitRequest) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_INITIALIZE, 0x00, 0x02, req.encode(), 0x10)


def credit_for_load(req: CreditForLoadRequest) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_CREDIT_FOR_LOAD, 0x00, 0x00, req.encode(), 0x04)


def initialize_for_purchase(req: InitRequest) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_INITIALIZE, 0x01, 0x02, req.encode(), 0x0F)


def debit_for_purchase(req: DebitRequest) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_DEBIT_FOR_PURCHASE, 0x01, 0x00, req.encode(), 0x08)


def get_transaction_prove(tx_type: int, counter: int) -> CommandApdu:
    data = _u16(counter, "counter")
    return CommandApdu(CLA_PROPRIETARY, INS_GET_TRANSACTION_PROVE, 0x00, tx_type, data, 0x08)


def sam_read_terminal_id() -> CommandApdu:
    return read_binary(SFI_PSAM_TERMINAL_ID, 0, 6)


def sam_init_purchase(req: SamInitRequest) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_SAM_INIT_PURCHASE, 0x00, 0x00, req.encode(), 0x08)


def sam_credit_purchase(mac2: bytes) -> CommandApdu:
    return CommandApdu(
        CLA_PROPRIETARY, INS_SAM_CREDIT_PURCHASE, 0x00, 0x00, _fixed(mac2, 4, "MAC2")
    )
