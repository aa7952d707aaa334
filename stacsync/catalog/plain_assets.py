"""Plain image assets (a PNG thumbnail the store already holds) beside an item's geospatial ones.

They have no CRS and no place: kept out of the footprint and the projection fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stacsync.catalog.items import (
    THUMBNAIL_KEY,
    AssetInput,
    ItemInput,
    alternate_field,
    title_from_key,
)
from stacsync.catalog.model import ALTERNATE_EXT, asset
from stacsync.extract.dispatch import IMAGE_KIND


def split_plain(item: ItemInput) -> tuple[ItemInput, tuple[AssetInput, ...]]:
    """The item with its geospatial assets only, and its plain images.

    ValueError when nothing geospatial is left: an item's geometry comes from its files.
    """
    plain = tuple(a for a in item.assets if a.meta.kind == IMAGE_KIND)
    if not plain:
        return item, ()
    kept = tuple(a for a in item.assets if a.meta.kind != IMAGE_KIND)
    if not kept:
        keys = ", ".join(a.key for a in plain)
        raise ValueError(
            f"item {item.item_id!r} has only plain images ({keys}) and no GeoTIFF or point "
            "cloud to give it a place; it is published once one is there"
        )
    return dataclasses.replace(item, assets=kept), plain


def with_plain(item: dict[str, Any], plain: tuple[AssetInput, ...]) -> dict[str, Any]:
    """The rendered item dict with its plain images added, assets still sorted by key."""
    if not plain:
        return item
    assets = dict(item["assets"])
    for source in plain:
        assets[source.key] = _plain_asset(source)
        if "alternate" in assets[source.key] and ALTERNATE_EXT not in item["stac_extensions"]:
            item["stac_extensions"].append(ALTERNATE_EXT)
    item["assets"] = dict(sorted(assets.items()))
    return item


def _plain_asset(source: AssetInput) -> dict[str, Any]:
    thumbnail = source.key == THUMBNAIL_KEY
    title = source.title or ("Thumbnail" if thumbnail else title_from_key(source.key))
    # `overview` for any other picture of the data: a person looks at it, software reads the rest.
    roles = ["thumbnail"] if thumbnail else ["overview"]
    made = asset(source.href, title=title, media_type=source.meta.media_type, roles=roles)
    out = made.to_dict()
    out["file:size"] = source.size  # the file extension is declared by the item's data assets
    if source.checksum:
        out["file:checksum"] = source.checksum.lower()
    if source.alternate:  # as the data assets say it (alternate-assets)
        out["alternate"] = alternate_field(source.alternate)
    return out
