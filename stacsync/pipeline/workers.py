"""Checksums and headers in worker processes, in batches, so that a build uses every core.

A pass starts a pool only for enough files to repay its start-up; a reader crash costs one file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import Any

from stacsync.config.settings import Settings
from stacsync.pipeline.batches import examine_batch, settings_token
from stacsync.pipeline.examine import Result, Work, file_name

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0  # how soon a worker notices that its pass was killed
# Files per task: a task's round trip costs the coordinating process ~0.3 ms, paid once a
# batch; small enough that both workers stay busy to the end of a 1,000-file build.
BATCH_FILES = 16
BATCHES_AHEAD = 4  # per worker, queued at once
Task = Callable[[list[Work], Settings, str], list[Result]]
Sent = tuple[Future, ProcessPoolExecutor | None]
# Imported once by the fork server; every worker forks from it with them already loaded.
_PRELOAD = [
    "stacsync.pipeline.batches",
    "stacsync.extract.raster",
    "stacsync.extract.pointcloud",
    "stacsync.catalog.items",
]


class ExtractorPool:
    """Batches of a pass's Works examined (checksum and header) in worker processes.

    `examine` yields Results in work order. A worker that dies (a reader's segfault, an OOM
    kill) fails every batch in flight with the pool: the batch being waited on is read again
    one file per task in a fresh pool, the others are sent again as they were; a file whose
    own task kills a worker too becomes an error row.
    """

    def __init__(self, workers: int, task: Task = examine_batch):
        self.workers = workers
        self._task = task  # a module-level function: workers unpickle it by name
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._worked = False  # some worker returned a result: the pool itself can run
        self._unavailable = False  # workers cannot even start here: examine in this process

    def examine(self, work: Iterable[Work], settings: Settings) -> Iterator[Result]:
        """One Result per Work, in the order of `work`, at most a few batches ahead of it."""
        token = settings_token(settings)
        taken = iter(work)
        batches = iter(lambda: list(islice(taken, BATCH_FILES)), [])
        queue: deque[tuple[list[Work], Sent]] = deque()
        while True:
            # Enough in flight that no worker waits; no more, so memory stays bounded.
            while len(queue) < self.workers * BATCHES_AHEAD:
                batch = next(batches, None)
                if batch is None:
                    break
                queue.append((batch, self._submit(batch, settings, token)))
            if not queue:
                return
            batch, (future, pool) = queue.popleft()
            try:
                results = future.result()
                self._worked = True
            except (BrokenProcessPool, CancelledError):  # cancelled: by its broken pool
                self._discard(pool)
                results = [r for w in batch for r in self._alone(w, settings, token)]
                queue = deque((b, self._submit(b, settings, token)) for b, _ in queue)
            yield from results

    def _submit(self, batch: list[Work], settings: Settings, token: str) -> Sent:
        """The batch's future and the pool it went to (None: examined here, already done)."""
        pool = self._current()
        if pool is None:
            return _done(examine_batch(batch, settings, token)), None
        try:
            return pool.submit(self._task, batch, settings, token), pool
        except BrokenProcessPool as exc:  # broken since it was handed out: fail like a task
            failed: Future = Future()
            failed.set_exception(exc)
            return failed, pool

    def _alone(self, work: Work, settings: Settings, token: str) -> list[Result]:
        """A file of a batch whose worker died, in a task of its own."""
        future, pool = self._submit([work], settings, token)
        try:
            return future.result()
        except (BrokenProcessPool, CancelledError):
            self._discard(pool)
        if not self._workers_run():
            return examine_batch([work], settings, token)
        name = file_name(work.entry.path)
        message = (
            f"{name}: the reader crashed on this file (GDAL or laspy); please report it with "
            "the file"
        )
        return [Result(work, None, None, message, transient=False, extracted=True)]

    def map(self, fn: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
        """`fn` (a module-level function: workers unpickle it by name) over `jobs` in the
        workers, results in order; here, in this process, if the workers cannot run it."""
        pool = self._current()
        if pool is not None:
            try:
                return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * self.workers))))
            except BrokenProcessPool:
                self._discard(pool)
        return [fn(job) for job in jobs]

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _current(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._unavailable:
                return None
            if self._pool is None:
                # forkserver, not fork: the daemon has threads (watcher, stop guard), and a
                # fork taken while one holds a lock (logging's) can hang the child.
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(_PRELOAD)
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_exit_with,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def _workers_run(self) -> bool:
        """True once a worker has returned anything; else ask one for its pid to find out.

        Workers that cannot even start (e.g. the main module cannot be imported again) break
        every pool; then no file is to blame and the pass examines files in this process.
        """
        if self._worked:
            return True
        pool = self._current()
        if pool is None:
            return False
        try:
            pool.submit(os.getpid).result()
        except BrokenProcessPool:
            self._discard(pool)
            with self._lock:
                self._unavailable = True
            log.warning("extraction worker processes cannot start; examining files here")
            return False
        self._worked = True
        return True

    def _discard(self, pool: ProcessPoolExecutor | None) -> None:
        """Drop `pool` once it broke (a fresh one starts on the next submit); never another,
        younger pool that work was already sent to."""
        if pool is None:
            return
        with self._lock:
            if self._pool is pool:
                self._pool = None
                log.warning("an extraction worker died; starting a fresh one")
        pool.shutdown(wait=False, cancel_futures=True)


def _exit_with(pid: int) -> None:
    """Worker start-up: end this worker when process `pid` (the pass) is gone.

    A pass killed with SIGKILL cannot stop its pool, and workers wait for work forever (they
    hold their own queue's write end, so they never see end-of-file); they are children of
    the fork server, not of the pass, so the kernel's parent-death signal cannot help.
    """

    def watch() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # the pid was reused by another user's process
                os._exit(0)

    threading.Thread(target=watch, name="stacsync-parent-watch", daemon=True).start()


def _done(results: list[Result]) -> Future:
    future: Future = Future()
    future.set_result(results)
    return future
