"""A folder tree in one digest: every name, its kind, and the size and mtime of each non-folder.

Equal digests mean a walk would see the same tree: what lets a rescan trust "nothing changed".
"""

from __future__ import annotations

import os
import stat

from stacsync.core.sha256 import sha256

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (checkers know the idiom)
if TYPE_CHECKING:
    from collections.abc import Iterator


def entry_line(folder: str, entry: os.DirEntry) -> str | None:
    """One entry as a line of the digest; None for a symbolic link.

    Regular files and anything else: kind (S_IFMT), size and mtime from a stat without
    following links (a DirEntry caches it, so an entry already stat-ed costs nothing).
    """
    name = f"{folder}/{entry.name}" if folder else entry.name
    if entry.is_symlink():
        return None
    if entry.is_dir(follow_symlinks=False):
        return f"{name}\0d\0"
    st = entry.stat(follow_symlinks=False)
    return f"{name}\0{stat.S_IFMT(st.st_mode)}\0{st.st_size}\0{st.st_mtime_ns}\0"


_RECORD = 32  # bytes: a SHA-256 digest


class TreeDigest:
    """A tree's digest built folder by folder, whatever order the folders come in.

    Each folder is hashed alone (its lines sorted), then with its name into a 32-byte record;
    the tree's digest is over the sorted records. So a walk holds one folder's entries at a
    time and 32 bytes per folder (~1.4 MB for 100,000 files), not a stat per file.
    """

    __slots__ = ("_early", "_pending", "_records", "entries")

    def __init__(self) -> None:
        self.entries = 0  # lines: every name in every folder added
        self._records = bytearray()  # one 32-byte record per folder added
        # Folders named by an added folder and not added yet, and folders added before any
        # added folder named them. A walk goes down, so both stay small: a set of every folder
        # (43,000 for 100,000 files) would cost as much as the records.
        self._pending: set[str] = set()
        self._early: set[str] = set()

    def add(self, folder: str, entries: list[os.DirEntry]) -> list[str] | None:
        """Hash one listed folder; its subfolders' paths, or None for a symbolic link in it.

        OSError when an entry nobody stat-ed yet is gone.
        """
        lines = []
        subfolders = []
        for entry in entries:
            line = entry_line(folder, entry)
            if line is None:
                return None
            lines.append(line)
            if line.endswith("\0d\0"):
                subfolders.append(line[:-3])
        lines.sort()
        # surrogateescape: names that are not UTF-8 count as the bytes they are.
        inner = sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
        # A name holds no NUL, so "folder NUL 64 hex digits newline" records cannot run together.
        record = f"{folder}\0{inner}\n".encode("utf-8", "surrogateescape")
        self._records += sha256(record).digest()
        self.entries += len(lines)
        if folder in self._pending:
            self._pending.remove(folder)
            if not self._pending:
                self._pending = set()  # a set's table never shrinks: a wide tree's is ~1 MB
        else:
            self._early.add(folder)
        for name in subfolders:
            if name in self._early:
                self._early.remove(name)
            else:
                self._pending.add(name)
        return subfolders

    def hexdigest(self) -> str:
        held = self._records
        records = sorted(held[i : i + _RECORD] for i in range(0, len(held), _RECORD))
        return sha256(b"".join(records)).hexdigest()

    def unwalked(self) -> tuple[str, ...]:
        """Folders some added folder holds that were not added themselves, sorted."""
        return tuple(sorted(self._pending))


# What the last `walk` listed, by folder path: a pass that follows in this process (when the
# walk found a change) lists from it through `Recorder` instead of walking the tree again.
_walked: dict[str, list[os.DirEntry]] = {}


def walk(root: str, unwalked: frozenset[str]) -> tuple[int, str] | None:
    """(entries, digest) of the tree under `root`, not descending into `unwalked` folders.

    None when a symbolic link (following links has rules names do not capture) or an
    unreadable folder makes it incomparable. A stat per non-folder, as a bare `os.walk` +
    `os.stat` does: this is the floor of any pass.
    """
    _walked.clear()
    found = TreeDigest()
    pending = [""]
    while pending:
        folder = pending.pop()
        path = os.path.join(root, folder) if folder else root
        try:
            with os.scandir(path) as listed:
                entries = list(listed)
            subfolders = found.add(folder, entries)
        except OSError:
            return None
        if subfolders is None:
            return None
        _walked[path] = entries
        pending.extend(name for name in subfolders if name not in unwalked)
    return found.entries, found.hexdigest()


def forget_walk() -> None:
    """Drop what the last `walk` listed: past its pass, it is no listing of anything."""
    _walked.clear()


class Recorder:
    """An `os.scandir` that digests what a walk listed, for the witness of its pass.

    Given to a `LocalSource`, it sees the very entries (and stats) the pass's listing used.
    A folder is digested when the next is listed (the walk has stat-ed its files by then) and
    its entries dropped. A folder the last `walk` listed in this process is served from it,
    once: that walk was the listing's first moments, not a second look at the tree.
    """

    def __init__(self, root: str):
        self.root = root.rstrip("/") or "/"
        self._digest = TreeDigest()
        self._pending: tuple[str, list[os.DirEntry]] | None = None
        self._broken: OSError | None = None
        self._link = False

    def scandir(self, path: str) -> _Listing:
        """Used as `with recorder.scandir(path) as it:`, like `os.scandir`."""
        return _Listing(self, path)

    def _list(self, path: str) -> Iterator[os.DirEntry]:
        self._settle()
        entries = _walked.pop(str(path), None)
        if entries is None:
            with os.scandir(path) as found:
                entries = list(found)
        self._pending = (self._relative(path), entries)
        return iter(entries)

    def _settle(self) -> None:
        """Digest the folder listed last; a failure is kept for `result`, never raised here
        (this runs inside the pass's walk)."""
        if self._pending is None:
            return
        folder, entries = self._pending
        self._pending = None
        if self._broken is not None or self._link:
            return
        try:
            self._link = self._digest.add(folder, entries) is None
        except OSError as exc:
            self._broken = exc

    def _relative(self, path: str) -> str:
        path = str(path)
        if path.rstrip("/") == self.root:
            return ""
        return path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path

    def result(self) -> TreeDigest | None:
        """The digest of what was listed; None with a link in it.

        OSError when an entry is gone since (only entries nobody stat-ed are stat-ed now).
        """
        self._settle()
        if self._broken is not None:
            raise self._broken
        return None if self._link else self._digest


class _Listing:
    """`Recorder.scandir`'s context: lists on entering (a class: contextlib is ~1 ms to import)."""

    def __init__(self, recorder: Recorder, path: str):
        self._recorder = recorder
        self._path = path

    def __enter__(self) -> Iterator[os.DirEntry]:
        return self._recorder._list(self._path)

    def __exit__(self, *exc: object) -> None:
        return None
