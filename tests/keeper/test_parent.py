"""Tests for linking our catalog into a keeper's parent catalog."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from stacsync.catalog import collections, links, model
from stacsync.check.schemas import SchemaValidator
from stacsync.core.errors import StacsyncError
from stacsync.keeper.parent import (
    LocalParentStore,
    ParentCatalogError,
    child_href,
    link_into_parent,
    resolve_href,
)

PUBLIC = "https://data.cyverse.org/dav-anon/iplant/home/u/stac"


def keeper_catalog(**extra: Any) -> dict[str, Any]:
    """A parent catalog as a keeper might write it: fields in their own order, a link of theirs."""
    return {
        "stac_version": "1.0.0",
        "type": "Catalog",
        "id": "ofo",
        "description": "Open Forest Observatory — all catalogs",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": "application/json"},
            {"rel": "child", "href": "./lidar/catalog.json", "title": "Lidar"},
        ],
        "keeper:note": {"z": 1, "a": [1.5, None, True]},
        **extra,
    }


def write_json(path: Path, obj: Any, indent: int | str | None = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


class FakeStore:
    """A ParentStore in memory that records writes and can fail like a real store."""

    def __init__(self, files: dict[str, bytes], read_error=None, write_error=None):
        self.files = dict(files)
        self.read_error = read_error
        self.write_error = write_error
        self.writes: list[str] = []

    def read(self, path: str) -> bytes:
        if self.read_error is not None:
            raise self.read_error
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", path) from None

    def write(self, path: str, data: bytes) -> None:
        if self.write_error is not None:
            raise self.write_error
        self.writes.append(path)
        self.files[path] = data


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    return write_json(tmp_path / "keeper" / "catalog.json", keeper_catalog())


# --------------------------------------------------------------------------- adding the link


def test_adds_one_child_link_and_keeps_everything_else(parent: Path, schema_root: Path) -> None:
    before = read_json(parent)
    wrote = link_into_parent(LocalParentStore(), str(parent), f"{PUBLIC}/catalog.json", "Drone")
    assert wrote is True
    after = read_json(parent)
    assert list(after) == list(before)  # key order kept
    assert after["links"][:-1] == before["links"]
    assert after["links"][-1] == {
        "rel": "child",
        "href": f"{PUBLIC}/catalog.json",
        "type": "application/json",
        "title": "Drone",
    }
    assert {k: v for k, v in after.items() if k != "links"} == {
        k: v for k, v in before.items() if k != "links"
    }
    assert SchemaValidator(schema_root).errors(after) == []


def test_second_call_writes_nothing(parent: Path) -> None:
    store = LocalParentStore()
    assert link_into_parent(store, str(parent), f"{PUBLIC}/catalog.json", "Drone")
    once = parent.read_bytes()
    mtime = parent.stat().st_mtime_ns
    assert link_into_parent(store, str(parent), f"{PUBLIC}/catalog.json", "Drone") is False
    assert parent.read_bytes() == once
    assert parent.stat().st_mtime_ns == mtime


def test_no_title_means_no_title_key(parent: Path) -> None:
    link_into_parent(LocalParentStore(), str(parent), "../drone/catalog.json", None)
    assert read_json(parent)["links"][-1] == {
        "rel": "child",
        "href": "../drone/catalog.json",
        "type": "application/json",
    }


@pytest.mark.parametrize(
    "existing",
    [
        "../drone/catalog.json",
        "./../drone/./catalog.json",
        "../keeper/../drone/catalog.json",
        "{root}/drone/catalog.json",
        "file://{root}/drone/catalog.json",
        "../drone/cat%61log.json",
    ],
    ids=["same", "dot-segments", "detour", "absolute-path", "file-url", "percent-escape"],
)
def test_an_equivalent_existing_link_counts(tmp_path: Path, existing: str) -> None:
    href = existing.format(root=tmp_path)
    cat = keeper_catalog()
    cat["links"].append({"rel": "child", "href": href})
    parent = write_json(tmp_path / "keeper" / "catalog.json", cat)
    before = parent.read_bytes()
    assert not link_into_parent(LocalParentStore(), str(parent), "../drone/catalog.json", "x")
    assert parent.read_bytes() == before


def test_relative_links_resolve_against_the_parents_self_url() -> None:
    cat = keeper_catalog()
    cat["links"] += [
        {"rel": "self", "href": "https://example.org/stac/catalog.json"},
        {"rel": "child", "href": "./drone/catalog.json"},
    ]
    store = FakeStore({"/srv/keeper/catalog.json": model.dumps(cat)})
    href = "HTTPS://Example.org:443/stac/drone/catalog.json"
    assert link_into_parent(store, "/srv/keeper/catalog.json", href, "Drone") is False
    assert store.writes == []


def test_a_different_target_is_added(tmp_path: Path) -> None:
    cat = keeper_catalog()
    cat["links"].append({"rel": "child", "href": f"{PUBLIC}/other/catalog.json"})
    parent = write_json(tmp_path / "catalog.json", cat)
    assert link_into_parent(LocalParentStore(), str(parent), f"{PUBLIC}/catalog.json", None)
    hrefs = [link["href"] for link in read_json(parent)["links"]]
    assert hrefs.count(f"{PUBLIC}/catalog.json") == 1


def test_parent_without_links_gets_them(tmp_path: Path, schema_root: Path) -> None:
    cat = keeper_catalog()
    del cat["links"]
    parent = write_json(tmp_path / "catalog.json", cat)
    assert link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", "Drone")
    after = read_json(parent)
    assert [link["href"] for link in after["links"]] == ["./drone/catalog.json"]
    assert SchemaValidator(schema_root).errors(after) == []


def test_a_collection_can_be_the_parent(tmp_path: Path, schema_root: Path) -> None:
    coll = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": "parent-coll",
        "description": "d",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [[None, None]]},
        },
        "links": [],
    }
    parent = write_json(tmp_path / "collection.json", coll)
    assert link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", None)
    assert SchemaValidator(schema_root).errors(read_json(parent)) == []


# --------------------------------------------------------------------------- how it is written


@pytest.mark.parametrize("indent", [2, 4, "\t", None], ids=["2", "4", "tab", "one-line"])
def test_the_files_indentation_is_kept(tmp_path: Path, indent: int | str | None) -> None:
    parent = write_json(tmp_path / "catalog.json", keeper_catalog(), indent=indent)
    link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", "Drone")
    expected = json.dumps(read_json(parent), indent=indent, ensure_ascii=False) + "\n"
    assert parent.read_text(encoding="utf-8") == expected


def test_non_ascii_stays_readable(parent: Path) -> None:
    link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", "Forêt")
    text = parent.read_text(encoding="utf-8")
    assert "Open Forest Observatory — all catalogs" in text
    assert '"title": "Forêt"' in text


def test_mode_kept_and_no_temp_file_left(parent: Path) -> None:
    parent.chmod(0o664)
    link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", None)
    assert stat.S_IMODE(parent.stat().st_mode) == 0o664
    assert [p.name for p in parent.parent.iterdir()] == ["catalog.json"]


def test_symlinked_parent_is_written_through(tmp_path: Path, parent: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(parent)
    link_into_parent(LocalParentStore(), str(link), f"{PUBLIC}/catalog.json", None)
    assert link.is_symlink()
    assert read_json(parent)["links"][-1]["href"] == f"{PUBLIC}/catalog.json"


def test_failed_rename_leaves_the_parent_untouched(parent: Path, monkeypatch) -> None:
    before = parent.read_bytes()

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ParentCatalogError, match="cannot write: No space left on device"):
        link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", None)
    assert parent.read_bytes() == before
    assert [p.name for p in parent.parent.iterdir()] == ["catalog.json"]


# --------------------------------------------------------------------------- clear failures


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"type": "Catalog", "x": NaN}', "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "not a STAC catalog"),
        (b'{"type": "Feature", "links": []}', "not a STAC catalog"),
        (b'{"id": "x", "links": []}', "not a STAC catalog"),
        (b'{"type": "Catalog", "links": {}}', "`links` is not an array"),
    ],
    ids=["broken", "nan", "not-utf8", "array", "item", "no-type", "links-object"],
)
def test_unusable_parent_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    parent = tmp_path / "catalog.json"
    parent.write_bytes(content)
    with pytest.raises(ParentCatalogError, match=message) as caught:
        link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", None)
    assert str(parent) in str(caught.value)
    assert isinstance(caught.value, StacsyncError)
    assert parent.read_bytes() == content


def test_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(ParentCatalogError, match="not found"):
        link_into_parent(LocalParentStore(), str(tmp_path / "nope.json"), "./x.json", None)


@pytest.mark.parametrize("when", ["read", "write"])
def test_permission_denied_is_a_clear_error(when: str) -> None:
    denied = PermissionError(13, "Permission denied", "/srv/keeper/catalog.json")
    store = FakeStore(
        {"/srv/keeper/catalog.json": model.dumps(keeper_catalog())},
        read_error=denied if when == "read" else None,
        write_error=denied if when == "write" else None,
    )
    with pytest.raises(ParentCatalogError, match=f"cannot {when}: Permission denied"):
        link_into_parent(store, "/srv/keeper/catalog.json", f"{PUBLIC}/catalog.json", None)


def test_store_errors_of_stacsync_kind_are_wrapped() -> None:
    store = FakeStore({}, read_error=StacsyncError("iRODS says CAT_NO_ACCESS_PERMISSION"))
    with pytest.raises(ParentCatalogError, match="cannot read: iRODS says CAT_NO_ACCESS"):
        link_into_parent(store, "/iplant/home/k/catalog.json", f"{PUBLIC}/catalog.json", None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_read_only_parent_is_left_alone(parent: Path) -> None:
    parent.chmod(0o444)
    before = parent.read_bytes()
    with pytest.raises(ParentCatalogError, match="cannot write"):
        link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", None)
    assert parent.read_bytes() == before


def test_read_only_flag_is_honoured_even_by_root(parent: Path, monkeypatch) -> None:
    # Root passes every permission check; os.access is what the store asks, so fake its answer.
    parent.chmod(0o444)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ParentCatalogError, match="read-only"):
        link_into_parent(LocalParentStore(), str(parent), "./drone/catalog.json", None)


def test_linking_a_catalog_into_itself_is_refused(tmp_path: Path) -> None:
    ours = write_json(tmp_path / "stac" / "catalog.json", keeper_catalog())
    href = child_href(str(ours), str(ours))
    with pytest.raises(ParentCatalogError, match="our own catalog"):
        link_into_parent(LocalParentStore(), str(ours), href, None)


# --------------------------------------------------------------------------- hrefs


def test_child_href_is_the_public_url_when_there_is_one() -> None:
    href = child_href("/srv/keeper/catalog.json", "/out/catalog.json", f"{PUBLIC}/catalog.json")
    assert href == f"{PUBLIC}/catalog.json"


@pytest.mark.parametrize(
    ("parent_path", "child_path", "expected"),
    [
        ("/data/keeper/catalog.json", "/data/drone/catalog.json", "../drone/catalog.json"),
        ("/data/catalog.json", "/data/drone/stac/catalog.json", "./drone/stac/catalog.json"),
        (
            "/iplant/home/k/catalog.json",
            "/iplant/home/u/stac/catalog.json",
            "../u/stac/catalog.json",
        ),
    ],
)
def test_child_href_is_relative_between_paths(
    parent_path: str, child_path: str, expected: str
) -> None:
    assert child_href(parent_path, child_path) == expected


@pytest.mark.parametrize(
    ("base", "href", "expected"),
    [
        ("/a/b/catalog.json", "./c/catalog.json", "/a/b/c/catalog.json"),
        ("/a/b/catalog.json", "../c/./d/../catalog.json", "/a/c/catalog.json"),
        ("/a/b/catalog.json", "file:///x/y%20z.json", "/x/y z.json"),
        (
            "/a/catalog.json",
            "HTTPS://Host.ORG:443/p/./q/catalog.json",
            "https://host.org/p/q/catalog.json",
        ),
        ("/a/catalog.json", "http://host:8080/p#frag", "http://host:8080/p"),
        ("https://h/x/catalog.json", "../y/catalog.json", "https://h/y/catalog.json"),
        ("https://h/x/catalog.json", "sub/", "https://h/x/sub/"),
        ("https://h/x/catalog.json", "http://[::1]:80/a", "http://[::1]/a"),
    ],
)
def test_resolve_href(base: str, href: str, expected: str) -> None:
    assert resolve_href(base, href) == expected


def test_end_to_end_with_a_rendered_catalog(tmp_path: Path, schema_root: Path) -> None:
    """Our catalog rendered by stacsync, linked into a keeper's: the link leads to our file."""
    out = tmp_path / "out"
    ours = out / links.catalog_path()
    ours.parent.mkdir(parents=True)
    rendered = collections.render_catalog(
        collections.CatalogInput("drone", "Drone products", "UAV data", ()), links.Links(None)
    )
    ours.write_bytes(model.dumps(rendered))
    parent = write_json(tmp_path / "keeper" / "catalog.json", keeper_catalog())

    href = child_href(str(parent), str(ours))
    assert link_into_parent(LocalParentStore(), str(parent), href, rendered["title"])

    after = read_json(parent)
    assert Path(resolve_href(str(parent), after["links"][-1]["href"])) == ours
    assert SchemaValidator(schema_root).errors(after) == []
