"""What goes into and comes out of a manifest row: the FileRow a pass diffs, timestamps, paths.

A path that is not UTF-8 is stored as a BLOB of its bytes (`to_db`) and read back by `from_db`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stacsync.core.clock import now_iso as now_iso  # kept here for its importers
from stacsync.core.names import display, from_db, is_utf8, to_db
from stacsync.core.records import FileState, SourceEntry


# Not frozen: a frozen dataclass sets each field through object.__setattr__, ~1 us a row more,
# and every pass builds one per known file (10 ms at 10,000 files). Nothing changes one.
@dataclass(slots=True)
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
    etag: str | None = None  # an object store's version token (S3 ETag), if it lists one

    def same_version(self, entry: SourceEntry) -> bool:
        """A good file the store lists with the version token (S3 ETag) and size it had."""
        return (
            entry.etag is not None
            and entry.etag == self.etag
            and entry.size == self.size
            and self.status == FileState.OK
        )

    def needs_look(self, entry: SourceEntry, racy_window_ns: int) -> bool:
        """True when the listed file must be checksummed or extracted again: its stat
        changed, it failed for a reason that may pass, it is pending, or it was scanned within
        `racy_window_ns` of its mtime (it may have changed again within the same tick)."""
        if self.size != entry.size or self.mtime_ns != entry.mtime_ns:
            return True
        if self.status == FileState.ERROR:
            return bool(self.error_transient)
        if self.status == FileState.PENDING:
            return True
        return self.mtime_ns + racy_window_ns >= self.scanned_ns


def wall_clock_ns() -> int:
    """Wall-clock nanoseconds, the same clock file mtimes use."""
    return time.time_ns()


def bindable(values: dict[str, Any]) -> dict[str, Any]:
    """Column values SQLite can take: the path as `to_db` stores it, other text made UTF-8.

    A message may quote a file name that is not UTF-8; it is kept in its display form.
    """
    out = {k: text(v) for k, v in values.items()}
    if "path" in values:
        out["path"] = to_db(values["path"])
    return out


def text(value: Any) -> Any:
    """A string SQLite can store as TEXT: one that is not UTF-8 becomes its display form."""
    return display(value) if isinstance(value, str) and not is_utf8(value) else value


def with_path(row: dict[str, Any]) -> dict[str, Any]:
    """The row with a path stored as a BLOB turned back into the name it was."""
    if isinstance(row.get("path"), bytes):
        row["path"] = from_db(row["path"])
    return row


def row_with_path(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    """A cursor row_factory: rows as dicts, paths decoded."""
    names = [d[0] for d in cursor.description]
    return with_path(dict(zip(names, row, strict=True)))


def dicts(conn: sqlite3.Connection, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
    """Every row of a query as a dict, paths decoded."""
    cur = conn.execute(sql, list(args))
    names = [d[0] for d in cur.description]
    return [with_path(dict(zip(names, row, strict=True))) for row in cur]
