"""The witness in the manifest: stored and read back, voided by any other pass or change."""

from __future__ import annotations

import json
import marshal
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stacsync.manifest import witness
from stacsync.manifest.db import Manifest
from stacsync.manifest.lock import ManifestLock
from stacsync.manifest.schema import SCHEMA_VERSION

CONFIG = Path("/data/conf/stacsync.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[source]\npath = 'src'\n", "/data/conf/stacsync.db"),
        ('[manifest]\npath = "m/x.db"\n', "/data/conf/m/x.db"),
        ("[manifest] # the database\npath = '/var/lib/s.db'  # absolute\n", "/var/lib/s.db"),
        (
            '[source]\npath = "a"\n[manifest]\npath = "../up.db"\n[catalog]\npath = "no"\n',
            "/data/up.db",
        ),
        ('[ manifest ]\n  path = "x.db"\n', "/data/conf/x.db"),
    ],
)
def test_the_manifest_path_is_read_as_the_loader_resolves_it(text: str, expected: str):
    assert witness.manifest_path_in(CONFIG, text) == Path(expected)


def test_home_is_expanded(monkeypatch):
    monkeypatch.setenv("HOME", "/home/keeper")
    assert witness.manifest_path_in(CONFIG, '[manifest]\npath = "~/s.db"\n') == Path(
        "/home/keeper/s.db"
    )


@pytest.mark.parametrize(
    "text",
    [
        'manifest.path = "x.db"\n',
        'manifest = { path = "x.db" }\n',
        '[manifest]\npath = "a\\\\b.db"\n',  # an escape
        '[manifest]\npath = """x.db"""\n',
        "[manifest]\npath = x.db\n",
        '[manifest]\npath = "a.db"\npath = "b.db"\n',
        '[manifest]\npath = "a.db" trailing\n',
        '[manifest]\npath = ""\n',
    ],
)
def test_anything_but_a_plain_form_is_not_guessed(text: str):
    assert witness.manifest_path_in(CONFIG, text) is None


def _facts(**kw) -> witness.ManifestFacts:
    values = dict(
        files=3,
        needing_look=0,
        errors=1,
        with_problems=0,
        dirty_items=0,
        skipped=0,
        state_sha256="s",
        written_sha256="w",
    )
    return witness.ManifestFacts(**{**values, **kw})


def _witness(**kw) -> witness.Witness:
    values = dict(
        config_path="/c/stacsync.toml",
        config_sha256="c",
        home="/root",
        code="code",
        manifest_path="/c/stacsync.db",
        source_root="/c/src",
        tree_entries=4,
        tree_sha256="t",
        unwalked=("catalog",),
        newest_mtime_ns=1,
        settle_ns=0,
        side_files={"/c/plots.csv": [10, 20], "/c/gone.csv": None},
        output_root="/c/catalog",
        output_files=("catalog.json", "index.geojson"),
        summary=SUMMARY,
        summary_json=witness.summary_json_parts(SUMMARY),
        manifest=_facts(),
        racy_window_ns=2_000_000_000,
    )
    return witness.Witness(**{**values, **kw})


SUMMARY = {"unchanged": 3, "table_rows_without_files": {"b": ["2"], "a": ["1"]}}


def test_a_witness_reads_back_as_it_was_stored():
    stored = _witness()
    back = witness.Witness.from_bytes(stored.to_bytes())
    assert back == stored
    # The summary's mappings keep their order: the human summary prints them in it.
    assert list(back.summary["table_rows_without_files"]) == ["b", "a"]


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"not marshal",
        marshal.dumps([]),
        marshal.dumps({"format": 2}),
        marshal.dumps({"format": witness.WITNESS_FORMAT}),  # no fields
        _witness().to_bytes()[:-3],  # cut short
        # What stacsync stored before witnesses were marshalled: JSON text.
        json.dumps({**_witness()._asdict(), "format": 2}),
    ],
)
def test_an_unreadable_or_older_witness_is_none(data):
    assert witness.Witness.from_bytes(data) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(deadline=None, derandomize=True)  # as the suite's other property tests: no timer
@given(
    summary=st.dictionaries(
        st.text().filter(lambda k: k != "seconds") | st.sampled_from(["s", "secondz", "sec"]),
        JSON_VALUES,
        max_size=6,
    ),
    seconds=st.floats(min_value=0, max_value=1e6),
)
def test_the_no_change_pass_writes_its_summary_as_json_dumps_does(summary, seconds):
    """Byte for byte the full pass's `json.dumps(summary, sort_keys=True)`, without json."""
    parts = witness.summary_json_parts(summary)
    expected = json.dumps({**summary, "seconds": seconds}, sort_keys=True)
    assert witness.summary_json(parts, seconds) == expected


@pytest.fixture
def db(tmp_path: Path):
    with Manifest.open_writer(tmp_path / "stacsync.db") as manifest:
        yield manifest


def _finish_a_pass(db: Manifest) -> int:
    pass_id = db.begin_pass()
    db.finish_pass(pass_id, {"unchanged": 0})
    return pass_id


def test_a_witness_vouches_only_for_the_last_finished_pass(db: Manifest):
    assert witness.vouched(db.conn) is None
    pass_id = _finish_a_pass(db)
    stored = _witness(manifest=witness.facts_of(db.conn, 2_000_000_000))
    witness.store(db, stored, pass_id)
    assert witness.vouched(db.conn) == stored
    later = db.begin_pass()  # a pass that has not finished (a crash, or still running)
    assert witness.vouched(db.conn) is None
    db.finish_pass(later, {})
    assert witness.vouched(db.conn) is None  # another pass, that left no witness
    witness.store(db, None, None)
    assert db.state.rescan_witness is None and db.state.rescan_witness_pass is None


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO state (key, value) VALUES ('render_fingerprint', 'other')",
        "INSERT INTO written (path, hash) VALUES ('index.geojson', 'h')",
        "INSERT INTO item (collection_id, item_id, dirty) VALUES ('c', 'i', 1)",
        "INSERT INTO skipped (path, reason, since) VALUES ('p', 'r', 's')",
        "INSERT INTO asset_file (path, size, mtime_ns, status, scanned_ns, first_seen, changed_at)"
        " VALUES ('f', 1, 1, 'ok', 9000000000, 'x', 'x')",
    ],
)
def test_any_change_to_what_a_pass_reads_voids_the_witness(db: Manifest, sql: str):
    pass_id = _finish_a_pass(db)
    witness.store(db, _witness(manifest=witness.facts_of(db.conn, 2_000_000_000)), pass_id)
    assert witness.unchanged(db.conn, witness.vouched(db.conn))
    with db.transaction():
        db.conn.execute(sql)
    assert not witness.unchanged(db.conn, witness.vouched(db.conn))


def test_files_the_next_pass_would_look_at_are_counted(db: Manifest):
    rows = [
        ("ok", "ok", 0, 10_000_000_000),
        ("racy", "ok", 0, 2_000_000_000),  # scanned within 2 s of its mtime
        ("unmatched racy", "unmatched", 0, 1),
        ("pending", "pending", 0, 10_000_000_000),
        ("transient", "error", 1, 10_000_000_000),
        ("error", "error", 0, 1),
    ]
    with db.transaction():
        for path, status, transient, scanned in rows:
            db.upsert_file(
                {
                    "path": path,
                    "size": 1,
                    "mtime_ns": 1_000_000_000,
                    "status": status,
                    "error_transient": transient,
                    "scanned_ns": scanned,
                }
            )
    facts = witness.facts_of(db.conn, 2_000_000_000)
    assert (facts.files, facts.needing_look, facts.errors) == (6, 4, 2)


def test_the_fast_writer_records_a_pass_as_the_full_pass_does(db: Manifest, tmp_path: Path):
    full_id = db.begin_pass()
    db.finish_pass(full_id, {"b": 1, "a": 2})
    witness.store(db, _witness(), full_id)
    db.close()
    with witness.FastWriter.open(tmp_path / "stacsync.db") as fast:
        fast.record_no_change_pass(witness.now_iso(), json.dumps({"b": 1, "a": 2}, sort_keys=True))
    conn = sqlite3.connect(tmp_path / "stacsync.db")
    (full, fast_row) = conn.execute("SELECT * FROM pass ORDER BY id").fetchall()
    assert fast_row[0] == full_id + 1
    assert [len(v) for v in fast_row[1:3]] == [len(v) for v in full[1:3]]  # 2026-…T…Z
    assert fast_row[3] == full[3]
    # Still witnessed: the next no-change rescan may be answered from the same witness.
    assert conn.execute("SELECT value FROM state WHERE key = 'rescan_witness.pass'").fetchone() == (
        str(full_id + 1),
    )


def test_the_fast_writer_never_creates_migrates_or_waits(tmp_path: Path):
    path = tmp_path / "stacsync.db"
    assert witness.FastWriter.open(path) is None
    assert not path.exists()
    Manifest.open_writer(path).close()
    lock = ManifestLock(path)
    lock.acquire("another pass")
    try:
        assert witness.FastWriter.open(path) is None
    finally:
        lock.release()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.close()
    assert witness.FastWriter.open(path) is None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION - 1
    conn.close()
    # The lock was given back each time.
    again = ManifestLock(path)
    again.acquire("next")
    again.release()


def test_the_code_stamp_is_stable():
    assert witness.code_stamp() == witness.code_stamp()
