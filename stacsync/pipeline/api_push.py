"""Keep the STAC API of `[stac_api]` true to the static catalog: push what it has not taken.

Run after a pass's render, and by `stacsync api-sync`; a down API never fails a pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from stacsync.catalog.links import Links, collection_path, item_path
from stacsync.config.settings import Settings, StacApiSettings
from stacsync.manifest.api_acks import ApiAcks
from stacsync.manifest.db import Manifest
from stacsync.publish.stac_api import (
    API_FORMAT,
    ApiItem,
    CollectionChange,
    StacApi,
    StacApiUnavailable,
    api_collection_doc,
    api_item_doc,
    comparable,
    doc_hash,
)

log = logging.getLogger(__name__)

# Tests stop the process dead (SIGKILL) at a named point to prove the next pass converges:
# "api-before-push" (static catalog written, API untouched) or "api-before-ack" (the API
# committed, the manifest not told).
CRASH_ENV = "STACSYNC_CRASH_AT"


@dataclass
class ApiPushSummary:
    """What one push (or `api-sync`) did to the API."""

    api: str
    collections_written: int = 0
    items_upserted: int = 0
    items_deleted: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # "collection/item" → API's message
    requests: int = 0  # database transactions' statements or HTTP requests
    missing: int = 0  # --full: items the API lacked
    extra: int = 0  # --full: items the API had that the catalog has not
    different: int = 0  # --full: items whose content differed
    behind: int = 0  # items still to push or delete afterwards
    unavailable: str | None = None  # why the API could not be reached
    dry_run: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def push_api(settings: Settings, db: Manifest) -> ApiPushSummary | None:
    """After a pass's render: push what the API is behind by. Never raises for a down API."""
    if settings.stac_api is None:
        return None
    crash_point("api-before-push")
    try:
        pusher = ApiPusher(settings, settings.stac_api, db)
    except StacApiUnavailable as exc:
        log.warning("STAC API not updated, next pass tries again: %s", exc)
        return None
    with pusher:
        summary = pusher.push()
    if summary.unavailable:
        log.warning(
            "STAC API %s not updated (%d items behind), next pass tries again: %s",
            summary.api,
            summary.behind,
            summary.unavailable,
        )
    else:
        log.info(
            "STAC API %s: %d items upserted, %d deleted, %d refused, %d behind",
            summary.api,
            summary.items_upserted,
            summary.items_deleted,
            len(summary.refused),
            summary.behind,
        )
    return summary


def open_api(settings: StacApiSettings) -> StacApi:
    """The client of the configured API (its library is imported only then)."""
    if settings.kind == "pgstac":
        from stacsync.publish.pgstac import PgstacApi

        return PgstacApi(settings)
    from stacsync.publish.api_transactions import TransactionsApi

    return TransactionsApi(settings)


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class ApiPusher:
    """Pushes the difference between the manifest's items and what the API acknowledged."""

    def __init__(
        self,
        settings: Settings,
        api_settings: StacApiSettings,
        db: Manifest,
        api: StacApi | None = None,
        dry_run: bool = False,
    ):
        self.settings = settings
        self.db = db
        self.acks = ApiAcks(db.conn)
        self.links = Links(settings.public_url)
        self.dry_run = dry_run
        self.api = api or open_api(api_settings)
        self.summary = ApiPushSummary(api=self.api.label, dry_run=dry_run)
        fingerprint = repr((api_settings.kind, api_settings.label, settings.public_url, API_FORMAT))
        self.target = hashlib.sha256(fingerprint.encode()).hexdigest()

    def __enter__(self) -> ApiPusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.api.close()

    # -- push what is behind ---------------------------------------------------------------

    def push(self) -> ApiPushSummary:
        started = time.monotonic()
        if self.acks.target() != self.target and not self.dry_run:
            with self.db.transaction():
                self.acks.retarget(self.target)
        try:
            for cid in self._collections():
                self._push_collection(cid)
            self._drop_unconfigured()
        except StacApiUnavailable as exc:
            self.summary.unavailable = str(exc)
        except Exception as exc:
            # Whatever it is (pgstac refusing a whole batch, a bug), the static catalog is
            # already written and must stand; what was not acknowledged goes next pass.
            log.exception("STAC API push failed")
            self.summary.unavailable = f"{type(exc).__name__}: {exc}"
        self.summary.behind = self.acks.backlog().behind
        self.summary.seconds = round(time.monotonic() - started, 3)
        return self.summary

    def _collections(self) -> list[str]:
        configured = [c.id for c in self.settings.collections]
        return sorted(set(configured) | set(self.acks.collections_with_work()))

    def _push_collection(self, cid: str) -> None:
        configured = any(c.id == cid for c in self.settings.collections)
        pending = list(self.acks.pending(cid))
        gone = self.acks.gone(cid)
        static = self.db.written_hash(collection_path(cid))
        acked = self.acks.collection_hash(cid)
        if not (pending or gone) and acked is not None and static == self.acks.static_seen(cid):
            return  # the static collection is as it was when the API took it: nothing to do
        doc = self.collection_doc(cid) if configured else None
        digest = doc_hash(doc) if doc is not None else None
        changed_doc = digest is not None and digest != acked
        if not (changed_doc or pending or gone):
            if not self.dry_run:
                with self.db.transaction():
                    self.acks.set_static_seen(cid, static)
            return
        base = self.links.public_url
        upserts = [
            ApiItem(p.item_id, api_item_doc(p.json, base and f"{base}/{item_path(cid, p.item_id)}"),
                    p.json_hash)
            for p in pending
        ]  # fmt: skip
        if self.dry_run:
            self.summary.collections_written += int(changed_doc)
            self.summary.items_upserted += len(upserts)
            self.summary.items_deleted += len(gone)
            return
        with self.db.transaction():
            # Before the push: from now on the API may hold them, whatever happens next.
            self.acks.claim(cid, (p.item_id for p in pending))
            if doc is not None:  # a row: the API may hold the collection
                self.acks.set_collection_hash(cid, self.acks.collection_hash(cid))
        # The collection goes with every change of its items: its extent covers them.
        change = CollectionChange(cid, doc, upserts, gone)
        result = self.api.apply(change)
        crash_point("api-before-ack")
        with self.db.transaction():
            if result.collection_written and digest is not None:
                self.acks.set_collection_hash(cid, digest)
                self.acks.set_static_seen(cid, static)
            self.acks.acknowledge(cid, ((i.item_id, i.json_hash) for i in result.upserted))
            self.acks.forget(cid, result.deleted)
            self.acks.refuse(cid, result.refused)
        self.summary.collections_written += int(result.collection_written)
        self.summary.items_upserted += len(result.upserted)
        self.summary.items_deleted += len(result.deleted)
        self.summary.requests += result.requests
        self.summary.refused.update({f"{cid}/{i}": m for i, m in result.refused.items()})

    def _drop_unconfigured(self) -> None:
        """Collections taken out of the config leave the API, as they leave the static folder."""
        configured = {c.id for c in self.settings.collections}
        for cid in self.acks.collections():
            if cid in configured:
                continue
            if not self.dry_run:
                self.api.delete_collection(cid)
                with self.db.transaction():
                    self.acks.forget_collection(cid)
            self.summary.collections_written += 1

    # -- compare everything and repair -----------------------------------------------------

    def full(self) -> ApiPushSummary:
        """Compare every item the API holds with the catalog; mark what differs; push."""
        try:
            for c in self.settings.collections:
                self._compare(c.id)
        except StacApiUnavailable as exc:
            self.summary.unavailable = str(exc)
            self.summary.behind = self.acks.backlog().behind
            return self.summary
        if not self.dry_run:
            with self.db.transaction():
                # The collection documents too: someone may have edited them.
                for c in self.settings.collections:
                    self.acks.set_collection_hash(c.id, None)
        return self.push()

    def _compare(self, cid: str) -> None:
        held = {doc["id"]: doc for doc in self.api.items(cid)}
        wanted = {
            iid: (text, digest) for iid, text, digest in self._rendered(cid)
        }  # fmt: skip
        missing = [iid for iid in wanted if iid not in held]
        extra = [iid for iid in held if iid not in wanted]
        base = self.links.public_url
        different = [
            iid
            for iid, (text, _) in wanted.items()
            if iid in held
            and comparable(held[iid])
            != comparable(api_item_doc(text, base and f"{base}/{item_path(cid, iid)}"))
        ]
        self.summary.missing += len(missing)
        self.summary.extra += len(extra)
        self.summary.different += len(different)
        if self.dry_run:
            return
        with self.db.transaction():
            self.acks.unacknowledge(cid, [*missing, *different])
            # An extra item gets a row without an item: the push deletes it.
            self.acks.claim(cid, extra)

    def _rendered(self, cid: str) -> list[tuple[str, str, str]]:
        return self.db.conn.execute(
            "SELECT item_id, json, json_hash FROM item WHERE collection_id = ?"
            " AND json IS NOT NULL",
            (cid,),
        ).fetchall()

    # -- the collection document -----------------------------------------------------------

    def collection_doc(self, cid: str) -> dict[str, Any]:
        """The collection as the static catalog renders it, extent included, without links."""
        from stacsync.catalog.aggregates import collection_input
        from stacsync.catalog.collections import render_collection
        from stacsync.catalog.model import dumps
        from stacsync.catalog.pages import page_tree

        c = collection_input(self.settings, self.db, cid, self._items_summary(cid))
        doc = render_collection(c, self.links, page_tree(c.item_ids))
        return api_collection_doc(json.loads(dumps(doc)))

    def _items_summary(self, cid: str) -> Any:
        from stacsync.catalog import summaries

        cached = self.db.state.collection_summaries(cid)
        if cached is not None:
            return summaries.ItemsSummary(**json.loads(cached))
        from stacsync.catalog.aggregates import stored_digests

        return summaries.summarise_items(stored_digests(self.db, cid))
