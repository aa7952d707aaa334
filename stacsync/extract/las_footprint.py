"""Where a point cloud lies in EPSG:4326: its header box, or a COPC cloud's coarse octree levels.

A geocentric box is mapped corner by corner; a geographic one must have believable lon/lat.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
import pyproj
from pyproj.crs import GeographicCRS
from pyproj.crs.coordinate_system import Ellipsoidal3DCS

from stacsync.core.errors import ExtractError
from stacsync.core.records import BBox
from stacsync.extract.copc import CopcError, CopcLayout, read_copc_sample
from stacsync.extract.crs import parse_crs
from stacsync.extract.footprint import Traced, occupancy, trace
from stacsync.extract.geometry import footprint_4326
from stacsync.extract.las_crs import check_area_of_use, crs_parts
from stacsync.extract.las_header import Header, Record, read_at, record_data

# A geocentric box whose corners sit further than this from the ellipsoid is not on the Earth.
_MAX_ECEF_HEIGHT = 100_000.0


def header_footprint(
    h: Header, crs_wkt: str, name: str, warnings: list[str]
) -> tuple[BBox, dict[str, Any]]:
    crs, horizontal, horizontal_wkt = crs_parts(crs_wkt)
    minx, miny, maxx, maxy = h.mins[0], h.mins[1], h.maxs[0], h.maxs[1]
    if horizontal.is_geocentric:
        to_geodetic, ring_wkt = _geodetic(horizontal_wkt)
        ring = _geocentric_ring(h, to_geodetic, name)
    elif horizontal.is_geographic:
        _check_geographic(minx, miny, maxx, maxy, name)
        ring, ring_wkt = _box_ring(minx, miny, maxx, maxy), crs_wkt
    elif horizontal.is_projected:
        ring, ring_wkt = _box_ring(minx, miny, maxx, maxy), crs_wkt
    else:
        raise ExtractError(
            f"{name}: CRS {crs.name!r} ({horizontal.type_name}) does not place X/Y on the Earth,"
            " so there is no footprint"
        )
    try:
        bbox, geometry = footprint_4326(ring, ring_wkt)
    except ExtractError as exc:
        raise ExtractError(
            f"{name}: no footprint from the header box in {crs.name!r}: {exc}"
        ) from exc
    check_area_of_use(bbox, horizontal, horizontal_wkt, warnings)
    return bbox, geometry


def copc_outline(
    fileobj: BinaryIO,
    size: int,
    h: Header,
    block: bytes,
    vlrs: Sequence[Record],
    crs_wkt: str,
    warnings: list[str],
) -> tuple[Traced, str] | None:
    """Where a COPC cloud's points are, from its octree's coarse levels; None: use the header box.

    Cells a few points wide that hold a point, traced (see `footprint.trace`): a grid keeps
    separate flight blocks and concave edges apart, costs the same however the points lie, and
    covers every point read by construction, where a concave hull's ratio would need tuning per
    survey and its vertices a second simplification.
    """
    info = record_data(block, vlrs, "copc", 1)
    laszip = record_data(block, vlrs, "laszip encoded", 22204)
    if not h.compressed or info is None or laszip is None:
        return None
    _, horizontal, _ = crs_parts(crs_wkt)
    if not (horizontal.is_projected or horizontal.is_geographic):
        return None  # the header box's own checks say what is wrong
    layout = CopcLayout(size, h.offset_to_point_data, h.point_record_length, h.scales, h.offsets)
    try:
        sample = read_copc_sample(functools.partial(read_at, fileobj), layout, info, laszip)
        # Points outside the header's box would mean the header is wrong; stay inside it.
        x = np.clip(sample.x, h.mins[0], h.maxs[0])
        y = np.clip(sample.y, h.mins[1], h.maxs[1])
        cells = occupancy(x, y)
        if cells is None:
            raise CopcError("the points read lie on a line or a point")
        # Points, unlike pixel centres, reach their cells' edges: straight lon/lat edges must
        # stay well inside the 1 % margin `occupancy` leaves around them.
        traced = trace(*cells, crs_wkt, chord=0.002)
    except (CopcError, ExtractError) as exc:
        warnings.append(f"footprint from the header box: COPC octree not usable ({exc})")
        return None
    levels = "level 0" if sample.deepest == 0 else f"levels 0-{sample.deepest}"
    return traced, f"COPC octree {levels} ({len(x):,} points)"


@functools.lru_cache(maxsize=16)
def _geodetic(geocentric_wkt: str) -> tuple[pyproj.Transformer, str]:
    """Transformer from a geocentric CRS to lon/lat/height on its datum, and the 2-D lon/lat WKT."""
    # crs.geodetic_crs of a geocentric CRS is itself: build lon/lat/height on the same datum.
    crs = parse_crs(geocentric_wkt)
    geodetic = GeographicCRS(datum=crs.datum, ellipsoidal_cs=Ellipsoidal3DCS())
    to_geodetic = pyproj.Transformer.from_crs(crs, geodetic, always_xy=True)
    return to_geodetic, GeographicCRS(datum=crs.datum).to_wkt()


def _box_ring(minx: float, miny: float, maxx: float, maxy: float) -> list[tuple[float, float]]:
    return [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny)]


def _check_geographic(minx: float, miny: float, maxx: float, maxy: float, name: str) -> None:
    if miny < -90 or maxy > 90:
        raise ExtractError(
            f"{name}: geographic CRS but header latitudes [{miny}, {maxy}] are outside ±90;"
            " the header or its CRS is wrong"
        )
    if minx < -180 or maxx > 360:
        raise ExtractError(
            f"{name}: geographic CRS but header longitudes [{minx}, {maxx}] are outside"
            " -180..360; the header or its CRS is wrong"
        )


def _geocentric_ring(
    h: Header, to_geodetic: pyproj.Transformer, name: str
) -> list[tuple[float, float]]:
    """Earth-centred X/Y/Z: map the eight box corners to lon/lat, refusing boxes off the Earth."""
    corners = [
        to_geodetic.transform(x, y, z)
        for x in (h.mins[0], h.maxs[0])
        for y in (h.mins[1], h.maxs[1])
        for z in (h.mins[2], h.maxs[2])
    ]
    heights = [c[2] for c in corners]
    if not all(math.isfinite(v) for c in corners for v in c) or max(map(abs, heights)) > (
        _MAX_ECEF_HEIGHT
    ):
        raise ExtractError(
            f"{name}: geocentric CRS but the header box is not near the Earth's surface"
            f" (corner heights {min(heights):.0f} to {max(heights):.0f} m); the CRS is wrong"
        )
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    if max(lons) - min(lons) > 180:
        raise ExtractError(f"{name}: geocentric box crossing the antimeridian is not supported")
    return _box_ring(min(lons), min(lats), max(lons), max(lats))
