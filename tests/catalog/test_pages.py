"""Pages: a collection (or catalog) with many children links them through pages of at most 16.

The tree is a pure function of the id set, so catalogs stay byte-identical; one id more or
less changes only the pages on its way; a crawler starting at catalog.json reaches every item.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import random
import shutil
from pathlib import Path

import pystac
import pytest
from helpers import age, catalog_bytes, validate_catalog

from stacsync.catalog import pages as pages_module
from stacsync.catalog.links import Links
from stacsync.catalog.pages import PAGE_LINKS, Listed, page_tree, render_pages
from stacsync.check.catalog import check_catalog
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import rescan


def _ids(n: int) -> list[str]:
    return [f"plot-{i:05d}" for i in range(n)]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.mark.parametrize("n", [0, 1, PAGE_LINKS, PAGE_LINKS + 1, 300, 5000])
def test_every_id_is_on_exactly_one_page_of_at_most_16(n: int):
    ids = _ids(n)
    tree = page_tree(ids)
    leaves = [p for p in tree if not p.pages]
    assert sorted(i for p in leaves for i in p.ids) == sorted(ids)
    for page in tree:
        assert len(page.ids) + len(page.pages) <= PAGE_LINKS
        assert all(_hash(i).startswith(page.prefix) for i in page.ids)
        assert not (page.ids and page.pages)
    assert tree[0].prefix == "" and tree[0].count == n
    # The owner links its ids directly while they fit.
    assert (len(tree) == 1) == (n <= PAGE_LINKS)


def test_the_tree_depends_only_on_the_set_of_ids():
    ids = _ids(700)
    shuffled = random.Random(7).sample(ids, len(ids))
    assert page_tree(ids) == page_tree(shuffled) == page_tree(ids + ids[:50])


@pytest.mark.parametrize("n", [PAGE_LINKS, 40, 2000])
def test_one_more_id_changes_only_the_pages_on_its_way(n: int):
    ids = _ids(n)
    before = {p.prefix: p for p in page_tree(ids)}
    new = "plot-new"
    after = {p.prefix: p for p in page_tree([*ids, new])}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed
    on_its_way = {k for k in changed if _hash(new).startswith(k)}
    # A page that split sheds its ids into new pages below it: those are on its way too.
    split = {k for k in changed - on_its_way if k not in before}
    assert all(any(k.startswith(w) for w in on_its_way) for k in split)
    assert changed == on_its_way | split


def _listed() -> Listed:
    return Listed(
        owner_path="c/collection.json",
        owner_id="c",
        owner_title="C",
        catalog_title="Cat",
        rel="item",
        media_type="application/geo+json",
        target=lambda i: f"c/{i}/{i}.json",
        title=lambda i: i,
        noun="items",
    )


def test_pages_are_catalogs_with_titled_links_back_up():
    tree = page_tree(_ids(300))
    pages = {path: doc for path, _, doc in render_pages(_listed(), tree, Links(None))}
    assert len(pages) == len(tree) - 1
    for path, doc in pages.items():
        assert path.startswith("c/_pages/") and path.endswith("/catalog.json")
        assert doc["type"] == "Catalog" and len(doc["links"]) <= 20
        assert all(link.get("title") for link in doc["links"])
        (parent,) = [ln for ln in doc["links"] if ln["rel"] == "parent"]
        prefix = path.split("/")[2]
        up = posixpath.normpath(posixpath.join(posixpath.dirname(path), parent["href"]))
        assert up == (f"c/_pages/{prefix[:-1]}/catalog.json" if prefix[1:] else "c/collection.json")
    public = {
        path: doc
        for path, _, doc in render_pages(_listed(), tree, Links("http://127.0.0.1:8123/stac"))
    }
    for path, doc in public.items():
        (own,) = [ln for ln in doc["links"] if ln["rel"] == "self"]
        assert own["href"] == f"http://127.0.0.1:8123/stac/{path}"


# -- a real pass ------------------------------------------------------------------------------


def _tree(root: Path, testdata: Path, n: int) -> Path:
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copyfile(testdata / "byte.tif", src / f"Plot_{i:03d}.tif")
    age(src)
    return src


def _crawl(output: Path) -> set[str]:
    catalog = pystac.Catalog.from_file(str(output / "catalog.json"))
    return {item.id for item in catalog.get_items(recursive=True)}


def _page_files(output: Path) -> set[str]:
    return {str(p.relative_to(output)) for p in output.rglob("_pages/**/catalog.json")}


def test_a_big_collection_is_paged_and_shrinks_back(testdata: Path, tmp_path: Path, schema_root):
    src = _tree(tmp_path, testdata, 40)
    out, db = tmp_path / "out", tmp_path / "m.db"
    summary = rescan(source=src, output=out, manifest=db)
    assert summary.errors == 0 and summary.items_written == 40
    assert _crawl(out) == {f"plot_{i:03d}-tif" for i in range(40)}
    pages = _page_files(out)
    assert pages and all(p.startswith("src/_pages/") for p in pages)
    for path in out.rglob("*.json"):
        assert len(json.loads(path.read_text())["links"]) <= 20, path
    assert validate_catalog(out, schema_root) == 1 + 1 + 40 + len(pages)
    assert check_catalog(out).ok

    # Unchanged: no page is written again.
    before = {p: (out / p).stat().st_mtime_ns for p in pages}
    rescan(source=src, output=out, manifest=db)
    assert {p: (out / p).stat().st_mtime_ns for p in pages} == before

    # Down to 10 items: the collection links them itself, every page is gone, on disk and in
    # the manifest's record of what it wrote.
    for i in range(10, 40):
        (src / f"Plot_{i:03d}.tif").unlink()
    rescan(source=src, output=out, manifest=db)
    assert _page_files(out) == set() and not (out / "src" / "_pages").exists()
    collection = json.loads((out / "src" / "collection.json").read_text())
    assert sum(ln["rel"] == "item" for ln in collection["links"]) == 10
    with Manifest.open_reader(db) as manifest:
        assert not [p for p in manifest.written_paths() if "_pages" in p]
    assert _crawl(out) == {f"plot_{i:03d}-tif" for i in range(10)}
    assert check_catalog(out).ok


def test_a_pass_renders_only_the_pages_whose_inputs_changed(
    testdata: Path, tmp_path: Path, monkeypatch
):
    src = _tree(tmp_path, testdata, 40)
    out, db = tmp_path / "out", tmp_path / "m.db"
    rescan(source=src, output=out, manifest=db)
    rendered: list[str] = []
    real = pages_module._render_page
    monkeypatch.setattr(
        pages_module,
        "_render_page",
        lambda listed, page, *a: rendered.append(page.prefix) or real(listed, page, *a),
    )

    def pass_after(change) -> set[str]:
        rendered.clear()
        change()
        age(src)
        summary = rescan(source=src, output=out, manifest=db)
        assert summary.errors == 0 and summary.items_written >= 1
        return set(rendered)

    def new_bytes(name: str) -> None:
        shutil.copyfile(testdata / "elev.tif", src / name)

    # An item's bytes change, its collection is rendered again, its pages are not: no id moved.
    assert pass_after(lambda: new_bytes("Plot_007.tif")) == set()

    # One more item: only the pages on its way, whose ids or counts changed.
    old = {p.prefix: p for p in page_tree(f"plot_{i:03d}-tif" for i in range(40))}
    new = page_tree(f"plot_{i:03d}-tif" for i in range(41))
    on_its_way = {p.prefix for p in new[1:] if old.get(p.prefix) != p}
    assert on_its_way and len(on_its_way) < len(new) - 1
    assert pass_after(lambda: new_bytes("Plot_040.tif")) == on_its_way

    # A page removed by hand is made again by the next pass that renders the collection.
    gone = sorted(_page_files(out))[0]
    (out / gone).unlink()
    assert len(pass_after(lambda: new_bytes("Plot_008.tif"))) == 1
    assert (out / gone).is_file()

    # Inputs not recorded (a manifest from before they were): every page rendered once, none
    # written (same bytes), then none rendered again.
    with Manifest.open_writer(db) as manifest, manifest.transaction():
        manifest.conn.execute("UPDATE written SET inputs = NULL")
    before = {p: (out / p).stat().st_mtime_ns for p in _page_files(out)}
    assert len(pass_after(lambda: new_bytes("Plot_009.tif"))) == len(new) - 1
    assert {p: (out / p).stat().st_mtime_ns for p in _page_files(out)} == before
    assert pass_after(lambda: new_bytes("Plot_010.tif")) == set()
    assert check_catalog(out).ok


def test_pages_published_a_batch_at_a_time_are_the_same_files(
    testdata: Path, tmp_path: Path, monkeypatch
):
    import stacsync.catalog.render

    src = _tree(tmp_path, testdata, 40)
    rescan(source=src, output=tmp_path / "whole", manifest=tmp_path / "whole.db")
    monkeypatch.setattr(stacsync.catalog.render, "COMMIT_BATCH", 1)
    rescan(source=src, output=tmp_path / "batched", manifest=tmp_path / "batched.db")
    assert catalog_bytes(tmp_path / "batched") == catalog_bytes(tmp_path / "whole")
    with Manifest.open_reader(tmp_path / "batched.db") as manifest:
        recorded = manifest.written_inputs("src/_pages/")
    assert set(recorded) == _page_files(tmp_path / "batched") and all(recorded.values())


def test_switching_the_id_scheme_renames_every_item(testdata: Path, tmp_path: Path):
    src = _tree(tmp_path, testdata, 3)
    out, db = tmp_path / "out", tmp_path / "m.db"
    config = tmp_path / "c.toml"
    body = (
        f'[source]\npath = "{src}"\n[output]\npath = "{out}"\n[manifest]\npath = "{db}"\n'
        '[[collection]]\nid = "plots"\ndescription = "Plots."\nmatch = \'^(?P<item>.+)$\'\n'
    )
    config.write_text(body.replace("[output]", '[catalog]\nitem_ids = "keep-case"\n[output]'))
    rescan(config)
    assert _crawl(out) == {"Plot_000.tif", "Plot_001.tif", "Plot_002.tif"}
    config.write_text(body)  # the default: searchable
    summary = rescan(config)
    assert summary.errors == 0 and summary.items_deleted == 3 and summary.items_written == 3
    assert _crawl(out) == {"plot_000-tif", "plot_001-tif", "plot_002-tif"}
    items = sorted(p.name for p in (out / "plots").glob("*/*.json"))
    assert items == ["plot_000-tif.json", "plot_001-tif.json", "plot_002-tif.json"]
    assert check_catalog(out).ok


def test_a_collection_dropped_from_the_config_takes_its_files_and_pages_along(
    testdata: Path, tmp_path: Path
):
    src = _tree(tmp_path, testdata, 40)
    out, db = tmp_path / "out", tmp_path / "m.db"

    def collection(cid: str, items: str) -> str:
        return (
            f'[[collection]]\nid = "{cid}"\ndescription = "{cid}."\n'
            f"match = '^Plot_(?P<item>{items})\\.tif$'\n"
        )

    kept, dropped = collection("late", "03."), collection("early", "0[0-2].")
    head = f'[source]\npath = "{src}"\n[output]\npath = "{out}"\n[manifest]\npath = "{db}"\n'
    config = tmp_path / "c.toml"
    config.write_text(head + kept + dropped)
    rescan(config)
    assert (out / "early" / "collection.json").is_file()
    assert any(p.startswith("early/_pages/") for p in _page_files(out))  # 30 items: paged
    config.write_text(head + kept)
    rescan(config)
    assert not (out / "early" / "collection.json").exists()
    assert not [p for p in (out / "early").rglob("*") if p.is_file()]  # items, pages, all
    assert (out / "late" / "collection.json").is_file()
    with Manifest.open_reader(db) as manifest:
        assert not [p for p in manifest.written_paths() if p.startswith("early/")]


def test_a_catalog_of_many_collections_is_paged_too(testdata: Path, tmp_path: Path):
    src = _tree(tmp_path, testdata, 18)
    out, db = tmp_path / "out", tmp_path / "m.db"
    collections = "".join(
        f'[[collection]]\nid = "plot{i:03d}"\ndescription = "Plot {i}."\n'
        f"match = '^Plot_(?P<item>{i:03d})\\.tif$'\n"
        for i in range(18)
    )
    config = tmp_path / "c.toml"
    config.write_text(
        f'[source]\npath = "{src}"\n[output]\npath = "{out}"\n[manifest]\npath = "{db}"\n'
        + collections
    )
    summary = rescan(config)
    assert summary.errors == 0 and summary.items_written == 18
    root = json.loads((out / "catalog.json").read_text())
    assert len(root["links"]) <= 20 and not any(ln["rel"] == "item" for ln in root["links"])
    assert {p.split("/")[0] for p in _page_files(out)} == {"_pages"}
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    assert {c.id for c in catalog.get_all_collections()} == {f"plot{i:03d}" for i in range(18)}
    assert len(_crawl(out)) == 18
    assert check_catalog(out).ok
