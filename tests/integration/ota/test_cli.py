"""`nfcpay ota ...` through the real entry point: registering SIMs from a keys file (keys never
printed), campaigns created and shown, jobs shown, errors as one line with exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nfcpay.cli import main
from tests.integration.ota.otakit import SIM_KEYS, iccid_of

VAULT_KEY = "11" * 32


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NFCPAY_OTA_KEY", VAULT_KEY)
    monkeypatch.setenv("NFCPAY_OTA_DB", f"sqlite:///{tmp_path / 'ota.db'}")
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps({k: getattr(SIM_KEYS, k).hex() for k in ("kic", "kid", "dek")}),
        encoding="utf-8",
    )
    os.chmod(keys, 0o600)
    return keys


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["ota", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_sims_campaigns_and_jobs_from_the_cli(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in (1, 2):
        code, out, err = run(capsys, "sim", "add", "--iccid", iccid_of(n), "--imsi",
                             f"46000{n:010d}", "--keys-file", str(env))  # fmt: skip
        assert code == 0, err
        assert "registered" in out
    code, out, err = run(capsys, "sim", "add", "--iccid", iccid_of(1), "--imsi", "460000000000001",
                         "--keys-file", str(env))  # fmt: skip
    assert code == 2 and err.startswith("nfcpay: error: SIM") and "registered already" in err
    code, out, _ = run(capsys, "sim", "list")
    assert code == 0 and out.count("set=01") == 2
    code, out, _ = run(capsys, "campaign", "create", "--name", "w1", "--kind", "lock",
                       "--iccid", iccid_of(1), "--iccid", iccid_of(2))  # fmt: skip
    assert code == 0 and out.startswith("campaign 1 w1: lock on 2 SIMs")
    code, out, _ = run(capsys, "campaign", "show", "1")
    assert code == 0 and "0/2 finished" in out and f"{iccid_of(2)} job 2: queued" in out
    # No reader: the job fails with a one-line reason and exit code 1.
    code, out, _ = run(capsys, "push", "lock", "--iccid", iccid_of(1))
    assert code == 1 and "failed" in out and "--reader is needed" in out
    code, out, _ = run(capsys, "job", "show", "3")
    assert code == 0 and out.startswith(f"job 3 lock {iccid_of(1)}: failed")
    code, _, err = run(capsys, "job", "show", "99")
    assert (code, err.strip()) == (2, "nfcpay: error: no job 99")
    everything = capsys.readouterr()
    for key in (SIM_KEYS.kic, SIM_KEYS.kid, SIM_KEYS.dek):
        assert key.hex() not in everything.out + everything.err


def test_cli_errors_are_one_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sim", "add", "--iccid", "12", "--imsi", "460000000000001",
                       "--keys-file", str(env))  # fmt: skip
    assert (code, err.strip()) == (2, "nfcpay: error: ICCID must be 18 to 20 digits")
    code, _, err = run(capsys, "sim", "add", "--iccid", iccid_of(1), "--imsi", "460000000000001",
                       "--keys-file", str(env.parent / "missing.json"))  # fmt: skip
    assert code == 2 and "not a keys file" in err and len(err.strip().splitlines()) == 1


def test_a_reader_serves_one_sim_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ota import cli as ota_cli
    from ota.adapters import pcsc_link
    from ota.domain.errors import OtaError

    class FakeLink:
        def __init__(self, reader: str) -> None:
            self.reader = reader

        def connect(self, timeout_s: float = 10.0) -> bytes:
            return b"\x3b\x00"

        def transmit(self, apdu: bytes) -> bytes:
            return b"\x90\x00"

    monkeypatch.setattr(pcsc_link, "PcscLink", FakeLink)
    links = ota_cli._pcsc_links("Virtual PCD 00 00")
    first = links(iccid_of(1))
    assert links(iccid_of(1)) is first
    with pytest.raises(OtaError, match=f"holds SIM {iccid_of(1)}, not {iccid_of(2)}"):
        links(iccid_of(2))


def test_ota_serve_answers_over_loopback(env: Path, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from ota.adapters.api_auth import Role, dump_tokens, mint_token

    token, entry = mint_token("admin-1", Role.ADMIN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environ = dict(os.environ, NFCPAY_OTA_API_TOKENS=dump_tokens([entry]))
    server = subprocess.Popen(
        [sys.executable, "-c", "from nfcpay.cli import entry; entry()", "ota", "serve",
         "--port", str(port)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                openapi = httpx.get(f"{base}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert "/v1/sims" in openapi.json()["paths"]
        assert httpx.get(f"{base}/v1/sims", timeout=5).status_code == 401
        listed = httpx.get(
            f"{base}/v1/sims", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert (listed.status_code, listed.json()) == (200, [])
    finally:
        server.terminate()
        server.wait(10)
