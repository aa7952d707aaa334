"""Header extraction on a Dask cluster: batches of Works out, their Results back, in order.

Workers read the store themselves; this process keeps the manifest and writes the catalog.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distributed import Client, Future, KilledWorker, as_completed

from stacsync.config.settings import Settings
from stacsync.core.errors import StacsyncError
from stacsync.pipeline.batches import examine_batch, settings_token
from stacsync.pipeline.examine import Result, Work, file_name

if TYPE_CHECKING:
    from stacsync.catalog.item_render import Offload

log = logging.getLogger(__name__)

# How long to wait for the scheduler to answer, and for it to have at least one worker.
CONNECT_SECONDS = 20.0
# A task that raised (not one whose worker died: Dask counts those itself) runs once more,
# for a blip while a worker builds its source; a second failure is a deployment problem.
TASK_RETRIES = 1
Task = Callable[[list[Work], Settings, str], list[Result]]


class SchedulerUnavailableError(StacsyncError):
    """The Dask scheduler cannot be reached, has no workers, or was lost mid-pass."""


def _each(chunk: list[Any], fn: Callable[[Any], Any]) -> list[Any]:
    """A task: `fn` over a chunk of jobs (items to render), in order."""
    return [fn(job) for job in chunk]


def _given(value: object) -> object:
    """A task that returns its argument: the settings, held by the scheduler as a recipe."""
    return value


# -- in the coordinating process ---------------------------------------------------------


def connect(scheduler: str, seconds: float = CONNECT_SECONDS) -> Client:
    """A Client of `scheduler` that has at least one worker, or SchedulerUnavailableError."""
    advice = (
        "no file was extracted and no catalog file written; start it (docs/scale.md), or "
        "unset [scale] scheduler to extract on this machine"
    )
    try:
        client = Client(scheduler, timeout=seconds, set_as_default=False)
    except ValueError as exc:  # not an address at all
        raise SchedulerUnavailableError(f"Dask scheduler {scheduler!r}: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnavailableError(
            f"Dask scheduler {scheduler} cannot be reached ({exc}); {advice}"
        ) from None
    try:
        client.wait_for_workers(1, timeout=seconds)
    except (OSError, TimeoutError):
        client.close()
        raise SchedulerUnavailableError(
            f"Dask scheduler {scheduler} has no workers after {seconds:g} s; {advice}"
        ) from None
    return client


class DaskExtraction:
    """Sends a pass's Works in batches to a Dask cluster and yields Results in work order.

    A worker lost mid-task: Dask runs the task again elsewhere. A batch whose workers keep
    dying (Dask gives up with KilledWorker) is sent again one file per task; a file whose own
    task Dask gives up on becomes a transient error row, never a failed pass.
    """

    task: Task = staticmethod(examine_batch)  # tests swap in a task that misbehaves
    connect_seconds = CONNECT_SECONDS

    def __init__(self, settings: Settings, scheduler: str):
        self.settings = settings
        self.scheduler = scheduler
        self.client: Client | None = None

    @property
    def offload(self) -> Offload | None:
        """Items render on the cluster too, `batch_files` to a task: the coordinator writes."""
        return self._on_cluster if self.client is not None else None

    def _on_cluster(self, fn: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
        size = max(1, self.settings.batch_files)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        try:
            futures = self.client.map(  # type: ignore[union-attr]
                _each, chunks, fn=fn, pure=False, retries=TASK_RETRIES
            )
            parts = self.client.gather(futures)  # type: ignore[union-attr]
        except (KilledWorker, CancelledError, OSError) as exc:
            # Rendering is pure and cheap: here is as good, the pass goes on.
            log.warning("cannot render items on the Dask cluster (%s); rendering here", exc)
            return [fn(job) for job in jobs]
        return [result for part in parts for result in part]

    def __enter__(self) -> DaskExtraction:
        # Only a pass with work to do gets here: a no-change pass never needs the cluster.
        self.client = connect(self.scheduler, self.connect_seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            client.close()

    def results(self, work: Iterable[Work]) -> Iterator[Result]:
        """One Result per Work, in the order of `work`, as the batches come back."""
        if self.client is None:
            raise RuntimeError("DaskExtraction.results outside its `with` block")
        work = list(work)  # all sent at once: the scheduler spreads them, and a lost one is resent
        if work:
            yield from _Run(self, work).results()


@dataclass
class _Batch:
    work: list[Work]
    parts: list[list[Result] | None] = field(default_factory=list)  # after a split: per file


class _Run:
    """One call of `DaskExtraction.results`: the futures in flight and the reorder buffer."""

    def __init__(self, owner: DaskExtraction, work: list[Work]):
        self.owner = owner
        size = max(1, owner.settings.batch_files)
        self.batches = [_Batch(work[i : i + size]) for i in range(0, len(work), size)]
        # Unique per call: a key Dask still holds from an earlier pass is never reused.
        self.prefix = f"stacsync-{uuid.uuid4().hex[:12]}"
        self.where: dict[str, tuple[int, int | None]] = {}  # key → (batch, file of a split)
        self.queue = as_completed(loop=owner.client.loop)  # type: ignore[union-attr]
        # Workers key their source by this: the same settings, the same source, pass after pass.
        self.token = settings_token(owner.settings)
        self.shared: Future | None = None

    def results(self) -> Iterator[Result]:
        # The settings are sent once, as the input of a task the scheduler keeps: a worker
        # that dies holding them is no loss, they are computed again wherever needed.
        self.shared = self.owner.client.submit(  # type: ignore[union-attr]
            _given, self.owner.settings, key=f"{self.prefix}-settings", pure=False
        )
        self._send([b.work for b in self.batches], [(i, None) for i in range(len(self.batches))])
        done: dict[int, list[Result]] = {}
        following = 0
        try:
            for future in self.queue:
                finished = self._take(future)
                if finished is not None:
                    done[finished[0]] = finished[1]
                while following in done:
                    yield from done.pop(following)
                    following += 1
        finally:
            self.queue.clear()
            self.shared.release()
        assert following == len(self.batches), "every batch was collected"

    def _take(self, future: Future) -> tuple[int, list[Result]] | None:
        """Record one finished future; (batch index, results) once that batch is whole."""
        index, part = self.where.pop(future.key)
        batch = self.batches[index]
        work = batch.work if part is None else [batch.work[part]]
        results = self._outcome(future, work)
        future.release()
        if results is None:  # Dask gave up on a batch of several files: one task per file
            self._split(index)
            return None
        if part is None:
            return index, results
        batch.parts[part] = results
        if any(p is None for p in batch.parts):
            return None
        return index, [r for p in batch.parts for r in p]  # type: ignore[union-attr]

    def _outcome(self, future: Future, work: list[Work]) -> list[Result] | None:
        """The task's Results; error Results when its workers kept dying on one file; None to
        split a batch of several files; a SchedulerUnavailableError when the cluster failed."""
        try:
            # Waits if the result was lost with its worker after it finished: Dask computes
            # it again, as the future is still held.
            return future.result()
        except KilledWorker as exc:
            if len(work) > 1:
                return None
            log.warning(
                "Dask workers kept dying on %s: an error row", file_name(work[0].entry.path)
            )
            return [_killed(w, exc.allowed_failures + 1) for w in work]
        except (CancelledError, OSError) as exc:
            reason = " ".join(str(exc).split())  # Dask's own message spans lines
            raise SchedulerUnavailableError(
                f"lost the Dask scheduler {self.owner.scheduler} mid-pass ({reason}); what was "
                "extracted is committed, the rest is done by the next pass"
            ) from None
        except Exception as exc:  # raised in the task: not a file's fault (it never raises)
            raise StacsyncError(
                f"a Dask task failed on a worker of {self.owner.scheduler}: {exc!r}; is "
                "stacsync installed on the workers, and can they read the source? "
                "(docs/scale.md)"
            ) from exc

    def _split(self, index: int) -> None:
        batch = self.batches[index]
        batch.parts = [None] * len(batch.work)
        self._send([[w] for w in batch.work], [(index, j) for j in range(len(batch.work))])

    def _send(self, tasks: list[list[Work]], places: list[tuple[int, int | None]]) -> None:
        """Map the task over `tasks`; `places` say which batch (and file of it) each one is."""
        keys = [f"{self.prefix}-batch-{i}" + ("" if j is None else f"-file-{j}") for i, j in places]
        futures = self.owner.client.map(  # type: ignore[union-attr]
            self.owner.task,
            tasks,
            settings=self.shared,
            token=self.token,
            key=keys,
            retries=TASK_RETRIES,
        )
        for future, place in zip(futures, places, strict=True):
            self.where[future.key] = place
            self.queue.add(future)


def _killed(work: Work, deaths: int) -> Result:
    """The error row of a file whose Dask workers kept dying while it was theirs.

    Transient: Dask blames every task a dead worker held, not only the one it was reading,
    so an innocent file can be caught beside a culprit; the next pass tries it again.
    """
    message = (
        f"{file_name(work.entry.path)}: {deaths} Dask workers died while this file was theirs "
        "(a reader crash or out of memory, on this file or one read beside it); tried again "
        "next pass"
    )
    return Result(work, None, None, message, True, extracted=True)
