"""Thumbnails: rendered at extraction from the smallest overview, stored, published with items.

PNGs are checked by their bytes (signature, IHDR) and read back with GDAL's PNG driver.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import Recorder, catalog_bytes, validate_catalog

from stacsync.demo import demo_config_toml, make_demo_tree
from stacsync.extract.dispatch import extract_file, extract_stream
from stacsync.extract.thumbnail import MAX_SIDE, PNG_SIGNATURE
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import rescan

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

# PNG IHDR colour types
GRAY, RGB, GRAY_ALPHA, RGBA = 0, 2, 4, 6


def _ihdr(png: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG, checking its signature and IHDR."""
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    return width, height, depth, colour


def _pixels(png: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "read_back.png"
    path.write_bytes(png)
    with rasterio.open(path) as src:
        return src.read()


# --- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "colour"),
    [
        ("RGB.byte.tif", RGBA),  # 8-bit RGB with a nodata border: transparent there
        ("cogeo.tif", RGB),  # 8-bit RGB, all valid: no alpha channel
        ("alpha.tif", RGBA),  # alpha band -> transparency
        ("RGBA.uint16.tif", RGBA),  # 16 bit: stretched
        ("elev.tif", RGB),  # one float band: colour ramp
        ("dataset_nodata_and_nan.tif", RGBA),  # float, nodata and NaN transparent
        ("shade.tif", GRAY_ALPHA),  # one 8-bit band: grey
        ("dataset_cog.tif", RGB),  # one uint16 band: colour ramp
    ],
)
def test_thumbnail_of_real_rasters(testdata: Path, tmp_path: Path, name: str, colour: int) -> None:
    meta = extract_file(str(testdata / name))
    width, height, depth, got_colour = _ihdr(meta.thumbnail)
    assert (depth, got_colour) == (8, colour)
    raster = meta.raster
    assert max(width, height) <= MAX_SIDE
    # Same shape as the raster, within a pixel of rounding.
    assert abs(width / height - raster.width / raster.height) < 2 / min(width, height)
    pixels = _pixels(meta.thumbnail, tmp_path)
    assert pixels.shape == ({GRAY: 1, GRAY_ALPHA: 2, RGB: 3, RGBA: 4}[colour], height, width)
    if colour in (RGBA, GRAY_ALPHA):
        alpha = pixels[-1]
        assert set(np.unique(alpha)) == {0, 255} and 0 < (alpha == 255).mean() < 1
        assert (pixels[:-1][:, alpha == 0] == 0).all()  # nothing drawn where there is no data


def test_thumbnail_is_deterministic_from_path_and_stream(testdata: Path) -> None:
    for name in ("RGB.byte.tif", "dataset_cog.tif", "dataset_nodata_and_nan.tif"):
        path = testdata / name
        first = extract_file(str(path)).thumbnail
        assert extract_file(str(path)).thumbnail == first
        opener = functools.partial(open, path, "rb")
        assert extract_stream(name, path.stat().st_size, opener).thumbnail == first


def test_thumbnail_is_not_part_of_the_json(testdata: Path) -> None:
    meta = extract_file(str(testdata / "cogeo.tif"))
    assert meta.thumbnail and "thumbnail" not in meta.to_json()
    assert '"footprint_method":"grid box: every pixel valid at 1/8 overview' in meta.to_json()


def test_point_clouds_and_unread_rasters_have_none(testdata: Path) -> None:
    assert extract_file(str(testdata / "autzen_trim.laz")).thumbnail is None
    assert extract_file(str(testdata / "dataset_geo.tif")).thumbnail is None  # too big to read


# --- the manifest ---------------------------------------------------------------------------


def test_thumbnail_table_follows_its_file(tmp_path: Path) -> None:
    with Manifest.open_writer(tmp_path / "m.db") as db, db.transaction():
        db.upsert_file({"path": "a.tif", "size": 1, "mtime_ns": 1, "status": "ok", "scanned_ns": 1})
        db.set_thumbnail("a.tif", PNG_SIGNATURE + b"x")
        assert db.thumbnail("a.tif") == PNG_SIGNATURE + b"x"
        assert list(db.thumbnail_hashes(["a.tif", "b.tif"])) == ["a.tif"]
        db.delete_file("a.tif")  # the row goes, its thumbnail with it
        assert db.thumbnail("a.tif") is None and db.thumbnail_hashes(["a.tif"]) == {}


def test_migration_from_the_previous_schema(tmp_path: Path) -> None:
    from stacsync.manifest.schema import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for _name, sql in MIGRATIONS[:-1]:  # a manifest written before thumbnails existed
        conn.executescript(sql)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    conn.commit()
    conn.close()
    with Manifest.open_writer(path) as db:
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.thumbnail_hashes(["x"]) == {}


# --- published with the items ---------------------------------------------------------------


def _age(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9))


@pytest.fixture
def demo(tmp_path: Path):
    tree = make_demo_tree(tmp_path / "data", missions=2, raster_size=128, points=200)
    _age(tree.root)
    config = tmp_path / "stacsync.toml"
    config.write_text(demo_config_toml(tree, tmp_path / "catalog", tmp_path / "db.sqlite"))
    return tree, config, tmp_path / "catalog"


def _png_of(catalog: Path, mission: str) -> Path:
    return catalog / "ofo-missions" / mission / f"{mission}.png"


def test_demo_items_get_the_orthomosaic_thumbnail(demo, schema_root: Path) -> None:
    tree, config, catalog = demo
    summary = rescan(config)
    assert summary.errors == 0 and summary.items_written == len(tree.missions)
    validate_catalog(catalog, schema_root)
    for mission in tree.missions:
        png = _png_of(catalog, mission).read_bytes()
        width, height, _depth, _colour = _ihdr(png)
        assert 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE
        ortho = tree.root / "missions" / mission / "processed_01" / "full" / "orthomosaic.tif"
        assert png == extract_file(str(ortho)).thumbnail
        item = (catalog / "ofo-missions" / mission / f"{mission}.json").read_text()
        assert f'"href": "./{mission}.png"' in item and '"roles": [\n        "thumbnail"' in item
    # index.geojson sits elsewhere: its copy of the relative href leads to the same file.
    index = json.loads((catalog / "index.geojson").read_text())
    for feature in index["features"]:
        href = feature["assets"]["thumbnail"]["href"]
        assert (catalog / href).resolve() == _png_of(catalog, feature["id"]).resolve()


def test_thumbnail_written_once_rewritten_on_change_and_removed_with_item(
    demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, config, catalog = demo
    rescan(config)
    first, second = tree.missions
    png = _png_of(catalog, first)
    before = png.read_bytes()

    rec = Recorder(monkeypatch, tree.root)
    rescan(config)  # nothing changed
    assert not [p for p in rec.written if p.endswith(".png")]

    # A new orthomosaic for the first mission: its PNG alone is rewritten.
    ortho = tree.root / "missions" / first / "processed_01" / "full" / "orthomosaic.tif"
    with rasterio.open(ortho) as src:
        profile, negative = src.profile, 255 - src.read()
    with rasterio.open(ortho, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(negative)
    os.utime(ortho, ns=(0, ortho.stat().st_mtime_ns - 60 * 10**9))
    rec.reset()
    rescan(config)
    assert sorted(p for p in rec.written if p.endswith(".png")) == [
        f"ofo-missions/{first}/{first}.png"
    ]
    assert png.read_bytes() != before and png.read_bytes() == extract_file(str(ortho)).thumbnail

    # Without an orthomosaic the item shows its first elevation model (chm-mesh).
    ortho.unlink()
    rescan(config)
    chm = ortho.with_name("chm-mesh.tif")
    assert png.read_bytes() == extract_file(str(chm)).thumbnail

    # With every raster gone (the point cloud stays) there is no thumbnail at all.
    for raster in ortho.parent.glob("*.tif"):
        raster.unlink()
    rescan(config)
    assert not png.exists()
    item = json.loads((catalog / "ofo-missions" / first / f"{first}.json").read_text())
    assert list(item["assets"]) == ["points"]

    # The item gone, its folder is gone, PNG and all; the manifest keeps no thumbnail for it.
    shutil.rmtree(tree.root / "missions" / second)
    rescan(config)
    assert not (catalog / "ofo-missions" / second).exists()
    with Manifest.open_reader(config.parent / "db.sqlite") as db:
        assert db.conn.execute("SELECT count(*) FROM thumbnail").fetchone()[0] == 0


def _spoil_pixels(path: Path) -> None:
    """Overwrite every tile of every level (same size, header intact): no pixel reads."""
    with rasterio.open(path) as src:
        levels = len(src.overviews(1))
    starts = []
    for level in [None, *range(levels)]:
        with rasterio.open(path, **({} if level is None else {"OVERVIEW_LEVEL": level})) as src:
            starts += [
                int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=b)) for b in src.indexes
            ]
    data = bytearray(path.read_bytes())
    data[min(starts) :] = b"\xff" * (len(data) - min(starts))
    st = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_raster_whose_pixels_do_not_read_is_not_read_again_for_the_thumbnail(
    demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orthomosaic was to be drawn and could not be: the item shows the next raster in
    line, drawn once, and no later pass reads the orthomosaic again for a thumbnail."""
    import stacsync.extract.dispatch

    tree, config, catalog = demo
    first = tree.missions[0]
    full = tree.root / "missions" / first / "processed_01" / "full"
    _spoil_pixels(full / "orthomosaic.tif")
    drawn: list[str] = []  # what the renderer reads again (the pass's own reads go elsewhere)
    real = stacsync.extract.dispatch.extract_file
    monkeypatch.setattr(
        stacsync.extract.dispatch,
        "extract_file",
        lambda path, **kw: drawn.append(Path(path).name) or real(path, **kw),
    )
    summary = rescan(config)
    assert summary.errors == 0
    assert drawn == ["chm-mesh.tif"]  # the next in line, never drawn by the pass
    assert _png_of(catalog, first).read_bytes() == real(str(full / "chm-mesh.tif")).thumbnail

    # The item is rendered again (its DSM changes): nothing is read again for its thumbnail.
    drawn.clear()
    shutil.copyfile(full / "dtm-ptcloud.tif", full / "dsm-mesh.tif")
    _age(tree.root)
    summary = rescan(config)
    assert summary.modified == 1 and summary.items_written == 1
    assert drawn == []
    assert _png_of(catalog, first).read_bytes() == real(str(full / "chm-mesh.tif")).thumbnail


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    tree = make_demo_tree(tmp_path / "data", missions=2, raster_size=128, points=200)
    _age(tree.root)
    outputs = []
    for run in ("a", "b"):
        config = tmp_path / f"{run}.toml"
        config.write_text(demo_config_toml(tree, tmp_path / run, tmp_path / f"{run}.sqlite"))
        rescan(config)
        outputs.append(catalog_bytes(tmp_path / run))
    assert outputs[0] == outputs[1]
    assert sum(name.endswith(".png") for name in outputs[0]) == len(tree.missions)


def test_point_cloud_only_items_have_no_thumbnail(copy_testdata, tmp_path: Path) -> None:
    src = copy_testdata("autzen_trim.laz", "simple.copc.laz", dest=tmp_path / "clouds")
    _age(src)
    rescan(source=src, output=tmp_path / "catalog", manifest=tmp_path / "db.sqlite")
    assert not list((tmp_path / "catalog").rglob("*.png"))
