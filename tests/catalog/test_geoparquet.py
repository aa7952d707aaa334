"""Tests for stacsync.catalog.geoparquet: items.parquet round-trips through stac-geoparquet."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from stac_geoparquet.arrow import stac_table_to_items

import stacsync.catalog.geoparquet
from stacsync import rescan
from stacsync.catalog.geoparquet import GeoParquetError, ParquetSummary, write_items_parquet
from stacsync.demo import demo_config_toml, make_demo_tree


@pytest.fixture(scope="module")
def demo_items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The items of a real 3-mission demo catalog, as the renderer writes them."""
    root = tmp_path_factory.mktemp("demo")
    tree = make_demo_tree(root / "data", missions=3, raster_size=32, points=50)
    (root / "stacsync.toml").write_text(demo_config_toml(tree, root / "catalog", root / "m.db"))
    rescan(root / "stacsync.toml")
    paths = sorted((root / "catalog" / "ofo-missions").glob("*/*.json"))
    return [json.loads(p.read_text()) for p in paths]


@pytest.fixture
def varied(demo_items: list[dict]) -> list[dict]:
    """Demo items made to differ the way real ones do, so batches get different schemas."""
    items = copy.deepcopy(demo_items)
    _, second, third = items
    second["properties"]["extra_note"] = "only here"
    second["assets"]["report"] = {"href": "/data/report.pdf", "type": "application/pdf"}
    third["assets"]["orthomosaic"]["proj:code"] = None
    third["assets"]["orthomosaic"]["proj:wkt2"] = 'LOCAL_CS["x"]'
    third["assets"]["chm-mesh"]["bands"][0]["nodata"] = 0  # an int where others have floats
    return items


def _read(source) -> list[dict]:
    return list(stac_table_to_items(pq.read_table(source)))


def _drop_nulls(value, original):
    """Arrow structs give every row every field; drop the nulls the original did not have."""
    if isinstance(value, dict) and isinstance(original, dict):
        return {
            k: _drop_nulls(v, original.get(k))
            for k, v in value.items()
            if v is not None or (k in original and original[k] is None)
        }
    if isinstance(value, list) and isinstance(original, list):
        return [_drop_nulls(v, o) for v, o in zip(value, original, strict=True)]
    return value


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_same_items(back: list[dict], items: list[dict]) -> None:
    assert [b["id"] for b in back] == [i["id"] for i in items]
    for got, want in zip(back, items, strict=True):
        assert got["collection"] == want["collection"]
        assert got["geometry"] == want["geometry"]
        assert got["bbox"] == want["bbox"]
        props = _drop_nulls(got["properties"], want["properties"])
        # stac-geoparquet stores datetimes as timestamps: same instant, its own spelling.
        assert _when(props.pop("datetime")) == _when(want["properties"]["datetime"])
        assert props == {k: v for k, v in want["properties"].items() if k != "datetime"}
        assert _drop_nulls(got["assets"], want["assets"]) == want["assets"]
        assert got["links"] == want["links"]
        assert got["stac_extensions"] == want["stac_extensions"]


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_round_trip_to_the_same_items(varied: list[dict], tmp_path: Path, batch_size: int) -> None:
    target = tmp_path / "items.parquet"
    summary = write_items_parquet(iter(varied), target, batch_size=batch_size)
    assert summary == ParquetSummary(
        items=3, batches=-(-3 // batch_size), size=target.stat().st_size
    )
    _assert_same_items(_read(target), varied)


def test_file_has_geoparquet_and_stac_geoparquet_metadata(
    demo_items: list[dict], tmp_path: Path
) -> None:
    target = tmp_path / "items.parquet"
    write_items_parquet(demo_items, target)
    metadata = pq.read_schema(target).metadata
    geo = json.loads(metadata[b"geo"])
    assert geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["encoding"] == "WKB"
    assert geo["version"].startswith("1.")
    assert json.loads(metadata[b"stac-geoparquet"])["version"]
    names = pq.read_schema(target).names
    assert {"id", "geometry", "bbox", "datetime", "assets", "gsd"} <= set(names)  # flat props


def test_empty_catalog_gives_a_valid_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "items.parquet"
    summary = write_items_parquet([], target)
    assert (summary.items, summary.batches) == (0, 0)
    table = pq.read_table(target)
    assert table.num_rows == 0
    assert {"id", "geometry", "bbox", "datetime"} <= set(table.schema.names)
    assert b"geo" in table.schema.metadata
    assert list(stac_table_to_items(table)) == []


def test_writes_json_lines_through_a_binary_writer(demo_items: list[dict], tmp_path: Path) -> None:
    out = io.BytesIO()
    lines = (json.dumps(item, separators=(",", ":")) for item in demo_items)  # as in the index
    summary = write_items_parquet(lines, out, work_dir=tmp_path)
    assert summary.size == len(out.getvalue())
    _assert_same_items(_read(io.BytesIO(out.getvalue())), demo_items)
    assert list(tmp_path.iterdir()) == []  # the work folder is cleaned up


def test_holds_one_batch_at_a_time(
    demo_items: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pulled = 0
    seen: list[tuple[int, int]] = []  # (batch length, items pulled from the source so far)
    real = stacsync.catalog.geoparquet._to_arrow

    def to_arrow(batch):
        seen.append((len(batch), pulled))
        return real(batch)

    def source():
        nonlocal pulled
        for item in demo_items * 3:
            pulled += 1
            yield item

    monkeypatch.setattr(stacsync.catalog.geoparquet, "_to_arrow", to_arrow)
    write_items_parquet(source(), tmp_path / "items.parquet", batch_size=2)
    assert seen == [(2, 2), (2, 4), (2, 6), (2, 8), (1, 9)]


def test_clashing_types_fail_clearly_and_keep_the_old_file(
    demo_items: list[dict], tmp_path: Path
) -> None:
    target = tmp_path / "items.parquet"
    target.write_bytes(b"old")
    clash = copy.deepcopy(demo_items[1])
    clash["assets"]["chm-mesh"]["bands"][0]["nodata"] = "nan"  # a string where others have numbers
    for items, batch_size in (([demo_items[0], clash], 1), ([demo_items[0], clash], 10)):
        with pytest.raises(GeoParquetError, match=r"nodata|'nan'"):
            write_items_parquet(items, target, batch_size=batch_size)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.parquet"]


def test_rejects_a_bad_batch_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_items_parquet([], tmp_path / "x.parquet", batch_size=0)


def test_missing_library_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stac_geoparquet.arrow", None)  # import fails
    with pytest.raises(GeoParquetError, match="needs the stac-geoparquet package"):
        write_items_parquet([], tmp_path / "items.parquet")
    assert list(tmp_path.iterdir()) == []
