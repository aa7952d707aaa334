"""Where each catalog file lives, and the hrefs between them (relative, or under a public URL).

Plain strings, no pystac: a pass that renders nothing loads only this module of the model.
"""

from __future__ import annotations

import posixpath

from stacsync.core.ids import safe_id

JSON_TYPE = "application/json"
GEOJSON_TYPE = "application/geo+json"
HTML_TYPE = "text/html"
PNG_TYPE = "image/png"

INDEX_PATH = "index.geojson"
_CATALOG_FILE = "catalog.json"
_COLLECTION_FILE = "collection.json"
PARQUET_PATH = "items.parquet"  # the GeoParquet copy of the items, beside the index
_ROOT_FILES = (_CATALOG_FILE, INDEX_PATH, PARQUET_PATH)
# Folder of an owner's pages (see stacsync.catalog.pages), beside the owner's file. An id
# never starts with "_" (`safe_id` and `item_id` strip it): no collection or item is named so.
PAGES_FOLDER = "_pages"


def catalog_path() -> str:
    """Path of the root catalog, relative to the output root."""
    return _CATALOG_FILE


def collection_path(collection_id: str) -> str:
    """Path of a collection file, relative to the output root."""
    _check_id(collection_id, "collection", reserved=_ROOT_FILES)
    return f"{collection_id}/{_COLLECTION_FILE}"


def item_path(collection_id: str, item_id: str) -> str:
    """Path of an item file, relative to the output root."""
    _check_id(collection_id, "collection", reserved=_ROOT_FILES)
    _check_id(item_id, "item", reserved=(_COLLECTION_FILE,))
    return f"{collection_id}/{item_id}/{item_id}.json"


def page_path(owner_path: str, prefix: str) -> str:
    """The file of the page `prefix` of the owner at `owner_path` ("" is the owner itself)."""
    if not prefix:
        return owner_path
    folder = posixpath.dirname(owner_path)
    return posixpath.join(folder, PAGES_FOLDER, prefix, _CATALOG_FILE)


def pages_folder(owner_path: str) -> str:
    """The folder holding every page of the owner at `owner_path`, with a trailing slash."""
    return posixpath.join(posixpath.dirname(owner_path), PAGES_FOLDER) + "/"


def thumbnail_path(collection_id: str, item_id: str) -> str:
    """Path of an item's thumbnail PNG, beside the item file."""
    return item_path(collection_id, item_id).removesuffix(".json") + ".png"


def _check_id(value: str, what: str, reserved: tuple[str, ...]) -> None:
    # Last defence: ids are sanitised upstream, but a bad one here would write outside the tree.
    if not isinstance(value, str) or safe_id(value) != value:
        raise ValueError(f"unsafe {what} id {value!r}: not usable as a file or folder name")
    if value in reserved:
        raise ValueError(f"{what} id {value!r} would collide with {value} in the catalog layout")


class Links:
    """Build link hrefs: relative for a self-contained catalog, absolute under a public URL."""

    def __init__(self, public_url: str | None) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None

    @property
    def is_public(self) -> bool:
        """Whether hrefs are absolute (and self links are written)."""
        return self.public_url is not None

    def href(self, from_path: str, to_path: str) -> str:
        """Href from the file at `from_path` to the file at `to_path` (both root-relative)."""
        if self.public_url is not None:
            return f"{self.public_url}/{to_path}"
        rel = posixpath.relpath(to_path, posixpath.dirname(from_path) or ".")
        return rel if rel.startswith("../") else f"./{rel}"

    def self_href(self, path: str) -> str | None:
        """The file's own absolute URL when public; None otherwise (self links are absolute)."""
        return None if self.public_url is None else f"{self.public_url}/{path}"
