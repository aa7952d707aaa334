"""Tests for stacsync.demo: the synthetic OFO tree is real, consistent and reproducible."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from pathlib import Path

import laspy
import numpy as np
import pyproj
import pytest
import rasterio
import shapely
from pyogrio.raw import read as read_table
from rio_cogeo.cogeo import cog_validate

from stacsync.demo import ASSET_FILES, RASTER_NAMES, DemoTree, demo_config_toml, make_demo_tree

SIZE = 64
POINTS = 300
SEED = 7


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> DemoTree:
    return make_demo_tree(
        tmp_path_factory.mktemp("demo"), missions=2, seed=SEED, raster_size=SIZE, points=POINTS
    )


@pytest.fixture(scope="module")
def table(tree: DemoTree) -> dict[str, dict]:
    """The GeoPackage rows keyed by dataset_id, geometry as shapely."""
    meta, _, geometry, fields = read_table(tree.table)
    assert meta["crs"] == "EPSG:4326"
    rows = {}
    for i, wkb in enumerate(geometry):
        row = {name: values[i] for name, values in zip(meta["fields"], fields, strict=True)}
        row["geometry"] = shapely.from_wkb(wkb)
        rows[row["dataset_id"]] = row
    return rows


def _relative(tree: DemoTree, path: Path) -> str:
    return path.relative_to(tree.root).as_posix()


def _mission_datetime(table: dict[str, dict], mission: str) -> dt.datetime:
    text = table[mission]["earliest_datetime_local_derived"]
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _digests(tree: DemoTree) -> dict[str, str]:
    paths = [*tree.files, tree.table]
    return {_relative(tree, p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_tree_has_the_ofo_layout_and_nothing_else(tree: DemoTree) -> None:
    assert tree.missions == ("000101", "000102")
    expected = {
        f"missions/{mission}/processed_01/full/{name}"
        for mission in tree.missions
        for name in ASSET_FILES
    }
    assert len(ASSET_FILES) == 7
    assert {_relative(tree, p) for p in tree.files} == expected
    assert list(tree.files) == sorted(tree.files)
    on_disk = {_relative(tree, p) for p in tree.root.rglob("*") if p.is_file()}
    # No .aux.xml sidecars or temporary files left behind.
    assert on_disk == expected | {"metadata/all-mission-polygons-w-metadata.gpkg"}


@pytest.mark.parametrize("name", RASTER_NAMES)
def test_rasters_are_valid_cogs_with_crs_nodata_and_date(
    tree: DemoTree, table: dict[str, dict], name: str
) -> None:
    for mission in tree.missions:
        path = tree.root / "missions" / mission / "processed_01/full" / f"{name}.tif"
        is_valid, errors, warnings = cog_validate(path, quiet=True)
        assert is_valid, errors
        assert not warnings
        with rasterio.open(path) as dataset:
            assert dataset.crs.to_epsg() in (32610, 32611)
            assert 0.05 <= dataset.res[0] <= 0.5
            assert dataset.overviews(1), "expected at least one internal overview"
            stamp = dt.datetime.strptime(dataset.tags()["TIFFTAG_DATETIME"], "%Y:%m:%d %H:%M:%S")
            assert stamp == _mission_datetime(table, mission)
            mask = dataset.dataset_mask()
            if name == "orthomosaic":
                assert (dataset.count, dataset.dtypes[0], dataset.nodata) == (3, "uint8", 0)
                assert dataset.shape == (SIZE, SIZE)
            else:
                assert (dataset.count, dataset.dtypes[0], dataset.nodata) == (1, "float32", -9999)
            # A nodata border around real data: footprints are not just the bbox.
            assert 0.2 < (mask > 0).mean() < 0.9


def test_surface_models_are_consistent(tree: DemoTree) -> None:
    folder = tree.root / "missions" / tree.missions[0] / "processed_01/full"
    arrays = {}
    grids = set()
    for name in ("dtm-ptcloud", "dsm-ptcloud", "chm-ptcloud", "dsm-mesh", "chm-mesh"):
        with rasterio.open(folder / f"{name}.tif") as dataset:
            arrays[name] = dataset.read(1, masked=True)
            grids.add((dataset.crs.to_epsg(), dataset.transform, dataset.shape))
    assert len(grids) == 1, "all surface models share one grid"
    dtm, dsm, chm = arrays["dtm-ptcloud"], arrays["dsm-ptcloud"], arrays["chm-ptcloud"]
    assert 500 < dtm.min() <= dtm.max() < 4000  # Sierra Nevada elevations
    assert 0 <= chm.min() < 5 < chm.max() < 80  # ground and tree heights
    np.testing.assert_allclose(dsm - dtm, chm, atol=1e-3)
    np.testing.assert_allclose(arrays["dsm-mesh"] - dtm, arrays["chm-mesh"], atol=1e-3)


def test_point_clouds_are_compressed_laz_with_crs(tree: DemoTree, table: dict[str, dict]) -> None:
    for mission in tree.missions:
        folder = tree.root / "missions" / mission / "processed_01/full"
        assert (folder / "points.laz").read_bytes()[:4] == b"LASF"
        with rasterio.open(folder / "dtm-ptcloud.tif") as dataset:
            raster_crs, raster_bounds = dataset.crs, dataset.bounds
        with laspy.open(folder / "points.laz") as reader:
            header = reader.header
            points = reader.read()
        assert header.are_points_compressed
        assert (str(header.version), header.point_format.id) == ("1.4", 6)
        assert header.point_count == len(points) == POINTS
        assert header.parse_crs().to_epsg() == raster_crs.to_epsg()
        assert header.creation_date == _mission_datetime(table, mission).date()
        # Points lie on the rasters and, once in lon/lat, inside the mission polygon.
        assert raster_bounds.left <= header.mins[0] and header.maxs[0] <= raster_bounds.right
        assert raster_bounds.bottom <= header.mins[1] and header.maxs[1] <= raster_bounds.top
        assert 500 < header.mins[2] <= header.maxs[2] < 4000
        to_wgs84 = pyproj.Transformer.from_crs(header.parse_crs(), 4326, always_xy=True)
        lon, lat = to_wgs84.transform(np.asarray(points.x), np.asarray(points.y))
        polygon = table[mission]["geometry"].buffer(1e-7)
        assert shapely.contains_xy(polygon, lon, lat).all()


def test_table_has_one_row_per_mission_plus_one_without_files(
    tree: DemoTree, table: dict[str, dict]
) -> None:
    assert tree.table == tree.root / "metadata/all-mission-polygons-w-metadata.gpkg"
    assert tree.table_only == ("000103",)
    assert sorted(table) == [*tree.missions, *tree.table_only]
    assert not (tree.root / "missions" / "000103").exists()
    for row in table.values():
        assert re.fullmatch(r"\d{6}", row["dataset_id"])
        _mission_datetime(table, row["dataset_id"])  # parses
        assert row["sensor_name"] and row["flight_planner_name"]
        geometry = row["geometry"]
        assert geometry.geom_type == "MultiPolygon" and geometry.is_valid
        minx, miny, maxx, maxy = geometry.bounds
        assert -125 < minx < maxx < -114 and 34 < miny < maxy < 42  # California
    polygons = [row["geometry"] for row in table.values()]
    assert not any(a.intersects(b) for i, a in enumerate(polygons) for b in polygons[i + 1 :])


def test_same_arguments_give_identical_bytes(tree: DemoTree, tmp_path: Path) -> None:
    again = make_demo_tree(tmp_path / "a", missions=2, seed=SEED, raster_size=SIZE, points=POINTS)
    assert _digests(again) == _digests(tree)
    other = make_demo_tree(tmp_path / "b", missions=2, seed=SEED + 1, raster_size=SIZE, points=20)
    differing = set(_digests(other).items()) ^ set(_digests(tree).items())
    assert len(differing) == 2 * (2 * 7 + 1), "a different seed changes every file"


def test_a_mission_does_not_depend_on_the_mission_count(tree: DemoTree, tmp_path: Path) -> None:
    one = make_demo_tree(tmp_path, missions=1, seed=SEED, raster_size=SIZE, points=POINTS)
    first = {k: v for k, v in _digests(tree).items() if k.startswith("missions/000101/")}
    assert {k: v for k, v in _digests(one).items() if k.startswith("missions/")} == first


def test_config_parses_and_its_regex_matches_exactly_the_assets(
    tree: DemoTree, tmp_path: Path
) -> None:
    config = tomllib.loads(demo_config_toml(tree, tmp_path / "out", tmp_path / "m.sqlite"))
    assert config["source"]["path"] == str(tree.root)
    assert config["output"]["path"] == str(tmp_path / "out")
    assert config["manifest"]["path"] == str(tmp_path / "m.sqlite")
    assert config["catalog"]["id"] == "ofo-demo"
    (collection,) = config["collection"]
    assert collection["id"] == "ofo-missions"
    assert collection["license"] == "CC-BY-4.0"
    assert collection["providers"][0]["name"] == "Open Forest Observatory"
    assert collection["table"]["key"] == "dataset_id"
    assert collection["table"]["datetime"] == "earliest_datetime_local_derived"
    assert collection["table"]["properties"] == ["sensor_name", "flight_planner_name"]
    assert (tree.root / collection["table"]["path"]) == tree.table
    assert collection["properties"]["platform"] == "DJI Phantom 4 RTK"
    assert collection["properties"]["sci:citation"]

    pattern = re.compile(collection["match"])
    all_files = [p for p in tree.root.rglob("*") if p.is_file()]
    for path in all_files:
        match = pattern.search(_relative(tree, path))
        if path in tree.files:
            assert match, path
            assert match["item"] == path.parts[-4]
            assert match["asset"] == path.stem
        else:
            assert match is None, path
    assert len(all_files) == len(tree.files) + 1
    for other in (
        "missions/000101/raw/IMG_0001.tif",
        "missions/000101/processed_01/full/x.tif.aux.xml",
    ):
        assert pattern.search(other) is None


def test_config_escapes_awkward_paths(tree: DemoTree, tmp_path: Path) -> None:
    output = tmp_path / 'it\'s a "quoted" \\ path\twith ünïcode'
    config = tomllib.loads(demo_config_toml(tree, output, tmp_path / "m.sqlite"))
    assert config["output"]["path"] == str(output)


@pytest.mark.parametrize("kwargs", [{"missions": -1}, {"raster_size": 8}, {"points": 0}], ids=str)
def test_rejects_impossible_sizes(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_demo_tree(tmp_path, **kwargs)
