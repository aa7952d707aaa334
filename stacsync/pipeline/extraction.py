"""How a pass runs its per-file work: threads, local processes, or a Dask cluster.

Each strategy yields `Result`s in the order of the work list, so commits, clashes between
files and the catalog come out the same whatever ran them and however many workers there were.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, TypeVar

from stacsync.config.settings import Settings
from stacsync.pipeline.examine import Examiner, Result, Work, worth_processes
from stacsync.sources import Source

if TYPE_CHECKING:
    from stacsync.catalog.item_render import Offload
    from stacsync.pipeline.plan import WorkPlan

_In = TypeVar("_In")
_Out = TypeVar("_Out")
AHEAD = 4  # calls submitted per thread beyond those whose results were taken


class Extraction(Protocol):
    """Runs `Examiner.examine` over a pass's work; a context manager that frees its workers."""

    def results(self, work: Iterable[Work]) -> Iterator[Result]:
        """One Result per Work, in the order of `work`, as they become available; `work` is
        taken as it is needed (see `WorkPlan.handed_over`)."""
        ...

    @property
    def offload(self) -> Offload | None:
        """Where the pass may run other pure work (rendering items) beside the extraction:
        its worker processes while it has some, else None (the caller runs it itself)."""
        ...

    def __enter__(self) -> Extraction: ...

    def __exit__(self, *exc: object) -> None: ...


class LocalExtraction:
    """Threads in this process; worker processes for a big local build.

    A remote source (iRODS, S3) is latency-bound: `extract.remote_threads` requests in flight,
    never forked processes. A first build of many local files sends them in batches to worker
    processes, which checksum and extract them (and render items: `offload`).
    """

    def __init__(self, settings: Settings, source: Source, examiner: Examiner, plan: WorkPlan):
        self.settings = settings
        self.examiner = examiner
        self.pool = None
        workers = settings.workers or os.cpu_count() or 1
        if source.remote:
            self.threads = max(1, settings.remote_threads)
        elif worth_processes(plan.to_extract, plan.first_to_extract, workers, source):
            from stacsync.pipeline.workers import ExtractorPool  # multiprocessing: when used

            self.pool = ExtractorPool(workers)
        else:
            self.threads = workers

    def results(self, work: Iterable[Work]) -> Iterator[Result]:
        if self.pool is not None:
            yield from self.pool.examine(work, self.settings)
            return
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            yield from ordered_map(pool, self.examiner.examine, work, self.threads * AHEAD)

    @property
    def offload(self) -> Offload | None:
        return self.pool.map if self.pool is not None else None

    def __enter__(self) -> LocalExtraction:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def choose_extraction(
    settings: Settings, source: Source, examiner: Examiner, plan: WorkPlan
) -> Extraction:
    """The strategy `settings` ask for: a Dask scheduler when one is configured, else local."""
    if settings.scheduler:
        from stacsync.pipeline.distributed import DaskExtraction  # dask: only when configured

        return DaskExtraction(settings, settings.scheduler)
    return LocalExtraction(settings, source, examiner, plan)


def ordered_map(
    pool: Executor, fn: Callable[[_In], _Out], items: Iterable[_In], ahead: int
) -> Iterator[_Out]:
    """`pool.map(fn, items)` with at most `ahead` calls submitted and not yet yielded.

    `Executor.map` submits every call at once: a first build of a million-object bucket would
    hold a future (and its Work) per object. Calls not yet started are cancelled if the
    caller stops early.
    """
    pending: deque[Future[_Out]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
