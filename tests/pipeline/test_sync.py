"""The one-shot pass end to end: real files, a real manifest, counted opens and writes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import BAD, CSV, CSV_CONFIG, GOOD, Recorder, age, catalog_bytes, validate_catalog

import stacsync.catalog.index
import stacsync.catalog.items
from stacsync.config.load import quick_settings
from stacsync.core.errors import ManifestLockedError
from stacsync.core.records import AssetMeta
from stacsync.demo import demo_config_toml, make_demo_tree
from stacsync.manifest import queries
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import SyncPass, rescan
from stacsync.sources.include import is_included
from stacsync.sources.local import LocalSource


@pytest.fixture
def real_tree(copy_testdata, tmp_path: Path) -> Path:
    src = tmp_path / "drone"
    copy_testdata(*GOOD[:4], dest=src / "rasters")
    copy_testdata(*GOOD[4:], dest=src / "clouds" / "lidar")
    age(src)
    return src


def _quick(src: Path, tmp_path: Path, **kw):
    return rescan(source=src, output=tmp_path / "catalog", manifest=tmp_path / "stacsync.db", **kw)


def test_first_pass_builds_a_valid_catalog(real_tree, tmp_path, schema_root, expected):
    summary = _quick(real_tree, tmp_path)
    assert summary.added == len(GOOD)
    assert summary.errors == 0, Manifest.open_reader(tmp_path / "stacsync.db").errors()
    assert summary.items_written == len(GOOD)
    out = tmp_path / "catalog"
    assert (out / "catalog.json").is_file() and (out / "index.geojson").is_file()
    collection = json.loads((out / "drone" / "collection.json").read_text())
    assert collection["id"] == "drone"
    assert validate_catalog(out, schema_root) == 1 + 1 + len(GOOD)
    item = json.loads(
        (out / "drone" / "rasters__rgb-byte-tif" / "rasters__rgb-byte-tif.json").read_text()
    )
    # Where the data is: inside the grid's bounds (a third of RGB.byte.tif is nodata).
    west, south, east, north = expected["RGB.byte.tif"]["bounds_4326"]
    assert west <= item["bbox"][0] < item["bbox"][2] <= east
    assert south <= item["bbox"][1] < item["bbox"][3] <= north
    assert item["assets"]["thumbnail"]["href"] == "./rasters__rgb-byte-tif.png"
    asset = item["assets"]["data"]
    assert asset["href"] == str(real_tree / "rasters" / "RGB.byte.tif")
    assert asset["proj:code"] == "EPSG:32618"
    assert asset["file:size"] == expected["RGB.byte.tif"]["bytes"]
    assert asset["file:checksum"] == "1220" + expected["RGB.byte.tif"]["sha256"]
    index = json.loads((out / "index.geojson").read_text())
    assert len(index["features"]) == len(GOOD)


def test_unchanged_rescan_opens_nothing_and_writes_nothing(real_tree, tmp_path, monkeypatch):
    _quick(real_tree, tmp_path)
    before = catalog_bytes(tmp_path / "catalog")
    rec = Recorder(monkeypatch, real_tree)
    summary = _quick(real_tree, tmp_path)
    assert summary.unchanged == len(GOOD)
    assert (summary.added, summary.modified, summary.touched, summary.removed) == (0, 0, 0, 0)
    assert rec.extracted == [] and rec.checksummed == []
    assert rec.opened == [], "an unchanged rescan must not open any asset file"
    assert dict(rec.written) == {} and rec.deleted == []
    assert catalog_bytes(tmp_path / "catalog") == before


def test_touched_file_is_checksummed_not_extracted(real_tree, tmp_path, monkeypatch):
    _quick(real_tree, tmp_path)
    target = real_tree / "rasters" / "elev.tif"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    rec = Recorder(monkeypatch, real_tree)
    summary = _quick(real_tree, tmp_path)
    assert summary.touched == 1 and summary.modified == 0
    assert rec.checksummed == [str(target)]
    assert rec.extracted == []
    assert rec.written_items == []
    assert not rec.written, f"a touch rewrote {dict(rec.written)}"


def test_removed_file_drops_item_and_shrinks_extent(real_tree, tmp_path):
    _quick(real_tree, tmp_path)
    out = tmp_path / "catalog"
    before = json.loads((out / "drone" / "collection.json").read_text())
    (real_tree / "rasters" / "RGB.byte.tif").unlink()  # the only item in the Bahamas
    summary = _quick(real_tree, tmp_path)
    assert summary.removed == 1 and summary.items_deleted == 1
    assert not (out / "drone" / "rasters__rgb-byte-tif").exists()
    after = json.loads((out / "drone" / "collection.json").read_text())
    old_box = before["extent"]["spatial"]["bbox"][0]
    new_box = after["extent"]["spatial"]["bbox"][0]
    assert new_box != old_box
    index = json.loads((out / "index.geojson").read_text())
    assert "rasters__rgb-byte-tif" not in {f["id"] for f in index["features"]}


class _DeniedSource(LocalSource):
    """A folder where some files cannot be read (chmod does not stop root, so use the seam)."""

    def __init__(self, *args, denied: set[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.denied = denied

    def open(self, relpath):
        if relpath in self.denied:
            raise PermissionError(13, "Permission denied", self.local_path(relpath))
        return super().open(relpath)


def test_bad_files_become_error_rows_and_the_pass_completes(copy_testdata, tmp_path):
    src = copy_testdata(*BAD, "RGB.byte.tif", "autzen_trim.laz", dest=tmp_path / "mixed")
    age(src)
    settings = quick_settings(src, tmp_path / "catalog", tmp_path / "stacsync.db")
    source = _DeniedSource(
        src, include=lambda p: is_included(settings, p), denied={"autzen_trim.laz"}
    )
    with Manifest.open_writer(settings.manifest_path) as db:
        summary = SyncPass(settings, db, source=source).run()
        errors = {r["path"]: r["error"] for r in db.errors()}
    assert set(errors) == set(BAD) | {"autzen_trim.laz"}
    for name, message in errors.items():
        assert message.startswith(name + ":"), message
    assert "empty" in errors["empty.tif"]
    assert "coordinate reference system" in errors["simple.las"]
    assert "Permission denied" in errors["autzen_trim.laz"]
    assert summary.items_written == 1
    assert summary.errors == len(errors) == summary.new_errors


def test_unlistable_folder_does_not_remove_its_files(real_tree, tmp_path):
    settings = quick_settings(real_tree, tmp_path / "catalog", tmp_path / "stacsync.db")
    rescan(settings)

    def scandir(path):
        if path.endswith("clouds"):
            raise PermissionError(13, "Permission denied", path)
        return os.scandir(path)

    source = LocalSource(real_tree, include=lambda p: is_included(settings, p), scandir=scandir)
    with Manifest.open_writer(settings.manifest_path) as db:
        summary = SyncPass(settings, db, source=source).run()
    assert summary.removed == 0 and summary.items_deleted == 0
    assert summary.listing_problems == ["clouds: cannot list folder: Permission denied"]


def test_second_instance_is_refused(real_tree, tmp_path):
    settings = quick_settings(real_tree, tmp_path / "catalog", tmp_path / "stacsync.db")
    with (
        Manifest.open_writer(settings.manifest_path, purpose="holder test"),
        pytest.raises(ManifestLockedError, match=r"pid \d+ .*holder test"),
    ):
        rescan(settings)
    rescan(settings)  # released on close


@pytest.mark.parametrize("missions", [3, 29], ids=["threads", "processes"])
def test_items_render_from_what_was_just_extracted_as_from_the_manifest(
    tmp_path, monkeypatch, missions
):
    tree = make_demo_tree(tmp_path / "data", missions=missions, raster_size=64, points=200)
    age(tree.root)
    out = tmp_path / "catalog"
    config = tmp_path / "stacsync.toml"
    # Two workers whatever the machine: 203 files then go to worker processes.
    extract = "\n[extract]\nworkers = 2\n"
    config.write_text(demo_config_toml(tree, out, tmp_path / "db.sqlite") + extract)
    parsed: list[str] = []
    real = AssetMeta.from_json.__func__

    def counted(cls, text):
        parsed.append(text)
        return real(cls, text)

    monkeypatch.setattr(AssetMeta, "from_json", classmethod(counted))
    first = rescan(config)
    assert first.items_written == missions and first.errors == 0
    assert parsed == []  # no row it had just written was parsed back
    built = catalog_bytes(out)
    shutil.rmtree(out)
    again = rescan(config)  # every item again, from the manifest's rows this time
    assert again.items_written == missions and len(parsed) == len(tree.files)
    assert catalog_bytes(out) == built


def test_an_item_spread_over_the_tree_keeps_few_extracted_records(tmp_path, monkeypatch):
    import stacsync.catalog.render as render

    tree = make_demo_tree(tmp_path / "data", missions=29, raster_size=64, points=200)
    age(tree.root)
    # One item per kind of product, its assets the missions: no item is complete before the
    # last mission is extracted.
    match = r"missions/(?P<asset>\d{6})/processed[^/]*/full/(?P<item>[^/.]+)\.(tif|laz)$"

    def build(name: str) -> dict[str, bytes]:
        out = tmp_path / name
        (tmp_path / f"{name}.toml").write_text(
            f'[source]\npath = "{tree.root}"\n[output]\npath = "{out}"\n'
            f'[manifest]\npath = "{tmp_path / name}.db"\n[extract]\nworkers = 2\n'
            f'[[collection]]\nid = "products"\ndescription = "Products."\nmatch = \'{match}\'\n'
        )
        summary = rescan(tmp_path / f"{name}.toml")
        assert summary.errors == 0 and summary.items_written == 7
        return catalog_bytes(out)

    whole = build("whole")
    held: list[int] = []
    real = render.Renderer.render_ready

    def counted(self, *args, **kwargs):
        real(self, *args, **kwargs)
        held.append(len(self._fresh))

    monkeypatch.setattr(render, "FRESH_RECORDS", 10)
    monkeypatch.setattr(render.Renderer, "render_ready", counted)
    assert build("bounded") == whole
    assert held and max(held) == 10  # the rest was parsed back from the manifest


def test_modify_one_file_in_200_rewrites_one_item(tmp_path, monkeypatch, schema_root, testdata):
    tree = make_demo_tree(tmp_path / "data", missions=29, raster_size=64, points=200)
    assert len(tree.files) >= 200
    age(tree.root)
    config = tmp_path / "stacsync.toml"
    config.write_text(demo_config_toml(tree, tmp_path / "catalog", tmp_path / "db.sqlite"))
    first = rescan(config)
    assert first.added == len(tree.files) and first.errors == 0
    assert first.items_written == 29

    mission = tree.missions[4]
    target = next(p for p in tree.files if mission in str(p) and p.name == "chm-mesh.tif")
    shutil.copyfile(testdata / "RGB.byte.tif", target)  # new bytes, far outside the extent
    os.utime(target, ns=(0, target.stat().st_mtime_ns - 30 * 10**9))
    rec = Recorder(monkeypatch, tree.root)
    features = _count_calls(monkeypatch, stacsync.catalog.index, "index_feature")
    summary = rescan(config)
    assert summary.modified == 1 and summary.unchanged == len(tree.files) - 1
    assert rec.extracted == [str(target)]
    assert len(features) == 1  # the index streams the other items' stored lines
    assert rec.written_items == [f"ofo-missions/{mission}/{mission}.json"]
    assert summary.items_written == 1
    assert rec.written["index.geojson"] == 1
    assert rec.written["ofo-missions/collection.json"] == 1  # the footprint grew the extent
    assert "catalog.json" not in rec.written  # it lists collections, which did not change
    validate_catalog(tmp_path / "catalog", schema_root)


def test_index_is_rebuilt_from_item_json_when_no_line_is_stored(real_tree, tmp_path):
    _quick(real_tree, tmp_path)
    index = tmp_path / "catalog" / "index.geojson"
    clean = index.read_bytes()
    with sqlite3.connect(tmp_path / "stacsync.db") as conn:  # as after the v2 migration
        conn.execute("UPDATE item SET feature = NULL")
    index.unlink()
    _quick(real_tree, tmp_path)
    assert index.read_bytes() == clean


def test_the_index_scan_reads_item_json_only_where_no_line_is_stored(real_tree, tmp_path):
    _quick(real_tree, tmp_path)
    with sqlite3.connect(tmp_path / "stacsync.db") as conn:
        first = conn.execute("SELECT min(item_id) FROM item").fetchone()[0]
        conn.execute("UPDATE item SET feature = NULL WHERE item_id = ?", (first,))
        stored = conn.execute("SELECT json FROM item WHERE item_id = ?", (first,)).fetchone()[0]
    db = Manifest.open_reader(tmp_path / "stacsync.db")
    try:
        scanned = {iid: (line, text) for _cid, iid, line, text in db.iter_index_features()}
        texts = list(db.iter_item_texts())
    finally:
        db.close()
    assert scanned.pop(first) == (None, stored)
    assert scanned and all(line and text is None for line, text in scanned.values())
    assert len(texts) == len(scanned) + 1 and stored in texts  # the geoparquet copy's input


def _count_calls(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_output_is_deterministic(real_tree, tmp_path):
    _quick(real_tree, tmp_path / "a")
    a = catalog_bytes(tmp_path / "a" / "catalog")
    _quick(real_tree, tmp_path / "b")
    assert catalog_bytes(tmp_path / "b" / "catalog") == a


def test_crash_leftovers_are_repaired(real_tree, tmp_path):
    _quick(real_tree, tmp_path)
    out = tmp_path / "catalog"
    clean = catalog_bytes(out)
    item = next(out.glob("drone/*/*.json"))
    item.unlink()  # lost file
    (out / "index.geojson").write_text('{"type": "FeatureCol')  # half-written by someone
    with sqlite3.connect(tmp_path / "stacsync.db") as conn:  # a crash between commit and render
        conn.execute("UPDATE item SET dirty = 1")
        conn.execute("UPDATE pass SET finished = NULL WHERE id = (SELECT max(id) FROM pass)")
    (item.parent / ".stacsync-tmp-abc").write_text("partial")
    _quick(real_tree, tmp_path)
    assert catalog_bytes(out) == clean


def test_pass_limited_to_given_paths(real_tree, tmp_path, monkeypatch):
    settings = quick_settings(real_tree, tmp_path / "catalog", tmp_path / "stacsync.db")
    rescan(settings)
    new = real_tree / "rasters" / "copy.tif"
    shutil.copyfile(real_tree / "rasters" / "elev.tif", new)
    (real_tree / "rasters" / "RGB.byte.tif").unlink()
    (real_tree / "clouds" / "lidar" / "2d_test.tif").unlink()  # not named: must stay
    rec = Recorder(monkeypatch, real_tree)
    with Manifest.open_writer(settings.manifest_path) as db:
        summary = SyncPass(settings, db).run(paths=["rasters/copy.tif", "rasters/RGB.byte.tif"])
    assert (summary.added, summary.removed, summary.unchanged) == (1, 1, 0)
    assert rec.extracted == [str(new)]
    with Manifest.open_reader(settings.manifest_path) as db:
        assert queries.show(db, "clouds/lidar/2d_test.tif") is not None


def test_racy_same_second_change_is_caught_next_pass(copy_testdata, tmp_path):
    """A rewrite that keeps size and mtime right after a scan must not go unnoticed."""
    src = copy_testdata("elev.tif", dest=tmp_path / "racy")
    target = src / "elev.tif"
    first = _quick(src, tmp_path)  # mtime is 'now': racy
    assert first.added == 1
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime as scanned
    second = _quick(src, tmp_path)
    assert second.modified == 1
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        assert queries.show(db, "elev.tif")["checksum"] == "1220" + hashlib.sha256(data).hexdigest()
    third = _quick(src, tmp_path)  # now old enough: no more re-checks... unless still racy
    assert third.modified == 0 and third.added == 0


def test_hostile_file_names_stay_inside_the_output(copy_testdata, tmp_path, schema_root):
    src = tmp_path / "names"
    names = ["a b/ünïcode ø.tif", "x" * 200 + ".tif", "-rf.tif", "..tif", "c/..weird...tif"]
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copy_testdata("byte.tif", dest=tmp_path / "tmp") / "byte.tif", src / name)
    summary = _quick(src, tmp_path)
    assert summary.items_written == len(names) and summary.errors == 0
    out = (tmp_path / "catalog").resolve()
    written = [p.resolve() for p in tmp_path.rglob("*.json")]
    assert written and all(out in p.parents for p in written)
    for path in out.rglob("*"):
        assert len(path.name) <= 255 and path.name.isascii()
    validate_catalog(out, schema_root)


def test_csv_workflow_groups_files_by_plot(copy_testdata, tmp_path, schema_root, monkeypatch):
    src = tmp_path / "src"
    for name, source in [
        ("west_a.tif", "RGB.byte.tif"),
        ("west_b.tif", "rgb_lzw.tif"),
        ("north.laz", "autzen_trim.laz"),
        ("stray.tif", "byte.tif"),
    ]:
        copy_testdata(source, dest=src)
        (src / source).rename(src / name)
    age(src)
    (src / "plots.csv").write_text(CSV)
    config = tmp_path / "stacsync.toml"
    config.write_text(CSV_CONFIG)
    summary = rescan(config)
    assert summary.items_written == 2 and summary.errors == 1
    out = tmp_path / "catalog" / "srer-2019"
    p1 = json.loads((out / "p1" / "p1.json").read_text())
    assert sorted(p1["assets"]) == ["thumbnail", "west_a", "west_b"]
    assert p1["assets"]["thumbnail"]["roles"] == ["thumbnail"]
    assert p1["properties"]["datetime"] == "2019-05-19T00:00:00Z"
    assert p1["properties"]["sci:doi"] == "10.1002/ecs2.3649"
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        assert "stray" in db.errors()[0]["error"]
    validate_catalog(tmp_path / "catalog", schema_root)

    # A changed table row re-renders only the item it describes.
    (src / "plots.csv").write_text(CSV.replace("north,P2,2019-05-21", "north,P2,2019-06-02"))
    rec = Recorder(monkeypatch, src)
    again = rescan(config)
    assert rec.extracted == []
    assert rec.written_items == ["srer-2019/p2/p2.json"] and again.items_written == 1
    p2 = json.loads((out / "p2" / "p2.json").read_text())
    assert p2["properties"]["datetime"] == "2019-06-02T00:00:00Z"


def test_a_reader_bug_costs_one_file_not_the_pass(real_tree, tmp_path, monkeypatch):
    import stacsync.pipeline.examine

    real = stacsync.pipeline.examine.extract_file

    def flaky(path, **kwargs):
        if path.endswith("elev.tif"):
            raise ZeroDivisionError("bug")
        return real(path, **kwargs)

    monkeypatch.setattr(stacsync.pipeline.examine, "extract_file", flaky)
    summary = _quick(real_tree, tmp_path)
    assert summary.errors == 1 and summary.items_written == len(GOOD) - 1
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        assert "unexpected error" in queries.show(db, "rasters/elev.tif")["error"]


def test_an_item_that_cannot_render_stays_dirty(real_tree, tmp_path, monkeypatch):
    real = stacsync.catalog.items.render_item

    def broken(item, links):
        if item.item_id.endswith("elev-tif"):
            raise ValueError("boom")
        return real(item, links)

    monkeypatch.setattr(stacsync.catalog.items, "render_item", broken)
    summary = _quick(real_tree, tmp_path)
    assert summary.render_errors == 1 and summary.items_written == len(GOOD) - 1
    monkeypatch.setattr(stacsync.catalog.items, "render_item", real)
    again = _quick(real_tree, tmp_path)
    assert again.items_written == 1 and again.render_errors == 0


class _FlakySource(LocalSource):
    """Reads of some files fail with errno 121 (EREMOTEIO), as on a CyVerse FUSE mount."""

    def __init__(self, *args, failures: dict[str, int], **kwargs):
        super().__init__(*args, **kwargs)
        self.failures = failures  # path -> how many more opens fail
        self.attempts: dict[str, int] = {}

    def open(self, relpath):
        self.attempts[relpath] = self.attempts.get(relpath, 0) + 1
        if self.failures.get(relpath, 0) > 0:
            self.failures[relpath] -= 1
            raise OSError(121, "Remote I/O error", self.local_path(relpath))
        return super().open(relpath)


def test_transient_io_errors_are_retried_then_recorded_then_picked_up(real_tree, tmp_path):
    settings = quick_settings(real_tree, tmp_path / "catalog", tmp_path / "stacsync.db")
    include = lambda p: is_included(settings, p)  # noqa: E731
    source = _FlakySource(
        real_tree,
        include=include,
        failures={"rasters/elev.tif": 2, "clouds/lidar/autzen_trim.laz": 99},
    )
    with Manifest.open_writer(settings.manifest_path) as db:
        summary = SyncPass(settings, db, source=source).run()
        errors = db.errors()
    assert source.attempts["rasters/elev.tif"] == 3  # two failures, then success
    assert source.attempts["clouds/lidar/autzen_trim.laz"] == 4  # bounded retries
    assert summary.items_written == len(GOOD) - 1
    assert [(e["path"], e["error_transient"]) for e in errors] == [
        ("clouds/lidar/autzen_trim.laz", 1)
    ]
    assert "Remote I/O error" in errors[0]["error"]
    # The mount recovers: the next pass looks again at the file it could not read.
    source.failures.clear()
    with Manifest.open_writer(settings.manifest_path) as db:
        again = SyncPass(settings, db, source=source).run()
    assert again.errors == 0 and again.items_written == 1


def test_symlink_loop_is_reported_not_followed_forever(real_tree, tmp_path):
    (real_tree / "rasters" / "loop").symlink_to(real_tree, target_is_directory=True)
    (real_tree / "dangling.tif").symlink_to(tmp_path / "nowhere.tif")
    summary = _quick(real_tree, tmp_path)
    assert summary.added == len(GOOD) and summary.errors == 0
    problems = summary.listing_problems
    assert "rasters/loop: a symlink loop (it leads back to a folder above it), not followed" in (
        problems
    )
    assert "dangling.tif: a broken symlink (its target does not exist), skipped" in problems


def test_files_younger_than_settle_time_are_deferred(copy_testdata, tmp_path):
    import dataclasses

    src = copy_testdata("elev.tif", "RGB.byte.tif", dest=tmp_path / "fresh")
    age(src)
    (src / "elev.tif").touch()  # being written right now
    settings = quick_settings(src, tmp_path / "catalog", tmp_path / "stacsync.db")
    settings = dataclasses.replace(settings, settle_seconds=30)
    summary = rescan(settings)
    assert (summary.added, summary.deferred) == (1, 1)
    age(src)
    assert rescan(settings).added == 1


def test_output_inside_the_source_is_never_listed(real_tree, tmp_path):
    out = real_tree / "stac"
    (out / "junk").mkdir(parents=True)
    shutil.copyfile(real_tree / "rasters" / "elev.tif", out / "junk" / "copy.tif")
    summary = rescan(source=real_tree, output=out, manifest=tmp_path / "stacsync.db")
    assert summary.added == len(GOOD)
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        assert not queries.files(db, glob="stac/*")


def test_a_headers_only_pass_publishes_grid_boxes_and_no_thumbnails(real_tree, tmp_path):
    import dataclasses

    settings = quick_settings(real_tree, tmp_path / "catalog", tmp_path / "db.sqlite")
    settings = dataclasses.replace(settings, read_overviews=False)
    with Manifest.open_writer(settings.manifest_path) as db:
        summary = SyncPass(settings, db).run()
        rows = db.conn.execute("SELECT meta_json FROM asset_file WHERE meta_json IS NOT NULL")
        methods = {json.loads(text)["footprint_method"] for (text,) in rows}
    assert summary.added == len(GOOD) and summary.errors == 0
    unread = "grid box: overviews not read (extract.read_overviews = false)"
    assert methods == {unread, "header box"}
    assert not list((tmp_path / "catalog").rglob("*.png"))
