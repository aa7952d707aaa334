"""The manifest database: schema version, readable views, the writer lock, read-only access."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from stacsync.core.errors import ManifestLockedError, StacsyncError
from stacsync.manifest import SCHEMA_VERSION, Manifest


def test_new_manifest_is_migrated_wal_and_has_views(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path, purpose="test"):
        pass
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    views = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert views == {"files", "errors", "items"}
    for view in views:
        conn.execute(f"SELECT * FROM {view}").fetchall()


def test_a_newer_schema_is_refused(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StacsyncError, match="newer than this stacsync"):
        Manifest.open_writer(db_path)
    with pytest.raises(StacsyncError, match="newer than this stacsync"):
        Manifest.open_reader(db_path)


def test_lock_is_held_across_processes_and_released_when_the_holder_dies(tmp_path):
    db_path = tmp_path / "m.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from stacsync.manifest import Manifest;"
            f"m = Manifest.open_writer({str(db_path)!r}, purpose='stacsync run -c x.toml');"
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ManifestLockedError) as caught:
            Manifest.open_writer(db_path)
        assert f"pid {holder.pid}" in str(caught.value)
        assert "stacsync run -c x.toml" in str(caught.value)
        with Manifest.open_reader(db_path) as reader:  # readers are never locked out
            assert reader.summary()["files"] == 0
    finally:
        holder.kill()
        holder.wait()
    with Manifest.open_writer(db_path):  # the kernel dropped the dead holder's lock
        pass


def test_reader_cannot_write_and_close_is_idempotent(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path):
        pass
    reader = Manifest.open_reader(db_path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.conn.execute("DELETE FROM asset_file")
    reader.close()
    reader.close()


def test_missing_manifest_says_what_to_do(tmp_path):
    with pytest.raises(StacsyncError, match="run `stacsync rescan` first"):
        Manifest.open_reader(tmp_path / "nope.db")
