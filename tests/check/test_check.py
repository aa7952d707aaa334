"""Tests for stacsync.check.catalog (`stacsync validate`): a demo catalog, clean then broken."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from stacsync import rescan
from stacsync.check.catalog import check_catalog
from stacsync.check.report import CheckReport, Kind, UrlMap
from stacsync.cli.main import cli
from stacsync.demo import DemoTree, demo_config_toml, make_demo_tree

COLLECTION = "ofo-missions"
ITEM_1 = f"{COLLECTION}/000101/000101.json"
ITEM_2 = f"{COLLECTION}/000102/000102.json"
PUBLIC = "https://stac.example.org/ofo"
DATA_URL = "https://data.example.org/store"


def _build(root: Path, extra_config: str = "", public_url: str | None = None) -> DemoTree:
    """A 2-mission demo tree under root/data, cataloged into root/catalog."""
    tree = make_demo_tree(root / "data", missions=2, raster_size=32, points=50)
    config = demo_config_toml(tree, root / "catalog", root / "m.db")
    if public_url:
        config = config.replace("[manifest]", f'public_url = "{public_url}"\n\n[manifest]')
    (root / "stacsync.toml").write_text(config + extra_config)
    rescan(root / "stacsync.toml")
    return tree


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("built")
    _build(root)
    return root


@pytest.fixture
def catalog(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built catalog (its asset hrefs still point at the shared data)."""
    return Path(shutil.copytree(built / "catalog", tmp_path / "catalog"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the checker tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _lines(report: CheckReport) -> list[str]:
    return [str(p) for p in report.problems]


def _edit(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj, indent=2))


def _features(catalog: Path) -> list[dict]:
    return json.loads((catalog / "index.geojson").read_text())["features"]


def _write_features(catalog: Path, features: list[dict]) -> None:
    fc = {"type": "FeatureCollection", "features": features}
    (catalog / "index.geojson").write_text(json.dumps(fc))


# The demo collection is CC-BY-4.0: its licence link follows the two item links.
LICENSE_URL = "https://spdx.org/licenses/CC-BY-4.0.html"
LICENSE_WHERE = "links[4] (rel=license)"


def test_demo_catalog_is_clean(catalog: Path, no_network: None) -> None:
    report = check_catalog(catalog)
    assert report.ok, _lines(report)
    # The collection's licence page is the one link not on this store: named, not fetched.
    assert [(u.where, u.href) for u in report.unchecked] == [(LICENSE_WHERE, LICENSE_URL)]
    counts = {k: report.counts[k] for k in ("catalogs", "collections", "items", "assets")}
    # 7 data files and a thumbnail per item
    assert counts == {"catalogs": 1, "collections": 1, "items": 2, "assets": 16}
    assert report.counts["index features"] == 2
    # catalog 2 + collection 5 (with the licence) + items 3 each + index features 2 each
    assert report.counts["links"] == 2 + 5 + 2 * 3 + 2 * 2


def test_deleted_item_file_is_named_by_the_link_and_the_index(catalog: Path) -> None:
    (catalog / ITEM_2).unlink()
    lines = _lines(check_catalog(catalog))
    assert (
        f"{COLLECTION}/collection.json: links[3] (rel=item): ./000102/000102.json does not exist"
        in lines
    )
    assert (
        f"index.geojson: features[1].links[0] (rel=canonical): ./{ITEM_2} does not exist" in lines
    )
    assert any(
        line.startswith("index.geojson: features[1] (id=000102): no item '000102'")
        for line in lines
    )


def test_broken_parent_link_is_named(catalog: Path) -> None:
    _edit(catalog / ITEM_1, lambda o: o["links"][1].update(href="../../z/collection.json"))
    report = check_catalog(catalog)
    assert _lines(report) == [
        f"{ITEM_1}: links[1] (rel=parent): ../../z/collection.json does not exist"
    ]
    assert report.problems[0].kind is Kind.LINK


def test_schema_failure_names_the_field_and_extension(catalog: Path) -> None:
    def corrupt(item: dict) -> None:
        item["assets"]["orthomosaic"]["proj:code"] = 32610
        item["properties"].pop("datetime")

    _edit(catalog / ITEM_1, corrupt)
    report = check_catalog(catalog)
    schema = [p for p in report.problems if p.kind is Kind.SCHEMA]
    assert {p.file for p in schema} == {ITEM_1}
    wheres = {p.where for p in schema}
    assert "assets.orthomosaic['proj:code']" in wheres
    assert any("projection/v2.0.0" in p.message for p in schema)
    assert any("datetime" in p.message for p in schema)
    # The index still has the old item: its feature no longer matches the file.
    assert any(
        str(p).startswith("index.geojson: features[0] (id=000101): assets, properties differ")
        for p in report.problems
    )


def test_removed_asset_source_file_is_named(tmp_path: Path) -> None:
    tree = _build(tmp_path)
    gone = tree.root / "missions/000102/processed_01/full/points.laz"
    gone.unlink()
    report = check_catalog(tmp_path / "catalog")
    assert _lines(report) == [f"{ITEM_2}: assets.points.href: {gone} does not exist"]
    assert report.problems[0].kind is Kind.ASSET


def test_orphan_item_is_reported_and_checked(catalog: Path) -> None:
    orphan = catalog / COLLECTION / "000199" / "000199.json"
    orphan.parent.mkdir()
    item = json.loads((catalog / ITEM_1).read_text())
    item["id"] = "000199"
    item["links"][0]["href"] = "../../nowhere.json"
    del item["assets"]["thumbnail"]  # its ./000101.png would not be beside the copy
    orphan.write_text(json.dumps(item))
    (catalog / COLLECTION / "notes.json").write_text('{"not": "stac"}')  # not STAC: ignored
    (catalog / "plot.json").write_text('{"type": "Feature", "geometry": null, "properties": {}}')
    lines = _lines(check_catalog(catalog))
    assert lines == [
        f"{COLLECTION}/000199/000199.json: $: orphan: not reachable from catalog.json",
        f"{COLLECTION}/000199/000199.json: links[0] (rel=root): ../../nowhere.json does not exist",
    ]


def test_feature_dropped_from_the_index(catalog: Path) -> None:
    _write_features(catalog, _features(catalog)[:1])
    assert _lines(check_catalog(catalog)) == [
        f"index.geojson: features: no feature for item {ITEM_2}"
    ]


def test_changed_and_extra_and_duplicate_features(catalog: Path) -> None:
    first, second = _features(catalog)
    first["bbox"] = [0, 0, 1, 1]
    stranger = {**second, "id": "999999"}
    _write_features(catalog, [first, second, second, stranger])
    lines = _lines(check_catalog(catalog))
    assert f"index.geojson: features[0] (id=000101): bbox differ from {ITEM_1}" in lines
    assert "index.geojson: features[2] (id=000102): duplicate of features[1]" in lines
    assert (
        "index.geojson: features[3] (id=999999): no item '999999' of collection "
        "'ofo-missions' is reachable from catalog.json" in lines
    )
    assert len(lines) == 3


def test_pretty_printed_index_is_read_too(catalog: Path) -> None:
    fc = json.loads((catalog / "index.geojson").read_text())
    (catalog / "index.geojson").write_text(json.dumps(fc, indent=2))
    assert check_catalog(catalog).ok


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"type": "Feature"}', "the top level is not a FeatureCollection"),
        ('{"type":"FeatureCollection","features":[\n{"id": 1},\n', "truncated"),
        ('{"type":"FeatureCollection","features":[\n{"id": \n]}\n', "line 2"),
    ],
    ids=["not-a-collection", "truncated", "bad-line"],
)
def test_broken_index_file(catalog: Path, text: str, message: str) -> None:
    (catalog / "index.geojson").write_text(text)
    problems = [p for p in check_catalog(catalog).problems if p.file == "index.geojson"]
    assert any(p.where == "$" and message in p.message for p in problems), problems


def test_missing_catalog_and_index_and_bad_json(catalog: Path) -> None:
    (catalog / "index.geojson").unlink()
    (catalog / ITEM_1).write_text("{ not json")
    lines = _lines(check_catalog(catalog))
    assert "index.geojson: $: does not exist" in lines
    assert any(line.startswith(f"{ITEM_1}: $: not valid JSON") for line in lines)
    (catalog / "catalog.json").unlink()
    lines = _lines(check_catalog(catalog))
    assert lines[0] == "catalog.json: $: does not exist (the root catalog)"
    assert f"{COLLECTION}/collection.json: $: orphan: not reachable from catalog.json" in lines


def test_unpackaged_extension_is_named_and_nothing_is_downloaded(
    catalog: Path, no_network: None
) -> None:
    view = "https://stac-extensions.github.io/view/v1.0.0/schema.json"
    declared = json.loads((catalog / f"{COLLECTION}/collection.json").read_text())
    at = len(declared.get("stac_extensions", []))
    _edit(catalog / f"{COLLECTION}/collection.json", lambda c: c["stac_extensions"].append(view))
    report = check_catalog(catalog)
    assert [(p.file, p.where, p.kind) for p in report.problems] == [
        (f"{COLLECTION}/collection.json", f"stac_extensions[{at}]", Kind.SCHEMA)
    ]
    assert view in report.problems[0].message
    assert "not in the offline schema store" in report.problems[0].message


def test_public_catalog_maps_urls_back_to_local_files(tmp_path: Path, no_network: None) -> None:
    rewrite = f'\n[[href_rewrite]]\nprefix = "{tmp_path / "data"}"\nto = "{DATA_URL}"\n'
    tree = _build(tmp_path, rewrite, public_url=PUBLIC)
    out = tmp_path / "catalog"
    report = check_catalog(out)
    # Links are under the catalog's own URL (from its self link): all checked locally.
    assert report.ok, _lines(report)
    assert report.public_urls == (PUBLIC,)
    assets = [u for u in report.unchecked if u.href != LICENSE_URL]
    assert {u.href.split("/missions/")[0] for u in assets} == {DATA_URL}
    assert len(assets) == 14 and len(report.unchecked) == 15

    data = UrlMap.parse(f"{DATA_URL}={tree.root}")
    report = check_catalog(out, source_urls=[data])
    assert report.ok and [u.href for u in report.unchecked] == [LICENSE_URL]

    (tree.root / "missions/000101/processed_01/full/orthomosaic.tif").unlink()
    (out / COLLECTION / "collection.json").unlink()
    lines = _lines(check_catalog(out, source_urls=[data]))
    assert (
        f"catalog.json: links[1] (rel=child): {PUBLIC}/{COLLECTION}/collection.json "
        "does not exist" in lines
    )
    assert (
        f"{ITEM_1}: assets.orthomosaic.href: "
        f"{DATA_URL}/missions/000101/processed_01/full/orthomosaic.tif does not exist" in lines
    )


def test_self_link_to_another_file_is_named(tmp_path: Path) -> None:
    _build(tmp_path, public_url=PUBLIC)
    out = tmp_path / "catalog"
    _edit(out / ITEM_1, lambda o: o["links"][3].update(href=f"{PUBLIC}/{ITEM_2}"))
    lines = [line for line in _lines(check_catalog(out)) if "index.geojson" not in line]
    assert lines == [
        f"{ITEM_1}: links[3] (rel=self): {PUBLIC}/{ITEM_2} is not this file's URL (it is {ITEM_2})"
    ]


def test_other_urls_are_not_checked(catalog: Path) -> None:
    _edit(
        catalog / "catalog.json",
        lambda c: c["links"].append({"rel": "license", "href": "https://example.com/l.html"}),
    )
    report = check_catalog(catalog)
    assert report.ok
    assert [u.to_dict() for u in report.unchecked] == [
        {
            "file": "catalog.json",
            "where": "links[2] (rel=license)",
            "href": "https://example.com/l.html",
        },
        {"file": f"{COLLECTION}/collection.json", "where": LICENSE_WHERE, "href": LICENSE_URL},
    ]


def test_progress_is_reported(catalog: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    check_catalog(catalog, progress=lambda phase, done, total: calls.append((phase, done, total)))
    walk = [c for c in calls if c[0] == "catalog"]
    assert walk[-1] == ("catalog", 4, 4)
    assert ("index", 2, 2) in calls


def test_url_map_parsing() -> None:
    assert UrlMap.parse("https://x.org/a/=/data").local("https://x.org/a/b%20c.tif") == Path(
        "/data/b c.tif"
    )
    assert UrlMap.parse("https://x.org/a=/data").local("https://x.org/ab/c.tif") is None
    for bad in ("/data", "ftp://x=/data", "https://x.org="):
        with pytest.raises(ValueError):
            UrlMap.parse(bad)


# -- the command -------------------------------------------------------------------------


def test_validate_command_as_a_process(catalog: Path) -> None:
    (catalog / ITEM_2).unlink()
    done = subprocess.run(
        [sys.executable, "-m", "stacsync.cli", "validate", str(catalog)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert (
        f"{COLLECTION}/collection.json: links[3] (rel=item): ./000102/000102.json does not exist"
        in lines
    )
    assert lines[-1].startswith(
        f"{catalog}: 3 problems; checked 1 catalogs, 1 collections, 1 items"
    )


def test_validate_command_json_clean_and_usage(catalog: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    licence = {"rel": "license", "href": "https://example.com/licence.html"}
    _edit(catalog / "catalog.json", lambda c: c["links"].append(licence))
    clean = runner.invoke(cli, ["validate", str(catalog)])
    assert clean.exit_code == 0, clean.output
    assert clean.output.splitlines() == [
        "not checked (no network): 1 hrefs under https://example.com, "
        "first in catalog.json: links[2] (rel=license)",
        "not checked (no network): 1 hrefs under https://spdx.org, "
        f"first in {COLLECTION}/collection.json: {LICENSE_WHERE}",
        f"{catalog}: no problems; checked 1 catalogs, 1 collections, 2 items, 18 links, "
        "16 assets, 2 index features",
    ]

    (catalog / ITEM_2).unlink()
    broken = runner.invoke(cli, ["validate", "--json", str(catalog)])
    assert broken.exit_code == 1
    report = json.loads(broken.output)
    assert report["ok"] is False
    assert {"file", "where", "kind", "message"} <= set(report["problems"][0])
    assert report["counts"]["items"] == 1

    assert runner.invoke(cli, ["validate", str(tmp_path / "nope")]).exit_code == 2
    assert runner.invoke(cli, ["validate", str(catalog), "--public-url", "x"]).exit_code == 2
    bad_map = runner.invoke(cli, ["validate", str(catalog), "--source-url", "https://a.org"])
    assert bad_map.exit_code == 2 and "URL=PATH" in bad_map.output
    missing = runner.invoke(
        cli, ["validate", str(catalog), "--source-url", f"https://a.org={tmp_path / 'none'}"]
    )
    assert missing.exit_code == 2 and "is not a folder" in missing.output


def test_validate_with_config_maps_public_and_asset_urls_back(tmp_path: Path) -> None:
    rewrite = f'\n[[href_rewrite]]\nprefix = "{tmp_path / "data"}"\nto = "{DATA_URL}"\n'
    tree = _build(tmp_path, rewrite, public_url=PUBLIC)
    runner = CliRunner()
    done = runner.invoke(cli, ["validate", "--config", str(tmp_path / "stacsync.toml"), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    # Links under the public URL and asset URLs under the rewrite were all found locally.
    assert [u["href"] for u in report["not_checked"]] == [LICENSE_URL]

    next(tree.root.rglob("*.laz")).unlink()  # an asset URL whose file is gone
    broken = runner.invoke(cli, ["validate", "--config", str(tmp_path / "stacsync.toml")])
    assert broken.exit_code == 1
    assert "points.laz" in broken.output and "does not exist" in broken.output
