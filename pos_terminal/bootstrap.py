"""Wires the POS terminal: its settings (a terminal config file, overridden by options), the
TMK file, the journal, the card and PSAM readers, the clock, and ``service.Terminal``
(docs/pos-cli.md).

The config file is JSON written by ``nfcpay pos init`` and holds no secret: the TMK lives in its
own file (32 hex digits, mode 0600), named by the config. Relative paths in the config are
relative to the config file's folder.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from pos_terminal.adapters.journal import Journal
from pos_terminal.adapters.readers import (
    PSAM_WAIT_S_DEFAULT,
    CardReader,
    ReaderSpec,
    open_reader,
    parse_reader_spec,
)
from pos_terminal.domain.receipt import WIDTH_DEFAULT, WIDTH_MAX, WIDTH_MIN, ReceiptHeader
from pos_terminal.service import Terminal, TerminalConfig

CONFIG_VERSION: Final = 1
CONFIG_BYTES_MAX: Final = 16_384
TMK_FILE_BYTES_MAX: Final = 256
TMK_BYTES: Final = 16
TERMINAL_ID_LEN: Final = 8
MERCHANT_ID_LEN: Final = 15
MERCHANT_NAME_LEN_MAX: Final = 40
TIMEOUT_S_MIN: Final = 0.1
TIMEOUT_S_MAX: Final = 600.0
TIMEOUT_S_DEFAULT: Final = 30.0
#: The terminal's clock: China Standard Time (the host's business date is Asia/Shanghai).
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")


class PosConfigError(ValueError):
    """A terminal setting that is missing or wrong (one line; never shows a key)."""


def now_local() -> datetime:
    """The terminal's clock: local time in China, naive (what field 12/13 and DF09 carry)."""
    return datetime.now(SHANGHAI).replace(tzinfo=None)


def parse_host(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PosConfigError(f"--host {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5000")
    return host.strip("[]"), int(port)


def _ans(value: str, length: int, what: str, option: str) -> str:
    if len(value) != length or not value.isascii() or not value.isprintable():
        raise PosConfigError(f"{option} {value!r}: the {what} is {length} printable characters")
    return value


def read_tmk(path: Path) -> bytes:
    """The TMK from its file: 32 hex digits (surrounding white space ignored)."""
    try:
        with path.open("rb") as f:
            raw = f.read(TMK_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise PosConfigError(f"--tmk-file {path}: cannot read ({exc.strerror})") from None
    try:
        tmk = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        tmk = b""
    if len(raw) > TMK_FILE_BYTES_MAX or len(tmk) != TMK_BYTES:
        raise PosConfigError(f"--tmk-file {path}: expected {2 * TMK_BYTES} hex digits")
    return tmk


def write_tmk(path: Path, tmk_hex: str) -> None:
    """Store a TMK typed or piped in: a new file, mode 0600. The key is never echoed."""
    text = tmk_hex.strip().replace(" ", "")
    try:
        tmk = bytes.fromhex(text)
    except ValueError:
        tmk = b""
    if len(tmk) != TMK_BYTES:
        raise PosConfigError(f"the TMK must be {2 * TMK_BYTES} hex digits")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(tmk.hex().upper() + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass(frozen=True, slots=True)
class PosSettings:
    terminal_id: str
    merchant_id: str
    merchant_name: str
    host: tuple[str, int]
    tmk_file: Path
    journal: Path
    reader: ReaderSpec
    psam: ReaderSpec
    timeout_s: float = TIMEOUT_S_DEFAULT
    receipt_width: int = WIDTH_DEFAULT

    @property
    def header(self) -> ReceiptHeader:
        return ReceiptHeader(self.merchant_name, self.merchant_id, self.terminal_id)


@dataclass(frozen=True, slots=True)
class Overrides:
    """Options given on the command line (None: from the config file)."""

    reader: str | None = None
    psam: str | None = None
    host: str | None = None
    terminal_id: str | None = None
    merchant_id: str | None = None
    merchant_name: str | None = None
    journal: Path | None = None
    tmk_file: Path | None = None
    timeout_s: float | None = None
    receipt_width: int | None = None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(CONFIG_BYTES_MAX + 1)
    except FileNotFoundError:
        raise PosConfigError(
            f"no terminal config at {path} (run `nfcpay pos init` or give --config)"
        ) from None
    except OSError as exc:
        raise PosConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > CONFIG_BYTES_MAX:
        raise PosConfigError(f"{path}: larger than {CONFIG_BYTES_MAX} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PosConfigError(f"{path}: not a terminal config ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != CONFIG_VERSION:
        raise PosConfigError(f"{path}: not a version {CONFIG_VERSION} terminal config")
    return data


def _text(data: dict[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise PosConfigError(f"{path}: {key!r} is missing or not text")
    return value


_OPTIONS: Final = {
    "terminal_id": "--terminal-id",
    "merchant_id": "--merchant-id",
    "host": "--host",
    "tmk_file": "--tmk-file",
    "journal": "--journal",
    "reader": "--reader",
    "psam": "--psam",
}


def settings(config: Path | None, overrides: Overrides = Overrides()) -> PosSettings:
    """The settings: the config file (if given) with the options on top; every value checked."""
    data: dict[str, Any] = _read_config(config) if config is not None else {}
    where = str(config) if config is not None else "the options"

    def text(name: str, override: str | None) -> str:
        if override is not None:
            return override
        if name not in data:
            raise PosConfigError(f"{_OPTIONS[name]} is needed (or a terminal config with it)")
        value = data[name]
        if not isinstance(value, str):
            raise PosConfigError(f"{where}: {name!r} is not text")
        return value

    def path(name: str, override: Path | None) -> Path:
        if override is not None:
            return override
        found = Path(text(name, None))
        return found if config is None or found.is_absolute() else config.parent / found

    timeout = (
        overrides.timeout_s
        if overrides.timeout_s is not None
        else data.get("timeout_s", TIMEOUT_S_DEFAULT)
    )
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not TIMEOUT_S_MIN <= timeout <= TIMEOUT_S_MAX
    ):
        raise PosConfigError(f"--timeout must be {TIMEOUT_S_MIN:g}..{TIMEOUT_S_MAX:g} seconds")
    width = overrides.receipt_width or data.get("receipt_width", WIDTH_DEFAULT)
    if isinstance(width, bool) or not isinstance(width, int) or not WIDTH_MIN <= width <= WIDTH_MAX:
        raise PosConfigError(f"--width must be {WIDTH_MIN}..{WIDTH_MAX} columns")
    name = (
        overrides.merchant_name
        if overrides.merchant_name is not None
        else data.get("merchant_name", "")
    )
    if not isinstance(name, str) or len(name) > MERCHANT_NAME_LEN_MAX:
        raise PosConfigError(f"--merchant-name: at most {MERCHANT_NAME_LEN_MAX} characters")
    return PosSettings(
        terminal_id=_ans(
            text("terminal_id", overrides.terminal_id), TERMINAL_ID_LEN, "terminal ID",
            "--terminal-id",
        ),
        merchant_id=_ans(
            text("merchant_id", overrides.merchant_id), MERCHANT_ID_LEN, "merchant ID",
            "--merchant-id",
        ),
        merchant_name=name,
        host=parse_host(text("host", overrides.host)),
        tmk_file=path("tmk_file", overrides.tmk_file),
        journal=path("journal", overrides.journal),
        reader=parse_reader_spec(text("reader", overrides.reader), "card"),
        psam=parse_reader_spec(text("psam", overrides.psam), "psam"),
        timeout_s=float(timeout),
        receipt_width=width,
    )  # fmt: skip


def write_config(path: Path, chosen: PosSettings, *, overwrite: bool = False) -> None:
    """The settings as a terminal config file (no secret in it: the TMK file is only named)."""
    data = asdict(chosen)
    data.update(
        version=CONFIG_VERSION,
        host=f"{chosen.host[0]}:{chosen.host[1]}",
        tmk_file=str(chosen.tmk_file),
        journal=str(chosen.journal),
        reader=str(chosen.reader),
        psam=str(chosen.psam),
    )
    text = json.dumps(dict(sorted(data.items())), indent=2) + "\n"
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise PosConfigError(f"{path} already exists (use --force to overwrite)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


class LazyReader:
    """A reader opened on first use, so commands that never touch a card (sign-on, history,
    settlement) never open one. ``activate_s``: also wait that long for the card on opening
    (the PSAM, which sits in its slot)."""

    def __init__(self, spec: ReaderSpec, *, activate_s: float | None = None) -> None:
        self.spec = spec
        self.activate_s = activate_s
        self._reader: CardReader | None = None

    @property
    def name(self) -> str:
        return str(self.spec)

    def open(self) -> CardReader:
        if self._reader is None:
            reader = open_reader(self.spec)
            if self.activate_s is not None:
                try:
                    reader.wait_for_card(self.activate_s)
                except BaseException:
                    reader.close()
                    raise
            self._reader = reader
        return self._reader

    def wait_for_card(self, timeout_s: float) -> object:
        return self.open().wait_for_card(timeout_s)

    def transmit(self, apdu: bytes) -> bytes:
        return self.open().transmit(apdu)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


@dataclass
class PosSession:
    """What a command works with; ``close`` releases everything that was opened."""

    settings: PosSettings
    card: LazyReader
    psam: LazyReader
    terminal: Terminal
    journal: Journal

    def close(self) -> None:
        with contextlib.ExitStack() as stack:  # every one runs, the first error is raised
            stack.callback(self.journal.close)
            stack.callback(self.psam.close)
            stack.callback(self.card.close)
            stack.callback(self.terminal.close)


@contextlib.contextmanager
def open_session(
    chosen: PosSettings, clock: Callable[[], datetime] = now_local
) -> Iterator[PosSession]:
    """The terminal of ``chosen`` with its journal open and its readers ready to open."""
    tmk = read_tmk(chosen.tmk_file)
    config = TerminalConfig(
        terminal_id=chosen.terminal_id,
        merchant_id=chosen.merchant_id,
        merchant_name=chosen.merchant_name,
        host=chosen.host,
        tmk=tmk,
        timeout_s=chosen.timeout_s,
    )
    card = LazyReader(chosen.reader)
    psam = LazyReader(chosen.psam, activate_s=min(chosen.timeout_s, PSAM_WAIT_S_DEFAULT))
    journal = Journal.open(chosen.journal)
    try:
        terminal = Terminal(config, journal, card, psam, clock)
    except BaseException:
        journal.close()
        raise
    session = PosSession(chosen, card, psam, terminal, journal)
    try:
        yield session
    finally:
        session.close()
