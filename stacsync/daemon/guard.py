"""A source for the daemon's full passes that holds back what is not settled or not confirmed gone.

It also turns a listing that finds nothing while the manifest knows files into a failed one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import BinaryIO

from stacsync.core.packed import PackedEntries
from stacsync.core.records import SourceEntry
from stacsync.sources import Listing, Source

log = logging.getLogger(__name__)


@dataclass
class _GuardedListing(Listing):
    protected: set[str] = field(default_factory=set)  # neither extracted nor removed this pass
    listed_count: int = 0  # what the source listed, young files held back included

    def listed(self) -> int:
        return self.listed_count

    def covers(self, relpath: str) -> bool:
        return relpath not in self.protected and super().covers(relpath)


class GuardedSource:
    """Wraps the source of a daemon full pass.

    A listed file that is still young (or already waiting to settle) is held back for the
    settler; a known file missing from the listing is kept until a second look confirms it is
    gone; a listing that saw nothing, or a source whose mount changed, counts as failed.
    """

    def __init__(
        self,
        inner: Source,
        *,
        known: Collection[str],
        held: Collection[str],
        min_age_seconds: float,
        mount_problem: Callable[[], str | None] = lambda: None,
        hold: Callable[[str, bool], None] = lambda path, quick: None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ):
        self.inner = inner
        self._hold = hold  # (path, quick): hand a held-back path to the settler
        self._known = known
        self._held = held
        self._min_age_ns = int(min_age_seconds * 1e9)
        self._mount_problem = mount_problem
        self._wall_ns = wall_clock_ns
        self.young: list[str] = []  # listed but not settled: hand to the settler
        self.missing: list[str] = []  # known, not listed: look again before removing
        self.failed = False  # the source could not be listed at all

    def list(self) -> Listing:
        listing = self._checked(self.inner.list())
        self.failed = "" in listing.failed_dirs
        guarded = _GuardedListing(
            entries=PackedEntries(listing.entries.values()),
            failed_dirs=listing.failed_dirs,
            problems=listing.problems,
            scope=listing.scope,
            skipped=listing.skipped,
            listed_count=listing.listed(),
        )
        newest_ok = self._wall_ns() - self._min_age_ns
        for path, entry in listing.entries.items():
            if path in self._held or entry.mtime_ns > newest_ok:
                del guarded.entries[path]
                guarded.protected.add(path)
                if path not in self._held:
                    self.young.append(path)
                    self._hold(path, False)
        for path in self._known:
            if path in guarded.entries or path in guarded.protected:
                continue
            if path in self._held or guarded.covers(path):
                guarded.protected.add(path)
                if path not in self._held:
                    self.missing.append(path)
                    self._hold(path, True)
        return guarded

    def _checked(self, listing: Listing) -> Listing:
        problem = self._mount_problem()
        if problem is None and not listing.entries and self._known and not listing.failed_dirs:
            problem = (
                f"the source lists no files but the manifest knows {len(self._known)}: taken as "
                "a failed listing (mount gone?), nothing removed; if the files really are gone, "
                "stop the daemon and run `stacsync rescan`"
            )
        if problem is None:
            return listing
        log.warning("%s", problem)
        return Listing(failed_dirs=[""], problems=[*listing.problems, problem])

    def stat(self, relpath: str) -> SourceEntry | None:
        return self.inner.stat(relpath)

    def open(self, relpath: str) -> BinaryIO:
        return self.inner.open(relpath)

    def local_path(self, relpath: str) -> str:
        return self.inner.local_path(relpath)

    def readable_path(self, relpath: str) -> str | None:
        return self.inner.readable_path(relpath)

    def stored_checksum(self, relpath: str) -> str | None:
        return self.inner.stored_checksum(relpath)

    @property
    def remote(self) -> bool:
        return self.inner.remote
