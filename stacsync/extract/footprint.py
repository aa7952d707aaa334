"""Trace where data is: a boolean grid of valid cells -> a bounded polygon in EPSG:4326.

Rasters give the grid from their valid-data mask at overview scale, COPC clouds occupied cells.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio.errors
import rasterio.features
import shapely
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon

from stacsync.core.errors import ExtractError
from stacsync.core.records import BBox
from stacsync.extract.geometry import outline_4326

# rasterio.features.shapes sometimes warns, from worker threads, that the in-memory grid it
# builds has no geotransform: true, and meaningless for tracing in cell space. Set once at
# import (catch_warnings() per call is not thread-safe) and only for that module's warnings.
warnings.filterwarnings(
    "ignore", category=rasterio.errors.NotGeoreferencedWarning, module="rasterio.features"
)

__all__ = ["MAX_TRACE_SIDE", "MAX_VERTICES", "Traced", "occupancy", "trace"]

# Positions in the published GeoJSON, closing positions included: a footprint stays small in
# every item and in index.geojson whatever the data looks like.
MAX_VERTICES = 256
# The grid is OR-pooled to at most this many cells a side before tracing: a coarser cell still
# covers every valid cell it pools, and polygonising stays cheap however speckled the mask is.
MAX_TRACE_SIDE = 256


@dataclass(frozen=True, slots=True)
class Traced:
    """A traced footprint in EPSG:4326."""

    bbox: BBox  # the geometry's own bounds; west > east across the antimeridian
    geometry: dict[str, Any]  # GeoJSON Polygon or MultiPolygon, at most MAX_VERTICES positions


def trace(
    valid: np.ndarray,
    transform: Affine,
    crs_wkt: str,
    *,
    chord: float = 0.02,
    grow: float | None = None,
) -> Traced:
    """Outline of the True cells of `valid` (rows × cols), placed by `transform`, in EPSG:4326.

    The outline covers every valid cell whole (so every valid pixel centre), never leaves the
    grid's rectangle, has no holes and at most MAX_VERTICES positions. With `grow` (rasters),
    it is first grown by that many cells of the level it is traced at (in the native CRS,
    before simplifying, which only keeps what still covers the cells), and its last
    simplification in EPSG:4326 only moves it outward. Its straight lon/lat
    edges keep within `chord` of a cell of the curves they stand for (so of the grid box, and of
    anything a cell holds). Raises ExtractError when nothing is valid or the outline cannot be
    placed on the Earth (the caller keeps the grid box).
    """
    if valid.ndim != 2 or not valid.any():
        raise ExtractError("no valid cells to trace")
    grid, factor = _pooled(valid, math.ceil(max(valid.shape) / MAX_TRACE_SIDE))
    rows, cols = valid.shape
    to_native = transform @ Affine.scale(factor)
    native_cell = min(math.hypot(to_native.a, to_native.d), math.hypot(to_native.b, to_native.e))
    target = MAX_VERTICES
    while True:
        # In grid cells; the last row and column of the grid may be only partly inside it.
        outline, size = _covering(grid, cols / factor, rows / factor, target, grow or 0.0)
        rings = [_placed(p, to_native) for p in _parts(outline)]
        bbox, geometry = outline_4326(
            rings, crs_wkt, tolerance=chord * size * native_cell, outward=grow is not None
        )
        if _positions(geometry) <= MAX_VERTICES or target <= 8:
            break
        target //= 2  # edges that curve in EPSG:4326 gained vertices: ask for fewer
    if _positions(geometry) > MAX_VERTICES:
        raise ExtractError(f"traced outline keeps {_positions(geometry)} vertices")
    return Traced(bbox=bbox, geometry=geometry)


def occupancy(
    x: np.ndarray, y: np.ndarray, *, per_cell: float = 4.0, margin: float = 0.01
) -> tuple[np.ndarray, Affine] | None:
    """Grid of cells holding at least one point, over the points' own box grown by `margin`.

    About `per_cell` points per occupied cell if the points filled their box; at least 4 and at
    most MAX_TRACE_SIDE cells a side. The margin (a fraction of a cell on every side) keeps the
    outermost points off the outline's edges. None when the points have no extent in x or y.
    """
    minx, maxx, miny, maxy = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    span_x, span_y = maxx - minx, maxy - miny
    if not (span_x > 0 and span_y > 0):
        return None
    side = int(np.clip(round(math.sqrt(len(x) / per_cell)), 4, MAX_TRACE_SIDE))
    long = max(span_x, span_y)
    cols = max(1, round(side * span_x / long))
    rows = max(1, round(side * span_y / long))
    pad_x, pad_y = margin * span_x / cols, margin * span_y / rows
    left, top = minx - pad_x, maxy + pad_y
    cell_x, cell_y = (span_x + 2 * pad_x) / cols, (span_y + 2 * pad_y) / rows
    col = np.clip(((x - left) / cell_x).astype(np.int64), 0, cols - 1)
    row = np.clip(((top - y) / cell_y).astype(np.int64), 0, rows - 1)
    grid = np.zeros((rows, cols), dtype=bool)
    grid[row, col] = True
    return grid, Affine(cell_x, 0.0, left, 0.0, -cell_y, top)


# --- pixel space -----------------------------------------------------------------------------


def _pooled(valid: np.ndarray, factor: int) -> tuple[np.ndarray, int]:
    """OR-pool by `factor`: a pooled cell is valid if any of the cells it holds is."""
    if factor <= 1:
        return valid, 1
    rows, cols = valid.shape
    padded = np.zeros((-(-rows // factor) * factor, -(-cols // factor) * factor), dtype=bool)
    padded[:rows, :cols] = valid
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return blocks.any(axis=(1, 3)), factor


def _covering(
    grid: np.ndarray, width: float, height: float, target: int, grow: float = 0.0
) -> tuple[Any, int]:
    """A polygon of at most `target` positions covering every True cell, inside the grid.

    Returns it in grid cells, with the size (in grid cells) of the cells it was traced from.
    Douglas-Peucker with tolerance t moves an outline by about t, so the cells grown by t and
    then simplified still hold every cell (checked: GEOS may move a ring's ends further); where
    no tolerance of up to one cell meets the target, the grid is pooled 2 × 2 and traced again,
    which is also how speckled masks stay cheap. Clipping to the grid cannot uncover a cell.
    With `grow`, the cells are first grown by that many cells of the level traced.
    """
    level, size = grid, 1
    while True:
        if _corner_count(level) <= 16 * target:  # else polygonising only to give up is waste
            # Pooled cells may reach past the grid's last row and column.
            cells = _filled(shapely.clip_by_rect(_cells(level, size), 0.0, 0.0, width, height))
            margin = grow * size
            if margin > 0:
                wide = cells.buffer(margin, join_style="mitre", mitre_limit=2.0)
                wide = _filled(shapely.clip_by_rect(wide, 0.0, 0.0, width, height))
                if _positions_of(wide) <= target and wide.covers(cells):
                    return wide, size
            elif _positions_of(cells) <= target:
                return cells, size
            for tolerance in (0.5 * size, 1.0 * size):
                grown = cells.buffer(
                    max(margin, tolerance) * 1.001, join_style="mitre", mitre_limit=2.0
                )
                simple = shapely.simplify(grown, tolerance, preserve_topology=True)
                outline = _filled(shapely.clip_by_rect(simple, 0.0, 0.0, width, height))
                if not outline.is_valid:  # parts that came to touch along an edge
                    outline = _filled(shapely.make_valid(outline))
                if _positions_of(outline) <= target and outline.covers(cells):
                    return outline, size
        if max(level.shape) == 1:
            return Polygon([(0, 0), (width, 0), (width, height), (0, height)]), size
        level, size = _pooled(level, 2)[0], size * 2


def _corner_count(grid: np.ndarray) -> int:
    """About how many vertices polygonising the grid gives: the corners its outline turns at."""
    p = np.zeros((grid.shape[0] + 2, grid.shape[1] + 2), dtype=bool)
    p[1:-1, 1:-1] = grid
    a, b, c, d = p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]
    # A vertex is a corner where 1 or 3 of its 4 cells are True, or 2 diagonal ones.
    odd = a ^ b ^ c ^ d
    diagonal = (a == d) & (b == c) & (a != b)
    return int(np.count_nonzero(odd | diagonal))


def _cells(grid: np.ndarray, size: int) -> Polygon | MultiPolygon:
    """The union of the True cells, each `size` units wide (x = column, y = row), holes filled."""
    ring = _one_piece(grid)
    if ring is not None:
        # The common case, without GDAL's polygonizer: the same polygon, corner for corner and
        # from the same first corner, as the general path below gives.
        return shapely.polygons(ring * size)
    return _polygonized(grid, size)


def _polygonized(grid: np.ndarray, size: int) -> Polygon | MultiPolygon:
    """As `_cells`, for any grid: through GDAL's polygonizer and a union of its pieces."""
    # Traced one cell off the origin, so the transform is never the identity rasterio warns
    # about (see the module's filter for what it still says); the shift back is exact,
    # coordinates being small whole numbers.
    offset = Affine.translation(size, size) @ Affine.scale(size)
    found = rasterio.features.shapes(
        grid.astype(np.uint8), mask=grid, connectivity=4, transform=offset
    )
    pieces = [_piece(geom["coordinates"], size) for geom, _ in found]
    # The pieces tile the plane without overlapping: a coverage union is many times faster than
    # a general one on a speckled mask's thousands of pieces.
    return _filled(shapely.coverage_union_all(pieces))


def _piece(rings: list[Any], shift: float) -> Polygon:
    """A GeoJSON polygon's rings moved by -shift in x and y, built from arrays (shapely's own
    GeoJSON reader builds rings a coordinate at a time in Python)."""
    shell, *holes = [shapely.linearrings(np.asarray(ring, dtype=float) - shift) for ring in rings]
    return shapely.polygons(shell, holes or None)


# Directions of a boundary edge in grid space (x = column, y = row, rows downwards).
_EAST, _SOUTH, _WEST, _NORTH = range(4)
_STEP_X = np.array([1, 0, -1, 0])
_STEP_Y = np.array([0, 1, 0, -1])


def _one_piece(grid: np.ndarray) -> np.ndarray | None:
    """Corners (x, y) of the closed outer ring of the True cells, when they are one piece and no
    two cells meet at a corner only; else None (what is left to GDAL's polygonizer).

    Listed as `rasterio.features.shapes` and `shapely.coverage_union_all` list that piece's outer
    ring: counter-clockwise on screen, from the corner after the top-left one of the first cell
    in raster order. Holes are ignored (footprints fill them).
    """
    rows, cols = grid.shape
    p = np.zeros((rows + 2, cols + 2), dtype=bool)
    p[1:-1, 1:-1] = grid
    inner = p[1:-1, 1:-1]
    # Boundary edges of each side of a cell, directed with the cells on their left: the side,
    # the direction, and x and y of the edge's start relative to the cell's top-left corner.
    sides = (
        (inner & ~p[2:, 1:-1], _EAST, 0, 1),
        (inner & ~p[1:-1, :-2], _SOUTH, 0, 0),
        (inner & ~p[:-2, 1:-1], _WEST, 1, 0),
        (inner & ~p[1:-1, 2:], _NORTH, 1, 1),
    )
    cells = np.flatnonzero(sides[0][0] | sides[1][0] | sides[2][0] | sides[3][0])
    if not len(cells):
        return None
    width = cols + 1  # vertices are numbered y * width + x
    starts, ds = [], []
    for mask, d, dx, dy in sides:
        on = cells[mask.ravel()[cells]]
        starts.append((on // cols + dy) * width + on % cols + dx)
        ds.append(np.full(len(on), d))
    start, d = np.concatenate(starts), np.concatenate(ds)
    if np.bincount(start).max() > 1:
        return None  # two edges leave a vertex: cells meeting at a corner only
    at = np.full((rows + 1) * width, -1, dtype=np.int64)
    at[start] = np.arange(len(start))
    end = start + _STEP_Y[d] * width + _STEP_X[d]
    after = at[end]  # the one edge leaving each edge's end
    turns = d[after] != d
    # The edge that ends each straight run (at a corner), by pointer jumping: log(run) steps.
    last = np.where(turns, np.arange(len(d)), after)
    while not np.array_equal(further := last[last], last):
        last = further
    succ = last[after].tolist()  # from an edge ending at a corner, the next such edge
    # The first cell in raster order (the first boundary cell) has its top side on the outer
    # ring of its piece, ending at the cell's top-left corner.
    top = int(cells[0])
    first = int(at[(top // cols) * width + top % cols + 1])
    corners = np.flatnonzero(turns)
    ring = [first] * (len(corners) + 1)  # at most every corner, and the closing one
    e, n = first, 0
    while True:  # a bare loop: ~4 corners a cell of outline, no call per corner
        e = succ[e]
        ring[n] = e
        n += 1
        if e == first:
            break
    if n < len(corners) and _outer_rings(corners, succ, end, d[after]) > 1:
        return None  # more than one piece
    ring[n] = ring[0]
    v = end[ring[: n + 1]]
    return np.column_stack([v % width, v // width]).astype(float)


def _outer_rings(corners: np.ndarray, succ: list[int], end: np.ndarray, leaving: np.ndarray) -> int:
    """How many of the rings through these corners are outer rings (the others are holes)."""
    ring_of = [-1] * len(succ)
    rings = 0
    for e in corners.tolist():
        if ring_of[e] < 0:
            while ring_of[e] < 0:
                ring_of[e] = rings
                e = succ[e]
            rings += 1
    # An outer ring leaves its first vertex in raster order southwards, a hole eastwards.
    label = np.asarray(ring_of)[corners]
    order = np.lexsort((end[corners], label))
    firsts = order[np.r_[True, label[order][1:] != label[order][:-1]]]
    return int((leaving[corners[firsts]] == _SOUTH).sum())


def _filled(geom: Any) -> Polygon | MultiPolygon:
    """Polygons only, holes dropped: a footprint is an outline, not a map of gaps.

    `geom`'s polygons must not overlap (a union, or one clipped or simplified keeping topology).
    """
    parts = list(_polygons(geom))
    shells = [Polygon(part.exterior) for part in parts]
    if len(shells) <= 1:
        return shells[0] if shells else MultiPolygon()
    # The parts are disjoint, so a shell overlaps another only by lying in one of its holes.
    inner, outer = shapely.STRtree(shells).query(
        shapely.point_on_surface(parts), predicate="within"
    )
    enclosed = {int(i) for i, j in zip(inner, outer, strict=True) if i != j}
    return MultiPolygon([s for i, s in enumerate(shells) if i not in enclosed])


def _polygons(geom: Any) -> Iterable[Polygon]:
    if isinstance(geom, Polygon):
        if not geom.is_empty and geom.area > 0:
            yield geom
        return
    for part in getattr(geom, "geoms", ()):
        yield from _polygons(part)


def _parts(geom: Any) -> list[Polygon]:
    return sorted(_polygons(geom), key=lambda p: p.bounds)  # a stable order, for stable bytes


def _positions_of(geom: Any) -> int:
    return sum(len(p.exterior.coords) for p in _polygons(geom))


def _positions(geometry: dict[str, Any]) -> int:
    coords = geometry["coordinates"]
    polygons = coords if geometry["type"] == "MultiPolygon" else [coords]
    return sum(len(ring) for polygon in polygons for ring in polygon)


def _placed(polygon: Polygon, t: Affine) -> np.ndarray:
    """The polygon's outer ring through `t` (x = column, y = row), as shapely's
    affine_transform computes it, without building a geometry only to read its coordinates."""
    x, y = shapely.get_coordinates(polygon.exterior).T
    return np.column_stack([t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f])
