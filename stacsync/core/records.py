"""Typed records that cross module boundaries: listing entries and extracted asset metadata.

Extractors produce `AssetMeta`; the manifest stores it as JSON; `stac` renders it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

BBox = tuple[float, float, float, float]
"""(west, south, east, north); in EPSG:4326 west > east means the box crosses the antimeridian."""


class FileState(StrEnum):
    """Status of one asset file in the manifest."""

    OK = "ok"
    ERROR = "error"
    PENDING = "pending"  # to be looked at again (e.g. after a config change)
    UNMATCHED = "unmatched"  # matches no collection's pattern: listed, never extracted


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One asset file as the source lists it: a stat, never an open."""

    path: str  # POSIX path relative to the source root
    size: int
    mtime_ns: int
    checksum: str | None = None  # multihash hex when the store keeps one (iRODS sha2)
    etag: str | None = None  # an object store's ETag (S3), unquoted; opaque, never a checksum


# eo:common_name values of the STAC eo extension v2.0.0 (v1.1.0 lacks green05 and rededge07x);
# any other name would make the whole item invalid.
# fmt: off
EO_COMMON_NAMES = frozenset((
    "pan", "coastal", "blue", "green", "green05", "yellow", "red", "rededge", "rededge071",
    "rededge075", "rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir",
    "lwir11", "lwir12",
))
# fmt: on


@dataclass(frozen=True, slots=True)
class Band:
    """Header facts about one raster band."""

    data_type: str  # numpy dtype name: uint8, int16, float32, ...
    nodata: float | str | None = None  # a number, or "nan" / "inf" / "-inf"
    description: str | None = None
    color_interp: str | None = None  # gdal colour interpretation: red, green, blue, alpha, gray...
    common_name: str | None = (
        None  # eo:common_name when it is a standard one (red, green, blue, ...)
    )
    unit: str | None = None
    scale: float | None = None
    offset: float | None = None


@dataclass(frozen=True, slots=True)
class RasterInfo:
    """Header facts about a raster (GeoTIFF/COG)."""

    width: int
    height: int
    bands: tuple[Band, ...]
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    resolution: tuple[float, float]  # native units per pixel, x and y (positive)
    resolution_m: float | None  # ground sample distance in metres when the CRS allows it
    overviews: tuple[int, ...]  # decimation factors of band 1
    tiled: bool
    block_shape: tuple[int, int]  # rows, cols
    compression: str | None
    is_cog: bool
    cog_problems: tuple[str, ...] = ()  # why it is not a COG (empty when it is)
    has_alpha: bool = False


@dataclass(frozen=True, slots=True)
class PointCloudInfo:
    """Header facts about a LAS/LAZ/COPC point cloud."""

    las_version: str  # "1.4"
    point_format: int
    point_count: int
    point_record_length: int
    scales: tuple[float, float, float]
    offsets: tuple[float, float, float]
    mins: tuple[float, float, float]
    maxs: tuple[float, float, float]
    compressed: bool
    copc: bool
    schemas: tuple[dict[str, Any], ...]  # pc:schemas entries: {"name", "size", "type"}
    encoding: str  # pc:encoding: "LAS", "LASzip", "COPC"


@dataclass(frozen=True, slots=True)
class AssetMeta:
    """Everything extracted from one asset file's header; knows nothing of STAC or the manifest."""

    kind: str  # "raster" or "pointcloud"
    media_type: str
    crs_code: str | None  # "EPSG:32618", "ESRI:102039"... None when there is no authority code
    crs_wkt2: str  # WKT2 of the CRS, always present (a file with no CRS is an ExtractError)
    bbox_native: BBox  # in the file's CRS
    bbox_4326: BBox  # west, south, east, north; west > east when it crosses the antimeridian
    geometry_4326: dict[str, Any]  # where the data is: GeoJSON Polygon or MultiPolygon (±180 split)
    # How geometry_4326 was made, for a person: "valid-data mask at 1/16 overview (167x167 px)",
    # "grid box: all nodata at ...", "COPC octree levels 0-2 (1,065 points)", "header box".
    footprint_method: str = ""
    datetime: str | None = None  # ISO 8601 UTC from the file itself (TIFF DATETIME, LAS date)
    raster: RasterInfo | None = None
    pointcloud: PointCloudInfo | None = None
    warnings: tuple[str, ...] = field(default=())
    # A PNG of a raster's overview for the item's thumbnail asset. Not part of the JSON (the
    # manifest keeps it in its own table) and not compared: two reads of one file are equal
    # whether or not a thumbnail was made.
    thumbnail: bytes | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> str:
        """Serialise deterministically for the manifest (without the thumbnail)."""
        # json walks the nesting itself and asks _fields only for the records: asdict's
        # deep copy of every footprint vertex cost more than the rest of a commit.
        return json.dumps(self, default=_fields, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AssetMeta:
        """Rebuild from `to_json` output (the thumbnail stays None)."""
        data = json.loads(text)
        # Rows extracted before footprints were traced hold the grid or header box.
        old_method = "grid box" if data["kind"] == "raster" else "header box"
        data.setdefault("footprint_method", old_method)
        raster = data.pop("raster")
        pc = data.pop("pointcloud")
        if raster is not None:
            raster["bands"] = tuple(Band(**b) for b in raster["bands"])
            raster = RasterInfo(**{k: _tuples(v) for k, v in raster.items()})
        if pc is not None:
            pc = PointCloudInfo(**{k: _tuples(v) for k, v in pc.items()})
        data = {k: (_tuples(v) if k != "geometry_4326" else v) for k, v in data.items()}
        return cls(raster=raster, pointcloud=pc, **data)


def _fields(record: Any) -> dict[str, Any]:
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        raise TypeError(f"{type(record).__name__} is not JSON serializable")
    return {name: getattr(record, name) for name in names}


_FIELD_NAMES = {
    cls: tuple(f.name for f in fields(cls) if f.name != "thumbnail")
    for cls in (AssetMeta, RasterInfo, PointCloudInfo, Band)
}


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value
