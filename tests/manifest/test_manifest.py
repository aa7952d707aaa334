"""The manifest: schema version, readable views, the writer lock, read-only access, pass state,
the `stacsync manifest` queries and paths that are not UTF-8."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from stacsync.core.errors import ManifestLockedError, StacsyncError
from stacsync.manifest import queries
from stacsync.manifest.db import Manifest
from stacsync.manifest.schema import SCHEMA_VERSION


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
            "import sys, time; from stacsync.manifest.db import Manifest;"
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
            assert queries.summary(reader)["files"] == 0
    finally:
        holder.kill()
        holder.wait()
    with Manifest.open_writer(db_path):  # the kernel dropped the dead holder's lock
        pass


def test_the_holder_note_is_a_line_a_person_reads(tmp_path):
    """`cat <db>.lock` names the holder, as the refusal quotes it, whatever its config's name."""
    db_path = tmp_path / "m.db"
    purpose = "stacsync run --config /srv/\udcff\nx.toml"  # a byte no codec takes, a newline
    with Manifest.open_writer(db_path, purpose=purpose):
        note = (tmp_path / "m.db.lock").read_text()
        holder = f"pid {os.getpid()} on {os.uname().nodename}"
        assert note.startswith(f"{holder} (stacsync run --config /srv/\\udcff\nx.toml, since ")
        with pytest.raises(ManifestLockedError) as caught:
            Manifest.open_writer(db_path)
        assert f"is locked by {note};" in str(caught.value)
    assert (tmp_path / "m.db.lock").read_bytes() == b""  # emptied on release


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


# -- pass state ----------------------------------------------------------------------------


def _state_table(db_path) -> dict[str, str]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT key, value FROM state"))


def test_pass_state_is_stored_under_the_keys_existing_manifests_have(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path) as db, db.transaction():
        db.state.render_fingerprint = "r1"
        db.state.layout_fingerprint = "l1"
        db.state.unused_rows = {"b": ["k2"], "a": ["k1"]}
        db.state.linked_parent = "/keeper/catalog.json"
        db.state.announced_collections = '["a"]'
        db.state.set_collection_summaries("dem", '{"summaries": {}}')
    assert _state_table(db_path) == {
        "render_fingerprint": "r1",
        "layout_fingerprint": "l1",
        "unused_rows": '{"a": ["k1"], "b": ["k2"]}',
        "parent_catalog.linked": "/keeper/catalog.json",
        "mail.announced_collections": '["a"]',
        "summaries:dem": '{"summaries": {}}',
    }


def test_pass_state_reads_what_an_earlier_stacsync_wrote(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO state (key, value) VALUES (?, ?)",
            [
                ("render_fingerprint", "r0"),
                ("unused_rows", '{"dem": ["x"]}'),
                ("parent_catalog.linked", "p"),
                ("summaries:dem", "cached"),
                ("summaries:dem:stale", "1"),
            ],
        )
    with Manifest.open_reader(db_path) as db:
        assert db.state.render_fingerprint == "r0"
        assert db.state.layout_fingerprint is None
        assert db.state.unused_rows == {"dem": ["x"]}
        assert db.state.linked_parent == "p"
        assert db.state.announced_collections is None
        assert db.state.collection_summaries("dem") is None  # marked stale
        assert db.state.collection_summaries("other") is None


def test_summaries_cache_is_hidden_while_stale_and_none_forgets(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path) as db:
        with db.transaction():
            db.state.set_collection_summaries("dem", "v1")
            db.state.set_collection_summaries("las", "w1")
        assert db.state.collection_summaries("dem") == "v1"
        with db.transaction():
            db.state.mark_summaries_stale("dem")
        assert db.state.collection_summaries("dem") is None
        assert db.state.collection_summaries("las") == "w1"  # one collection's flag only
        assert _state_table(db_path)["summaries:dem:stale"] == "1"
        with db.transaction():
            db.state.set_collection_summaries("dem", "v2")  # clears the flag
            db.state.render_fingerprint = "r"
        assert db.state.collection_summaries("dem") == "v2"
        with db.transaction():
            db.state.render_fingerprint = None
            db.state.unused_rows = None
        assert db.state.render_fingerprint is None and db.state.unused_rows is None
    assert set(_state_table(db_path)) == {"summaries:dem", "summaries:las"}


# -- queries and paths that are not UTF-8 -----------------------------------------------------

ODD = os.fsdecode(b"raw/\xff\xfename.tif")  # not UTF-8: stored as a BLOB of its bytes


def _add(db: Manifest, path: str, status: str, **values) -> None:
    db.upsert_file(
        {"path": path, "size": 10, "mtime_ns": 1, "scanned_ns": 1, "status": status, **values}
    )


def test_paths_that_are_not_utf8_are_kept_byte_for_byte(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path) as db:
        with db.transaction():
            _add(db, ODD, "ok", collection_id="c", item_id="i", asset_key="data")
            _add(db, "plain.tif", "error", error=f"cannot read {ODD}")
            db.set_thumbnail(ODD, b"png")
            db.set_skipped({ODD + ".fifo": "not a regular file"})
        assert db.paths() == ["plain.tif", ODD]
        assert set(db.file_rows()) == {ODD, "plain.tif"}
        assert [row["path"] for row in db.item_files("c", "i")] == [ODD]
        assert db.asset_slot_owner("c", "i", "data") == ODD
        assert db.thumbnail(ODD) == b"png" and set(db.thumbnail_hashes([ODD])) == {ODD}
        errors = {row["path"]: row["error"] for row in db.errors()}
        assert set(errors) == {"plain.tif", ODD + ".fifo"}
        assert errors["plain.tif"] == "cannot read raw/\\xff\\xfename.tif"  # display form
    with sqlite3.connect(db_path) as conn:
        stored = {r[0] for r in conn.execute("SELECT path FROM asset_file")}
    assert stored == {"plain.tif", b"raw/\xff\xfename.tif"}


def test_cli_queries(tmp_path):
    db_path = tmp_path / "m.db"
    with Manifest.open_writer(db_path) as db, db.transaction():
        _add(db, ODD, "ok", collection_id="c", item_id="i", meta_json='{"crs": 4326}')
        _add(db, "b.tif", "ok", collection_id="c", item_id="j", problem="no table row")
        _add(db, "c.tif", "unmatched")
    with Manifest.open_reader(db_path) as db:
        summary = queries.summary(db)
        assert summary["files"] == 3 and summary["schema_version"] == SCHEMA_VERSION
        assert summary["by_status"] == {"ok": 2, "unmatched": 1}
        assert summary["by_collection"] == {"c": {"files": 2, "items": 2}}
        assert summary["last_pass"] is None
        assert [r["path"] for r in queries.files(db)] == ["b.tif", "c.tif", ODD]
        assert [r["path"] for r in queries.files(db, status="unmatched")] == ["c.tif"]
        assert [r["path"] for r in queries.files(db, collection="c", glob="raw/*")] == [ODD]
        assert queries.problems(db) == [
            {"path": "b.tif", "problem": "no table row"},
            {"path": "c.tif", "problem": queries.UNMATCHED_NOTE},
        ]
        row = queries.show(db, ODD)
        assert row["path"] == ODD and row["meta"] == {"crs": 4326} and "meta_json" not in row
        assert queries.show(db, "nope.tif") is None


def _query_plans(db: Manifest, table: str, *calls) -> list[tuple[str, str]]:
    """(sql, EXPLAIN QUERY PLAN) of each statement reading `table` that `calls` ran."""
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    for call in calls:
        call()
    db.conn.set_trace_callback(None)
    return [
        (sql, " ".join(row[-1] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {sql}")))
        for sql in statements
        if f"FROM {table}" in sql
    ]


def test_the_per_file_scans_of_every_pass_never_read_the_metadata(tmp_path):
    """The diff and the no-change witness read every file's row on every pass: from a covering
    index, never from the table, whose rows carry ~10 KB of extracted metadata each."""
    from stacsync.manifest.witness import facts_of

    with Manifest.open_writer(tmp_path / "m.db", purpose="test") as db:
        scans = _query_plans(
            db, "asset_file", db.file_rows, lambda: facts_of(db.conn, 2_000_000_000)
        )
        assert len(scans) == 2
        for sql, plan in scans:
            assert "COVERING INDEX asset_file_scan" in plan, (sql, plan)


def test_the_item_scan_of_a_rendering_pass_never_reads_the_item_json(tmp_path):
    with Manifest.open_writer(tmp_path / "m.db", purpose="test") as db:
        [(_sql, plan)] = _query_plans(db, "item", lambda: list(db.item_hashes()))
        assert "COVERING INDEX item_hash_scan" in plan, plan


def test_a_collections_extent_and_item_ids_are_read_from_an_index_not_the_item_rows(tmp_path):
    # The rows hold each item's JSON before these columns: reading them from the table walks
    # every item's overflow pages (~40 ms a pass at 1,429 items).
    with Manifest.open_writer(tmp_path / "m.db", purpose="test") as db:
        scans = _query_plans(
            db,
            "item",
            lambda: db.collection_extent("c"),
            lambda: db.collection_item_ids("c"),
            db.published_collections,
        )
        assert len(scans) == 3
        for sql, plan in scans:
            assert "USING INDEX item_extent" in plan, (sql, plan)
