"""Render manifest records as STAC 1.1.0 JSON dicts, one object at a time.

Pure functions, no I/O: the same input always gives byte-identical JSON from `dumps`.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any, BinaryIO

from stacsync.config.templates import DESCRIPTION, Template
from stacsync.core.ids import safe_id
from stacsync.core.records import (
    EO_COMMON_NAMES,
    AssetMeta,
    Band,
    BBox,
    PointCloudInfo,
    RasterInfo,
)

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

STAC_VERSION = "1.1.0"

PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
EO_EXT = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
POINTCLOUD_EXT = "https://stac-extensions.github.io/pointcloud/v2.0.0/schema.json"
FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
SCIENTIFIC_EXT = "https://stac-extensions.github.io/scientific/v1.0.0/schema.json"

# An extension is declared exactly when a field with its prefix is written.
_EXTENSION_BY_PREFIX = {
    "proj": PROJECTION_EXT,
    "raster": RASTER_EXT,
    "eo": EO_EXT,
    "pc": POINTCLOUD_EXT,
    "file": FILE_EXT,
    "sci": SCIENTIFIC_EXT,
}

JSON_TYPE = "application/json"
GEOJSON_TYPE = "application/geo+json"
HTML_TYPE = "text/html"

INDEX_PATH = "index.geojson"
_CATALOG_FILE = "catalog.json"
_COLLECTION_FILE = "collection.json"
_PARQUET_FILE = (
    "items.parquet"  # stacsync.catalog.geoparquet.PARQUET_PATH, written beside the index
)

SPDX_LICENSE_URL = "https://spdx.org/licenses/{}.html"
# STAC's words for "no single SPDX license": spdx.org has no page to link them to.
_NOT_SPDX = frozenset(("other", "proprietary", "various"))
_SPDX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\+?")

WORLD_BBOX: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
COORD_DECIMALS = 9  # 1e-9 degrees is ~0.1 mm: below any survey precision, stable across runs

# fmt: off
# STAC 1.1 `data_type` vocabulary; numpy spells complex types differently.
_DATA_TYPES = frozenset((
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
    "float32", "float64", "cint16", "cint32", "cfloat32", "cfloat64",
))
# fmt: on
_NUMPY_DATA_TYPES = {"complex64": "cfloat32", "complex128": "cfloat64"}
_CHECKSUM = re.compile(r"[0-9a-f]+")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class AssetInput:
    """One asset file of an item, with its final href."""

    key: str  # already-safe asset key
    href: str  # public URL or local absolute path, mapped by the caller
    title: str | None
    size: int
    checksum: str | None  # multihash hex ("1220" + sha256 hex); None when checksums are off
    meta: AssetMeta


@dataclass(frozen=True)
class ItemInput:
    """Everything an item file is made of."""

    collection_id: str
    item_id: str
    datetime: str  # ISO 8601 UTC, "2023-05-25T12:00:00Z"
    properties: Mapping[str, Any]  # extra static properties (JSON-able)
    assets: tuple[AssetInput, ...]
    pc_type: str = "lidar"
    thumbnail: bool = False  # a PNG is published beside the item (at `thumbnail_path`)
    title: str | None = None


@dataclass(frozen=True)
class ItemsSummary:
    """What a collection's items share, and the range or set of the values that differ.

    Made by `summarise_items` in one pass over the rendered items.
    """

    items: int
    summaries: Mapping[str, Any]  # STAC `summaries`, ready to write
    item_assets: Mapping[str, Mapping[str, Any]]  # asset key → fields all its assets share


@dataclass(frozen=True)
class CollectionInput:
    """A collection's own fields plus aggregates the caller computed from the manifest."""

    id: str
    title: str | None
    # A template: {items}, {start}, {end}, {id} and {title} are filled in (see _description).
    description: str
    license: str
    keywords: tuple[str, ...]
    providers: tuple[Mapping[str, Any], ...]
    bbox: BBox | None  # union of item bboxes; None when the collection is empty
    start: str | None
    end: str | None
    item_ids: tuple[str, ...]
    extra_fields: Mapping[str, Any] = field(default_factory=dict)
    items_summary: ItemsSummary | None = None  # None: no summaries, no item_assets
    asset_titles: Mapping[str, str] = field(default_factory=dict)  # asset key → title
    license_url: str | None = None  # the license text; default spdx.org for an SPDX id


@dataclass(frozen=True)
class CatalogInput:
    """The root catalog."""

    id: str
    title: str | None
    description: str
    collection_ids: tuple[str, ...]


# --------------------------------------------------------------------------- paths and links


def catalog_path() -> str:
    """Path of the root catalog, relative to the output root."""
    return _CATALOG_FILE


_ROOT_FILES = (_CATALOG_FILE, INDEX_PATH, _PARQUET_FILE)


def collection_path(collection_id: str) -> str:
    """Path of a collection file, relative to the output root."""
    _check_id(collection_id, "collection", reserved=_ROOT_FILES)
    return f"{collection_id}/{_COLLECTION_FILE}"


def item_path(collection_id: str, item_id: str) -> str:
    """Path of an item file, relative to the output root."""
    _check_id(collection_id, "collection", reserved=_ROOT_FILES)
    _check_id(item_id, "item", reserved=(_COLLECTION_FILE,))
    return f"{collection_id}/{item_id}/{item_id}.json"


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

    def link(self, rel: str, from_path: str, to_path: str, media_type: str) -> dict[str, str]:
        """One link object."""
        return {"rel": rel, "href": self.href(from_path, to_path), "type": media_type}

    def self_link(self, path: str, media_type: str) -> list[dict[str, str]]:
        """[self link] when public; [] otherwise, since self links must be absolute."""
        if self.public_url is None:
            return []
        return [{"rel": "self", "href": f"{self.public_url}/{path}", "type": media_type}]


# --------------------------------------------------------------------------- items


PNG_TYPE = "image/png"
THUMBNAIL_KEY = "thumbnail"


def render_item(item: ItemInput, links: Links) -> dict[str, Any]:
    """STAC Item dict for one item; assets sorted by key, the thumbnail among them."""
    path = item_path(item.collection_id, item.item_id)
    assets = _sorted_assets(item.assets, item.item_id)
    geometry, bbox = footprint([a.meta for a in assets])
    properties = _item_properties(item, assets)
    rendered_assets = {a.key: _render_asset(a, item.pc_type) for a in assets}
    if item.thumbnail and THUMBNAIL_KEY not in rendered_assets:  # a data asset keeps its key
        png = links.href(path, thumbnail_path(item.collection_id, item.item_id))
        rendered_assets[THUMBNAIL_KEY] = _thumbnail_asset(png)
        rendered_assets = dict(sorted(rendered_assets.items()))
    coll = collection_path(item.collection_id)
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": _extensions([properties, *rendered_assets.values()]),
        "id": item.item_id,
        "collection": item.collection_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": properties,
        "links": [
            links.link("root", path, catalog_path(), JSON_TYPE),
            links.link("parent", path, coll, JSON_TYPE),
            links.link("collection", path, coll, JSON_TYPE),
            *links.self_link(path, GEOJSON_TYPE),
        ],
        "assets": rendered_assets,
    }


def _sorted_assets(assets: Sequence[AssetInput], item_id: str) -> list[AssetInput]:
    if not assets:
        raise ValueError(f"item {item_id!r} has no assets")
    ordered = sorted(assets, key=lambda a: a.key)
    keys = [a.key for a in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError(f"item {item_id!r} has duplicate asset keys: {keys}")
    return ordered


def _item_properties(item: ItemInput, assets: Sequence[AssetInput]) -> dict[str, Any]:
    # Derived values first so that explicitly configured properties win over them;
    # `datetime` is always the item's own (it has its own input field).
    derived: dict[str, Any] = {}
    gsd = _finest_resolution(a.meta for a in assets)
    if gsd is not None:
        derived["gsd"] = gsd
    merged = {**derived, **_plain(item.properties)}
    merged.pop("datetime", None)
    if item.title:
        merged["title"] = item.title
    return {"datetime": item.datetime, **dict(sorted(merged.items()))}


def _finest_resolution(metas: Iterable[AssetMeta]) -> float | None:
    found = [
        m.raster.resolution_m
        for m in metas
        if m.raster is not None and m.raster.resolution_m is not None and m.raster.resolution_m > 0
    ]
    return min(found) if found else None


def _render_asset(asset: AssetInput, pc_type: str) -> dict[str, Any]:
    meta = asset.meta
    out: dict[str, Any] = {
        "href": asset.href,
        "type": meta.media_type,
        "title": asset.title or _title_from_key(asset.key),
        "roles": _roles(meta),
    }
    out.update(_projection_fields(meta))
    if meta.raster is not None:
        out.update(_raster_fields(meta.raster))
    if meta.pointcloud is not None:
        out.update(_pointcloud_fields(meta.pointcloud, pc_type))
    out["file:size"] = asset.size
    if asset.checksum:
        out["file:checksum"] = _checksum(asset.checksum, asset.key)
    return out


def _roles(meta: AssetMeta) -> list[str]:
    """`data`, and `visual` for an 8-bit RGB(A) image a person can look at as it is."""
    raster = meta.raster
    if raster is None or len(raster.bands) not in (3, 4):
        return ["data"]
    if all(b.data_type == "uint8" for b in raster.bands):
        return ["data", "visual"]
    return ["data"]


def _thumbnail_asset(href: str) -> dict[str, Any]:
    return {"href": href, "type": PNG_TYPE, "title": "Thumbnail", "roles": ["thumbnail"]}


def _title_from_key(key: str) -> str:
    words = re.sub(r"[-_.]+", " ", key).strip() or key
    return words[:1].upper() + words[1:]


def _checksum(value: str, key: str) -> str:
    hexed = value.lower()
    if not _CHECKSUM.fullmatch(hexed):
        raise ValueError(f"asset {key!r}: checksum {value!r} is not multihash hex")
    return hexed


def _projection_fields(meta: AssetMeta) -> dict[str, Any]:
    # proj:code is null (not absent) when the CRS has no authority code: the v2.0.0 spec asks
    # for that so clients know to read proj:wkt2 instead.
    out: dict[str, Any] = {"proj:code": meta.crs_code}
    if meta.crs_code is None:
        out["proj:wkt2"] = meta.crs_wkt2
    west, south, east, north = meta.bbox_native
    if meta.pointcloud is not None:
        # Point clouds are 3D: the 6-value form keeps the header's z range.
        zmin, zmax = meta.pointcloud.mins[2], meta.pointcloud.maxs[2]
        out["proj:bbox"] = [west, south, zmin, east, north, zmax]
    else:
        out["proj:bbox"] = [west, south, east, north]
    if meta.raster is not None:
        out["proj:shape"] = [meta.raster.height, meta.raster.width]
        out["proj:transform"] = list(meta.raster.transform)
    return out


def _raster_fields(raster: RasterInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if raster.resolution_m is not None and raster.resolution_m > 0:
        # One grid for every band: the asset level says it once.
        out["raster:spatial_resolution"] = raster.resolution_m
    out["bands"] = [_band(i, band) for i, band in enumerate(raster.bands, start=1)]
    return out


def _band(number: int, band: Band) -> dict[str, Any]:
    data_type = _data_type(band.data_type)
    out: dict[str, Any] = {"name": f"b{number}"}
    if band.description:
        out["description"] = band.description
    out["data_type"] = data_type
    if band.nodata is not None:
        out["nodata"] = _nodata(band.nodata, data_type)
    if band.unit:
        out["unit"] = band.unit
    if band.common_name in EO_COMMON_NAMES:
        out["eo:common_name"] = band.common_name
    if band.scale is not None and band.scale != 1:
        out["raster:scale"] = band.scale
    if band.offset is not None and band.offset != 0:
        out["raster:offset"] = band.offset
    return out


def _data_type(name: str) -> str:
    name = _NUMPY_DATA_TYPES.get(name, name)
    return name if name in _DATA_TYPES else "other"


def _nodata(value: float | str, data_type: str) -> float | int | str:
    if isinstance(value, str):
        return value.lower()
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if "int" in data_type and float(value).is_integer():
        return int(value)  # 0, not 0.0, for an integer band
    return value


def _pointcloud_fields(pc: PointCloudInfo, pc_type: str) -> dict[str, Any]:
    # pc:encoding was dropped in pointcloud v2.0.0 (its schema rejects it): the asset's media
    # type says LAS / LAZ / COPC instead.
    out: dict[str, Any] = {"pc:count": pc.point_count, "pc:type": pc_type}
    if pc.schemas:
        out["pc:schemas"] = [_plain(s) for s in pc.schemas]
    return out


# --------------------------------------------------------------------------- collections, catalog


def render_collection(c: CollectionInput, links: Links) -> dict[str, Any]:
    """STAC Collection dict, with one `item` link per item id."""
    path = collection_path(c.id)
    out = _head("Collection", c.id, c.title, _description(c))
    if c.keywords:
        out["keywords"] = list(c.keywords)
    if c.providers:
        out["providers"] = [_plain(p) for p in c.providers]
    out["license"] = c.license
    out["extent"] = {
        "spatial": {"bbox": [list(c.bbox) if c.bbox is not None else list(WORLD_BBOX)]},
        "temporal": {"interval": [[c.start, c.end]]},
    }
    if c.items_summary is not None:
        if c.items_summary.summaries:
            out["summaries"] = dict(c.items_summary.summaries)
        item_assets = _item_assets(c.items_summary, c.asset_titles)
        if item_assets:
            out["item_assets"] = item_assets
    out["links"] = [
        links.link("root", path, catalog_path(), JSON_TYPE),
        links.link("parent", path, catalog_path(), JSON_TYPE),
        *(links.link("item", path, item_path(c.id, i), GEOJSON_TYPE) for i in sorted(c.item_ids)),
        # After the items, so that item links keep their positions (links[2 + i]).
        *_license_links(c.license, c.license_url),
        *links.self_link(path, JSON_TYPE),
    ]
    declared = _merge_extra(out, c.extra_fields, c.id)
    out["stac_extensions"] = sorted(set(_collection_extensions(out)) | declared)
    return out


def _merge_extra(out: dict[str, Any], extra: Mapping[str, Any], cid: str) -> set[str]:
    """Add extra fields without letting them replace a field rendered from the inputs.

    `stac_extensions` in the extra fields adds URLs (for fields of extensions stacsync does
    not know); the URLs are returned. Extra `summaries` join the computed ones, key by key.
    """
    extra = _plain(extra)
    declared = set(extra.pop("stac_extensions", []))
    if "summaries" in extra and "summaries" in out:
        summaries = extra.pop("summaries")
        clash = sorted(set(summaries) & set(out["summaries"]))
        if clash:
            raise ValueError(f"collection {cid!r}: extra summaries {clash} would replace computed")
        out["summaries"] = dict(sorted({**out["summaries"], **summaries}.items()))
    clash = sorted(set(extra) & set(out))
    if clash:
        raise ValueError(f"collection {cid!r}: extra fields {clash} would replace rendered fields")
    out.update(extra)
    return declared


def _description(c: CollectionInput) -> str:
    """The description template with counts and dates filled in (see stacsync.config.templates).

    The config check refuses what cannot be filled; should such a template get here anyway (a
    caller that skipped the check), the text is published as written rather than failing the
    collection. Either way it is at most `MAX_DESCRIPTION` characters.
    """
    values = {
        "items": len(c.item_ids),
        "start": _day(c.start),
        "end": _day(c.end),
        "id": c.id,
        "title": c.title or c.id,
    }
    try:
        template = Template.parse(c.description, DESCRIPTION)
    except ValueError:
        template = Template.literal(c.description, DESCRIPTION)
    return template.fill(values)


def _day(value: str | None) -> date | None:
    # A date fills in as YYYY-MM-DD, or through strftime with a spec: "{start:%B %Y}";
    # None (an empty collection) as "unknown".
    moment = _parse_datetime(value) if value else None
    return moment.date() if moment is not None else None


def _parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Naive and aware datetimes do not compare; STAC datetimes are UTC anyway.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _license_links(license_id: str, url: str | None) -> list[dict[str, str]]:
    """A `license` link: the configured URL, else the SPDX page of an SPDX license id."""
    if url:
        # Whatever the URL serves (HTML, PDF, text) is unknown, so no `type` is claimed.
        return [{"rel": "license", "href": url}]
    if (
        license_id.lower() in _NOT_SPDX
        or license_id.startswith(("LicenseRef-", "DocumentRef-"))  # user-defined ids
        or not _SPDX_ID.fullmatch(license_id)
    ):
        return []  # "other", a private id or an SPDX expression: no spdx.org page to point at
    return [{"rel": "license", "href": SPDX_LICENSE_URL.format(license_id), "type": HTML_TYPE}]


def _item_assets(summary: ItemsSummary, titles: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """`item_assets`: per asset key, a title a person can read and what its assets share."""
    out: dict[str, dict[str, Any]] = {}
    for key, shared in summary.item_assets.items():
        entry = {"title": titles.get(key) or shared.get("title") or _title_from_key(key)}
        entry.update((k, v) for k, v in shared.items() if k != "title")
        # The schema asks for two fields at least; a key whose assets share nothing but a
        # title (mixed media types and roles) has nothing to promise about its assets.
        if len(entry) >= 2:
            out[key] = entry
    return out


# --------------------------------------------------------------------------- collection summaries

# Summarised wherever they occur, in item properties or in assets: a set of values, or a range.
_SET_FIELDS = ("constellation", "instruments", "mission", "pc:type", "platform", "proj:code")
_RANGE_FIELDS = ("gsd", "pc:count")
_SUMMARISED_FIELDS = frozenset((*_SET_FIELDS, *_RANGE_FIELDS))
# Asset fields that go into `item_assets` when every asset under the key has the same value;
# `roles` (the roles all of them have) and `bands` (field by field) are handled on their own.
_SHARED_ASSET_FIELDS = ("title", "description", "type", "pc:type", "pc:schemas")
_MISSING = object()
_DIGEST_PROPERTIES = _SUMMARISED_FIELDS | {"start_datetime", "datetime", "end_datetime"}
_DIGEST_ASSET_FIELDS = _SUMMARISED_FIELDS | {*_SHARED_ASSET_FIELDS, "roles", "bands"}


def summary_digest(item: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an item `summarise_items` reads, and nothing else (no geometry, hrefs…).

    `summarise_items` gives the same result for digests as for the items themselves.
    """
    properties = item.get("properties") or {}
    assets = item.get("assets") or {}
    return {
        "properties": {k: v for k, v in properties.items() if k in _DIGEST_PROPERTIES},
        "assets": {
            key: {k: v for k, v in asset.items() if k in _DIGEST_ASSET_FIELDS}
            for key, asset in assets.items()
            if isinstance(asset, Mapping)
        },
    }


def summarise_items(items: Iterable[Mapping[str, Any]]) -> ItemsSummary:
    """Summaries and item_assets of a collection, from its rendered items.

    `items` is consumed once and only one item is held at a time, so a collection of any size
    costs one parse per item and memory for the distinct values (sets stay small: platforms,
    CRSs), never for the items.
    """
    digest = _CollectionDigest()
    for item in items:
        digest.add(item)
    return digest.result()


class _Range:
    """Running minimum and maximum; `order` maps a value to what is compared."""

    def __init__(self, order: Callable[[Any], Any] = lambda v: v) -> None:
        self.order = order
        self.low: tuple[Any, Any] | None = None  # (order key, value)
        self.high: tuple[Any, Any] | None = None

    def add(self, value: Any) -> None:
        key = self.order(value)
        if self.low is None or key < self.low[0]:
            self.low = (key, value)
        if self.high is None or key > self.high[0]:
            self.high = (key, value)

    def render(self) -> dict[str, Any] | None:
        if self.low is None or self.high is None:
            return None
        return {"minimum": self.low[1], "maximum": self.high[1]}


class _CollectionDigest:
    """The running state of `summarise_items`."""

    def __init__(self) -> None:
        self.items = 0
        self.sets: dict[str, set[str]] = {name: set() for name in _SET_FIELDS}
        self.ranges = {name: _Range() for name in _RANGE_FIELDS}
        # Compared as instants: ISO strings with and without fractional seconds do not sort.
        self.datetime = _Range(order=_parse_datetime)
        self.assets: dict[str, _AssetDigest] = {}

    def add(self, item: Mapping[str, Any]) -> None:
        self.items += 1
        properties = item.get("properties") or {}
        self._add_fields(properties)
        for name in ("start_datetime", "datetime", "end_datetime"):
            if _parse_datetime(properties.get(name)) is not None:
                self.datetime.add(properties[name])
        for key, asset in (item.get("assets") or {}).items():
            if isinstance(asset, Mapping):
                self._add_fields(asset)
                self.assets.setdefault(key, _AssetDigest()).add(asset)

    def _add_fields(self, fields: Mapping[str, Any]) -> None:
        # Only the names present: this runs for every asset of every item.
        for name in _SUMMARISED_FIELDS & fields.keys():
            value = fields[name]
            if name in self.ranges:
                if _is_number(value):
                    self.ranges[name].add(value)
            elif isinstance(value, str):
                self.sets[name].add(value)
            elif isinstance(value, list) and name == "instruments":  # the one list-valued field
                self.sets[name].update(v for v in value if isinstance(v, str))

    def result(self) -> ItemsSummary:
        summaries: dict[str, Any] = {}
        for name, values in self.sets.items():
            if values:
                summaries[name] = sorted(values)
        for name, found in [*self.ranges.items(), ("datetime", self.datetime)]:
            rendered = found.render()
            if rendered is not None:
                summaries[name] = rendered
        return ItemsSummary(
            items=self.items,
            summaries=dict(sorted(summaries.items())),
            item_assets={key: d.shared() for key, d in sorted(self.assets.items())},
        )


class _AssetDigest:
    """What every asset seen so far under one asset key has in common."""

    def __init__(self) -> None:
        self.count = 0
        self.fields: dict[str, Any] = {}
        self.roles: list[str] = []
        self.bands: list[dict[str, Any]] | None = None

    def add(self, asset: Mapping[str, Any]) -> None:
        fields = {k: asset[k] for k in _SHARED_ASSET_FIELDS if k in asset}
        found = asset.get("roles")
        roles = [r for r in found if isinstance(r, str)] if isinstance(found, list) else []
        bands = asset.get("bands")
        if self.count == 0:
            self.fields, self.roles = fields, sorted(set(roles))
            self.bands = _bands(bands)
        else:
            self.fields = {k: v for k, v in self.fields.items() if fields.get(k, _MISSING) == v}
            self.roles = [r for r in self.roles if r in roles]
            self.bands = _common_bands(self.bands, bands)
        self.count += 1

    def shared(self) -> dict[str, Any]:
        out = {k: self.fields[k] for k in ("title", "description", "type") if k in self.fields}
        if self.roles:
            out["roles"] = list(self.roles)
        if self.bands and any(self.bands):  # bands that share nothing promise nothing
            out["bands"] = self.bands
        out.update((k, v) for k, v in sorted(self.fields.items()) if k not in out)
        return out


def _bands(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list) or not all(isinstance(b, Mapping) for b in value):
        return None
    return [dict(b) for b in value]


def _common_bands(common: list[dict[str, Any]] | None, value: Any) -> list[dict[str, Any]] | None:
    """Band by band, the fields with the same value; None once the band counts differ."""
    bands = _bands(value)
    if common is None or bands is None or len(bands) != len(common):
        return None
    return [
        {k: v for k, v in mine.items() if theirs.get(k, _MISSING) == v}
        for mine, theirs in zip(common, bands, strict=True)
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _collection_extensions(coll: Mapping[str, Any]) -> list[str]:
    maps: list[Mapping[str, Any]] = [coll, coll.get("summaries") or {}]
    for key in ("assets", "item_assets"):
        maps.extend((coll.get(key) or {}).values())
    return _extensions(maps)


def _head(kind: str, id_: str, title: str | None, description: str) -> dict[str, Any]:
    """The opening fields shared by catalogs and collections, in STAC's usual order."""
    out: dict[str, Any] = {
        "type": kind,
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": id_,
    }
    if title:
        out["title"] = title
    out["description"] = description
    return out


def render_catalog(c: CatalogInput, links: Links) -> dict[str, Any]:
    """STAC Catalog dict, with one `child` link per collection id."""
    path = catalog_path()
    out = _head("Catalog", c.id, c.title, c.description)
    out["links"] = [
        links.link("root", path, path, JSON_TYPE),
        *(
            links.link("child", path, collection_path(cid), JSON_TYPE)
            for cid in sorted(c.collection_ids)
        ),
        *links.self_link(path, JSON_TYPE),
    ]
    return out


def _extensions(field_maps: Iterable[Mapping[str, Any]]) -> list[str]:
    """Extension URLs for every prefixed field in the maps (and in their `bands`)."""
    used: set[str] = set()
    for fields in field_maps:
        for name in _field_names(fields):
            url = _EXTENSION_BY_PREFIX.get(name.partition(":")[0]) if ":" in name else None
            if url:
                used.add(url)
    return sorted(used)


def _field_names(fields: Mapping[str, Any]) -> Iterator[str]:
    yield from fields
    bands = fields.get("bands")
    if isinstance(bands, list):
        for band in bands:
            if isinstance(band, Mapping):
                yield from band


# --------------------------------------------------------------------------- serialising, index


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Deterministic JSON bytes: indent 2, UTF-8, the renderers' key order, final newline."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


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
        {"rel": "canonical", "href": href, "type": GEOJSON_TYPE},
        {"rel": "collection", "href": base + collection_path(cid), "type": JSON_TYPE},
    ]
    return feature


def _rebased(asset: Mapping[str, Any], folder: str) -> Mapping[str, Any]:
    href = asset.get("href", "")
    if "://" in href or href.startswith("/"):
        return asset
    return {**asset, "href": "./" + posixpath.normpath(posixpath.join(folder, href))}


def feature_line(feature: Mapping[str, Any]) -> str:
    """One index feature as the single line `write_index` writes for it."""
    return json.dumps(feature, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def write_index(lines: Iterable[str], out: BinaryIO) -> None:
    """Write a FeatureCollection of `feature_line`s, one per line, never holding them all."""
    out.write(b'{"type":"FeatureCollection","features":[\n')
    separator = b""
    for line in lines:
        out.write(separator)
        out.write(line.encode("utf-8"))
        separator = b",\n"
    out.write(b"\n]}\n")


# --------------------------------------------------------------------------- footprint


def footprint(metas: Sequence[AssetMeta]) -> tuple[dict[str, Any], list[float]]:
    """Union of the assets' WGS84 footprints and a bbox holding all of them.

    Across the antimeridian the geometry stays split at ±180 (a MultiPolygon) and the bbox
    has west > east, as STAC and RFC 7946 ask.
    """
    # shapely costs start-up time; only a render pays it.
    import shapely
    from shapely.affinity import translate
    from shapely.geometry import shape

    parts = [p for m in metas for p in shapely.get_parts(shape(m.geometry_4326))]
    intervals = [(m.bbox_4326[0], m.bbox_4326[2]) for m in metas]
    intervals += [(p.bounds[0], p.bounds[2]) for p in parts if not p.is_empty]
    west, east = _longitude_extent(intervals)
    south = min([m.bbox_4326[1] for m in metas] + [p.bounds[1] for p in parts if not p.is_empty])
    north = max([m.bbox_4326[3] for m in metas] + [p.bounds[3] for p in parts if not p.is_empty])
    crosses = west > east
    if crosses:
        # Union in a longitude space that runs on past 180, so halves split at ±180 join.
        parts = [translate(p, 360) if p.bounds[2] <= east else p for p in parts]
    merged = shapely.union_all(parts)
    if merged.is_empty or merged.area == 0:
        # Degenerate footprints (one point, one row of pixels) vanish in a union.
        merged = shapely.convex_hull(shapely.GeometryCollection(parts))
    elif _positions(merged) > ITEM_MAX_VERTICES:
        merged = _fewer_vertices(merged, east + 360.0 if crosses else 180.0)
        low, bottom, high, top = merged.bounds  # a little larger than the assets' union
        west, east = min(west, low), max(east, high - 360.0 if crosses else high)
        south, north = min(south, bottom), max(north, top)
    if crosses:
        merged = _split_at_180(merged)
    bbox = [_round(west), _round(south), _round(east), _round(north)]
    return _geojson(merged), bbox


# Each asset's footprint has at most 256 vertices; the union of several, with their
# crossings, is held to this many so an item (and its line of index.geojson) stays small.
ITEM_MAX_VERTICES = 512


def _positions(geom: BaseGeometry) -> int:
    import shapely

    return int(shapely.get_num_coordinates(geom))


def _fewer_vertices(geom: BaseGeometry, east_limit: float) -> BaseGeometry:
    """The union with at most ITEM_MAX_VERTICES positions, still covering all of it.

    Grown by a tolerance, then simplified by it (Douglas-Peucker moves edges by about the
    tolerance; the cover is checked); the tolerance doubles from 1/100000 of the extent.
    """
    import shapely

    low, bottom, high, top = geom.bounds
    tolerance = max(high - low, top - bottom) * 1e-5
    while True:
        grown = geom.buffer(tolerance * 1.001, join_style="mitre")
        simple = shapely.simplify(grown, tolerance, preserve_topology=True)
        simple = shapely.clip_by_rect(simple, -180.0, -90.0, east_limit, 90.0)
        if _positions(simple) <= ITEM_MAX_VERTICES and simple.covers(geom):
            return simple
        tolerance *= 2.0


def _longitude_extent(intervals: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Smallest arc of longitude covering every interval (west > east means it crosses 180)."""
    pieces: list[tuple[float, float]] = []
    for west, east in intervals:
        pieces.extend([(west, 180.0), (-180.0, east)] if west > east else [(west, east)])
    pieces.sort()
    merged: list[list[float]] = []
    for west, east in pieces:
        if merged and west <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], east)
        else:
            merged.append([west, east])
    # The arc is the complement of the widest gap; the gap across ±180 wins ties, so a
    # footprint that does not need to cross is never written as crossing.
    best_gap = merged[0][0] + 360.0 - merged[-1][1]
    west, east = merged[0][0], merged[-1][1]
    for left, right in pairwise(merged):
        if right[0] - left[1] > best_gap:
            best_gap = right[0] - left[1]
            west, east = right[0], left[1]
    if best_gap <= 0:
        return -180.0, 180.0
    return west, east


def _split_at_180(geom: BaseGeometry) -> BaseGeometry:
    import shapely
    from shapely.affinity import translate

    west = shapely.clip_by_rect(geom, -180.0, -90.0, 180.0, 90.0)
    east = translate(shapely.clip_by_rect(geom, 180.0, -90.0, 540.0, 90.0), -360)
    pieces = [p for p in shapely.get_parts([west, east]) if not p.is_empty]
    if any(p.area > 0 for p in pieces):
        # Clipping leaves slivers of boundary lines where a polygon touched 180 exactly.
        pieces = [p for p in pieces if p.area > 0]
    if len(pieces) == 1:
        return pieces[0]
    return shapely.union_all(pieces)


def _geojson(geom: BaseGeometry) -> dict[str, Any]:
    import numpy as np
    import shapely
    from shapely.geometry import mapping

    geom = shapely.simplify(geom, 0.0)  # drop collinear vertices left where footprints joined
    geom = shapely.normalize(geom)
    geom = shapely.orient_polygons(geom, exterior_cw=False)  # RFC 7946: exterior rings CCW
    geom = shapely.transform(geom, lambda xy: np.round(xy, COORD_DECIMALS) + 0.0)
    return _lists(mapping(geom))


def _lists(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    if isinstance(value, float):
        return value + 0.0  # -0.0 → 0.0
    return value


def _round(value: float) -> float:
    import numpy as np

    # The same rounding as the geometry's vertices, so the bbox still holds them.
    return float(np.round(value, COORD_DECIMALS)) + 0.0


def _plain(value: Any) -> Any:
    """Copy user-supplied JSON-able data with sorted mapping keys and lists for tuples."""
    if isinstance(value, Mapping):
        return {str(k): _plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
