"""Tests for stacsync.catalog.layout: paths → placements, joined with CSV and GPKG tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from stacsync.catalog.layout import Layout
from stacsync.config.load import load_settings
from stacsync.config.settings import Settings
from stacsync.core.errors import ConfigError

OFO_MATCH = r"missions/(?P<item>\d{6})/processed[^/]*/full/(?P<asset>[^/]+)\.(tif|laz)$"


def settings_for(tmp_path: Path, collections: str) -> Settings:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    config = tmp_path / "stacsync.toml"
    config.write_text(
        f'[source]\npath = "src"\n[output]\npath = "out"\n{collections}', encoding="utf-8"
    )
    return load_settings(config)


def write_gpkg(path: Path, with_second_layer: bool = False) -> None:
    """A small OFO-shaped mission table: dataset_id, datetimes, sensor, a NaN and a polygon."""
    import pyogrio.raw

    path.parent.mkdir(parents=True, exist_ok=True)
    geometry = shapely.to_wkb(
        np.array([shapely.box(-121.1, 40.1, -121.0, 40.2), shapely.box(-121.4, 39.7, -121.3, 39.8)])
    )
    fields = [
        np.array(["000421", "000422"], dtype=object),
        np.array(["2019-06-04T11:59:40", "2019-06-06T11:22:42"], dtype="datetime64[ms]"),
        np.array(["P4A integrated camera", "M3E integrated RGB camera"], dtype=object),
        np.array([3.0, np.nan]),
        np.array([True, False]),
    ]
    names = ["dataset_id", "earliest_datetime_local_derived", "sensor_name", "flight_speed", "ok"]
    pyogrio.raw.write(
        path,
        geometry,
        fields,
        names,
        layer="other" if with_second_layer else "missions",
        driver="GPKG",
        geometry_type="Polygon",
        crs="EPSG:4326",
    )
    if with_second_layer:
        pyogrio.raw.write(
            path,
            geometry,
            fields,
            names,
            layer="missions",
            driver="GPKG",
            geometry_type="Polygon",
            crs="EPSG:4326",
            append=True,
        )


def ofo_collection(table: str = "") -> str:
    return f"[[collection]]\nid = \"ofo\"\nmatch = '{OFO_MATCH}'\n{table}"


GPKG_TABLE = """[collection.table]
path = "metadata/missions.gpkg"
key = "dataset_id"
datetime = "earliest_datetime_local_derived"
properties = ["sensor_name", "flight_speed", "ok"]
"""


# ---------------------------------------------------------------- no table


def test_ofo_paths_without_table(tmp_path: Path) -> None:
    layout = Layout(settings_for(tmp_path, ofo_collection()))
    placement = layout.place("missions/000421/processed_02/full/orthomosaic.tif")
    assert placement is not None
    assert (placement.collection_id, placement.item_id, placement.asset_key) == (
        "ofo",
        "000421",
        "orthomosaic",
    )
    assert placement.problem is None and placement.placed
    assert placement.datetime is None and placement.properties == {}
    points = layout.place("missions/000421/processed/full/points.laz")
    assert points is not None and points.asset_key == "points"
    assert layout.place("missions/000421/raw/x.tif") is None
    assert layout.place("missions/42/processed/full/x.tif") is None
    assert layout.table_files() == []


def test_first_matching_collection_wins(tmp_path: Path) -> None:
    collections = ofo_collection() + "[[collection]]\nid = \"rest\"\nmatch = '^(?P<item>.+)$'\n"
    layout = Layout(settings_for(tmp_path, collections))
    assert layout.place("missions/000421/processed/full/a.tif").collection_id == "ofo"
    other = layout.place("loose/file.tif")
    assert (other.collection_id, other.item_id, other.asset_key) == (
        "rest",
        "loose__file-tif",
        "data",
    )


# ---------------------------------------------------------------- GeoPackage


def test_geopackage_join(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ofo_collection(GPKG_TABLE))
    write_gpkg(settings.source_path / "metadata" / "missions.gpkg")
    layout = Layout(settings)
    assert layout.table_files() == [settings.source_path / "metadata" / "missions.gpkg"]
    placement = layout.place("missions/000421/processed/full/dsm-mesh.tif")
    assert placement is not None
    assert placement.item_id == "000421" and placement.asset_key == "dsm-mesh"
    assert placement.datetime == "2019-06-04T11:59:40Z"  # naive: taken as UTC
    assert placement.properties == {
        "sensor_name": "P4A integrated camera",
        "flight_speed": 3.0,
        "ok": True,
    }
    assert type(placement.properties["flight_speed"]) is float  # no numpy scalars
    assert placement.problem is None and placement.table_key == "000421"
    second = layout.place("missions/000422/processed/full/points.laz")
    assert "flight_speed" not in second.properties  # NaN is left out


def test_geopackage_missing_row_still_placed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ofo_collection(GPKG_TABLE))
    write_gpkg(settings.source_path / "metadata" / "missions.gpkg")
    placement = Layout(settings).place("missions/000123/processed/full/orthomosaic.tif")
    assert placement is not None and placement.placed
    assert placement.item_id == "000123"
    assert placement.problem == "no row with dataset_id='000123' in metadata/missions.gpkg"
    assert placement.datetime is None and placement.properties == {}


def test_geopackage_unused_rows(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ofo_collection(GPKG_TABLE))
    write_gpkg(settings.source_path / "metadata" / "missions.gpkg")
    layout = Layout(settings)
    placement = layout.place("missions/000421/processed/full/orthomosaic.tif")
    assert layout.unused_rows("ofo", {placement.table_key}) == ["000422"]
    assert layout.unused_rows("ofo", set()) == ["000421", "000422"]


def test_geopackage_named_layer(tmp_path: Path) -> None:
    table = GPKG_TABLE + 'layer = "missions"\n'
    settings = settings_for(tmp_path, ofo_collection(table))
    write_gpkg(settings.source_path / "metadata" / "missions.gpkg", with_second_layer=True)
    assert Layout(settings).place("missions/000422/processed/full/a.tif").problem is None


def test_geopackage_first_layer_by_default_and_a_wrong_layer_named(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ofo_collection(GPKG_TABLE))
    write_gpkg(settings.source_path / "metadata" / "missions.gpkg", with_second_layer=True)
    # "other" was written first: it is the first layer, as GDAL lists them.
    assert Layout(settings).place("missions/000421/processed/full/a.tif").problem is None
    table = GPKG_TABLE + 'layer = "flights"\n'
    settings = settings_for(tmp_path, ofo_collection(table))
    with pytest.raises(ConfigError, match=r"no layer 'flights' \(layers: other, missions\)"):
        Layout(settings).place("missions/000421/processed/full/a.tif")


def test_missing_table_is_a_config_error_at_first_use(tmp_path: Path) -> None:
    layout = Layout(settings_for(tmp_path, ofo_collection(GPKG_TABLE)))  # loads nothing yet
    with pytest.raises(ConfigError, match=r"collection\[0\]\.table\.path: table file not found"):
        layout.place("missions/000421/processed/full/a.tif")


def test_unreadable_table(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ofo_collection(GPKG_TABLE))
    bad = settings.source_path / "metadata" / "missions.gpkg"
    bad.parent.mkdir(parents=True)
    bad.write_text("not a geopackage")
    with pytest.raises(ConfigError, match=r"collection\[0\]\.table\.path: cannot read"):
        Layout(settings).place("missions/000421/processed/full/a.tif")


def test_missing_column_names_its_key(tmp_path: Path) -> None:
    table = GPKG_TABLE.replace('"sensor_name"', '"sensor_nme"')
    settings = settings_for(tmp_path, ofo_collection(table))
    write_gpkg(settings.source_path / "metadata" / "missions.gpkg")
    with pytest.raises(
        ConfigError, match=r"collection\[0\]\.table\.properties: no column 'sensor_nme'"
    ):
        Layout(settings).place("missions/000421/processed/full/a.tif")


# ---------------------------------------------------------------- CSV, grouped by plot

CSV_COLLECTION = """[[collection]]
id = "srer"
match = '^(?P<asset>[^/]+)\\.(tif|laz)$'
[collection.table]
path = "collection_date.csv"
key = "Id"
item_column = "plot"
datetime = "collection_date"
properties = ["note"]
"""

CSV_TEXT = """\ufeffId,plot,collection_date,note
15_g2,plot_15,2019-05-19,first
15_g3,plot_15,2019-05-19,
16_g1,plot_16,19 May 2019,x
17_g1,,2019-05-21,
18_g1,plot_18,2019-05-22,never matched
"""


@pytest.fixture
def csv_layout(tmp_path: Path) -> Layout:
    settings = settings_for(tmp_path, CSV_COLLECTION)
    (settings.source_path / "collection_date.csv").write_text(CSV_TEXT, encoding="utf-8")
    return Layout(settings)


def test_csv_groups_files_by_plot(csv_layout: Layout) -> None:
    a = csv_layout.place("15_g2.tif")
    b = csv_layout.place("15_g3.tif")
    assert (a.item_id, a.asset_key) == ("plot_15", "15_g2")
    assert (b.item_id, b.asset_key) == ("plot_15", "15_g3")
    assert a.datetime == "2019-05-19T00:00:00Z"
    assert a.properties == {"note": "first"} and b.properties == {}  # blank cells left out
    assert a.problem is None and a.table_key == "15_g2"


def test_csv_missing_row_cannot_be_placed(csv_layout: Layout) -> None:
    placement = csv_layout.place("99_g9.tif")
    assert placement is not None
    assert placement.item_id == "" and not placement.placed
    assert placement.asset_key == "99_g9"
    assert placement.problem == "no row with Id='99_g9' in collection_date.csv"


def test_csv_empty_item_column(csv_layout: Layout) -> None:
    placement = csv_layout.place("17_g1.tif")
    assert not placement.placed
    assert "empty 'plot'" in placement.problem


def test_csv_unparseable_date_is_a_problem_not_an_exception(csv_layout: Layout) -> None:
    placement = csv_layout.place("16_g1.tif")
    assert placement.item_id == "plot_16" and placement.placed
    assert placement.datetime is None
    assert "collection_date of row '16_g1'" in placement.problem
    assert "cannot read '19 May 2019'" in placement.problem


def test_csv_unused_rows(csv_layout: Layout) -> None:
    used = {p.table_key for p in map(csv_layout.place, ["15_g2.tif", "15_g3.tif", "16_g1.tif"])}
    assert csv_layout.unused_rows("srer", used) == ["17_g1", "18_g1"]


def test_csv_with_datetime_format_and_semicolons(tmp_path: Path) -> None:
    collection = CSV_COLLECTION + 'datetime_format = "%d/%m/%Y"\n'
    settings = settings_for(tmp_path, collection)
    (settings.source_path / "collection_date.csv").write_text(
        "Id;plot;collection_date;note\n15_g2;plot_15;19/05/2019;x\n", encoding="utf-8"
    )
    placement = Layout(settings).place("15_g2.tif")
    assert placement.datetime == "2019-05-19T00:00:00Z" and placement.item_id == "plot_15"


def test_numeric_keys_lose_leading_zeros(tmp_path: Path) -> None:
    table = '[collection.table]\npath = "m.csv"\nkey = "dataset_id"\ndatetime = "when"\n'
    settings = settings_for(tmp_path, ofo_collection(table))
    (settings.source_path / "m.csv").write_text(
        "dataset_id,when\n421,2019-06-04T04:59:40-07:00\n421,2020-01-01\n", encoding="utf-8"
    )
    layout = Layout(settings)
    placement = layout.place("missions/000421/processed/full/a.tif")
    assert placement.datetime == "2019-06-04T11:59:40Z"  # aware: converted to UTC
    assert placement.table_key == "421"
    assert "several rows with dataset_id='421'" in placement.problem  # first row wins
    assert layout.unused_rows("ofo", {"000421"}) == []


def test_reload_reads_the_table_again(csv_layout: Layout, tmp_path: Path) -> None:
    assert not csv_layout.place("99_g9.tif").placed
    table = tmp_path / "src" / "collection_date.csv"
    table.write_text(CSV_TEXT + "99_g9,plot_99,2019-05-30,\n", encoding="utf-8")
    assert not csv_layout.place("99_g9.tif").placed  # still the cached table
    csv_layout.reload()
    assert csv_layout.place("99_g9.tif").item_id == "plot_99"


# ---------------------------------------------------------------- ids can never escape


@pytest.mark.parametrize(
    "relpath",
    [
        "../../etc/passwd.tif",
        "a/../../b.tif",
        "./x.tif",
        "..",
        ".",
        "données/été 2019/ortho.tif",
        "日本/画像.tif",
        "a\\..\\b.tif",
    ],
)
def test_files_layout_ids_are_safe(tmp_path: Path, relpath: str) -> None:
    layout = Layout(
        settings_for(tmp_path, "[[collection]]\nid = \"f\"\nmatch = '^(?P<item>.+)$'\n")
    )
    placement = layout.place(relpath)
    assert placement is not None
    for value in (placement.item_id, placement.asset_key):
        assert value and value not in (".", "..")
        assert "/" not in value and "\\" not in value
        assert value.isascii()


def test_table_item_ids_are_safe(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, CSV_COLLECTION)
    (settings.source_path / "collection_date.csv").write_text(
        "Id,plot,collection_date,note\na,../..,2019-05-19,\nb,x/y,2019-05-19,\nc,é,2019-05-19,\n",
        encoding="utf-8",
    )
    layout = Layout(settings)
    ids = [layout.place(f"{name}.tif").item_id for name in "abc"]
    for value in ids:
        assert value and value not in (".", "..") and "/" not in value and value.isascii()
    assert len(set(ids)) == 3


def test_asset_group_with_unsafe_text(tmp_path: Path) -> None:
    collection = "[[collection]]\nid = \"c\"\nmatch = '^(?P<item>[^/]+)/(?P<asset>.+)$'\n"
    layout = Layout(settings_for(tmp_path, collection))
    placement = layout.place("m1/../../x.tif")
    assert placement.item_id == "m1"
    assert "/" not in placement.asset_key and placement.asset_key not in (".", "..")
