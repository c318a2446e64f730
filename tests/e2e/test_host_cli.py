"""`nfcpay host ...` as an operator runs it: a real subprocess, a real SQLite file, the vault
key from the environment; then a terminal signs on over TCP to `nfcpay host serve`."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pos_terminal.adapters.host_link import HostLink

NFCPAY = [sys.executable, "-c", "from nfcpay.cli import entry; entry()"]
MID = "898310048990001"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "NFCPAY_KEY": os.urandom(32).hex(),
        "NFCPAY_DB": f"sqlite:///{tmp_path / 'h.db'}",
    }


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NFCPAY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nfcpay: error: "), result.stderr
    assert needle in lines[0], lines[0]


def test_register_and_serve(env: dict[str, str], tmp_path: Path) -> None:
    keys = tmp_path / "issuer.keys"
    ok(run(env, "keys", "new", "--out", str(keys)))
    ok(run(env, "host", "init"))
    assert "key version 1" in ok(run(env, "host", "issuer", "add", "--issuer", "ISS1",
                                     "--keys", str(keys)))  # fmt: skip
    ok(run(env, "host", "merchant", "add", "--mid", MID, "--name", "Noodle House"))
    shown = ok(run(env, "host", "terminal", "add", "--tid", "T0000001", "--mid", MID))
    match = re.search(r"TMK ([0-9A-F]{32}) \(KCV ([0-9A-F]{8})\)", shown)
    assert match is not None, shown
    tmk = bytes.fromhex(match.group(1))
    ok(run(env, "host", "card", "add", "--asn", "8888000000000001", "--issuer", "ISS1"))
    listed = ok(run(env, "host", "txns"))
    assert match.group(1) not in listed  # the TMK is shown once, at registration only

    tokens = tmp_path / "tokens.json"
    token = ok(run(env, "host", "token", "add", "--file", str(tokens), "--name", "ops",
                   "--role", "operations")).strip()  # fmt: skip
    assert token not in tokens.read_text()  # only the hash is kept
    server = subprocess.Popen(
        [*NFCPAY, "host", "serve", "--iso-port", "0", "--api-port", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env={**env, "NFCPAY_API_TOKENS_FILE": str(tokens)},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines: list[str] = []
        while len(lines) < 2:
            ready, _, _ = select.select([server.stdout], [], [], 60)
            assert ready, "the host did not start"
            lines.append(server.stdout.readline().decode())
        api_line = next(x for x in lines if x.startswith("admin API on "))
        iso_line = next(x for x in lines if x.startswith("listening on "))
        port = int(iso_line.rsplit(":", 1)[1])
        api = api_line.removeprefix("admin API on ").strip().removesuffix("/docs")
        with HostLink(("127.0.0.1", port), "T0000001", MID, tmk) as link:
            assert link.sign_on().approved and link.mak is not None
            assert link.echo().approved
        assert httpx.get(f"{api}/v1/counters", timeout=10).status_code == 401
        counted = httpx.get(
            f"{api}/v1/counters", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert counted.status_code == 200, counted.text
        assert "0800" in counted.text and "0820" in counted.text  # the live counters saw them
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_bad_input_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    ok(run(env, "host", "init"))
    one_line_error(
        run(env, "host", "merchant", "add", "--mid", "123", "--name", "x"), "merchant_id"
    )
    one_line_error(
        run(env, "host", "terminal", "add", "--tid", "T0000001", "--mid", MID), "does not exist"
    )
    one_line_error(
        run(env, "host", "terminal", "add", "--tid", "T0000001", "--mid", MID, "--tmk", "00"),
        "--tmk",
    )
    ok(run(env, "host", "merchant", "add", "--mid", MID, "--name", "Noodle House"))
    one_line_error(
        run(env, "host", "merchant", "add", "--mid", MID, "--name", "Again"), "already stored"
    )
    one_line_error(run({**env, "NFCPAY_KEY": os.urandom(32).hex()}, "host", "init"), "vault key")
    one_line_error(run({**env, "NFCPAY_KEY": ""}, "host", "init"), "NFCPAY_KEY")
    one_line_error(run(env, "host", "init", "--db", "mysql://x/y"), "unsupported database")
    one_line_error(
        run(env, "host", "issuer", "add", "--issuer", "I", "--keys", str(tmp_path / "none")),
        "No such file",
    )


def test_bad_token_and_serve_arguments_are_one_line(env: dict[str, str], tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    one_line_error(
        run(env, "host", "token", "add", "--file", str(tokens), "--name", "x", "--role", "boss"),
        "role must be one of admin, operations, clearing",
    )
    assert not tokens.exists()
    ok(run(env, "host", "token", "add", "--file", str(tokens), "--name", "x", "--role", "admin"))
    one_line_error(
        run(env, "host", "token", "add", "--file", str(tokens), "--name", "x", "--role", "admin"),
        "a token named x exists already",
    )
    tokens.write_text("{not json")
    one_line_error(
        run(env, "host", "token", "add", "--file", str(tokens), "--name", "y", "--role", "admin"),
        "not valid JSON",
    )
    one_line_error(
        run(env, "host", "serve", "--iso-port", "0", "--api-port", "99999"), "--api-port"
    )
    ok(run(env, "host", "init"))
    no_tokens = {k: v for k, v in env.items() if not k.startswith("NFCPAY_API_TOKENS")}
    one_line_error(
        run(no_tokens, "host", "serve", "--iso-port", "0", "--api-port", "0"), "NFCPAY_API_TOKENS"
    )
