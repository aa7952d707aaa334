"""The writer lock: one process at a time may change a manifest; readers are never locked out.

An advisory flock on `<db>.lock`, which names its holder; the kernel drops it if the holder dies.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from stacsync.core.clock import now_iso
from stacsync.core.errors import ManifestLockedError


class ManifestLock:
    """An advisory lock beside the database; the kernel drops it if the holder dies."""

    def __init__(self, db_path: Path):
        self.path = Path(f"{db_path}.lock")
        self._fd: int | None = None

    def acquire(self, purpose: str) -> None:
        """Take the lock without waiting, and write who holds it and since when."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ManifestLockedError(
                f"manifest {self.path.with_suffix('')} is locked by {holder}; "
                "wait for it to finish, or stop it (a running `stacsync run` keeps the lock)"
            ) from None
        # uname for the host name (what gethostname returns): a no-change rescan takes this
        # lock without loading socket.
        info = {
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "command": purpose,
            "since": now_iso(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Empty the holder note and drop the lock; safe to call twice."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"
