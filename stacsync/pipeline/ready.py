"""Items whose files are all committed, so a first build renders them while others extract.

Counts the pass's outstanding files per item; an item is ready once none is left and at least
one of its files changed (an item whose files all turned out touched has nothing to render).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from stacsync.core.records import AssetMeta
from stacsync.pipeline.examine import Result, Work

ItemKey = tuple[str, str]  # (collection id, item id)


class ReadyItems:
    """Tracks one pass's work: `expect` each Work first, then `done(batch)` returns the items
    each batch of results completed."""

    def __init__(self) -> None:
        self._left: Counter[ItemKey] = Counter()
        self._changed: set[ItemKey] = set()

    def expect(self, work: Work) -> None:
        for key in _items_of(work):
            self._left[key] += 1

    def done(self, batch: list[Result]) -> list[ItemKey]:
        ready = []
        for result in batch:
            for key in _items_of(result.work):
                if result.extracted:
                    self._changed.add(key)
                self._left[key] -= 1
                if self._left[key] == 0:
                    # Its last file: forget the item (a first build tallies every item).
                    del self._left[key]
                    if key in self._changed:
                        self._changed.remove(key)
                        ready.append(key)
        return sorted(set(ready))


def _items_of(w: Work) -> set[ItemKey]:
    """Every item a work can change: where its file goes now and where it was."""
    keys = set()
    if w.placement is not None and w.placement.item_id:
        keys.add((w.placement.collection_id, w.placement.item_id))
    if w.old is not None and w.old.item_id:
        keys.add((w.old.collection_id, w.old.item_id))
    return keys


def extracted(batch: list[Result]) -> dict[str, AssetMeta]:
    """What a committed batch's files were extracted as, by path: their items render from
    these rather than parse the rows just written from them (thumbnails are kept apart)."""
    metas = {}
    for r in batch:
        if r.extracted and r.meta is not None:
            meta = r.meta
            metas[r.work.entry.path] = replace(meta, thumbnail=None) if meta.thumbnail else meta
    return metas
