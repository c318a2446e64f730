"""A pcscd child process with only the vpcd reader, run without systemd (pcsc.md "pcscd without
systemd"). Used by the PC/SC integration tests and by the PC/SC latency benchmark.

pcscd's socket is fixed at /run/pcscd/pcscd.comm, so there is one pcscd per machine: ``start``
refuses when a live pcscd it did not start owns the socket, and clears the files a dead one
left behind. The child runs under ``setpriv --pdeathsig TERM`` when available, so it gets
SIGTERM if the thread that started it dies; ``stop`` is also registered with ``atexit``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = [
    "PCSCD_PID_PATH",
    "PCSCD_SOCKET_PATH",
    "VPCD_DRIVER_PATH",
    "PcscdBusyError",
    "PcscdError",
    "PcscdProcess",
    "missing_components",
    "sigterm_as_keyboard_interrupt",
    "write_vpcd_reader_config",
]

PCSCD_SOCKET_PATH = Path("/run/pcscd/pcscd.comm")
PCSCD_PID_PATH = Path("/run/pcscd/pcscd.pid")
VPCD_DRIVER_PATH = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
#: The config file's name inside the config directory (any name works; pcscd reads them all).
VPCD_CONFIG_NAME = "vpcd"
#: vpcd's port for slot 0; slot 1 listens on the next one.
VPCD_PORT = 35963

#: Limits on waiting for pcscd.
_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0
_POLL_S = 0.01
#: Bytes of pcscd's log quoted in an error.
_LOG_TAIL_MAX = 2000


class PcscdError(RuntimeError):
    """pcscd could not be started or stopped."""


class PcscdBusyError(PcscdError):
    """Another pcscd, not started by us, owns /run/pcscd/pcscd.comm."""


def missing_components() -> list[str]:
    """What this machine lacks to run pcscd with vpcd (empty when all is there)."""
    missing = []
    if _pcscd_executable() is None:
        missing.append("pcscd (Debian package pcscd)")
    if not VPCD_DRIVER_PATH.exists():
        missing.append(f"the vpcd driver {VPCD_DRIVER_PATH} (Debian package vsmartcard-vpcd)")
    return missing


#: A vpcd port still held by another listener (a pcscd that is stopping, another test run)
#: makes the new reader silently fail to appear ("Address already in use" in pcscd's log).
PORT_FREE_WAIT_S = 30.0


def _wait_for_free_ports(ports: tuple[int, ...], timeout_s: float) -> None:
    """Wait until nothing listens on ``ports`` any more, so vpcd can bind them."""
    deadline = time.monotonic() + timeout_s
    for port in ports:
        while True:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
            try:
                probe.bind(("0.0.0.0", port))  # noqa: S104 - vpcd itself binds all addresses
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise PcscdError(
                        f"port {port} stays busy: another vpcd (pcscd) is listening on it"
                    ) from None
                time.sleep(0.5)
            finally:
                probe.close()


def write_vpcd_reader_config(config_dir: Path, port: int = VPCD_PORT) -> Path:
    """Write a reader.conf.d file for vpcd in server mode (DEVICENAME /dev/null:<port>)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / VPCD_CONFIG_NAME
    path.write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:{port}\n"
        f"LIBPATH      {VPCD_DRIVER_PATH}\n"
        "CHANNELID    0x8C7B\n",
        encoding="ascii",
    )
    return path


def _pcscd_executable() -> str | None:
    found = shutil.which("pcscd")
    if found is not None:
        return found
    for candidate in ("/usr/sbin/pcscd", "/sbin/pcscd"):  # root's PATH may lack sbin
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class PcscdProcess:
    """``pcscd --foreground -c <config_dir>`` as our child, logging to ``log_path``.

    ``config_dir`` must hold only reader configs meant for this pcscd (see
    ``write_vpcd_reader_config``). ``start`` returns when the socket accepts connections;
    readers appear to clients at once, cards after pcscd's next presence poll (≤ 0.4 s).
    """

    def __init__(self, config_dir: Path, log_path: Path, *, debug: bool = False) -> None:
        self.config_dir = config_dir
        self.log_path = log_path
        self.debug = debug
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = _START_TIMEOUT_S) -> None:
        with self._lock:
            if self._proc is not None:
                raise PcscdError("this pcscd is already started")
            executable = _pcscd_executable()
            if executable is None:
                raise PcscdError("pcscd is not installed")
            _clear_stale_pcscd()
            _wait_for_free_ports((VPCD_PORT, VPCD_PORT + 1), PORT_FREE_WAIT_S)
            argv = [executable, "--foreground", "-c", str(self.config_dir)]
            if self.debug:
                argv.append("--debug")
            setpriv = shutil.which("setpriv")
            if setpriv is not None:
                # PR_SET_PDEATHSIG fires when the *thread* that forked dies: start pcscd from
                # a thread that lives as long as the process (the main thread).
                argv = [setpriv, "--pdeathsig", "TERM", *argv]
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(  # noqa: S603 - argv is ours, no shell
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own process group: a Ctrl-C on the terminal reaches pytest, which then
                    # stops pcscd in order, instead of killing pcscd under a running test.
                    start_new_session=True,
                )
            atexit.register(self.stop)
        try:
            self._wait_for_socket(timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            atexit.unregister(self.stop)
            if proc is None:
                return
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout_s)
            # A killed pcscd leaves its files; clear them only if they are still ours.
            if _read_pid(PCSCD_PID_PATH) == proc.pid:
                _unlink(PCSCD_SOCKET_PATH)
                _unlink(PCSCD_PID_PATH)

    def log_tail(self) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-_LOG_TAIL_MAX:].decode("utf-8", "replace")

    def _wait_for_socket(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            proc = self._proc
            if proc is None:
                raise PcscdError("pcscd was stopped while starting")
            code = proc.poll()
            if code is not None:
                raise PcscdError(
                    f"pcscd exited with status {code} while starting; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            if _socket_accepts(PCSCD_SOCKET_PATH) and _read_pid(PCSCD_PID_PATH) == proc.pid:
                return
            if time.monotonic() > deadline:
                raise PcscdError(
                    f"pcscd did not open {PCSCD_SOCKET_PATH} within {timeout_s:g} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(_POLL_S)

    def __enter__(self) -> PcscdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _clear_stale_pcscd() -> None:
    """Refuse if a live pcscd owns the socket; remove the files of a dead one."""
    pid = _read_pid(PCSCD_PID_PATH)
    if pid is not None and _alive(pid):
        raise PcscdBusyError(
            f"a pcscd we did not start (pid {pid}, {PCSCD_PID_PATH}) owns {PCSCD_SOCKET_PATH}; "
            "stop it first (e.g. systemctl stop pcscd.socket pcscd) — it is never killed for you"
        )
    if _socket_accepts(PCSCD_SOCKET_PATH):
        # No live pid, yet something answers: e.g. systemd socket activation.
        raise PcscdBusyError(
            f"something is listening on {PCSCD_SOCKET_PATH} (systemd's pcscd.socket?); "
            "stop it first — it is never killed for you"
        )
    _unlink(PCSCD_SOCKET_PATH)
    _unlink(PCSCD_PID_PATH)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # pcscd 1.9.9 writes "<pid>\n\0": the trailing NUL is part of the file.
    text = text.strip(" \t\r\n\0")
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    """True for a running process; False for none or a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc: trust kill(0)
    # Field 3, after the parenthesised command name (which may itself hold spaces or ')').
    fields = stat.rpartition(")")[2].split()
    return not fields or fields[0] not in ("Z", "X")


def _socket_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt, so ``finally`` blocks and pytest's
    teardown stop pcscd and served cards. Only the main thread can install signal handlers;
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
