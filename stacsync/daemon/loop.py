"""`stacsync run`: keep the catalog in sync until stopped — one full pass, then follow changes.

Changed paths (events or polls) settle, then one pass runs per batch; reconciles catch the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stacsync.config.load import load_settings
from stacsync.config.settings import DaemonOptions, Settings
from stacsync.core.errors import ConfigError, SourceUnavailableError, StacsyncError
from stacsync.core.summary import PassSummary
from stacsync.daemon.follow import Following
from stacsync.daemon.guard import GuardedSource
from stacsync.daemon.journal import changed, pass_line
from stacsync.daemon.notify import Notifier
from stacsync.daemon.watch import (
    EventWatcher,
    Mount,
    Settler,
    mount_of,
    read_mounts,
)
from stacsync.manifest.db import Manifest
from stacsync.pipeline.assemble import make_output, make_source
from stacsync.pipeline.sync import SyncPass
from stacsync.publish.base import Output
from stacsync.sources import IncrementalSource, Source

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0
STOP_GRACE_SECONDS = 10.0  # then exit anyway: every step of a pass is crash-safe

SourceFactory = Callable[[Settings], Source]


# -- options ---------------------------------------------------------------------------------


def load_daemon_config(
    path: Path, overrides: Mapping[str, Any] | None = None
) -> tuple[Settings, DaemonOptions]:
    """Read a config file: the usual settings and its `[daemon]` options; all errors at once.

    `overrides` (`stacsync run` options, by `[daemon]` key; None: not given) win over the
    file and are checked by the config registry like the file's own values; `scheduler`
    (`run --scheduler`) replaces `[scale] scheduler`.
    """
    overrides = dict(overrides or {})
    scheduler = overrides.pop("scheduler", None)
    settings = load_settings(path, daemon_overrides=overrides)
    if scheduler:
        settings = dataclasses.replace(settings, scheduler=scheduler)
    return settings, settings.daemon


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


class Daemon(Following):
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
        quiet = reason == "poll" and not changed(summary)
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s",
            pass_line(reason, scope, summary, len(self._settler)),
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
