"""Time one command as a whole process; read its own peak RSS and its workers' (VmHWM), and
the CPU time of all of them.

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
    peak_rss_mb: float  # the command's own peak RSS (its VmHWM), not its workers'
    stdout: str
    workers_peak_rss_mb: float = 0.0  # the largest VmHWM of any process below it; 0: none
    # User + system time of the command and every process below it; None: not measured.
    cpu_seconds: float | None = None


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
    def workers_peak_rss_mb(self) -> float:
        return max(s.workers_peak_rss_mb for s in self.samples)

    @property
    def cpu_seconds(self) -> float | None:
        """The CPU time of the median sample by wall time (the lower one of an even count)."""
        ordered = sorted(self.samples, key=lambda s: s.seconds)
        return ordered[(len(ordered) - 1) // 2].cpu_seconds

    @property
    def last_stdout(self) -> str:
        return self.samples[-1].stdout


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
    """How peak RSS is measured, for the report."""
    return (
        "VmHWM read from /proc while it runs; its worker processes' peaks are a column of their own"
    )


class _PeakWatcher(threading.Thread):
    """Reads the VmHWM and CPU time of a running command and of every process below it.

    ru_maxrss from wait4 would fold in whichever worker processes the command happened to
    reap, and GNU time's %M too: the figure would depend on exit order. VmHWM is a process's
    own peak since it exec'd and only grows, so the last reading is its peak (up to the last
    10 ms of its life); the first readings, before the exec, are discarded with it. CPU time
    the same way, for the same reason (a forkserver's workers are reaped by it, not by the
    command): each process's last reading of its own user + system time, summed.
    """

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.own_kib = 0
        self.workers_kib = 0
        self._cpu_ticks: dict[int, int] = {}  # the last reading of each process seen
        self._done = threading.Event()

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def run(self) -> None:
        tick = 0
        below: list[int] = []
        while not self._done.is_set():
            own = _vm_hwm_kib(self.pid)
            if own is not None:
                self.own_kib = own
            if tick % 10 == 0:  # every 0.1 s: workers live for seconds
                below = _descendants(self.pid)
                for child in below:
                    self.workers_kib = max(self.workers_kib, _vm_hwm_kib(child) or 0)
            for pid in (self.pid, *below):
                ticks = _cpu_ticks(pid)
                if ticks is not None:
                    self._cpu_ticks[pid] = ticks
            tick += 1
            self._done.wait(0.01)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None  # gone, or a zombie (which has no memory to report)


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of the process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # counted from the state, field 3


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (a forkserver's workers are its children, not the pass's)."""
    found, pending = [], [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found += children
            pending += children
    return found


def run_process(
    argv: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None
) -> Sample:
    """Run `argv` to completion; raise CommandFailed on a non-zero exit or a timeout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=err,
            env=env if env is not None else child_env(),
            start_new_session=True,
        )
        watcher = _PeakWatcher(proc.pid)
        watcher.start()
        status = _reap(proc, timeout)
        seconds = time.perf_counter() - started
        watcher.stop()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    if code != 0:
        what = "timed out" if code is None else f"exited {code}"
        raise CommandFailed(f"{' '.join(argv)} {what}:\n{stderr[-2000:]}")
    return Sample(
        seconds=seconds,
        peak_rss_mb=watcher.own_kib / 1024,
        stdout=stdout,
        workers_peak_rss_mb=watcher.workers_kib / 1024,
        cpu_seconds=watcher.cpu_seconds,
    )


def _reap(proc: subprocess.Popen, timeout: float | None) -> int | None:
    """Wait for the command; a timer kills it (and its session) after `timeout`."""
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        os.killpg(proc.pid, signal.SIGKILL)  # its workers too

    timer = threading.Timer(timeout, kill) if timeout is not None else None
    if timer is not None:
        timer.start()
    try:
        _pid, status = os.waitpid(proc.pid, 0)
    finally:
        if timer is not None:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    return None if killed.is_set() else status


def repeat(argv: Sequence[str], runs: int, **kwargs) -> Stats:
    """`runs` samples of the same command, nothing done between them."""
    return Stats(tuple(run_process(argv, **kwargs) for _ in range(runs)))
