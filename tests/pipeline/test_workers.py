"""Tests for stacsync.pipeline.workers: header extraction in processes gives what threads give."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest
from helpers import BAD, GOOD, age, catalog_bytes

import stacsync.pipeline.examine
import stacsync.pipeline.workers
from stacsync.config.load import quick_settings
from stacsync.core.errors import ExtractError
from stacsync.core.ids import item_id
from stacsync.extract.dispatch import extract_file
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import SyncPass
from stacsync.pipeline.workers import ExtractorPool


def crash_on_marked_files(path: str, **options):
    """Module level, so worker processes can unpickle it; dies like a segfaulting reader."""
    if "crash" in Path(path).name:
        os._exit(139)
    return extract_file(path, **options)


def sigkilled_once(path: str, **options):
    """Dies by SIGKILL (an OOM kill) the first time it meets a file named kill-*, mid-batch."""
    marker = Path(path).with_suffix(".killed")
    if Path(path).name.startswith("kill-") and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return extract_file(path, **options)


def test_pool_gives_what_extract_file_gives(testdata: Path) -> None:
    names = [*GOOD[:4], "autzen_trim.laz"]
    with ExtractorPool(2) as pool:
        for name in names:
            path = str(testdata / name)
            assert pool.extract(path) == extract_file(path)
        with pytest.raises(ExtractError, match=r"^empty\.tif: file is empty"):
            pool.extract(str(testdata / "empty.tif"))


def test_a_reader_crash_costs_only_its_file(copy_testdata, tmp_path: Path) -> None:
    src = copy_testdata("byte.tif", "elev.tif")
    (src / "crash.tif").write_bytes((src / "byte.tif").read_bytes())
    with ExtractorPool(2, extract=crash_on_marked_files) as pool:
        with pytest.raises(ExtractError, match=r"^crash\.tif: the reader crashed"):
            pool.extract(str(src / "crash.tif"))
        # The pool is replaced: the next files are read as usual.
        assert pool.extract(str(src / "elev.tif")) == extract_file(src / "elev.tif")


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
        settings = quick_settings(src, out / "catalog", out / "db.sqlite")
        settings = settings.__class__(**{**settings.__dict__, "workers": workers})
        with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
            summary = SyncPass(settings, db).run()
            errors = dict(db.conn.execute("SELECT path, error FROM errors"))
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
    pool = ExtractorPool(2, extract=pidof.worker_pid)
    print(pool.extract("any"), flush=True)
    time.sleep(120)
"""


def test_workers_end_when_their_pass_is_killed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "pidof.py").write_text(
        "import os\n\ndef worker_pid(path, **options):\n    return os.getpid()\n"
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

    class KillingPool(ExtractorPool):
        def __init__(self, workers: int):
            super().__init__(workers, extract=sigkilled_once)

    monkeypatch.setattr(stacsync.pipeline.workers, "ExtractorPool", KillingPool)
    monkeypatch.setattr(stacsync.pipeline.examine, "MIN_PROCESS_FILES", 2)
    settings = quick_settings(src, tmp_path / "catalog", tmp_path / "db.sqlite")
    settings = settings.__class__(**{**settings.__dict__, "workers": 2})
    with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
        summary = SyncPass(settings, db).run()
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
