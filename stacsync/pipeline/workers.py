"""Header extraction in worker processes, so that parsing runs on every core.

A pass starts a pool only for enough files to repay its start-up; a reader crash costs one file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import PurePath
from typing import Any

from stacsync.core.errors import ExtractError
from stacsync.core.records import AssetMeta
from stacsync.extract.dispatch import extract_file

log = logging.getLogger(__name__)

# Imported once by the fork server; every worker forks from it with them already loaded.
WATCH_SECONDS = 1.0  # how soon a worker notices that its pass was killed
_PRELOAD = ["stacsync.extract.raster", "stacsync.extract.pointcloud", "stacsync.catalog.items"]


class ExtractorPool:
    """`extract_file` in worker processes; `extract` blocks, so the pass's threads call it."""

    def __init__(self, workers: int, extract: Callable[..., AssetMeta] = extract_file):
        self.workers = workers
        self._extract = extract  # a module-level function: workers unpickle it by name
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._worked = False  # some worker returned a result: the pool itself can run
        self._unavailable = False  # workers cannot even start here: read in threads

    def extract(self, path: str, **options: Any) -> AssetMeta:
        """Like `extract_file`; a worker that dies on this file twice gives an ExtractError."""
        for _attempt in (1, 2):
            pool = self._current()
            if pool is None:
                return self._extract(path, **options)
            try:
                meta = pool.submit(self._extract, path, **options).result()
            except BrokenProcessPool:
                # Every file in flight fails with the pool; each gets one more try in a
                # fresh pool, so only a file that kills a worker twice is blamed.
                self._discard(pool)
                continue
            self._worked = True
            return meta
        if not self._workers_run():
            return self._extract(path, **options)
        raise ExtractError(
            f"{PurePath(path).name}: the reader crashed on this file (GDAL or laspy); "
            "please report it with the file"
        )

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
        every pool; then no file is to blame and the pass reads in its own threads.
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
            log.warning("extraction worker processes cannot start; reading in threads")
            return False
        self._worked = True
        return True

    def _discard(self, pool: ProcessPoolExecutor) -> None:
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
