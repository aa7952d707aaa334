"""A pgstac database as a `StacApi`: pypgstac's Loader upserts, pgstac's delete_item deletes.

One collection's document, upserts and deletions go in one database transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stacsync.publish.stac_api import ChangeResult, CollectionChange, StacApiUnavailable

if TYPE_CHECKING:
    from stacsync.config.settings import StacApiSettings

log = logging.getLogger(__name__)


class PgstacApi:
    """The pgstac database at `dsn`; the password comes from libpq (PGPASSWORD, .pgpass)."""

    def __init__(self, settings: StacApiSettings):
        self.settings = settings
        self.label = str(settings.dsn)
        self._conn: Any = None
        try:
            import psycopg  # noqa: F401
            import pypgstac  # noqa: F401
        except ImportError as exc:
            raise StacApiUnavailable(
                f'stac_api kind = "pgstac" needs pypgstac and psycopg ({exc}): '
                "pip install 'stacsync[stac-api]'"
            ) from exc

    def _connect(self) -> Any:
        import psycopg

        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            conn = psycopg.connect(
                self.settings.dsn or "",
                autocommit=True,
                connect_timeout=max(1, int(self.settings.timeout)),
                application_name="stacsync",
            )
            conn.execute("SET search_path TO pgstac, public")
        except psycopg.OperationalError as exc:
            raise StacApiUnavailable(f"pgstac {self.label}: cannot connect: {_first(exc)}") from exc
        self._conn = conn
        return conn

    def apply(self, change: CollectionChange) -> ChangeResult:
        import psycopg
        from pypgstac.load import Loader, Methods

        conn = self._connect()
        loader = Loader(_one_connection(conn))
        result = ChangeResult()
        try:
            # One transaction: the API never shows items without the extent that covers them,
            # and a crash or a dropped connection leaves nothing half done.
            with conn.transaction():
                if change.doc is not None:
                    loader.load_collections(iter([change.doc]), insert_mode=Methods.upsert)
                    result.collection_written = True
                    result.requests += 1
                if change.upserts:
                    size = self.settings.batch_size
                    docs = (item.doc for item in change.upserts)
                    loader.load_items(docs, insert_mode=Methods.upsert, chunksize=size)
                    result.requests += -(-len(change.upserts) // size)
                if change.deletes:
                    conn.execute(
                        "SELECT delete_item(d.id, %s) FROM unnest(%s::text[]) AS d(id)"
                        " WHERE EXISTS (SELECT 1 FROM items i"
                        " WHERE i.collection = %s AND i.id = d.id)",
                        (change.collection_id, change.deletes, change.collection_id),
                    )
                    result.requests += 1
        except psycopg.OperationalError as exc:
            self.close()
            raise StacApiUnavailable(f"pgstac {self.label}: {_first(exc)}") from exc
        result.upserted = list(change.upserts)
        result.deleted = list(change.deletes)
        return result

    def items(self, collection_id: str) -> Iterator[dict[str, Any]]:
        conn = self._connect()
        with conn.cursor(name="stacsync_items") as cur, conn.transaction():
            cur.execute(
                "SELECT content_hydrate(i) FROM items i WHERE i.collection = %s",
                (collection_id,),
            )
            for (doc,) in cur:
                yield doc

    def collection_ids(self) -> set[str]:
        conn = self._connect()
        return {r[0] for r in conn.execute("SELECT id FROM collections")}

    def delete_collection(self, collection_id: str) -> None:
        conn = self._connect()
        conn.execute(
            "SELECT delete_collection(id) FROM collections WHERE id = %s", (collection_id,)
        )

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                log.debug("closing the pgstac connection failed", exc_info=True)
            self._conn = None


def _first(exc: BaseException) -> str:
    """The first line of a libpq message (the rest repeats the host and port)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_connection_class() -> type:
    from pypgstac.db import PgstacDB

    class OneConnection(PgstacDB):
        """pypgstac's database over our one connection: its pool would open others, with
        libpq defaults, outside our transaction."""

        def __init__(self, conn: Any):
            super().__init__(dsn="", connection=conn, commit_on_exit=False)

        def get_pool(self) -> Any:
            return None

        def connect(self) -> Any:
            return self.connection

        def disconnect(self) -> None:
            pass

    return OneConnection


def _one_connection(conn: Any) -> Any:
    return _one_connection_class()(conn)
