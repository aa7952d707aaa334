"""The daemon's parts: settling, mounts, options, guarded listings, sd_notify, watcher, faults."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from stacsync.config.settings import DaemonOptions
from stacsync.core.errors import ConfigError
from stacsync.core.records import SourceEntry
from stacsync.daemon.guard import GuardedSource
from stacsync.daemon.journal import JournalFormatter, stderr_is_journal
from stacsync.daemon.loop import Daemon, load_daemon_config
from stacsync.daemon.notify import Notifier
from stacsync.daemon.watch import (
    EventWatcher,
    Mount,
    Settler,
    needs_polling,
    polled_mounts,
    read_mounts,
)
from stacsync.manifest import queries
from stacsync.manifest.db import Manifest
from stacsync.sources import Listing
from stacsync.sources.local import LocalSource

# -- settling --------------------------------------------------------------------------------


class FakeFiles:
    """A clock and a stat table the settler reads."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_ns = 10**18
        self.files: dict[str, tuple[int, int]] = {}
        self.broken: set[str] = set()

    def stat(self, path: str) -> tuple[int, int] | None:
        if path in self.broken:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return self.files.get(path)

    def write(self, path: str, size: int) -> None:
        self.files[path] = (size, self.wall_ns)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall_ns += int(seconds * 1e9)


@pytest.fixture
def fake() -> FakeFiles:
    return FakeFiles()


def settler(fake: FakeFiles, settle: float = 30.0, min_age: float = 0.0) -> Settler:
    return Settler(
        fake.stat,
        settle,
        quick_seconds=1.0,
        min_age_seconds=min_age,
        clock=lambda: fake.now,
        wall_clock_ns=lambda: fake.wall_ns,
    )


def test_a_growing_file_waits_until_it_stops_changing(fake):
    s = settler(fake)
    fake.write("a.tif", 10)
    s.touch("a.tif")
    for size in (20, 30, 40):  # a slow writer that sends no events (a mount)
        fake.advance(29)
        assert s.due() == []
        fake.advance(2)
        fake.write("a.tif", size)
        assert s.due() == [], "changed since the last look: wait again"
    assert s.next_check() == pytest.approx(30)
    fake.advance(30)
    assert s.due() == ["a.tif"]
    assert len(s) == 0 and s.next_check() is None


def test_close_after_write_move_and_removal_settle_quickly(fake):
    s = settler(fake)
    fake.write("closed.tif", 5)
    fake.write("moved.tif", 5)
    s.touch("closed.tif", quick=True)
    s.touch("moved.tif", quick=True)
    s.touch("gone.tif")  # missing: a removal needs no long wait either
    fake.advance(1.0)
    assert s.due() == ["closed.tif", "gone.tif", "moved.tif"]


def test_an_event_restarts_the_wait(fake):
    s = settler(fake, settle=10)
    fake.write("a.tif", 1)
    s.touch("a.tif", quick=True)
    fake.advance(0.5)
    fake.write("a.tif", 2)
    s.touch("a.tif")  # written again after the close: the full settle applies
    fake.advance(5)
    assert s.due() == []
    fake.advance(5)
    assert s.due() == ["a.tif"]


def test_young_mtime_waits_for_the_pass_settle_time(fake):
    s = settler(fake, settle=1, min_age=60)  # source.settle_seconds = 60
    fake.write("a.tif", 1)
    s.touch("a.tif")
    fake.advance(1)
    assert s.due() == []
    assert s.next_check() == pytest.approx(59.05)
    fake.advance(59.05)
    assert s.due() == ["a.tif"]


def test_unstatable_path_stays_until_its_stat_settles(fake):
    s = settler(fake, settle=2)
    fake.write("a.tif", 1)
    fake.broken.add("a.tif")
    s.touch("a.tif")
    fake.advance(2)
    assert s.due() == ["a.tif"]  # the pass records the stat problem and keeps the file


# -- mounts ----------------------------------------------------------------------------------

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:50 / /data-store rw,nosuid - fuse.irodsfs irodsfs rw,user_id=0
41 27 0:51 / /srv/nfs\\040share rw - nfs4 server:/export rw
42 27 0:52 / /srv/local/inner rw - cifs //host/share rw
43 27 8:1 / /media/usb rw - fuseblk /dev/sda1 rw
"""


def test_mountinfo_types_and_escapes():
    mounts = read_mounts(MOUNTINFO)
    assert Mount("/srv/nfs share", "nfs4", "server:/export") in mounts
    assert [needs_polling(t) for t in ("fuse.irodsfs", "nfs", "cifs", "fuseblk", "ext4")] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_polled_mounts_holding_or_inside_the_source(tmp_path):
    mounts = read_mounts(MOUNTINFO)
    assert [m.point for m in polled_mounts(Path("/data-store/iplant/home/me"), mounts)] == [
        "/data-store"
    ]
    assert [m.point for m in polled_mounts(Path("/srv/local"), mounts)] == ["/srv/local/inner"]
    assert polled_mounts(Path("/media/usb/x"), mounts) == []
    assert polled_mounts(tmp_path, mounts) == []
    assert isinstance(polled_mounts(tmp_path), list)  # the real /proc/self/mountinfo parses


# -- options ---------------------------------------------------------------------------------

BASE = """
[source]
path = "src"
[output]
path = "catalog"
[[collection]]
id = "c"
match = '^(?P<item>.+)$'
"""


def test_daemon_table_is_read_and_overrides_win(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(BASE + '[daemon]\nsettle_seconds = 5\nwatch = "poll"\nignore = ["*.x"]\n')
    settings, options = load_daemon_config(config, {"poll_seconds": 7.5})
    assert settings.source_path == tmp_path / "src"
    assert options == DaemonOptions(
        settle_seconds=5.0, poll_seconds=7.5, watch="poll", ignore=("*.x",)
    )
    config.write_text(BASE)
    assert load_daemon_config(config)[1] == DaemonOptions()


def test_daemon_and_settings_errors_are_reported_together(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        BASE.replace("[output]", "[output]\ntitle = 1")
        + '[daemon]\nwatch = "inotify"\npoll_seconds = -1\nsettle = 3\n'
    )
    with pytest.raises(ConfigError) as err:
        load_daemon_config(config)
    lines = str(err.value).splitlines()
    assert any(line.startswith("output.title: unknown key") for line in lines)
    assert any(line.startswith("daemon.watch: must be one of auto, events, poll") for line in lines)
    assert any(line.startswith("daemon.poll_seconds: must be a number") for line in lines)
    assert any(line.startswith("daemon.settle: unknown key") for line in lines)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_daemon_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[source\n")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_daemon_config(tmp_path / "bad.toml")


# -- the guarded listing of a full pass ------------------------------------------------------


class StaticSource:
    def __init__(self, listing: Listing):
        self.listing = listing

    def list(self) -> Listing:
        return self.listing


NOW = 10**18


def entry(path: str, age_seconds: float) -> SourceEntry:
    return SourceEntry(path, 1, NOW - int(age_seconds * 1e9))


def guard(listing: Listing, known=(), held=(), mount_problem=lambda: None) -> GuardedSource:
    return GuardedSource(
        StaticSource(listing),
        known=set(known),
        held=set(held),
        min_age_seconds=30,
        mount_problem=mount_problem,
        wall_clock_ns=lambda: NOW,
    )


def test_young_and_held_files_are_neither_extracted_nor_removed():
    listing = Listing(
        entries={p: entry(p, age) for p, age in (("old", 60), ("young", 5), ("held", 60))}
    )
    g = guard(listing, known={"old", "young", "held", "gone", "pending-gone"}, held={"held"})
    seen = g.list()
    assert set(seen.entries) == {"old"}
    assert g.young == ["young"]
    assert sorted(g.missing) == ["gone", "pending-gone"]
    assert not any(seen.covers(p) for p in ("young", "held", "gone", "pending-gone"))
    assert seen.covers("old") and seen.covers("brand-new") and not g.failed


def test_an_empty_listing_or_a_changed_mount_counts_as_failed():
    g = guard(Listing(), known={"a.tif"})
    seen = g.list()
    assert g.failed and not seen.covers("a.tif") and g.missing == []
    assert "lists no files" in seen.problems[0]

    g = guard(
        Listing(entries={"a.tif": entry("a.tif", 60)}),
        known={"a.tif"},
        mount_problem=lambda: "mount gone",
    )
    seen = g.list()
    assert g.failed and seen.entries == {} and seen.problems == ["mount gone"]

    g = guard(Listing(), known=set())  # a new, empty source is fine
    g.list()
    assert not g.failed


# -- sd_notify -------------------------------------------------------------------------------


@pytest.fixture
def dgram():
    with tempfile.TemporaryDirectory(prefix="sdn") as folder:
        path = os.path.join(folder, "n")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2)
        yield sock, path
        sock.close()


def test_notifier_sends_and_rate_limits_watchdog(dgram):
    sock, path = dgram
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    assert n.enabled and n.watchdog_seconds == 2.0
    n.ready("hello\nworld")
    assert sock.recv(100) == b"READY=1\nSTATUS=hello world"
    n.watchdog()
    n.watchdog()  # within a second: skipped
    n.status("x")
    assert sock.recv(100) == b"WATCHDOG=1"
    assert sock.recv(100) == b"STATUS=x"
    n.close()
    n.close()


def test_notifier_abstract_socket_and_disabled_cases():
    name = f"stacsync-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).send("STATUS=abstract")
        assert sock.recv(100) == b"STATUS=abstract"
    finally:
        sock.close()
    assert not Notifier({}).enabled and Notifier({}).send("READY=1") is False
    other_pid = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_seconds is None


def test_notifier_never_blocks_on_a_full_queue(dgram):
    _sock, path = dgram  # nobody reads: the queue fills (net.unix.max_dgram_qlen)
    n = Notifier({"NOTIFY_SOCKET": path})
    started = time.monotonic()
    sent = [n.send(f"STATUS={i}") for i in range(500)]
    assert time.monotonic() - started < 1.0
    assert sent[0] is True and sent[-1] is False


def test_journal_lines_carry_priorities(tmp_path):
    record = logging.LogRecord("stacsync.daemon.loop", logging.WARNING, "", 0, "a\nb", None, None)
    assert JournalFormatter().format(record) == "<4>stacsync.daemon.loop: a\n<4>b"
    st = os.fstat(sys.stderr.fileno())
    assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert not stderr_is_journal({"JOURNAL_STREAM": "1:2"}) and not stderr_is_journal({})


# -- the event watcher -----------------------------------------------------------------------


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def test_watcher_turns_events_into_hints_and_notices_lost_events(tmp_path):
    root = tmp_path / "src"
    (root / "catalog").mkdir(parents=True)
    woken = threading.Event()
    watcher = EventWatcher(root, woken.set, skip=["catalog"])
    watcher.start()
    hints = []

    def drained(*wanted) -> bool:
        hints.extend((h.path, h.kind, h.is_dir) for h in watcher.drain())
        return all(w in hints for w in wanted)

    try:
        assert watcher.healthy()
        (root / "a").mkdir()
        (root / "a" / "x.tif").write_bytes(b"x")  # may beat the watch on `a`: the daemon walks it
        (root / "y.tif").write_bytes(b"y")
        (root / "catalog" / "item.json").write_text("{}")
        wait_for(lambda: drained(("a", "changed", True), ("y.tif", "closed", False)))
        (root / "a").rename(root / "b")
        wait_for(lambda: drained(("a", "gone", True), ("b", "arrived", True)))
        (root / "b" / "x.tif").unlink()
        wait_for(lambda: drained(("b/x.tif", "gone", False)))
        assert woken.is_set()
        assert not any(path.startswith("catalog") for path, _, _ in hints)

        assert not watcher.lost_events()
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        assert watcher.lost_events() and not watcher.lost_events()
    finally:
        watcher.close()
        watcher.close()
    assert not watcher.healthy()


def test_watching_a_missing_folder_raises(tmp_path):
    watcher = EventWatcher(tmp_path / "missing", lambda: None)
    with pytest.raises(OSError):
        watcher.start()
    watcher.close()


# -- fault injection: a flaky source under an in-process daemon ------------------------------


class FlakySource:
    """A local source whose listing, stats and reads fail on demand like a FUSE mount's."""

    def __init__(self, inner):
        self.inner = inner
        self.listing_fails = False  # EREMOTEIO on the root, as LocalSource reports it
        self.listing_empty = False  # a mount gone quiet: no error, no files
        self.broken: set[str] = set()  # reads fail every time
        self.hiccups: dict[str, int] = {}  # reads fail this many times, then work
        self.opens: list[str] = []

    def list(self) -> Listing:
        if self.listing_fails:
            return Listing(failed_dirs=[""], problems=["src: cannot list folder: Remote I/O error"])
        if self.listing_empty:
            return Listing()
        return self.inner.list()

    def stat(self, relpath: str):
        if self.listing_fails:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return self.inner.stat(relpath)

    def open(self, relpath: str):
        self.opens.append(relpath)
        if relpath in self.broken:
            raise OSError(errno.EREMOTEIO, "Remote I/O error", relpath)
        if self.hiccups.get(relpath, 0) > 0:
            self.hiccups[relpath] -= 1
            raise OSError(errno.EIO, "Input/output error", relpath)
        return self.inner.open(relpath)

    def local_path(self, relpath: str) -> str:
        return self.inner.local_path(relpath)

    def readable_path(self, relpath: str) -> str | None:
        return self.inner.readable_path(relpath)

    @property
    def remote(self) -> bool:
        return self.inner.remote


@pytest.fixture
def flaky_daemon(copy_testdata, tmp_path):
    src = tmp_path / "src"
    names = ["RGB.byte.tif", "elev.tif", "2d_test.tif", "autzen_trim.laz"]
    copy_testdata(*names, dest=src)
    for path in src.iterdir():
        os.utime(path, ns=(0, path.stat().st_mtime_ns - 60 * 10**9))
    config = tmp_path / "c.toml"
    config.write_text(BASE)
    holder: dict[str, FlakySource] = {}

    def factory(settings):
        holder["source"] = FlakySource(LocalSource.for_settings(settings))
        return holder["source"]

    daemon = Daemon(
        config,
        overrides={"watch": "poll", "poll_seconds": 0.2, "settle_seconds": 0.3},
        source_factory=factory,
        stop_grace_seconds=120,
    )
    flaky = holder["source"]
    flaky.hiccups = {"elev.tif": 2}
    flaky.broken = {"2d_test.tif"}
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    yield daemon, flaky, tmp_path
    daemon.request_stop()
    thread.join(30)
    assert not thread.is_alive()


def _rows(tmp_path: Path) -> dict[str, dict]:
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        return {row["path"]: row for row in queries.files(db)}


def test_faults_retry_record_errors_lose_nothing_and_heal(flaky_daemon, caplog):
    daemon, flaky, tmp_path = flaky_daemon
    caplog.set_level(logging.INFO, logger="stacsync")
    wait_for(lambda: daemon.passes >= 1, timeout=30)
    rows = _rows(tmp_path)
    assert set(rows) == {"RGB.byte.tif", "elev.tif", "2d_test.tif", "autzen_trim.laz"}
    assert rows["elev.tif"]["status"] == "ok"  # two EIOs, then the retry worked
    assert rows["2d_test.tif"]["status"] == "error"
    assert "Remote I/O error" in rows["2d_test.tif"]["error"]
    items = sorted((tmp_path / "catalog" / "c").glob("*/*.json"))
    assert len(items) == 3

    # The mount fails, then goes quiet: the daemon keeps trying and says why, and nothing is
    # removed or rewritten.
    def refused(why: str) -> int:
        return sum(
            why in r.getMessage() and "trying again" in r.getMessage() for r in caplog.records
        )

    flaky.listing_fails = True
    wait_for(lambda: refused("cannot list folder") >= 2 or None, timeout=30)
    assert "source unavailable" in daemon.status()
    flaky.listing_fails, flaky.listing_empty = False, True
    wait_for(lambda: refused("lists no files") >= 2 or None, timeout=30)
    assert len(_rows(tmp_path)) == 4
    assert sorted((tmp_path / "catalog" / "c").glob("*/*.json")) == items

    # Healed: the broken file is picked up by a later pass, a real removal goes through.
    flaky.listing_empty = False
    flaky.broken.clear()
    (tmp_path / "src" / "RGB.byte.tif").unlink()
    wait_for(lambda: _rows(tmp_path).get("2d_test.tif", {}).get("status") == "ok", timeout=30)
    wait_for(lambda: "RGB.byte.tif" not in _rows(tmp_path), timeout=30)
    # The row goes in the pass's diff, the item file at its end: wait for that pass to end.
    ended = daemon.passes
    wait_for(lambda: daemon.passes > ended, timeout=30)
    assert len(list((tmp_path / "catalog" / "c").glob("*/*.json"))) == 3
    assert daemon.status().startswith("polling every 0.2 s")


def test_close_is_idempotent_and_releases_the_lock(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(BASE)
    (tmp_path / "src").mkdir()
    daemon = Daemon(config)
    daemon.open()
    with pytest.raises(Exception, match="locked by"):
        Manifest.open_writer(tmp_path / "stacsync.db")
    daemon.close()
    daemon.close()
    Manifest.open_writer(tmp_path / "stacsync.db").close()
