"""An item's thumbnail PNG: which raster's it shows, and keeping the published copy current.

The PNGs themselves were drawn at extraction (only for the raster an item can show) and wait
in the manifest; this writes the one an item shows beside it, or draws it when it is missing.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from stacsync.core.checksum import sha256_hex
from stacsync.extract.shown import show_rank
from stacsync.manifest.db import NO_THUMBNAIL

if TYPE_CHECKING:
    from stacsync.config.settings import Settings
    from stacsync.manifest.db import Manifest
    from stacsync.publish.base import Output
    from stacsync.sources import Source

log = logging.getLogger(__name__)


class ItemThumbnails:
    """The thumbnails of one pass's items, over its manifest, output and source."""

    def __init__(self, settings: Settings, db: Manifest, output: Output, source: Source):
        self.settings = settings
        self.db = db
        self.output = output
        self.source = source

    def shown(self, rows: list, assets: tuple) -> tuple[str, str] | None:
        """(path, PNG hash) of the file whose thumbnail the item shows, or None.

        The orthomosaic's, else the first elevation model's, else the first other raster's;
        point clouds have none. An item with a data asset keyed "thumbnail" gets none.
        """
        from stacsync.catalog.items import THUMBNAIL_KEY

        if any(a.key == THUMBNAIL_KEY for a in assets):
            return None
        ranked = sorted(
            (show_rank(asset.key, asset.meta.raster), asset.key, row["path"])
            for row, asset in zip(rows, assets, strict=True)
            if asset.meta.raster is not None
        )
        if not ranked:
            return None
        hashes = self.db.thumbnail_hashes(path for _, _, path in ranked)
        for _, _, path in ranked:
            digest = hashes.get(path)
            if digest is None and self.settings.read_overviews:
                # A pass draws only the thumbnail an item can show (pipeline.thumbnails); when
                # that raster went away or could not be drawn ("" kept for it), the next in
                # line was never drawn: draw it now.
                digest = self._draw(path)
            if digest:
                return path, digest
        return None

    def _draw(self, path: str) -> str | None:
        """Read one raster's overview again for its thumbnail and keep it: its hash; "" when
        none can be drawn (kept too); None when the file cannot be read now."""
        from stacsync.extract.dispatch import extract_file, extract_stream

        try:
            readable = self.source.readable_path(path)
            if readable is not None:
                meta = extract_file(readable)
            else:
                name = PurePosixPath(path).name
                entry = self.source.stat(path)
                size = entry.size if entry is not None else 0
                meta = extract_stream(name, size, lambda: self.source.open(path))
        except Exception as exc:  # the file is read again next pass if it changes
            log.warning("no thumbnail for %s: %s", path, exc)
            return None
        self.db.set_thumbnail(path, NO_THUMBNAIL if meta.thumbnail is None else meta.thumbnail)
        return "" if meta.thumbnail is None else sha256_hex(meta.thumbnail)

    def publish(self, relpath: str, source: tuple[str, str] | None) -> None:
        """Write the item's PNG when its bytes changed or it is missing; drop it if it has none."""
        if source is None:
            self.drop(relpath)
            return
        path, digest = source
        if digest == self.db.written_hash(relpath) and self.output.exists(relpath):
            return
        png = self.db.thumbnail(path)
        if png is None:  # gone since the hashes were read: nothing to show
            self.drop(relpath)
            return
        self.output.write(relpath, png)
        self.db.set_written_hash(relpath, digest)

    def drop(self, relpath: str) -> None:
        # Only a PNG we wrote: a stat per item without one would cost a round trip on iRODS.
        if self.db.written_hash(relpath) is not None:
            self.output.delete(relpath)
            self.db.set_written_hash(relpath, None)
