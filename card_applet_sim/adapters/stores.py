"""Card image stores: in memory (benchmarks, unit tests) and file (atomic, crash-safe)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from card_applet_sim.domain.applet import AppletType
from card_applet_sim.domain.errors import CardImageError
from card_applet_sim.domain.image import IMAGE_BYTES_MAX, CardImage, decode_image, encode_image

#: Called at every write point of a commit with the point's name; tests raise PowerLoss there.
WritePointHook = Callable[[str], None]
WRITE_POINTS = (
    "tmp-opened",
    "tmp-half-written",
    "tmp-written",
    "tmp-synced",
    "renamed",
    "dir-synced",
)


def _no_hook(point: str) -> None:
    return None


class MemoryStore:
    """Keeps the committed image as a reference: commit is a pointer swap (Java Card style
    transaction: the new state is built aside and becomes current in one step)."""

    def __init__(self, image: CardImage, on_write_point: WritePointHook = _no_hook) -> None:
        self._image = image
        self._hook = on_write_point
        self.commits = 0

    def load(self) -> CardImage:
        return self._image

    def commit(self, image: CardImage) -> None:
        self._hook("tmp-written")
        self._image = image
        self.commits += 1
        self._hook("renamed")


class FileStore:
    """The image in one file, replaced atomically: write a temp file, fsync it, rename it over
    the old one, fsync the directory. A power cut at any point leaves the old or the new file."""

    def __init__(
        self,
        path: Path,
        types: Mapping[str, AppletType],
        *,
        fsync: bool = True,
        on_write_point: WritePointHook = _no_hook,
    ) -> None:
        self.path = path
        self._types = types
        self._fsync = fsync
        self._hook = on_write_point
        self._tmp = path.with_name(path.name + ".tmp")

    def load(self) -> CardImage:
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()  # a commit torn before its rename: the old file is the truth
        try:
            with self.path.open("rb") as f:
                raw = f.read(IMAGE_BYTES_MAX + 1)
        except FileNotFoundError:
            raise CardImageError(f"{self.path}: no such card image") from None
        except OSError as exc:
            raise CardImageError(f"{self.path}: cannot read ({exc.strerror})") from None
        try:
            return decode_image(raw, self._types)
        except CardImageError as exc:
            raise CardImageError(f"{self.path}: {exc}") from None

    def commit(self, image: CardImage) -> None:
        write_image(self.path, encode_image(image, self._types), fsync=self._fsync, hook=self._hook)


def write_image(
    path: Path,
    raw: bytes,
    *,
    fsync: bool = True,
    hook: WritePointHook = _no_hook,
    exclusive: bool = False,
) -> None:
    """Atomically (re)place ``path`` with ``raw``, file mode 0600 (images hold card keys)."""
    if exclusive and path.exists():
        raise FileExistsError(f"{path} already exists")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        hook("tmp-opened")
        half = len(raw) // 2
        os.write(fd, raw[:half])
        hook("tmp-half-written")
        os.write(fd, raw[half:])
        hook("tmp-written")
        if fsync:
            os.fsync(fd)
        hook("tmp-synced")
    finally:
        os.close(fd)
    os.replace(tmp, path)
    hook("renamed")
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    hook("dir-synced")
