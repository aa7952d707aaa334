"""The writer lock: one process at a time may change a manifest; readers are never locked out.

An advisory flock on `<db>.lock`, which names its holder; the kernel drops it if the holder dies.
"""

from __future__ import annotations

import fcntl
import os

from stacsync.core.clock import now_iso
from stacsync.core.errors import ManifestLockedError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (checkers know the idiom)
if TYPE_CHECKING:
    from pathlib import Path


class ManifestLock:
    """An advisory lock beside the database; the kernel drops it if the holder dies."""

    def __init__(self, db_path: str | os.PathLike):
        # A string: a no-change rescan takes this lock without importing pathlib.
        self._file = f"{db_path}.lock"
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """The lock file, `<db>.lock`."""
        from pathlib import Path

        return Path(self._file)

    def acquire(self, purpose: str) -> None:
        """Take the lock without waiting, and write who holds it and since when."""
        folder = os.path.dirname(self._file)
        if folder:  # as Path.mkdir(parents=True, exist_ok=True); "" is the working folder
            os.makedirs(folder, exist_ok=True)
        fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ManifestLockedError(
                f"manifest {self.path.with_suffix('')} is locked by {holder}; "
                "wait for it to finish, or stop it (a running `stacsync run` keeps the lock)"
            ) from None
        # A line that a person reads as it is (`cat <db>.lock`) and `_read_holder` quotes: not
        # JSON, which a no-change rescan does not import. uname for the host name (what
        # gethostname returns), which does not load socket.
        note = f"pid {os.getpid()} on {os.uname().nodename} ({purpose}, since {now_iso()})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode("utf-8", "backslashreplace"), 0)
        self._fd = fd

    def release(self) -> None:
        """Empty the holder note and drop the lock; safe to call twice."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        note = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        note = ""
    return note or "another process"  # empty between the holder's truncate and write
