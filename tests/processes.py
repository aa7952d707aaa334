"""Tests' helpers for stacsync as a real process: the CLI, the daemon, and waiting on conditions.

`DaemonProcess.run_until` freezes the daemon in small steps until a condition holds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stacsync.core.ids import item_id

COLLECTION = "files"


def wait_for(
    predicate: Callable[[], object], timeout: float = 15.0, what: str = "", every: float = 0.05
) -> object:
    """Poll `predicate` every `every` seconds (50 ms) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(every)


def write_config(
    folder: Path,
    extra: str = "",
    title: str = "Daemon test",
    source: str = "src",
    name: str = "stacsync.toml",
) -> Path:
    """A config in `folder`: source `folder/src`, catalog `folder/catalog`, one collection."""
    config = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"""
[source]
path = "{source}"
[output]
path = "catalog"
[manifest]
path = "stacsync.db"
[catalog]
title = "{title}"
[[collection]]
id = "{COLLECTION}"
match = '^(?P<item>.+)$'
{extra}
""",
        encoding="utf-8",
    )
    return config


def item_file(tmp_path: Path, relpath: str) -> Path:
    """The item file of a source file, in the quick form's layout (one item per file)."""
    item = item_id(relpath)
    return tmp_path / "catalog" / COLLECTION / item / f"{item}.json"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stacsync.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


class DaemonProcess:
    """`python -m stacsync.cli run` in the background, its stderr in a file."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None):
        self.log_path = config.parent / f"daemon-{time.monotonic_ns()}.log"
        self.terminated = False
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stacsync.cli", "run", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, count: int = 1, timeout: float = 15.0) -> None:
        def seen() -> bool:
            assert self.proc.poll() is None, f"daemon exited {self.proc.returncode}:\n{self.log()}"
            return self.log().count(text) >= count

        wait_for(seen, timeout, f"{text!r} ×{count} in the daemon log:\n{self.log()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)
        self.terminated |= signum == signal.SIGTERM

    def run_until(self, predicate: Callable[[], bool], timeout: float = 120.0) -> bool:
        """Let the daemon run in small steps, frozen (SIGSTOP) between them, until
        `predicate()` holds; it is left frozen there (SIGCONT resumes it).

        A signal sent now lands exactly where `predicate` saw the daemon, on a fast machine
        and on a loaded one alike. False when `timeout` passed first.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.signal(signal.SIGSTOP)
            # A stop takes effect within a scheduler tick: look often, or the daemon spends
            # most of the time frozen while this waits, and each step does ten times less work.
            wait_for(self._frozen, 10, "the daemon to stop", every=0.0005)
            if predicate():
                return True
            if time.monotonic() > deadline:
                return False
            self.signal(signal.SIGCONT)
            time.sleep(0.005)  # one small step of work, then look again

    def _frozen(self) -> bool:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; the exit code and how long it took."""
        started = time.monotonic()
        if self.proc.poll() is None and not self.terminated:
            self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        return code, time.monotonic() - started
