"""`stacsync run`: keep the catalog in sync until stopped — one full pass, then follow changes.

Changed paths (events or polls) settle, then one pass runs per batch; reconciles catch the rest.
"""

from __future__ import annotations

import bisect
import contextlib
import fnmatch
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO

from stacsync.config import MIN_INTERVAL, Settings, is_included, read_toml, settings_from_dict
from stacsync.core.errors import ConfigError, SourceUnavailableError, StacsyncError
from stacsync.core.records import SourceEntry
from stacsync.core.summary import PassSummary
from stacsync.daemon.notify import Notifier
from stacsync.daemon.watch import (
    EventWatcher,
    Hint,
    Mount,
    Settler,
    mount_of,
    polled_mounts,
    read_mounts,
)
from stacsync.manifest import Manifest
from stacsync.pipeline.assemble import make_output, make_source
from stacsync.pipeline.sync import SyncPass
from stacsync.publish.local import Output
from stacsync.sources import IncrementalSource, Listing, Source

log = logging.getLogger(__name__)

WATCH_MODES = ("auto", "events", "poll")
QUICK_SECONDS = 1.0  # wait after a close-after-write, a move in or a removal
MAX_BACKOFF_SECONDS = 300.0
STOP_GRACE_SECONDS = 10.0  # then exit anyway: every step of a pass is crash-safe

SourceFactory = Callable[[Settings], Source]


# -- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaemonOptions:
    """The `[daemon]` table of the config (and `stacsync run` overrides)."""

    settle_seconds: float = 30.0
    poll_seconds: float = 120.0
    reconcile_seconds: float = 3600.0
    watch: str = "auto"
    ignore: tuple[str, ...] = (".*", "*.part", "*~", "*.tmp", "*.crdownload")


_OPTION_HELP = {
    "settle_seconds": "a changed file must keep the same size and mtime this long",
    "poll_seconds": "seconds between stat-diff passes when polling",
    "reconcile_seconds": "seconds between full reconciles while watching events",
    "watch": "auto, events or poll",
    "ignore": "file-name globs never taken as change hints (writers' temporary files)",
}


def load_daemon_config(
    path: Path, overrides: Mapping[str, Any] | None = None
) -> tuple[Settings, DaemonOptions]:
    """Read a config file: the usual settings plus its `[daemon]` table; all errors at once.

    config.py's registry documents `[daemon]` and validates it for every other command, but
    `Settings` carries no daemon options (a pass does not need them), so they are read here.
    """
    path = Path(os.path.expanduser(path)).absolute()
    document = read_toml(path)
    raw = document.pop("daemon", {})
    errors: list[str] = []
    settings = None
    try:
        settings = settings_from_dict(document, path.parent, path)
    except ConfigError as exc:
        errors.extend(str(exc).splitlines())
    options = _options(raw, dict(overrides or {}), errors)
    if errors or settings is None:
        raise ConfigError("\n".join(errors))
    return settings, options


def _options(raw: Any, overrides: dict[str, Any], errors: list[str]) -> DaemonOptions:
    if not isinstance(raw, dict):
        errors.append("daemon: must be a table ([daemon])")
        raw = {}
    names = [f.name for f in fields(DaemonOptions)]
    for name in raw:
        if name not in names:
            errors.append(f"daemon.{name}: unknown key (known: {', '.join(names)})")
    values = {}
    for name in names:
        value = overrides.get(name, raw.get(name))
        if value is not None:
            values[name] = _option_value(name, value, errors)
    try:
        return replace(DaemonOptions(), **{k: v for k, v in values.items() if v is not None})
    except TypeError:  # pragma: no cover - _option_value already refused it
        return DaemonOptions()


def _option_value(name: str, value: Any, errors: list[str]) -> Any:
    where = f"daemon.{name}"
    if name == "watch":
        if value not in WATCH_MODES:
            errors.append(f"{where}: must be one of {', '.join(WATCH_MODES)}, got {value!r}")
            return None
        return value
    if name == "ignore":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            errors.append(f"{where}: must be a list of glob patterns")
            return None
        if any(not v.strip() for v in value):  # as config's registry says of every glob list
            errors.append(f"{where}: patterns must not be empty")
            return None
        return tuple(value)
    smallest = 0.0 if name == "settle_seconds" else MIN_INTERVAL
    if isinstance(value, bool) or not isinstance(value, int | float) or value < smallest:
        errors.append(f"{where}: must be a number ≥ {smallest:g} ({_OPTION_HELP[name]})")
        return None
    return float(value)


# -- a source for full passes that holds back what is not settled or not confirmed gone -----


@dataclass
class _GuardedListing(Listing):
    protected: set[str] = field(default_factory=set)  # neither extracted nor removed this pass
    listed_count: int = 0  # what the source listed, young files held back included

    def listed(self) -> int:
        return self.listed_count

    def covers(self, relpath: str) -> bool:
        return relpath not in self.protected and super().covers(relpath)


class GuardedSource:
    """Wraps the source of a daemon full pass.

    A listed file that is still young (or already waiting to settle) is held back for the
    settler; a known file missing from the listing is kept until a second look confirms it is
    gone; a listing that saw nothing, or a source whose mount changed, counts as failed.
    """

    def __init__(
        self,
        inner: Source,
        *,
        known: Collection[str],
        held: Collection[str],
        min_age_seconds: float,
        mount_problem: Callable[[], str | None] = lambda: None,
        hold: Callable[[str, bool], None] = lambda path, quick: None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ):
        self.inner = inner
        self._hold = hold  # (path, quick): hand a held-back path to the settler
        self._known = known
        self._held = held
        self._min_age_ns = int(min_age_seconds * 1e9)
        self._mount_problem = mount_problem
        self._wall_ns = wall_clock_ns
        self.young: list[str] = []  # listed but not settled: hand to the settler
        self.missing: list[str] = []  # known, not listed: look again before removing
        self.failed = False  # the source could not be listed at all

    def list(self) -> Listing:
        listing = self._checked(self.inner.list())
        self.failed = "" in listing.failed_dirs
        guarded = _GuardedListing(
            entries=dict(listing.entries),
            failed_dirs=listing.failed_dirs,
            problems=listing.problems,
            scope=listing.scope,
            skipped=listing.skipped,
            listed_count=listing.listed(),
        )
        newest_ok = self._wall_ns() - self._min_age_ns
        for path, entry in listing.entries.items():
            if path in self._held or entry.mtime_ns > newest_ok:
                del guarded.entries[path]
                guarded.protected.add(path)
                if path not in self._held:
                    self.young.append(path)
                    self._hold(path, False)
        for path in self._known:
            if path in guarded.entries or path in guarded.protected:
                continue
            if path in self._held or guarded.covers(path):
                guarded.protected.add(path)
                if path not in self._held:
                    self.missing.append(path)
                    self._hold(path, True)
        return guarded

    def _checked(self, listing: Listing) -> Listing:
        problem = self._mount_problem()
        if problem is None and not listing.entries and self._known and not listing.failed_dirs:
            problem = (
                f"the source lists no files but the manifest knows {len(self._known)}: taken as "
                "a failed listing (mount gone?), nothing removed; if the files really are gone, "
                "stop the daemon and run `stacsync rescan`"
            )
        if problem is None:
            return listing
        log.warning("%s", problem)
        return Listing(failed_dirs=[""], problems=[*listing.problems, problem])

    def stat(self, relpath: str) -> SourceEntry | None:
        return self.inner.stat(relpath)

    def open(self, relpath: str) -> BinaryIO:
        return self.inner.open(relpath)

    def local_path(self, relpath: str) -> str:
        return self.inner.local_path(relpath)

    def readable_path(self, relpath: str) -> str | None:
        return self.inner.readable_path(relpath)

    @property
    def remote(self) -> bool:
        return self.inner.remote


# -- the loop --------------------------------------------------------------------------------


class _Stopping(Exception):
    """Raised from the pass's progress callback after a stop request (never inside a commit)."""


class _Waker:
    """A pipe the main loop sleeps on; threads and signal handlers write a byte to wake it.

    (A signal handler must not take a lock the interrupted main thread may hold, so it only
    sets flags and writes here.)
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already awake) or closed
            os.write(self._w, b"!")

    def wait(self, timeout: float) -> None:
        if timeout > 0:
            select.select([self._r], [], [], timeout)
        with contextlib.suppress(OSError):
            while os.read(self._r, 4096):
                pass

    def close(self) -> None:
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._r = self._w = -1


class Daemon:
    """One `stacsync run`: holds the manifest lock from `run()` until `close()`."""

    def __init__(
        self,
        config_path: Path,
        *,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        source_factory: SourceFactory = make_source,
        output_factory: Callable[[Settings], Output] = make_output,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ):
        self.config_path = Path(config_path)
        self.overrides = dict(overrides or {})
        self.settings, self.options = load_daemon_config(self.config_path, self.overrides)
        self.notifier = Notifier(environ)
        self.stop_grace_seconds = stop_grace_seconds
        self._source_factory = source_factory
        self._output_factory = output_factory
        self._source = source_factory(self.settings)
        self._output: Any = None  # made once the manifest is locked (an iRODS output connects)
        self.db: Manifest | None = None
        self.watcher: EventWatcher | None = None
        self.want_events = False
        self._mount: Mount | None = None
        self._settler = Settler(self._stat, self.options.settle_seconds)
        self._configure_settler()
        self._stop = threading.Event()
        self._closed = threading.Event()
        self._reload_requested = False
        self._rescan_requested = False
        self._waker = _Waker()
        self._old_handlers: dict[int, Any] = {}
        self._next_full = 0.0
        self._next_reason = "startup"
        self._next_watch_try = 0.0
        # A source that lists what changed since a time (iRODS) is polled for that between
        # full passes; full passes then come every reconcile_seconds.
        self._poll_since: float | None = None
        self._next_poll = float("inf")
        self._listing_backoff = 0.0  # a source that cannot be listed: full passes come sooner
        self._failure_backoff = 0.0  # a pass that cannot run: every pass waits
        self._quiet_until = 0.0
        self.last_summary: PassSummary | None = None
        self.last_reason = ""
        self.passes = 0
        self.source_problem: str | None = None  # why the last full listing was not trusted

    # -- public control (signal handlers call these; they only set flags and wake) -------

    def request_stop(self) -> None:
        self._stop.set()
        self._waker.wake()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._waker.wake()

    def request_rescan(self) -> None:
        self._rescan_requested = True
        self._waker.wake()

    # -- run -----------------------------------------------------------------------------

    def run(self) -> int:
        """Lock, full pass, then follow changes until stopped; 0 on an orderly stop."""
        self._install_signals()
        threading.Thread(target=self._stop_guard, name="stacsync-stop-guard", daemon=True).start()
        try:
            self.open()
            self._output = self._output_factory(self.settings)
            self._output.check_writable()
            self._choose_mode()
            self._ensure_watching()
            self.notifier.ready("startup: full pass running")
            self._full_pass("startup", fatal=True)
            while not self._stop.is_set():
                self._step()
                self._sleep()
            log.info("stopping (signal)")
        finally:
            self.close()
            self._restore_signals()
        return 0

    def open(self) -> None:
        if self.db is None:
            purpose = (
                f"stacsync run --config {self.config_path.absolute()}; "
                f"`kill -USR1 {os.getpid()}` asks it for a full pass"
            )
            self.db = Manifest.open_writer(self.settings.manifest_path, purpose=purpose)

    def close(self) -> None:
        """Stop watching, release the manifest lock, tell systemd; safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._stop.set()
        self._stop_watching()
        if self.db is not None:
            self.db.close()
            self.db = None
        self.notifier.stopping()
        self.notifier.close()
        self._waker.close()

    # -- one turn of the loop --------------------------------------------------------------

    def _step(self) -> None:
        self.notifier.watchdog()
        if self._reload_requested:
            self._reload_requested = False
            self._reload()
        self._check_watcher()
        self._take_hints()
        if time.monotonic() < self._quiet_until:
            return
        if time.monotonic() >= self._next_poll:
            self._poll_changes()
        due = self._settler.due()
        if due:
            self._changes_pass(due)
        if self._stop.is_set():
            return
        if self._rescan_requested:
            self._rescan_requested = False
            self._full_pass("requested")
        elif time.monotonic() >= self._next_full:
            self._full_pass(self._next_reason)

    def _sleep(self) -> None:
        now = time.monotonic()
        if now < self._quiet_until:
            deadlines = [self._quiet_until - now]
        else:
            deadlines = [0.0 if self._rescan_requested else self._next_full - now]
            settle = self._settler.next_check()
            if settle is not None:
                deadlines.append(settle)
            deadlines.append(self._next_poll - now)
        if self.watcher is None and self.want_events:
            deadlines.append(self._next_watch_try - now)
        if self.notifier.watchdog_seconds:
            deadlines.append(self.notifier.watchdog_seconds / 3)
        if self._stop.is_set() or self._reload_requested:
            return
        self._waker.wait(max(0.0, min(deadlines)))

    # -- watching ------------------------------------------------------------------------

    def _choose_mode(self) -> None:
        if isinstance(self._source, IncrementalSource):
            self._mount, self.want_events = None, False
            log.info(
                "polling %s every %g s for changes, full listing every %g s",
                self.settings.source_irods or self.settings.source_path,
                self.options.poll_seconds,
                self.options.reconcile_seconds,
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

    # -- passes --------------------------------------------------------------------------

    def _poll_changes(self) -> None:
        """Ask an incremental source what changed since the last poll; hand it to the settler.

        Deletions and same-size-same-mtime overwrites are not seen here: reconciles find them.
        """
        source = self._source
        assert isinstance(source, IncrementalSource) and self._poll_since is not None
        started = time.time()
        self._next_poll = time.monotonic() + self.options.poll_seconds
        listing = source.list_since(self._poll_since)
        if listing.failed_dirs:
            log.warning("poll failed (%s); trying again next poll", "; ".join(listing.problems))
            return
        self._poll_since = started
        wanted = [path for path in listing.entries if self._wanted(path)]
        for path in wanted:
            self._settler.touch(path, quick=True)
        log.debug("poll: %d changed objects", len(wanted))

    def _changes_pass(self, due: list[str]) -> None:
        tables = self._tables()
        if tables.intersection(due):
            self._request_full("metadata table changed")
            due = [p for p in due if p not in tables]
        if not due:
            return
        summary = self._run_pass("changes", self._source, due)
        if summary is None:
            for path in due:  # try again after the back-off
                self._settler.touch(path, quick=True)

    def _full_pass(self, reason: str, fatal: bool = False) -> None:
        assert self.db is not None
        started = time.time()
        guard = GuardedSource(
            self._source,
            known=self.db.paths(),
            held=self._settler.paths(),
            min_age_seconds=max(self.options.settle_seconds, self.settings.settle_seconds),
            mount_problem=self._mount_problem,
            hold=lambda path, quick: self._settler.touch(path, quick=quick),
        )
        summary = self._run_pass(reason, guard, None, fatal=fatal)
        failed = guard.failed or self.source_problem is not None
        if summary is None and not failed:
            return
        incremental = isinstance(self._source, IncrementalSource)
        following = self.watcher is not None or incremental
        interval = self.options.reconcile_seconds if following else self.options.poll_seconds
        if incremental and not failed:
            # The full listing saw everything up to its start: polls go on from there.
            self._poll_since = started
            self._next_poll = time.monotonic() + self.options.poll_seconds
        if failed:
            self._listing_backoff = _doubled(self._listing_backoff)
            interval = min(interval, self._listing_backoff)
            self._next_reason = "retry"
        else:
            self._listing_backoff = 0.0
            self._next_reason = "reconcile" if following else "poll"
        self._next_full = time.monotonic() + interval

    def _run_pass(
        self, reason: str, source: Any, paths: list[str] | None, fatal: bool = False
    ) -> PassSummary | None:
        assert self.db is not None
        scope = "full" if paths is None else f"{len(paths)} paths"
        self.notifier.status(f"{reason} pass running ({scope})")
        try:
            sync = SyncPass(
                self.settings, self.db, source=source, output=self._output, progress=self._progress
            )
            summary = sync.run(paths)
        except _Stopping:
            log.info("%s pass stopped between commits; the next start finishes it", reason)
            return None
        except SourceUnavailableError as exc:
            # Not a crash: the catalog is kept as it is and the listing is tried again soon.
            self.source_problem = str(exc)
            log.warning("%s pass (%s): %s; trying again", reason, scope, exc)
            self.notifier.status(self.status())
            return None
        except Exception as exc:
            if fatal:
                raise
            expected = isinstance(exc, StacsyncError | OSError)
            log.error("%s pass (%s) failed: %s", reason, scope, exc, exc_info=not expected)
            self._back_off()
            return None
        self.passes += 1
        self.source_problem = None
        self._failure_backoff = 0.0
        self.last_summary, self.last_reason = summary, reason
        # A poll that found nothing is the daemon idling: keep it out of the journal.
        quiet = reason == "poll" and not _changed(summary)
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s",
            _pass_line(reason, scope, summary, len(self._settler)),
        )
        self.notifier.status(self.status())
        return summary

    def _progress(self, phase: str, done: int, total: int) -> None:
        if self._stop.is_set():
            raise _Stopping
        self.notifier.watchdog()  # a long pass is progress too

    def _back_off(self) -> None:
        self._failure_backoff = _doubled(self._failure_backoff)
        self._quiet_until = time.monotonic() + self._failure_backoff
        log.warning("trying again in %g s", self._failure_backoff)

    def _request_full(self, reason: str) -> None:
        self._next_full = 0.0
        self._next_reason = reason

    def _mount_problem(self) -> str | None:
        if self._mount is None:
            return None
        now = mount_of(self.settings.source_path, read_mounts())
        if now is not None and (now.point, now.fstype) == (self._mount.point, self._mount.fstype):
            return None
        seen = f"{now.fstype} at {now.point}" if now else "no mount"
        return (
            f"{self.settings.source_path} was on {self._mount.fstype} mounted at "
            f"{self._mount.point}, now on {seen}: mount gone? nothing removed "
            "(restart stacsync if the change is meant)"
        )

    def status(self) -> str:
        """One line for systemd's STATUS=: how we watch and the last pass's figures."""
        if isinstance(self._source, IncrementalSource):
            how = f"polling changes every {self.options.poll_seconds:g} s"
        elif self.watcher is not None:
            how = "watching events"
        elif self.want_events:
            how = f"polling every {self.options.poll_seconds:g} s (events unavailable)"
        else:
            how = f"polling every {self.options.poll_seconds:g} s"
        if self.source_problem is not None:
            return f"{how}; catalog kept, source unavailable: {self.source_problem}"
        s = self.last_summary
        if s is None:
            return how
        return (
            f"{how}; last pass ({self.last_reason}) at {time.strftime('%H:%M:%S')}: "
            f"{s.added} added, {s.modified} modified, {s.removed} removed, {s.errors} errors, "
            f"{s.items_written} items written; {len(self._settler)} waiting to settle"
        )

    # -- reload and signals --------------------------------------------------------------

    def _reload(self) -> None:
        self.notifier.reloading()
        try:
            settings, options = load_daemon_config(self.config_path, self.overrides)
            if settings.manifest_path != self.settings.manifest_path:
                raise ConfigError("manifest.path: cannot change while running; restart instead")
        except ConfigError as exc:
            log.error(
                "config reload from %s failed; keeping the running config:\n%s",
                self.config_path,
                exc,
            )
            self.notifier.ready(self.status())
            return
        rewatch = (
            settings.source_path != self.settings.source_path
            or settings.output_path != self.settings.output_path
            or options.watch != self.options.watch
        )
        self.settings, self.options = settings, options
        self._source = self._source_factory(settings)
        if rewatch:
            self._output = self._output_factory(settings)
        self._configure_settler()
        if rewatch:
            self._stop_watching()
            self._choose_mode()
            self._ensure_watching()
        self._request_full("config reloaded")
        log.info("config reloaded from %s", self.config_path)
        self.notifier.ready(self.status())

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # in-process use (tests): call request_*() instead
        handlers = {
            signal.SIGTERM: lambda *_: self.request_stop(),
            signal.SIGINT: lambda *_: self.request_stop(),
            signal.SIGHUP: lambda *_: self.request_reload(),
            signal.SIGUSR1: lambda *_: self.request_rescan(),
        }
        for signum, handler in handlers.items():
            self._old_handlers[signum] = signal.signal(signum, handler)

    def _restore_signals(self) -> None:
        handlers, self._old_handlers = self._old_handlers, {}
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    def _stop_guard(self) -> None:
        """After a stop request, give the pass a few seconds, then exit regardless."""
        self._stop.wait()
        if self._closed.wait(self.stop_grace_seconds):
            return
        log.error(
            "still busy %g s after the stop request (a slow read?); exiting now: the next "
            "start redoes whatever was in flight",
            self.stop_grace_seconds,
        )
        logging.shutdown()
        os._exit(0)


def _doubled(backoff: float) -> float:
    return min(max(backoff * 2, 5.0), MAX_BACKOFF_SECONDS)


def _changed(s: PassSummary) -> bool:
    counts = (s.added, s.modified, s.touched, s.removed, s.new_errors)
    return any(counts) or bool(s.items_written or s.items_deleted or s.listing_problems)


def _under_prefix(sorted_paths: list[str], prefix: str) -> list[str]:
    start = bisect.bisect_left(sorted_paths, prefix)
    found = []
    for path in sorted_paths[start:]:
        if not path.startswith(prefix):
            break
        found.append(path)
    return found


def _pass_line(reason: str, scope: str, s: PassSummary, waiting: int) -> str:
    line = (
        f"{reason} pass ({scope}): {s.added} added, {s.modified} modified, {s.touched} touched,"
        f" {s.removed} removed, {s.unchanged} unchanged, {s.errors} errors ({s.new_errors} new);"
        f" {s.items_written} items written, {s.items_deleted} deleted in {s.seconds:.2f}s"
    )
    if waiting:
        line += f"; {waiting} waiting to settle"
    if s.listing_problems:
        line += f"; {len(s.listing_problems)} listing problems, first: {s.listing_problems[0]}"
    return line


# -- logging helpers for the CLI -------------------------------------------------------------

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """`<priority>name: message` lines: journald reads the priority and adds its own time."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is systemd's journal stream (JOURNAL_STREAM names its device:inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)
