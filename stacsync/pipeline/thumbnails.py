"""Which rasters of a pass get a thumbnail drawn: only those their item may show.

An item shows one thumbnail (see `extract.shown`); drawing one per raster would spend most of
a first build's pixel work on images nobody sees.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from stacsync.core.records import AssetMeta
from stacsync.extract.dispatch import reader_for
from stacsync.extract.shown import PixelPolicy, ThumbnailBar, key_rank, show_rank
from stacsync.manifest.db import NO_THUMBNAIL, Manifest
from stacsync.pipeline.examine import Work


def with_thumbnail_bars(work: list[Work], db: Manifest) -> list[Work]:
    """`work`, changed in place: a `ThumbnailBar` on each raster whose item has other rasters.

    The bar is the best (rank, key) the item's other rasters have at worst: the rasters in
    this pass by their key alone (their header is not read yet), the item's other good files
    by their known header. A raster that cannot beat it is never shown, so it draws nothing.
    In place, so that a first build never holds two Works for a raster.
    """
    by_item: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for index, w in enumerate(work):
        place = _where(w)
        if place is not None and reader_for(w.entry.path) == "raster":
            cid, iid, key = place
            by_item[(cid, iid)].append((index, key))
    bars: dict[tuple[str, int, str], ThumbnailBar] = {}  # a few distinct ones: share them
    for (cid, iid), rasters in by_item.items():
        in_work = {work[i].entry.path for i, _ in rasters}
        known = [
            (
                show_rank(row["asset_key"], AssetMeta.from_json(row["meta_json"]).raster),
                row["asset_key"],
            )
            for row in db.item_files(cid, iid)
            if row["path"] not in in_work and reader_for(row["path"]) == "raster"
        ]
        for i, key in rasters:
            others = known + [(key_rank(k), k) for j, k in rasters if j != i]
            if others:
                rank, other_key = min(others)
                bar = bars.setdefault((key, rank, other_key), ThumbnailBar(key, rank, other_key))
                work[i] = dataclasses.replace(work[i], thumbnail=bar)
    return work


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
