"""The fast paths of extraction give what the general paths give, to the byte.

Each shortcut (numpy instead of GDAL's polygonizer, arrays instead of per-coordinate Python)
is checked against the path it replaces, on generated inputs and on the edge cases it skips.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box, mapping, shape

from stacsync.core.errors import ExtractError
from stacsync.extract import footprint
from stacsync.extract.geojson import geojson, shape_of
from stacsync.extract.geometry import outline_4326
from stacsync.extract.overview import Sample, _FullResolution
from stacsync.extract.raster_info import tiff_datetime
from stacsync.extract.thumbnail import _binned, _coloured, _png, render_thumbnail

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _grids() -> list[np.ndarray]:
    """Small random grids (pinches, holes, islands, several pieces), and blobs with holes."""
    rng = np.random.default_rng(7)
    grids = [
        rng.random(tuple(rng.integers(1, 14, 2))) < rng.uniform(0.2, 0.95) for _ in range(1500)
    ]
    for _ in range(200):
        blob = np.zeros((40, 50), dtype=bool)
        blob[4:36, 6:44] = True
        grids.append(blob & (rng.random(blob.shape) < 0.97))
    ring = np.ones((7, 7), dtype=bool)
    ring[2:5, 2:5] = False
    island = ring.copy()
    island[3, 3] = True  # a piece inside another's hole
    pinch = np.array([[1, 0], [0, 1]], dtype=bool)  # two cells meeting at a corner
    hole_at_corner = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    full = np.ones((3, 4), dtype=bool)
    return [*grids, ring, island, pinch, hole_at_corner, full, full[:1], full[:, :1]]


def test_one_piece_is_the_polygonizers_outline_corner_for_corner() -> None:
    fast = 0
    for grid in _grids():
        if not grid.any():
            continue
        general = footprint._polygonized(grid, 2)
        assert shapely.equals_identical(footprint._cells(grid, 2), general)
        ring = footprint._one_piece(grid)
        if ring is not None:
            fast += 1
            assert shapely.equals_identical(shapely.polygons(ring * 2), general)
    assert fast > 300  # the fast path is taken, not only the fallback


@pytest.mark.parametrize(
    ("cells", "why"),
    [
        ([[1, 0], [0, 1]], "cells meeting at a corner"),
        ([[1, 0, 1]], "two pieces"),
        ([[1, 1, 1], [1, 0, 1], [1, 1, 1]], None),  # one piece with a hole: fast
        (
            [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 0, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]],
            "island",
        ),
    ],
)
def test_one_piece_leaves_what_it_cannot_list_to_the_polygonizer(cells, why) -> None:
    grid = np.array(cells, dtype=bool)
    ring = footprint._one_piece(grid)
    assert (ring is None) == (why is not None)
    if ring is not None:
        assert Polygon(ring).equals(footprint._polygonized(grid, 1))


def test_corner_count_is_the_sum_of_2x2_patterns() -> None:
    for grid in _grids()[:600]:
        p = np.pad(grid, 1).astype(np.int8)
        a, b, c, d = p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]
        around = a + b + c + d
        expected = ((around == 1) | (around == 3) | ((around == 2) & (a == d))).sum()
        assert footprint._corner_count(grid) == expected


# --- outline_4326: arrays and lists, one part and several ------------------------------------

_UTM = "EPSG:32611"


def _staircase(x0: float, y0: float) -> list[tuple[float, float]]:
    steps = [(0, 0), (40, 0), (40, 10), (30, 10), (30, 20), (20, 20), (20, 30), (0, 30)]
    return [(x0 + 0.1 * dx, y0 + 0.1 * dy) for dx, dy in steps]


@pytest.mark.parametrize("outward", [False, True])
def test_outline_takes_arrays_as_it_takes_lists(outward) -> None:
    ring = _staircase(500000.0, 4000000.0)
    closed = [*ring, ring[0]]
    as_lists = outline_4326([ring], _UTM, tolerance=0.001, outward=outward)
    assert outline_4326([np.asarray(ring)], _UTM, tolerance=0.001, outward=outward) == as_lists
    assert outline_4326([np.asarray(closed)], _UTM, tolerance=0.001, outward=outward) == as_lists
    ints = np.asarray([(500000 + k, 4000000 + k * k) for k in range(4)], dtype=np.int64)
    floats = [(float(x), float(y)) for x, y in ints]
    assert outline_4326([ints], _UTM, tolerance=0.01) == outline_4326(
        [floats], _UTM, tolerance=0.01
    )


def test_outline_of_one_part_is_its_own_union() -> None:
    ring = _staircase(500000.0, 4000000.0)
    bbox, geom = outline_4326([ring], _UTM, tolerance=0.001, outward=True)
    assert geom["type"] == "Polygon"
    union = shapely.union_all([shape(geom)])
    assert shapely.equals_identical(shapely.orient_polygons(union), shape_of(geom))
    assert bbox == pytest.approx(shape(geom).bounds, abs=0)


def test_outline_of_parts_unions_them() -> None:
    left, right = _staircase(500000.0, 4000000.0), _staircase(500010.0, 4000000.0)
    overlapping = _staircase(500001.0, 4000000.0)
    _, two = outline_4326([left, right], _UTM, tolerance=0.001, outward=True)
    assert two["type"] == "MultiPolygon" and len(two["coordinates"]) == 2
    _, one = outline_4326([left, overlapping], _UTM, tolerance=0.001, outward=True)
    assert one["type"] == "Polygon"
    assert shape(one).covers(shape(outline_4326([left], _UTM, tolerance=0.001)[1]))


@pytest.mark.parametrize(
    ("ring", "words"),
    [
        (np.zeros((4, 3)), "not a list of (x, y) pairs"),
        (np.array([[0.0, 0.0], [1.0, math.nan], [1.0, 1.0]]), "non-finite"),
        (np.array([[0.0, 0.0], [1.0, 1.0]]), "at least 3 vertices"),
        (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "not a list of (x, y) pairs"),
    ],
)
def test_outline_refuses_bad_arrays_as_it_refuses_bad_lists(ring, words) -> None:
    with pytest.raises(ExtractError, match=words.replace("(", r"\(").replace(")", r"\)")):
        outline_4326([ring], _UTM, tolerance=0.01)


# --- GeoJSON both ways ----------------------------------------------------------------------


def _lists(value):
    if isinstance(value, tuple | list):
        if value and isinstance(value[0], int | float):
            return [float(v) for v in value]
        return [_lists(v) for v in value]
    return value


@pytest.mark.parametrize(
    "geom",
    [
        box(0.1, 0.2, 3.3, 4.4),
        Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2), (1, 1)]]),
        MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)]),
        Point(1.5, -2.0),
        LineString([(0, 0), (1e-7, 3.0)]),
        Polygon(),
        Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1)]),
    ],
)
def test_geojson_is_mappings_with_lists(geom) -> None:
    gj = mapping(geom)
    expected = {"type": gj["type"], "coordinates": _lists(gj["coordinates"])}
    assert geojson(geom) == expected
    if not geom.is_empty:
        assert shapely.equals_identical(shape_of(geojson(geom)), shape(geojson(geom)))


# --- small exact shortcuts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2023:05:06 07:08:09",
        "0999:01:01 00:00:00",
        "2023:02:30 00:00:00",
        "2023:01:01 23:59:60",
        "2023:1:5 3:4:5",
        "2023-05-06 07:08:09",
        "2023:05:06 07:08:09\x00",
        "0000:00:00 00:00:00",
        "２０２３:05:06 07:08:09",
    ],
)
def test_tiff_datetime_reads_as_strptime_does(text) -> None:
    expected = (None, f"TIFF DateTime tag {text.rstrip(chr(0))!r} is not a date; ignored")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            parsed = datetime.strptime(text.rstrip("\x00"), fmt)
        except ValueError:
            continue
        expected = (parsed.strftime("%Y-%m-%dT%H:%M:%SZ"), None)
        break
    assert tiff_datetime(text) == expected


@pytest.mark.parametrize("shape_", [(5, 7), (256, 3), (300, 200)])
def test_binned_one_pixel_a_bin_is_the_pixels(shape_) -> None:
    rng = np.random.default_rng(1)
    weight = rng.random(shape_) < 0.8
    values = np.where(weight, rng.normal(size=(2, *shape_)) * 1e3, 0.0)
    means, seen = _binned(values, weight)
    rows, cols = shape_
    scale = min(1.0, 256 / max(rows, cols))
    out_rows, out_cols = max(1, round(rows * scale)), max(1, round(cols * scale))
    r0, c0 = np.arange(out_rows) * rows // out_rows, np.arange(out_cols) * cols // out_cols
    sums = np.add.reduceat(np.add.reduceat(values, r0, axis=1), c0, axis=2)
    counts = np.add.reduceat(np.add.reduceat(weight.astype(np.int64), r0, axis=0), c0, axis=1)
    assert np.array_equal(means, sums / np.maximum(counts, 1))
    assert np.array_equal(seen, counts > 0)


class _Raster:
    height, width = 1001, 333


@pytest.mark.parametrize("cells", [(7, 3), (128, 128), (333, 1001), (10, 999)])
def test_full_resolution_cell_starts_as_math_ceil(cells) -> None:
    full = _FullResolution(_Raster(), (1,), cells)
    for axis, size in ((0, _Raster.height), (1, _Raster.width)):
        n = cells[axis]
        starts = [max(0, math.ceil(k * full.cell[axis] - 0.5)) for k in range(n + 1)]
        starts[-1] = min(starts[-1], size)
        assert full._firsts(0, n, axis, size).tolist() == starts
        assert full._firsts(2, n - 1, axis, size).tolist()[:-1] == starts[2 : n - 1]


@pytest.mark.parametrize(("shape_", "valid_share"), [((3, 40, 60), 0.7), ((1, 256, 9), 1.0)])
def test_eight_bit_thumbnail_is_the_float_paths(shape_, valid_share) -> None:
    rng = np.random.default_rng(2)
    values = rng.integers(0, 256, shape_, dtype=np.uint8)
    valid = rng.random(shape_[1:]) < valid_share
    bands = tuple(range(1, shape_[0] + 1))
    sample = Sample(values, bands, valid, Affine.identity(), "test")
    colour, seen = _coloured(values, sample, bands)
    if not seen.all():
        colour = np.concatenate([colour, np.where(seen, 255, 0).astype(np.uint8)[None]])
    assert render_thumbnail(sample, bands) == _png(colour)
    nothing = Sample(values, bands, np.zeros_like(valid), Affine.identity(), "test")
    assert render_thumbnail(nothing, bands) is None


@pytest.mark.parametrize("size", [(256, 256), (255, 300), (7, 1000), (1001, 333)])
def test_full_resolution_cells_pool_as_reduceat_does(size) -> None:
    rng = np.random.default_rng(3)

    class Raster:
        height, width = size

    pixels = rng.random(size) < 0.3
    for cells in [(128, 128), (size[0], size[1]), (1, 1), (50, 77), (size[0] // 3 or 1, 9)]:
        if cells[0] > size[0] or cells[1] > size[1]:
            continue  # cells are overview pixels: never finer than the raster's
        full = _FullResolution(Raster(), (1,), cells)
        full.valid = lambda window, full=full: pixels[window.toslices()]
        rows = full._firsts(0, cells[0], 0, size[0])
        cols = full._firsts(0, cells[1], 1, size[1])
        pooled = np.logical_or.reduceat(pixels[: rows[-1], : cols[-1]], rows[:-1], axis=0)
        expected = np.logical_or.reduceat(pooled, cols[:-1], axis=1)
        assert np.array_equal(full.cells(0, cells[0], 0, cells[1]), expected)
