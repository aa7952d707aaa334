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
    """Union of the assets' WGS84 footprints and the bbox of that union, as written.

    The geometry written covers the union (rounding to COORD_DECIMALS moves edges outward,
    never into the data), is valid, has counter-clockwise exteriors and clockwise holes
    (RFC 7946) and no repeated consecutive vertices; the bbox is its bounds. Across the
    antimeridian the geometry stays split at ±180 (a MultiPolygon) and the bbox has
    west > east, as STAC and RFC 7946 ask.
    """
    # shapely costs start-up time; only a render pays it.
    import shapely
    from shapely.affinity import translate

    # Rasters of one product (DSM, DTM, CHM) often share their outline: each distinct one is
    # unioned once, which is most of an item's render time when there are several.
    shapes = [_shape(m.geometry_4326) for m in metas]
    distinct = {shapely.to_wkb(s): s for s in shapes}
    parts = [p for s in distinct.values() for p in shapely.get_parts(s)]
    intervals = [(m.bbox_4326[0], m.bbox_4326[2]) for m in metas]
    intervals += [(p.bounds[0], p.bounds[2]) for p in parts if not p.is_empty]
    west, east = _longitude_extent(intervals)
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
    written = _outward(merged, crosses)
    return _geojson(written), _bbox(written)


ROUND_STEP = 10.0**-COORD_DECIMALS


def _shape(geometry: Mapping[str, Any]) -> BaseGeometry:
    """A GeoJSON geometry as shapely; polygons built from arrays (shapely's `shape` converts
    every position in Python, the bulk of a render's time)."""
    import numpy as np
    import shapely
    from shapely.geometry import shape

    def polygon(rings: list) -> BaseGeometry:
        shell, *holes = (np.asarray(ring, dtype=float) for ring in rings)
        return shapely.polygons(shell, holes=holes or None)

    kind, coords = geometry["type"], geometry.get("coordinates")
    if kind == "Polygon" and coords:
        return polygon(coords)
    if kind == "MultiPolygon" and coords and all(coords):
        return shapely.multipolygons([polygon(rings) for rings in coords])
    return shape(geometry)


def _outward(merged: BaseGeometry, crosses: bool) -> BaseGeometry:
    """`merged` (split at ±180 if it crosses) rounded so that it still covers all of it.

    Rounding each vertex to the nearest step can cut into the polygon by half a step; when
    it would (or would leave a repeated vertex or an invalid ring), the polygon is grown by
    a step (mitre joins), snapped to the grid of steps (shapely.set_precision keeps it
    valid) and rounded; the growth doubles until the result covers the exact union.
    """
    import shapely

    exact = _tidy(_split_at_180(merged) if crosses else merged)
    rounded = _rounded(exact)
    if exact.area == 0 or _sound(rounded, exact):
        return rounded  # already on the grid (or degenerate: a point or a line)
    margin = ROUND_STEP
    while True:
        grown = merged.buffer(margin, join_style="mitre")
        grown = _split_at_180(grown) if crosses else grown
        grown = shapely.clip_by_rect(grown, -180.0, -90.0, 180.0, 90.0)
        rounded = _rounded(_tidy(shapely.set_precision(grown, ROUND_STEP)))
        if _sound(rounded, exact) or margin > 1e-3:
            return rounded
        margin *= 2.0


def _tidy(geom: BaseGeometry) -> BaseGeometry:
    import shapely

    geom = shapely.simplify(geom, 0.0)  # drop collinear vertices left where footprints joined
    geom = shapely.normalize(geom)
    return shapely.orient_polygons(geom, exterior_cw=False)  # RFC 7946: exteriors CCW


def _rounded(geom: BaseGeometry) -> BaseGeometry:
    import numpy as np
    import shapely

    return shapely.transform(geom, lambda xy: np.round(xy, COORD_DECIMALS) + 0.0)


def _sound(geom: BaseGeometry, exact: BaseGeometry) -> bool:
    """Valid, covering `exact`, and no ring with a vertex repeated right after itself."""
    return bool(geom.is_valid and geom.covers(exact) and not repeated_vertices(geom))


def repeated_vertices(geom: BaseGeometry) -> int:
    """How many vertices of the geometry's rings and lines repeat the one before them."""
    import numpy as np
    import shapely

    count = 0
    for part in shapely.get_parts(geom):
        lines = shapely.get_rings(part) if part.geom_type == "Polygon" else [part]
        for line in lines:
            xy = shapely.get_coordinates(line)
            count += int(np.all(xy[1:] == xy[:-1], axis=1).sum())
    return count


def _bbox(geom: BaseGeometry) -> list[float]:
    """The bounds of the geometry as written (west > east across the antimeridian)."""
    import shapely

    bounds = [p.bounds for p in shapely.get_parts(geom) if not p.is_empty]
    west, east = _longitude_extent((b[0], b[2]) for b in bounds)
    south, north = min(b[1] for b in bounds), max(b[3] for b in bounds)
    return [west + 0.0, south + 0.0, east + 0.0, north + 0.0]


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
    """GeoJSON with lists and no -0.0; polygons read a ring at a time from their arrays (the
    same floats shapely's mapping() gives, without a Python call per position)."""
    import shapely
    from shapely.geometry import mapping

    def rings(polygon: BaseGeometry) -> list:
        return [(shapely.get_coordinates(r) + 0.0).tolist() for r in shapely.get_rings(polygon)]

    kind = geom.geom_type
    if geom.is_empty or geom.has_z or kind not in ("Polygon", "MultiPolygon"):
        return _lists(mapping(geom))
    if kind == "Polygon":
        return {"type": kind, "coordinates": rings(geom)}
    return {"type": kind, "coordinates": [rings(part) for part in geom.geoms]}


def _lists(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    if isinstance(value, float):
        return value + 0.0  # -0.0 → 0.0
    return value
