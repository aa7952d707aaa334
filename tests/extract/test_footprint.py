"""Valid-data footprints: real rasters' masks at overview scale, synthetic edge cases, COPC octrees.

Every check is computed here from the files (masks, centres, grid boxes), never hard-coded.
"""

from __future__ import annotations

import io
import math
import shutil
import struct
from pathlib import Path

import laspy
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from shapely.affinity import translate
from shapely.geometry import Polygon, shape

from stacsync.extract.copc import CopcError, CopcLayout, read_copc_sample
from stacsync.extract.footprint import MAX_VERTICES, occupancy, trace
from stacsync.extract.overview import data_bands, plan_sample
from stacsync.extract.pointcloud import extract_pointcloud
from stacsync.extract.raster import extract_raster

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

# Real rasters with nodata, NaN, an alpha band or a mask, so their footprint is traced.
TRACED = [
    "RGB.byte.tif",  # nodata 0 around a rotated scene
    "rgb_lzw.tif",
    "rgb1.tif",
    "image_nodata.tif",  # int16 -9999, custom Albers
    "dataset_nodata_and_nan.tif",  # nodata 0 and NaN, read at its 1/2 overview
    "alpha.tif",  # alpha band
    "RGBA.uint16.tif",  # alpha band, 16 bit
    "float_raster_with_nodata.tif",  # -3.4e38, two patches
    "shade.tif",  # speckled: hundreds of patches
    "image_rioCOG_gdal3.1.tif",
    "S2A_MSIL2A_20220722T105631_N0400_R094_T31TCN_20220722T171159.tif",  # NaN, 14 bands
]
# Real rasters whose every pixel is valid: their footprint is the grid box.
WHOLE = ["dataset_cog.tif", "dataset_dateline.tif", "2d_test.tif", "elev.tif", "cogeo.tif"]


# --- what the test computes for itself ------------------------------------------------------


def _valid_centres(path: Path) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Lon/lat of the centres of the valid pixels at the scale extraction reads, the size of
    one such pixel in degrees (north-south), and that scale's description."""
    with rasterio.open(path) as src:
        plan = plan_sample(src.width, src.height, src.overviews(1), path.stat().st_size)
        rows, cols = plan.shape
        bands = list(data_bands([ci.name for ci in src.colorinterp]))
        shape_ = (len(bands), rows, cols)
        masks = src.read_masks(bands, out_shape=shape_, resampling=Resampling.nearest)
        values = src.read(bands, out_shape=shape_, resampling=Resampling.nearest)
        ok = masks > 0
        if values.dtype.kind == "f":
            ok &= ~np.isnan(values)
        valid = ok.any(axis=0)
        at = src.transform @ Affine.scale(src.width / cols, src.height / rows)
        r, c = np.nonzero(valid)
        x, y = at @ (c + 0.5, r + 0.5)
        to_4326 = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        lon, lat = to_4326.transform(x, y)
        _, lat_top = to_4326.transform(*(at @ (0, 0)))
        _, lat_next = to_4326.transform(*(at @ (0, 1)))
    return np.asarray(lon), np.asarray(lat), abs(lat_next - lat_top), plan.level


def _grid_box(path: Path, per_edge: int = 2048) -> Polygon:
    """The grid's outline in EPSG:4326 on continuous longitudes, finely sampled."""
    with rasterio.open(path) as src:
        t, w, h = src.transform, src.width, src.height
        to_4326 = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    k = np.linspace(0.0, 1.0, per_edge + 1)[:-1]
    cols = np.concatenate([k * w, np.full_like(k, w), (1 - k) * w, np.zeros_like(k)])
    rows = np.concatenate([np.zeros_like(k), k * h, np.full_like(k, h), (1 - k) * h])
    lon, lat = to_4326.transform(*(t @ (cols, rows)))
    return Polygon(zip(np.rad2deg(np.unwrap(np.deg2rad(lon))), lat, strict=True))


def _continuous(geometry: dict, near: float) -> shapely.Geometry:
    """A footprint split at ±180 made whole again, on longitudes near `near`."""
    parts = [
        translate(p, xoff=360.0 * round((near - p.centroid.x) / 360.0))
        for p in shapely.get_parts(shape(geometry))
    ]
    return shapely.union_all(parts)


def _positions(geometry: dict) -> int:
    polygons = (
        geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    )
    return sum(len(ring) for polygon in polygons for ring in polygon)


def _check_published_form(meta) -> None:
    footprint = shape(meta.geometry_4326)
    assert footprint.is_valid and not footprint.is_empty
    assert _positions(meta.geometry_4326) <= MAX_VERTICES
    for part in shapely.get_parts(footprint):
        assert -180 <= part.bounds[0] <= part.bounds[2] <= 180
    west, south, east, north = meta.bbox_4326
    if west <= east:  # the bbox published is the geometry's own
        assert footprint.bounds == pytest.approx(meta.bbox_4326, abs=1e-9)
    else:
        assert footprint.bounds[1] == pytest.approx(south, abs=1e-9)
        assert footprint.bounds[3] == pytest.approx(north, abs=1e-9)


def _check_covers_and_inside(path: Path, meta) -> None:
    lon, lat, pixel_deg, _level = _valid_centres(path)
    grid = _grid_box(path)
    footprint = _continuous(meta.geometry_4326, grid.centroid.x)
    lon = lon + 360.0 * np.round((grid.centroid.x - lon) / 360.0)
    points = shapely.points(lon, lat)
    uncovered = ~shapely.covers(footprint, points)
    assert not uncovered.any(), f"{uncovered.sum()} of {len(lon)} valid pixel centres outside"
    # Chords between vertices may leave a curved grid edge by a hair (< 1/20 of a pixel).
    assert grid.buffer(pixel_deg / 20).covers(footprint)
    assert footprint.area < grid.buffer(pixel_deg / 20).area


# --- real rasters ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRACED)
def test_traced_footprint_covers_valid_pixels_inside_the_grid(testdata: Path, name: str) -> None:
    meta = extract_raster(testdata / name)
    _lon, _lat, _pixel, level = _valid_centres(testdata / name)
    assert meta.footprint_method == f"valid-data mask at {level}"
    _check_published_form(meta)
    _check_covers_and_inside(testdata / name, meta)


@pytest.mark.parametrize("name", WHOLE)
def test_all_valid_raster_keeps_the_grid_box(testdata: Path, name: str) -> None:
    meta = extract_raster(testdata / name)
    assert meta.footprint_method.startswith("grid box: every pixel valid at ")
    _check_published_form(meta)
    _check_covers_and_inside(testdata / name, meta)


def test_nodata_border_shrinks_the_footprint(testdata: Path) -> None:
    # RGB.byte.tif: a rotated scene in a north-up grid, a third of it nodata.
    meta = extract_raster(testdata / "RGB.byte.tif")
    grid = _grid_box(testdata / "RGB.byte.tif")
    assert shape(meta.geometry_4326).area < 0.8 * grid.area


def test_antimeridian_footprint_is_split(testdata: Path) -> None:
    meta = extract_raster(testdata / "dataset_dateline.tif")
    west, _south, east, _north = meta.bbox_4326
    assert west > east and meta.geometry_4326["type"] == "MultiPolygon"
    lefts = [p.bounds[0] for p in shapely.get_parts(shape(meta.geometry_4326))]
    rights = [p.bounds[2] for p in shapely.get_parts(shape(meta.geometry_4326))]
    assert min(lefts) == pytest.approx(-180.0) and max(rights) == pytest.approx(180.0)


# --- synthetic rasters for the cases the real files lack ------------------------------------


def _write(
    path: Path,
    data: np.ndarray,
    transform: Affine,
    crs: str,
    nodata: float | None,
    overviews: tuple[int, ...] = (2, 4),
) -> Path:
    count, height, width = data.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count,
        "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata,
        "tiled": True, "blockxsize": 256, "blockysize": 256,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if overviews:
            dst.build_overviews(list(overviews), Resampling.nearest)
    return path


def _disc(size: int, value: float, nodata: float, dtype: str = "float32") -> np.ndarray:
    """A disc of data in a square of nodata."""
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (0.4 * size) ** 2
    return np.where(inside, value, nodata).astype(dtype)[None]


def test_rotated_grid(tmp_path: Path) -> None:
    angle = math.radians(30)
    pixel = 0.5
    transform = Affine(
        pixel * math.cos(angle), -pixel * math.sin(angle), 500000.0,
        -pixel * math.sin(angle), -pixel * math.cos(angle), 4100000.0,
    )  # fmt: skip
    path = _write(
        tmp_path / "rotated.tif", _disc(600, 12.5, -9999.0), transform, "EPSG:32611", -9999
    )
    meta = extract_raster(path)
    assert meta.footprint_method == "valid-data mask at 1/4 overview (150x150 px)"
    _check_published_form(meta)
    _check_covers_and_inside(path, meta)
    # A disc: far from the grid's corners, so much smaller than the grid box.
    assert shape(meta.geometry_4326).area < 0.6 * _grid_box(path).area


def test_antimeridian_with_nodata(tmp_path: Path) -> None:
    # UTM 60N: 180° lies 3° east of the central meridian, inside this 100 km grid.
    transform = Affine(200.0, 0.0, 650000.0, 0.0, -200.0, 5800000.0)
    path = _write(tmp_path / "dateline.tif", _disc(512, 3.0, 0.0), transform, "EPSG:32660", 0)
    meta = extract_raster(path)
    assert meta.footprint_method.startswith("valid-data mask at 1/4 overview")
    west, _south, east, _north = meta.bbox_4326
    assert west > east and meta.geometry_4326["type"] == "MultiPolygon"
    _check_published_form(meta)
    _check_covers_and_inside(path, meta)


def test_nan_is_nodata_whatever_the_nodata_value(tmp_path: Path) -> None:
    data = np.full((1, 256, 256), 7.0, dtype="float32")
    data[:, :, :128] = np.nan  # the west half: NaN, although nodata says -9999
    transform = Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4100000.0)
    path = _write(tmp_path / "nan.tif", data, transform, "EPSG:32618", -9999.0, overviews=())
    meta = extract_raster(path)
    whole = np.zeros_like(data)
    full = extract_raster(_write(tmp_path / "full.tif", whole, transform, "EPSG:32618", -9999))
    middle = (full.bbox_4326[0] + full.bbox_4326[2]) / 2
    assert meta.bbox_4326[0] > middle - 2e-5  # within a pixel of the middle
    _check_covers_and_inside(path, meta)


def test_all_nodata_raster_is_ok_with_a_warning(tmp_path: Path) -> None:
    transform = Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 4100000.0)
    empty = np.full((1, 512, 512), -9999.0, dtype="float32")
    path = _write(tmp_path / "empty.tif", empty, transform, "EPSG:32618", -9999)
    meta = extract_raster(path)
    assert meta.footprint_method == "grid box: all nodata at 1/4 overview (128x128 px)"
    warning = "no valid pixels: every pixel read (1/4 overview (128x128 px)) is nodata or masked"
    assert any(w.startswith(warning) for w in meta.warnings)
    assert meta.thumbnail is None
    assert meta.bbox_4326 == pytest.approx(_grid_box(path).bounds, abs=1e-7)
    corners = shapely.normalize(_grid_box(path, per_edge=1))
    assert shapely.normalize(shape(meta.geometry_4326)).equals_exact(corners, 1e-7)


def test_speckle_stays_bounded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = np.where(rng.random((1, 512, 512)) < 0.05, 1, 0).astype("uint8")  # 5 % valid dots
    transform = Affine(0.05, 0.0, 500000.0, 0.0, -0.05, 4100000.0)
    path = _write(tmp_path / "dots.tif", data, transform, "EPSG:32618", 0, overviews=())
    meta = extract_raster(path)
    assert meta.footprint_method == "valid-data mask at full resolution (512x512 px)"
    _check_published_form(meta)
    _check_covers_and_inside(path, meta)


def test_trace_refuses_an_empty_mask() -> None:
    with pytest.raises(Exception, match="no valid cells"):
        trace(np.zeros((4, 4), bool), Affine.identity(), "EPSG:32618")


# --- COPC -------------------------------------------------------------------------------------


def _copc_points(path: Path, deepest: int) -> tuple[np.ndarray, np.ndarray]:
    """X/Y of every point in levels 0..deepest, read by laspy's own COPC reader."""
    with open(path, "rb") as fh, laspy.CopcReader(fh) as reader:
        points = reader.query(level=range(deepest + 1))
    return np.asarray(points.x), np.asarray(points.y)


def _deepest(method: str) -> int:
    return int(method.split("(")[0].split("-")[-1].split()[-1])


@pytest.mark.parametrize("name", ["simple.copc.laz", "autzen_clip_4326.copc.laz"])
def test_copc_footprint_covers_points_read_inside_header_box(
    testdata: Path, expected: dict, name: str
) -> None:
    meta = extract_pointcloud(testdata / name)
    assert meta.footprint_method.startswith("COPC octree level")
    _check_published_form(meta)
    x, y = _copc_points(testdata / name, _deepest(meta.footprint_method))
    assert f"({len(x):,} points)" in meta.footprint_method
    crs = CRS.from_wkt(meta.crs_wkt2)
    horizontal = crs.sub_crs_list[0] if crs.is_compound else crs
    lon, lat = Transformer.from_crs(horizontal, "EPSG:4326", always_xy=True).transform(x, y)
    footprint = shape(meta.geometry_4326)
    assert shapely.covers(footprint, shapely.points(lon, lat)).all()
    # Inside the header box, but for the 1 % of a cell the outermost points are given.
    _grid, cells = occupancy(x, y)
    cell_deg = max(cells.a * np.ptp(lon) / np.ptp(x), -cells.e * np.ptp(lat) / np.ptp(y))
    west, south, east, north = expected[name]["bounds_4326"]
    assert shapely.box(west, south, east, north).buffer(0.015 * cell_deg).covers(footprint)


def test_copc_levels_are_bounded(testdata: Path) -> None:
    data = (testdata / "simple.copc.laz").read_bytes()
    with laspy.open(io.BytesIO(data)) as reader:
        header = reader.header
    vlrs = _vlr_data(data)
    info, laszip = vlrs["copc", 1], vlrs["laszip encoded", 22204]
    layout = CopcLayout(
        len(data), header.offset_to_point_data, header.point_format.size,
        tuple(header.scales), tuple(header.offsets),
    )  # fmt: skip

    def read_at(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    levels = _level_counts(data, info)
    for budget in (levels[0], levels[0] + levels[1], sum(levels.values())):
        sample = read_copc_sample(read_at, layout, info, laszip, max_points=budget)
        assert len(sample.x) <= budget
        assert len(sample.x) == sum(n for level, n in levels.items() if level <= sample.deepest)
    # The root node is read whatever the budget: a footprint needs some points.
    assert read_copc_sample(read_at, layout, info, laszip, max_points=1).deepest == 0


def _level_counts(data: bytes, info: bytes) -> dict[int, int]:
    offset, size = struct.unpack_from("<5d2Q", info)[5:7]
    counts: dict[int, int] = {}
    for at in range(offset, offset + size, 32):
        level, *_key, _offset, _size, points = struct.unpack_from("<4iQii", data, at)
        counts[level] = counts.get(level, 0) + max(points, 0)
    return counts


def test_broken_copc_hierarchy_falls_back_to_the_header_box(testdata: Path, tmp_path: Path) -> None:
    path = tmp_path / "simple.copc.laz"
    shutil.copyfile(testdata / "simple.copc.laz", path)
    data = bytearray(path.read_bytes())
    vlr_start = _copc_info_offset(bytes(data))
    struct.pack_into("<Q", data, vlr_start + 40, len(data) + 1000)  # root page past the end
    path.write_bytes(bytes(data))
    meta = extract_pointcloud(path)
    assert meta.footprint_method == "header box"
    assert any("COPC octree not usable" in w for w in meta.warnings)
    with pytest.raises(CopcError):
        info = bytes(data[vlr_start : vlr_start + 160])
        layout = CopcLayout(len(data), 0, 36, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
        read_copc_sample(lambda o, n: bytes(data[o : o + n]), layout, info, b"")


def _vlr_data(data: bytes) -> dict[tuple[str, int], bytes]:
    """The record data of every VLR, by (user id, record id), read straight from the bytes."""
    header_size, _offset, count = struct.unpack_from("<HII", data, 94)
    found, at = {}, header_size
    for _ in range(count):
        user, record, length = struct.unpack_from("<2x16sHH", data, at)
        found[user.rstrip(b"\0").decode(), record] = data[at + 54 : at + 54 + length]
        at += 54 + length
    return found


def _copc_info_offset(data: bytes) -> int:
    """Where the COPC info VLR's data starts (the first VLR of a COPC file, by the spec)."""
    header_size = struct.unpack_from("<H", data, 94)[0]
    user = data[header_size + 2 : header_size + 18].rstrip(b"\0")
    assert user == b"copc"
    return header_size + 54


def test_occupancy_spans_the_points_and_a_margin() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(10, 110, 5000), rng.uniform(-50, 0, 5000)
    grid, transform = occupancy(x, y, margin=0.0)
    rows, cols = grid.shape
    assert max(rows, cols) == round(math.sqrt(5000 / 4))
    assert transform @ (0, 0) == pytest.approx((x.min(), y.max()))
    assert transform @ (cols, rows) == pytest.approx((x.max(), y.min()))
    grid, transform = occupancy(x, y)  # 1 % of a cell on every side
    assert x.min() - transform.c == pytest.approx(0.01 * np.ptp(x) / cols)
    assert transform.f - y.max() == pytest.approx(0.01 * np.ptp(y) / rows)
    assert grid.sum() > 0.9 * grid.size  # uniform points fill nearly every cell
    assert occupancy(np.ones(5), np.arange(5.0)) is None  # no extent in x


def test_headers_only_when_overviews_are_not_to_be_read(testdata: Path, monkeypatch) -> None:
    """[extract] read_overviews = false: no pixel and no point is read, grid and header boxes."""
    import rasterio.io

    from stacsync.extract.dispatch import extract_file

    def forbidden(*args, **kwargs):
        raise AssertionError("data read")

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", forbidden)
    monkeypatch.setattr(rasterio.io.DatasetReader, "read_masks", forbidden)
    monkeypatch.setattr("stacsync.extract.las_footprint.read_copc_sample", forbidden)
    ortho = extract_file(str(testdata / "RGB.byte.tif"), read_overviews=False)
    assert ortho.footprint_method == "grid box: overviews not read (extract.read_overviews = false)"
    assert ortho.thumbnail is None
    copc = extract_file(str(testdata / "simple.copc.laz"), read_overviews=False)
    assert copc.footprint_method == "header box"
