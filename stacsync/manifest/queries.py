"""Read-only questions a person asks of the manifest through `stacsync manifest`.

Each takes an open Manifest (a reader is enough) and returns plain dicts ready to print as JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stacsync.core.names import to_db
from stacsync.manifest.rows import dicts

if TYPE_CHECKING:
    from stacsync.manifest.db import Manifest

UNMATCHED_NOTE = "matches no collection's `match` pattern, so it is in no item"


def summary(db: Manifest) -> dict[str, Any]:
    """Counts by status and by collection, plus the last finished pass."""
    conn = db.conn
    by_status = dict(conn.execute("SELECT status, count(*) FROM asset_file GROUP BY 1 ORDER BY 1"))
    by_collection = {
        cid or "(none)": {"files": files, "items": items}
        for cid, files, items in conn.execute(
            "SELECT collection_id, count(*), count(DISTINCT item_id) FROM asset_file"
            " WHERE status = 'ok' GROUP BY 1 ORDER BY 1"
        )
    }
    last = conn.execute(
        "SELECT id, started, finished, summary_json FROM pass"
        " WHERE finished IS NOT NULL ORDER BY id DESC LIMIT 1"
    ).fetchone()
    last_pass = None
    if last:
        last_pass = {"id": last[0], "started": last[1], "finished": last[2]}
        last_pass["summary"] = json.loads(last[3]) if last[3] else None
    return {
        "manifest": str(db.path),
        "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
        "files": sum(by_status.values()),
        "by_status": by_status,
        "by_collection": by_collection,
        "items": conn.execute("SELECT count(*) FROM item WHERE json IS NOT NULL").fetchone()[0],
        "last_pass": last_pass,
    }


def files(
    db: Manifest, status: str | None = None, collection: str | None = None, glob: str | None = None
) -> list[dict[str, Any]]:
    """Rows of the `files` view, filtered, in path order."""
    where, args = [], []
    for column, value in (("status", status), ("collection_id", collection)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if glob is not None:
        where.append("CAST(path AS TEXT) GLOB ?")  # a BLOB path never matches GLOB as-is
        args.append(glob)
    sql = "SELECT * FROM files" + (" WHERE " + " AND ".join(where) if where else "")
    return dicts(db.conn, sql + " ORDER BY path", args)


def problems(db: Manifest) -> list[dict[str, Any]]:
    """Files with a layout remark (e.g. no metadata-table row), and files no `match` found."""
    return dicts(
        db.conn,
        "SELECT path, problem FROM asset_file WHERE problem IS NOT NULL"
        " UNION ALL SELECT path, ? FROM asset_file WHERE status = 'unmatched'"
        " ORDER BY path",
        [UNMATCHED_NOTE],
    )


def show(db: Manifest, path: str) -> dict[str, Any] | None:
    """Every column of one file, with the extracted metadata parsed; None if unknown."""
    rows = dicts(db.conn, "SELECT * FROM asset_file WHERE path = ?", [to_db(path)])
    if not rows:
        return None
    row = rows[0]
    if row.get("meta_json"):
        row["meta"] = json.loads(row.pop("meta_json"))
    return row
