"""The renderer's items.parquet: written with the index, round-trips, fails without harm.

Real demo trees and real passes; stac-geoparquet reads the file back.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from helpers import Recorder, catalog_bytes, validate_catalog
from stac_geoparquet.arrow import stac_table_to_items

from stacsync.catalog.geoparquet import PARQUET_PATH
from stacsync.config.load import load_settings
from stacsync.core.errors import ConfigError
from stacsync.demo import DemoTree, demo_config_toml, make_demo_tree
from stacsync.pipeline.sync import rescan

COLLECTION = "ofo-missions"


def _age(path: Path, seconds: float = 60) -> None:
    """Make files older than the racy-mtime window, as files on a store usually are."""
    for file in [path] if path.is_file() else path.rglob("*"):
        if file.is_file():
            st = file.stat()
            os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def _write_config(root: Path, tree: DemoTree, geoparquet: bool | None, name: str) -> Path:
    text = demo_config_toml(tree, root / name, root / f"{name}.db")
    if geoparquet is not None:
        value = "true" if geoparquet else "false"
        text = text.replace("\n[manifest]", f"geoparquet = {value}\n\n[manifest]", 1)
    config = root / f"{name}.toml"
    config.write_text(text)
    return config


@pytest.fixture
def tree(tmp_path: Path) -> DemoTree:
    tree = make_demo_tree(tmp_path / "data", missions=3, raster_size=32, points=50)
    _age(tree.root)
    return tree


@pytest.fixture
def config(tmp_path: Path, tree: DemoTree) -> Path:
    """A 3-mission demo tree with `output.geoparquet = true`."""
    return _write_config(tmp_path, tree, geoparquet=True, name="catalog")


def _set_geoparquet(config: Path, value: bool) -> None:
    text = re.sub(r"geoparquet = \w+", f"geoparquet = {str(value).lower()}", config.read_text())
    config.write_text(text)


def _item_files(config: Path) -> list[dict]:
    folder = config.parent / "catalog" / COLLECTION
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]


def _read_parquet(config: Path) -> list[dict]:
    return list(stac_table_to_items(pq.read_table(config.parent / "catalog" / PARQUET_PATH)))


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_written_with_the_index_and_round_trips(
    config: Path, schema_root: Path, monkeypatch
) -> None:
    rec = Recorder(monkeypatch, config.parent / "data")
    summary = rescan(config)
    assert summary.index_written and summary.errors == 0
    assert rec.written[PARQUET_PATH] == 1
    items = _item_files(config)
    back = _read_parquet(config)
    assert [b["id"] for b in back] == [i["id"] for i in items]
    for original, read in zip(items, back, strict=True):
        assert read["collection"] == COLLECTION
        # stac-geoparquet writes datetimes with microseconds: compare the instants.
        assert _instant(read["properties"]["datetime"]) == _instant(
            original["properties"]["datetime"]
        )
        assert read["bbox"] == pytest.approx(original["bbox"])
        assert sorted(read["assets"]) == sorted(original["assets"])
        # The item as written, links included, not the index's form of it.
        assert {link["rel"] for link in read["links"]} == {
            link["rel"] for link in original["links"]
        }
    validate_catalog(config.parent / "catalog", schema_root)


def test_same_trigger_as_the_index(config: Path, monkeypatch) -> None:
    rescan(config)
    parquet = config.parent / "catalog" / PARQUET_PATH
    rec = Recorder(monkeypatch, config.parent / "data")

    rescan(config)  # nothing changed: neither is rewritten
    assert not rec.written

    target = next((config.parent / "data").rglob("chm-mesh.tif"))
    with rasterio.open(target) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data + np.float32(1) * (data != profile["nodata"]))  # taller trees
    _age(target, 30)
    rec.reset()
    summary = rescan(config)
    assert summary.items_written == 1 and summary.index_written
    assert rec.written[PARQUET_PATH] == 1

    parquet.unlink()  # missing: written again, though no item changed
    rec.reset()
    summary = rescan(config)
    assert not summary.index_written
    assert rec.written[PARQUET_PATH] == 1
    assert [b["id"] for b in _read_parquet(config)] == [i["id"] for i in _item_files(config)]


def test_not_written_when_disabled_and_removed_when_switched_off(
    tmp_path: Path, tree: DemoTree
) -> None:
    config = _write_config(tmp_path, tree, geoparquet=None, name="catalog")  # the default
    assert load_settings(config).geoparquet is False
    rescan(config)
    parquet = tmp_path / "catalog" / PARQUET_PATH
    assert (tmp_path / "catalog" / "index.geojson").exists() and not parquet.exists()

    text = config.read_text().replace("\n[manifest]", "geoparquet = true\n\n[manifest]", 1)
    config.write_text(text)
    rescan(config)  # switched on: the file is missing, so it is written
    assert parquet.exists()

    _set_geoparquet(config, False)
    rescan(config)  # switched off: the file it wrote would go stale, so it goes
    assert not parquet.exists()
    assert (tmp_path / "catalog" / "index.geojson").exists()


def test_a_type_clash_keeps_the_old_file_and_the_pass_goes_on(
    config: Path, schema_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rescan(config)
    parquet = config.parent / "catalog" / PARQUET_PATH
    old = parquet.read_bytes()

    # NaN nodata renders as the string "nan"; the other items' nodata are numbers.
    target = sorted((config.parent / "data").rglob("chm-mesh.tif"))[1]
    with rasterio.open(target) as src:
        profile, data = src.profile, src.read()
    data[data == profile["nodata"]] = np.nan
    with rasterio.open(target, "w", **{**profile, "nodata": float("nan")}) as dst:
        dst.write(data)
    _age(target, 30)

    with caplog.at_level(logging.WARNING, logger="stacsync.catalog.render"):
        summary = rescan(config)
    assert summary.modified == 1 and summary.items_written == 1 and summary.errors == 0
    assert summary.index_written and summary.render_errors == 0
    item = next(i for i in _item_files(config) if i["id"] == target.parts[-4])
    assert item["assets"]["chm-mesh"]["bands"][0]["nodata"] == "nan"
    assert parquet.read_bytes() == old
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(PARQUET_PATH in r.getMessage() and "kept" in r.getMessage() for r in warnings)
    assert not list(parquet.parent.glob(".stacsync-tmp-*"))
    validate_catalog(config.parent / "catalog", schema_root)


def test_two_builds_are_byte_identical(tmp_path: Path, tree: DemoTree) -> None:
    for name in ("a", "b"):
        rescan(_write_config(tmp_path, tree, geoparquet=True, name=name))
    a, b = catalog_bytes(tmp_path / "a"), catalog_bytes(tmp_path / "b")
    assert PARQUET_PATH in a
    assert a == b


def test_missing_package_is_a_config_error(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stac_geoparquet", None)  # as if not installed
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert str(err.value).startswith("output.geoparquet: ")
    assert "pip install 'stacsync[parquet]'" in str(err.value)
    _set_geoparquet(config, False)
    assert load_settings(config).geoparquet is False  # off: the package is not needed


def test_geoparquet_must_be_a_bool(config: Path) -> None:
    config.write_text(config.read_text().replace("geoparquet = true", 'geoparquet = "yes"'))
    with pytest.raises(ConfigError, match=r"output\.geoparquet: must be true or false"):
        load_settings(config)


def test_parquet_of_the_real_test_files_round_trips(copy_testdata, tmp_path: Path) -> None:
    import dataclasses

    from helpers import GOOD

    from stacsync.config.load import quick_settings
    from stacsync.manifest.db import Manifest
    from stacsync.pipeline.sync import SyncPass

    src = copy_testdata(*GOOD, dest=tmp_path / "drone")
    _age(src)
    settings = quick_settings(src, tmp_path / "catalog", tmp_path / "db.sqlite")
    settings = dataclasses.replace(settings, geoparquet=True)
    with Manifest.open_writer(settings.manifest_path) as db:
        summary = SyncPass(settings, db).run()
    assert summary.errors == 0
    table = pq.read_table(tmp_path / "catalog" / PARQUET_PATH)
    items = {item["id"]: item for item in stac_table_to_items(table)}
    written = sorted((tmp_path / "catalog").glob("*/*/*.json"))
    assert sorted(items) == sorted(p.stem for p in written)
    for path in written:
        item = json.loads(path.read_text())
        assert items[item["id"]]["bbox"] == pytest.approx(item["bbox"])
        assert sorted(items[item["id"]]["assets"]) == sorted(item["assets"])
