"""A local output's batches: one file-system sync per batch, before the manifest records it.

Per-file fsyncs were most of the time of writing a small item; durability must not be lost.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import age

import stacsync.publish.local
from stacsync.core.errors import OutputError
from stacsync.pipeline.sync import rescan
from stacsync.publish.local import LocalOutput


@pytest.fixture
def syncs(monkeypatch) -> list[str]:
    """Records fsyncs and file-system syncs, in order, and still does them."""
    events: list[str] = []
    real_fsync, real_sync = os.fsync, stacsync.publish.local.sync_file_system

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def sync_file_system(path) -> None:
        events.append(f"sync {Path(path).name}")
        real_sync(path)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(stacsync.publish.local, "sync_file_system", sync_file_system)
    return events


def test_a_batch_syncs_once_at_its_end(tmp_path: Path, syncs: list[str]) -> None:
    out = LocalOutput(tmp_path / "out")
    with out.batch():
        for i in range(5):
            out.write(f"a/{i}.json", b"{}")
        with out.batch():  # nested: the outer one syncs
            out.write("b.json", b"{}")
        assert syncs == []
    assert syncs == ["sync out"]
    assert sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == [
        f"{i}.json" for i in range(5)
    ]


def test_outside_a_batch_every_write_is_fsynced(tmp_path: Path, syncs: list[str]) -> None:
    out = LocalOutput(tmp_path / "out")
    out.write("a.json", b"{}")
    out.write("b.json", b"{}")
    with out.batch():  # nothing written: nothing to sync
        pass
    assert syncs == ["fsync", "fsync"]


def test_a_batch_that_raises_is_not_synced_and_leaves_no_batch(
    tmp_path: Path, syncs: list[str]
) -> None:
    out = LocalOutput(tmp_path / "out")
    with pytest.raises(RuntimeError), out.batch():
        out.write("a.json", b"{}")
        raise RuntimeError("render failed")
    assert syncs == []
    out.write("b.json", b"{}")
    assert syncs == ["fsync"]


def test_items_are_synced_before_the_manifest_records_them(
    tmp_path: Path, testdata: Path, monkeypatch
) -> None:
    src, out, db = tmp_path / "src", tmp_path / "out", tmp_path / "m.db"
    src.mkdir()
    for i in range(3):
        shutil.copyfile(testdata / "byte.tif", src / f"plot_{i}.tif")
    age(src)
    seen: list[tuple[int, int]] = []
    real_sync = stacsync.publish.local.sync_file_system

    def sync_file_system(path) -> None:
        # Another connection sees only committed rows: none may yet name an item written here.
        with sqlite3.connect(db) as other:
            recorded = other.execute("SELECT count(*) FROM item WHERE json_hash IS NOT NULL")
            seen.append((recorded.fetchone()[0], len(list(out.rglob("plot_*.json")))))
        real_sync(path)

    monkeypatch.setattr(stacsync.publish.local, "sync_file_system", sync_file_system)
    summary = rescan(source=src, output=out, manifest=db)
    assert summary.items_written == 3
    assert seen and seen[0] == (0, 3)


@pytest.mark.parametrize("relpath", ["../x.json", "/etc/x.json", "a/../../x.json", "", ".", ".."])
def test_a_path_spelled_outside_the_output_is_refused(tmp_path: Path, relpath: str) -> None:
    out = LocalOutput(tmp_path / "out")
    out.check_writable()
    with pytest.raises(OutputError, match="outside the output folder"):
        out.write(relpath, b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_folder_that_is_a_symlink_out_of_the_output_is_refused(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path / "out")
    out.check_writable()
    (tmp_path / "elsewhere").mkdir()
    out.write("coll/a/a.json", b"{}")
    out.delete("coll/a/a.json")  # removes coll/a and coll: a later symlink is checked anew
    (tmp_path / "out" / "coll").mkdir()
    (tmp_path / "out" / "coll" / "a").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="outside the output folder"):
        out.write("coll/a/a.json", b"{}")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    out.write("coll/./b/b.json", b"{}")  # spelled oddly, but inside
    assert (tmp_path / "out" / "coll" / "b" / "b.json").read_bytes() == b"{}"


def test_between_batches_a_folder_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path / "out")
    out.check_writable()
    (tmp_path / "elsewhere").mkdir()
    with out.batch():
        out.write("coll/a/a.json", b"{}")
    # Someone else swaps the folder for a symlink while no batch runs.
    (tmp_path / "out" / "coll" / "a" / "a.json").unlink()
    (tmp_path / "out" / "coll" / "a").rmdir()
    (tmp_path / "out" / "coll" / "a").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="outside the output folder"), out.batch():
        out.write("coll/a/a.json", b"{}")
    assert list((tmp_path / "elsewhere").iterdir()) == []
