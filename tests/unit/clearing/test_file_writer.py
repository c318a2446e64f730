"""Writing a settlement file atomically (clearing.md §7): the content and its SHA-256, no temp
file left behind, and a failure before the rename leaves the previous file intact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from clearing.adapters import files
from clearing.adapters.files import sha256_file, write_atomic


def test_writes_content_and_returns_its_sha256(tmp_path: Path) -> None:
    data = b"merchant_id,business_date\nTOTAL,\n"
    digest = write_atomic(tmp_path, "merchant_settlement_20260315.csv", data)
    target = tmp_path / "merchant_settlement_20260315.csv"
    assert target.read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert sha256_file(target) == digest
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    write_atomic(tmp_path, "a.csv", b"old\n")
    write_atomic(tmp_path, "a.csv", b"new\n")
    assert (tmp_path / "a.csv").read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_failure_before_rename_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    write_atomic(tmp_path, "a.csv", b"old\n")

    def broken(*_args: object) -> None:
        raise OSError(5, "injected I/O error")

    monkeypatch.setattr(f"clearing.adapters.files.os.{where}", broken)
    with pytest.raises(OSError, match="injected"):
        write_atomic(tmp_path, "a.csv", b"new content\n")
    monkeypatch.undo()
    assert (tmp_path / "a.csv").read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_the_rename_is_fsynced_in_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    folder_fds: list[int] = []
    real_open = os.open

    def open_spy(path: object, flags: int, *args: object) -> int:
        fd = real_open(path, flags, *args)  # type: ignore[arg-type]
        if Path(str(path)) == tmp_path:
            folder_fds.append(fd)
        return fd

    monkeypatch.setattr("clearing.adapters.files.os.fsync", spy)
    monkeypatch.setattr("clearing.adapters.files.os.open", open_spy)
    write_atomic(tmp_path, "a.csv", b"x")
    assert len(synced) == 2  # the file, then the folder
    assert folder_fds and synced[-1] == folder_fds[-1]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b.csv", ".hidden", "x\x00y"])
def test_refuses_names_that_are_not_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        write_atomic(tmp_path, name, b"x")
    assert list(tmp_path.iterdir()) == []


def test_sha256_of_a_large_file_is_read_in_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * files.CHUNK_BYTES + 17)
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
