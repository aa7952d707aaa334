"""A local or mounted folder as a source: a walk with one stat per file, no opens.

Unreadable folders, links out of the source, loops and special files are reported, never fatal.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat as stat_module
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from stacsync.config.settings import Settings
from stacsync.core.names import display, gdal_can_open
from stacsync.core.records import SourceEntry
from stacsync.sources import Listing
from stacsync.sources.include import is_included

log = logging.getLogger(__name__)

FOLLOW_CHOICES = ("inside", "all", "none")

_SPECIAL = (
    (stat_module.S_ISFIFO, "a FIFO (named pipe)"),
    (stat_module.S_ISCHR, "a character device"),
    (stat_module.S_ISBLK, "a block device"),
    (stat_module.S_ISSOCK, "a socket"),
)


_Key = tuple[int, int]  # (st_dev, st_ino): a real folder, however it was reached


@dataclass(frozen=True)
class _Folder:
    abs_path: str
    rel_path: str
    ancestors: frozenset[_Key]  # the folders above it, and itself


class LocalSource:
    """Files under `root` for which `include(relpath)` is true; `prune` folders are skipped.

    Symbolic links are followed as `follow` says: `inside` (targets inside `root`), `all`, or
    `none`. Every real folder is walked once: real folders first, then those reached only
    through links, so a file is listed under its own path where it has one.
    """

    # Reads are local: hashing a file costs a read of it, not a download.
    remote = False

    def __init__(
        self,
        root: Path,
        include: Callable[[str], bool],
        prune: tuple[Path, ...] = (),
        scandir: Callable[[str], Any] = os.scandir,
        follow: str = "inside",
    ):
        if follow not in FOLLOW_CHOICES:
            raise ValueError(f"follow must be one of {FOLLOW_CHOICES}, got {follow!r}")
        self.root = Path(root)
        self._scandir = scandir  # a parameter so tests can make folders fail to list
        self.include = include
        self.follow = follow
        self._prune_paths = tuple(prune)
        self._prune: set[_Key] = set()
        self._real_root = ""

    @classmethod
    def for_settings(
        cls, settings: Settings, scandir: Callable[[str], Any] = os.scandir
    ) -> LocalSource:
        """The source a pass over `settings` reads: include/exclude applied, output pruned."""
        return cls(
            settings.source_path,
            include=functools.partial(is_included, settings),
            prune=(settings.output_path,),
            scandir=scandir,  # pipeline.witness keeps what the walk listed
            follow=settings.follow_symlinks,
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
        self._real_root = os.path.realpath(self.root)
        # Folders to skip are known by (device, inode): no realpath() per folder walked.
        self._prune = set()
        for path in self._prune_paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            self._prune.add((st.st_dev, st.st_ino))
        root_key = (top.st_dev, top.st_ino)
        seen: dict[_Key, str] = {root_key: ""}
        linked: list[tuple[_Folder, _Key]] = []
        pending = [_Folder(str(self.root), "", frozenset({root_key}))]
        while pending or linked:
            if not pending:
                # Real folders are all walked: now those only links lead to, once each.
                folder, key = linked.pop(0)
                if key in seen:
                    listing.skip(folder.rel_path, _already_listed(seen[key]))
                    continue
                seen[key] = folder.rel_path
                pending.append(folder)
            current = pending.pop()
            for folder, key, via_link in self._walk(current, listing):
                if key in current.ancestors:
                    listing.skip(folder.rel_path, _LOOP)
                elif key in seen:
                    listing.skip(folder.rel_path, _already_listed(seen[key]))
                elif via_link:
                    linked.append((folder, key))
                else:
                    seen[key] = folder.rel_path
                    pending.append(folder)
        return listing

    def _walk(self, folder: _Folder, listing: Listing) -> list[tuple[_Folder, _Key, bool]]:
        """List one folder: add its files; return its subfolders (folder, key, via a link)."""
        try:
            with self._scandir(folder.abs_path) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            listing.failed_dirs.append(folder.rel_path)
            listing.skip(folder.rel_path, f"cannot list folder: {_why(exc)}")
            log.warning("cannot list %s: %s", display(folder.abs_path), exc)
            return []
        folders = []
        for child in children:
            rel = f"{folder.rel_path}/{child.name}" if folder.rel_path else child.name
            try:
                is_link = child.is_symlink()
                is_dir = child.is_dir()
            except OSError:
                is_link, is_dir = False, False
            if is_link and not self._follows(child, rel, is_dir, listing):
                continue
            if is_dir:
                found = self._folder(child, rel, folder, listing)
                if found is not None:
                    folders.append((*found, is_link))
            elif self.include(rel):
                self._add_file(child, rel, listing)
        return folders

    def _follows(self, child: os.DirEntry, rel: str, is_dir: bool, listing: Listing) -> bool:
        """Whether a symlink is followed under the configured rule; a refusal is recorded."""
        if not is_dir and not self.include(rel):
            return False  # a link to a file we would not list anyway: nothing to report
        if self.follow == "all":
            return True
        what = "folder" if is_dir else "file"
        target = os.path.realpath(child.path)
        if not os.path.exists(target):
            return True  # a broken link: reported as such when it is stat-ed
        if self.follow == "none":
            listing.skip(
                rel,
                f"a symlink to {what} {display(target)}, not followed "
                '(source.follow_symlinks = "none")',
            )
            return False
        if target == self._real_root or target.startswith(self._real_root.rstrip("/") + "/"):
            return True
        listing.skip(
            rel,
            f"a symlink to {what} {display(target)}, outside the source: not followed "
            '(set source.follow_symlinks = "all" to follow it)',
        )
        return False

    def _folder(
        self, child: os.DirEntry, rel: str, parent: _Folder, listing: Listing
    ) -> tuple[_Folder, _Key] | None:
        try:
            st = child.stat()
        except OSError as exc:
            listing.failed_dirs.append(rel)
            listing.skip(rel, f"cannot stat folder: {_why(exc)}")
            return None
        key = (st.st_dev, st.st_ino)
        if key in self._prune:
            return None
        return _Folder(child.path, rel, parent.ancestors | {key}), key

    def _add_file(self, child: os.DirEntry, rel: str, listing: Listing) -> None:
        try:
            st = child.stat()
        except FileNotFoundError:
            # Vanished between the listing and the stat, or a dangling symlink.
            if child.is_symlink():
                listing.skip(rel, "a broken symlink (its target does not exist), skipped")
            return
        except OSError as exc:
            # Present but unstat-able (e.g. EIO on a mount): not a removal.
            listing.failed_dirs.append(rel)
            listing.skip(rel, f"cannot stat: {_why(exc)}")
            return
        if stat_module.S_ISREG(st.st_mode):
            listing.entries.add(SourceEntry(rel, st.st_size, st.st_mtime_ns))  # once: a tree
            return
        kind = next((name for test, name in _SPECIAL if test(st.st_mode)), "not a regular file")
        listing.skip(rel, f"{kind}, not a regular file: skipped")

    def stat(self, relpath: str) -> SourceEntry | None:
        path = self.local_path(relpath)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if not stat_module.S_ISREG(st.st_mode) or not self._allowed(path):
            return None
        return SourceEntry(relpath, st.st_size, st.st_mtime_ns)

    def _allowed(self, path: str) -> bool:
        """Whether the walk would reach `path` under the symlink rule (for event hints)."""
        if self.follow == "all":
            return True
        real = os.path.realpath(path)
        if self.follow == "none":
            return real == os.path.join(
                os.path.realpath(self.root), os.path.relpath(path, self.root)
            )
        root = os.path.realpath(self.root)
        return real.startswith(root.rstrip("/") + "/")

    def open(self, relpath: str) -> BinaryIO:
        return open(self.local_path(relpath), "rb")

    def local_path(self, relpath: str) -> str:
        return str(self.root / relpath)

    def readable_path(self, relpath: str) -> str | None:
        """The path itself, unless GDAL cannot take it (not UTF-8, too long): then a stream."""
        path = self.local_path(relpath)
        return path if gdal_can_open(path) else None

    def stored_checksum(self, relpath: str) -> str | None:
        """None: a folder keeps no checksums (a local file is hashed by reading it)."""
        return None


_LOOP = "a symlink loop (it leads back to a folder above it), not followed"


def _already_listed(first: str) -> str:
    where = display(first) if first else "the source folder itself"
    return f"the same folder as {where}, which is listed there: not listed twice"


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is longer than the system allows (PATH_MAX), so it cannot be read"
    return exc.strerror or str(exc)
