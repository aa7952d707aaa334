"""Tests for stacsync.pipeline.distributed: a real Dask cluster builds the local pass's catalog.

One LocalCluster (a scheduler here, two worker processes under nannies) serves the module.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from helpers import BAD, GOOD, age, catalog_bytes

import stacsync.pipeline.distributed
from stacsync.config.load import quick_settings
from stacsync.config.settings import Settings
from stacsync.manifest.db import Manifest
from stacsync.pipeline.distributed import DaskExtraction, SchedulerUnavailableError, examine_batch
from stacsync.pipeline.examine import Result, Work
from stacsync.pipeline.sync import rescan

# Long enough for a loaded machine; a test that reaches it fails on what did not happen.
WAIT_SECONDS = 120.0


@pytest.fixture(scope="module")
def cluster():
    # One retry after a worker dies; a second death on the same task is a KilledWorker
    # (Dask's default allows three: the same paths, more worker restarts to wait for).
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"allowed_failures": 1},
    ) as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    with Client(cluster, set_as_default=False) as client:
        yield client


def settings_for(src: Path, out: Path, batch_files: int) -> Settings:
    settings = quick_settings(src, out / "catalog", out / "db.sqlite")
    return dataclasses.replace(settings, batch_files=batch_files, workers=2)


def file_rows(settings: Settings) -> dict[str, tuple]:
    """Each file's status, error, transience, checksum and extracted metadata."""
    with Manifest.open_writer(settings.manifest_path, purpose="test") as db:
        query = "SELECT path, status, error, error_transient, checksum, meta_json FROM asset_file"
        return {path: tuple(rest) for path, *rest in db.conn.execute(query)}


NO_DASK = """
import dataclasses, sys
from pathlib import Path
from stacsync.config.load import quick_settings
from stacsync.pipeline.sync import rescan
src, out = Path(sys.argv[1]), Path(sys.argv[2])
settings = quick_settings(src, out / "catalog", out / "db.sqlite")
first = rescan(settings)
loaded = [m for m in ("dask", "distributed") if m in sys.modules]
again = rescan(dataclasses.replace(settings, scheduler="tcp://127.0.0.1:9"))
loaded += [m for m in ("dask", "distributed") if m in sys.modules]
print(first.added, again.unchanged, loaded)
"""


# Dask tasks that misbehave: module level, so worker processes import them by name.


def block_first_run(batch: list[Work], settings: Settings, token: str) -> list[Result]:
    """The first run of the batch holding `block.tif` blocks until its worker is killed."""
    if any(w.entry.path == "block.tif" for w in batch):
        here = settings.source_path.parent
        try:
            os.close(os.open(here / "blocked.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass  # run again after the kill: work as usual
        else:
            (here / "blocked.tmp").write_text(str(os.getpid()))
            (here / "blocked.tmp").rename(here / "blocked.pid")
            threading.Event().wait(WAIT_SECONDS)  # until the test kills this process
    return examine_batch(batch, settings, token)


def crash_on_marked(batch: list[Work], settings: Settings, token: str) -> list[Result]:
    """Dies like a reader that segfaults, whenever its batch holds `crash.tif`."""
    if any(w.entry.path == "crash.tif" for w in batch):
        os._exit(139)
    return examine_batch(batch, settings, token)


# -- the tests ---------------------------------------------------------------------------


def test_a_cluster_builds_the_catalog_the_local_pass_builds(
    cluster, copy_testdata, tmp_path, monkeypatch
) -> None:
    src = copy_testdata(*GOOD, *BAD, dest=tmp_path / "drone")
    age(src)
    clients: list[Client] = []
    real_connect = stacsync.pipeline.distributed.connect

    def connect(scheduler: str, seconds: float) -> Client:
        clients.append(real_connect(scheduler, seconds))
        return clients[-1]

    monkeypatch.setattr(stacsync.pipeline.distributed, "connect", connect)
    rendered: list[int] = []
    on_cluster = DaskExtraction._on_cluster

    def counted(self, fn, jobs):
        rendered.append(len(jobs))
        return on_cluster(self, fn, jobs)

    monkeypatch.setattr(DaskExtraction, "_on_cluster", counted)
    local = settings_for(src, tmp_path / "local", batch_files=3)
    on_dask = settings_for(src, tmp_path / "dask", batch_files=3)  # 7 batches, 2 workers
    summaries = [rescan(local), rescan(on_dask, scheduler=cluster.scheduler_address)]
    assert [s.added for s in summaries] == [len(GOOD) + len(BAD)] * 2
    assert [s.errors for s in summaries] == [len(BAD)] * 2
    assert catalog_bytes(tmp_path / "dask" / "catalog") == catalog_bytes(
        tmp_path / "local" / "catalog"
    )
    assert file_rows(on_dask) == file_rows(local)  # the same error messages, too
    assert sum(rendered) == summaries[1].items_written == len(GOOD)  # items rendered there too
    assert len(clients) == 1 and clients[0].status == "closed"  # closed with the pass


def test_a_worker_killed_mid_pass_still_converges(
    cluster, client, copy_testdata, tmp_path, monkeypatch
) -> None:
    src = copy_testdata(*GOOD, dest=tmp_path / "drone")
    (src / "block.tif").write_bytes((src / GOOD[0]).read_bytes())
    age(src)
    local = settings_for(src, tmp_path / "local", batch_files=2)
    rescan(local)
    pids = set(client.run(os.getpid).values())
    monkeypatch.setattr(DaskExtraction, "task", staticmethod(block_first_run))
    killed: list[int] = []

    def kill_the_blocked_worker() -> None:
        pid_file = tmp_path / "blocked.pid"
        deadline = time.monotonic() + WAIT_SECONDS
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # polls for the task to say it started
        if pid_file.exists():
            killed.append(int(pid_file.read_text()))
            os.kill(killed[-1], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_blocked_worker)
    killer.start()
    try:
        summary = rescan(
            settings_for(src, tmp_path / "dask", batch_files=2),
            scheduler=cluster.scheduler_address,
        )
    finally:
        killer.join()
    assert len(killed) == 1 and killed[0] in pids  # a worker process died holding a task
    assert killed[0] not in set(client.run(os.getpid).values())
    assert summary.added == len(GOOD) + 1 and summary.errors == 0
    assert catalog_bytes(tmp_path / "dask" / "catalog") == catalog_bytes(
        tmp_path / "local" / "catalog"
    )


def test_a_file_that_kills_its_workers_costs_files_not_the_pass(
    cluster, copy_testdata, tmp_path, monkeypatch
) -> None:
    names = GOOD[:3]
    src = copy_testdata(*names, dest=tmp_path / "drone")
    (src / "crash.tif").write_bytes((src / names[0]).read_bytes())
    age(src)
    local = settings_for(src, tmp_path / "local", batch_files=2)
    rescan(local)
    monkeypatch.setattr(DaskExtraction, "task", staticmethod(crash_on_marked))
    settings = settings_for(src, tmp_path / "dask", batch_files=2)  # crash.tif shares a batch
    summary = rescan(settings, scheduler=cluster.scheduler_address)
    assert summary.added == 4
    rows = file_rows(settings)
    died = "2 Dask workers died while this file was theirs (a reader crash or out of memory"
    status, error, transient, _, _ = rows["crash.tif"]
    assert (status, transient) == ("error", 1) and error.startswith(f"crash.tif: {died}")
    # Its batch is read again one file per task; Dask may also blame a file that waited on
    # the same worker, so any other error must be that same transient one.
    for path, (status, error, transient, _, _) in rows.items():
        assert status == "ok" or (transient and error.startswith(f"{path}: {died}"))
    # Once the file no longer kills its reader, the next pass reads what was missed.
    monkeypatch.undo()
    summary = rescan(settings, scheduler=cluster.scheduler_address)
    assert summary.errors == 0 and summary.unchanged == 4 - summary.modified
    assert file_rows(settings) == file_rows(local)
    assert catalog_bytes(tmp_path / "dask" / "catalog") == catalog_bytes(
        tmp_path / "local" / "catalog"
    )


def test_an_unreachable_scheduler_fails_the_pass_before_any_catalog_file(
    copy_testdata, tmp_path, monkeypatch
) -> None:
    src = copy_testdata(*GOOD[:2], dest=tmp_path / "drone")
    age(src)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(DaskExtraction, "connect_seconds", 1.0)
    settings = settings_for(src, tmp_path / "out", batch_files=50)
    with pytest.raises(SchedulerUnavailableError, match=f"Dask scheduler {address} cannot be"):
        rescan(settings, scheduler=address)
    assert not (tmp_path / "out" / "catalog" / "catalog.json").exists()
    assert file_rows(settings) == {}  # nothing committed: the next pass does it all
    assert rescan(settings).added == 2


def test_dask_is_imported_only_for_a_pass_with_work_and_a_scheduler(copy_testdata, tmp_path):
    # A no-change pass never needs the cluster: a scheduler nothing answers is not even asked.
    src = copy_testdata(GOOD[0], dest=tmp_path / "drone")
    age(src)
    args = [sys.executable, "-c", NO_DASK, str(src), str(tmp_path / "out")]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == "1 1 []"
