"""Reading and writing the issuer key file (card.md §6) on disk, mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

from paycore import issuer_keys
from paycore.errors import DecodeError
from paycore.issuer_keys import IssuerKeys

KEY_FILE_BYTES_MAX = 4096


def read_keys(path: Path) -> IssuerKeys:
    try:
        with path.open("r", encoding="utf-8") as f:
            text = f.read(KEY_FILE_BYTES_MAX + 1)
    except FileNotFoundError:
        raise DecodeError(f"issuer key file {path}", 0, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DecodeError(f"issuer key file {path}", 0, f"cannot read ({exc})") from None
    if len(text) > KEY_FILE_BYTES_MAX:
        raise DecodeError(f"issuer key file {path}", KEY_FILE_BYTES_MAX, "file too large")
    try:
        return issuer_keys.parse(text)
    except DecodeError as exc:
        raise DecodeError(f"issuer key file {path}", exc.offset, exc.reason) from None


def write_keys(path: Path, keys: IssuerKeys, *, overwrite: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(keys.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)
