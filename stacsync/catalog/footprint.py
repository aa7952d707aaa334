"""An item's footprint: the union of its assets' WGS84 outlines, split at the antimeridian.

Pure functions over shapely (imported on first use: only a render pays for it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from stacsync.core.records import AssetMeta

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

COORD_DECIMALS = 9  # 1e-9 degrees is ~0.1 mm: below any survey precision, stable across runs


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
