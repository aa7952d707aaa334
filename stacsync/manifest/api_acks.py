"""What the STAC API of `[stac_api]` acknowledged: per item the rendered hash it took.

A pass compares these with the items the static catalog holds to push only what differs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# The `state` key of the fingerprint of the API acknowledgements are about (kind, address,
# what a pushed document looks like): another fingerprint means nothing is acknowledged.
TARGET_KEY = "stac_api.target"
# + a collection id: the hash of its static collection.json when the API last took it; the
# same hash means the same extent and summaries, so the document need not be rebuilt.
STATIC_KEY_PREFIX = "stac_api.static:"


@dataclass(frozen=True)
class PendingItem:
    """A rendered item the API has not acknowledged in its current form."""

    collection_id: str
    item_id: str
    json: str  # the item as the static catalog wrote it
    json_hash: str


@dataclass(frozen=True)
class ApiBacklog:
    """How far the API is behind the static catalog."""

    to_push: int  # rendered items whose current hash the API has not acknowledged
    to_delete: int  # items the API may still hold that the catalog no longer has
    refused: int  # of those, items the API refused last time (4xx)

    @property
    def behind(self) -> int:
        return self.to_push + self.to_delete


class ApiAcks:
    """The api_item and api_collection tables, over a manifest connection.

    Writes happen inside the caller's `Manifest.transaction()`.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # -- the target ----------------------------------------------------------------------

    def target(self) -> str | None:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (TARGET_KEY,)).fetchone()
        return row[0] if row else None

    def retarget(self, fingerprint: str) -> None:
        """Another API or document form: forget every hash, keep the rows.

        A row still means "the API may hold this item", so items removed later are still
        deleted there; every current item is pushed again (an upsert, harmless if the same).
        """
        self.conn.execute("UPDATE api_item SET hash = NULL")
        self.conn.execute("UPDATE api_collection SET hash = NULL")
        self.conn.execute(
            "INSERT INTO state (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (TARGET_KEY, fingerprint),
        )

    # -- items ---------------------------------------------------------------------------

    def pending(self, collection_id: str) -> Iterator[PendingItem]:
        """Rendered items of one collection whose hash the API has not acknowledged."""
        cur = self.conn.execute(
            "SELECT i.collection_id, i.item_id, i.json, i.json_hash FROM item i"
            " LEFT JOIN api_item a USING (collection_id, item_id)"
            " WHERE i.collection_id = ? AND i.json IS NOT NULL"
            " AND (a.hash IS NULL OR a.hash != i.json_hash) ORDER BY i.item_id",
            (collection_id,),
        )
        for row in cur:
            yield PendingItem(*row)

    def gone(self, collection_id: str) -> list[str]:
        """Ids of items the API may hold that the catalog no longer has."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT a.item_id FROM api_item a LEFT JOIN item i USING (collection_id, item_id)"
                " WHERE a.collection_id = ? AND i.json IS NULL ORDER BY 1",
                (collection_id,),
            )
        ]

    def collections_with_work(self) -> list[str]:
        """Collections with items to push or delete, in id order."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT i.collection_id FROM item i"
                " LEFT JOIN api_item a USING (collection_id, item_id)"
                " WHERE i.json IS NOT NULL AND (a.hash IS NULL OR a.hash != i.json_hash)"
                " UNION SELECT a.collection_id FROM api_item a"
                " LEFT JOIN item i USING (collection_id, item_id) WHERE i.json IS NULL"
                " ORDER BY 1"
            )
        ]

    def claim(self, collection_id: str, item_ids: Iterable[str]) -> None:
        """Before a push: these items may be in the API from now on (a crash keeps the row)."""
        self.conn.executemany(
            "INSERT INTO api_item (collection_id, item_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(collection_id, iid) for iid in item_ids],
        )

    def acknowledge(self, collection_id: str, acked: Iterable[tuple[str, str]]) -> None:
        """The API took these (item id, json hash)."""
        self.conn.executemany(
            "INSERT INTO api_item (collection_id, item_id, hash) VALUES (?, ?, ?)"
            " ON CONFLICT(collection_id, item_id) DO UPDATE"
            " SET hash = excluded.hash, error = NULL",
            [(collection_id, iid, digest) for iid, digest in acked],
        )

    def refuse(self, collection_id: str, refused: dict[str, str]) -> None:
        """The API refused these items (id → its message): they stay behind."""
        self.conn.executemany(
            "INSERT INTO api_item (collection_id, item_id, error) VALUES (?, ?, ?)"
            " ON CONFLICT(collection_id, item_id) DO UPDATE SET error = excluded.error",
            [(collection_id, iid, message) for iid, message in refused.items()],
        )

    def forget(self, collection_id: str, item_ids: Iterable[str]) -> None:
        """The API no longer holds these items."""
        self.conn.executemany(
            "DELETE FROM api_item WHERE collection_id = ? AND item_id = ?",
            [(collection_id, iid) for iid in item_ids],
        )

    def unacknowledge(self, collection_id: str, item_ids: Iterable[str]) -> None:
        """`api-sync --full` found these different in the API: push them again."""
        self.conn.executemany(
            "UPDATE api_item SET hash = NULL WHERE collection_id = ? AND item_id = ?",
            [(collection_id, iid) for iid in item_ids],
        )

    def known_ids(self, collection_id: str) -> set[str]:
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT item_id FROM api_item WHERE collection_id = ?", (collection_id,)
            )
        }

    def refusals(self) -> list[tuple[str, str, str]]:
        """(collection, item, message) of every item the API refused last time."""
        return self.conn.execute(
            "SELECT collection_id, item_id, error FROM api_item WHERE error IS NOT NULL"
            " ORDER BY 1, 2"
        ).fetchall()

    # -- collections ---------------------------------------------------------------------

    def collection_hash(self, collection_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT hash FROM api_collection WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        return row[0] if row else None

    def set_collection_hash(self, collection_id: str, digest: str | None) -> None:
        """The API took this collection document (None: it may hold the collection)."""
        self.conn.execute(
            "INSERT INTO api_collection (collection_id, hash) VALUES (?, ?)"
            " ON CONFLICT(collection_id) DO UPDATE SET hash = excluded.hash",
            (collection_id, digest),
        )

    def static_seen(self, collection_id: str) -> str | None:
        """The static collection.json's hash when the API last took the collection."""
        row = self.conn.execute(
            "SELECT value FROM state WHERE key = ?", (STATIC_KEY_PREFIX + collection_id,)
        ).fetchone()
        return row[0] if row else None

    def set_static_seen(self, collection_id: str, digest: str | None) -> None:
        key = STATIC_KEY_PREFIX + collection_id
        if digest is None:
            self.conn.execute("DELETE FROM state WHERE key = ?", (key,))
            return
        self.conn.execute(
            "INSERT INTO state (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, digest),
        )

    def forget_collection(self, collection_id: str) -> None:
        self.conn.execute("DELETE FROM api_collection WHERE collection_id = ?", (collection_id,))
        self.conn.execute("DELETE FROM api_item WHERE collection_id = ?", (collection_id,))

    def collections(self) -> list[str]:
        """Collections the API may hold."""
        return [r[0] for r in self.conn.execute("SELECT collection_id FROM api_collection")]

    # -- for `manifest summary` ----------------------------------------------------------

    def backlog(self) -> ApiBacklog:
        to_push, refused = self.conn.execute(
            "SELECT count(*), count(a.error) FROM item i"
            " LEFT JOIN api_item a USING (collection_id, item_id)"
            " WHERE i.json IS NOT NULL AND (a.hash IS NULL OR a.hash != i.json_hash)"
        ).fetchone()
        (to_delete,) = self.conn.execute(
            "SELECT count(*) FROM api_item a LEFT JOIN item i USING (collection_id, item_id)"
            " WHERE i.json IS NULL"
        ).fetchone()
        return ApiBacklog(to_push=to_push, to_delete=to_delete, refused=refused)


def api_backlog(conn: sqlite3.Connection, configured: bool = False) -> ApiBacklog | None:
    """How far a STAC API is behind; None when none is `configured` and no push ever ran."""
    try:
        acks = ApiAcks(conn)
        return acks.backlog() if configured or acks.target() is not None else None
    except sqlite3.OperationalError:  # a manifest from before the api tables, opened read-only
        return None
