"""The OFO layout on a real moto_server: per-mission GeoPackages, existing PNG thumbnails,
asset-key aliases, and `stacsync init --layout ofo-s3` as the config.

Missions are real COGs (stacsync.demo) and a real COPC from ../shared/testdata; every request
goes through a recording relay, so the tests count the GeoPackages stacsync fetched.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from helpers import age, items_under, validate_catalog, without_hrefs
from rasterio.errors import NotGeoreferencedWarning
from s3server import FaultProxy, dummy_credentials, new_bucket, store_for

from stacsync.check.schemas import SchemaValidator
from stacsync.config.text import example_config
from stacsync.core.errors import ConfigError
from stacsync.demo import make_demo_tree
from stacsync.pipeline.sync import rescan

PREFIX = "drone/missions_03/"
SWIFT = "https://js2.jetstream-cloud.org:8001/swift/v1/ofo-public"
PRODUCTS = ("dsm-mesh", "dsm-ptcloud", "dtm-ptcloud", "chm-mesh", "chm-ptcloud")
ASSET_KEYS = {"orthomosaic", *PRODUCTS, "points", "thumbnail"}


@dataclass(frozen=True)
class Mission:
    id: str
    nn: str  # photogrammetry_<NN>
    ortho: str  # ortho-dsm-ptcloud or ortho-dsm-mesh
    when: str  # earliest_datetime_local_derived
    sensor: str
    planner: str


MISSIONS = (
    Mission(
        "000101", "01", "ortho-dsm-ptcloud", "2023-06-04 11:59:40", "P4RTK camera", "DJI GS RTK"
    ),
    Mission("000102", "02", "ortho-dsm-mesh", "2022-07-14 09:30:00", "M3E RGB camera", "Map Pilot"),
    Mission("000103", "01", "ortho-dsm-ptcloud", "2021-05-19", "P4A camera", "DJI Pilot 2"),
)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    dummy_credentials(monkeypatch)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Real COGs for three missions (small: 64 px), written once for the module."""
    root = tmp_path_factory.mktemp("demo")
    make_demo_tree(root, missions=len(MISSIONS), raster_size=64, points=200)
    return root


# -- the tree ----------------------------------------------------------------------------------


def write_mission_gpkg(path: Path, mission: Mission, *, sensor: str | None = None) -> Path:
    """One row, the mission's attributes, written by GDAL as OFO's own files are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    columns = {
        "mission_id": [mission.id],
        "earliest_datetime_local_derived": [mission.when],
        "sensor_name": [sensor or mission.sensor],
        "flight_planner_name": [mission.planner],
        "flight_speed_derived": [6.5],
    }
    field_data = [
        np.array(v, dtype=np.float64 if isinstance(v[0], float) else object)
        for v in columns.values()
    ]
    box = shapely.box(-120.7, 38.9, -120.6, 39.0)
    pyogrio.raw.write(
        path,
        np.array([shapely.to_wkb(shapely.MultiPolygon([box]))], dtype=object),
        field_data,
        list(columns),
        layer=f"{mission.id}_mission-metadata",
        driver="GPKG",
        geometry_type="MultiPolygon",
        crs="EPSG:4326",
    )
    return path


def write_png(source: Path, target: Path) -> None:
    """A real PNG drawn from a COG, as OFO's thumbnails are."""
    with rasterio.open(source) as src:
        data = src.read(out_shape=(src.count, 32, 32))
    target.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "PNG", "width": 32, "height": 32, "count": data.shape[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture: no place, rightly
        with rasterio.open(target, "w", dtype=data.dtype, **profile) as dst:
            dst.write(data)
    for sidecar in target.parent.glob(target.name + ".aux.xml"):
        sidecar.unlink()


def make_ofo_tree(root: Path, demo: Path, testdata: Path, *, gpkg: bool = True) -> Path:
    """The OFO bucket's layout under `root` (`<id>/photogrammetry_<NN>/...`)."""
    for index, mission in enumerate(MISSIONS):
        made = demo / "missions" / f"{101 + index:06d}" / "processed_01" / "full"
        base = root / mission.id / f"photogrammetry_{mission.nn}"
        full = base / "full"
        full.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made / "orthomosaic.tif", full / f"{mission.id}_{mission.ortho}.tif")
        for product in PRODUCTS:
            shutil.copyfile(made / f"{product}.tif", full / f"{mission.id}_{product}.tif")
        shutil.copyfile(
            testdata / "autzen_clip_4326.copc.laz", full / f"{mission.id}_points.copc.laz"
        )
        thumbs = base / "thumbnails"
        write_png(made / "orthomosaic.tif", thumbs / f"{mission.id}_{mission.ortho}.png")
        write_png(made / "orthomosaic.tif", thumbs / f"{mission.id}_dsm-mesh.png")  # not listed
        if gpkg:
            meta = root / mission.id / "metadata-mission" / f"{mission.id}_mission-metadata.gpkg"
            write_mission_gpkg(meta, mission)
        images = root / mission.id / "images"
        images.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(images / f"{mission.id}_images.zip", "w") as archive:
            archive.writestr("DJI_0001.JPG", b"not a real photo")
    return root


def upload_tree(endpoint: str, bucket: str, root: Path) -> None:
    """Every file under `root` to `PREFIX`, with the sha256 the store keeps."""
    client = store_for(endpoint, bucket).client
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = PREFIX + path.relative_to(root).as_posix()
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ChecksumAlgorithm="SHA256",
            ACL="public-read",  # as in ofo-public: read with unsigned requests
        )


# -- configs: `stacsync init --layout ofo-s3`, pointed at the test's bucket or folder ----------


def s3_config(folder: Path, endpoint: str, bucket: str) -> Path:
    text = example_config("ofo-s3")
    text = text.replace('"s3://ofo-public', f'"s3://{bucket}')
    text = text.replace(
        'endpoint_url = "https://js2.jetstream-cloud.org:8001"', f'endpoint_url = "{endpoint}"'
    )
    assert f'url = "s3://{bucket}/drone/missions_03/"' in text
    assert f'prefix = "s3://{bucket}"' in text and f'to = "{SWIFT}"' in text
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stacsync.toml").write_text(text)
    return folder / "stacsync.toml"


def local_config(folder: Path, source: Path) -> Path:
    text = example_config("ofo-s3")
    lines = []
    for line in text.splitlines():
        if line.startswith('url = "s3://ofo-public/drone/missions_03/"'):
            line = f'path = "{source}"'
        elif line.startswith(("endpoint_url = ", "anonymous = ")):
            continue
        lines.append(line)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stacsync.toml").write_text("\n".join(lines) + "\n")
    return folder / "stacsync.toml"


def items(out: Path) -> dict[str, dict[str, Any]]:
    return items_under(out / "ofo-missions")


def gpkg_gets(proxy: FaultProxy, bucket: str) -> list[str]:
    """The GeoPackages fetched, each once (one stream: its first ranged GET, then the rest)."""
    gets = [
        s.path
        for s in proxy.requests(lambda s: s.method == "GET" and s.path.endswith(".gpkg"))
        if s.path.startswith(f"/{bucket}/")
    ]
    assert all(gets.count(path) <= 2 for path in gets), gets  # a 96 KiB file: at most two
    return sorted(set(gets))


def error_rows(folder: Path) -> dict[str, str]:
    with sqlite3.connect(folder / "stacsync.db") as conn:
        return dict(conn.execute("SELECT path, error FROM errors"))


def packaged_schemas() -> Path:
    # The shared schemas plus alternate-assets (S3 hrefs keep their s3:// address there).
    return Path(str(SchemaValidator().root))


# -- tests -------------------------------------------------------------------------------------


def test_the_ofo_bucket_builds_one_item_per_mission(
    s3_server, proxy, demo, testdata, tmp_path, schema_root
):
    bucket = new_bucket(s3_server)
    tree = make_ofo_tree(tmp_path / "tree", demo, testdata)
    upload_tree(s3_server, bucket, tree)
    config = s3_config(tmp_path / "s3", proxy.url, bucket)

    summary = rescan(config)

    assert summary.errors == 0 and summary.render_errors == 0, error_rows(tmp_path / "s3")
    assert summary.items_written == 3
    assert summary.unmatched == 0  # the GeoPackages are tables, the zips and dsm PNGs not listed
    found = items(tmp_path / "s3" / "ofo-stac")
    assert sorted(found) == [m.id for m in MISSIONS]
    for mission in MISSIONS:
        item = found[mission.id]
        assert set(item["assets"]) == ASSET_KEYS, mission.id
        props = item["properties"]
        when = dt.datetime.fromisoformat(mission.when).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert props["datetime"] == when
        assert props["sensor_name"] == mission.sensor
        assert props["flight_planner_name"] == mission.planner
        ortho = item["assets"]["orthomosaic"]
        key = f"drone/missions_03/{mission.id}/photogrammetry_{mission.nn}/full/"
        assert ortho["href"] == f"{SWIFT}/{key}{mission.id}_{mission.ortho}.tif"
        thumb = item["assets"]["thumbnail"]
        png = (
            f"{mission.id}/photogrammetry_{mission.nn}/thumbnails/{mission.id}_{mission.ortho}.png"
        )
        assert thumb["href"] == f"{SWIFT}/drone/missions_03/{png}"
        assert thumb["type"] == "image/png" and thumb["roles"] == ["thumbnail"]
        assert thumb["file:size"] == (tree / png).stat().st_size
        assert not any(k.startswith("proj:") for k in thumb)
        points = item["assets"]["points"]
        assert points["href"].endswith(f"/{mission.id}_points.copc.laz")
    # The existing PNGs are the thumbnails: none is drawn beside the items.
    assert not list((tmp_path / "s3" / "ofo-stac").rglob("*.png"))
    # Each mission's GeoPackage was fetched once, by one small GET.
    assert sorted(gpkg_gets(proxy, bucket)) == sorted(
        f"/{bucket}/{PREFIX}{m.id}/metadata-mission/{m.id}_mission-metadata.gpkg" for m in MISSIONS
    )
    assert validate_catalog(tmp_path / "s3" / "ofo-stac", packaged_schemas()) > 3

    # The same files in a folder make the same items, geometries and properties.
    local = local_config(tmp_path / "local", tree)
    from_folder = rescan(local)
    assert from_folder.errors == 0 and from_folder.items_written == 3
    folder_items = items(tmp_path / "local" / "ofo-stac")
    for iid, item in found.items():
        assert without_hrefs(item) == without_hrefs(folder_items[iid]), iid
    assert validate_catalog(tmp_path / "local" / "ofo-stac", schema_root) > 3


def test_an_edited_mission_gpkg_rerenders_that_item_only(
    s3_server, proxy, demo, testdata, tmp_path
):
    bucket = new_bucket(s3_server)
    tree = make_ofo_tree(tmp_path / "tree", demo, testdata)
    upload_tree(s3_server, bucket, tree)
    folder = tmp_path / "s3"
    config = s3_config(folder, proxy.url, bucket)
    rescan(config)
    out = folder / "ofo-stac"
    before = {iid: json.dumps(item, sort_keys=True) for iid, item in items(out).items()}

    edited = MISSIONS[1]
    meta = f"{edited.id}/metadata-mission/{edited.id}_mission-metadata.gpkg"
    write_mission_gpkg(tree / meta, edited, sensor="Zenmuse P1")
    store_for(s3_server, bucket).client.put_object(
        Bucket=bucket, Key=PREFIX + meta, Body=(tree / meta).read_bytes(), ACL="public-read"
    )
    proxy.seen.clear()
    summary = rescan(config)

    assert summary.items_written == 1 and summary.errors == 0
    assert gpkg_gets(proxy, bucket) == [f"/{bucket}/{PREFIX}{meta}"]
    after = items(out)
    assert after[edited.id]["properties"]["sensor_name"] == "Zenmuse P1"
    for iid, item in after.items():
        if iid != edited.id:
            assert json.dumps(item, sort_keys=True) == before[iid], iid

    proxy.seen.clear()
    quiet = rescan(config)
    assert quiet.items_written == 0 and quiet.unchanged > 0
    assert gpkg_gets(proxy, bucket) == []  # a pass with no change fetches no GeoPackage
    assert not [s for s in proxy.seen if s.method == "GET" and not s.is_list]


def test_a_mission_without_its_gpkg_is_in_error_and_the_others_publish(
    s3_server, proxy, demo, testdata, tmp_path
):
    bucket = new_bucket(s3_server)
    tree = make_ofo_tree(tmp_path / "tree", demo, testdata)
    missing = MISSIONS[2]
    meta = f"{missing.id}/metadata-mission/{missing.id}_mission-metadata.gpkg"
    kept = tmp_path / "kept.gpkg"
    shutil.move(tree / meta, kept)
    upload_tree(s3_server, bucket, tree)
    folder = tmp_path / "s3"
    config = s3_config(folder, proxy.url, bucket)

    summary = rescan(config)

    assert summary.items_written == 2
    assert sorted(items(folder / "ofo-stac")) == [MISSIONS[0].id, MISSIONS[1].id]
    errors = error_rows(folder)
    assert errors and all(p.startswith(f"{missing.id}/") for p in errors)
    assert len(errors) == len(ASSET_KEYS)  # every file of the mission, the PNG too
    for path, error in errors.items():
        assert f"metadata file {meta} not found" in error, (path, error)

    # The GeoPackage arrives: the mission's files are placed and read, and it publishes.
    store_for(s3_server, bucket).client.put_object(
        Bucket=bucket, Key=PREFIX + meta, Body=kept.read_bytes(), ACL="public-read"
    )
    later = rescan(config)
    assert later.items_written == 1 and later.errors == 0
    item = items(folder / "ofo-stac")[missing.id]
    assert item["properties"]["sensor_name"] == missing.sensor
    assert set(item["assets"]) == ASSET_KEYS
    assert validate_catalog(folder / "ofo-stac", packaged_schemas()) > 3


def test_a_local_folder_reads_item_files_in_place_and_only_when_they_change(
    demo, testdata, tmp_path, monkeypatch
):
    import stacsync.catalog.layout

    read: list[str] = []
    real_read = stacsync.catalog.layout._read_gpkg

    def counting_read(path, layer):
        read.append(Path(path).name)
        return real_read(path, layer)

    monkeypatch.setattr(stacsync.catalog.layout, "_read_gpkg", counting_read)
    tree = make_ofo_tree(tmp_path / "tree", demo, testdata)
    age(tree)
    config = local_config(tmp_path / "local", tree)
    first = rescan(config)
    assert first.items_written == 3 and first.errors == 0
    assert sorted(read) == sorted(f"{m.id}_mission-metadata.gpkg" for m in MISSIONS)
    # Read in place: nothing copied beside the manifest but the record of what was read.
    cache = tmp_path / "local" / "stacsync.db.tables"
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["item-tables.json"]
    out = tmp_path / "local" / "ofo-stac"
    before = {iid: json.dumps(item, sort_keys=True) for iid, item in items(out).items()}

    edited = MISSIONS[0]
    write_mission_gpkg(
        tree / edited.id / "metadata-mission" / f"{edited.id}_mission-metadata.gpkg",
        edited,
        sensor="Zenmuse P1",
    )
    read.clear()
    second = rescan(config)
    assert second.items_written == 1
    assert read == [f"{edited.id}_mission-metadata.gpkg"]
    after = items(out)
    assert after[edited.id]["properties"]["sensor_name"] == "Zenmuse P1"
    assert all(json.dumps(after[i], sort_keys=True) == before[i] for i in before if i != edited.id)

    read.clear()
    third = rescan(config)
    assert third.items_written == 0 and read == []


def test_an_item_of_only_a_png_is_not_published(demo, testdata, tmp_path):
    tree = make_ofo_tree(tmp_path / "tree", demo, testdata)
    alone = MISSIONS[2]
    shutil.rmtree(tree / alone.id / f"photogrammetry_{alone.nn}" / "full")
    age(tree)
    summary = rescan(local_config(tmp_path / "local", tree))
    # It has no place to be drawn at: a render error (logged, retried each pass), not an item.
    assert summary.render_errors == 1 and summary.errors == 0
    assert sorted(items(tmp_path / "local" / "ofo-stac")) == [MISSIONS[0].id, MISSIONS[1].id]


def test_per_item_tables_the_listing_leaves_out_are_refused(demo, testdata, tmp_path):
    tree = make_ofo_tree(tmp_path / "tree", demo, testdata)
    config = local_config(tmp_path / "local", tree)
    text = config.read_text().replace(', "*/metadata-mission/*_mission-metadata.gpkg"', "")
    config.write_text(text)
    # Their changes would never be seen: the pass says so instead of going stale.
    with pytest.raises(ConfigError, match=r"collection\[0\]\.table\.path: source.include"):
        rescan(config)
    assert not (tmp_path / "local" / "ofo-stac" / "catalog.json").exists()


def test_a_gpkg_that_cannot_be_fetched_is_tried_again(s3_server, proxy, demo, testdata, tmp_path):
    bucket = new_bucket(s3_server)
    upload_tree(s3_server, bucket, make_ofo_tree(tmp_path / "tree", demo, testdata))
    folder = tmp_path / "s3"
    config = s3_config(folder, proxy.url, bucket)
    denied = MISSIONS[0]
    meta = f"{denied.id}/metadata-mission/{denied.id}_mission-metadata.gpkg"
    proxy.rule = lambda seen: 403 if seen.method == "GET" and seen.path.endswith(meta) else None

    summary = rescan(config)

    assert summary.items_written == 2
    assert any(
        p.startswith(f"{meta}: cannot fetch the metadata table") for p in summary.listing_problems
    )
    errors = error_rows(folder)
    assert len(errors) == len(ASSET_KEYS)
    assert all("not fetched" in e and meta in e for e in errors.values())

    proxy.rule = lambda seen: None
    later = rescan(config)
    assert later.items_written == 1 and later.errors == 0 and not later.listing_problems
    assert sorted(items(folder / "ofo-stac")) == [m.id for m in MISSIONS]
