"""index.geojson: every item as one line of a FeatureCollection, streamed, never all in memory.

Each feature is its item as written, with links that lead from the index back to the item.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from stacsync.catalog.links import GEOJSON_TYPE, JSON_TYPE, collection_path, item_path
from stacsync.catalog.model import link

CHUNK = 1 << 20  # characters of feature lines gathered before one write


def index_feature(item: Mapping[str, Any], href: str) -> dict[str, Any]:
    """The index's form of an item: the item itself, its links replaced by links from the index.

    `href` is the item file as seen from `index.geojson` (`Links.href(INDEX_PATH, item_path(..))`).
    The feature keeps assets and `collection` so the index alone is a usable ItemCollection;
    a `canonical` link points at the item file and a `collection` link at its collection.
    """
    cid, iid = item["collection"], item["id"]
    suffix = item_path(cid, iid)
    if not href.endswith(suffix):
        raise ValueError(f"index href {href!r} does not end with the item's path {suffix!r}")
    base = href[: -len(suffix)]
    feature = {key: value for key, value in item.items() if key != "links"}
    # A relative asset href (the thumbnail beside the item) is rebased to the index's folder.
    folder = posixpath.dirname(suffix)
    feature["assets"] = {
        key: _rebased(asset, folder) for key, asset in item.get("assets", {}).items()
    }
    feature["links"] = [
        link("canonical", href, GEOJSON_TYPE).to_dict(transform_href=False),
        link("collection", base + collection_path(cid), JSON_TYPE).to_dict(transform_href=False),
    ]
    return feature


def _rebased(asset: Mapping[str, Any], folder: str) -> Mapping[str, Any]:
    href = asset.get("href", "")
    if "://" in href or href.startswith("/"):
        return asset
    return {**asset, "href": "./" + posixpath.normpath(posixpath.join(folder, href))}


def write_index(lines: Iterable[str], out: BinaryIO) -> None:
    """Write a FeatureCollection of `feature_line`s, one per line, never holding them all.

    Written by hand rather than through pystac.ItemCollection, which holds every item; in
    writes of about `CHUNK` characters, not one per line (a line is ~8 KB, and each write is a
    system call and a hash update: ~10 ms of 60 at 1,429 items).
    """
    chunk = ['{"type":"FeatureCollection","features":[\n']
    size = 0
    separator = ""
    for line in lines:
        chunk += (separator, line)
        separator = ",\n"
        size += len(line)
        if size >= CHUNK:
            out.write("".join(chunk).encode("utf-8"))
            chunk, size = [], 0
    chunk.append("\n]}\n")
    out.write("".join(chunk).encode("utf-8"))
