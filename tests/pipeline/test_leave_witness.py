"""A full one-shot pass leaves a witness only when the next pass would do and tell nothing."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import pytest
from helpers import CSV, CSV_CONFIG, age
from processes import write_config

import stacsync.pipeline.witness as pipeline_witness
from stacsync.config.load import load_settings
from stacsync.config.settings import Settings
from stacsync.config.text import example_config
from stacsync.manifest import witness
from stacsync.pipeline.assemble import make_source
from stacsync.pipeline.sync import SyncPass

FILES = ["RGB.byte.tif", "autzen_trim.laz"]


@pytest.fixture
def root(tmp_path: Path, copy_testdata) -> Path:
    root = tmp_path / "t"
    write_config(root)
    copy_testdata(*FILES, dest=root / "src")
    age(root / "src")
    return root


def _vouched(root: Path) -> witness.Witness | None:
    conn = sqlite3.connect(root / "stacsync.db")
    try:
        found = witness.vouched(conn)
        return found if found is not None and witness.unchanged(conn, found) else None
    finally:
        conn.close()


def test_every_settings_field_was_reviewed():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert set(pipeline_witness.REVIEWED_SETTINGS) == fields, (
        "a new Settings field: may a pass with nothing changed act on it? Add it to "
        "REVIEWED_SETTINGS in stacsync/pipeline/witness.py (and refuse it there if so)"
    )


@pytest.mark.parametrize("layout", ["files", "ofo", "ofo-s3", "csv"])
def test_the_manifest_is_found_as_the_loader_finds_it(tmp_path: Path, layout: str):
    config = tmp_path / "stacsync.toml"
    config.write_text(example_config(layout))
    settings = load_settings(config)
    assert witness.manifest_path_in(config, config.read_text()) == settings.manifest_path


def test_the_recorded_source_is_the_pass_source(root: Path):
    settings = load_settings(root / "stacsync.toml")
    plain = make_source(settings)
    recorded, recorder = pipeline_witness._recorded_source(settings)
    assert recorder is not None and recorder.root == str(plain.root)
    assert (recorded.root, recorded.follow, recorded._prune_paths) == (
        plain.root,
        plain.follow,
        plain._prune_paths,
    )
    assert (recorded.include.func, recorded.include.args) == (
        plain.include.func,
        plain.include.args,
    )
    assert recorded.list().entries == plain.list().entries


def test_a_pass_that_finds_nothing_to_do_leaves_a_witness(root: Path):
    summary = pipeline_witness.rescan(root / "stacsync.toml")
    assert summary.added == len(FILES)
    assert _vouched(root) is None  # a pass that changed something: the next one vouches
    pipeline_witness.rescan(root / "stacsync.toml")
    found = _vouched(root)
    assert found is not None
    assert found.summary["unchanged"] == len(FILES) and found.summary["added"] == 0
    assert found.source_root == str(root / "src")
    assert found.unwalked == ()
    assert "catalog.json" in found.output_files and "index.geojson" in found.output_files


def test_a_quick_pass_leaves_none_and_voids_the_last(root: Path):
    pipeline_witness.rescan(root / "stacsync.toml")
    pipeline_witness.rescan(root / "stacsync.toml")
    assert _vouched(root) is not None
    pipeline_witness.rescan(
        source=root / "src", output=root / "catalog", manifest=root / "stacsync.db"
    )
    assert _vouched(root) is None


def _edit(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def _refused(root: Path) -> None:
    for _ in range(2):  # the second pass finds nothing changed, and still cannot vouch
        pipeline_witness.rescan(root / "stacsync.toml")
    assert _vouched(root) is None


def test_none_while_files_are_deferred(root: Path):
    _edit(
        root / "stacsync.toml",
        '[source]\npath = "src"\n',
        '[source]\npath = "src"\nsettle_seconds = 3600\n',
    )
    _refused(root)


def test_none_when_the_listing_reports_problems(root: Path):
    os.mkfifo(root / "src" / "pipe.tif")
    _refused(root)


def test_none_while_the_parent_catalog_is_not_linked(root: Path, tmp_path: Path):
    parent = tmp_path / "nowhere" / "catalog.json"
    _edit(root / "stacsync.toml", "[output]\n", f"[output]\nparent_catalog = '{parent}'\n")
    _refused(root)


def test_none_when_the_config_changed_during_the_pass(root: Path, monkeypatch):
    real = pipeline_witness.load_settings

    def load_then_edit(path):
        settings = real(path)
        with open(path, "a") as config:
            config.write("# edited while the pass ran\n")
        return settings

    monkeypatch.setattr(pipeline_witness, "load_settings", load_then_edit)
    _refused(root)


def test_none_when_a_table_changed_during_the_pass(tmp_path: Path, copy_testdata, monkeypatch):
    src = tmp_path / "src"
    for name, source in [("west_a.tif", "RGB.byte.tif"), ("north.laz", "autzen_trim.laz")]:
        copy_testdata(source, dest=src)
        (src / source).rename(src / name)
    age(src)
    (src / "plots.csv").write_text(CSV)
    config = tmp_path / "stacsync.toml"
    config.write_text(CSV_CONFIG)
    pipeline_witness.rescan(config)
    pipeline_witness.rescan(config)
    assert _vouched(tmp_path) is not None  # tables untouched: vouched

    real_run = SyncPass.run
    moved = []

    def run_then_touch(self, paths=None):
        summary = real_run(self, paths)
        for table in self.layout.table_files():
            st = table.stat()
            os.utime(table, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
            moved.append(table)
        return summary

    monkeypatch.setattr(SyncPass, "run", run_then_touch)
    pipeline_witness.rescan(config)
    assert moved and _vouched(tmp_path) is None
