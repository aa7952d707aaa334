"""Tests for the offline STAC schema validator."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from stacsync.catalog import model
from stacsync.check.schemas import CORE_SCHEMAS, SchemaStoreError, SchemaValidator, packaged_schemas

PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
FILE = "https://stac-extensions.github.io/file/v2.1.0/schema.json"

ITEM = {
    "type": "Feature",
    "stac_version": "1.1.0",
    "stac_extensions": [FILE, PROJ],
    "id": "plot-1",
    "collection": "plots",
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[-123.0, 36.1], [-122.9, 36.1], [-122.9, 36.2], [-123.0, 36.1]]],
    },
    "bbox": [-123.0, 36.1, -122.9, 36.2],
    "properties": {"datetime": "2023-05-25T12:00:00Z"},
    "links": [{"rel": "collection", "href": "../collection.json", "type": "application/json"}],
    "assets": {
        "ortho": {
            "href": "https://example.org/ortho.tif",
            "type": "image/tiff; application=geotiff",
            "proj:code": "EPSG:32610",
            "file:size": 10,
        }
    },
}


@pytest.fixture(scope="module")
def validator(schema_root: Path) -> SchemaValidator:
    return SchemaValidator(schema_root)


@pytest.fixture
def item() -> dict:
    return copy.deepcopy(ITEM)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a connection fail the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("the validator tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_valid_item_passes(validator: SchemaValidator, item: dict) -> None:
    assert validator.errors(item) == []


def test_missing_id_is_named(validator: SchemaValidator, item: dict) -> None:
    del item["id"]
    errors = validator.errors(item)
    assert errors
    assert any("'id' is a required property" in e for e in errors)


def test_bad_proj_code_type_names_the_field(validator: SchemaValidator, item: dict) -> None:
    item["assets"]["ortho"]["proj:code"] = 32610
    errors = validator.errors(item)
    assert len(errors) == 1
    assert "$.assets.ortho['proj:code']" in errors[0]
    assert PROJ in errors[0]


def test_unknown_extension_url_is_named(validator: SchemaValidator, item: dict) -> None:
    item["stac_extensions"].append("https://example.com/unknown/v1.0.0/schema.json")
    errors = validator.errors(item)
    assert errors == [
        "$.stac_extensions[2]: unknown extension schema "
        "'https://example.com/unknown/v1.0.0/schema.json' (not in the offline schema store)"
    ]


def test_extension_rules_are_checked(validator: SchemaValidator, item: dict) -> None:
    item["assets"]["ortho"]["file:checksum"] = "NOT-HEX"
    errors = validator.errors(item)
    assert len(errors) == 1
    assert "file:checksum" in errors[0]


def test_unknown_type_or_version(validator: SchemaValidator, item: dict) -> None:
    item["stac_version"] = "0.9.0"
    assert validator.errors(item)[0].startswith("$: no core schema for type='Feature'")
    assert validator.errors({"type": "Nope"})[0].startswith("$: no core schema")
    assert validator.errors([]) == ["$: expected a JSON object, got list"]  # type: ignore[arg-type]


def test_stac_1_0_objects_use_the_1_0_schemas(validator: SchemaValidator) -> None:
    catalog = {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "c",
        "description": "d",
        "links": [],
    }
    assert validator.errors(catalog) == []
    assert validator.errors({**catalog, "stac_version": "1.1.0"}) == []
    assert validator.errors({**catalog, "description": ""})  # minLength 1


def test_never_touches_the_network(schema_root: Path, no_network: None, item: dict) -> None:
    validator = SchemaValidator(schema_root)  # fresh: nothing cached yet
    all_extensions = [
        url
        for url in json.loads((schema_root / "urlmap.json").read_text())["map"]
        if url.startswith("https://stac-extensions.github.io/")
    ]
    for url in all_extensions:
        validator.errors({**item, "stac_extensions": [url]})
    assert validator.errors(item) == []


def test_missing_schema_file_fails_loudly_offline(
    schema_root: Path, tmp_path: Path, no_network: None, item: dict
) -> None:
    store = tmp_path / "store"
    shutil.copytree(schema_root, store)
    (store / "geojson.org/schema/Feature.json").unlink()
    with pytest.raises(SchemaStoreError, match=r"Feature\.json"):
        SchemaValidator(store).errors(item)


def test_unmapped_reference_is_refused(
    schema_root: Path, tmp_path: Path, no_network: None, item: dict
) -> None:
    store = tmp_path / "store"
    shutil.copytree(schema_root, store)
    index = json.loads((store / "urlmap.json").read_text())
    del index["map"]["https://geojson.org/schema/Geometry.json"]
    (store / "urlmap.json").write_text(json.dumps(index))
    with pytest.raises(SchemaStoreError, match=r"Geometry\.json"):
        SchemaValidator(store).errors(item)


def test_missing_store_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaStoreError, match=r"urlmap\.json"):
        SchemaValidator(tmp_path)


# -- the copy packaged in stacsync/schemas -----------------------------------------------

COLLECTION = {
    "type": "Collection",
    "stac_version": "1.1.0",
    "stac_extensions": [model.SCIENTIFIC_EXT],
    "id": "plots",
    "description": "d",
    "license": "CC-BY-4.0",
    "sci:citation": "Someone (2024).",
    "extent": {
        "spatial": {"bbox": [[-123.0, 36.1, -122.9, 36.2]]},
        "temporal": {"interval": [["2023-05-25T12:00:00Z", None]]},
    },
    "links": [],
}
CATALOG = {"type": "Catalog", "stac_version": "1.1.0", "id": "c", "description": "d", "links": []}


def _variants() -> list[dict]:
    """Valid objects and broken ones, each broken in a field some schema checks."""
    out = [copy.deepcopy(o) for o in (ITEM, COLLECTION, CATALOG)]
    for path, value in [
        (("assets", "ortho", "proj:code"), 32610),
        (("assets", "ortho", "file:checksum"), "NOT-HEX"),
        (("properties", "datetime"), "yesterday"),
        (("geometry", "type"), "Polygonal"),
    ]:
        broken = copy.deepcopy(ITEM)
        target = broken
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        out.append(broken)
    out.append({**copy.deepcopy(COLLECTION), "sci:citation": 7})
    out.append({**copy.deepcopy(CATALOG), "description": ""})
    return out


def test_default_is_the_packaged_copy() -> None:
    assert SchemaValidator().root == packaged_schemas()


@pytest.mark.parametrize("obj", _variants(), ids=lambda o: o["type"])
def test_packaged_copy_validates_like_the_shared_store(
    validator: SchemaValidator, obj: dict, no_network: None
) -> None:
    assert SchemaValidator().errors(obj) == validator.errors(obj)


def test_packaged_copy_holds_every_schema_stacsync_declares() -> None:
    packaged = SchemaValidator()
    for url in (
        model.PROJECTION_EXT,
        model.RASTER_EXT,
        model.EO_EXT,
        model.POINTCLOUD_EXT,
        model.FILE_EXT,
        model.SCIENTIFIC_EXT,
        model.ALTERNATE_EXT,
    ):
        assert packaged.knows(url), url
    for kind in ("Feature", "Collection", "Catalog"):
        assert packaged.knows(CORE_SCHEMAS[(model.STAC_VERSION, kind)])


def test_packaged_copy_never_touches_the_network(no_network: None, item: dict) -> None:
    packaged = SchemaValidator()
    index = json.loads((packaged_schemas() / "urlmap.json").read_text(encoding="utf-8"))
    extensions = [u for u in index["map"] if u.startswith("https://stac-extensions.github.io/")]
    assert len(extensions) == 7
    for url in extensions:  # every $ref of every packaged extension resolves offline
        packaged.errors({**item, "stac_extensions": [url]})
    assert packaged.errors(item) == []


def test_packaged_files_match_their_manifest_and_licences() -> None:
    root = packaged_schemas()
    urlmap = json.loads((root / "urlmap.json").read_text(encoding="utf-8"))["map"]
    rows = list(
        csv.DictReader(
            (root / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t"
        )
    )
    assert sorted(r["url"] for r in rows) == sorted(urlmap)
    for row in rows:
        assert urlmap[row["url"]] == row["file"]
        target = root
        for part in row["file"].split("/"):
            target = target / part
        assert hashlib.sha256(target.read_bytes()).hexdigest() == row["sha256"], row["file"]
    licences = {r["license"].split(" (")[0] for r in rows}
    assert licences == {"Apache-2.0", "MIT", "MIT OR Apache-2.0"}
    texts = {p.name: p.read_text(encoding="utf-8") for p in (root / "LICENSES").iterdir()}
    assert "Apache License" in texts["Apache-2.0.txt"] and "Version 2.0" in texts["Apache-2.0.txt"]
    assert "Permission is hereby granted" in texts["PROJ-MIT.txt"]


def test_packaged_copy_names_an_unpackaged_stac_version() -> None:
    old = {**CATALOG, "stac_version": "1.0.0"}
    assert SchemaValidator().errors(old) == [
        "$: no core schema for type='Catalog' stac_version='1.0.0' in the offline schema store"
    ]
