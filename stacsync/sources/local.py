"""A local or mounted folder as a source: a walk with one stat per file, no opens.

Unreadable folders, symlink loops and files that vanish mid-walk are recorded, never fatal.
"""

from __future__ import annotations

import functools
import logging
import os
import stat as stat_module
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from stacsync.config import Settings, is_included
from stacsync.records import SourceEntry
from stacsync.sources import Listing

log = logging.getLogger(__name__)


class LocalSource:
    """Files under `root` for which `include(relpath)` is true; `prune` folders are skipped."""

    def __init__(
        self,
        root: Path,
        include: Callable[[str], bool],
        prune: tuple[Path, ...] = (),
        scandir: Callable[[str], Any] = os.scandir,
    ):
        self.root = Path(root)
        self._scandir = scandir  # a parameter so tests can make folders fail to list
        self.include = include
        self._prune_paths = tuple(prune)
        self._prune: set[tuple[int, int]] = set()

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalSource:
        """The source a pass over `settings` reads: include/exclude applied, output pruned."""
        return cls(
            settings.source_path,
            include=functools.partial(is_included, settings),
            prune=(settings.output_path,),
        )

    def list(self) -> Listing:
        listing = Listing()
        try:
            top = os.stat(self.root)
        except OSError as exc:
            listing.failed_dirs.append("")
            listing.problems.append(f"{self.root}: cannot read source folder: {exc.strerror}")
            return listing
        if not stat_module.S_ISDIR(top.st_mode):
            listing.failed_dirs.append("")
            listing.problems.append(f"{self.root}: source is not a folder")
            return listing
        # Folders to skip are known by (device, inode): no realpath() per folder walked.
        self._prune = set()
        for path in self._prune_paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            self._prune.add((st.st_dev, st.st_ino))
        self._walk(str(self.root), "", {(top.st_dev, top.st_ino)}, listing)
        return listing

    def _walk(self, abs_dir: str, rel_dir: str, ancestors: set, listing: Listing) -> None:
        try:
            with self._scandir(abs_dir) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            listing.failed_dirs.append(rel_dir)
            listing.problems.append(f"{rel_dir or '.'}: cannot list folder: {exc.strerror}")
            log.warning("cannot list %s: %s", abs_dir, exc)
            return
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            try:
                is_dir = child.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                self._enter(child, rel, ancestors, listing)
            elif self.include(rel):
                self._add_file(child, rel, listing)

    def _enter(self, child: os.DirEntry, rel: str, ancestors: set, listing: Listing) -> None:
        try:
            st = child.stat()
        except OSError as exc:
            listing.failed_dirs.append(rel)
            listing.problems.append(f"{rel}: cannot stat folder: {exc.strerror}")
            return
        key = (st.st_dev, st.st_ino)
        if key in self._prune:
            return
        if key in ancestors:
            listing.problems.append(f"{rel}: symlink loop, not followed")
            return
        self._walk(child.path, rel, ancestors | {key}, listing)

    def _add_file(self, child: os.DirEntry, rel: str, listing: Listing) -> None:
        try:
            st = child.stat()
        except FileNotFoundError:
            # Vanished between the listing and the stat, or a dangling symlink.
            if child.is_symlink():
                listing.problems.append(f"{rel}: broken symlink, skipped")
            return
        except OSError as exc:
            # Present but unstat-able (e.g. EIO on a mount): not a removal.
            listing.failed_dirs.append(rel)
            listing.problems.append(f"{rel}: cannot stat: {exc.strerror}")
            return
        if stat_module.S_ISREG(st.st_mode):
            listing.entries[rel] = SourceEntry(rel, st.st_size, st.st_mtime_ns)

    def stat(self, relpath: str) -> SourceEntry | None:
        try:
            st = os.stat(self.local_path(relpath))
        except FileNotFoundError:
            return None
        if not stat_module.S_ISREG(st.st_mode):
            return None
        return SourceEntry(relpath, st.st_size, st.st_mtime_ns)

    def open(self, relpath: str) -> BinaryIO:
        return open(self.local_path(relpath), "rb")

    def local_path(self, relpath: str) -> str:
        return str(self.root / relpath)

    def readable_path(self, relpath: str) -> str:
        return self.local_path(relpath)
