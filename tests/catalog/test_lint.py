"""Every catalog stacsync writes is lint-clean: stac-check's best practices and stac-validator.

Catalogs are built by real passes — the demo tree and the real files of ../shared/testdata —
with relative links and under a public URL. Each file written (catalog, collections, items)
goes through stac-check's linter and stac-validator against ../shared/stac-schemas, offline:
no host but 127.0.0.1 can be looked up while they run. The rules not held (and why) are in
docs/catalog.md, "What stac-check says"; `IGNORED` below is that list.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import shape

from stacsync.catalog.footprint import repeated_vertices
from stacsync.demo import demo_config_toml, make_demo_tree
from stacsync.pipeline.sync import rescan

stac_check_lint = pytest.importorskip("stac_check.lint", reason="stac-check not installed")
stac_validate = pytest.importorskip("stac_validator.validate", reason="stac-validator missing")

PUBLIC_URL = "http://127.0.0.1:8123/stac"
MODES = {"relative": None, "public": PUBLIC_URL}


# -- the documented exceptions (docs/catalog.md) ---------------------------------------------


def _crosses(doc: dict[str, Any]) -> bool:
    bbox = doc.get("bbox") or []
    return len(bbox) == 4 and bbox[0] > bbox[2]


def _belts(doc: dict[str, Any]) -> bool:
    bbox = doc.get("bbox") or []
    return len(bbox) == 4 and bbox[2] - bbox[0] > 180


def _searchable(value: str) -> bool:
    return all(c.islower() or c.isdigit() or c in "-_" for c in value)


# rule → when it may fire: always, or only where its own heuristic is wrong for the object.
IGNORED = {
    # |lon| > 90 and |lon| > 2·|lat| is every point of California: not a sign of swapped axes.
    "geometry_coordinates_order": lambda doc, mode: True,
    # A self-contained catalog has no absolute location, and a self href must be absolute.
    "check_links_self": lambda doc, mode: mode == "relative",
    # stac-check's bounds of a geometry split at ±180 run from -180 to 180.
    "bbox_geometry_mismatch": lambda doc, mode: _crosses(doc),
    # A footprint wider than 180° of longitude (a world raster) has west < east by the spec.
    "check_bbox_antimeridian": lambda doc, mode: _belts(doc),
}


# -- offline linting and validation -----------------------------------------------------------


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No name but the loopback resolves: a linter that reaches for the network fails loudly."""
    real = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"offline test: refused to look up {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


class _LintOnly(stac_check_lint.Linter):
    """stac-check's best-practice rules; schema validation is stac-validator's, below."""

    def validate_file(self, file: Any) -> dict[str, Any]:
        return {"valid_stac": True}


def lint(path: Path) -> dict[str, list[str]]:
    """stac-check's best-practice findings (its default config), by rule."""
    return dict(_LintOnly(str(path)).create_best_practices_dict())


def validate(path: Path, schema_root: Path) -> tuple[bool, Any]:
    """stac-validator on the file, every schema URL mapped to the offline copy."""
    urlmap = json.loads((schema_root / "urlmap.json").read_text())["map"]
    schema_map = {url: str(schema_root / rel) for url, rel in urlmap.items()}
    validator = stac_validate.StacValidate(str(path), schema_map=schema_map)
    return validator.run(), validator.message


def _findings(output: Path, mode: str, schema_root: Path) -> Iterator[str]:
    files = sorted(output.rglob("*.json"))
    assert any(p.name == "catalog.json" for p in files)
    assert any(p.name == "collection.json" for p in files)
    assert len(files) > 2
    for path in files:
        doc = json.loads(path.read_text())
        where = path.relative_to(output)
        valid, message = validate(path, schema_root)
        if not valid:
            yield f"{where}: stac-validator: {message}"
        for rule, text in lint(path).items():
            allowed = IGNORED.get(rule)
            if allowed is None or not allowed(doc, mode):
                yield f"{where}: {rule}: {text}"


# -- the catalogs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_catalogs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lint-demo")
    tree = make_demo_tree(root / "data", missions=3, raster_size=64, points=200)
    out = {}
    for mode, url in MODES.items():
        text = demo_config_toml(tree, root / mode, root / f"{mode}.db")
        if url:
            text = text.replace("\n[manifest]", f'public_url = "{url}"\n\n[manifest]', 1)
        config = root / f"{mode}.toml"
        config.write_text(text)
        summary = rescan(config)
        assert summary.errors == 0 and summary.items_written == 3
        out[mode] = root / mode
    return out


@pytest.fixture(scope="module")
def testdata_catalogs(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lint-testdata")
    out = {}
    for mode, url in MODES.items():
        summary = rescan(
            source=testdata, output=root / mode, manifest=root / f"{mode}.db", public_url=url
        )
        assert summary.items_written > 10
        out[mode] = root / mode
    return out


@pytest.mark.parametrize("mode", MODES)
def test_demo_catalog_is_lint_clean(demo_catalogs: dict[str, Path], mode: str, schema_root: Path):
    assert list(_findings(demo_catalogs[mode], mode, schema_root)) == []


@pytest.mark.parametrize("mode", MODES)
def test_testdata_catalog_is_lint_clean(
    testdata_catalogs: dict[str, Path], mode: str, schema_root: Path
):
    assert list(_findings(testdata_catalogs[mode], mode, schema_root)) == []


def test_ids_are_searchable_and_every_link_is_titled(
    demo_catalogs: dict[str, Path], testdata_catalogs: dict[str, Path]
):
    """Item ids hold a-z, 0-9, `-`, `_` only, even from names like `RGB.byte.tif`; each file
    is named by its id; every link but self has a title; no file has more than 20 links."""
    outputs = [*demo_catalogs.items(), *testdata_catalogs.items()]
    for mode, output in outputs:
        for path in output.rglob("*.json"):
            doc = json.loads(path.read_text())
            if doc["type"] == "Feature":
                assert _searchable(doc["id"]), path
            assert len(doc["links"]) <= 20, path
            assert path.name in ("catalog.json", "collection.json", f"{doc['id']}.json")
            untitled = [ln for ln in doc["links"] if ln["rel"] != "self" and "title" not in ln]
            assert untitled == [], (mode, path.name)
            thumbnail = doc.get("assets", {}).get("thumbnail")
            if thumbnail is not None:
                assert thumbnail["type"] == "image/png"


def test_stac_validator_refuses_a_broken_item(demo_catalogs: dict[str, Path], schema_root: Path):
    """The validator run above does validate (offline) rather than pass everything."""
    item_file = next(demo_catalogs["relative"].glob("*/*/*.json"))
    broken = json.loads(item_file.read_text())
    broken["bbox"] = "nowhere"
    path = item_file.parent / "broken.json"
    path.write_text(json.dumps(broken))
    try:
        valid, _ = validate(path, schema_root)
    finally:
        path.unlink()
    assert not valid


# -- geometry rules on real catalogs ----------------------------------------------------------


def _items(output: Path) -> Iterator[dict[str, Any]]:
    for path in output.rglob("*.json"):
        doc = json.loads(path.read_text())
        if doc.get("type") == "Feature":
            yield doc


def check_geometry_rules(item: dict[str, Any]) -> None:
    """Valid, RFC 7946 winding, no repeated vertex, and a bbox that holds the geometry."""
    geom = shape(item["geometry"])
    assert geom.is_valid, (item["id"], shapely.is_valid_reason(geom))
    assert repeated_vertices(geom) == 0, item["id"]
    for polygon in shapely.get_parts(geom):
        if polygon.geom_type == "Polygon":
            assert polygon.exterior.is_ccw, item["id"]
            assert all(not ring.is_ccw for ring in polygon.interiors), item["id"]
    west, south, east, north = item["bbox"]
    low, bottom, high, top = geom.bounds
    assert south == bottom and north == top, item["id"]
    if west > east:  # across the antimeridian: the two halves end at ±180
        halves = [p.bounds for p in shapely.get_parts(geom)]
        assert min(b[0] for b in halves if b[2] == 180.0) == west, item["id"]
        assert max(b[2] for b in halves if b[0] == -180.0) == east, item["id"]
    else:
        assert (west, east) == (low, high), item["id"]


def test_demo_and_testdata_geometries_follow_the_rules(
    demo_catalogs: dict[str, Path], testdata_catalogs: dict[str, Path]
) -> None:
    count = 0
    for catalogs in (demo_catalogs, testdata_catalogs):
        for item in _items(catalogs["relative"]):
            check_geometry_rules(item)
            count += 1
    assert count > 20


def test_testdata_geometries_cover_the_assets_unrounded_footprints(
    testdata_catalogs: dict[str, Path],
) -> None:
    """Rounding to 9 decimals moved every edge outward: each asset's footprint, as extracted
    (not rounded), lies inside its item's geometry."""
    output = testdata_catalogs["relative"]
    with sqlite3.connect(output.parent / "relative.db") as db:
        rows = db.execute(
            "SELECT collection_id, item_id, meta_json FROM asset_file WHERE status = 'ok'"
        ).fetchall()
    assert len(rows) > 10
    for cid, iid, meta_json in rows:
        item = json.loads((output / cid / iid / f"{iid}.json").read_text())
        asset = shape(json.loads(meta_json)["geometry_4326"])
        assert shape(item["geometry"]).covers(asset), iid
