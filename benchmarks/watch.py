"""Watch-mode latency: time from a file's last write to its item on disk, under `stacsync run`.

The daemon runs with inotify events and a short settle window; latency includes that window.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.measure import Sample, Stats, child_env
from benchmarks.scenarios import stacsync_head
from benchmarks.trees import BenchTree

POLL_SECONDS = 0.005
READY_TIMEOUT = 600.0
SEEN_TIMEOUT = 120.0
PASS_MARK = " pass ("  # every pass logs one line "<reason> pass (<scope>): ..." at -v


def available() -> bool:
    """True when the installed stacsync has a `run` command."""
    argv = [*stacsync_head(), "run", "--help"]
    done = subprocess.run(argv, capture_output=True, check=False, env=child_env())
    return done.returncode == 0


def latency(tree: BenchTree, runs: int, settle: float) -> Stats:
    """Start the daemon on a settled tree, then time `runs` writes until each item shows them."""
    folder = sorted(tree.root.glob("missions/*/processed*/full"))[tree.missions // 2]
    path = folder / "orthomosaic.tif"
    item_json = tree.output / "ofo-missions" / folder.parent.parent.name
    item_json = item_json / f"{item_json.name}.json"
    original = path.read_bytes()
    log_path = tree.work / "watch.log"
    argv = [*stacsync_head(), "-v", "run", "--config", str(tree.config)]
    argv += ["--watch", "events", "--settle-seconds", str(settle)]
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(argv, stdout=log, stderr=log, env=child_env())
    try:
        _wait_for(lambda: _passes(log_path) >= 1, READY_TIMEOUT)
        samples = [_one_write(path, original, item_json, log_path, run) for run in range(runs)]
        peak = _peak_rss_mb(daemon.pid)
    finally:
        path.write_bytes(original)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    return Stats(tuple(Sample(s.seconds, peak, "") for s in samples))


def _one_write(path: Path, original: bytes, item_json: Path, log_path: Path, run: int) -> Sample:
    data = bytearray(original)
    data[len(data) * 3 // 4] ^= (run % 255) + 1
    checksum = "1220" + hashlib.sha256(data).hexdigest()
    passes = _passes(log_path)
    with path.open("wb") as handle:
        handle.write(data)
    written = time.perf_counter()  # the last write is the close above
    _wait_for(lambda: checksum in item_json.read_text(encoding="utf-8"), SEEN_TIMEOUT)
    seen = time.perf_counter()
    _wait_for(lambda: _passes(log_path) > passes, SEEN_TIMEOUT)  # idle before the next write
    return Sample(seconds=seen - written, peak_rss_mb=0.0, stdout="")


def _passes(log_path: Path) -> int:
    return log_path.read_text(encoding="utf-8", errors="replace").count(PASS_MARK)


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process: its peak RSS since it exec'd."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass  # the item file is being replaced
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing seen within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
