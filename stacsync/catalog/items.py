"""Items: the asset files of one item, as the manifest records them, become a pystac.Item.

Assets carry projection and file fields through pystac's classes, bands in STAC 1.1 `bands`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pystac
from pystac.extensions.file import FileExtension
from pystac.extensions.pointcloud import PointcloudExtension, Schema
from pystac.extensions.projection import ProjectionExtension

from stacsync.catalog.footprint import footprint
from stacsync.catalog.links import (
    GEOJSON_TYPE,
    JSON_TYPE,
    PNG_TYPE,
    Links,
    catalog_path,
    collection_path,
    item_path,
    thumbnail_path,
)
from stacsync.catalog.model import (
    ALTERNATE_EXT,
    EO_EXT,
    FILE_EXT,
    POINTCLOUD_EXT,
    PROJECTION_EXT,
    RASTER_EXT,
    asset,
    declare,
    declare_used,
    link,
    plain,
    to_dict,
)
from stacsync.core.records import EO_COMMON_NAMES, AssetMeta, Band, PointCloudInfo, RasterInfo

THUMBNAIL_KEY = "thumbnail"

# fmt: off
# STAC 1.1 `data_type` vocabulary; numpy spells complex types differently.
_DATA_TYPES = frozenset((
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
    "float32", "float64", "cint16", "cint32", "cfloat32", "cfloat64",
))
# fmt: on
_NUMPY_DATA_TYPES = {"complex64": "cfloat32", "complex128": "cfloat64"}
_CHECKSUM = re.compile(r"[0-9a-f]+")
_ALTERNATE_TITLES = {"s3": "S3 object"}


@dataclass(frozen=True)
class AssetInput:
    """One asset file of an item, with its final href."""

    key: str  # already-safe asset key
    href: str  # public URL or local absolute path, mapped by the caller
    title: str | None
    size: int
    checksum: str | None  # multihash hex ("1220" + sha256 hex); None when checksums are off
    meta: AssetMeta
    alternate: Mapping[str, str] = field(default_factory=dict)  # name → href (e.g. "s3")


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
    # Titles of the links up: the catalog's (else its id) and the collection's (else its id).
    catalog_title: str | None = None
    collection_title: str | None = None


def render_item(item: ItemInput, links: Links) -> dict[str, Any]:
    """STAC Item dict for one item; assets sorted by key, the thumbnail among them."""
    path = item_path(item.collection_id, item.item_id)
    inputs = _sorted_assets(item.assets, item.item_id)
    geometry, bbox = footprint([a.meta for a in inputs])
    properties = _item_properties(item, inputs)
    stac_item = pystac.Item(
        id=item.item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=_instant(item.datetime, item.item_id),
        properties=properties,
        collection=item.collection_id,
    )
    # Configured fields are passed on as written, their extensions declared: sci:doi is not
    # set through ScientificExtension, whose setter adds a `cite-as` link stacsync never wrote.
    declare_used(stac_item, [properties])
    data = {a.key: a for a in inputs}
    shown: dict[str, pystac.Asset] = {}
    if item.thumbnail and THUMBNAIL_KEY not in data:  # a data asset keeps its key
        png = links.href(path, thumbnail_path(item.collection_id, item.item_id))
        shown[THUMBNAIL_KEY] = asset(
            png, title="Thumbnail", media_type=PNG_TYPE, roles=["thumbnail"]
        )
    for key in sorted({*data, *shown}):  # the thumbnail sorted with the others
        if key in data:
            _add_data_asset(stac_item, data[key], item.pc_type)
        else:
            stac_item.add_asset(key, shown[key])
    coll = collection_path(item.collection_id)
    coll_title = item.collection_title or item.collection_id
    stac_item.add_links(
        [
            link("root", links.href(path, catalog_path()), JSON_TYPE, item.catalog_title),
            link("parent", links.href(path, coll), JSON_TYPE, coll_title),
            link("collection", links.href(path, coll), JSON_TYPE, coll_title),
        ]
    )
    own = links.self_href(path)
    if own is not None:
        stac_item.add_link(link("self", own, GEOJSON_TYPE))
    return to_dict(stac_item)


def _sorted_assets(assets: Sequence[AssetInput], item_id: str) -> list[AssetInput]:
    if not assets:
        raise ValueError(f"item {item_id!r} has no assets")
    ordered = sorted(assets, key=lambda a: a.key)
    keys = [a.key for a in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError(f"item {item_id!r} has duplicate asset keys: {keys}")
    return ordered


def _instant(value: str, item_id: str) -> datetime:
    # pystac writes it back (datetime_to_str): the same text for stacsync's "...Z" strings.
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"item {item_id!r}: datetime {value!r} is not ISO 8601") from None


def _item_properties(item: ItemInput, assets: Sequence[AssetInput]) -> dict[str, Any]:
    # Derived values first so that explicitly configured properties win over them;
    # `datetime` is always the item's own (it has its own input field).
    derived: dict[str, Any] = {}
    gsd = _finest_resolution(a.meta for a in assets)
    if gsd is not None:
        derived["gsd"] = gsd
    merged = {**derived, **plain(item.properties)}
    merged.pop("datetime", None)
    if item.title:
        merged["title"] = item.title
    # `datetime` first: pystac.Item.to_dict writes the item's own datetime into this slot.
    return {"datetime": item.datetime, **dict(sorted(merged.items()))}


def _finest_resolution(metas: Iterable[AssetMeta]) -> float | None:
    found = [
        m.raster.resolution_m
        for m in metas
        if m.raster is not None and m.raster.resolution_m is not None and m.raster.resolution_m > 0
    ]
    return min(found) if found else None


def _add_data_asset(stac_item: pystac.Item, source: AssetInput, pc_type: str) -> None:
    meta = source.meta
    title = source.title or title_from_key(source.key)
    made = asset(source.href, title=title, media_type=meta.media_type, roles=_roles(meta))
    stac_item.add_asset(source.key, made)  # the item owns it: extensions declare on the item
    _add_projection(made, meta)
    if meta.raster is not None:
        _add_raster(made, meta.raster)
    if meta.pointcloud is not None:
        _add_pointcloud(made, meta.pointcloud, pc_type)
    declare(stac_item, FILE_EXT)
    file = FileExtension.ext(made)
    file.size = source.size
    if source.checksum:
        file.checksum = _checksum(source.checksum, source.key)
    if source.alternate:
        declare(stac_item, ALTERNATE_EXT)
        made.extra_fields["alternate"] = alternate_field(source.alternate)


def alternate_field(alternate: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The same bytes at other addresses (alternate-assets), e.g. s3:// for S3 clients."""
    return {
        name: {"href": href, "title": _ALTERNATE_TITLES.get(name, name)}
        for name, href in sorted(alternate.items())
    }


def _roles(meta: AssetMeta) -> list[str]:
    """`data`, and `visual` for an 8-bit RGB(A) image a person can look at as it is."""
    raster = meta.raster
    if raster is None or len(raster.bands) not in (3, 4):
        return ["data"]
    if all(b.data_type == "uint8" for b in raster.bands):
        return ["data", "visual"]
    return ["data"]


def title_from_key(key: str) -> str:
    """A title a person can read from an asset key: "dsm-ptcloud" → "Dsm ptcloud"."""
    words = re.sub(r"[-_.]+", " ", key).strip() or key
    return words[:1].upper() + words[1:]


def _checksum(value: str, key: str) -> str:
    hexed = value.lower()
    if not _CHECKSUM.fullmatch(hexed):
        raise ValueError(f"asset {key!r}: checksum {value!r} is not multihash hex")
    return hexed


def _add_projection(made: pystac.Asset, meta: AssetMeta) -> None:
    declare(made.owner, PROJECTION_EXT)
    west, south, east, north = meta.bbox_native
    if meta.pointcloud is not None:
        # Point clouds are 3D: the 6-value form keeps the header's z range.
        zmin, zmax = meta.pointcloud.mins[2], meta.pointcloud.maxs[2]
        bbox = [west, south, zmin, east, north, zmax]
    else:
        bbox = [west, south, east, north]
    raster = meta.raster
    # proj:code is null (not absent) when the CRS has no authority code: the v2.0.0 spec asks
    # for that so clients know to read proj:wkt2 instead (pystac writes a None code as null).
    ProjectionExtension.ext(made).apply(
        code=meta.crs_code,
        wkt2=meta.crs_wkt2 if meta.crs_code is None else None,
        bbox=bbox,
        shape=[raster.height, raster.width] if raster is not None else None,
        transform=list(raster.transform) if raster is not None else None,
    )


def _add_raster(made: pystac.Asset, raster: RasterInfo) -> None:
    # raster v2.0.0 and eo v2.0.0 put their band fields in STAC 1.1's common `bands`; pystac's
    # RasterExtension and EOExtension write v1.1 (`raster:bands`, `eo:bands`), so these
    # fields are set as the asset's extra_fields and the v2.0.0 URLs declared by hand.
    fields = made.extra_fields
    if raster.resolution_m is not None and raster.resolution_m > 0:
        # One grid for every band: the asset level says it once.
        fields["raster:spatial_resolution"] = raster.resolution_m
        declare(made.owner, RASTER_EXT)
    bands = [_band(i, band) for i, band in enumerate(raster.bands, start=1)]
    fields["bands"] = bands
    for band in bands:
        if "eo:common_name" in band:
            declare(made.owner, EO_EXT)
        if "raster:scale" in band or "raster:offset" in band:
            declare(made.owner, RASTER_EXT)


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


def _add_pointcloud(made: pystac.Asset, pc: PointCloudInfo, pc_type: str) -> None:
    # pystac's PointcloudExtension targets v1.0.0, where pc:encoding is required; v2.0.0
    # dropped it (its schema rejects it: the media type says LAS / LAZ / COPC) and kept
    # pc:count, pc:type and pc:schemas as they were. The item declares v2.0.0, and the
    # class, which recognises its extension by the URL without the version, sets those three.
    declare(made.owner, POINTCLOUD_EXT)
    ext = PointcloudExtension.ext(made)
    ext.count = pc.point_count
    ext.type = pc_type
    if pc.schemas:
        ext.schemas = [Schema(plain(s)) for s in pc.schemas]
