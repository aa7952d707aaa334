"""The worker side of extraction in batches: a batch of Works in, their Results out, in order.

Run by local worker processes (`pipeline.workers`) and by Dask workers (`pipeline.distributed`).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

from stacsync.config.settings import Settings
from stacsync.pipeline.assemble import make_source
from stacsync.pipeline.examine import Examiner, Result, Work

# Sources kept per worker process, by settings: a daemon's passes reuse theirs.
KEPT_SOURCES = 4

_examiners: dict[str, Examiner] = {}
_examiners_lock = threading.Lock()


def settings_token(settings: Settings) -> str:
    """What workers key their source by: the same settings, the same source, pass after pass."""
    return hashlib.sha256(pickle.dumps(settings)).hexdigest()


def examine_batch(batch: list[Work], settings: Settings, token: str) -> list[Result]:
    """One task: checksum and extract each Work of a batch here; never raises per file.

    Idempotent: a Work names the file and the size, mtime and ETag the pass listed, and the
    Result only describes it, so a task run twice (its worker died) gives the same answer.
    """
    examiner = _examiner(settings, token)
    if examiner.source.remote and len(batch) > 1:
        # A remote store is latency-bound: the batch's requests go out together.
        threads = min(len(batch), max(1, settings.remote_threads))
        with ThreadPoolExecutor(threads, thread_name_prefix="stacsync-read") as pool:
            return list(pool.map(examiner.examine, batch))
    return [examiner.examine(work) for work in batch]


def _examiner(settings: Settings, token: str) -> Examiner:
    """This process's Examiner for `settings`, its source built on first use."""
    with _examiners_lock:
        examiner = _examiners.get(token)
        if examiner is None:
            # The worker's own credentials (environment, ~/.aws, ~/.irods) reach the store.
            examiner = Examiner(settings, make_source(settings))
            _examiners[token] = examiner
            while len(_examiners) > KEPT_SOURCES:
                old = _examiners.pop(next(iter(_examiners)))
                close = getattr(old.source, "close", None)
                if close is not None:
                    close()
        return examiner
