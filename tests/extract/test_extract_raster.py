"""Tests for stacsync.extract.raster against the real GeoTIFFs in ../shared/testdata.

Every raster in expected.json is either described (and compared with the ground truth) or must
fail with an ExtractError that names the file and the reason.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.shutil import copy as rio_copy
from shapely.geometry import shape

from stacsync.core.errors import ExtractError
from stacsync.core.records import AssetMeta
from stacsync.extract.raster import MEDIA_TYPE, MEDIA_TYPE_COG, extract_raster

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

_EXPECTED_JSON = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "expected.json"


def _raster_names() -> list[str]:
    if not _EXPECTED_JSON.is_file():
        return []
    files = json.loads(_EXPECTED_JSON.read_text())["files"]
    return sorted(n for n, v in files.items() if v.get("kind") == "raster")


# Files that must not become catalog entries, and the words the error must contain.
MUST_FAIL = {
    "empty.tif": "file is empty",
    "not_a_tiff.tif": "not a GeoTIFF (GDAL cannot read it:",
    "truncated_RGB.byte.tif": "file is truncated (header declares data up to byte",
    "1234_red_0_green_0_blue.tif": "no coordinate reference system (set crs in the collection",
    "float_nan.tif": "no coordinate reference system",
    "dataset_gcps.tif": "no usable geotransform (georeferenced only by RPCs/GCPs)",
    "test_rpcs.tif": "no usable geotransform (georeferenced only by RPCs/GCPs)",
    "dataset_mars.tif": "cannot place footprint on Earth",
}

# Deliberate differences from expected.json, each explained.
CRS_CODE_DIFFERS = {
    # PROJ finds EPSG:5070 equivalent (confidence 70) and we prefer EPSG codes.
    "test_esri_wkt.tif": "EPSG:5070",
}
COG_DIFFERS = {
    # Tiled but 791x718 with no overviews: rio-cogeo only warns; we validate strictly (a client
    # zoomed out would have to fetch every full-resolution tile).
    "rgb_lzw.tif": False,
}
# Rotated grid: expected bounds_4326 transforms the envelope; we transform the real corners.
FOOTPRINT_FROM_CORNERS = {"2d_test.tif"}
# Grid corners off the Earth (expected bounds_4326 are infinite): the footprint comes from the
# valid pixels on it (test_raster_coverage checks it covers them).
OFF_GLOBE = {"goes.tif"}


@pytest.mark.parametrize("name", _raster_names())
def test_every_raster_against_ground_truth(testdata, expected, name):
    exp = expected[name]
    if name in MUST_FAIL:
        with pytest.raises(ExtractError) as info:
            extract_raster(testdata / name)
        message = str(info.value)
        assert message.startswith(f"{name}: ")
        assert MUST_FAIL[name] in message
        return
    if name in OFF_GLOBE:
        meta = extract_raster(testdata / name)
        assert meta.footprint_method.startswith("valid-data mask at ")
        _check_geometry(meta)
        return
    # Everything the ground truth marks as broken must be in MUST_FAIL, so no file slips through.
    assert not exp.get("open_error") and exp.get("crs_wkt2") and not exp.get("bounds_4326_error")
    assert all(isinstance(v, float) for v in exp["bounds_4326"])
    meta = extract_raster(testdata / name)
    _compare(meta, exp, name)


def _compare(meta: AssetMeta, exp: dict, name: str) -> None:
    r = meta.raster
    assert meta.kind == "raster" and meta.pointcloud is None
    assert (r.width, r.height, len(r.bands)) == (exp["width"], exp["height"], exp["count"])
    assert [b.data_type for b in r.bands] == exp["dtypes"]
    assert [b.nodata for b in r.bands] == exp["nodatavals"]  # both spell nan/inf as strings
    assert r.transform == pytest.approx(exp["transform"], rel=1e-12, abs=1e-9)
    assert r.resolution == pytest.approx(exp["res"], rel=1e-12)
    assert meta.bbox_native == pytest.approx(exp["bounds_native"], rel=1e-12, abs=1e-9)
    assert meta.crs_code == CRS_CODE_DIFFERS.get(name, exp["crs_authority"])
    if meta.footprint_method.startswith("grid box") and name not in FOOTPRINT_FROM_CORNERS:
        assert meta.bbox_4326 == pytest.approx(exp["bounds_4326"], abs=1e-6)
    else:  # where the data is: inside the grid's own bounds (test_footprint checks it closely)
        _assert_within(meta.bbox_4326, exp["bounds_4326"], tolerance=1e-6)
    assert r.is_cog == COG_DIFFERS.get(name, exp["extra"]["rio_cogeo_validate"]["is_valid_cog"])
    assert r.is_cog == (not r.cog_problems)
    assert meta.media_type == (MEDIA_TYPE_COG if r.is_cog else MEDIA_TYPE)
    assert list(r.overviews) == exp["extra"]["overview_factors_band1"]
    assert r.tiled == exp["extra"]["tiled"]
    assert list(r.block_shape) == exp["extra"]["block_shapes"][0]
    assert r.compression == exp["extra"]["compression"]
    assert [b.description for b in r.bands] == exp["extra"]["descriptions"]
    assert all(b.common_name != "alpha" for b in r.bands)
    interp = [c if c != "undefined" else None for c in exp["extra"]["colorinterp"]]
    assert [b.color_interp for b in r.bands] == interp
    assert r.has_alpha == ("alpha" in exp["extra"]["mask_flags_band1"])
    _check_geometry(meta)
    assert AssetMeta.from_json(meta.to_json()) == meta


def _assert_within(inner, outer, tolerance: float) -> None:
    west, south, east, north = inner
    assert south >= outer[1] - tolerance and north <= outer[3] + tolerance
    if outer[0] <= outer[2]:  # the antimeridian case has its own test
        assert west >= outer[0] - tolerance and east <= outer[2] + tolerance


def _check_geometry(meta: AssetMeta) -> None:
    west, south, east, north = meta.bbox_4326
    assert -180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90
    footprint = shape(meta.geometry_4326)
    assert footprint.is_valid and not footprint.is_empty
    if west <= east:
        # A grid box is one polygon; data can lie in several patches.
        kinds = (
            ("Polygon",)
            if meta.footprint_method.startswith("grid box")
            else ("Polygon", "MultiPolygon")
        )
        assert meta.geometry_4326["type"] in kinds
        assert footprint.bounds == pytest.approx(meta.bbox_4326, abs=1e-9)


def test_resolution_in_metres(testdata):
    assert extract_raster(testdata / "RGB.byte.tif").raster.resolution_m == pytest.approx(
        300.0417827
    )
    assert extract_raster(testdata / "world.rgb.tif").raster.resolution_m is None  # degrees


def test_band_common_names(testdata):
    rgba = extract_raster(testdata / "RGBA.uint16.tif").raster
    assert [b.common_name for b in rgba.bands] == ["blue", "green", "red", None]
    assert rgba.has_alpha
    s2 = extract_raster(
        testdata / "S2A_MSIL2A_20220722T105631_N0400_R094_T31TCN_20220722T171159.tif"
    ).raster
    # From the band descriptions; "aot" and "wvp" are not eo common names.
    assert [b.common_name for b in s2.bands] == [
        "coastal", "blue", "green", "red", "rededge071", "rededge075", "rededge078", "nir",
        "nir08", "nir09", "swir16", "swir22", None, None,
    ]  # fmt: skip
    assert s2.bands[0].nodata == "nan"


def test_cog_rules(testdata):
    lzw = extract_raster(testdata / "rgb_lzw.tif").raster
    assert not lzw.is_cog
    assert any("overviews" in p for p in lzw.cog_problems)
    small_untiled = extract_raster(testdata / "image_nodata.tif").raster  # 500x500 strips
    assert small_untiled.is_cog and not small_untiled.tiled
    dec = extract_raster(testdata / "image_dec.tif").raster  # overviews, bad layout
    assert not dec.is_cog and any("Decimation" in p for p in dec.cog_problems)


# Layouts the COG rules tell apart, written in a few hundred milliseconds. Each value is
# (what GDAL writes, is it a COG).
_LAYOUTS = {
    "cog.tif": ("COG driver, overviews", True),
    "cog_bigtiff.tif": ("COG driver, BigTIFF", True),
    "cog_band_interleave.tif": ("COG driver, one plane per band", True),
    "cog_mask.tif": ("COG driver, internal mask IFDs", True),
    "cog_sparse.tif": ("COG driver, first rows of tiles not stored", True),
    "cog_edited.tif": ("COG rewritten in place: GDAL flags the broken layout", False),
    "copy_src_nonsquare.tif": ("GTiff COPY_SRC_OVERVIEWS, 512x256 tiles", True),
    "overviews_after.tif": ("tiled GTiff, overviews added after the pixels", False),
    "overviews_unsorted.tif": ("tiled GTiff, overviews 4 then 2", False),
    "striped_large.tif": ("1100x900 in strips, no overviews", False),
    "striped_small.tif": ("300x200 in strips", True),
}


@pytest.fixture(scope="session")
def cog_layouts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("layouts")
    grid = np.add.outer(np.arange(900), np.arange(1100)).astype("uint8")
    plain = _layout(folder / "plain.tif", np.stack([grid, grid, grid]))
    rio_copy(plain, folder / "cog.tif", driver="COG", blocksize=256)
    rio_copy(plain, folder / "cog_bigtiff.tif", driver="COG", blocksize=256, BIGTIFF="YES")
    rio_copy(plain, folder / "cog_band_interleave.tif", driver="COG", interleave="BAND")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(_layout(folder / "masked.tif", grid[None]), "r+") as dst:
            dst.write_mask(np.where(grid > 100, 255, 0).astype("uint8"))
        rio_copy(folder / "masked.tif", folder / "cog_mask.tif", driver="COG", blocksize=256)
    sparse = _layout(folder / "sparse.tif", np.where(np.arange(900)[:, None] < 600, 0, grid)[None])
    rio_copy(sparse, folder / "cog_sparse.tif", driver="COG", blocksize=256, SPARSE_OK=True)
    zeros = _layout(folder / "zeros.tif", np.zeros((1, 900, 1100), "uint8"))
    rio_copy(zeros, folder / "cog_edited.tif", driver="COG", blocksize=256, compress="DEFLATE")
    with rasterio.open(folder / "cog_edited.tif", "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.write(grid[None, :256, :256], window=((0, 256), (0, 256)))
    tiles = {"tiled": True, "blockxsize": 512, "blockysize": 256}
    nonsquare = _layout(folder / "nonsquare.tif", grid[None], overviews=[2, 4], **tiles)
    rio_copy(nonsquare, folder / "copy_src_nonsquare.tif", COPY_SRC_OVERVIEWS=True, **tiles)
    tiled = {"tiled": True, "blockxsize": 256, "blockysize": 256}
    _layout(folder / "overviews_after.tif", grid[None], overviews=[2, 4], **tiled)
    _layout(folder / "overviews_unsorted.tif", grid[None], overviews=[4, 2], **tiled)
    _layout(folder / "striped_large.tif", grid[None])
    _layout(folder / "striped_small.tif", grid[None, :200, :300])
    return folder


def _layout(path: Path, data: np.ndarray, overviews: list[int] | None = None, **options) -> Path:
    profile = {
        "driver": "GTiff", "count": data.shape[0], "height": data.shape[1],
        "width": data.shape[2], "dtype": "uint8", "crs": "EPSG:32618",
        "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4100000.0),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile, **options) as dst:
        dst.write(data)
        if overviews:
            dst.build_overviews(overviews, Resampling.nearest)
    return path


@pytest.mark.parametrize("name", sorted(_LAYOUTS))
def test_cog_verdict_on_layouts(cog_layouts, name):
    raster = extract_raster(cog_layouts / name).raster
    assert raster.is_cog == _LAYOUTS[name][1], raster.cog_problems
    assert raster.is_cog == (not raster.cog_problems)


@pytest.mark.parametrize("name", sorted(_LAYOUTS))
def test_cog_problems_are_rio_cogeos_strict_ones(cog_layouts, name):
    """Our header-only rules give rio-cogeo's verdict and messages, in its order."""
    cogeo = pytest.importorskip("rio_cogeo.cogeo")
    config = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    valid, errors, warnings = cogeo.cog_validate(
        cog_layouts / name, strict=True, config=config, quiet=True
    )
    raster = extract_raster(cog_layouts / name).raster
    assert (raster.is_cog, raster.cog_problems) == (valid, (*errors, *warnings))


def test_cog_problem_messages(cog_layouts):
    edited = extract_raster(cog_layouts / "cog_edited.tif").raster
    assert edited.cog_problems == (
        "This file used to have optimizations in its layout, but those have been, at least "
        "partly, invalidated by later changes",
    )
    unsorted = extract_raster(cog_layouts / "overviews_unsorted.tif").raster
    assert unsorted.overviews == (4, 2)
    assert unsorted.cog_problems[0] == "Overviews should be sorted"


def test_cog_verdict_opens_the_file_once(testdata, monkeypatch):
    # rio-cogeo reopened every file, and once more per overview level: that dominated a build.
    opened = []
    real_open = rasterio.open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(rasterio, "open", counting_open)
    raster = extract_raster(testdata / "cogeo.tif").raster
    assert raster.is_cog and raster.overviews == (2, 4, 8, 16, 32, 64)
    assert len(opened) == 1


# --- failures --------------------------------------------------------------------------------


def test_truncated_message_gives_sizes(testdata):
    with pytest.raises(ExtractError) as info:
        extract_raster(testdata / "truncated_RGB.byte.tif")
    assert "header declares data up to byte 1743352, file has 3000 bytes" in str(info.value)


def test_truncated_cog_that_still_opens(testdata, tmp_path):
    data = (testdata / "dataset_cog.tif").read_bytes()
    cut = tmp_path / "cut_cog.tif"
    cut.write_bytes(data[: len(data) // 2])
    with rasterio.open(cut) as src:  # the header alone is fine: GDAL opens it
        assert src.width == 2658
    with pytest.raises(ExtractError) as info:
        extract_raster(cut)
    assert str(info.value) == (
        f"cut_cog.tif: file is truncated (header declares data up to byte {len(data)}, "
        f"file has {len(data) // 2} bytes)"
    )


def test_missing_file(tmp_path):
    with pytest.raises(ExtractError, match=r"^nothing\.tif: file not found$"):
        extract_raster(tmp_path / "nothing.tif")


def test_permission_denied_is_permanent(testdata, tmp_path, monkeypatch):
    path = tmp_path / "locked.tif"
    shutil.copyfile(testdata / "byte.tif", path)

    def denied(*args, **kwargs):
        raise RasterioIOError(f"{path}: Permission denied")

    monkeypatch.setattr(rasterio, "open", denied)
    with pytest.raises(ExtractError, match=r"^locked\.tif: permission denied$"):
        extract_raster(path)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Remote I/O error", errno.EREMOTEIO),
        ("Input/output error", errno.EIO),
        ("Stale file handle", errno.ESTALE),
        ("Connection timed out", errno.ETIMEDOUT),
        ("Resource temporarily unavailable", errno.EAGAIN),
    ],
)
def test_transient_io_errors_become_oserror(testdata, tmp_path, monkeypatch, text, code):
    path = tmp_path / "flaky.tif"
    shutil.copyfile(testdata / "byte.tif", path)

    def flaky(*args, **kwargs):
        raise RasterioIOError(f"{path}: {text}")

    monkeypatch.setattr(rasterio, "open", flaky)
    with pytest.raises(OSError) as info:
        extract_raster(path)
    assert not isinstance(info.value, ExtractError)
    assert info.value.errno == code
    assert info.value.strerror == f"flaky.tif: {text}"


def test_transient_errno_from_stat(monkeypatch, tmp_path):
    import stacsync.extract.raster as raster

    def stat(path):
        raise OSError(errno.EREMOTEIO, "Remote I/O error")

    monkeypatch.setattr(raster.os, "stat", stat)
    with pytest.raises(OSError) as info:
        extract_raster(tmp_path / "x.tif")
    assert info.value.errno == errno.EREMOTEIO and not isinstance(info.value, ExtractError)


# --- crs override, footprints ----------------------------------------------------------------


def test_crs_override_on_file_without_crs(testdata):
    meta = extract_raster(testdata / "float_nan.tif", crs_override="EPSG:32618")
    assert meta.crs_code == "EPSG:32618"
    assert "UTM zone 18N" in meta.crs_wkt2
    assert any("assumed" in w for w in meta.warnings)
    assert meta.raster.bands[0].nodata == "nan"


def test_crs_override_ignored_when_file_has_crs(testdata):
    meta = extract_raster(testdata / "RGB.byte.tif", crs_override="EPSG:4326")
    assert meta.crs_code == "EPSG:32618" and not meta.warnings


def test_crs_override_does_not_invent_a_geotransform(testdata):
    with pytest.raises(ExtractError, match=r"^1234_red_0_green_0_blue\.tif: no geotransform"):
        extract_raster(testdata / "1234_red_0_green_0_blue.tif", crs_override="EPSG:32618")


def test_rotated_grid_footprint_is_the_transformed_corners(testdata, expected):
    exp = expected["2d_test.tif"]
    meta = extract_raster(testdata / "2d_test.tif")
    to4326 = Transformer.from_crs("EPSG:32611", "EPSG:4326", always_xy=True)
    corners = [to4326.transform(x, y) for x, y in exp["extra"]["corners_native"]]
    ring = meta.geometry_4326["coordinates"][0]
    assert meta.geometry_4326["type"] == "Polygon" and len(ring) == 5
    got = [v for point in sorted(map(tuple, ring[:-1])) for v in point]
    assert got == pytest.approx([v for point in sorted(corners) for v in point], abs=1e-9)
    lons, lats = zip(*corners, strict=True)
    assert meta.bbox_4326 == pytest.approx((min(lons), min(lats), max(lons), max(lats)), abs=1e-9)
    # The envelope's transform (expected bounds_4326) is strictly larger than the real footprint.
    w, s, e, n = exp["bounds_4326"]
    assert w < meta.bbox_4326[0] and s < meta.bbox_4326[1]
    assert e > meta.bbox_4326[2] and n > meta.bbox_4326[3]


def test_antimeridian_split(testdata, expected):
    meta = extract_raster(testdata / "dataset_dateline.tif")
    west, _south, east, _north = meta.bbox_4326
    assert west > east
    assert meta.bbox_4326 == pytest.approx(
        expected["dataset_dateline.tif"]["bounds_4326"], abs=1e-6
    )
    assert meta.geometry_4326["type"] == "MultiPolygon"
    parts = [
        shape({"type": "Polygon", "coordinates": c}) for c in meta.geometry_4326["coordinates"]
    ]
    assert sorted(round(p.bounds[0], 6) for p in parts)[0] == -180.0
    assert sorted(round(p.bounds[2], 6) for p in parts)[-1] == 180.0


# --- header-only, sidecars, tags -------------------------------------------------------------


def test_pixels_are_read_once_and_small(testdata, monkeypatch):
    """One sample read per file, at the smallest useful overview: never more than READ_SIDE a
    side; masks come with that read. Full resolution is read only in windows: the whole of a
    small file read without overviews (so decimation skips no pixel), else along the border."""
    from stacsync.extract.overview import MIN_SIDE, READ_SIDE

    shapes: list[tuple[int, ...]] = []
    windows: list[int] = []
    real_read = rasterio.io.DatasetReader.read
    real_masks = rasterio.io.DatasetReader.read_masks

    def read(self, indexes=None, *args, out_shape=None, window=None, **kwargs):
        if window is not None:  # a full-resolution check
            assert out_shape is None
            return real_read(self, indexes, *args, window=window, **kwargs)
        assert out_shape is not None, "a read without out_shape or window reads everything"
        shapes.append(tuple(out_shape[-2:]))
        return real_read(self, indexes, *args, out_shape=out_shape, **kwargs)

    def read_masks(self, indexes=None, *args, window=None, **kwargs):
        assert window is not None, "a mask read without a window reads everything"
        windows.append(int(window.width * window.height))
        return real_masks(self, indexes, *args, window=window, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("pixel data read outside the sample read and the checks")

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", read)
    monkeypatch.setattr(rasterio.io.DatasetReader, "read_masks", read_masks)
    for method in ("dataset_mask", "sample"):
        monkeypatch.setattr(rasterio.io.DatasetReader, method, forbidden)
    for name in ("dataset_cog.tif", "cogeo.tif", "alpha.tif", "RGB.byte.tif", "image_dec.tif"):
        shapes.clear()
        windows.clear()
        assert extract_raster(testdata / name).raster is not None
        with rasterio.open(testdata / name) as src:
            size, factors = (src.height, src.width), src.overviews(1)
        assert len(shapes) == 1, (name, shapes)
        rows, cols = shapes[0]
        assert max(rows, cols) <= READ_SIDE
        usable = [
            f for f in factors if f > 1 and max(-(-size[0] // f), -(-size[1] // f)) >= MIN_SIDE
        ]
        if usable:  # exactly the coarsest overview still MIN_SIDE long
            assert (rows, cols) == (-(-size[0] // max(usable)), -(-size[1] // max(usable)))
            assert (rows, cols) != size
        assert sum(windows) <= size[0] * size[1]  # never more than the raster once


def test_no_pixels_read_for_a_big_raster_without_overviews(tmp_path, monkeypatch):
    from stacsync.extract.overview import MAX_LEVEL_PIXELS

    side = int(MAX_LEVEL_PIXELS**0.5) + 1
    path = tmp_path / "big.tif"
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": 1, "dtype": "uint8",
        "crs": "EPSG:32618", "transform": Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4100000.0),
        "nodata": 0, "sparse_ok": True, "tiled": True,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile):
        pass  # no block written: a sparse file, all nodata, a few KB

    def forbidden(*args, **kwargs):
        raise AssertionError("pixel data read")

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", forbidden)
    meta = extract_raster(path)
    assert meta.footprint_method == f"grid box: no overview and too big to read ({side}x{side} px)"
    assert meta.thumbnail is None


def test_a_file_too_big_to_read_whole_without_overviews_keeps_the_grid_box(tmp_path, monkeypatch):
    from stacsync.extract.overview import FULL_READ_BYTES

    side = 1200  # few enough pixels; the file is what is too big
    path = tmp_path / "striped.tif"
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": 2, "dtype": "uint8",
        "crs": "EPSG:32618", "transform": Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4100000.0),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((2, side, side), dtype="uint8"))
    assert path.stat().st_size > FULL_READ_BYTES

    def forbidden(*args, **kwargs):
        raise AssertionError("pixel data read")

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", forbidden)
    meta = extract_raster(path)
    mb = path.stat().st_size / 2**20
    assert meta.footprint_method == (
        f"grid box: no overview and the file is too big to read whole ({mb:.1f} MB)"
    )
    assert meta.thumbnail is None


def test_external_overviews_are_found(testdata, tmp_path):
    # GDAL_DISABLE_READDIR_ON_OPEN=TRUE skips the folder listing but still finds a .ovr sidecar.
    shutil.copyfile(testdata / "RGB.byte.tif", tmp_path / "RGB.byte.tif")
    profile = {"driver": "GTiff", "width": 396, "height": 359, "count": 3, "dtype": "uint8"}
    with rasterio.open(tmp_path / "RGB.byte.tif.ovr", "w", **profile) as ovr:
        ovr.write(np.zeros((3, 359, 396), dtype="uint8"))
    raster = extract_raster(tmp_path / "RGB.byte.tif").raster
    assert raster.overviews == (2,)
    assert not raster.is_cog
    assert any("external .ovr" in p for p in raster.cog_problems)


def _synthetic(path: Path, *, crs: str = "EPSG:32618", **tags: str) -> Path:
    profile = {
        "driver": "GTiff", "width": 16, "height": 8, "count": 2, "dtype": "float32",
        "crs": crs, "transform": Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4100000.0),
        "nodata": float("-inf"),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.zeros((2, 8, 16), dtype="float32"))
        dst.update_tags(**tags)
        dst.set_band_description(1, "NIR")
        dst.set_band_description(2, "canopy height")
        dst.set_band_unit(2, "metre")
        dst.scales = (1.0, 0.01)
        dst.offsets = (0.0, -5.0)
    return path


def test_tiff_datetime_and_band_metadata(tmp_path):
    meta = extract_raster(_synthetic(tmp_path / "s.tif", TIFFTAG_DATETIME="2021:06:05 14:03:09"))
    assert meta.datetime == "2021-06-05T14:03:09Z"
    nir, chm = meta.raster.bands
    assert (nir.common_name, nir.nodata, nir.scale, nir.offset) == ("nir", "-inf", None, None)
    assert (chm.description, chm.unit, chm.common_name) == ("canopy height", "metre", None)
    assert (chm.scale, chm.offset) == (pytest.approx(0.01), pytest.approx(-5.0))
    assert meta.raster.resolution_m == pytest.approx(0.5)
    assert not meta.warnings


def test_unparseable_tiff_datetime_is_a_warning(tmp_path):
    meta = extract_raster(_synthetic(tmp_path / "s.tif", TIFFTAG_DATETIME="last tuesday"))
    assert meta.datetime is None
    assert any("last tuesday" in w for w in meta.warnings)


def test_resolution_in_feet(tmp_path):
    meta = extract_raster(_synthetic(tmp_path / "ft.tif", crs="EPSG:2994"))
    assert meta.crs_code == "EPSG:2994"
    assert meta.raster.resolution_m == pytest.approx(0.5 * 0.3048)
