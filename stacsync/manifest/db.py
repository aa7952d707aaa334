"""The manifest database: every asset file, every rendered item, the hashes of what was written.

Catalog files are derived from it, so a crash is repaired by re-deriving what it marks dirty.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stacsync.core.errors import StacsyncError
from stacsync.core.names import from_db, to_db
from stacsync.core.records import FileState
from stacsync.manifest.lock import ManifestLock
from stacsync.manifest.rows import FileRow, bindable, dicts, now_iso, row_with_path, text
from stacsync.manifest.schema import migrate, refuse_newer
from stacsync.manifest.state import PassState

# Kept for a raster whose thumbnail was to be drawn and could not be (its pixels do not read):
# not drawn again until the file changes (the file's row, and this with it, is replaced).
NO_THUMBNAIL = b""


class Manifest:
    """The manifest database; open with `Manifest.open_writer` or `Manifest.open_reader`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock: ManifestLock | None):
        self.conn = conn
        self.path = path
        self._lock = lock
        self.state = PassState(conn)

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
            migrate(conn, path)
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
        refuse_newer(conn.execute("PRAGMA user_version").fetchone()[0], path)
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
            " error_transient, scanned_ns, etag FROM asset_file"
        )
        rows = (FileRow(from_db(row[0]), *row[1:]) for row in cur)
        return {row.path: row for row in rows}

    def paths(self) -> list[str]:
        """Every known file's path, sorted (without building a FileRow for each)."""
        cur = self.conn.execute("SELECT path FROM asset_file ORDER BY path")
        return [from_db(r[0]) for r in cur]

    def upsert_file(self, values: dict[str, Any]) -> None:
        """Insert or replace the columns given for one file (inside a transaction)."""
        values = bindable(values)
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
        values = bindable(values)
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE asset_file SET {sets} WHERE path = ?", [*values.values(), to_db(path)]
        )

    def update_stat(
        self, path: str, mtime_ns: int, scanned_ns: int, etag: str | None = None
    ) -> None:
        """A touched file: same bytes, new mtime (and the store's version token, if any)."""
        self.conn.execute(
            "UPDATE asset_file SET mtime_ns = ?, scanned_ns = ?, etag = coalesce(?, etag)"
            " WHERE path = ?",
            (mtime_ns, scanned_ns, etag, to_db(path)),
        )

    def delete_file(self, path: str) -> None:
        self.conn.execute("DELETE FROM asset_file WHERE path = ?", (to_db(path),))

    def item_files(self, collection_id: str, item_id: str) -> list[dict[str, Any]]:
        """The good files of one item, in a stable order."""
        cur = self.conn.cursor()
        cur.row_factory = row_with_path  # on this cursor only, not the shared connection
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

    def iter_index_features(self) -> Iterator[tuple[str, str, str | None, str | None]]:
        """(collection, item, index feature, item json) of every rendered item, in id order.

        The feature is None for items rendered before it was stored; the json only then (the
        index needs no more, and at ~13 KB an item it is most of what the scan would read).
        """
        yield from self.conn.execute(
            "SELECT collection_id, item_id, feature, CASE WHEN feature IS NULL THEN json END"
            " FROM item WHERE json IS NOT NULL ORDER BY 1, 2"
        )

    def iter_item_texts(self) -> Iterator[str]:
        """The JSON of every rendered item, in id order."""
        for (item_json,) in self.conn.execute(
            "SELECT json FROM item WHERE json IS NOT NULL ORDER BY collection_id, item_id"
        ):
            yield item_json

    # -- other catalog files and passes --------------------------------------------------

    def written_hash(self, path: str) -> str | None:
        row = self.conn.execute("SELECT hash FROM written WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def set_written_hash(self, path: str, digest: str | None, inputs: str | None = None) -> None:
        """Record a file's bytes (and, for a page, what it was made from); None: it is gone."""
        if digest is None:
            self.conn.execute("DELETE FROM written WHERE path = ?", (path,))
        else:
            self.conn.execute(
                "INSERT INTO written (path, hash, inputs) VALUES (?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET hash = excluded.hash, inputs = excluded.inputs",
                (path, digest, inputs),
            )

    def written_paths(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT path FROM written ORDER BY 1")]

    def written_inputs(self, folder: str) -> dict[str, str | None]:
        """Path → recorded inputs of every written file under `folder` (ending in "/")."""
        # A range, not LIKE: "_" and "%" are ordinary characters in a collection id.
        rows = self.conn.execute(
            "SELECT path, inputs FROM written WHERE path >= ? AND path < ?",
            (folder, folder[:-1] + chr(ord(folder[-1]) + 1)),
        )
        return dict(rows.fetchall())

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

    # -- errors and skipped paths ---------------------------------------------------------

    def errors(self) -> list[dict[str, Any]]:
        """Files in error and paths a listing skipped, each with what a person can do about it."""
        return dicts(self.conn, "SELECT * FROM errors ORDER BY path", [])

    def set_skipped(self, skipped: dict[str, str], scope: Iterable[str] | None = None) -> None:
        """Record what a listing skipped; forget earlier skips it no longer reports.

        `scope`: the paths a partial listing looked at (only their records change).
        """
        rows = {to_db(path): text(reason) for path, reason in skipped.items()}
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

    # -- thumbnails ----------------------------------------------------------------------

    def set_thumbnail(self, path: str, png: bytes | None) -> None:
        """Keep the thumbnail PNG of a known file (NO_THUMBNAIL: one was to be drawn and could
        not be), or drop it with None (inside a transaction)."""
        if png is None:
            self.conn.execute("DELETE FROM thumbnail WHERE path = ?", (to_db(path),))
            return
        self.conn.execute(
            "INSERT INTO thumbnail (path, png, hash) VALUES (?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET png = excluded.png, hash = excluded.hash",
            (to_db(path), png, hashlib.sha256(png).hexdigest() if png else ""),
        )

    def thumbnail_hashes(self, paths: Iterable[str]) -> dict[str, str]:
        """sha256 hex of the thumbnails of those files that have a row, by path ("" for
        NO_THUMBNAIL)."""
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
