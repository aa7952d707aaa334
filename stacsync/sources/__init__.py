"""Where asset files live: the seam between stacsync and a store's bytes.

`Source` is what a pass needs from a store; `local` implements it for folders and mounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

from stacsync.core.names import display
from stacsync.core.packed import PackedEntries
from stacsync.core.records import SourceEntry


@dataclass
class Listing:
    """One listing of a source: the files seen, and the folders that could not be read.

    Files under a folder in `failed_dirs` must not be treated as removed.
    """

    # Packed: a big store's listing is a first build's largest object (`core.packed`).
    entries: PackedEntries = field(default_factory=PackedEntries)
    failed_dirs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scope: frozenset[str] | None = None  # a partial listing: only these paths were looked at
    # Paths seen but not listed (a FIFO named *.tif, a link out of the source, a loop…), with
    # the reason: the manifest keeps them so `stacsync manifest errors` can show them.
    skipped: dict[str, str] = field(default_factory=dict)

    def listed(self) -> int:
        """How many files the source listed (some may be held back from this pass)."""
        return len(self.entries)

    def facts(self) -> ListingFacts:
        """What a pass keeps of this listing once its diff is done (the entries can go)."""
        return ListingFacts(
            files=len(self.entries),
            newest_mtime_ns=self.entries.newest_mtime_ns(),
            full=self.scope is None,
            clean=not (self.failed_dirs or self.skipped or self.problems),
        )

    def skip(self, relpath: str, reason: str) -> None:
        """Record a path that was seen and left out, and why (a sentence a person can act on)."""
        self.skipped[relpath] = reason
        self.problems.append(f"{display(relpath) or '.'}: {reason}")

    def covers(self, relpath: str) -> bool:
        """True when the listing could see where `relpath` lives (so absence means removal)."""
        if self.scope is not None and relpath not in self.scope:
            return False
        return not any(
            d == "" or relpath == d or relpath.startswith(d + "/") for d in self.failed_dirs
        )


@dataclass(frozen=True, slots=True)
class ListingFacts:
    """A listing summed up for the pass's witness: a pass drops the entries after its diff."""

    files: int
    newest_mtime_ns: int  # 0 when nothing was listed
    full: bool  # the whole source, not a partial (event-driven) listing
    clean: bool  # no folder failed, no path skipped, no problem reported


class Source(Protocol):
    """A store of asset files addressed by POSIX paths relative to its root."""

    # True when every read is a network round trip (iRODS): a file is never hashed by reading
    # it whole during a pass; the store's own checksum is used, or none.
    remote: bool

    def list(self) -> Listing: ...

    def stat(self, relpath: str) -> SourceEntry | None: ...

    def open(self, relpath: str) -> BinaryIO: ...

    def local_path(self, relpath: str) -> str:
        """The file's absolute path as the store names it (hrefs are made from it)."""
        ...

    def readable_path(self, relpath: str) -> str | None:
        """A path GDAL and laspy can open directly, or None: read through `open()`."""
        ...

    def stored_checksum(self, relpath: str) -> str | None:
        """The checksum (multihash hex) the store keeps for a file but does not list, fetched
        on its own (S3: one HEAD); None when it keeps none or lists it (`SourceEntry`)."""
        ...


@runtime_checkable
class IncrementalSource(Source, Protocol):
    """A source that can list only what changed since a time (iRODS: a query on modify time)."""

    def list_since(self, since_epoch: float) -> Listing:
        """Entries modified at or after `since_epoch` (minus a clock-skew margin).

        The listing's `scope` is the paths it returned: absence from it never means removal.
        """
        ...
