"""The manifest's schema: its migrations in order, and the version a database is at.

A database carries its version in PRAGMA user_version; a newer one than this code is refused.
"""

from __future__ import annotations

from stacsync.core.errors import StacsyncError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (checkers know the idiom)
if TYPE_CHECKING:
    import sqlite3  # the package imports datetime: a no-change rescan uses _sqlite3 alone
    from collections.abc import Iterator
    from pathlib import Path

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
    (
        "object versions",
        # An object store's version token (an S3 ETag, without quotes) when the listing gives
        # one: a changed one means new bytes; the same one with a new mtime is a touch.
        "ALTER TABLE asset_file ADD COLUMN etag TEXT;",
    ),
    (
        "stac api acknowledgements",
        # What the STAC API of [stac_api] holds, as far as we know: a row means the API may
        # have the item (written before a push, so a crash cannot leave one we forget to
        # delete); `hash` is the item's json_hash the API last acknowledged, NULL when none.
        """
        CREATE TABLE api_item (
            collection_id TEXT NOT NULL,
            item_id       TEXT NOT NULL,
            hash          TEXT,
            error         TEXT,                  -- the API's last refusal, for a person
            PRIMARY KEY (collection_id, item_id)
        );
        CREATE TABLE api_collection (
            collection_id TEXT PRIMARY KEY,
            hash          TEXT                   -- sha256 of the collection the API took
        );
        """,
    ),
    (
        "scan index",
        # Every pass reads these columns of every file (the diff, the no-change witness); in
        # the table they sit after meta_json (~10 KB a raster), on overflow pages SQLite must
        # walk to reach them. A covering index reads ~20x fewer pages.
        """
        CREATE INDEX asset_file_scan ON asset_file (
            path, size, mtime_ns, checksum, status, collection_id, item_id, asset_key,
            error_transient, scanned_ns, etag, problem
        );
        """,
    ),
    (
        "page inputs",
        # A digest of what a page of links was rendered from (`catalog.pages.page_inputs`):
        # a pass re-renders only the pages whose inputs changed. NULL for every other file.
        "ALTER TABLE written ADD COLUMN inputs TEXT;",
    ),
    (
        "item scan index",
        # Every pass that renders checks each item's file is still there, from its json_hash:
        # a column after the item's JSON (~10 KB), on overflow pages the table scan must walk.
        "CREATE INDEX item_hash_scan ON item (collection_id, item_id, json_hash);",
    ),
    (
        "item extent index",
        # Every pass that renders a collection reads its items' ids, bounding boxes and dates:
        # columns after the item's JSON too. Only rendered items are in it (`json IS NOT NULL`,
        # what those queries ask), so they never touch the table: 1.3 ms instead of 10 ms for
        # 1,429 items, and ~40 ms less in a new process, whose page cache starts empty.
        """
        CREATE INDEX item_extent ON item (
            collection_id, item_id, west, south, east, north, start_datetime, end_datetime
        ) WHERE json IS NOT NULL;
        """,
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


def refuse_newer(version: int, path: Path) -> None:
    """Raise when a database was written by a newer stacsync than this one."""
    if version > SCHEMA_VERSION:
        raise StacsyncError(
            f"manifest {path} has schema version {version}, newer than this stacsync "
            f"({SCHEMA_VERSION}); upgrade stacsync"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the pending migrations, each in its own write transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    refuse_newer(version, path)
    for number, (_name, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(sql: str) -> Iterator[str]:
    """Split a migration script; sqlite3.complete_statement keeps CREATE VIEW bodies whole."""
    import sqlite3  # here: SCHEMA_VERSION alone is on the path of a no-change rescan

    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()
