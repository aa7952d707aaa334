"""What one pass leaves for the next, typed: fingerprints, cached summaries, what was told.

Stored in the `state` table under keys that never change; set inside a transaction, None forgets.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (checkers know the idiom)
if TYPE_CHECKING:
    import sqlite3  # the package imports datetime: a no-change rescan uses _sqlite3 alone
    from typing import Any

RENDER_FINGERPRINT_KEY = "render_fingerprint"
LAYOUT_FINGERPRINT_KEY = "layout_fingerprint"
UNUSED_ROWS_KEY = "unused_rows"
PARENT_STATE_KEY = "parent_catalog.linked"
ANNOUNCED_STATE_KEY = "mail.announced_collections"
SUMMARIES_KEY_PREFIX = "summaries:"  # + collection id; + ":stale" for its flag
RESCAN_WITNESS_KEY = "rescan_witness"
RESCAN_WITNESS_PASS_KEY = "rescan_witness.pass"


class PassState:
    """The `state` table of one open manifest, reached as `Manifest.state`."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    # -- what shaped the last render -----------------------------------------------------

    @property
    def render_fingerprint(self) -> str | None:
        """Hash of the settings that shaped collections and the catalog when last rendered."""
        return self._get(RENDER_FINGERPRINT_KEY)

    @render_fingerprint.setter
    def render_fingerprint(self, value: str | None) -> None:
        self._put(RENDER_FINGERPRINT_KEY, value)

    @property
    def layout_fingerprint(self) -> str | None:
        """Hash of the layout settings and metadata tables every file was last placed by."""
        return self._get(LAYOUT_FINGERPRINT_KEY)

    @layout_fingerprint.setter
    def layout_fingerprint(self, value: str | None) -> None:
        self._put(LAYOUT_FINGERPRINT_KEY, value)

    @property
    def unused_rows(self) -> dict[str, list[str]] | None:
        """Metadata-table keys no file joined, by collection id, as last computed."""
        import json  # here: a no-change rescan reads the state without json (manifest.witness)

        text = self._get(UNUSED_ROWS_KEY)
        return None if text is None else json.loads(text)

    @unused_rows.setter
    def unused_rows(self, value: dict[str, list[str]] | None) -> None:
        import json

        self._put(UNUSED_ROWS_KEY, None if value is None else json.dumps(value, sort_keys=True))

    # -- per-collection summaries --------------------------------------------------------

    def collection_summaries(self, collection_id: str) -> str | None:
        """The cached summaries text of one collection; None if never stored or marked stale."""
        key = SUMMARIES_KEY_PREFIX + collection_id
        if self._get(f"{key}:stale") is not None:
            return None
        return self._get(key)

    def set_collection_summaries(self, collection_id: str, text: str) -> None:
        """Cache a collection's summaries text (its owner serialises it) and clear its flag."""
        key = SUMMARIES_KEY_PREFIX + collection_id
        self._put(key, text)
        self._put(f"{key}:stale", None)

    def mark_summaries_stale(self, collection_id: str) -> None:
        """An item of the collection changed, came or went: recompute before using the cache."""
        self._put(f"{SUMMARIES_KEY_PREFIX}{collection_id}:stale", "1")

    # -- what the keeper was told --------------------------------------------------------

    @property
    def linked_parent(self) -> str | None:
        """The parent catalog our child link was added to (linked once, never again)."""
        return self._get(PARENT_STATE_KEY)

    @linked_parent.setter
    def linked_parent(self, value: str | None) -> None:
        self._put(PARENT_STATE_KEY, value)

    @property
    def announced_collections(self) -> str | None:
        """The collections already announced by mail, as `keeper.mail.announced_state` wrote
        them (a JSON list of ids); None before the first announcement."""
        return self._get(ANNOUNCED_STATE_KEY)

    @announced_collections.setter
    def announced_collections(self, value: str | None) -> None:
        self._put(ANNOUNCED_STATE_KEY, value)

    # -- what a one-shot rescan may trust -------------------------------------------------

    @property
    def rescan_witness(self) -> bytes | None:
        """What the last full one-shot pass saw, as `manifest.witness.Witness.to_bytes` wrote it
        (or an older stacsync's JSON text, which no witness reads)."""
        return self._get(RESCAN_WITNESS_KEY)

    @rescan_witness.setter
    def rescan_witness(self, value: bytes | None) -> None:
        self._put(RESCAN_WITNESS_KEY, value)

    @property
    def rescan_witness_pass(self) -> int | None:
        """The pass the witness vouches for: any later pass (daemon, crash) voids it.

        Apart from the witness itself so that a no-change pass rewrites a number, not a listing.
        """
        value = self._get(RESCAN_WITNESS_PASS_KEY)
        return None if value is None else int(value)

    @rescan_witness_pass.setter
    def rescan_witness_pass(self, value: int | None) -> None:
        self._put(RESCAN_WITNESS_PASS_KEY, None if value is None else str(value))

    # -- the table -----------------------------------------------------------------------

    def _get(self, key: str) -> Any:  # str; bytes for the witness; None when absent
        row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _put(self, key: str, value: str | bytes | None) -> None:
        if value is None:
            self._conn.execute("DELETE FROM state WHERE key = ?", (key,))
            return
        self._conn.execute(
            "INSERT INTO state (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
