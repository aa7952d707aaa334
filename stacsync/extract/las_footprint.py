"""Where a point cloud lies in EPSG:4326: a polygon that covers every point, always.

The native region that holds the points — the header box, or a COPC cloud's occupied octree
cells — is grown by half a quantisation step, reprojected with densified edges, and checked:
its boundary, sampled finely and transformed as the points would be, must lie inside the
EPSG:4326 polygon, else the region is grown by what was missed and reprojected again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
import pyproj
import rasterio.features
import shapely
from affine import Affine
from pyproj.crs import BoundCRS, GeographicCRS
from pyproj.crs.coordinate_system import Ellipsoidal3DCS
from shapely.geometry import Polygon, shape

from stacsync.core.errors import ExtractError
from stacsync.core.records import BBox
from stacsync.extract.copc import CopcError, CopcLayout, CopcSample, read_copc_sample
from stacsync.extract.crs import parse_crs, strip_compound
from stacsync.extract.geojson import shape_of
from stacsync.extract.geometry import footprint_4326, outline_4326
from stacsync.extract.las_crs import check_area_of_use, crs_parts
from stacsync.extract.las_header import Header, Record, read_at, record_data

# A geocentric box whose corners sit further than this from the ellipsoid is not on the Earth.
_MAX_ECEF_HEIGHT = 100_000.0
# Points on each edge of the native region checked against the EPSG:4326 polygon.
_CHECK_SAMPLES = 32
# Times the region is grown by what the check missed before giving up.
_MAX_GROWS = 6
# COPC cells: at most 2**9 a side over the octree's cube, and at most this many positions.
_MAX_CELL_LEVEL = 9
MAX_POSITIONS = 2000

Region = tuple[float, float, float, float] | Polygon | shapely.MultiPolygon


def header_footprint(
    h: Header, crs_wkt: str, name: str, warnings: list[str]
) -> tuple[BBox, dict[str, Any]]:
    crs, horizontal, horizontal_wkt = crs_parts(crs_wkt)
    minx, miny, maxx, maxy = h.mins[0], h.mins[1], h.maxs[0], h.maxs[1]
    margin = _margin(h)
    if horizontal.is_geocentric:
        to_geodetic, ring_wkt = _geodetic(horizontal_wkt)
        region = _geocentric_box(h, to_geodetic, name)
        # Half a step in metres as degrees of longitude there, and what 9 × 9 samples of each
        # face may miss of its extremes.
        coslat = max(math.cos(math.radians(max(abs(region[1]), abs(region[3])))), 1e-3)
        span = max(region[2] - region[0], region[3] - region[1])
        margin = margin / (111_000.0 * coslat) + 1e-5 * span + 1e-9
    elif horizontal.is_geographic:
        _check_geographic(minx, miny, maxx, maxy, name)
        region, ring_wkt = (minx, miny, maxx, maxy), crs_wkt
    elif horizontal.is_projected:
        region, ring_wkt = (minx, miny, maxx, maxy), crs_wkt
    else:
        raise ExtractError(
            f"{name}: CRS {crs.name!r} ({horizontal.type_name}) does not place X/Y on the Earth,"
            " so there is no footprint"
        )
    try:
        bbox, geometry = cover_4326(region, ring_wkt, margin)
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
) -> tuple[BBox, dict[str, Any], str] | None:
    """Where a COPC cloud's points are, from its octree; None: use the header box.

    The points of the coarse levels are decoded (X/Y only, at most `copc.MAX_POINTS`), every
    deeper node stands as its cube; the octree cells one level below the decoded ones that hold
    a decoded point or a deeper node cover every point exactly, and clipped to the header box
    they are the region (cells are merged 2 × 2 while the polygon has too many positions).
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
        level = min(sample.deepest + 1, _MAX_CELL_LEVEL)
        while True:
            region = _occupied_cells(sample, h, level)
            if region is None:
                return None  # the header box has no area: its footprint says so
            bbox, geometry = cover_4326(region, crs_wkt, _margin(h))
            if positions(geometry) <= MAX_POSITIONS or level == 0:
                break
            level -= 1
    except (CopcError, ExtractError) as exc:
        warnings.append(f"footprint from the header box: COPC octree not usable ({exc})")
        return None
    levels = "level 0" if sample.deepest == 0 else f"levels 0-{sample.deepest}"
    method = (
        f"COPC octree {levels} ({len(sample.x):,} points) and {len(sample.nodes):,} deeper"
        f" nodes, as level-{level} cells"
    )
    return bbox, geometry, method


def cover_4326(region: Region, crs_wkt: str, margin: float) -> tuple[BBox, dict[str, Any]]:
    """A native region (a box as (minx, miny, maxx, maxy), or polygons) -> its cover in 4326.

    The region grown by `margin` (native units) is reprojected with densified edges; its
    ungrown boundary, sampled and transformed, must be covered by the result, else it is grown
    by twice the worst miss and reprojected again. Raises ExtractError as `footprint_4326`
    does, or if no growth covers it.
    """
    samples = _boundary_samples(region)
    lon, lat = _lonlat(samples, crs_wkt)
    points = shapely.points(lon, lat)
    per_degree = _units_per_degree(samples, crs_wkt)
    grow, worst = margin, math.inf
    for _ in range(_MAX_GROWS):
        bbox, geometry = _reproject(_grown(region, grow), crs_wkt, grow)
        covering = shape_of(geometry)
        missed = ~shapely.covers(covering, points)
        if not missed.any():
            return bbox, geometry
        worst = float(shapely.distance(covering, points[missed]).max())
        grow += max(grow, 2.0 * worst * per_degree)
    raise ExtractError(
        f"footprint misses the data by {worst:.3g}° after growing it {_MAX_GROWS} times"
    )


def positions(geometry: dict[str, Any]) -> int:
    """Positions of a GeoJSON Polygon or MultiPolygon, closing ones included."""
    coords = geometry["coordinates"]
    polygons = coords if geometry["type"] == "MultiPolygon" else [coords]
    return sum(len(ring) for polygon in polygons for ring in polygon)


# --- the native region ---------------------------------------------------------------------


def _margin(h: Header) -> float:
    """Half a quantisation step (writers may store a box of the unquantised coordinates), and
    float noise of the coordinates' size."""
    size = max(abs(v) for v in (*h.mins[:2], *h.maxs[:2], 1.0))
    return max(h.scales[0], h.scales[1]) / 2.0 + 1e-12 * size


def _occupied_cells(sample: CopcSample, h: Header, level: int) -> Polygon | None:
    """The level-`level` octree cells that hold a decoded point or a deeper node, in the box."""
    n = 1 << level
    side = 2.0 * sample.halfsize / n
    x0, y0 = sample.center[0] - sample.halfsize, sample.center[1] - sample.halfsize
    minx, miny, maxx, maxy = h.mins[0], h.mins[1], h.maxs[0], h.maxs[1]
    if not (maxx > minx and maxy > miny):
        return None

    def cell(v: np.ndarray | float, origin: float) -> np.ndarray:
        # A point on a cell's edge lies in both cells; either holds it (cells are closed).
        return np.clip(np.floor((np.asarray(v, dtype=float) - origin) / side), 0, n - 1).astype(
            np.int64
        )

    slack = _margin(h)
    for v, origin in ((sample.x, x0), (sample.y, y0)):
        if len(v) and (v.min() < origin - slack or v.max() > origin + n * side + slack):
            raise CopcError("decoded points lie outside the octree's cube")
    i0, i1 = (int(v) for v in cell(np.array([minx, maxx]), x0))
    j0, j1 = (int(v) for v in cell(np.array([miny, maxy]), y0))
    grid = np.zeros((j1 - j0 + 1, i1 - i0 + 1), dtype=bool)
    cols = [cell(sample.x, x0)]
    rows = [cell(sample.y, y0)]
    if len(sample.nodes):
        shift = sample.nodes[:, 0] - level  # deeper nodes (level > deepest >= level - 1)
        cols.append(sample.nodes[:, 1] >> shift)
        rows.append(sample.nodes[:, 2] >> shift)
    col, row = np.concatenate(cols), np.concatenate(rows)
    keep = (col >= i0) & (col <= i1) & (row >= j0) & (row <= j1)
    grid[row[keep] - j0, col[keep] - i0] = True
    if not grid.any():
        raise CopcError("no octree cell holding points lies in the header box")
    to_native = Affine(side, 0.0, x0 + i0 * side, 0.0, side, y0 + j0 * side)
    shells = [
        Polygon(shape(geom).exterior)
        for geom, _ in rasterio.features.shapes(
            grid.astype(np.uint8), mask=grid, connectivity=4, transform=to_native
        )
    ]
    cells = shapely.union_all(shells)
    region = shapely.clip_by_rect(cells, minx, miny, maxx, maxy)
    parts = [Polygon(p.exterior) for p in _polygons(region)]
    if not parts:
        raise CopcError("the octree cells holding points have no area in the header box")
    return shapely.union_all(parts)


def _polygons(geom: Any) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom] if geom.area > 0 else []
    return [p for g in getattr(geom, "geoms", ()) for p in _polygons(g)]


def _grown(region: Region, grow: float) -> Region:
    if isinstance(region, tuple):
        minx, miny, maxx, maxy = region
        return (minx - grow, miny - grow, maxx + grow, maxy + grow)
    return region.buffer(grow, join_style="mitre", mitre_limit=2.0)


def _reproject(region: Region, crs_wkt: str, grow: float) -> tuple[BBox, dict[str, Any]]:
    if isinstance(region, tuple):
        minx, miny, maxx, maxy = region
        return footprint_4326(_box_ring(minx, miny, maxx, maxy), crs_wkt)
    rings = [np.asarray(p.exterior.coords) for p in sorted(_polygons(region), key=_bounds)]
    return outline_4326(rings, crs_wkt, tolerance=grow)


def _bounds(p: Polygon) -> tuple[float, ...]:
    return p.bounds  # a stable order of parts, for stable bytes


def _boundary_samples(region: Region) -> np.ndarray:
    """Points along every edge of the region's outer rings, the vertices included."""
    if isinstance(region, tuple):
        rings = [np.asarray(_box_ring(*region))]
    else:
        rings = [np.asarray(p.exterior.coords) for p in _polygons(region)]
    t = np.arange(_CHECK_SAMPLES, dtype=float)[None, :, None] / _CHECK_SAMPLES
    pieces = [(r[:-1, None, :] + (r[1:] - r[:-1])[:, None, :] * t).reshape(-1, 2) for r in rings]
    return np.concatenate(pieces)


# --- the transform the points take ----------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _to_4326(crs_wkt: str) -> tuple[pyproj.Transformer, bool]:
    """As `geometry` transforms footprints: the horizontal part, a BoundCRS's shift kept."""
    crs = strip_compound(parse_crs(crs_wkt))
    if crs.is_bound and crs.source_crs.is_compound:
        crs = BoundCRS(
            source_crs=strip_compound(crs.source_crs),
            target_crs=crs.target_crs,
            transformation=crs.coordinate_operation,
        )
    return pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True), crs.is_geographic


def _lonlat(pts: np.ndarray, crs_wkt: str) -> tuple[np.ndarray, np.ndarray]:
    to_4326, geographic = _to_4326(crs_wkt)
    lon, lat = to_4326.transform(pts[:, 0], pts[:, 1], errcheck=False)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if geographic:
        lon = np.where(lon > 180.0, lon - 360.0, lon)
        lon = np.where(lon < -180.0, lon + 360.0, lon)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ExtractError("footprint is not finite in EPSG:4326 (outline points off the Earth)")
    return lon, lat


def _units_per_degree(samples: np.ndarray, crs_wkt: str) -> float:
    """Native units per degree, the most of any direction, at the region's middle."""
    lo, hi = samples.min(axis=0), samples.max(axis=0)
    mid = (lo + hi) / 2.0
    step = max(float((hi - lo).max()) / 100.0, 1e-9 * max(1.0, float(np.abs(mid).max())))
    probe = mid + np.array([[0.0, 0.0], [step, 0.0], [0.0, step]])
    lon, lat = _lonlat(probe, crs_wkt)
    degrees = min(math.hypot(lon[k] - lon[0], lat[k] - lat[0]) for k in (1, 2))
    return step / degrees if degrees > 0 else 1.0


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


def _geocentric_box(
    h: Header, to_geodetic: pyproj.Transformer, name: str
) -> tuple[float, float, float, float]:
    """Earth-centred X/Y/Z: the lon/lat box of the 3-D box's faces, refusing boxes off the Earth.

    Faces, not only corners: latitude peaks where a face passes closest to the Earth's axis.
    """
    t = np.linspace(0.0, 1.0, 9)
    lo, hi = np.asarray(h.mins, dtype=float), np.asarray(h.maxs, dtype=float)
    a, b = (g.ravel() for g in np.meshgrid(t, t))
    faces = []
    for axis in range(3):
        u, v = [k for k in range(3) if k != axis]
        for end in (lo[axis], hi[axis]):
            face = np.empty((a.size, 3))
            face[:, axis] = end
            face[:, u] = lo[u] + a * (hi[u] - lo[u])
            face[:, v] = lo[v] + b * (hi[v] - lo[v])
            faces.append(face)
    pts = np.concatenate(faces)
    lons, lats, heights = (
        np.asarray(c, dtype=float)
        for c in to_geodetic.transform(pts[:, 0], pts[:, 1], pts[:, 2], errcheck=False)
    )
    finite = np.isfinite(lons).all() and np.isfinite(lats).all() and np.isfinite(heights).all()
    if not finite or np.abs(heights).max() > _MAX_ECEF_HEIGHT:
        raise ExtractError(
            f"{name}: geocentric CRS but the header box is not near the Earth's surface"
            f" (corner heights {np.nanmin(heights):.0f} to {np.nanmax(heights):.0f} m);"
            " the CRS is wrong"
        )
    if lons.max() - lons.min() > 180:
        raise ExtractError(f"{name}: geocentric box crossing the antimeridian is not supported")
    return float(lons.min()), float(lats.min()), float(lons.max()), float(lats.max())
