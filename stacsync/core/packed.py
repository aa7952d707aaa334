"""Listing entries by path, packed into one buffer: a big listing without an object per file.

As Python objects an entry (its path, two ints, the record, a dict slot) takes ~270 bytes;
packed, its UTF-8 path and ~33. Iterating decodes; keyed access builds a path index first.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Collection, ItemsView, Iterable, Iterator, MutableMapping, ValuesView

from stacsync.core.records import SourceEntry

# size, mtime_ns, then len(checksum) + 1 and len(etag) + 1 (0: None); the path fills the rest.
_HEAD = struct.Struct("<qqII")
_MTIME = struct.Struct("<q")


class PackedEntries(MutableMapping[str, SourceEntry]):
    """`SourceEntry`s by path in the order they were first added, like a dict of them.

    `add` (a path not held yet: a walk or an object listing names each path once), iteration,
    `len` and `remove_all` keep no object per entry. `in`, `[path]` and `del` build an index
    of the paths on first use: fine for a few paths or a daemon's guard, not for a first
    build's listing. Names are kept exactly: `surrogatepass` round-trips any str.
    """

    def __init__(self, entries: Iterable[SourceEntry] = ()) -> None:
        self._blob = bytearray()
        self._ends = array("Q")  # where each record ends in the blob
        self._gone = bytearray()  # 1 for a deleted record
        self._replaced: dict[int, SourceEntry] = {}  # a record overwritten in its place
        self._index: dict[str, int] | None = None
        self._live = 0
        for entry in entries:
            self.add(entry)

    def add(self, entry: SourceEntry) -> None:
        """Append an entry whose path is not held (unchecked until the index is built)."""
        if self._index is not None and entry.path in self._index:
            self[entry.path] = entry  # held after all: replaced in its place, as a dict does
            return
        if entry.checksum is None and entry.etag is None:  # a local walk's: the common case
            self._blob += _HEAD.pack(entry.size, entry.mtime_ns, 0, 0)
        else:
            checksum, etag = _encode(entry.checksum), _encode(entry.etag)
            self._blob += _HEAD.pack(entry.size, entry.mtime_ns, _length(checksum), _length(etag))
            self._blob += (checksum or b"") + (etag or b"")
        self._blob += entry.path.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._blob))
        self._gone.append(0)
        self._live += 1
        if self._index is not None:
            self._index[entry.path] = len(self._ends) - 1

    def __len__(self) -> int:
        return self._live

    def __iter__(self) -> Iterator[str]:
        for _, entry in self._records():
            yield entry.path

    def items(self) -> ItemsView[str, SourceEntry]:
        return _Items(self)

    def values(self) -> ValuesView[SourceEntry]:
        return _Values(self)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and path in self._indexed()

    def __getitem__(self, path: str) -> SourceEntry:
        return self._entry(self._indexed()[path])

    def __setitem__(self, path: str, entry: SourceEntry) -> None:
        if path != entry.path:
            raise ValueError(f"an entry for {entry.path!r} cannot be held as {path!r}")
        at = self._indexed().get(path)
        if at is None:
            self.add(entry)
        else:
            self._replaced[at] = entry  # in its place, as a dict keeps a replaced key's order

    def __delitem__(self, path: str) -> None:
        at = self._indexed().pop(path)
        self._gone[at] = 1
        self._replaced.pop(at, None)
        self._live -= 1

    def remove_all(self, paths: Collection[str]) -> None:
        """Delete those of `paths` that are held, in one scan: no index is built for them."""
        if self._index is not None:
            for path in paths:
                self.pop(path, None)
            return
        for at, entry in self._records():
            if entry.path in paths:
                self._gone[at] = 1
                self._replaced.pop(at, None)
                self._live -= 1

    def _indexed(self) -> dict[str, int]:
        if self._index is None:
            self._index = {entry.path: at for at, entry in self._records()}
        return self._index

    def newest_mtime_ns(self) -> int:
        """The newest mtime held, 0 when none (read from the records' heads alone)."""
        mtimes = [e.mtime_ns for e in self._replaced.values()]
        start, gone, replaced = 0, self._gone, self._replaced
        for at, end in enumerate(self._ends):
            if not gone[at] and at not in replaced:
                mtimes.append(_MTIME.unpack_from(self._blob, start + 8)[0])  # after the size
            start = end
        return max(mtimes, default=0)

    def _records(self) -> Iterator[tuple[int, SourceEntry]]:
        blob, start = memoryview(self._blob), 0
        gone, replaced = self._gone, self._replaced
        for at, end in enumerate(self._ends):
            if not gone[at]:
                yield at, replaced.get(at) or _unpack(blob, start, end)
            start = end

    def _entry(self, at: int) -> SourceEntry:
        replaced = self._replaced.get(at)
        if replaced is not None:
            return replaced
        start = self._ends[at - 1] if at else 0
        return _unpack(memoryview(self._blob), start, self._ends[at])


def _unpack(blob: memoryview, start: int, end: int) -> SourceEntry:
    size, mtime_ns, checksum_length, etag_length = _HEAD.unpack_from(blob, start)
    start += _HEAD.size
    checksum, start = _text(blob, start, checksum_length) if checksum_length else (None, start)
    etag, start = _text(blob, start, etag_length) if etag_length else (None, start)
    path = str(blob[start:end], "utf-8", "surrogatepass")
    return SourceEntry(path, size, mtime_ns, checksum, etag)


def _text(blob: memoryview, start: int, length: int) -> tuple[str, int]:
    """The text of `_length` `length` packed at `start`, and where the next field starts."""
    end = start + length - 1
    return str(blob[start:end], "utf-8", "surrogatepass"), end


class _Items(ItemsView[str, SourceEntry]):
    """Pairs decoded in order, with no index built (a dict's `items()` needs none either)."""

    _mapping: PackedEntries

    def __iter__(self) -> Iterator[tuple[str, SourceEntry]]:
        for _, entry in self._mapping._records():
            yield entry.path, entry


class _Values(ValuesView[SourceEntry]):
    _mapping: PackedEntries

    def __iter__(self) -> Iterator[SourceEntry]:
        for _, entry in self._mapping._records():
            yield entry


def _encode(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _length(encoded: bytes | None) -> int:
    return 0 if encoded is None else len(encoded) + 1
