"""How the daemon follows a source: inotify events or polling, and hints handed to the settler.

`Following` is the part of `Daemon` that watches; the loop and its passes are in loop.py.
"""

from __future__ import annotations

import bisect
import fnmatch
import logging
import os
import time
from pathlib import Path

from stacsync.daemon.watch import EventWatcher, Hint, mount_of, polled_mounts, read_mounts
from stacsync.sources import IncrementalSource
from stacsync.sources.include import is_included

log = logging.getLogger(__name__)

QUICK_SECONDS = 1.0  # wait after a close-after-write, a move in or a removal


class Following:
    """Watching and hints, mixed into `Daemon` (which holds the state these methods use)."""

    # -- watching ------------------------------------------------------------------------

    def _choose_mode(self) -> None:
        if isinstance(self._source, IncrementalSource):
            self._mount, self.want_events = None, False
            log.info(
                "polling %s every %g s for changes, full listing every %g s",
                self.settings.source_label,
                self.options.poll_seconds,
                self.options.reconcile_seconds,
            )
            return
        if self._source.remote:  # an object store: no events, no mount to watch
            self._mount, self.want_events = None, False
            log.info(
                "polling %s every %g s (one listing a poll)",
                self.settings.source_label,
                self.options.poll_seconds,
            )
            return
        source = self.settings.source_path
        mounts = read_mounts()
        self._mount = mount_of(source, mounts)
        watch = self.options.watch
        if watch == "auto":
            slow = polled_mounts(source, mounts)
            if slow:
                where = ", ".join(f"{m.point} ({m.fstype})" for m in slow)
                log.info("%s is on a mount that sends no change events: %s", source, where)
            watch = "poll" if slow else "events"
        self.want_events = watch == "events"
        if not self.want_events:
            log.info("polling %s every %g s", source, self.options.poll_seconds)

    def _ensure_watching(self) -> None:
        if not self.want_events or self.watcher is not None:
            return
        watcher = EventWatcher(self.settings.source_path, self._waker.wake, skip=self._skip())
        try:
            watcher.start()
        except OSError as exc:
            retry = max(self.options.poll_seconds, 30.0)
            log.warning(
                "cannot watch %s for events (%s); polling every %g s, trying again in %g s%s",
                self.settings.source_path,
                exc.strerror or exc,
                self.options.poll_seconds,
                retry,
                " (raise fs.inotify.max_user_watches)" if exc.errno == 28 else "",
            )
            self._next_watch_try = time.monotonic() + retry
            self._next_full = min(self._next_full, time.monotonic() + self.options.poll_seconds)
            return
        self.watcher = watcher
        log.info("watching %s for events", self.settings.source_path)
        # Whatever happened while nobody listened is only seen by a full pass.
        self._request_full("watching again" if self.passes else "startup")

    def _check_watcher(self) -> None:
        watcher = self.watcher
        if watcher is not None and not watcher.healthy():
            log.warning("the file-system watcher stopped; full reconcile, then watching again")
            self._take_hints()
            self._stop_watching()
            self._request_full("watcher stopped")
        elif watcher is not None and watcher.lost_events():
            log.warning("file-system events were lost (event queue overflow); full reconcile")
            self._request_full("lost events")
        if self.watcher is None and self.want_events and time.monotonic() >= self._next_watch_try:
            self._ensure_watching()

    def _stop_watching(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.close()

    def _skip(self) -> list[str]:
        try:
            rel = self.settings.output_path.resolve().relative_to(
                self.settings.source_path.resolve()
            )
        except ValueError:
            return []
        return [rel.as_posix()] if rel.parts else []

    # -- hints -> settler --------------------------------------------------------------------

    def _take_hints(self) -> None:
        if self.watcher is None:
            return
        hints = self.watcher.drain()
        known: list[str] | None = None
        for hint in hints:
            if hint.is_dir and hint.kind == "gone":
                if known is None:  # one manifest read per batch, however many folders went
                    assert self.db is not None
                    known = self.db.paths()
                for path in _under_prefix(known, hint.path + "/"):
                    self._settler.touch(path, quick=True)
            else:
                self._apply_hint(hint)

    def _apply_hint(self, hint: Hint) -> None:
        touch = self._settler.touch
        if hint.is_dir:  # created or moved in: its files may predate our watch on it
            for path in self._files_under(hint.path):
                touch(path, quick=hint.kind == "arrived")
        elif hint.path in self._tables():
            touch(hint.path)
        elif hint.kind == "gone":
            if is_included(self.settings, hint.path):
                touch(hint.path, quick=True)
        elif self._wanted(hint.path):
            touch(hint.path, quick=hint.kind != "changed")

    def _wanted(self, path: str) -> bool:
        name = path.rpartition("/")[2]
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.options.ignore):
            return False
        return is_included(self.settings, path)

    def _files_under(self, folder: str) -> list[str]:
        found = []
        skip = self._skip()
        top = self.settings.source_path / folder
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = Path(dirpath).relative_to(self.settings.source_path).as_posix()
            dirnames[:] = [d for d in dirnames if f"{rel_dir}/{d}" not in skip]
            found.extend(f"{rel_dir}/{n}" for n in filenames if self._wanted(f"{rel_dir}/{n}"))
        return found

    def _tables(self) -> set[str]:
        """Metadata tables inside the source: a change to one re-places every file."""
        tables = set()
        for collection in self.settings.collections:
            if collection.table is not None:
                try:
                    rel = collection.table.path.relative_to(self.settings.source_path)
                except ValueError:
                    continue
                tables.add(rel.as_posix())
        return tables

    def _stat(self, path: str) -> tuple[int, int] | None:
        entry = self._source.stat(path)
        return None if entry is None else (entry.size, entry.mtime_ns)

    def _configure_settler(self) -> None:
        self._settler.configure(
            self.options.settle_seconds, QUICK_SECONDS, self.settings.settle_seconds
        )


def _under_prefix(sorted_paths: list[str], prefix: str) -> list[str]:
    start = bisect.bisect_left(sorted_paths, prefix)
    found = []
    for path in sorted_paths[start:]:
        if not path.startswith(prefix):
            break
        found.append(path)
    return found
