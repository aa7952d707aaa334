"""How a pass runs its per-file work: remote sources in many threads, results in work order.

A remote source whose every read waits 50 ms is read `extract.remote_threads` files at once:
the test counts reads in flight (what makes it ~N× faster), not seconds.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import threading
import time
from pathlib import Path

import pytest
from helpers import age, catalog_bytes

from stacsync.config.load import quick_settings
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import SyncPass
from stacsync.sources.local import LocalSource


class SlowRemote(LocalSource):
    """A folder that behaves like a store across a network: every open waits 50 ms."""

    remote = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def readable_path(self, relpath: str) -> str | None:
        return None  # read through open(), as iRODS and S3 objects are

    def open(self, relpath: str):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.05)  # the latency being modelled, not a wait for something to happen
            return super().open(relpath)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def tree(testdata: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(24):
        shutil.copyfile(testdata / "byte.tif", src / f"f{i:02d}.tif")
    age(src)
    return src


def _pass(tree: Path, out: Path, threads: int) -> SlowRemote:
    settings = quick_settings(tree, out / "catalog", out / "m.db")
    settings = dataclasses.replace(settings, remote_threads=threads, workers=2)
    source = SlowRemote.for_settings(settings)
    with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
        summary = SyncPass(settings, db, source=source).run()
    assert summary.added == 24 and summary.errors == 0
    return source


def test_a_remote_source_is_read_remote_threads_files_at_once(tree: Path, tmp_path: Path):
    one = _pass(tree, tmp_path / "one", threads=1)
    many = _pass(tree, tmp_path / "many", threads=32)
    assert one.most == 1
    # 32 threads keep at least 10 reads waiting at once: at least 10× the throughput of one.
    assert many.most >= 10
    assert catalog_bytes(tmp_path / "one" / "catalog") == catalog_bytes(
        tmp_path / "many" / "catalog"
    )


def test_ordered_map_keeps_order_and_at_most_ahead_calls_outstanding():
    from concurrent.futures import ThreadPoolExecutor

    from stacsync.pipeline.extraction import ordered_map

    taken = 0
    seen: list[tuple[int, int]] = []  # (item, results taken when its call was submitted)

    def call(i: int) -> int:
        seen.append((i, taken))
        return i * i

    with ThreadPoolExecutor(max_workers=4) as pool:
        out = []
        for value in ordered_map(pool, call, range(1000), ahead=8):
            out.append(value)
            taken += 1
    assert out == [i * i for i in range(1000)]
    # Submitted only once the results before it were taken: never more than 8 ahead.
    assert max(i - before for i, before in seen) <= 8
    assert len(seen) == 1000


def test_ordered_map_cancels_what_has_not_started_when_the_caller_stops():
    from concurrent.futures import ThreadPoolExecutor

    from stacsync.pipeline.extraction import ordered_map

    release, busy = threading.Event(), threading.Event()
    started: list[int] = []

    def call(i: int) -> int:
        started.append(i)
        if i:
            busy.set()
            release.wait()  # the one worker stays busy with item 1
        return i

    with ThreadPoolExecutor(max_workers=1) as pool:
        results = ordered_map(pool, call, range(100), ahead=5)
        assert next(results) == 0  # items 0..4 were submitted to get it
        assert busy.wait(timeout=60)
        results.close()  # 2, 3 and 4 have not started: cancelled
        release.set()
    assert started == [0, 1]


def test_a_pass_lets_go_of_each_files_work_once_it_is_committed(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A first build has a Work (a stat and a placement) per file: made all at once and kept to
    # the end, they were a big store's largest objects from the diff to the catalog's render.
    # Nor is a file waiting its turn held as a listing entry (`SourceEntry`): it is packed.
    import stacsync.pipeline.sync
    from stacsync.catalog.render import Renderer
    from stacsync.core.records import SourceEntry
    from stacsync.pipeline.examine import Work
    from stacsync.pipeline.extraction import AHEAD

    def live() -> tuple[int, int]:
        gc.collect()
        objects = gc.get_objects()
        works = sum(1 for o in objects if isinstance(o, Work))
        return works, sum(1 for o in objects if isinstance(o, SourceEntry))

    left_works, left_entries = live()  # by earlier tests

    def held() -> int:
        """Files held as a Work or as an entry (a Work holds its entry)."""
        works, entries = live()
        return max(works - left_works, entries - left_entries)

    at_commit: list[int] = []
    at_render: list[int] = []
    commit, render = SyncPass._commit, Renderer.render

    def counted_commit(self, batch, summary):
        at_commit.append(held())
        commit(self, batch, summary)

    def counted_render(self, *args, **kwargs):
        at_render.append(held())
        return render(self, *args, **kwargs)

    monkeypatch.setattr(stacsync.pipeline.sync, "COMMIT_BATCH", 4)
    monkeypatch.setattr(SyncPass, "_commit", counted_commit)
    monkeypatch.setattr(Renderer, "render", counted_render)
    settings = quick_settings(tree, tmp_path / "catalog", tmp_path / "m.db")
    settings = dataclasses.replace(settings, workers=1)
    with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
        summary = SyncPass(settings, db).run()
    assert summary.added == 24 and summary.errors == 0
    # Before each commit of 4: those 4 (so the count sees them) and the calls the one thread
    # was handed ahead of them, never the files not taken yet. The catalog renders with none.
    assert len(at_commit) == 7
    assert all(4 <= live <= 4 + AHEAD for live in at_commit[:6])
    assert at_render == [0]
