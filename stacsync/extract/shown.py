"""Which raster an item shows as its thumbnail: a rank from the asset key and the header.

Light on purpose (no numpy): the catalog ranks with it, and a pass uses it to draw only the
thumbnail that can be shown instead of one per raster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stacsync.core.records import RasterInfo

# Asset keys of an orthomosaic: the thumbnail an item shows first.
ORTHO_KEYS = frozenset({"ortho", "orthomosaic", "orthophoto", "rgb"})
# Words in an asset key that name an elevation model: the second choice (drawn on a ramp).
ELEVATION_WORDS = frozenset({"dsm", "dtm", "chm", "dem"})


def show_rank(key: str, raster: RasterInfo | None) -> int:
    """Which file's thumbnail an item shows: the lowest rank, then the first asset key.

    0 for an orthomosaic (by its key, or 3+ bands of 8 bits), 1 for an elevation model (dsm,
    dtm, chm or dem in its key), 2 for any other raster.
    """
    rgb_like = raster is not None and len(raster.bands) >= 3
    if rgb_like and all(b.data_type == "uint8" for b in raster.bands):
        return 0
    return key_rank(key)


def key_rank(key: str) -> int:
    """The rank a raster keyed `key` has at worst, before its header is read."""
    if key.lower() in ORTHO_KEYS:
        return 0
    if set(re.split(r"[-_.\s]+", key.lower())) & ELEVATION_WORDS:
        return 1
    return 2


@dataclass(frozen=True, slots=True)
class ThumbnailBar:
    """What a raster must beat for its thumbnail to be shown: the best (rank, key) that the
    item's other rasters have at worst. A raster that sorts after it is never shown, so its
    thumbnail is not drawn."""

    key: str  # the raster's own asset key
    rank: int  # the others' best rank (an upper bound of their real one)
    other_key: str

    def draws(self, raster: RasterInfo | None) -> bool:
        return (show_rank(self.key, raster), self.key) <= (self.rank, self.other_key)


@dataclass(frozen=True, slots=True)
class PixelPolicy:
    """What a raster's one small pixel read is for, beyond tracing its data at overview scale."""

    thumbnail: ThumbnailBar | None = None  # draw only a thumbnail that can be shown; None: draw
    # Check the traced border at full resolution (reads grow with the border): worth it on a
    # local disk, where it costs milliseconds; over a network it can fetch much of a big COG.
    verify_border: bool = True

    def draws(self, raster: RasterInfo | None) -> bool:
        return self.thumbnail is None or self.thumbnail.draws(raster)
