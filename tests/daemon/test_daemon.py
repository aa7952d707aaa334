"""`stacsync run` as a real process on real files: events, polling, signals, lock, sd_notify."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import age, catalog_bytes
from processes import COLLECTION, cli, item_file, wait_for, write_config

from stacsync.manifest import queries
from stacsync.manifest.db import Manifest


@pytest.fixture
def tree(copy_testdata, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    copy_testdata("RGB.byte.tif", dest=src / "rasters")
    copy_testdata("autzen_trim.laz", dest=src / "clouds")
    age(src)
    return src


def rescan_json(config: Path) -> dict:
    done = cli("rescan", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_rescan_changes_nothing(tmp_path: Path, config: Path) -> None:
    """A one-shot rescan after the daemon finds the catalog exact: it writes nothing."""
    before = catalog_bytes(tmp_path / "catalog")
    summary = rescan_json(config)
    changes = {k: summary[k] for k in ("added", "modified", "removed", "errors")}
    assert changes == {"added": 0, "modified": 0, "removed": 0, "errors": 0}, summary
    assert (summary["items_written"], summary["items_deleted"]) == (0, 0), summary
    assert not summary["catalog_written"] and not summary["index_written"], summary
    assert catalog_bytes(tmp_path / "catalog") == before


def write_slowly(source: Path, target: Path, chunks: int, pause: float, check: Callable) -> None:
    """Write `source` into `target` in chunks, calling `check()` after each but the last."""
    data = source.read_bytes()
    step = len(data) // chunks + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for start in range(0, len(data), step):
            out.write(data[start : start + step])
            out.flush()
            if start + step < len(data):
                time.sleep(pause)
                check()


def bbox(path: Path) -> list[float]:
    return json.loads(path.read_text())["bbox"]


# -- events ----------------------------------------------------------------------------------


def test_events_follow_writes_renames_moves_and_deletes(tree, tmp_path, daemons, testdata):
    config = write_config(tmp_path)
    # Settling (0.6 s, and the 0.6 s quick wait after a close or move) stays well above the
    # 0.2 s pauses of the slow writer below.
    daemon = daemons(config, "--settle-seconds", "0.6", "--watch", "events")
    daemon.wait_log("startup pass (full)")
    assert item_file(tmp_path, "rasters/RGB.byte.tif").is_file()
    assert item_file(tmp_path, "clouds/autzen_trim.laz").is_file()
    assert "watching" in daemon.log()
    db = tmp_path / "stacsync.db"

    # A GeoTIFF written slowly is not looked at until it stops changing.
    def not_yet() -> None:
        with Manifest.open_reader(db) as m:
            assert queries.show(m, "new/elev.tif") is None, "extracted before it settled"
        assert not item_file(tmp_path, "new/elev.tif").exists()

    write_slowly(testdata / "elev.tif", tree / "new" / "elev.tif", 4, 0.2, not_yet)
    written = time.monotonic()
    wait_for(item_file(tmp_path, "new/elev.tif").is_file, what="item of the new file")
    latency = time.monotonic() - written
    assert latency < 5, f"{latency:.1f} s from the last write to the item"
    with Manifest.open_reader(db) as m:
        assert queries.show(m, "new/elev.tif")["status"] == "ok"

    # Modified in place: new bytes, new footprint.
    rgb = item_file(tmp_path, "rasters/RGB.byte.tif")
    old_box = bbox(rgb)
    shutil.copyfile(testdata / "dataset_cog.tif", tree / "rasters" / "RGB.byte.tif")
    wait_for(lambda: bbox(rgb) != old_box, what="the modified item")

    # A file renamed, then a whole folder moved.
    (tree / "new" / "elev.tif").rename(tree / "new" / "elev2.tif")
    wait_for(item_file(tmp_path, "new/elev2.tif").is_file, what="renamed item")
    wait_for(lambda: not item_file(tmp_path, "new/elev.tif").exists(), what="old name gone")
    (tree / "rasters").rename(tree / "moved")
    wait_for(item_file(tmp_path, "moved/RGB.byte.tif").is_file, what="moved folder's item")
    wait_for(lambda: not rgb.exists(), what="the folder's old item gone")

    # A folder moved in from outside the tree, and a delete.
    outside = tmp_path / "outside" / "batch"
    outside.mkdir(parents=True)
    shutil.copyfile(testdata / "2d_test.tif", outside / "2d_test.tif")
    outside.rename(tree / "batch")
    wait_for(item_file(tmp_path, "batch/2d_test.tif").is_file, what="item of a moved-in folder")
    (tree / "clouds" / "autzen_trim.laz").unlink()
    wait_for(lambda: not item_file(tmp_path, "clouds/autzen_trim.laz").exists(), what="delete")

    # Writers' temporary files are never looked at.
    (tree / "batch" / "upload.tif.part").write_bytes(b"partial")
    code, took = daemon.stop()
    assert code == 0, daemon.log()
    assert took < 5
    assert "Traceback" not in daemon.log()
    assert_rescan_changes_nothing(tmp_path, config)


def test_second_run_refused_while_reads_still_work(tree, tmp_path, daemons):
    config = write_config(tmp_path)
    daemon = daemons(config, "--settle-seconds", "1")
    daemon.wait_log("startup pass (full)")
    second = cli("run", "--config", str(config))
    assert second.returncode == 3, second.stderr
    assert f"pid {daemon.proc.pid}" in second.stderr and "stacsync run" in second.stderr
    rescan = cli("rescan", "--config", str(config))
    assert rescan.returncode == 3
    assert f"kill -USR1 {daemon.proc.pid}" in rescan.stderr  # how to get a pass from the daemon
    summary = cli("manifest", "summary", "--config", str(config), "--json")
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["files"] == 2

    daemon.signal(signal.SIGUSR1)
    daemon.wait_log("requested pass (full)")
    assert daemon.stop()[0] == 0


def test_bad_config_exits_2_naming_the_key(tmp_path):
    config = write_config(tmp_path, extra='[daemon]\nwatch = "sometimes"\nsettle = 3\n')
    done = cli("run", "--config", str(config))
    assert done.returncode == 2
    assert "daemon.watch" in done.stderr and "daemon.settle:" in done.stderr


# -- polling ---------------------------------------------------------------------------------


def test_polling_gives_the_same_result(tree, tmp_path, daemons, testdata):
    config = write_config(tmp_path, extra='[daemon]\nwatch = "poll"\npoll_seconds = 0.3\n')
    # [daemon] is read by `run` only (TODO config.py): `rescan` gets the same config without it.
    plain = write_config(tmp_path, name="plain.toml")
    daemon = daemons(config, "--settle-seconds", "0.5")
    daemon.wait_log("startup pass (full)")
    assert "polling" in daemon.log() and "watching" not in daemon.log()

    shutil.copyfile(testdata / "elev.tif", tree / "rasters" / "elev.tif")
    wait_for(item_file(tmp_path, "rasters/elev.tif").is_file, what="added item")
    (tree / "rasters").rename(tree / "moved")
    wait_for(item_file(tmp_path, "moved/elev.tif").is_file, what="moved item")
    wait_for(lambda: not item_file(tmp_path, "rasters/elev.tif").exists(), what="old item gone")
    (tree / "clouds" / "autzen_trim.laz").unlink()
    wait_for(lambda: not item_file(tmp_path, "clouds/autzen_trim.laz").exists(), what="delete")
    assert daemon.stop()[0] == 0
    assert_rescan_changes_nothing(tmp_path, plain)


# -- signals ---------------------------------------------------------------------------------


def test_sighup_reload_keeps_old_config_when_new_one_is_bad(tree, tmp_path, daemons, testdata):
    config = write_config(tmp_path)
    daemon = daemons(config, "--settle-seconds", "1")
    daemon.wait_log("startup pass (full)")
    good = config.read_text()

    config.write_text(good.replace("[catalog]", "[catalog]\ntitel = 'typo'"))
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("keeping the running config")
    assert "catalog.titel: unknown key" in daemon.log()
    shutil.copyfile(testdata / "elev.tif", tree / "elev.tif")  # still syncing, old config
    wait_for(item_file(tmp_path, "elev.tif").is_file, what="item after a failed reload")

    config.write_text(good.replace("Daemon test", "Reloaded title"))
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("config reloaded")
    catalog = tmp_path / "catalog" / "catalog.json"
    wait_for(lambda: json.loads(catalog.read_text())["title"] == "Reloaded title", what="title")
    assert daemon.stop()[0] == 0


def _pass_state(db: Path) -> str:
    """ "none", "running" (the last pass began and has not finished) or "finished"."""
    if not db.exists():
        return "none"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute("SELECT finished FROM pass ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # the schema is being created
            return "none"
    return "none" if row is None else "finished" if row[0] else "running"


def test_sigterm_during_a_large_pass_exits_promptly_and_restart_converges(
    tmp_path, daemons, testdata
):
    src = tmp_path / "src"
    # run_until lands the SIGTERM inside the pass whatever its size: 40 files keep it long
    # (one batch of extractions) without paying for 120 twice, plus a clean rescan.
    for i in range(40):
        folder = src / f"f{i:03d}"
        folder.mkdir(parents=True)
        shutil.copyfile(testdata / ("elev.tif" if i % 2 else "autzen_trim.laz"), folder / "x")
        (folder / "x").rename(folder / ("elev.tif" if i % 2 else "autzen_trim.laz"))
    age(src)
    config = write_config(tmp_path)
    daemon = daemons(config, "--settle-seconds", "1")
    daemon.wait_log("watching")
    assert daemon.run_until(lambda: _pass_state(tmp_path / "stacsync.db") == "running")
    daemon.signal(signal.SIGTERM)
    daemon.signal(signal.SIGCONT)
    code, _ = daemon.stop(timeout=60)
    assert code == 0, daemon.log()
    # It stopped between two files of the pass, not after the pass: nothing half-done is kept.
    assert "pass stopped between commits" in daemon.log()
    assert _pass_state(tmp_path / "stacsync.db") == "running"

    daemon = daemons(config, "--settle-seconds", "1")
    daemon.wait_log("startup pass (full)", timeout=60)
    assert daemon.stop()[0] == 0
    clean = tmp_path / "clean"
    clean_config = write_config(clean, source=str(src))
    rescan_json(clean_config)
    assert catalog_bytes(tmp_path / "catalog") == catalog_bytes(clean / "catalog")


# -- sd_notify -------------------------------------------------------------------------------


@pytest.fixture
def notify_socket():
    with tempfile.TemporaryDirectory(prefix="sdn") as folder:  # short: sun_path is 108 bytes
        path = os.path.join(folder, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        yield sock, path
        sock.close()


def _messages(sock: socket.socket, until: Callable[[list[str]], bool], timeout: float = 15.0):
    received: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(received):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {received}"
        sock.settimeout(remaining)
        received.extend(sock.recv(4096).decode().splitlines())
    return received


def test_sd_notify_ready_status_watchdog_stopping(tree, tmp_path, daemons, notify_socket):
    sock, path = notify_socket
    config = write_config(tmp_path)
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"}
    daemon = daemons(config, "--settle-seconds", "1", env=env)
    seen = _messages(
        sock,
        lambda got: (
            "READY=1" in got
            and got.count("WATCHDOG=1") >= 2
            and any(m.startswith("STATUS=") and "last pass" in m for m in got)
        ),
    )
    assert seen.index("READY=1") < len(seen)
    status = next(m for m in seen if m.startswith("STATUS=") and "last pass" in m)
    assert "watching events" in status and "2 added" in status
    daemon.signal(signal.SIGTERM)
    _messages(sock, lambda got: "STOPPING=1" in got)
    assert daemon.stop()[0] == 0


def test_unread_notify_socket_never_stalls_the_loop(
    tree, tmp_path, daemons, notify_socket, testdata
):
    _sock, path = notify_socket  # bound, never read: its queue fills after a few messages
    config = write_config(tmp_path)
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000"}
    daemon = daemons(config, "--settle-seconds", "1", env=env)
    daemon.wait_log("startup pass (full)")
    time.sleep(0.5)  # dozens of WATCHDOG=1 sent into a full queue
    shutil.copyfile(testdata / "elev.tif", tree / "elev.tif")
    wait_for(item_file(tmp_path, "elev.tif").is_file, timeout=10, what="item with a full socket")
    code, took = daemon.stop()
    assert code == 0 and took < 5


def test_metadata_table_change_re_places_items(tmp_path, daemons, copy_testdata):
    src = copy_testdata("RGB.byte.tif", "elev.tif", dest=tmp_path / "src")
    table = src / "plots.csv"
    table.write_text("Id,plot,collection_date\nRGB.byte,p1,2019-05-01\nelev,p2,2019-05-02\n")
    age(src)
    config = tmp_path / "stacsync.toml"
    config.write_text(
        """
[source]
path = "src"
[output]
path = "catalog"
[[collection]]
id = "files"
match = '^(?P<asset>[^/]+)\\.tif$'
[collection.table]
path = "plots.csv"
key = "Id"
item_column = "plot"
datetime = "collection_date"
"""
    )
    daemon = daemons(config, "--settle-seconds", "1")
    daemon.wait_log("startup pass (full)")
    p1 = tmp_path / "catalog" / "files" / "p1" / "p1.json"
    assert json.loads(p1.read_text())["properties"]["datetime"] == "2019-05-01T00:00:00Z"

    table.write_text("Id,plot,collection_date\nRGB.byte,p1,2020-06-01\nelev,p1,2020-06-01\n")
    daemon.wait_log("metadata table changed pass (full)")
    assets = json.loads(p1.read_text())["assets"]
    assert len(assets) == 3 and "thumbnail" in assets  # both files now in plot p1
    assert json.loads(p1.read_text())["properties"]["datetime"] == "2020-06-01T00:00:00Z"
    assert not (tmp_path / "catalog" / "files" / "p2").exists()
    assert daemon.stop()[0] == 0


def test_the_daemon_waits_for_a_missing_source_and_then_builds(testdata, tmp_path, daemons):
    config = write_config(tmp_path)
    daemon = daemons(config, "--watch", "poll", "--settle-seconds", "0")
    daemon.wait_log("trying again", timeout=60)
    assert "No such file or directory" in daemon.log()
    assert not (tmp_path / "catalog" / "catalog.json").exists()
    (tmp_path / "src").mkdir()
    shutil.copyfile(testdata / "byte.tif", tmp_path / "src" / "late.tif")
    wait_for(
        lambda: (tmp_path / "catalog" / COLLECTION / "late-tif" / "late-tif.json").exists(), 60
    )
    code, _ = daemon.stop()
    assert code == 0, daemon.log()
