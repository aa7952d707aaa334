"""A folder tree in one digest: every name, its kind, and the size and mtime of each non-folder.

Equal digests mean a walk would see the same tree: what lets a rescan trust "nothing changed".
"""

from __future__ import annotations

import hashlib
import os
import stat

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


def digest(lines: list[str]) -> str:
    """The digest of a tree's lines, whatever order they were walked in."""
    # surrogateescape: names that are not UTF-8 count as the bytes they are.
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8", "surrogateescape")).hexdigest()


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
    lines: list[str] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        path = os.path.join(root, folder) if folder else root
        try:
            with os.scandir(path) as found:
                entries = list(found)
        except OSError:
            return None
        _walked[path] = entries
        for entry in entries:
            line = entry_line(folder, entry)
            if line is None:
                return None
            lines.append(line)
            if line.endswith("\0d\0"):
                name = line[:-3]
                if name not in unwalked:
                    pending.append(name)
    return len(lines), digest(lines)


def forget_walk() -> None:
    """Drop what the last `walk` listed: past its pass, it is no listing of anything."""
    _walked.clear()


class Recorder:
    """An `os.scandir` that keeps what a walk listed, for `lines()` once the walk is over.

    Given to a `LocalSource`, it sees the very entries (and stats) the pass's listing used.
    A folder the last `walk` listed in this process is served from it, once: that walk was
    the listing's first moments, not a second look at the tree.
    """

    def __init__(self, root: str):
        self.root = root.rstrip("/") or "/"
        self.listed: list[tuple[str, list[os.DirEntry]]] = []

    def scandir(self, path: str) -> _Listing:
        """Used as `with recorder.scandir(path) as it:`, like `os.scandir`."""
        return _Listing(self, path)

    def _list(self, path: str) -> Iterator[os.DirEntry]:
        entries = _walked.pop(str(path), None)
        if entries is None:
            with os.scandir(path) as found:
                entries = list(found)
        self.listed.append((self._relative(path), entries))
        return iter(entries)

    def _relative(self, path: str) -> str:
        path = str(path)
        if path.rstrip("/") == self.root:
            return ""
        return path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path

    def lines(self) -> tuple[list[str], set[str]] | None:
        """(lines, folders walked) of what was listed; None with a link in it.

        OSError when an entry is gone since (only entries nobody stat-ed are stat-ed now).
        """
        lines: list[str] = []
        for folder, entries in self.listed:
            for entry in entries:
                line = entry_line(folder, entry)
                if line is None:
                    return None
                lines.append(line)
        return lines, {folder for folder, _ in self.listed}


class _Listing:
    """`Recorder.scandir`'s context: lists on entering (a class: contextlib is ~1 ms to import)."""

    def __init__(self, recorder: Recorder, path: str):
        self._recorder = recorder
        self._path = path

    def __enter__(self) -> Iterator[os.DirEntry]:
        return self._recorder._list(self._path)

    def __exit__(self, *exc: object) -> None:
        return None
