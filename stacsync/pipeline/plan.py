"""The files a pass will examine, held as little as possible until the extraction takes each.

What the pass needs of the whole list (the items each file completes, the thumbnail bars) is
tallied per item as files are planned; a new file is kept as its packed listing entry alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from stacsync.core.packed import PackedEntries
from stacsync.core.records import SourceEntry
from stacsync.manifest.db import Manifest
from stacsync.pipeline.examine import Work
from stacsync.pipeline.ready import ReadyItems
from stacsync.pipeline.thumbnails import ThumbnailBars


class WorkPlan:
    """One pass's work, in the order it is planned (the order results are committed in).

    A first build plans every file: a Work per file (its stat, its placement) held from the
    diff to the end was most of a big pass's memory. So a new file is held as its packed
    listing entry and placed again (`place_again`: a regex and a cached table row) when the
    extraction takes it, and each Work is dropped once taken.
    """

    def __init__(self, place_again: Callable[[SourceEntry], Work]):
        self._place_again = place_again
        self._held: list[Work | None] = []  # None: the next of the packed new files
        self._new = PackedEntries()
        self._bars = ThumbnailBars()
        self.ready = ReadyItems()
        self.to_extract = 0  # files whose header is read for sure (not checksummed first)
        self.first_to_extract: str | None = None  # the first one's path

    def add(self, work: Work) -> None:
        self.ready.expect(work)
        self._bars.add(work)
        if not work.checksum_first:
            self.to_extract += 1
            self.first_to_extract = self.first_to_extract or work.entry.path
        if work.old is None and work.placement is not None and not work.checksum_first:
            self._new.add(work.entry)
            self._held.append(None)
        else:
            self._held.append(work)

    def __len__(self) -> int:
        return len(self._held)

    def finish(self, db: Manifest) -> None:
        """Once every file is planned: what the thumbnail bars need from the manifest."""
        self._bars.finish(db)

    def handed_over(self) -> Iterator[Work]:
        """Each Work in order, with its thumbnail bar, forgotten by the plan as it is taken."""
        held, new = self._held, iter(self._new.values())
        held.reverse()
        while held:
            kept = held.pop()
            yield self._bars.bar(kept or self._place_again(next(new)))
        # Nothing is left to hand over: the buffer goes with `new`, and no bar is asked for.
        self._new, self._bars = PackedEntries(), ThumbnailBars()
