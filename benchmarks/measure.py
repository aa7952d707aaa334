"""Time one command as a whole process and read its own peak RSS (GNU time, else wait4).

Each sample is one child process; `Stats` keeps the median and min over several samples.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class CommandFailed(RuntimeError):
    """A measured command exited non-zero (its stderr tail is in the message)."""


@dataclass(frozen=True)
class Sample:
    """One run of one command."""

    seconds: float  # wall clock, from spawn to reaped
    peak_rss_mb: float  # the child's own ru_maxrss (not the max over all children)
    stdout: str


@dataclass(frozen=True)
class Stats:
    """Several samples of the same scenario."""

    samples: tuple[Sample, ...]

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def fastest(self) -> float:
        return min(s.seconds for s in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return max(s.peak_rss_mb for s in self.samples)

    @property
    def last_stdout(self) -> str:
        return self.samples[-1].stdout


# A child's ru_maxrss counts the memory of the process it was forked from until it execs, so
# the command is started by GNU time (a small C program) when there is one; without it the
# figure is wait4's and never below this (large) benchmark process's own RSS.
GNU_TIME = "/usr/bin/time"
REPO = Path(__file__).resolve().parent.parent
# Children write and reuse bytecode here, as a user's installed stacsync would; an inherited
# PYTHONDONTWRITEBYTECODE would make every run recompile all of stacsync from source.
pycache_prefix = Path("/tmp/stacsync-bench/pycache")


def child_env() -> dict[str, str]:
    """The environment of every measured process: bytecode cached, this repo importable."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache_prefix)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def rss_method() -> str:
    """How peak RSS is measured on this machine, for the report."""
    return "GNU time %M" if _has_gnu_time() else "wait4 ru_maxrss (includes the forking parent)"


def _has_gnu_time() -> bool:
    return os.access(GNU_TIME, os.X_OK)


def run_process(
    argv: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None
) -> Sample:
    """Run `argv` to completion; raise CommandFailed on a non-zero exit or a timeout."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        wrapper = [GNU_TIME, "-f", "%M", "-o", rss.name] if _has_gnu_time() else []
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*wrapper, *argv],
            stdout=out,
            stderr=err,
            env=env if env is not None else child_env(),
            start_new_session=True,
        )
        status, usage = _reap(proc, timeout)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        # Both report KiB on Linux.
        peak_kib = _gnu_time_kib(rss.read()) if wrapper else usage.ru_maxrss
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    if code != 0:
        what = "timed out" if code is None else f"exited {code}"
        raise CommandFailed(f"{' '.join(argv)} {what}:\n{stderr[-2000:]}")
    return Sample(seconds=seconds, peak_rss_mb=peak_kib / 1024, stdout=stdout)


def _gnu_time_kib(text: str) -> int:
    # The last line is %M; a line before it may say "Command exited with non-zero status".
    return int(text.strip().splitlines()[-1])


def _reap(proc: subprocess.Popen, timeout: float | None) -> tuple[int | None, os.struct_rusage]:
    """Block in wait4, so the rusage is this child's alone; a timer kills it after `timeout`."""
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        os.killpg(proc.pid, signal.SIGKILL)  # the command too, when GNU time started it

    timer = threading.Timer(timeout, kill) if timeout is not None else None
    if timer is not None:
        timer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        if timer is not None:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    return (None if killed.is_set() else status), usage


def repeat(argv: Sequence[str], runs: int, **kwargs) -> Stats:
    """`runs` samples of the same command, nothing done between them."""
    return Stats(tuple(run_process(argv, **kwargs) for _ in range(runs)))
