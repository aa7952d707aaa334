"""Catalog files in a local (or mounted) folder: the `Output` protocol over a file system.

Readers see either the old file or the new one, never half of one; nothing escapes the root.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from stacsync.core.atomic import TEMP_PREFIX, atomic_writer, sync_file_system
from stacsync.core.errors import OutputError

if TYPE_CHECKING:
    from stacsync.config.settings import Settings


class LocalOutput:
    """Atomic writes and deletes of catalog files under one folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._batch_writes: int | None = None  # in a batch: files renamed in, not yet synced
        self._real_root: str | None = None  # the root, symlinks resolved (once it exists)
        # In a batch, folders it made or found inside the root, symlinks resolved: a batch of a
        # one-item-per-file catalog writes hundreds of files, and resolving and making their
        # folders again was most of a small write's time. Only for the batch's short life:
        # a folder someone removes or replaces with a symlink later is checked anew.
        self._ready: set[str] = set()

    def check_writable(self) -> None:
        """Create the root if needed and prove we can write there, or say what to fix."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"output {self.root}: cannot create folder: {exc.strerror}") from exc
        if not self.root.is_dir():
            raise OutputError(f"output {self.root}: exists and is not a folder")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OutputError(f"output {self.root}: folder is not writable by this user")

    def make_public(self, settings: Settings) -> None:
        """Nothing to do: files are written world-readable (0644); who may reach the folder is
        the file system's (or the web server's) business."""

    def sweep_temp_files(self) -> None:
        """Remove temp files a crash left between write and rename (never seen by readers).

        It walks the whole output, so callers do it only after a pass that did not finish.
        """
        for tmp in self.root.rglob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def path(self, relpath: str) -> Path:
        """The absolute path of a catalog file; refuses anything outside the root.

        `relpath` must stay inside by its spelling, and the folder it lands in inside once
        symlinks are resolved (in a batch, not again once the batch has written there).
        """
        norm = posixpath.normpath(relpath) if relpath else "."
        if norm in (".", "..") or norm.startswith(("/", "../")):
            raise OutputError(f"refusing to write {relpath!r}: outside the output folder")
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        target = os.path.join(self._real_root, norm)
        folder = os.path.dirname(target)
        if folder not in self._ready:
            real = os.path.realpath(folder)
            if real != self._real_root and not real.startswith(self._real_root + os.sep):
                raise OutputError(f"refusing to write {relpath!r}: outside the output folder")
        return Path(target)

    def exists(self, relpath: str) -> bool:
        # Called for every item on every pass: a plain stat, no resolve(); reading cannot
        # escape the root in any way that matters, and every write still goes through path().
        return os.path.isfile(os.path.join(self.root, relpath))

    def write(self, relpath: str, data: bytes) -> None:
        with self.open_atomic(relpath) as out:
            out.write(data)

    @contextlib.contextmanager
    def open_atomic(self, relpath: str) -> Iterator[BinaryIO]:
        """A file that appears under `relpath` only once it is complete."""
        target = self.path(relpath)
        folder = str(target.parent)
        if folder not in self._ready:
            target.parent.mkdir(parents=True, exist_ok=True)
            if self._batch_writes is not None:
                self._ready.add(folder)
        batched = self._batch_writes is not None
        with atomic_writer(target, durable=not batched) as out:
            yield out
        if batched:
            self._batch_writes += 1

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Writes in the block are made durable together when it ends cleanly: one syncfs for
        the batch instead of an fsync per file (most of a small file's write time)."""
        if self._batch_writes is not None:  # nested: the outer batch syncs
            yield
            return
        self._batch_writes = 0
        try:
            yield
            if self._batch_writes:
                sync_file_system(self.root)
        finally:
            self._batch_writes = None
            self._ready.clear()

    def delete(self, relpath: str) -> None:
        """Remove a file and any folders it leaves empty (up to the root)."""
        target = self.path(relpath)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        root = Path(self._real_root)  # set by path()
        parent = target.parent
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            self._ready.discard(str(parent))  # gone: whatever takes its place is checked anew
            parent = parent.parent
