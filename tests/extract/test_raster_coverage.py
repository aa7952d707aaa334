"""Raster footprints never cut into data: every valid full-resolution pixel centre is covered.

A real quick rescan over every raster of ../shared/testdata that becomes an item, and over
generated edge cases; each item's geometry is checked against the file's own
`dataset_mask()` at full resolution, the centres transformed to EPSG:4326 here. Dense rasters
(at least half their pixels valid) must also stay tight: at most 1.25 times the geodesic area
of the exact valid region (the union of valid full-resolution pixels).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.enums import Resampling
from shapely.geometry import shape

from stacsync.pipeline.sync import rescan

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

# 1 cm, in degrees (of latitude; less than 1 cm of longitude anywhere): float rounding only.
ROUNDING_DEG = 0.009 / 111_320
MAX_AREA_RATIO = 1.25
MAX_SPARSE_VERTICES = 2000
GEOD = Geod(ellps="WGS84")


def _rescan(src: Path, out: Path) -> dict[str, dict]:
    """Quick rescan of `src`; the item geometry of each raster file, by file name."""
    old = 1_000_000_000  # settled: mtimes far in the past
    for path in src.iterdir():
        os.utime(path, (old, old))
    rescan(source=src, output=out / "catalog", manifest=out / "stacsync.db")
    found: dict[str, dict] = {}
    for path in (out / "catalog").rglob("*.json"):
        doc = json.loads(path.read_text())
        if doc.get("type") == "Feature":
            for asset in doc["assets"].values():
                found[Path(asset["href"]).name] = doc["geometry"]
    return found


@functools.lru_cache(maxsize=1)
def _centres(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Lon/lat of every valid full-resolution pixel centre that lies on the Earth."""
    with rasterio.open(path) as src:
        valid = src.dataset_mask() > 0
        rows, cols = np.nonzero(valid)
        x, y = src.transform @ (cols + 0.5, rows + 0.5)
        to_4326 = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        lon, lat = (np.asarray(v) for v in to_4326.transform(x, y, errcheck=False))
    on_earth = np.isfinite(lon) & np.isfinite(lat)
    return lon[on_earth], lat[on_earth], float(valid.mean())


def _uncovered(path: Path, geometry: dict) -> int:
    lon, lat, _ = _centres(path)
    # Grown by the rounding allowance, so a centre on the edge is inside (contains_xy is fast).
    footprint = shape(geometry).buffer(ROUNDING_DEG, join_style="mitre")
    shapely.prepare(footprint)
    return int((~shapely.contains_xy(footprint, lon, lat)).sum())


def _exact_area(path: Path) -> float:
    """Geodesic area (m²) of the union of the valid full-resolution pixels."""
    with rasterio.open(path) as src:
        valid = (src.dataset_mask() > 0).astype("uint8")
        pieces = rasterio.features.shapes(valid, mask=valid > 0, transform=src.transform)
        region = shapely.union_all([shape(g) for g, _ in pieces])
        to_4326 = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    step = max(math.hypot(*np.subtract(region.bounds[2:], region.bounds[:2])) / 256, 1e-12)
    region = shapely.segmentize(region, step)
    lonlat = shapely.transform(region, lambda xy: np.column_stack(to_4326.transform(*xy.T)))
    return abs(GEOD.geometry_area_perimeter(lonlat)[0])


def _area(geometry: dict) -> float:
    return abs(GEOD.geometry_area_perimeter(shape(geometry))[0])


# --- every real raster ---------------------------------------------------------------------


def _real_rasters() -> list[str]:
    from conftest import TESTDATA

    return sorted(p.name for p in TESTDATA.glob("*.tif")) if TESTDATA.is_dir() else []


@pytest.fixture(scope="module")
def real_items(testdata: Path, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    src = tmp_path_factory.mktemp("real") / "src"
    src.mkdir()
    for path in testdata.glob("*.tif"):
        shutil.copyfile(path, src / path.name)
    return src, _rescan(src, src.parent)


def test_every_raster_that_makes_an_item_is_checked(real_items) -> None:
    _src, items = real_items
    assert "RGB.byte.tif" in items and "dataset_nodata_and_nan.tif" in items
    assert "goes.tif" in items  # a full disk with its corners off the Earth is published


@pytest.mark.parametrize("name", _real_rasters())
def test_real_raster_footprint_covers_every_valid_pixel_centre(real_items, name: str) -> None:
    src, items = real_items
    if name not in items:
        pytest.skip(f"{name} makes no item (an error row)")
    geometry = items[name]
    assert _uncovered(src / name, geometry) == 0
    _lon, _lat, fraction = _centres(src / name)
    if name == "goes.tif":
        return  # its grid is not on the Earth: no exact region to compare with
    if fraction >= 0.5:
        assert _area(geometry) <= MAX_AREA_RATIO * _exact_area(src / name)
    else:
        assert shapely.get_num_coordinates(shape(geometry)) <= MAX_SPARSE_VERTICES


# --- generated edge cases ------------------------------------------------------------------


def _write(path: Path, data: np.ndarray, transform: Affine, *, nodata, overviews=(2, 4)) -> None:
    count, height, width = data.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count,
        "dtype": data.dtype.name, "crs": "EPSG:32618", "transform": transform,
        "nodata": nodata, "tiled": True, "blockxsize": 256, "blockysize": 256,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if overviews:
            dst.build_overviews(list(overviews), Resampling.nearest)


def _disc(size: int, radius: float, value=7, nodata=0, dtype="uint8") -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (radius * size) ** 2
    return np.where(inside, value, nodata).astype(dtype)[None]


NORTH_UP = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4100000.0)


def _nodata_border(path: Path) -> None:
    _write(path, _disc(1024, 0.45), NORTH_UP, nodata=0)


def _hole(path: Path) -> None:
    data = _disc(1024, 0.45)
    data[_disc(1024, 0.1, value=1, nodata=0).astype(bool)] = 0  # the footprint fills it
    _write(path, data, NORTH_UP, nodata=0)


def _rotated(path: Path) -> None:
    a = math.radians(30)
    transform = Affine(0.5 * math.cos(a), -0.5 * math.sin(a), 500000.0,
                       -0.5 * math.sin(a), -0.5 * math.cos(a), 4100000.0)  # fmt: skip
    _write(path, _disc(800, 0.4, value=3.5, nodata=-9999, dtype="float32"), transform, nodata=-9999)


def _diagonal_strip(path: Path) -> None:
    # Two pixels wide and offset from the overviews' nearest samples: coarse levels miss most.
    data = np.zeros((1, 1024, 1024), dtype="uint8")
    k = np.arange(1024)
    data[0, k, np.clip(k + 1, 0, 1023)] = 9
    data[0, k, np.clip(k + 2, 0, 1023)] = 9
    _write(path, data, NORTH_UP, nodata=0)


def _tiny(path: Path) -> None:
    data = np.array([[[1, 0, 2], [0, 3, 0]]], dtype="int16")
    _write(path, data, Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4100000.0), nodata=0, overviews=())


def _stale_overview(path: Path) -> None:
    # The overviews show a small disc; full resolution, rewritten after them, a bigger one.
    _write(path, _disc(1024, 0.2), NORTH_UP, nodata=0)
    with rasterio.open(path, "r+") as dst:
        dst.write(_disc(1024, 0.45))


def _nan_blocks(path: Path) -> None:
    # Averaging overviews turn every block with a NaN into NaN, along the data's edge.
    data = _disc(1024, 0.45, value=5.0, nodata=0.0, dtype="float32")
    edge = np.diff(data[0] > 0, axis=1, prepend=False)
    data[0][edge] = np.nan
    profile_overviews = ()
    _write(path, data, NORTH_UP, nodata=0.0, overviews=profile_overviews)
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4], Resampling.average)


CASES = {
    "nodata_border.tif": _nodata_border,
    "hole.tif": _hole,
    "rotated.tif": _rotated,
    "diagonal_strip.tif": _diagonal_strip,
    "tiny.tif": _tiny,
    "stale_overview.tif": _stale_overview,
    "nan_blocks.tif": _nan_blocks,
}


@pytest.fixture(scope="module")
def made_items(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    src = tmp_path_factory.mktemp("made") / "src"
    src.mkdir()
    for name, make in CASES.items():
        make(src / name)
    return src, _rescan(src, src.parent)


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_footprint_covers_every_valid_pixel_centre(made_items, name: str) -> None:
    src, items = made_items
    geometry = items[name]
    assert _uncovered(src / name, geometry) == 0
    _lon, _lat, fraction = _centres(src / name)
    if fraction >= 0.5:
        assert _area(geometry) <= MAX_AREA_RATIO * _exact_area(src / name)
    else:
        assert shapely.get_num_coordinates(shape(geometry)) <= MAX_SPARSE_VERTICES


def test_an_overview_that_disagrees_is_corrected_at_full_resolution(made_items) -> None:
    src, items = made_items
    # Traced from the stale overview alone, the footprint would be a quarter of the area.
    assert _area(items["stale_overview.tif"]) >= _exact_area(src / "stale_overview.tif")
