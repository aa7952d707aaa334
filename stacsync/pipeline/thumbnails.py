"""Which rasters of a pass get a thumbnail drawn: only those their item may show.

An item shows one thumbnail (see `extract.shown`); drawing one per raster would spend most of
a first build's pixel work on images nobody sees.
"""

from __future__ import annotations

import dataclasses

from stacsync.core.records import AssetMeta
from stacsync.extract.dispatch import reader_for
from stacsync.extract.shown import PixelPolicy, ThumbnailBar, key_rank, show_rank
from stacsync.manifest.db import NO_THUMBNAIL, Manifest
from stacsync.pipeline.examine import Work

Ranked = tuple[int, str]  # (show rank at worst, asset key): the lowest is shown


class _ItemRasters:
    """One item's rasters in the pass, by key alone: the best two, and how often the best is."""

    __slots__ = ("best", "count", "known", "second")

    def __init__(self) -> None:
        self.best: Ranked | None = None
        self.count = 0
        self.second: Ranked | None = None  # the least above `best`
        self.known: Ranked | None = None  # the best of the item's good files not in the pass

    def add(self, ranked: Ranked) -> None:
        if self.best is None or ranked < self.best:
            self.best, self.second, self.count = ranked, self.best, 1
        elif ranked == self.best:
            self.count += 1
        elif self.second is None or ranked < self.second:
            self.second = ranked

    def others(self, ranked: Ranked) -> Ranked | None:
        """The best (rank, key) of the item's rasters but one raster ranked `ranked`."""
        in_pass = self.second if ranked == self.best and self.count == 1 else self.best
        return min((r for r in (in_pass, self.known) if r is not None), default=None)


class ThumbnailBars:
    """The bar each raster of a pass must beat to be shown: the best (rank, key) its item's
    other rasters have at worst. The rasters in the pass count by their key alone (their
    header is not read yet), the item's other good files by their known header. A raster
    that cannot beat its bar is never shown, so it draws nothing.

    `add` every Work of the pass, `finish` once, then `bar` for each. It keeps a few facts per
    item, never a Work: a first build's work list is not held whole.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], _ItemRasters] = {}
        self._again: set[str] = set()  # known files the pass examines again: not "other files"
        self._shared: dict[tuple[str, int, str], ThumbnailBar] = {}  # a few distinct ones

    def add(self, work: Work) -> None:
        if work.old is not None:
            self._again.add(work.entry.path)
        place = _where(work)
        if place is not None and reader_for(work.entry.path) == "raster":
            cid, iid, key = place
            self._items.setdefault((cid, iid), _ItemRasters()).add((key_rank(key), key))

    def finish(self, db: Manifest) -> None:
        """Read the known headers of the items' other good rasters."""
        for (cid, iid), rasters in self._items.items():
            known = [
                (
                    show_rank(row["asset_key"], AssetMeta.from_json(row["meta_json"]).raster),
                    row["asset_key"],
                )
                for row in db.item_files(cid, iid)
                if row["path"] not in self._again and reader_for(row["path"]) == "raster"
            ]
            rasters.known = min(known, default=None)
        self._again.clear()

    def bar(self, work: Work) -> Work:
        """`work` with its bar; as it is when it is no raster or its item has no other."""
        place = _where(work)
        if place is None or reader_for(work.entry.path) != "raster":
            return work
        cid, iid, key = place
        others = self._items[(cid, iid)].others((key_rank(key), key))
        if others is None:
            return work
        rank, other_key = others
        bar = self._shared.setdefault((key, rank, other_key), ThumbnailBar(key, rank, other_key))
        return dataclasses.replace(work, thumbnail=bar)


def _where(w: Work) -> tuple[str, str, str] | None:
    """(collection, item, asset key) of a work: its new placement, else where it was."""
    if w.placement is not None:
        return (w.placement.collection_id, w.placement.item_id, w.placement.asset_key)
    if w.old is not None and w.old.item_id:
        return (w.old.collection_id, w.old.item_id, w.old.asset_key)
    return None


def kept_thumbnail(work: Work, meta: AssetMeta, read_overviews: bool) -> bytes | None:
    """What the manifest keeps of a file's thumbnail after its extraction: the PNG drawn;
    NO_THUMBNAIL when the extraction was to draw one and could not (the item then never asks
    the pass to read the file again for it); None when none was to be drawn."""
    if meta.thumbnail is not None:
        return meta.thumbnail
    wanted = meta.raster is not None and PixelPolicy(work.thumbnail).draws(meta.raster)
    return NO_THUMBNAIL if read_overviews and wanted else None
