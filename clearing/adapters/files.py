"""Settlement files on disk (clearing.md §7): written to a temp name in the target folder,
fsynced, renamed over the final name, and the folder fsynced, so after a crash or power cut
the final name holds either the old file or the complete new one, never a part. The caller
records the SHA-256 the writer returns."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Final

CHUNK_BYTES: Final = 1 << 20
NAME_MAX: Final = 255


def _check_name(name: str) -> None:
    if (
        not name
        or len(name) > NAME_MAX
        or name in {".", ".."}
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name.startswith(".")
    ):
        raise ValueError(f"not a plain file name: {name!r}")


def write_atomic(folder: Path, name: str, data: bytes) -> str:
    """Write ``data`` to ``folder / name`` atomically and durably; the SHA-256 hex of ``data``.
    On any failure the temp file is removed and an existing ``folder / name`` is untouched."""
    _check_name(name)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)
    return hashlib.sha256(data).hexdigest()


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX: the directory entry lives in the folder)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """SHA-256 hex of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
