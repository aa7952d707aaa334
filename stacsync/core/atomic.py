"""Atomic file replacement: a temp file beside the target, fsync, rename; removed on failure.

Readers see the old file or the new one, never half; temp names start with `TEMP_PREFIX`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_writer", "sync_file_system"]

# What a crashed write leaves behind starts with this; outputs sweep it after a crash, and
# `stacsync validate` does not take such a file for part of the catalog.
TEMP_PREFIX = ".stacsync-tmp-"


@contextlib.contextmanager
def atomic_writer(
    target: str | os.PathLike[str],
    *,
    mode: int | None = 0o644,
    prefix: str = TEMP_PREFIX,
    suffix: str = "",
    durable: bool = True,
) -> Iterator[BinaryIO]:
    """An open binary file whose bytes appear at `target` only once the block ends cleanly.

    The temp file is made in `target`'s folder (a rename never crosses file systems), flushed
    and fsynced, given `mode` (None: keep mkstemp's 0600), then renamed over `target`. If the
    block raises, the temp file is removed and `target` is left as it was. `durable=False`
    skips the fsync: the caller makes a batch durable at once (`sync_file_system`) before
    anything records that the batch was written.
    """
    tmp, fd = _temp_beside(Path(target), prefix, suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
        _finish(tmp, target, mode)
    except BaseException:
        _discard(tmp)
        raise


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str],
    *,
    mode: int | None = 0o644,
    prefix: str = TEMP_PREFIX,
    suffix: str = "",
) -> Iterator[Path]:
    """As `atomic_writer`, for writers that want a path (a library that opens files itself,
    or a caller that sets the file's times before it is renamed into place).

    The path names an empty file; whatever is there when the block ends cleanly is fsynced
    and renamed over `target`.
    """
    tmp, fd = _temp_beside(Path(target), prefix, suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        _finish(tmp, target, mode)
    except BaseException:
        _discard(tmp)
        raise


def sync_file_system(path: str | os.PathLike[str]) -> None:
    """Flush every write to the file system holding `path` to disk (syncfs(2) on Linux).

    One call costs about what one fsync does, where a batch of a thousand small files would
    cost a thousand. Elsewhere, or if syncfs is missing, os.sync() flushes every file system.
    """
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only where a batch is made durable
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


def _temp_beside(target: Path, prefix: str, suffix: str) -> tuple[str, int]:
    import tempfile  # a pass that writes nothing need not load it

    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    return tmp, fd


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish(tmp: str, target: str | os.PathLike[str], mode: int | None) -> None:
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, target)


def _discard(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)
