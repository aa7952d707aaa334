"""The pystac side of the model: STAC and extension versions, links, and the dicts written.

Every STAC object is a pystac object serialised with `to_dict()`; nothing here touches a tree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pystac
from pystac.extensions.eo import EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.pointcloud import PointcloudExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from pystac.extensions.scientific import ScientificExtension

STAC_VERSION = "1.1.0"

# The versions stacsync writes: the schemas bundled in stacsync/schemas validate these.
PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
EO_EXT = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
POINTCLOUD_EXT = "https://stac-extensions.github.io/pointcloud/v2.0.0/schema.json"
FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
SCIENTIFIC_EXT = "https://stac-extensions.github.io/scientific/v1.0.0/schema.json"
ALTERNATE_EXT = "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json"

# An extension is declared exactly when a field with its prefix is written.
EXTENSION_BY_PREFIX = {
    "proj": PROJECTION_EXT,
    "raster": RASTER_EXT,
    "eo": EO_EXT,
    "pc": POINTCLOUD_EXT,
    "file": FILE_EXT,
    "sci": SCIENTIFIC_EXT,
}

# pystac's extension classes that target the very version above declare it themselves
# (today projection v2.0.0, file v2.1.0, scientific v1.0.0). pystac 1.x has raster and eo
# v1.1 (`raster:bands` / `eo:bands`, which STAC 1.1 replaced by the common `bands`) and
# pointcloud v1.0.0 (with pc:encoding, which v2.0.0 dropped): those URLs are added as they are.
_PYSTAC_EXTENSIONS = {
    ext.get_schema_uri(): ext
    for ext in (
        ProjectionExtension,
        RasterExtension,
        EOExtension,
        PointcloudExtension,
        FileExtension,
        ScientificExtension,
    )
}

if pystac.get_stac_version() != STAC_VERSION:  # pystac writes its own into every object
    raise ImportError(
        f"stacsync writes STAC {STAC_VERSION}, this pystac writes {pystac.get_stac_version()}"
    )


def declare(obj: pystac.STACObject, url: str) -> None:
    """Add an extension's schema URL to `stac_extensions`, through pystac's class if it has one."""
    if url in obj.stac_extensions:
        return  # the common case: every asset of an item declares the same few
    ext = _PYSTAC_EXTENSIONS.get(url)
    if ext is not None:
        ext.add_to(obj)
    else:
        obj.stac_extensions.append(url)


def declare_used(obj: pystac.STACObject, field_maps: Iterable[Mapping[str, Any]]) -> None:
    """Declare the extension of every prefixed field in the maps (and in their `bands`).

    For fields stacsync passes on without interpreting them: configured properties, extra
    collection fields, summaries and item_assets.
    """
    for fields in field_maps:
        for name in _field_names(fields):
            prefix, colon, _ = name.partition(":")
            url = EXTENSION_BY_PREFIX.get(prefix) if colon else None
            if url:
                declare(obj, url)


def _field_names(fields: Mapping[str, Any]) -> Iterator[str]:
    yield from fields
    bands = fields.get("bands")
    if isinstance(bands, list):
        for band in bands:
            if isinstance(band, Mapping):
                yield from band


def link(
    rel: str, href: str, media_type: str | None = None, title: str | None = None
) -> pystac.Link:
    """A link whose href is written exactly as given (a title where stacsync knows one)."""
    made = pystac.Link(rel, href, media_type=media_type, title=title or None)
    # The constructor rewrites backslashes (and makes a self href absolute against the working
    # directory): stacsync's hrefs are final, so the documented `target` setter puts them back.
    made.target = href
    return made


def to_dict(obj: pystac.Catalog | pystac.Item) -> dict[str, Any]:
    """The object as written: extensions sorted, hrefs untouched, self links kept (if any).

    pystac leaves `stac_extensions` out of a catalog or collection that declares none;
    stacsync has always written it, as an empty list, so it stays.
    """
    obj.stac_extensions.sort()
    out = obj.to_dict(include_self_link=True, transform_hrefs=False)
    out.setdefault("stac_extensions", [])
    return out


def plain(value: Any) -> Any:
    """Copy user-supplied JSON-able data with sorted mapping keys and lists for tuples."""
    if isinstance(value, Mapping):
        return {str(k): plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def asset(href: str, *, title: str, media_type: str, roles: list[str]) -> pystac.Asset:
    """An asset whose href is written exactly as given."""
    made = pystac.Asset(href, title=title, media_type=media_type, roles=roles)
    made.href = href  # the constructor turns backslashes, legal in a POSIX file name, into "/"
    return made


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Deterministic JSON bytes: indent 2, UTF-8, the dict's key order, final newline."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def feature_line(feature: Mapping[str, Any]) -> str:
    """One object as a single compact line, as index.geojson and the manifest hold it."""
    return json.dumps(feature, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
