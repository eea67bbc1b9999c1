"""Writing files so that a reader, or a process killed half-way, never sees half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an OSError raised in the block ``path`` as its file name when it names none: a write that
    fails on a full disk says only "No space left on device"."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def write_atomic(path: Path, write: Callable[[BinaryIO], object], *, durable: bool = False) -> None:
    """Replace ``path`` by what ``write(fh)`` writes, in one rename; with ``durable``, fsync file and folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with naming(path), os.fdopen(fd, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_all_atomic(files: Sequence[tuple[Path, bytes]]) -> None:
    """Replace every path by its bytes: all are written beside their targets first, and renamed into place only
    once every one is written, so a write that fails (a full disk) leaves the old files whole and no temporaries.
    The files get the permissions a plain write gives (the umask's), not a temporary file's private ones."""
    written: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            with naming(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                fh, tmp = _temp_beside(path)
                written.append((tmp, path))
                with fh:
                    fh.write(data)
        for i, (tmp, path) in enumerate(written):
            with naming(path):
                os.replace(tmp, path)
            written[i] = ("", path)  # in place: nothing left to remove
    except BaseException:
        for tmp, _ in written:
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        raise


def _temp_beside(path: Path) -> tuple[BinaryIO, str]:
    """A new empty file next to ``path``, open for writing, readable as the umask allows (mkstemp makes 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    return os.fdopen(fd, "wb"), tmp


def read_json(path: Path) -> Any:
    """The parsed JSON file; OSError or ValueError (JSONDecodeError, bad UTF-8) as the caller's to judge."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
