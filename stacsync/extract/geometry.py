"""EPSG:4326 footprints from native-CRS outlines, shared by the raster and point-cloud extractors.

Never a footprint off the Earth: antimeridian crossings are split, poles closed, the rest refused.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.crs import BoundCRS
from pyproj.exceptions import ProjError
from shapely.affinity import translate
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from shapely.geometry.polygon import orient

from stacsync.core.errors import ExtractError
from stacsync.core.records import BBox
from stacsync.extract.crs import parse_crs, strip_compound
from stacsync.extract.geojson import geojson as _geojson

log = logging.getLogger(__name__)


# Douglas-Peucker tolerance in degrees (~1 cm) for the footprint polygon: drops the densified
# vertices of short, practically straight edges (drone products) but keeps the curvature of long
# edges (satellite scenes), so the index stays small without bending the outline.
SIMPLIFY_DEG = 1e-7

# Lat/lon values this close outside the valid range are float noise, not a wrong footprint.
_EPS = 1e-9

# PROJ decides "same celestial body" from the ellipsoid size; so do we, in case the user's
# environment sets PROJ_IGNORE_CELESTIAL_BODY and PROJ would transform Mars to Earth silently.
_EARTH_SEMI_MAJOR = (6_300_000.0, 6_500_000.0)


def footprint_4326(
    ring: Sequence[tuple[float, float]], crs_wkt: str, *, densify: int = 21
) -> tuple[BBox, dict[str, Any]]:
    """Native-CRS polygon vertices -> (bbox, GeoJSON geometry) in EPSG:4326 lon/lat.

    Each edge is cut into `densify + 1` segments (the sampling of PROJ's transform_bounds with
    densify_pts=densify). bbox is (west, south, east, north); when the footprint crosses the
    antimeridian west > east and the geometry is a MultiPolygon split at ±180. Raises
    ExtractError (message without file name) rather than return a footprint that is not finite,
    off the Earth, on another celestial body or otherwise impossible.
    """
    pts = _ring_array(ring)
    crs, source_wkt = _footprint_source(crs_wkt)
    lon, lat = _lonlat(_densify(pts, densify), source_wkt=source_wkt, geographic=crs.is_geographic)
    return _assemble(lon, lat)


def outline_4326(
    rings: Sequence[Sequence[tuple[float, float]] | np.ndarray],
    crs_wkt: str,
    *,
    tolerance: float,
    outward: bool = False,
) -> tuple[BBox, dict[str, Any]]:
    """Outer rings of a footprint of one or more parts, in the native CRS -> (bbox, GeoJSON).

    As `footprint_4326`, for an outline traced from data rather than a grid's corners. An edge
    is halved, and its halves again, only while its midpoint lands more than `tolerance` (native
    units, converted at the outline's mean scale) off the straight lon/lat chord: a drone-sized
    outline keeps its vertices, a satellite scene's long edges keep their curve. The parts are
    unioned on continuous longitudes and split at ±180 when they cross it; bbox is the
    geometry's own. Raises ExtractError as `footprint_4326` does, and for a part that winds
    around a pole (the caller then keeps the grid box, which handles poles). `outward`: the
    final simplification (SIMPLIFY_DEG) is kept only if it cuts nothing, and points off the
    Earth (a geostationary disk's corners) are moved onto its limb, towards the outline's
    on-Earth points, instead of refused.
    """
    arrays = [_ring_array(ring) for ring in rings]
    if not arrays:
        raise ExtractError("footprint outline has no parts")
    crs, source_wkt = _footprint_source(crs_wkt)
    moved = False
    to_lonlat = functools.partial(_lonlat, source_wkt=source_wkt, geographic=crs.is_geographic)
    if outward and tolerance > 0:
        onto = [_onto_earth(ring, source_wkt, tolerance) for ring in arrays]
        moved = any(raw is None for _, raw in onto)
        arrays = [ring for ring, _ in onto]
        # A ring that did not move was transformed already, to see that it could be.
        corners = [to_lonlat(ring, raw=raw) for ring, raw in onto]
    else:
        corners = [to_lonlat(ring) for ring in arrays]
    tolerance_deg = tolerance * _degrees_per_unit(np.concatenate(arrays), corners)
    parts = [
        _continuous_part(*_densified(ring, lon, lat, to_lonlat, tolerance_deg))
        for ring, (lon, lat) in zip(arrays, corners, strict=True)
    ]
    # Every part on the longitudes of the first, so parts either side of ±180 join up.
    reference = parts[0][0, 0]
    polygons = [
        _part_polygon(part[:, 0] + 360.0 * np.round((reference - part[0, 0]) / 360.0), part[:, 1])
        for part in parts
    ]
    kept = [p for p in polygons if p is not None]
    # A single valid part is its own union (GEOS would hand back the same coordinates).
    merged = kept[0] if len(kept) == 1 else shapely.union_all(kept)
    if merged.is_empty:
        raise ExtractError("footprint outline has no area in EPSG:4326")
    west, _, east, _ = merged.bounds
    if west >= 180.0 or east <= -180.0:
        merged = translate(merged, xoff=-360.0 if west >= 180.0 else 360.0)
    if moved:
        # Off the Earth's edge the outline follows the limb in tiny steps: simplify it back
        # (by half a traced cell), then grow by as much, so nothing it held is cut.
        limb = max(SIMPLIFY_DEG, 25.0 * tolerance_deg)
        merged = shapely.simplify(merged, limb, preserve_topology=True)
        merged = merged.buffer(limb, join_style="mitre", mitre_limit=2.0)
    simple = shapely.simplify(merged, SIMPLIFY_DEG, preserve_topology=True)
    # An outline the simplification left as it was covers itself: no need to ask GEOS, for
    # whom two identical outlines are its slowest case of `covers`.
    unchanged = shapely.equals_identical(simple, merged)
    merged = merged if outward and not unchanged and not simple.covers(merged) else simple
    west, south, east, north = merged.bounds
    if east - west >= 360.0 - _EPS:
        raise ExtractError("footprint outline spans every longitude")
    if east > 180.0:
        return (west, south, east - 360.0, north), _split(merged)
    if west < -180.0:
        return (west + 360.0, south, east, north), _split(merged)
    return (west, south, east, north), _geojson(shapely.orient_polygons(merged))


# An edge is halved at most this often: 64 pieces follow any curve a footprint edge can have.
_MAX_HALVINGS = 6


def _lonlat(
    pts: np.ndarray,
    *,
    source_wkt: str,
    geographic: bool,
    raw: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of the points (`raw`: their finite transform, already made), range-checked."""
    lon, lat = _transform(pts, source_wkt) if raw is None else raw
    if geographic:
        # Grids in 0..360 longitudes (climate models): bring them back to -180..180.
        lon = np.where(lon > 180.0, lon - 360.0, lon)
        lon = np.where(lon < -180.0, lon + 360.0, lon)
    _check_range(lon, lat)
    return lon, lat


def _degrees_per_unit(pts: np.ndarray, lonlats: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Degrees per native unit across the outline (its diagonal in both), 0 if it has none."""
    native = math.hypot(*np.ptp(pts, axis=0))
    lon = np.concatenate([lo for lo, _ in lonlats])
    lat = np.concatenate([la for _, la in lonlats])
    degrees = math.hypot(float(np.ptp(_unwrap(lon))), float(np.ptp(lat)))
    return degrees / native if native > 0 else 0.0


def _densified(
    ring: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    to_lonlat: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    tolerance_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of the ring with a midpoint added to every edge that bends more than allowed."""
    if tolerance_deg <= 0:
        return lon, lat
    # concatenate((a[1:], a[:1])) here and below: np.roll(a, -1), a fraction of its cost.
    for _ in range(_MAX_HALVINGS):
        mid = (ring + np.concatenate((ring[1:], ring[:1]))) / 2.0
        mid_lon, mid_lat = to_lonlat(mid)
        step = _wrap180(np.concatenate((lon[1:], lon[:1])) - lon)
        off_lon = _wrap180(mid_lon - (lon + step / 2.0))
        off_lat = mid_lat - (lat + np.concatenate((lat[1:], lat[:1]))) / 2.0
        bends = np.hypot(off_lon, off_lat) > tolerance_deg
        if not bends.any():
            break
        at = np.flatnonzero(bends) + 1
        ring = np.insert(ring, at, mid[bends], axis=0)
        lon = np.insert(lon, at, mid_lon[bends])
        lat = np.insert(lat, at, mid_lat[bends])
    return lon, lat


def _wrap180(delta: np.ndarray) -> np.ndarray:
    """Longitude differences brought into [-180, 180): the short way round."""
    return (delta + 180.0) % 360.0 - 180.0


def _continuous_part(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """One closed ring as (lon, lat) rows, its longitudes made continuous (no jump > 180°)."""
    ulon = _unwrap(np.clip(lon, -180.0, 180.0))
    if abs(ulon[-1] - ulon[0]) > 180.0:
        raise ExtractError("footprint outline winds around a pole")
    return np.column_stack([ulon, np.append(np.clip(lat, -90.0, 90.0), lat[0])])


def _part_polygon(lon: np.ndarray, lat: np.ndarray) -> Polygon | None:
    poly = Polygon(np.column_stack([lon, lat]))
    if poly.area == 0.0:
        return None  # a sliver the transform flattened; the other parts still hold the data
    if not poly.is_valid:
        raise ExtractError(
            "footprint outline crosses itself in EPSG:4326 (the grid folds over in this CRS)"
        )
    return poly


# --- the CRS a footprint is transformed from ---------------------------------------------


@functools.lru_cache(maxsize=256)
def _footprint_source(crs_text: str) -> tuple[CRS, str]:
    """The CRS footprints are transformed from, and its WKT2 (the transformer cache key)."""
    crs = _footprint_crs(parse_crs(crs_text))
    return crs, crs.to_wkt("WKT2_2019")


def _footprint_crs(crs: CRS) -> CRS:
    """The 2-D CRS to transform from: horizontal part of a compound, BoundCRS kept.

    A BoundCRS's TOWGS84 is the file's own statement of how to reach WGS 84; dropping it would let
    PROJ fall back to a ballpark datum shift (hundreds of metres off for old local datums).
    """
    crs = strip_compound(crs)
    if crs.is_bound and crs.source_crs.is_compound:
        crs = BoundCRS(
            source_crs=strip_compound(crs.source_crs),
            target_crs=crs.target_crs,
            transformation=crs.coordinate_operation,
        )
    base = crs.source_crs if crs.is_bound else crs
    if base.is_geocentric:
        raise ExtractError(
            f"cannot place footprint on Earth: CRS '{base.name}' is geocentric (X/Y/Z), "
            "not a 2-D horizontal CRS"
        )
    if base.is_vertical or base.ellipsoid is None:
        raise ExtractError(
            f"cannot place footprint on Earth: CRS '{base.name}' has no geodetic datum "
            "(vertical, engineering or local CRS)"
        )
    semi_major = base.ellipsoid.semi_major_metre
    if not _EARTH_SEMI_MAJOR[0] <= semi_major <= _EARTH_SEMI_MAJOR[1]:
        raise ExtractError(
            f"cannot place footprint on Earth: CRS '{base.name}' is defined on another "
            f"celestial body (ellipsoid '{base.ellipsoid.name}', "
            f"semi-major axis {semi_major:.0f} m)"
        )
    return crs


@functools.lru_cache(maxsize=256)
def _transformer(src_text: str, dst_text: str) -> Transformer:
    # Building a Transformer searches proj.db for operations; reuse it per (source, target).
    # pyproj >= 3.1 Transformers are thread-safe, so the cache can be shared by worker threads.
    return Transformer.from_crs(parse_crs(src_text), parse_crs(dst_text), always_xy=True)


# Points of an outline off the Earth at most: beyond, steps along the limb grow longer.
_MAX_LIMB_POINTS = 200_000


def _onto_earth(
    ring: np.ndarray, source_wkt: str, step: float
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The ring with its points that do not transform moved onto the Earth's limb.

    Edges with an end off the Earth are first cut into pieces of at most `step`; each point
    off the Earth is then moved towards the ring's on-Earth centre, by bisection, to the last
    point that transforms (exact for a limb that is convex, as a geostationary disk's is).
    Returns the ring, and its lon/lat when nothing moved (None when something did).
    """
    lon, lat = _transform_unchecked(ring, source_wkt)
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if not bad.any():
        return ring, (lon, lat)
    edge = np.concatenate((ring[1:], ring[:1])) - ring
    touching = bad | np.concatenate((bad[1:], bad[:1]))
    length = np.hypot(edge[:, 0], edge[:, 1])
    total = float(length[touching].sum())
    step = max(step, total / _MAX_LIMB_POINTS)
    pieces = np.where(touching, np.maximum(1, np.ceil(length / step)), 1).astype(np.int64)
    start = np.repeat(np.arange(len(ring)), pieces)
    offset = np.arange(len(start)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    fine = ring[start] + edge[start] * (offset / pieces[start])[:, None]
    bad = ~_finite(fine, source_wkt)
    good = fine[~bad]
    # Towards the outline's on-Earth points, or (a disk wholly inside it) its centroid.
    centre = good.mean(axis=0) if len(good) else np.asarray(Polygon(ring).centroid.coords[0])
    if not _finite(centre[None, :], source_wkt)[0]:
        if not len(good):
            raise ExtractError(
                f"footprint is not finite in EPSG:4326 (none of {len(ring)} outline points "
                "and not its centre can be transformed)"
            )
        centre = good[np.argmin(np.hypot(*(good - centre).T))]
    lo, hi = np.zeros(int(bad.sum())), np.ones(int(bad.sum()))
    away = fine[bad] - centre
    for _ in range(48):
        mid = (lo + hi) / 2.0
        ok = _finite(centre + away * mid[:, None], source_wkt)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    fine[bad] = centre + away * lo[:, None]
    return fine, None


def _finite(pts: np.ndarray, source_wkt: str) -> np.ndarray:
    """Which points transform to finite lon/lat."""
    lon, lat = _transform_unchecked(pts, source_wkt)
    return np.isfinite(lon) & np.isfinite(lat)


def _transform_unchecked(pts: np.ndarray, source_wkt: str) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of the points, inf where they cannot be transformed."""
    try:
        to_4326 = _transformer(source_wkt, "EPSG:4326")
        lon, lat = to_4326.transform(pts[:, 0], pts[:, 1], errcheck=False)
    except ProjError as exc:
        raise ExtractError(f"cannot place footprint on Earth: {_clean_proj(exc)}") from exc
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _transform(pts: np.ndarray, source_wkt: str) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _transform_unchecked(pts, source_wkt)
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if bad.any():
        raise ExtractError(
            f"footprint is not finite in EPSG:4326 ({int(bad.sum())} of {bad.size} outline points "
            "cannot be transformed, e.g. corners off the Earth's disk)"
        )
    return lon, lat


def _clean_proj(exc: Exception) -> str:
    text = str(exc)
    marker = "Internal Proj Error: "
    if marker in text:
        text = text.split(marker, 1)[1].rstrip(")")
    return text.replace("proj_create_operations: ", "")


# --- geometry helpers ------------------------------------------------------------------------


def _ring_array(ring: Sequence[tuple[float, float]] | np.ndarray) -> np.ndarray:
    """The ring as an (n, 2) float array, not closed; an (n, 2) numeric array is taken as is."""
    if isinstance(ring, np.ndarray) and ring.ndim == 2 and ring.shape[1] == 2 and _numeric(ring):
        pts = np.asarray(ring, dtype=float)  # no copy of a float array: nothing here changes it
    else:
        try:
            pts = np.asarray([(float(x), float(y)) for x, y in ring], dtype=float)
        except (TypeError, ValueError) as exc:
            raise ExtractError(f"footprint outline is not a list of (x, y) pairs: {exc}") from exc
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]  # accept closed rings too
    if len(pts) < 3:
        raise ExtractError(f"footprint outline needs at least 3 vertices, got {len(pts)}")
    if not np.isfinite(pts).all():
        raise ExtractError("footprint outline has non-finite native coordinates")
    return pts


def _numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "fiu"


def _densify(pts: np.ndarray, densify: int) -> np.ndarray:
    steps = max(int(densify), 0) + 1
    t = np.arange(steps, dtype=float) / steps
    start, end = pts, np.concatenate((pts[1:], pts[:1]))  # each vertex's next
    seg = start[:, None, :] + (end - start)[:, None, :] * t[None, :, None]
    return seg.reshape(-1, 2)


def _check_range(lon: np.ndarray, lat: np.ndarray) -> None:
    if (np.abs(lat) > 90.0 + _EPS).any():
        raise ExtractError(
            f"footprint is outside the Earth: latitude {_worst(lat, 90.0):.6g} is beyond ±90 "
            "(coordinates do not match the CRS?)"
        )
    if (np.abs(lon) > 180.0 + _EPS).any():
        raise ExtractError(
            f"footprint is outside the Earth: longitude {_worst(lon, 180.0):.6g} is beyond ±180"
        )


def _worst(values: np.ndarray, limit: float) -> float:
    return float(values[np.argmax(np.abs(values) - limit)])


def _unwrap(lon: np.ndarray) -> np.ndarray:
    """Make consecutive longitudes continuous (no jump > 180°) along the closed ring."""
    closed = np.append(lon, lon[0])
    jumps = np.diff(closed)
    shift = -360.0 * np.round(jumps / 360.0)
    return closed + np.concatenate(([0.0], np.cumsum(shift)))


def _assemble(lon: np.ndarray, lat: np.ndarray) -> tuple[BBox, dict[str, Any]]:
    lat = np.clip(lat, -90.0, 90.0)
    ulon = _unwrap(np.clip(lon, -180.0, 180.0))
    ulat = np.append(lat, lat[0])
    winding = ulon[-1] - ulon[0]
    if abs(winding) > 180.0:
        return _around_pole(ulon, ulat)
    # Move the whole ring into the window that contains most of it.
    if ulon.min() >= 180.0:
        ulon = ulon - 360.0
    elif ulon.max() <= -180.0:
        ulon = ulon + 360.0
    south, north = float(ulat.min()), float(ulat.max())
    west, east = float(ulon.min()), float(ulon.max())
    if east - west >= 360.0 - _EPS:
        return _whole_world(south, north)
    coords = np.column_stack([ulon, ulat])
    geom = _outline_geometry(coords)
    if east > 180.0:
        return (west, south, east - 360.0, north), _split(geom)
    if west < -180.0:
        return (west + 360.0, south, east, north), _split(geom)
    return (west, south, east, north), _geojson(geom)


def _outline_geometry(coords: np.ndarray) -> Polygon | LineString | Point:
    poly = Polygon(coords)
    if poly.area == 0.0:
        # A zero-extent point cloud or a one-pixel-wide line: say what it is, no fake area.
        unique = np.unique(coords, axis=0)
        return Point(unique[0]) if len(unique) == 1 else LineString(_line_ends(unique))
    if not poly.is_valid:
        raise ExtractError(
            "footprint outline crosses itself in EPSG:4326 (the grid folds over in this CRS)"
        )
    simple = shapely.simplify(poly, SIMPLIFY_DEG, preserve_topology=True)
    return orient(simple if isinstance(simple, Polygon) else poly, sign=1.0)


def _line_ends(unique: np.ndarray) -> list[tuple[float, float]]:
    # Collinear points: the two farthest apart are the ends of the line (few points, O(n²) is fine).
    dist = ((unique[:, None, :] - unique[None, :, :]) ** 2).sum(axis=-1)
    i, j = np.unravel_index(int(dist.argmax()), dist.shape)
    return [tuple(unique[i]), tuple(unique[j])]


def _split(geom: Polygon | LineString | Point) -> dict[str, Any]:
    """Cut a geometry drawn on continuous longitudes into pieces inside -180..180."""
    parts = []
    for offset in (0.0, -360.0, 360.0):
        window = box(-180.0 - offset, -90.0, 180.0 - offset, 90.0)
        piece = geom.intersection(window)
        if piece.is_empty:
            continue
        parts.extend(_polygons(translate(piece, xoff=offset)))
    if not parts:
        raise ExtractError("footprint could not be split at the antimeridian")
    if len(parts) == 1:
        return _geojson(parts[0])
    return _geojson(MultiPolygon(parts))


def _polygons(geom: Any) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [orient(geom, sign=1.0)] if geom.area > 0 else []
    return [p for g in getattr(geom, "geoms", []) for p in _polygons(g)]


def _around_pole(ulon: np.ndarray, ulat: np.ndarray) -> tuple[BBox, dict[str, Any]]:
    """The outline winds once around a pole: close it over the pole, then split at ±180."""
    north_pole = float(np.mean(ulat)) > 0.0
    pole = 90.0 if north_pole else -90.0
    coords = np.column_stack([ulon, ulat]).tolist()
    coords += [[ulon[-1], pole], [ulon[0], pole]]
    poly = Polygon(coords)
    if not poly.is_valid:
        raise ExtractError("footprint around a pole crosses itself in EPSG:4326")
    lo = float(np.floor((min(ulon) + 180.0) / 360.0))
    pieces = [
        translate(
            poly.intersection(box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0)),
            xoff=-360.0 * k,
        )
        for k in range(int(lo), int(lo) + 3)
    ]
    polys = [p for piece in pieces if not piece.is_empty for p in _polygons(piece)]
    merged = shapely.union_all(polys)
    south = -90.0 if not north_pole else float(ulat.min())
    north = 90.0 if north_pole else float(ulat.max())
    return (-180.0, south, 180.0, north), _geojson(merged)


def _whole_world(south: float, north: float) -> tuple[BBox, dict[str, Any]]:
    return (-180.0, south, 180.0, north), _geojson(orient(box(-180.0, south, 180.0, north)))
