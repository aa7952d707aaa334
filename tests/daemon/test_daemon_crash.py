"""Crash safety of `stacsync run`: kill -9 at many moments of a large pass, restart, compare."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import time
from pathlib import Path

from helpers import catalog_bytes
from processes import DaemonProcess, cli, wait_for, write_config

KILLS = 8  # each aimed at a phase: half inside list/extract/commit, half in render
FILES = 200
CHANGED_PER_CYCLE = 12
PHASES = ("list/extract/commit", "render/publish")  # where the kills are aimed, in turn
VARIANTS = {".tif": ("byte.tif", "2d_test.tif"), ".las": ("1.0_0.las", "autzen-utm.las")}


def _put(testdata: Path, target: Path, variant: int) -> None:
    name = VARIANTS[target.suffix][variant]
    shutil.copyfile(testdata / name, target)
    old = time.time_ns() - 120 * 10**9  # settled long ago: the startup pass takes it at once
    os.utime(target, ns=(old, old))


def _mutate(src: Path, testdata: Path, rng: random.Random, untouched: list[Path], serial: int):
    """Give the next pass real work in every phase: modified, removed and new files.

    A file changes at most once, to its other variant: content that came back to an earlier
    checksum would be a *touch*, whose item keeps its older content date by design, and a
    fresh rescan cannot know that history.
    """
    for _ in range(CHANGED_PER_CYCLE):
        path = untouched.pop()
        _put(testdata, path, 1 - VARIANTS[path.suffix].index(_variant_of(path, testdata)))
    untouched.pop().unlink()
    for k in range(2):
        folder = src / f"d{rng.randrange(10)}"
        _put(testdata, folder / f"new{serial}-{k}{rng.choice(['.tif', '.las'])}", rng.randrange(2))


def _variant_of(path: Path, testdata: Path) -> str:
    size = path.stat().st_size
    return next(n for n in VARIANTS[path.suffix] if (testdata / n).stat().st_size == size)


def _last_pass(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM pass").fetchone()[0]


def _phase(db: Path, before: int) -> str:
    """Where the kill landed, read from the manifest it left."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        last, finished = conn.execute(
            "SELECT id, finished FROM pass ORDER BY id DESC LIMIT 1"
        ).fetchone() or (0, None)
        dirty = conn.execute("SELECT count(*) FROM item WHERE dirty = 1").fetchone()[0]
    if last <= before:
        return "start-up"  # imports, lock, watches: no pass begun
    if finished:
        return "after the pass"
    return "render/publish" if dirty else "list/extract/commit"


def _seen(db: Path, before: int) -> str:
    """`_phase` while the daemon may still be creating the manifest."""
    try:
        return _phase(db, before) if db.exists() else "start-up"
    except sqlite3.OperationalError:  # no pass table yet
        return "start-up"


def _assert_whole(catalog: Path) -> None:
    """No catalog file a reader can see is ever half-written."""
    for path in catalog.rglob("*"):
        if not path.is_file() or path.name.startswith(".stacsync-tmp-"):
            continue
        data = path.read_bytes()
        if path.suffix == ".png":  # a thumbnail: signature first, IEND chunk last
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[-12:-4] == b"\0\0\0\0IEND"
        else:
            json.loads(data)


def test_kill_9_anywhere_then_restart_converges_to_a_clean_rescan(tmp_path, testdata):
    rng = random.Random(2)
    src = tmp_path / "src"
    for i in range(FILES):
        suffix = ".tif" if i % 2 else ".las"
        folder = src / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        _put(testdata, folder / f"f{i:03d}{suffix}", rng.randrange(2))
    untouched = sorted(src.rglob("*.*"))
    rng.shuffle(untouched)
    config = write_config(tmp_path)
    db = tmp_path / "stacsync.db"

    phases: list[str] = []
    for serial in range(KILLS):
        if serial:
            _mutate(src, testdata, rng, untouched, serial)
        before = _last_pass(db)
        daemon = DaemonProcess(config, "--settle-seconds", "1")
        try:
            if serial % 6 == 5:
                time.sleep(rng.uniform(0.05, 0.4))  # during imports, locking, watching
            else:
                daemon.wait_log("watching", timeout=60)  # a loaded machine starts slowly
                aims = (PHASES[serial % 2], "after the pass")  # the pass may end between looks
                daemon.run_until(lambda before=before, aims=aims: _seen(db, before) in aims)
            daemon.signal(signal.SIGKILL)
        finally:
            daemon.stop()  # kills it if a wait above failed
        if db.exists():
            phases.append(_phase(db, before))
        _assert_whole(tmp_path / "catalog")

    daemon = DaemonProcess(config, "--settle-seconds", "1")
    daemon.wait_log("startup pass (full)", timeout=60)
    # Removals wait for a second look: idle once the last pass line has nothing waiting.
    wait_for(lambda: "waiting to settle" not in daemon.log().strip().splitlines()[-1], 30)
    code, _ = daemon.stop()
    assert code == 0, daemon.log()

    clean = write_config(tmp_path / "clean", source=str(src))
    done = cli("rescan", "--config", str(clean), "--json")
    assert done.returncode == 0, done.stderr
    ours, theirs = (
        catalog_bytes(tmp_path / "catalog"),
        catalog_bytes(tmp_path / "clean" / "catalog"),
    )
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs
    print("kill phases:", phases)
    inside = [p for p in phases if p in PHASES]
    assert len(inside) >= KILLS // 3, f"too few kills landed inside a pass: {phases}"
    assert set(inside) == set(PHASES), f"kills missed a phase: {phases}"
