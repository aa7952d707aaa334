"""Describe a LAS/LAZ/COPC point cloud from its header and VLRs alone, never decoding a point.

Every count and offset the header declares is checked against the file size before laspy sees it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, BinaryIO

import laspy

from stacsync.core.errors import ExtractError
from stacsync.core.records import AssetMeta, BBox, PointCloudInfo
from stacsync.core.retry import is_transient
from stacsync.extract.crs import identify_crs
from stacsync.extract.las_crs import choose_crs
from stacsync.extract.las_footprint import copc_outline, header_footprint
from stacsync.extract.las_header import (
    Header,
    Record,
    check_extent,
    check_layout,
    check_point_data,
    laspy_header,
    read_at,
    read_header,
    walk_evlrs,
    walk_vlrs,
)

log = logging.getLogger(__name__)

MEDIA_LAS = "application/vnd.las"

MEDIA_LAZ = "application/vnd.laszip"

MEDIA_COPC = "application/vnd.laszip+copc"


def extract_pointcloud(
    path: str | os.PathLike[str], *, crs_override: str | None = None, read_overviews: bool = True
) -> AssetMeta:
    """Describe the LAS/LAZ/COPC file at `path` from its header and VLRs.

    Raises ExtractError (message starts with the file name) for anything a person must fix,
    and lets transient OSErrors (EIO, EREMOTEIO, ...) through, errno intact, for the caller
    to retry.
    """
    name = os.path.basename(os.fspath(path))
    try:
        fileobj = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _os_error(name, exc) from exc
    with fileobj:
        try:
            size = os.fstat(fileobj.fileno()).st_size
        except OSError as exc:
            raise _os_error(name, exc) from exc
        return extract_pointcloud_stream(
            fileobj, size, name, crs_override=crs_override, read_overviews=read_overviews
        )


def extract_pointcloud_stream(
    fileobj: BinaryIO,
    size: int,
    name: str,
    *,
    crs_override: str | None = None,
    read_overviews: bool = True,
) -> AssetMeta:
    """Describe a point cloud read from a seekable binary file object of `size` bytes.

    `name` is the bare file name used in messages. Only the header, the VLRs, the LAZ
    chunk-table pointer and the EVLR headers are read, plus, for a COPC cloud and unless
    `read_overviews` is false, its root hierarchy page and the points of its octree's coarse
    levels (for the footprint).
    """
    try:
        return _extract(fileobj, size, name, crs_override, read_overviews)
    except OSError as exc:
        raise _os_error(name, exc) from exc


def _os_error(name: str, exc: OSError) -> OSError | ExtractError:
    """Transient errors go back as they are (the caller retries); the rest become ExtractError."""
    if is_transient(exc):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ExtractError(f"{name}: file not found")
    if isinstance(exc, PermissionError):
        return ExtractError(f"{name}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return ExtractError(f"{name}: is a directory, not a LAS/LAZ file")
    return ExtractError(f"{name}: cannot read file ({exc.strerror or exc})")


def _extract(
    fileobj: BinaryIO, size: int, name: str, crs_override: str | None, read_overviews: bool
) -> AssetMeta:
    header = read_header(fileobj, size, name)
    check_layout(header, size, name)
    block = read_at(fileobj, 0, header.offset_to_point_data)
    if len(block) < header.offset_to_point_data:
        raise ExtractError(f"{name}: file is truncated (ended while reading the VLRs)")
    vlrs = walk_vlrs(block, header, name)
    check_point_data(fileobj, header, vlrs, size, name)
    evlrs = walk_evlrs(fileobj, header, size, name)
    check_extent(header, name)
    las_header = laspy_header(fileobj, block, evlrs, name)
    warnings: list[str] = []
    crs_wkt = choose_crs(las_header, vlrs + evlrs, crs_override, name, warnings)
    outline = None
    if read_overviews:
        outline = copc_outline(fileobj, size, header, block, vlrs, crs_wkt, warnings)
    return _asset_meta(header, las_header, vlrs, crs_wkt, name, warnings, outline)


# --- the record ------------------------------------------------------------------------------


def _asset_meta(
    h: Header,
    las_header: laspy.LasHeader,
    vlrs: Sequence[Record],
    crs_wkt: str,
    name: str,
    warnings: list[str],
    outline: tuple[BBox, dict[str, Any], str] | None,
) -> AssetMeta:
    # The header box always: it checks the header against the CRS's area of use.
    bbox_4326, geometry = header_footprint(h, crs_wkt, name, warnings)
    method = "header box"
    if outline is not None:  # a COPC cloud: where its points are
        bbox_4326, geometry, method = outline
    crs_code, crs_wkt2 = identify_crs(crs_wkt)
    copc = h.compressed and any(v.user_id == "copc" and v.record_id == 1 for v in vlrs)
    encoding, media_type = _encoding(h.compressed, copc)
    if h.version[1] >= 4 and h.legacy_point_count not in (0, h.point_count):
        warnings.append(
            f"legacy point count {h.legacy_point_count} disagrees with the LAS 1.4 count"
            f" {h.point_count}; used the latter"
        )
    info = PointCloudInfo(
        las_version=f"{h.version[0]}.{h.version[1]}",
        point_format=h.point_format,
        point_count=h.point_count,
        point_record_length=h.point_record_length,
        scales=h.scales,
        offsets=h.offsets,
        mins=h.mins,
        maxs=h.maxs,
        compressed=h.compressed,
        copc=copc,
        schemas=_schemas(las_header.point_format),
        encoding=encoding,
    )
    for warning in warnings:
        log.warning("%s: %s", name, warning)
    return AssetMeta(
        kind="pointcloud",
        media_type=media_type,
        crs_code=crs_code,
        crs_wkt2=crs_wkt2,
        bbox_native=(h.mins[0], h.mins[1], h.maxs[0], h.maxs[1]),
        bbox_4326=bbox_4326,
        geometry_4326=geometry,
        footprint_method=method,
        datetime=_creation_datetime(*h.creation, name, warnings),
        pointcloud=info,
        warnings=tuple(warnings),
    )


def _encoding(compressed: bool, copc: bool) -> tuple[str, str]:
    if copc:
        return "COPC", MEDIA_COPC
    if compressed:
        return "LASzip", MEDIA_LAZ
    return "LAS", MEDIA_LAS


_KIND_TYPES = {
    "SignedInteger": "signed",
    "UnsignedInteger": "unsigned",
    "FloatingPoint": "floating",
    "BitField": "unsigned",  # packed flags: reported as the whole byte that holds them
}


def _schemas(point_format: laspy.PointFormat) -> tuple[dict[str, Any], ...]:
    """pc:schemas as the record is stored: X/Y/Z are the scaled int32s, bit fields one byte."""
    return tuple(
        {
            "name": dim.name,
            "size": max(1, math.ceil(dim.num_bits * dim.num_elements / 8)),
            "type": _KIND_TYPES[dim.kind.name],
        }
        for dim in point_format.dimensions
    )


def _creation_datetime(day: int, year: int, name: str, warnings: list[str]) -> str | None:
    """ISO 8601 from the header's (day of year, year); unset or impossible dates give None."""
    if day == 0 or year == 0:
        return None
    try:
        created = date(year, 1, 1) + timedelta(days=day - 1)
    except (ValueError, OverflowError):
        created = None
    today = datetime.now(UTC).date()
    if created is None or created.year != year or year < 1990 or created > today:
        warnings.append(f"ignored implausible creation date (day {day} of year {year})")
        log.debug("%s: creation date day %d year %d ignored", name, day, year)
        return None
    return f"{created.isoformat()}T00:00:00Z"
