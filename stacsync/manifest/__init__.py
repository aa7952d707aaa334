"""The SQLite manifest: every asset file, every rendered item, and the writer lock.

It is the single source of truth; catalog files are derived from it, so a crash is repaired by
re-deriving whatever it marks dirty.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stacsync.core.errors import ManifestLockedError, StacsyncError
from stacsync.core.names import display, from_db, is_utf8, to_db
from stacsync.core.records import FileState

# Each migration runs in one transaction that bumps PRAGMA user_version: a failed one stays pending.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "create tables",
        """
        CREATE TABLE asset_file (
            path          TEXT PRIMARY KEY,      -- POSIX, relative to the source root
            size          INTEGER NOT NULL,
            mtime_ns      INTEGER NOT NULL,
            content_mtime_ns INTEGER,            -- mtime at the last content change
            checksum      TEXT,                  -- multihash hex (1220… = sha2-256)
            status        TEXT NOT NULL,         -- ok | error | pending | unmatched
            collection_id TEXT,
            item_id       TEXT,
            asset_key     TEXT,
            meta_json     TEXT,                  -- extracted header metadata (AssetMeta)
            error         TEXT,                  -- last error, for a person
            error_transient INTEGER NOT NULL DEFAULT 0,
            error_since   TEXT,
            problem       TEXT,                  -- layout remark, e.g. no metadata-table row
            table_key     TEXT,                  -- the metadata-table row this file joined
            scanned_ns    INTEGER NOT NULL,      -- wall clock of the stat that produced size/mtime
            first_seen    TEXT NOT NULL,
            changed_at    TEXT NOT NULL
        );
        CREATE INDEX asset_file_item ON asset_file (collection_id, item_id);
        CREATE TABLE item (
            collection_id TEXT NOT NULL,
            item_id       TEXT NOT NULL,
            json          TEXT,                  -- the rendered item, exactly as written
            json_hash     TEXT,                  -- sha256 of the bytes on disk
            west REAL, south REAL, east REAL, north REAL,
            start_datetime TEXT, end_datetime TEXT,
            dirty         INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (collection_id, item_id)
        );
        CREATE INDEX item_dirty ON item (dirty) WHERE dirty = 1;
        CREATE TABLE written (                 -- hash of every other catalog file on disk
            path TEXT PRIMARY KEY,             -- relative to the output root
            hash TEXT NOT NULL
        );
        CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE pass (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            summary_json TEXT
        );
        CREATE VIEW files AS
            SELECT path, status, size, mtime_ns, checksum, collection_id, item_id, asset_key,
                   error, problem, first_seen, changed_at
            FROM asset_file;
        CREATE VIEW errors AS
            SELECT path, error, error_since, error_transient FROM asset_file WHERE status = 'error';
        CREATE VIEW items AS
            SELECT i.collection_id, i.item_id, i.west, i.south, i.east, i.north,
                   i.start_datetime, i.end_datetime,
                   (SELECT count(*) FROM asset_file f
                     WHERE f.collection_id = i.collection_id AND f.item_id = i.item_id
                       AND f.status = 'ok') AS assets
            FROM item i;
        """,
    ),
    (
        "index feature per item",
        # The item's line of index.geojson, kept so that writing the index streams stored
        # text instead of parsing and re-serialising every item on each change.
        "ALTER TABLE item ADD COLUMN feature TEXT;",
    ),
    (
        "thumbnails",
        # A raster's thumbnail PNG, made when it was extracted (so only when it changed); the
        # foreign key drops it with its file's row.
        """
        CREATE TABLE thumbnail (
            path TEXT PRIMARY KEY REFERENCES asset_file (path) ON DELETE CASCADE,
            png  BLOB NOT NULL,
            hash TEXT NOT NULL                 -- sha256 hex of png
        );
        """,
    ),
    (
        "summary digest per item",
        # The few fields of an item its collection's summaries read, kept so that a change to
        # one item does not parse every item of the collection again.
        "ALTER TABLE item ADD COLUMN digest TEXT;",
    ),
    (
        "skipped paths",
        # What a listing saw and left out (a FIFO named *.tif, a link out of the source, a
        # loop), with the reason; `errors` shows them beside the files in error. A path that
        # is not UTF-8 is stored as a BLOB of its bytes, here and in asset_file.
        """
        CREATE TABLE skipped (
            path   TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            since  TEXT NOT NULL
        );
        DROP VIEW errors;
        CREATE VIEW errors AS
            SELECT path, error, error_since, error_transient FROM asset_file
             WHERE status = 'error'
            UNION ALL
            SELECT path, reason, since, 0 FROM skipped;
        """,
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class FileRow:
    """What the manifest remembers about one asset file (the columns a pass needs)."""

    path: str
    size: int
    mtime_ns: int
    checksum: str | None
    status: str
    collection_id: str | None
    item_id: str | None
    asset_key: str | None
    error_transient: bool
    scanned_ns: int


def now_iso() -> str:
    """Current UTC time, second precision, for human-facing columns."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class ManifestLock:
    """An advisory lock beside the database; the kernel drops it if the holder dies."""

    def __init__(self, db_path: Path):
        self.path = Path(f"{db_path}.lock")
        self._fd: int | None = None

    def acquire(self, purpose: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ManifestLockedError(
                f"manifest {self.path.with_suffix('')} is locked by {holder}; "
                "wait for it to finish, or stop it (a running `stacsync run` keeps the lock)"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": purpose,
            "since": now_iso(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"


class Manifest:
    """The manifest database; open with `Manifest.open_writer` or `Manifest.open_reader`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock: ManifestLock | None):
        self.conn = conn
        self.path = path
        self._lock = lock

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open_writer(cls, path: Path, purpose: str = "stacsync") -> Manifest:
        """Take the writer lock, open (creating if needed) and migrate the database."""
        path = Path(path)
        lock = ManifestLock(path)
        lock.acquire(purpose)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            manifest = cls(conn, path, lock)
            manifest._migrate()
        except sqlite3.DatabaseError as exc:
            lock.release()
            raise StacsyncError(f"manifest {path}: cannot open database: {exc}") from exc
        except BaseException:
            lock.release()
            raise
        return manifest

    @classmethod
    def open_reader(cls, path: Path) -> Manifest:
        """Open read-only; works while a daemon holds the writer lock."""
        path = Path(path)
        if not path.is_file():
            raise StacsyncError(f"manifest {path} does not exist (run `stacsync rescan` first)")
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StacsyncError(
                f"manifest {path} has schema version {version}, newer than this stacsync "
                f"({SCHEMA_VERSION}); upgrade stacsync"
            )
        return cls(conn, path, None)

    def close(self) -> None:
        """Close the connection and release the lock; safe to call twice."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None  # type: ignore[assignment]
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StacsyncError(
                f"manifest {self.path} has schema version {version}, newer than this "
                f"stacsync ({SCHEMA_VERSION}); upgrade stacsync"
            )
        for number, (_name, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in _statements(sql):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: fail fast rather than deadlock)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- files ---------------------------------------------------------------------------

    def file_rows(self) -> dict[str, FileRow]:
        """Every known file, keyed by path: the diff's view of the manifest."""
        cur = self.conn.execute(
            "SELECT path, size, mtime_ns, checksum, status, collection_id, item_id, asset_key,"
            " error_transient, scanned_ns FROM asset_file"
        )
        return {from_db(row[0]): FileRow(from_db(row[0]), *row[1:]) for row in cur}

    def paths(self) -> list[str]:
        """Every known file's path, sorted (without building a FileRow for each)."""
        cur = self.conn.execute("SELECT path FROM asset_file ORDER BY path")
        return [from_db(r[0]) for r in cur]

    def upsert_file(self, values: dict[str, Any]) -> None:
        """Insert or replace the columns given for one file (inside a transaction)."""
        values = _bindable(values)
        stamp = now_iso()
        values.setdefault("changed_at", stamp)
        cols = list(values)
        update = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "path")
        self.conn.execute(
            f"INSERT INTO asset_file ({', '.join([*cols, 'first_seen'])})"
            f" VALUES ({', '.join('?' * (len(cols) + 1))})"
            f" ON CONFLICT(path) DO UPDATE SET {update}",
            [*values.values(), stamp],
        )

    def update_file(self, path: str, **values: Any) -> None:
        """Change some columns of a known file."""
        values = _bindable(values)
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE asset_file SET {sets} WHERE path = ?", [*values.values(), to_db(path)]
        )

    def update_stat(self, path: str, mtime_ns: int, scanned_ns: int) -> None:
        """A touched file: same bytes, new mtime."""
        self.conn.execute(
            "UPDATE asset_file SET mtime_ns = ?, scanned_ns = ? WHERE path = ?",
            (mtime_ns, scanned_ns, to_db(path)),
        )

    def delete_file(self, path: str) -> None:
        self.conn.execute("DELETE FROM asset_file WHERE path = ?", (to_db(path),))

    def item_files(self, collection_id: str, item_id: str) -> list[dict[str, Any]]:
        """The good files of one item, in a stable order."""
        cur = self.conn.cursor()
        cur.row_factory = _row_with_path  # on this cursor only, not the shared connection
        return cur.execute(
            "SELECT path, size, content_mtime_ns, checksum, asset_key, meta_json"
            " FROM asset_file"
            " WHERE collection_id = ? AND item_id = ? AND status = ? ORDER BY asset_key, path",
            (collection_id, item_id, FileState.OK.value),
        ).fetchall()

    def asset_slot_owner(self, collection_id: str, item_id: str, asset_key: str) -> str | None:
        """The path already holding (collection, item, asset key), if any."""
        row = self.conn.execute(
            "SELECT path FROM asset_file WHERE collection_id = ? AND item_id = ? AND asset_key = ?"
            " AND status = ? ORDER BY path LIMIT 1",
            (collection_id, item_id, asset_key, FileState.OK.value),
        ).fetchone()
        return from_db(row[0]) if row else None

    # -- items ---------------------------------------------------------------------------

    def mark_item_dirty(self, collection_id: str, item_id: str) -> None:
        self.conn.execute(
            "INSERT INTO item (collection_id, item_id, dirty) VALUES (?, ?, 1)"
            " ON CONFLICT(collection_id, item_id) DO UPDATE SET dirty = 1",
            (collection_id, item_id),
        )

    def mark_all_items_dirty(self) -> None:
        self.conn.execute("UPDATE item SET dirty = 1")

    def dirty_items(self) -> list[tuple[str, str]]:
        return self.conn.execute(
            "SELECT collection_id, item_id FROM item WHERE dirty = 1 ORDER BY 1, 2"
        ).fetchall()

    def item_hashes(self) -> Iterator[tuple[str, str, str | None]]:
        yield from self.conn.execute("SELECT collection_id, item_id, json_hash FROM item")

    def item_hash(self, collection_id: str, item_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT json_hash FROM item WHERE collection_id = ? AND item_id = ?",
            (collection_id, item_id),
        ).fetchone()
        return row[0] if row else None

    def store_item(self, collection_id: str, item_id: str, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE item SET {sets}, dirty = 0 WHERE collection_id = ? AND item_id = ?",
            [*values.values(), collection_id, item_id],
        )

    def delete_item(self, collection_id: str, item_id: str) -> None:
        self.conn.execute(
            "DELETE FROM item WHERE collection_id = ? AND item_id = ?", (collection_id, item_id)
        )

    def used_table_keys(self, collection_id: str) -> set[str]:
        """Metadata-table keys that some file of the collection joined."""
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT table_key FROM asset_file"
                " WHERE collection_id = ? AND table_key IS NOT NULL",
                (collection_id,),
            )
        }

    def collection_extent(self, collection_id: str) -> dict[str, Any]:
        """Spatial and temporal extent of a collection, aggregated in SQL over its items."""
        row = self.conn.execute(
            "SELECT min(west), min(south), max(east), max(north),"
            " sum(west > east), min(start_datetime), max(end_datetime), count(*)"
            " FROM item WHERE collection_id = ? AND json IS NOT NULL",
            (collection_id,),
        ).fetchone()
        west, south, east, north, crossing, start, end, count = row
        if not count:
            return {"bbox": None, "start": None, "end": None}
        if crossing:
            # An item over the antimeridian makes min/max meaningless in longitude.
            west, east = -180.0, 180.0
        return {"bbox": (west, south, east, north), "start": start, "end": end}

    def published_collections(self) -> list[str]:
        """Ids of collections with at least one rendered item."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT collection_id FROM item WHERE json IS NOT NULL ORDER BY 1"
            )
        ]

    def collection_item_ids(self, collection_id: str) -> tuple[str, ...]:
        return tuple(
            r[0]
            for r in self.conn.execute(
                "SELECT item_id FROM item WHERE collection_id = ? AND json IS NOT NULL"
                " ORDER BY item_id",
                (collection_id,),
            )
        )

    def item_digest(self, collection_id: str, item_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT digest FROM item WHERE collection_id = ? AND item_id = ?",
            (collection_id, item_id),
        ).fetchone()
        return row[0] if row else None

    def collection_item_digests(self, collection_id: str) -> Iterator[tuple[str | None, str]]:
        """(summary digest or None, item json) of every rendered item of one collection.

        Streamed in id order; the digest is None for items rendered before it was stored.
        """
        yield from self.conn.execute(
            "SELECT digest, json FROM item WHERE collection_id = ? AND json IS NOT NULL"
            " ORDER BY item_id",
            (collection_id,),
        )

    def iter_index_features(self) -> Iterator[tuple[str, str, str | None, str]]:
        """(collection, item, index feature or None, item json) of every rendered item.

        Streamed in id order; the feature is None for items rendered before it was stored.
        """
        yield from self.conn.execute(
            "SELECT collection_id, item_id, feature, json FROM item"
            " WHERE json IS NOT NULL ORDER BY 1, 2"
        )

    # -- other catalog files, state and passes -------------------------------------------

    def written_hash(self, path: str) -> str | None:
        row = self.conn.execute("SELECT hash FROM written WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def set_written_hash(self, path: str, digest: str | None) -> None:
        if digest is None:
            self.conn.execute("DELETE FROM written WHERE path = ?", (path,))
        else:
            self.conn.execute(
                "INSERT INTO written (path, hash) VALUES (?, ?)"
                " ON CONFLICT(path) DO UPDATE SET hash = excluded.hash",
                (path, digest),
            )

    def written_paths(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT path FROM written ORDER BY 1")]

    def delete_state(self, key: str) -> None:
        self.conn.execute("DELETE FROM state WHERE key = ?", (key,))

    def get_state(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO state (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def last_pass_unfinished(self) -> bool:
        """True when the previous pass started but never finished (a crash or a kill)."""
        row = self.conn.execute("SELECT finished FROM pass ORDER BY id DESC LIMIT 1").fetchone()
        return row is not None and row[0] is None

    def begin_pass(self) -> int:
        with self.transaction():
            cur = self.conn.execute("INSERT INTO pass (started) VALUES (?)", (now_iso(),))
        return int(cur.lastrowid or 0)

    def finish_pass(self, pass_id: int, summary: dict[str, Any]) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE pass SET finished = ?, summary_json = ? WHERE id = ?",
                (now_iso(), json.dumps(summary, sort_keys=True), pass_id),
            )

    # -- read-side queries for `stacsync manifest` ---------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts by status and by collection, plus the last finished pass."""
        by_status = dict(
            self.conn.execute("SELECT status, count(*) FROM asset_file GROUP BY 1 ORDER BY 1")
        )
        by_collection = {
            cid or "(none)": {"files": files, "items": items}
            for cid, files, items in self.conn.execute(
                "SELECT collection_id, count(*), count(DISTINCT item_id) FROM asset_file"
                " WHERE status = 'ok' GROUP BY 1 ORDER BY 1"
            )
        }
        last = self.conn.execute(
            "SELECT id, started, finished, summary_json FROM pass"
            " WHERE finished IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        last_pass = None
        if last:
            last_pass = {"id": last[0], "started": last[1], "finished": last[2]}
            last_pass["summary"] = json.loads(last[3]) if last[3] else None
        return {
            "manifest": str(self.path),
            "schema_version": self.conn.execute("PRAGMA user_version").fetchone()[0],
            "files": sum(by_status.values()),
            "by_status": by_status,
            "by_collection": by_collection,
            "items": self.conn.execute(
                "SELECT count(*) FROM item WHERE json IS NOT NULL"
            ).fetchone()[0],
            "last_pass": last_pass,
        }

    def files(
        self, status: str | None = None, collection: str | None = None, glob: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows of the `files` view, filtered."""
        where, args = [], []
        for column, value in (("status", status), ("collection_id", collection)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if glob is not None:
            where.append("path GLOB ?")
            args.append(glob)
        sql = "SELECT * FROM files" + (" WHERE " + " AND ".join(where) if where else "")
        return self._dicts(sql + " ORDER BY path", args)

    def errors(self) -> list[dict[str, Any]]:
        """Files in error and paths a listing skipped, each with what a person can do about it."""
        return self._dicts("SELECT * FROM errors ORDER BY path", [])

    def set_skipped(self, skipped: dict[str, str], scope: Iterable[str] | None = None) -> None:
        """Record what a listing skipped; forget earlier skips it no longer reports.

        `scope`: the paths a partial listing looked at (only their records change).
        """
        rows = {to_db(path): _text(reason) for path, reason in skipped.items()}
        if scope is None:
            gone = [p for (p,) in self.conn.execute("SELECT path FROM skipped") if p not in rows]
        else:
            gone = [to_db(p) for p in scope if to_db(p) not in rows]
        self.conn.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in gone])
        self.conn.executemany(
            "INSERT INTO skipped (path, reason, since) VALUES (?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET reason = excluded.reason",
            [(path, reason, now_iso()) for path, reason in rows.items()],
        )

    def error_and_problem_counts(self) -> tuple[int, int]:
        """How many files are in error, and how many carry a layout remark: one scan."""
        errors, problems = self.conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'error'),"
            " count(*) FILTER (WHERE problem IS NOT NULL) FROM asset_file"
        ).fetchone()
        return errors, problems

    def problems(self) -> list[dict[str, Any]]:
        """Files with a layout remark (e.g. no metadata-table row), and files no `match` found."""
        return self._dicts(
            "SELECT path, problem FROM asset_file WHERE problem IS NOT NULL"
            " UNION ALL SELECT path, ? FROM asset_file WHERE status = 'unmatched'"
            " ORDER BY path",
            [UNMATCHED_NOTE],
        )

    def show(self, path: str) -> dict[str, Any] | None:
        """Every column of one file, with the extracted metadata parsed."""
        rows = self._dicts("SELECT * FROM asset_file WHERE path = ?", [to_db(path)])
        if not rows:
            return None
        row = rows[0]
        if row.get("meta_json"):
            row["meta"] = json.loads(row.pop("meta_json"))
        return row

    def _dicts(self, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, list(args))
        names = [d[0] for d in cur.description]
        return [_with_path(dict(zip(names, row, strict=True))) for row in cur]

    # -- thumbnails ----------------------------------------------------------------------

    def set_thumbnail(self, path: str, png: bytes | None) -> None:
        """Keep the thumbnail PNG of a known file, or drop it with None (inside a transaction)."""
        if png is None:
            self.conn.execute("DELETE FROM thumbnail WHERE path = ?", (to_db(path),))
            return
        self.conn.execute(
            "INSERT INTO thumbnail (path, png, hash) VALUES (?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET png = excluded.png, hash = excluded.hash",
            (to_db(path), png, hashlib.sha256(png).hexdigest()),
        )

    def thumbnail_hashes(self, paths: Iterable[str]) -> dict[str, str]:
        """sha256 hex of the thumbnails of those files that have one, by path."""
        paths = list(paths)
        if not paths:
            return {}
        marks = ", ".join("?" * len(paths))
        cur = self.conn.execute(
            f"SELECT path, hash FROM thumbnail WHERE path IN ({marks})", [to_db(p) for p in paths]
        )
        return {from_db(path): digest for path, digest in cur}

    def thumbnail(self, path: str) -> bytes | None:
        """The thumbnail PNG of one file, if it has one."""
        row = self.conn.execute(
            "SELECT png FROM thumbnail WHERE path = ?", (to_db(path),)
        ).fetchone()
        return bytes(row[0]) if row else None


UNMATCHED_NOTE = "matches no collection's `match` pattern, so it is in no item"


def _bindable(values: dict[str, Any]) -> dict[str, Any]:
    """Column values SQLite can take: the path as `to_db` stores it, other text made UTF-8.

    A message may quote a file name that is not UTF-8; it is kept in its display form.
    """
    out = {k: _text(v) for k, v in values.items()}
    if "path" in values:
        out["path"] = to_db(values["path"])
    return out


def _text(value: Any) -> Any:
    return display(value) if isinstance(value, str) and not is_utf8(value) else value


def _with_path(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row.get("path"), bytes):
        row["path"] = from_db(row["path"])
    return row


def _row_with_path(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    names = [d[0] for d in cursor.description]
    return _with_path(dict(zip(names, row, strict=True)))


def _statements(sql: str) -> Iterator[str]:
    """Split a migration script; sqlite3.complete_statement keeps CREATE VIEW bodies whole."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


def wall_clock_ns() -> int:
    """Wall-clock nanoseconds, the same clock file mtimes use."""
    return time.time_ns()
