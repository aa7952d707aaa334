"""An item's footprint as written: it covers its assets' footprints after rounding, is valid,
winds as RFC 7946 asks, repeats no vertex, and its bbox is its bounds (rounded outward)."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest
import shapely
from shapely.affinity import rotate
from shapely.geometry import Polygon, box, mapping, shape

from stacsync.catalog.footprint import COORD_DECIMALS, footprint, repeated_vertices
from stacsync.core.records import AssetMeta

STEP = 10.0**-COORD_DECIMALS


def meta(geometry: Any) -> AssetMeta:
    geom = shape(geometry) if isinstance(geometry, dict) else geometry
    bounds = geom.bounds
    return AssetMeta(
        kind="pointcloud",
        media_type="application/vnd.laszip",
        crs_code="EPSG:4326",
        crs_wkt2=None,
        bbox_native=bounds,
        bbox_4326=bounds,
        geometry_4326=geometry if isinstance(geometry, dict) else mapping(geometry),
    )


def check(written: dict[str, Any], bbox: list[float], *exact: Any) -> None:
    geom = shape(written)
    assert geom.is_valid, shapely.is_valid_reason(geom)
    assert repeated_vertices(geom) == 0
    for polygon in shapely.get_parts(geom):
        assert polygon.exterior.is_ccw  # RFC 7946: exteriors counter-clockwise, holes clockwise
        assert all(not ring.is_ccw for ring in polygon.interiors)
    for part in exact:
        assert geom.covers(part)  # rounding never cuts into the data
    rounded = shapely.get_coordinates(geom)
    assert (rounded == rounded.round(COORD_DECIMALS)).all()
    west, south, east, north = bbox
    low, bottom, high, top = geom.bounds
    assert (south, north) == (bottom, top)
    if west <= east:
        assert (west, east) == (low, high)


def _off_grid_polygon(rng: random.Random) -> Polygon:
    """A wobbly star around an arbitrary point, every coordinate off the 1e-9 grid."""
    cx, cy = rng.uniform(-179, 179), rng.uniform(-80, 80)
    n = rng.randint(3, 40)
    points = []
    for i in range(n):
        angle = 2 * math.pi * (i + rng.random() * 0.5) / n
        radius = rng.uniform(1e-6, 1e-3)
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    poly = Polygon(points)
    return poly if poly.is_valid else shapely.make_valid(poly).convex_hull


@pytest.mark.parametrize("seed", range(40))
def test_rounding_is_outward_for_off_grid_polygons(seed: int) -> None:
    rng = random.Random(seed)
    parts = [_off_grid_polygon(rng)]
    if seed % 3 == 0:  # a second asset overlapping the first
        parts.append(rotate(parts[0], 17, origin="centroid"))
    written, bbox = footprint([meta(p) for p in parts])
    check(written, bbox, *parts)


def test_header_box_edge_points_stay_inside() -> None:
    """A point-cloud header box off the grid: points on its edges are covered after rounding."""
    header = box(-122.123456789123, 44.987654321987, -122.101010101077, 45.0000000004999)
    written, bbox = footprint([meta(header)])
    geom = shape(written)
    edge = [header.exterior.interpolate(t, normalized=True) for t in (0.0, 0.13, 0.5, 0.77)]
    assert all(geom.covers(p) for p in edge)
    check(written, bbox, header)
    west, south, east, north = bbox  # floored minimums, ceiled maximums
    assert west <= -122.123456789123 and south <= 44.987654321987
    assert east >= -122.101010101077 and north >= 45.0000000004999


def test_vertices_closer_than_the_step_are_not_repeated() -> None:
    """Nearest rounding once collapsed such vertices into repeats (and spikes)."""
    ring = [(10.0, 45.0), (10.001, 45.0), (10.0010000000002, 45.0000000000003), (10.001, 45.001)]
    ring += [(10.0000000000004, 45.0010000000001), (10.0, 45.001)]
    poly = Polygon(ring)
    assert poly.is_valid
    naive = shapely.transform(poly, lambda xy: xy.round(COORD_DECIMALS))
    assert repeated_vertices(naive) > 0  # what rounding alone did
    written, bbox = footprint([meta(poly)])
    check(written, bbox, poly)


def test_holes_wind_clockwise_and_stay_covered() -> None:
    outer = box(5.0000000003, 50.0000000007, 5.0100000003, 50.0100000007)
    hole = box(5.0040000004, 50.0040000004, 5.0060000006, 50.0060000006)
    ring = Polygon(outer.exterior.coords, [hole.exterior.coords])
    written, bbox = footprint([meta(ring)])
    check(written, bbox, ring)
    assert len(written["coordinates"]) == 2  # the hole is kept, a little smaller


def test_grid_aligned_footprints_are_written_as_they_are() -> None:
    exact = box(-123.0005, 36.0995, -122.9988, 36.101)
    written, bbox = footprint([meta(exact)])
    assert bbox == [-123.0005, 36.0995, -122.9988, 36.101]
    assert shape(written).equals(exact)


def test_antimeridian_rounding_is_outward_on_both_halves() -> None:
    halves = {
        "type": "MultiPolygon",
        "coordinates": [
            mapping(box(179.8000000003, -17.0000000007, 180.0, -16.8000000004))["coordinates"],
            mapping(box(-180.0, -17.0000000007, -179.9000000006, -16.8000000004))["coordinates"],
        ],
    }
    asset = dataclasses.replace(
        meta(halves), bbox_4326=(179.8000000003, -17.0000000007, -179.9000000006, -16.8000000004)
    )
    written, bbox = footprint([asset])
    assert written["type"] == "MultiPolygon"
    check(written, bbox, shape(halves))
    west, south, east, north = bbox
    assert west > east
    assert west <= 179.8000000003 and east >= -179.9000000006
    assert south <= -17.0000000007 and north >= -16.8000000004
    lons = shapely.get_coordinates(shape(written))[:, 0]
    assert lons.min() == -180.0 and lons.max() == 180.0


def test_bbox_is_the_geometry_bounds_not_the_assets_grid_box() -> None:
    """STAC (and stac-check): the bbox is the geometry's; a raster's nodata corners are not."""
    data = Polygon([(10.0, 45.0), (10.002, 45.0), (10.001, 45.002)])
    asset = dataclasses.replace(meta(data), bbox_4326=(9.999, 44.999, 10.003, 45.003))
    written, bbox = footprint([asset])
    assert bbox == [10.0, 45.0, 10.002, 45.002]
    check(written, bbox, data)
