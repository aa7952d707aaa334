"""Per-item metadata tables (`table.per_item`) and asset-key aliases in stacsync.catalog.layout.

Real CSV and GeoPackage files (written by GDAL) in a real source folder; the config loader
refuses the combinations that cannot work, naming the key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely

from stacsync.catalog.layout import Layout
from stacsync.config.load import load_settings
from stacsync.config.settings import Settings
from stacsync.core.errors import ConfigError

MATCH = r"^(?P<item>\d{6})/full/\d{6}_(?P<asset>[^/]+)\.tif$"
TABLE = '"{item}/meta/{item}_mission.gpkg"'


def settings_for(tmp_path: Path, table: str, extra: str = "", match: str = MATCH) -> Settings:
    (tmp_path / "src").mkdir(parents=True, exist_ok=True)
    config = tmp_path / "stacsync.toml"
    config.write_text(
        '[source]\npath = "src"\n[output]\npath = "out"\n'
        f"[[collection]]\nid = \"m\"\nmatch = '{match}'\n{extra}"
        f"[collection.table]\n{table}\n",
        encoding="utf-8",
    )
    return load_settings(config)


def mission_gpkg(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """(mission_id, datetime, sensor) rows, with a footprint each, as OFO writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    geometry = np.array(
        [shapely.to_wkb(shapely.box(-121.1, 40.1, -121.0, 40.2)) for _ in rows], dtype=object
    )
    fields = [np.array([r[i] for r in rows], dtype=object) for i in range(3)]
    pyogrio.raw.write(
        path,
        geometry,
        fields,
        ["mission_id", "earliest_datetime_local_derived", "sensor_name"],
        layer="mission",
        driver="GPKG",
        geometry_type="Polygon",
        crs="EPSG:4326",
    )
    return path


def per_item(extra: str = "") -> str:
    return (
        f'path = {TABLE}\nper_item = true\ndatetime = "earliest_datetime_local_derived"\n'
        f'properties = ["sensor_name"]\n{extra}'
    )


def test_each_item_takes_the_row_of_its_own_file(tmp_path):
    settings = settings_for(tmp_path, per_item())
    src = settings.source_path
    mission_gpkg(src / "000101/meta/000101_mission.gpkg", [("101", "2023-06-04 11:59:40", "P4A")])
    mission_gpkg(src / "000102/meta/000102_mission.gpkg", [("102", "2022-07-14", "M3E")])
    layout = Layout(settings)

    first = layout.place("000101/full/000101_dsm.tif")
    second = layout.place("000102/full/000102_dsm.tif")

    assert first is not None and second is not None
    assert (first.item_id, first.asset_key, first.problem) == ("000101", "dsm", None)
    assert first.datetime == "2023-06-04T11:59:40Z"
    assert first.properties == {"sensor_name": "P4A"}
    assert (second.datetime, second.properties) == ("2022-07-14T00:00:00Z", {"sensor_name": "M3E"})
    # Per-item files are the pass's to watch (pipeline.item_tables), not the fingerprint's.
    assert layout.table_files() == []
    assert layout.unused_rows("m", set()) == []


def test_a_missing_or_unreadable_item_file_keeps_its_files_unplaced(tmp_path):
    settings = settings_for(tmp_path, per_item())
    src = settings.source_path
    broken = src / "000102/meta/000102_mission.gpkg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a geopackage")
    layout = Layout(settings)

    missing = layout.place("000101/full/000101_dsm.tif")
    unreadable = layout.place("000102/full/000102_dsm.tif")

    assert missing is not None and not missing.placed
    assert missing.problem == "metadata file 000101/meta/000101_mission.gpkg not found"
    assert unreadable is not None and not unreadable.placed
    assert unreadable.problem.startswith(
        "collection[0].table.path: cannot read 000102/meta/000102_mission.gpkg"
    )


def test_a_column_the_item_file_lacks_is_that_items_problem(tmp_path):
    settings = settings_for(tmp_path, per_item().replace("sensor_name", "camera"))
    mission_gpkg(settings.source_path / "000101/meta/000101_mission.gpkg", [("101", "", "P4A")])

    placed = Layout(settings).place("000101/full/000101_dsm.tif")

    assert placed is not None and not placed.placed
    assert "collection[0].table.properties: no column 'camera'" in placed.problem
    assert "000101/meta/000101_mission.gpkg" in placed.problem


def test_several_rows_take_the_first_or_the_keyed_one(tmp_path):
    rows = [("999", "2020-01-01", "other"), ("101", "2023-06-04", "P4A")]
    first = settings_for(tmp_path / "a", per_item())
    mission_gpkg(first.source_path / "000101/meta/000101_mission.gpkg", rows)
    keyed = settings_for(tmp_path / "b", per_item('key = "mission_id"'))
    # Another key twice does not concern this item.
    mission_gpkg(keyed.source_path / "000101/meta/000101_mission.gpkg", [rows[0], *rows])

    unkeyed = Layout(first).place("000101/full/000101_dsm.tif")
    by_key = Layout(keyed).place("000101/full/000101_dsm.tif")

    assert unkeyed is not None and unkeyed.properties == {"sensor_name": "other"}
    assert "several rows in 000101/meta/000101_mission.gpkg" in unkeyed.problem
    # The key "000101" finds the numeric-looking 101 (leading zeros lost), as for one table.
    assert by_key is not None and by_key.properties == {"sensor_name": "P4A"}
    assert by_key.problem is None and by_key.datetime == "2023-06-04T00:00:00Z"


def test_a_csv_per_item(tmp_path):
    table = 'path = "{item}/meta.csv"\nper_item = true\ndatetime = "date"\nproperties = ["site"]'
    settings = settings_for(tmp_path, table)
    (settings.source_path / "000101").mkdir()
    (settings.source_path / "000101/meta.csv").write_text("date;site\n2019-05-19;Blodgett\n")

    placed = Layout(settings).place("000101/full/000101_dsm.tif")

    assert placed is not None and placed.placed
    assert (placed.datetime, placed.properties) == ("2019-05-19T00:00:00Z", {"site": "Blodgett"})


def test_an_item_group_cannot_lead_out_of_the_template(tmp_path):
    # A match that lets anything through as the item: names from the store, never a path out.
    settings = settings_for(tmp_path, per_item(), match=r"^(?P<item>.+)/(?P<asset>[^/]+)\.tif$")
    outside = tmp_path / "meta" / "x_mission.gpkg"  # what "../{item}" would reach
    mission_gpkg(outside, [("1", "2020-01-01", "x")])
    layout = Layout(settings)

    for path in ("../x/dsm.tif", "a/b/dsm.tif", "./dsm.tif", "a\\b/dsm.tif"):
        placed = layout.place(path)
        assert placed is not None and not placed.placed, path
        assert "cannot name a metadata file" in placed.problem, path


def test_asset_keys_alias_captured_names(tmp_path):
    extra = (
        "[collection.asset_keys]\n"
        '"ortho-dsm-ptcloud" = "orthomosaic"\n"ortho-dsm-mesh" = "orthomosaic"\n'
        '"ortho-dsm-mesh.png" = "thumbnail"\n'
    )
    table = per_item()
    settings = settings_for(tmp_path, table, extra)
    mission_gpkg(settings.source_path / "000101/meta/000101_mission.gpkg", [("1", "", "x")])
    layout = Layout(settings)

    keys = {
        name: layout.place(f"000101/full/000101_{name}.tif").asset_key
        for name in ("ortho-dsm-ptcloud", "ortho-dsm-mesh", "dsm-mesh", "odd name")
    }

    assert keys["ortho-dsm-ptcloud"] == keys["ortho-dsm-mesh"] == "orthomosaic"
    assert keys["dsm-mesh"] == "dsm-mesh"  # not listed: its own name
    assert keys["odd name"].startswith("odd-name-")  # still through safe_id


@pytest.mark.parametrize(
    ("table", "extra", "message"),
    [
        (
            'path = "{item}/m.gpkg"',
            "",
            "collection[0].table.path: {item} is for one file per item: set table.per_item = true",
        ),
        (
            'path = "m.gpkg"\nper_item = true',
            "",
            "collection[0].table.path: with per_item, name each item's file with {item}",
        ),
        ('path = "m.gpkg"', "", "collection[0].table.key: required (unless table.per_item)"),
        (
            f'path = {TABLE}\nper_item = true\nitem_column = "plot"',
            "",
            "collection[0].table.item_column: not with per_item (the path's {item} names the item)",
        ),
        (
            f"path = {TABLE}\nper_item = true",
            '[collection.asset_keys]\n"ortho" = "../x"\n',
            "collection[0].asset_keys.ortho: not an asset key: '../x'",
        ),
    ],
)
def test_impossible_table_settings_are_refused(tmp_path, table, extra, message):
    with pytest.raises(ConfigError) as err:
        settings_for(tmp_path, table, extra)
    assert any(line.startswith(message) for line in str(err.value).splitlines()), err.value
