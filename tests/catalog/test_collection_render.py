"""Collections that describe themselves: summaries, item_assets, license link, description.

Expected values are worked out from the item files, never written down by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pystac
import pytest
import rasterio
from helpers import Recorder, validate_catalog

from stacsync.catalog.collections import CollectionInput, render_collection
from stacsync.catalog.links import Links, collection_path
from stacsync.catalog.summaries import ItemsSummary, summarise_items
from stacsync.check.schemas import SchemaValidator
from stacsync.config.collection_keys import DEFAULT_ASSET_TITLES
from stacsync.config.load import load_settings, quick_settings
from stacsync.config.templates import DESCRIPTION_FIELDS, check_description
from stacsync.core.errors import ConfigError
from stacsync.demo import demo_config_toml, make_demo_tree
from stacsync.pipeline.sync import rescan

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
LAZ = "application/vnd.laszip"
COPC = "application/vnd.laszip+copc"
COLLECTION = "ofo-missions"


@pytest.fixture(scope="module")
def validator(schema_root: Path) -> SchemaValidator:
    return SchemaValidator(schema_root)


# --------------------------------------------------------------------------- factories


def raster_asset(**kw: Any) -> dict[str, Any]:
    asset = {
        "href": "/data/x.tif",
        "type": COG,
        "title": "Orthomosaic",
        "roles": ["data"],
        "proj:code": "EPSG:32610",
        "bands": [
            {"name": "b1", "data_type": "uint8", "nodata": 0, "eo:common_name": "red"},
            {"name": "b2", "data_type": "uint8", "nodata": 0, "eo:common_name": "green"},
        ],
    }
    asset.update(kw)
    return asset


def cloud_asset(**kw: Any) -> dict[str, Any]:
    asset = {
        "href": "/data/x.laz",
        "type": LAZ,
        "title": "Point cloud",
        "roles": ["data"],
        "proj:code": "EPSG:32610",
        "pc:count": 1000,
        "pc:type": "lidar",
    }
    asset.update(kw)
    return asset


def item(iid: str, assets: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": iid,
        "properties": {"datetime": "2023-05-25T12:00:00Z", **properties},
        "assets": assets,
    }


def collection_input(**kw: Any) -> CollectionInput:
    fields: dict[str, Any] = {
        "id": "missions",
        "title": "OFO missions",
        "description": "Drone missions",
        "license": "CC-BY-4.0",
        "keywords": ("drone",),
        "providers": ({"name": "OFO", "roles": ["producer"], "url": "https://ofo.example"},),
        "bbox": (-123.0, 36.0, -122.9, 36.1),
        "start": "2019-06-03T10:00:00Z",
        "end": "2024-09-30T15:00:00Z",
        "item_ids": ("a", "b", "c"),
    }
    fields.update(kw)
    return CollectionInput(**fields)


def _mixed_items() -> list[dict[str, Any]]:
    return [
        item(
            "a",
            {"ortho": raster_asset(), "points": cloud_asset(**{"pc:count": 500})},
            gsd=0.05,
            platform="DJI Phantom 4 RTK",
            instruments=["P4RTK camera"],
        ),
        item(
            "b",
            {
                "ortho": raster_asset(
                    **{"proj:code": "EPSG:32611", "roles": ["data", "visual"]},
                    bands=[
                        {
                            "name": "b1",
                            "data_type": "uint8",
                            "nodata": 255,
                            "eo:common_name": "red",
                        },
                        {"name": "b2", "data_type": "uint8", "nodata": 0},
                    ],
                ),
                "points": cloud_asset(
                    **{"pc:count": 90_000, "type": "application/vnd.laszip+copc"}
                ),
            },
            gsd=0.2,
            platform="DJI Mavic 3 Enterprise",
            instruments=["M3E camera", "P4RTK camera"],
        ),
        item(
            "c",
            {"ortho": raster_asset(**{"proj:code": None, "proj:wkt2": "LOCAL_CS[]"})},
            gsd=0.1,
            platform="DJI Phantom 4 RTK",
            datetime="2023-05-25T12:00:00.5Z",  # fractional seconds sort after whole ones
        ),
    ]


# --------------------------------------------------------------------------- summarise_items


def test_summaries_are_sets_and_ranges_of_what_the_items_hold() -> None:
    summary = summarise_items(_mixed_items())
    assert summary.items == 3
    assert summary.summaries == {
        "datetime": {"minimum": "2023-05-25T12:00:00Z", "maximum": "2023-05-25T12:00:00.5Z"},
        "gsd": {"minimum": 0.05, "maximum": 0.2},
        "instruments": ["M3E camera", "P4RTK camera"],
        "pc:count": {"minimum": 500, "maximum": 90_000},
        "pc:type": ["lidar"],
        "platform": ["DJI Mavic 3 Enterprise", "DJI Phantom 4 RTK"],
        "proj:code": ["EPSG:32610", "EPSG:32611"],  # the null of a WKT-only CRS is left out
    }
    assert list(summary.summaries) == sorted(summary.summaries)


def test_item_assets_keep_what_every_asset_of_a_key_shares() -> None:
    shared = summarise_items(_mixed_items()).item_assets
    assert list(shared) == ["ortho", "points"]
    ortho = shared["ortho"]
    assert ortho["type"] == COG
    assert ortho["roles"] == ["data"]  # "visual" only on one of them
    # Band by band: what differs (b1's nodata, b2's common name) is dropped.
    assert ortho["bands"] == [
        {"name": "b1", "data_type": "uint8", "eo:common_name": "red"},
        {"name": "b2", "data_type": "uint8", "nodata": 0},
    ]
    points = shared["points"]
    assert "type" not in points  # LAZ in one item, COPC in the other
    assert points["pc:type"] == "lidar"
    assert "pc:count" not in points and "proj:code" not in points


def test_bands_that_share_nothing_are_dropped() -> None:
    one_band = raster_asset(bands=[{"name": "b1", "data_type": "float32"}])
    shared = summarise_items(
        [item("a", {"dsm": raster_asset()}), item("b", {"dsm": one_band})]
    ).item_assets
    assert "bands" not in shared["dsm"]  # the band counts differ
    other = raster_asset(bands=[{"name": "x1"}, {"name": "x2", "data_type": "int8"}])
    shared = summarise_items(
        [item("a", {"dsm": raster_asset()}), item("b", {"dsm": other})]
    ).item_assets
    assert "bands" not in shared["dsm"]  # same count, but no field in common


def test_junk_values_are_not_summarised() -> None:
    junk = item(
        "a",
        {"x": {"href": "/x", "pc:count": "many", "proj:code": 4326, "roles": "data"}},
        gsd=True,
        platform=["not", "a", "string"],
        datetime="yesterday",
    )
    summary = summarise_items([junk])
    assert summary.summaries == {}
    assert summary.item_assets == {"x": {}}


def test_empty_collection_has_no_summaries(validator: SchemaValidator) -> None:
    summary = summarise_items([])
    assert summary == ItemsSummary(items=0, summaries={}, item_assets={})
    coll = render_collection(
        collection_input(items_summary=summary, item_ids=(), start=None, end=None, bbox=None),
        Links(None),
    )
    assert "summaries" not in coll and "item_assets" not in coll
    assert validator.errors(coll) == []


def test_every_distinct_value_is_summarised(validator: SchemaValidator) -> None:
    platforms = [f"drone {n:02d}" for n in range(40)]  # pystac drops lists of 25+ by default
    items = [item(str(n), {"ortho": raster_asset()}, platform=p) for n, p in enumerate(platforms)]
    coll = render_collection(collection_input(items_summary=summarise_items(items)), Links(None))
    assert coll["summaries"]["platform"] == platforms
    assert validator.errors(coll) == []


def test_summarise_consumes_the_items_once() -> None:
    consumed = []

    def stream():
        for it in _mixed_items():
            consumed.append(it["id"])
            yield it

    summarise_items(stream())
    assert consumed == ["a", "b", "c"]


# --------------------------------------------------------------------------- render_collection


@pytest.mark.parametrize("public", [None, "https://example.org/stac"])
def test_collection_with_summaries_validates(
    public: str | None, validator: SchemaValidator
) -> None:
    coll = render_collection(
        collection_input(
            items_summary=summarise_items(_mixed_items()), asset_titles={"ortho": "Orthomosaic"}
        ),
        Links(public),
    )
    assert validator.errors(coll) == []
    assert SchemaValidator().errors(coll) == []  # the packaged schemas say the same
    assert coll["summaries"]["gsd"] == {"minimum": 0.05, "maximum": 0.2}
    assert coll["item_assets"]["ortho"]["title"] == "Orthomosaic"
    assert coll["item_assets"]["points"]["title"] == "Point cloud"  # what the items say
    # Declared because of summaries (proj:code, pc:*) and band fields in item_assets (eo:).
    assert {url.split("/")[3] for url in coll["stac_extensions"]} == {
        "eo",
        "pointcloud",
        "projection",
    }
    # Written as pystac writes it: read back and serialised again, the same dict, key order too.
    again = pystac.Collection.from_dict(coll).to_dict(transform_hrefs=False)
    assert list(again) == list(coll) and again == coll


def test_item_asset_titles_come_from_config_then_items_then_the_key() -> None:
    assets = {"dtm-ptcloud": raster_asset(title="odd"), "extra_layer": raster_asset(title="x")}
    other = {
        "dtm-ptcloud": raster_asset(title="other"),
        "extra_layer": raster_asset(title="y"),
    }
    summary = summarise_items([item("a", assets), item("b", other)])
    coll = render_collection(
        collection_input(items_summary=summary, asset_titles=DEFAULT_ASSET_TITLES), Links(None)
    )
    titles = {k: v["title"] for k, v in coll["item_assets"].items()}
    assert titles == {
        "dtm-ptcloud": "Digital terrain model (from point cloud)",
        "extra_layer": "Extra layer",
    }


def test_a_key_whose_assets_share_only_a_title_is_left_out(validator: SchemaValidator) -> None:
    a = {"data": {"href": "/a.tif", "type": COG, "roles": ["data"]}}
    b = {"data": {"href": "/b.laz", "type": LAZ, "roles": ["metadata"]}}
    coll = render_collection(
        collection_input(items_summary=summarise_items([item("a", a), item("b", b)])),
        Links(None),
    )
    assert "item_assets" not in coll  # a lone title would break the schema's minProperties
    assert validator.errors(coll) == []


@pytest.mark.parametrize(
    ("license_id", "url", "expected"),
    [
        ("CC-BY-4.0", None, "https://spdx.org/licenses/CC-BY-4.0.html"),
        ("GPL-2.0+", None, "https://spdx.org/licenses/GPL-2.0+.html"),
        ("CC-BY-4.0", "https://example.org/terms", "https://example.org/terms"),
        ("other", "https://example.org/terms", "https://example.org/terms"),
        ("other", None, None),
        ("proprietary", None, None),
        ("MIT OR Apache-2.0", None, None),  # an expression: no single page
        ("LicenseRef-ofo-data", None, None),  # a private id: not on spdx.org
    ],
)
def test_license_link(license_id: str, url: str | None, expected: str | None) -> None:
    coll = render_collection(
        collection_input(license=license_id, license_url=url), Links("https://x.org/stac")
    )
    found = [link for link in coll["links"] if link["rel"] == "license"]
    if expected is None:
        assert found == []
    else:
        assert [link["href"] for link in found] == [expected]
        assert ("type" in found[0]) == (url is None)  # a configured URL's content is unknown


def test_description_template() -> None:
    text = "{items} missions, {start} to {end:%B %Y}; {title} ({id}); {{literal}}"
    coll = render_collection(collection_input(description=text), Links(None))
    assert coll["description"] == (
        "3 missions, 2019-06-03 to September 2024; OFO missions (missions); {literal}"
    )
    empty = render_collection(
        collection_input(description=text, item_ids=(), start=None, end=None), Links(None)
    )
    assert empty["description"].startswith("0 missions, unknown to unknown;")


def test_description_with_an_unknown_placeholder_is_kept_as_written() -> None:
    coll = render_collection(collection_input(description="Plot {A} and {"), Links(None))
    assert coll["description"] == "Plot {A} and {"


def test_description_placeholders_match_the_config_check() -> None:
    filled = render_collection(
        collection_input(description=" ".join(f"<{{{f}}}>" for f in DESCRIPTION_FIELDS)),
        Links(None),
    )["description"]
    assert "{" not in filled and "<>" not in filled


def test_extra_summaries_join_computed_ones() -> None:
    summary = summarise_items(_mixed_items())
    coll = render_collection(
        collection_input(
            items_summary=summary, extra_fields={"summaries": {"constellation": ["ofo"]}}
        ),
        Links(None),
    )
    assert coll["summaries"]["constellation"] == ["ofo"]
    assert coll["summaries"]["gsd"] == {"minimum": 0.05, "maximum": 0.2}
    # Sorted by name within pystac's groups: lists of values first, then ranges.
    lists = sorted(k for k, v in coll["summaries"].items() if isinstance(v, list))
    assert list(coll["summaries"]) == lists + sorted(set(coll["summaries"]) - set(lists))
    with pytest.raises(ValueError, match="gsd"):
        render_collection(
            collection_input(items_summary=summary, extra_fields={"summaries": {"gsd": [1]}}),
            Links(None),
        )


def test_a_collection_cannot_be_named_like_the_parquet_file() -> None:
    import stacsync.catalog.geoparquet

    with pytest.raises(ValueError, match="collide"):
        collection_path(stacsync.catalog.geoparquet.PARQUET_PATH)


# --------------------------------------------------------------------------- config


def _config(tmp_path: Path, collection_extra: str, title: str = "Missions") -> Path:
    path = tmp_path / "stacsync.toml"
    path.write_text(
        f"""
[source]
path = "data"
[output]
path = "out"
[[collection]]
id = "missions"
title = {json.dumps(title)}
match = '^(?P<item>.+)$'
{collection_extra}
"""
    )
    return path


@pytest.mark.parametrize(
    ("description", "problem"),
    [
        ("{item} missions", "unknown placeholder {item}"),
        ("{start.year}", "unknown placeholder {start.year}"),
        ("{0} missions", "unknown placeholder {0}"),
        ("a } b", "Single '}'"),
        ("{items:%Y}", "cannot be filled in"),
    ],
)
def test_bad_description_templates_name_the_key(
    tmp_path: Path, description: str, problem: str
) -> None:
    path = _config(tmp_path, f"description = {json.dumps(description)}")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith("collection[0].description: ")
    assert problem in str(err.value)


def test_good_description_template_and_license_url(tmp_path: Path) -> None:
    text = "{items:,} flights, {start:%Y}–{end:%Y}. {{JSON}} braces."
    check_description(text)
    path = _config(
        tmp_path,
        f'description = {json.dumps(text)}\nlicense = "other"\n'
        'license_url = "https://example.org/terms/"',
    )
    collection = load_settings(path).collections[0]
    assert collection.description == text
    assert collection.license_url == "https://example.org/terms"


def test_a_title_standing_in_for_the_description_is_not_a_template(tmp_path: Path) -> None:
    collection = load_settings(_config(tmp_path, "", title="Plot {A}")).collections[0]
    coll = render_collection(
        collection_input(description=collection.description, title=collection.title),
        Links(None),
    )
    assert coll["description"] == "Plot {A}"
    quick = quick_settings(tmp_path / "a{items}b", tmp_path / "out", tmp_path / "m.db")
    coll = render_collection(
        collection_input(description=quick.collections[0].description), Links(None)
    )
    assert coll["description"] == f"Files under {tmp_path / 'a{items}b'}"


def test_license_url_must_be_a_web_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"collection\[0\]\.license_url: must start with http"):
        load_settings(_config(tmp_path, 'license_url = "terms.txt"'))


# --------------------------------------------------------------------------- a demo build


def _age(root: Path, seconds: float = 60) -> None:
    """Make files older than the racy-mtime window, as files on a store usually are."""
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


DESCRIPTION = "{items} drone missions flown from {start} to {end}."


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A 3-mission demo tree and its config (with a description template); returns the config."""
    tree = make_demo_tree(tmp_path / "data", missions=3, raster_size=32, points=50)
    _age(tree.root)
    text = demo_config_toml(tree, tmp_path / "catalog", tmp_path / "m.db")
    old = (
        'description = "Orthomosaics, surface models and point clouds, one item per drone mission."'
    )
    assert old in text
    text = text.replace(old, f"description = {json.dumps(DESCRIPTION)}")
    config = tmp_path / "stacsync.toml"
    config.write_text(text)
    return config


def _catalog(config: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    folder = config.parent / "catalog" / COLLECTION
    collection = json.loads((folder / "collection.json").read_text())
    items = [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]
    return collection, items


def _expected_summaries(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What the summaries must say, worked out from the item files the plain way."""
    assets = [a for it in items for a in it["assets"].values()]
    gsds = [it["properties"]["gsd"] for it in items if "gsd" in it["properties"]]
    counts = [a["pc:count"] for a in assets if "pc:count" in a]
    dates = sorted(it["properties"]["datetime"] for it in items)
    return {
        "datetime": {"minimum": dates[0], "maximum": dates[-1]},
        "gsd": {"minimum": min(gsds), "maximum": max(gsds)},
        "mission": sorted({it["properties"]["mission"] for it in items}),
        "pc:count": {"minimum": min(counts), "maximum": max(counts)},
        "pc:type": sorted({a["pc:type"] for a in assets if "pc:type" in a}),
        "platform": sorted({it["properties"]["platform"] for it in items}),
        "proj:code": sorted({a["proj:code"] for a in assets if a.get("proj:code")}),
    }


def _check_item_assets(collection: dict[str, Any], items: list[dict[str, Any]]) -> None:
    keys = sorted({k for it in items for k in it["assets"]})
    assert list(collection["item_assets"]) == keys
    for key in keys:
        seen = [it["assets"][key] for it in items if key in it["assets"]]
        entry = collection["item_assets"][key]
        # Data assets take the configured titles; the thumbnail its own ("Thumbnail").
        assert entry["title"] == DEFAULT_ASSET_TITLES.get(key, seen[0]["title"])
        types = {a["type"] for a in seen}
        assert entry.get("type") == (types.pop() if len(types) == 1 else None)
        roles = set.intersection(*(set(a["roles"]) for a in seen))
        assert entry["roles"] == sorted(roles)
        bands = [a.get("bands") for a in seen]
        if all(b == bands[0] for b in bands) and bands[0]:
            assert entry["bands"] == bands[0]
        for asset in seen:
            # Nothing in an entry contradicts an asset it describes.
            for name, value in entry.items():
                if name not in ("title", "roles", "bands"):
                    assert asset[name] == value, (key, name)


def test_demo_collection_describes_its_items(demo: Path, schema_root: Path) -> None:
    summary = rescan(demo)
    assert summary.errors == 0 and summary.items_written == 3
    collection, items = _catalog(demo)
    assert collection["summaries"] == _expected_summaries(items)
    _check_item_assets(collection, items)
    assert collection["item_assets"]["points"]["pc:type"] == "lidar"
    license_links = [link for link in collection["links"] if link["rel"] == "license"]
    assert license_links == [
        {
            "rel": "license",
            "href": "https://spdx.org/licenses/CC-BY-4.0.html",
            "type": "text/html",
            "title": "License: CC-BY-4.0",
        }
    ]
    assert collection["providers"] == [
        {
            "name": "Open Forest Observatory",
            "roles": ["producer", "licensor"],
            "url": "https://openforestobservatory.org",
        }
    ]
    start, end = collection["extent"]["temporal"]["interval"][0]
    assert collection["description"] == (f"3 drone missions flown from {start[:10]} to {end[:10]}.")
    validate_catalog(demo.parent / "catalog", schema_root)


def test_summaries_come_from_stored_digests_as_from_the_items(demo: Path) -> None:
    import sqlite3

    from stacsync.catalog.summaries import summarise_items, summary_digest

    rescan(demo)
    _collection, items = _catalog(demo)
    digests = [summary_digest(item) for item in items]
    assert summarise_items(digests) == summarise_items(items)
    assert all("geometry" not in d and "href" not in str(d) for d in digests)

    # Items rendered before digests were stored (schema 4) are digested from their JSON.
    with sqlite3.connect(demo.parent / "m.db") as conn:
        conn.execute("UPDATE item SET digest = NULL")
    path = demo.parent / "catalog" / "ofo-missions" / "collection.json"
    before = path.read_bytes()
    path.unlink()
    rescan(demo)
    assert path.read_bytes() == before


def test_a_finer_raster_widens_the_gsd_range(
    demo: Path, schema_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rescan(demo)
    before, items = _catalog(demo)
    finest = min(it["properties"]["gsd"] for it in items)
    target = next((demo.parent / "data" / "missions").glob("*/processed_01/full/orthomosaic.tif"))
    with rasterio.open(target) as src:
        profile, data = src.profile, src.read()
    pixel = round(finest / 4, 4)
    t = profile["transform"]
    profile["transform"] = rasterio.Affine(pixel, 0, t.c, 0, -pixel, t.f)
    for key in ("blockxsize", "blockysize"):
        profile.pop(key, None)
    with rasterio.open(target, "w", **{**profile, "tiled": False}) as dst:
        dst.write(data)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns - 30 * 10**9))

    rec = Recorder(monkeypatch, demo.parent / "data")
    summary = rescan(demo)
    assert summary.modified == 1 and summary.items_written == 1
    assert rec.written[f"{COLLECTION}/collection.json"] == 1
    after, items = _catalog(demo)
    assert after["summaries"]["gsd"]["minimum"] == pytest.approx(pixel)
    assert after["summaries"] == _expected_summaries(items)
    assert after["summaries"]["gsd"] != before["summaries"]["gsd"]
    _check_item_assets(after, items)  # the rewritten file may no longer be a COG
    validate_catalog(demo.parent / "catalog", schema_root)


def test_summaries_are_recomputed_only_when_an_item_digest_changes(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stacsync.catalog.summaries

    rescan(demo)
    before = (demo.parent / "catalog" / COLLECTION / "collection.json").read_bytes()
    calls: list[int] = []
    real = stacsync.catalog.summaries.summarise_items
    monkeypatch.setattr(
        stacsync.catalog.summaries,
        "summarise_items",
        lambda items: calls.append(1) or real(items),
    )
    # One byte of pixel data, same header: the checksum changes, the summary facts do not.
    target = next((demo.parent / "data" / "missions").glob("*/processed_01/full/dsm-mesh.tif"))
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # the last tile's last byte
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns - 30 * 10**9))
    summary = rescan(demo)
    assert summary.modified == 1 and summary.items_written == 1
    assert calls == []  # the cached summaries served the collection
    assert (demo.parent / "catalog" / COLLECTION / "collection.json").read_bytes() == before

    # An item that goes away changes them: recomputed.
    for path in target.parent.iterdir():
        path.unlink()
    summary = rescan(demo)
    assert summary.removed >= 1 and calls == [1]


def test_an_unchanged_pass_does_not_rewrite_the_collection(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rescan(demo)
    rec = Recorder(monkeypatch, demo.parent / "data")
    rescan(demo)
    assert not rec.written


def test_a_pass_with_nothing_to_render_never_loads_pystac(demo: Path) -> None:
    import subprocess
    import sys

    rescan(demo)
    code = (
        "import sys\n"
        "from stacsync.pipeline.sync import rescan\n"
        f"summary = rescan({str(demo)!r})\n"
        "print(summary.items_written, 'pystac' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False"]  # its import is start-up time of every pass


def test_a_new_item_format_renders_every_item_once(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stacsync.catalog.items
    import stacsync.pipeline.sync

    rescan(demo)
    rendered: list[str] = []
    real = stacsync.catalog.items.render_item
    monkeypatch.setattr(
        stacsync.catalog.items,
        "render_item",
        lambda item, links: rendered.append(item.item_id) or real(item, links),
    )
    monkeypatch.setattr(stacsync.pipeline.sync, "ITEM_FORMAT", -1)  # as after an upgrade
    summary = rescan(demo)
    assert len(rendered) == 3  # every item once...
    assert summary.items_written == 0  # ...and the same bytes: nothing rewritten
    rendered.clear()
    assert rescan(demo).items_written == 0 and rendered == []  # then back to doing nothing
