"""Atomic file replacement: a temp file beside the target, fsync, rename; removed on failure.

Readers see the old file or the new one, never half; temp names start with `TEMP_PREFIX`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_writer"]

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
) -> Iterator[BinaryIO]:
    """An open binary file whose bytes appear at `target` only once the block ends cleanly.

    The temp file is made in `target`'s folder (a rename never crosses file systems), flushed
    and fsynced, given `mode` (None: keep mkstemp's 0600), then renamed over `target`. If the
    block raises, the temp file is removed and `target` is left as it was.
    """
    tmp, fd = _temp_beside(Path(target), prefix, suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
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
