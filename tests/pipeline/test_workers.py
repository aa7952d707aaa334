"""Tests for stacsync.pipeline.workers: header extraction in processes gives what threads give."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from helpers import BAD, GOOD, age, catalog_bytes

import stacsync.pipeline.examine
import stacsync.pipeline.sync
import stacsync.pipeline.workers
from stacsync.config.load import quick_settings
from stacsync.core.ids import item_id
from stacsync.manifest.db import Manifest
from stacsync.pipeline.batches import examine_batch
from stacsync.pipeline.examine import Result, Work
from stacsync.pipeline.sync import SyncPass
from stacsync.pipeline.workers import ExtractorPool


def crash_on_marked_files(batch: list[Work], settings, token: str) -> list[Result]:
    """Module level, so worker processes can unpickle it; dies like a segfaulting reader."""
    if any("crash" in w.entry.path for w in batch):
        os._exit(139)
    return examine_batch(batch, settings, token)


def sigkilled_once(batch: list[Work], settings, token: str) -> list[Result]:
    """Dies by SIGKILL (an OOM kill) the first time a batch holds a file named kill-*."""
    for w in batch:
        marker = Path(settings.source_path, w.entry.path).with_suffix(".killed")
        if w.entry.path.startswith("kill-") and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    return examine_batch(batch, settings, token)


def _build(src: Path, out: Path, workers: int = 2) -> tuple[object, dict[str, str]]:
    settings = quick_settings(src, out / "catalog", out / "db.sqlite")
    settings = settings.__class__(**{**settings.__dict__, "workers": workers})
    with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
        summary = SyncPass(settings, db).run()
        errors = dict(db.conn.execute("SELECT path, error FROM errors"))
    return summary, errors


def _pools_run(task, monkeypatch) -> None:
    """Builds of a few files use worker processes, which run `task` for each batch."""

    class PoolWithTask(ExtractorPool):
        def __init__(self, workers: int):
            super().__init__(workers, task=task)

    monkeypatch.setattr(stacsync.pipeline.workers, "ExtractorPool", PoolWithTask)
    monkeypatch.setattr(stacsync.pipeline.examine, "MIN_PROCESS_FILES", 2)


def test_a_reader_crash_costs_only_its_file(copy_testdata, tmp_path, monkeypatch) -> None:
    src = copy_testdata(*GOOD[:6], dest=tmp_path / "drone")
    (src / "crash.tif").write_bytes((src / GOOD[0]).read_bytes())
    age(src)

    _pools_run(crash_on_marked_files, monkeypatch)
    summary, errors = _build(src, tmp_path / "out")
    assert summary.added == 7 and summary.items_written == 6
    assert list(errors) == ["crash.tif"]
    assert errors["crash.tif"].startswith("crash.tif: the reader crashed on this file")


def test_first_builds_with_4_2_and_1_workers_are_byte_identical(
    copy_testdata, tmp_path, monkeypatch
):
    src = tmp_path / "drone"
    copy_testdata(*GOOD, *BAD, dest=src)
    age(src)
    started: list[int] = []
    rendered_in_workers: list[int] = []

    class CountedPool(ExtractorPool):
        def __init__(self, workers: int):
            started.append(workers)
            rendered_in_workers.append(0)
            super().__init__(workers)

        def map(self, fn, jobs):
            rendered_in_workers[-1] += len(jobs)
            return super().map(fn, jobs)

    monkeypatch.setattr(stacsync.pipeline.workers, "ExtractorPool", CountedPool)
    monkeypatch.setattr(stacsync.pipeline.examine, "MIN_PROCESS_FILES", 5)
    catalogs, written = [], []
    for workers in (4, 2, 1):
        out = tmp_path / f"w{workers}"
        summary, errors = _build(src, out, workers)
        assert summary.added == len(GOOD) + len(BAD)
        assert summary.errors == len(BAD)
        catalogs.append((catalog_bytes(out / "catalog"), errors))
        written.append(summary.items_written)
    assert started == [4, 2]  # the one-worker build reads in its own thread
    # With processes, the items are rendered there too; the coordinator only writes them.
    assert rendered_in_workers == written[:2] and written[0] == len(GOOD)
    assert catalogs[0] == catalogs[1] == catalogs[2]


KILLED_PASS = """
import os, sys, time
sys.path.insert(0, {here!r})
import pidof
from stacsync.pipeline.workers import ExtractorPool

if __name__ == "__main__":
    pool = ExtractorPool(2)
    print(pool.map(pidof.worker_pid, [None, None])[0], flush=True)
    time.sleep(120)
"""


def test_workers_end_when_their_pass_is_killed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "pidof.py").write_text(
        "import os\n\ndef worker_pid(job):\n    return os.getpid()\n"
    )
    script = tmp_path / "killed_pass.py"
    script.write_text(KILLED_PASS.format(here=str(tmp_path)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    os.kill(worker, 0)  # alive while the pass is
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker {worker} outlived its killed pass")


def test_a_worker_killed_mid_batch_loses_nothing(copy_testdata, tmp_path, monkeypatch):
    """Every file in flight when a worker is SIGKILLed is read again in a fresh pool."""
    src = tmp_path / "drone"
    copy_testdata(*GOOD, dest=src)
    (src / "kill-me.tif").write_bytes((src / "elev.tif").read_bytes())
    age(src)

    _pools_run(sigkilled_once, monkeypatch)
    summary, _errors = _build(src, tmp_path / "out")
    assert (src / "kill-me.killed").exists()  # the worker did die on it
    assert summary.added == len(GOOD) + 1 and summary.errors == 0
    assert summary.items_written == len(GOOD) + 1


def test_an_item_that_cannot_be_rendered_costs_only_itself(copy_testdata, tmp_path, monkeypatch):
    import stacsync.catalog.item_render as item_render

    src = copy_testdata(*GOOD[:3])
    age(src)
    real = item_render.render_all
    doomed = item_id(GOOD[1], "searchable")

    def one_fails(jobs, offload):
        # Every time it comes up, one item's render raises (in a worker it would return this).
        fail = [job.item.item_id == doomed for job in jobs]
        done = real([job for job, bad in zip(jobs, fail, strict=True) if not bad], offload)
        ok = iter(done)
        broken = item_render.render_job(item_render.ItemJob(None, (), None))
        return [broken if bad else next(ok) for bad in fail]

    monkeypatch.setattr(item_render, "render_all", one_fails)
    settings = quick_settings(src, tmp_path / "catalog", tmp_path / "db.sqlite")
    with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
        summary = SyncPass(settings, db).run()
        dirty = db.dirty_items()
    assert "AttributeError" in item_render.render_job(
        dataclasses.replace(item_render.ItemJob(None, (), None))
    )
    # Tried once as soon as its file was committed; not again in this pass: in the next.
    assert (summary.items_written, summary.render_errors) == (2, 1)
    assert dirty == [(src.name, doomed)]
    monkeypatch.setattr(item_render, "render_all", real)
    with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
        again = SyncPass(settings, db).run()
    assert (again.items_written, again.render_errors) == (1, 0)


def slow_batch(batch: list[Work], settings, token: str) -> list[Result]:
    """Takes its time, so that batches still wait on the pool when something kills it."""
    time.sleep(0.3)
    return examine_batch(batch, settings, token)


def sigkill_if_worker(parent: int) -> None:
    """Kills the worker process it runs in (never the pass itself, where a fallback runs it)."""
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_while_rendering_breaks_only_its_own_pool(
    copy_testdata, tmp_path, monkeypatch
):
    """Batches still queued on the dead pool are sent again; the fresh pool that work has
    already gone to is kept (discarding it would cancel that work)."""
    src = copy_testdata(*GOOD, dest=tmp_path / "drone")
    age(src)
    maps: list[int] = []

    class RenderKillingPool(ExtractorPool):
        def __init__(self, workers: int):
            super().__init__(workers, task=slow_batch)

        def map(self, fn, jobs):
            maps.append(len(jobs))
            if len(maps) == 1:  # the first render, while extraction batches wait on the pool
                assert super().map(sigkill_if_worker, [os.getpid()] * 2) == [None, None]
            return super().map(fn, jobs)

    pools: list[object] = []

    class CountedExecutor(ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(stacsync.pipeline.workers, "ProcessPoolExecutor", CountedExecutor)
    monkeypatch.setattr(stacsync.pipeline.workers, "ExtractorPool", RenderKillingPool)
    monkeypatch.setattr(stacsync.pipeline.workers, "BATCH_FILES", 2)
    monkeypatch.setattr(stacsync.pipeline.sync, "COMMIT_BATCH", 4)
    monkeypatch.setattr(stacsync.pipeline.examine, "MIN_PROCESS_FILES", 2)
    summary, errors = _build(src, tmp_path / "out")
    assert len(maps) > 1  # rendering went on after the first, fatal one
    assert (summary.added, summary.items_written, errors) == (len(GOOD), len(GOOD), {})
    assert summary.render_errors == 0
    assert len(pools) == 2  # the one killed, and the one the render started: never a third
