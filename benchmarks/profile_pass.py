"""cProfile one whole `stacsync rescan` in this process, imports included, workers run serially.

Usage: python -m benchmarks.profile_pass CONFIG OUT.prof [--top N] — prints the top costs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any


class SerialExecutor:
    """Stands in for ThreadPoolExecutor so cProfile (main thread only) sees the workers' work."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable, *args: Any) -> Future:
        # The call runs now, in this thread; what the pipeline waits on is already done.
        future: Future = Future()
        future.set_result(fn(*args))
        return future


def profiled_rescan(config: Path) -> None:
    """Everything a `stacsync rescan` process does, minus the interpreter's own start-up."""
    import stacsync.pipeline.extraction
    from stacsync.cli.main import cli

    pooled = stacsync.pipeline.extraction.ThreadPoolExecutor
    stacsync.pipeline.extraction.ThreadPoolExecutor = SerialExecutor  # type: ignore[misc]
    try:
        cli.main(["rescan", "--config", str(config), "--json"], standalone_mode=False)
    finally:
        stacsync.pipeline.extraction.ThreadPoolExecutor = pooled  # type: ignore[misc]


def report(stats: pstats.Stats, top: int) -> str:
    """The top entries by own time and by cumulative time."""
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    profiler = cProfile.Profile()
    profiler.runcall(profiled_rescan, args.config)
    profiler.dump_stats(args.out)
    print(report(pstats.Stats(profiler), args.top))


if __name__ == "__main__":
    main()
