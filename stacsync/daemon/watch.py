"""What tells the daemon a file changed: watchdog events as hints, mount detection, settling.

Events are only hints: every path they name is stat-ed until it settles, then a pass decides.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog import events

log = logging.getLogger(__name__)

_CHANGE_EVENTS = [
    events.FileCreatedEvent,
    events.FileModifiedEvent,
    events.FileDeletedEvent,
    events.FileMovedEvent,
    events.FileClosedEvent,
    events.DirCreatedEvent,
    events.DirDeletedEvent,
    events.DirMovedEvent,
    events.DirModifiedEvent,
]

# File systems where inotify hears nothing of changes made elsewhere (other clients of the
# mount, or the store behind a FUSE driver): these are polled. `fuseblk` is a local disk.
NO_EVENT_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "virtiofs",
        "davfs",
    }
)


# -- mounts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of /proc/self/mountinfo: where a file system is mounted and its type."""

    point: str
    fstype: str
    source: str


def read_mounts(text: str | None = None) -> list[Mount]:
    """Parse /proc/self/mountinfo (or `text`); an unreadable file gives no mounts."""
    if text is None:
        try:
            text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return mounts


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def needs_polling(fstype: str) -> bool:
    """True for a file system type that sends no events for remote changes."""
    return fstype in NO_EVENT_FS or (fstype.startswith("fuse") and fstype != "fuseblk")


def mount_of(path: Path, mounts: list[Mount]) -> Mount | None:
    """The mount holding `path` (the longest mount point above it; the last one wins)."""
    target = os.path.realpath(path)
    best: Mount | None = None
    for mount in mounts:
        if _under(target, mount.point) and (best is None or len(mount.point) >= len(best.point)):
            best = mount
    return best


def polled_mounts(path: Path, mounts: list[Mount] | None = None) -> list[Mount]:
    """Mounts at or below `path` that need polling (the one holding it, and any inside it)."""
    mounts = read_mounts() if mounts is None else mounts
    target = os.path.realpath(path)
    found = []
    holder = mount_of(path, mounts)
    if holder is not None and needs_polling(holder.fstype):
        found.append(holder)
    for mount in mounts:
        if mount.point != target and _under(mount.point, target) and needs_polling(mount.fstype):
            found.append(mount)
    return found


def _under(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip("/") + "/")


# -- event hints -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hint:
    """Something happened at `path` (relative to the source root, POSIX separators).

    kind: changed (created, modified, attributes), closed (after a write), gone (deleted or
    moved away), arrived (moved in: complete at once).
    """

    path: str
    kind: str
    is_dir: bool


_KINDS = {
    "created": "changed",
    "modified": "changed",
    "attrib": "changed",
    "closed": "closed",
    "deleted": "gone",
}


class EventWatcher:
    """Runs a watchdog observer on a folder and queues its events as hints.

    `lost_events()` turns true when events may have been dropped (kernel queue overflow, a
    watch that could not be rebuilt): the caller then does a full reconcile.
    """

    def __init__(self, root: Path, wake: Callable[[], None], skip: Iterable[str] = ()):
        self.root = os.path.abspath(root)
        self._wake = wake
        self._skip = tuple(s.rstrip("/") for s in skip if s)  # relative folders, e.g. the output
        self._hints: deque[Hint] = deque()
        self._lost = threading.Event()
        self._observer = None
        self._log_hook = _LostEventsHook(self._lost)

    def start(self) -> None:
        """Start watching; raises OSError when the folder cannot be watched (missing, limits)."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                watcher._on_event(event)

        observer = Observer()
        observer.daemon = True
        _watchdog_logger().addHandler(self._log_hook)
        observer.start()
        try:
            # Scheduled on a running observer, so a missing folder or an inotify limit
            # (ENOSPC: fs.inotify.max_user_watches) raises here, in the caller's thread.
            # Opens and read-only closes are not changes; with them, a full pass over a big
            # tree (one open per folder listed) overflowed the inotify queue, and the
            # reconcile that follows an overflow overflowed it again, forever.
            observer.schedule(_Handler(), self.root, recursive=True, event_filter=_CHANGE_EVENTS)
        except BaseException:
            self._stop_observer(observer)
            raise
        self._observer = observer

    def healthy(self) -> bool:
        """False when the observer or one of its emitter threads has died."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        return all(emitter.is_alive() for emitter in observer.emitters)

    def lost_events(self) -> bool:
        """True (once) when events may have been lost since the last call."""
        if self._lost.is_set():
            self._lost.clear()
            return True
        return False

    def drain(self) -> list[Hint]:
        hints = []
        with contextlib.suppress(IndexError):
            while True:
                hints.append(self._hints.popleft())
        return hints

    def close(self) -> None:
        """Stop the observer; safe to call twice."""
        observer, self._observer = self._observer, None
        if observer is not None:
            self._stop_observer(observer)

    def _stop_observer(self, observer) -> None:
        with contextlib.suppress(Exception):
            observer.stop()
            observer.join(timeout=5)
        _watchdog_logger().removeHandler(self._log_hook)

    # -- called on the observer's thread ---------------------------------------------------

    def _on_event(self, event) -> None:
        kind = event.event_type
        if kind == "moved":
            self._add(event.src_path, "gone", event.is_directory)
            self._add(event.dest_path, "arrived", event.is_directory)
        elif kind in _KINDS and not (event.is_directory and kind in ("modified", "attrib")):
            self._add(event.src_path, _KINDS[kind], event.is_directory)
        else:
            return  # opened, closed without writing, a folder's own mtime
        self._wake()

    def _add(self, abs_path: str | bytes, kind: str, is_dir: bool) -> None:
        rel = self._relative(os.fsdecode(abs_path))
        if rel is not None:
            self._hints.append(Hint(rel, kind, is_dir))

    def _relative(self, abs_path: str) -> str | None:
        if not abs_path.startswith(self.root + os.sep):
            return None  # the root itself, or moved out of the tree
        rel = abs_path[len(self.root) + 1 :].replace(os.sep, "/")
        if any(rel == s or rel.startswith(s + "/") for s in self._skip):
            return None
        return rel


class _LostEventsHook(logging.Handler):
    """Watchdog reports a kernel queue overflow only as a log warning: listen for it."""

    def __init__(self, flag: threading.Event):
        super().__init__(level=logging.WARNING)
        self._flag = flag

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().lower()
        if "overflow" in message or "unable to" in message:
            self._flag.set()


def _watchdog_logger() -> logging.Logger:
    logger = logging.getLogger("watchdog.observers")
    # The overflow warning must reach the hook even when stacsync runs with -q.
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    return logger


# -- settling --------------------------------------------------------------------------------

StatFn = Callable[[str], tuple[int, int] | None]
"""(size, mtime_ns) of a path, None when it does not exist; raises OSError when unknown."""

_UNKNOWN = ("unknown",)  # a stat that failed: neither present nor absent


@dataclass(slots=True)
class _Pending:
    state: object
    check_at: float
    quick: bool


class Settler:
    """Paths waiting until their size and mtime stop changing.

    A path is due once a stat shows the same size and mtime as `settle_seconds` earlier (or
    `quick_seconds` after a close-after-write, a move into the tree or a removal: those are
    complete at once, the short wait only gathers a burst), and its mtime is at least
    `min_age_seconds` old (the pass itself defers younger files).
    """

    def __init__(
        self,
        stat: StatFn,
        settle_seconds: float,
        quick_seconds: float = 1.0,
        min_age_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ):
        self._stat = stat
        self._clock = clock
        self._wall_ns = wall_clock_ns
        self._pending: dict[str, _Pending] = {}
        self.configure(settle_seconds, quick_seconds, min_age_seconds)

    def configure(
        self, settle_seconds: float, quick_seconds: float = 1.0, min_age_seconds: float = 0.0
    ) -> None:
        self.settle_seconds = settle_seconds
        self.quick_seconds = min(quick_seconds, settle_seconds)
        self.min_age_seconds = min_age_seconds

    def __len__(self) -> int:
        return len(self._pending)

    def paths(self) -> frozenset[str]:
        return frozenset(self._pending)

    def touch(self, path: str, quick: bool = False) -> None:
        """Something happened at `path`: (re)start its wait."""
        now = self._clock()
        # One stat per event keeps the baseline fresh, so the wait ends `settle` after the
        # last change rather than needing a second full wait to confirm it.
        entry = _Pending(self._state(path), now, quick)
        entry.check_at = now + self._wait(entry)
        self._pending[path] = entry

    def next_check(self) -> float | None:
        """Seconds until the next path may be due; None when nothing waits."""
        if not self._pending:
            return None
        return max(0.0, min(e.check_at for e in self._pending.values()) - self._clock())

    def due(self) -> list[str]:
        """Paths that have settled, sorted; they stop being tracked."""
        now = self._clock()
        ready = []
        for path, entry in self._pending.items():
            if entry.check_at <= now and self._settled(path, entry, now):
                ready.append(path)
        for path in ready:
            del self._pending[path]
        return sorted(ready)

    def _settled(self, path: str, entry: _Pending, now: float) -> bool:
        state = self._state(path)
        if state != entry.state:
            entry.state = state
            entry.check_at = now + self._wait(entry)
            return False
        if isinstance(state, tuple) and len(state) == 2:
            age = (self._wall_ns() - state[1]) / 1e9
            if age < self.min_age_seconds:
                entry.check_at = now + self.min_age_seconds - age + 0.05
                return False
        return True

    def _wait(self, entry: _Pending) -> float:
        return self.quick_seconds if entry.quick or entry.state is None else self.settle_seconds

    def _state(self, path: str) -> object:
        try:
            return self._stat(path)
        except OSError:
            return _UNKNOWN
