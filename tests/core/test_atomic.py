"""Tests for stacsync.core.atomic: the one atomic-write helper every writer of files uses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stacsync.core.atomic import TEMP_PREFIX, atomic_path, atomic_writer


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith((TEMP_PREFIX, ".fetch-"))]


def test_the_new_bytes_replace_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    with atomic_writer(target) as out:
        out.write(b"new")
        assert target.read_bytes() == b"old"  # not yet: readers still see the old file
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as out:
        out.write(b"half")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_the_bytes_are_on_disk_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_writer(tmp_path / "a") as out:
        out.write(b"x")
    with atomic_path(tmp_path / "b") as path:
        path.write_bytes(b"y")
    assert events == ["fsync", "replace", "fsync", "replace"]


def test_mode_none_keeps_a_private_file_private(tmp_path: Path) -> None:
    with atomic_writer(tmp_path / "a", mode=None) as out:
        out.write(b"x")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o600
    with atomic_writer(tmp_path / "b", mode=0o640) as out:
        out.write(b"x")
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o640


def test_a_path_writer_can_set_the_times_that_are_published(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    with atomic_path(target, mode=None, prefix=".fetch-", suffix=".csv") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".fetch-")
        assert tmp.name.endswith(".csv")
        tmp.write_bytes(b"id\n1\n")
        os.utime(tmp, ns=(10**18, 10**18))
    assert target.read_bytes() == b"id\n1\n"
    assert target.stat().st_mtime_ns == 10**18
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError("source went away")
    assert target.read_bytes() == b"id\n1\n"
    assert leftovers(tmp_path) == []
