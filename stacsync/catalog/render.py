"""Turn what the manifest marks dirty into catalog files: items, collections, catalog, index.

Everything is derived from the manifest; a file is written only when its bytes would change
or it is missing on disk, so a crash anywhere is repaired by the next pass.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

# items, collections, index and model build through pystac: they are imported where something
# renders, so that a pass with nothing to render never loads pystac (tens of ms at start-up).
from stacsync.catalog import summaries
from stacsync.catalog.aggregates import collection_input, stored_digests
from stacsync.catalog.hrefs import alternate_hrefs, rewrite_href
from stacsync.catalog.item_thumbnails import ItemThumbnails
from stacsync.catalog.links import (
    INDEX_PATH,
    PAGES_FOLDER,
    PARQUET_PATH,
    Links,
    catalog_path,
    collection_path,
    item_path,
    pages_folder,
    thumbnail_path,
)
from stacsync.catalog.titles import fill_item_title
from stacsync.core.checksum import sha256_hex
from stacsync.core.records import AssetMeta

if TYPE_CHECKING:
    from stacsync.catalog.item_render import Offload
    from stacsync.catalog.layout import Layout
    from stacsync.config.settings import CollectionConfig, Settings
    from stacsync.core.summary import PassSummary
    from stacsync.manifest.db import Manifest
    from stacsync.publish.base import Output
    from stacsync.sources import Source

log = logging.getLogger(__name__)

COMMIT_BATCH = 200
# Extracted records kept for items still waiting for files (~30 KB a raster with a full
# footprint): an item whose files are spread over the tree must not keep every record of the
# pass until it completes; past this, the oldest are dropped and parsed from the manifest.
FRESH_RECORDS = 2 * COMMIT_BATCH

# The shape of what the model writes from the same manifest rows, part of the pass's layout
# fingerprint: a new value has the next pass re-render every item once (an item whose bytes
# come out the same is not rewritten). 2: objects built through pystac, in its key order.
# 3: titled links; footprints rounded outward (they cover the data), bbox = their bounds.
ITEM_FORMAT = 3


class Renderer:
    """Renders and publishes the dirty part of the catalog after a pass's commits."""

    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        output: Output,
        layout: Layout,
        source: Source,
    ):
        self.settings = settings
        self.db = manifest
        self.output = output
        self.layout = layout
        self.source = source
        self.links = Links(settings.public_url)
        self.collections = {c.id: c for c in settings.collections}
        self._rendered_early = False  # render_ready changed the disk
        self._failed: set[tuple[str, str]] = set()  # tried once this pass: next pass again
        self._code = ""  # the code stamp pages are rendered under, read once they are
        # Files this pass just extracted, by path: their item renders from these instead of
        # parsing the meta_json just written from them (~0.2 ms a file). Dropped once used.
        self._fresh: dict[str, AssetMeta] = {}
        self.thumbnails = ItemThumbnails(settings, manifest, output, source)

    def render(self, summary: PassSummary, settings_changed: bool = True) -> None:
        """Render dirty items, then the files that summarise them when anything changed.

        Collections and the catalog are re-rendered (and written if their bytes differ) only
        when items changed, the settings that shape them changed, or a file is missing: a
        collection lists every item, so rendering it is work proportional to the catalog.
        """
        self._mark_missing_items_dirty()
        dirty = [key for key in self.db.dirty_items() if key not in self._failed]
        touched = self._render_items(dirty, summary) or self._rendered_early
        if touched or settings_changed or self._summary_file_missing():
            self._render_collections(summary)
            summary.catalog_written = self._render_catalog()
        summary.index_written = self._render_index(force=touched)
        self._render_parquet(force=summary.index_written)
        self._fresh.clear()  # files whose item was not rendered (an error, a clash)

    def _summary_file_missing(self) -> bool:
        paths = [catalog_path(), *map(collection_path, self.collections)]
        return not all(self.output.exists(p) for p in paths)

    # -- items ---------------------------------------------------------------------------

    def _mark_missing_items_dirty(self) -> None:
        """Someone deleted an item file by hand, or a crash beat the write: redo it."""
        missing = [
            (cid, iid)
            for cid, iid, digest in self.db.item_hashes()
            if digest is not None and not self.output.exists(item_path(cid, iid))
        ]
        if missing:
            with self.db.transaction():
                for cid, iid in missing:
                    self.db.mark_item_dirty(cid, iid)

    def render_ready(
        self,
        items: list[tuple[str, str]],
        summary: PassSummary,
        offload: Offload | None = None,
        committed: dict[str, AssetMeta] | None = None,
    ) -> None:
        """Render items whose files are all committed, while the pass still extracts others
        (a first build overlaps the two), their bytes made by `offload` (the pass's worker
        processes) when given; `render` then finishes the rest. `committed`: what the files
        just committed were extracted as (what their manifest rows now hold)."""
        self._fresh.update(committed or {})
        self._rendered_early |= self._render_items(items, summary, offload)
        for path in list(self._fresh)[: max(0, len(self._fresh) - FRESH_RECORDS)]:
            del self._fresh[path]  # the oldest first: dicts keep insertion order

    def _render_items(
        self, dirty: list[tuple[str, str]], summary: PassSummary, offload: Offload | None = None
    ) -> bool:
        from stacsync.catalog.item_render import render_all

        changed = False
        for start in range(0, len(dirty), COMMIT_BATCH):
            # The batch's files are durable (one sync) before the transaction records them.
            with self.db.transaction(), self.output.batch():
                prepared = {}
                for cid, iid in dirty[start : start + COMMIT_BATCH]:
                    try:
                        job = self._item_job(cid, iid)
                    except Exception:
                        # The item stays dirty and is tried again next pass; the rest goes on.
                        log.exception("cannot render item %s/%s", cid, iid)
                        self._failed_once(cid, iid, summary)
                        continue
                    if job is None:
                        changed |= self._delete_item(cid, iid, summary)
                    else:
                        prepared[cid, iid] = job
                done = render_all([job for job, _ in prepared.values()], offload)
                for ((cid, iid), (_, thumbnail)), rendered in zip(
                    prepared.items(), done, strict=True
                ):
                    if isinstance(rendered, str):
                        log.error("cannot render item %s/%s:\n%s", cid, iid, rendered)
                        self._failed_once(cid, iid, summary)
                        continue
                    try:
                        changed |= self._store_item(cid, iid, rendered, thumbnail, summary)
                    except Exception:
                        log.exception("cannot write item %s/%s", cid, iid)
                        self._failed_once(cid, iid, summary)
        return changed

    def _failed_once(self, cid: str, iid: str, summary: PassSummary) -> None:
        """The item stays dirty and is tried again next pass, not again in this one."""
        self._failed.add((cid, iid))
        summary.render_errors += 1

    def _item_job(self, cid: str, iid: str) -> tuple[Any, Any] | None:
        """(ItemJob, the thumbnail it shows) from the manifest; None: the item is gone."""
        rows = self.db.item_files(cid, iid)
        collection = self.collections.get(cid)
        if not rows or collection is None:
            return None
        from stacsync.catalog import plain_assets
        from stacsync.catalog.item_render import ItemJob

        item_input = self._item_input(collection, iid, rows)
        thumbnail = self.thumbnails.shown(rows, item_input.assets)
        item_input = dataclasses.replace(item_input, thumbnail=thumbnail is not None)
        item_input, plain = plain_assets.split_plain(item_input)  # a PNG is published as it is
        return ItemJob(item_input, plain, self.settings.public_url), thumbnail

    def _delete_item(self, cid: str, iid: str, summary: PassSummary) -> bool:
        relpath = item_path(cid, iid)
        existed = self.db.item_hash(cid, iid) is not None or self.output.exists(relpath)
        self.output.delete(relpath)
        self.thumbnails.drop(thumbnail_path(cid, iid))
        self.db.delete_item(cid, iid)
        self._summaries_stale(cid)
        summary.items_deleted += int(existed)
        return existed

    def _store_item(
        self, cid: str, iid: str, rendered: Any, thumbnail: Any, summary: PassSummary
    ) -> bool:
        """Publish a rendered item if its bytes changed and record it. True if the disk did."""
        relpath = item_path(cid, iid)
        # The PNG first, so that no published item points at one that is not there yet.
        self.thumbnails.publish(thumbnail_path(cid, iid), thumbnail)
        written = False
        if rendered.digest != self.db.item_hash(cid, iid) or not self.output.exists(relpath):
            self.output.write(relpath, rendered.data)
            summary.items_written += 1
            written = True
        if rendered.facts != self.db.item_digest(cid, iid):
            self._summaries_stale(cid)  # in this transaction: a crash cannot lose it
        west, south, east, north = rendered.bbox
        self.db.store_item(
            cid,
            iid,
            {
                "json": rendered.data.decode("utf-8"),
                "json_hash": rendered.digest,
                "feature": rendered.feature,
                "digest": rendered.facts,
                "west": west,
                "south": south,
                "east": east,
                "north": north,
                "start_datetime": rendered.start,
                "end_datetime": rendered.end,
            },
        )
        return written

    def _item_input(self, collection: CollectionConfig, iid: str, rows: list) -> Any:
        from stacsync.catalog import items

        assets = []
        metas = []
        for row in rows:
            meta = self._fresh.pop(row["path"], None) or AssetMeta.from_json(row["meta_json"])
            metas.append(meta)
            address = self.source.local_path(row["path"])
            href = rewrite_href(self.settings, address)
            assets.append(
                items.AssetInput(
                    key=row["asset_key"],
                    href=href,
                    alternate=alternate_hrefs(self.settings, address, href),
                    title=collection.asset_titles.get(row["asset_key"]),
                    size=row["size"],
                    checksum=row["checksum"],
                    meta=meta,
                )
            )
        placement = self.layout.place(rows[0]["path"])
        table_datetime = placement.datetime if placement else None
        properties = dict(collection.properties)
        if placement:
            properties.update(placement.properties)
        when = _item_datetime(table_datetime, metas, collection, rows)
        title = fill_item_title(
            collection.item_title, iid, when, collection.title or collection.id, properties
        )
        return items.ItemInput(
            collection_id=collection.id,
            item_id=iid,
            datetime=when,
            properties=properties,
            assets=tuple(assets),
            pc_type=collection.pc_type,
            title=title,
            catalog_title=self._catalog_title(),
            collection_title=collection.title or collection.id,
        )

    def _catalog_title(self) -> str:
        return self.settings.catalog_title or self.settings.catalog_id

    # -- collections, catalog, index -----------------------------------------------------

    def _render_collections(self, summary: PassSummary) -> None:
        from stacsync.catalog.collections import collection_listing, render_collection
        from stacsync.catalog.model import dumps
        from stacsync.catalog.pages import page_tree

        for cid in self.collections:
            c = collection_input(self.settings, self.db, cid, self._items_summary(cid))
            tree = page_tree(c.item_ids)
            # Pages first: the collection links to them, and links must not lead nowhere.
            self._publish_pages(collection_listing(c), tree)
            doc = render_collection(c, self.links, tree)
            summary.collections_written += int(self._publish(collection_path(cid), dumps(doc)))
        self._drop_unconfigured_collections()

    def _publish_pages(self, listed: Any, tree: list[Any]) -> None:
        """Write the owner's pages whose inputs or bytes changed; remove those it no longer has."""
        from stacsync.catalog.model import dumps
        from stacsync.catalog.pages import render_pages
        from stacsync.manifest.witness import code_stamp

        stored = self.db.written_inputs(pages_folder(listed.owner_path))

        def kept(path: str, inputs: str) -> bool:
            return stored.get(path) == inputs and self.output.exists(path)

        self._code = self._code or code_stamp()
        pages: set[str] = set()
        files: dict[str, bytes] = {}
        inputs: dict[str, str] = {}
        for path, made_of, doc in render_pages(listed, tree, self.links, self._code, kept):
            pages.add(path)
            if doc is not None:
                files[path], inputs[path] = dumps(doc), made_of
            if len(files) >= COMMIT_BATCH:  # a batch at a time: memory stays bounded
                self._publish_all(files, inputs)
                files, inputs = {}, {}
        self._publish_all(files, inputs)
        for path in stored:
            if path not in pages:
                self.output.delete(path)
                with self.db.transaction():
                    self.db.set_written_hash(path, None)

    def _items_summary(self, cid: str) -> Any:
        """The collection's summaries and item_assets: recomputed over every item's digest only
        when a digest changed or an item came or went since they were last computed."""
        cached = self.db.state.collection_summaries(cid)
        if cached is not None:
            return summaries.ItemsSummary(**json.loads(cached))
        found = summaries.summarise_items(stored_digests(self.db, cid))
        with self.db.transaction():
            # Not sort_keys: the cached mappings must come back in the order they render in.
            self.db.state.set_collection_summaries(cid, json.dumps(dataclasses.asdict(found)))
        return found

    def _summaries_stale(self, cid: str) -> None:
        self.db.state.mark_summaries_stale(cid)

    def _drop_unconfigured_collections(self) -> None:
        for path in self.db.written_paths():
            # Written paths are relative and normalised: a split, not a PurePosixPath for each
            # of the catalog's files (~9 us apiece) on every pass.
            parts = path.split("/")
            if parts[0] not in self.collections and (
                (len(parts) == 2 and parts[1] == "collection.json")
                or (len(parts) > 2 and parts[1] == PAGES_FOLDER)  # its pages
            ):
                self.output.delete(path)
                with self.db.transaction():
                    self.db.set_written_hash(path, None)

    def _render_catalog(self) -> bool:
        from stacsync.catalog.collections import CatalogInput, catalog_listing, render_catalog
        from stacsync.catalog.model import dumps
        from stacsync.catalog.pages import page_tree

        c = CatalogInput(
            id=self.settings.catalog_id,
            title=self.settings.catalog_title,
            description=self.settings.catalog_description,
            collection_ids=tuple(sorted(self.collections)),
            collection_titles={cid: c.title for cid, c in self.collections.items() if c.title},
        )
        tree = page_tree(c.collection_ids)
        self._publish_pages(catalog_listing(c), tree)
        return self._publish(catalog_path(), dumps(render_catalog(c, self.links, tree)))

    def _publish(self, relpath: str, data: bytes) -> bool:
        """Write a non-item catalog file if its bytes changed or it is missing."""
        return bool(self._publish_all({relpath: data}))

    def _publish_all(self, files: dict[str, bytes], inputs: dict[str, str] | None = None) -> int:
        """`_publish` for many files (a collection's pages): made durable and recorded together,
        each with its inputs when given (a page written as they make it need not be rendered)."""
        inputs = inputs or {}
        changed, same = {}, {}
        for relpath, data in files.items():
            digest = sha256_hex(data)
            if digest != self.db.written_hash(relpath) or not self.output.exists(relpath):
                changed[relpath] = digest
            elif relpath in inputs:
                same[relpath] = digest  # the bytes on disk, from inputs not yet recorded
        if same:
            with self.db.transaction():
                for relpath, digest in same.items():
                    self.db.set_written_hash(relpath, digest, inputs[relpath])
        if not changed:
            return 0
        with self.db.transaction(), self.output.batch():
            for relpath, digest in changed.items():
                self.output.write(relpath, files[relpath])
                self.db.set_written_hash(relpath, digest, inputs.get(relpath))
        return len(changed)

    def _render_index(self, force: bool) -> bool:
        """Stream index.geojson from the stored item JSON when any item changed."""
        path = INDEX_PATH
        if not force and self.db.written_hash(path) and self.output.exists(path):
            return False
        from stacsync.catalog.index import write_index

        hasher = _HashingWriter()
        with self.output.open_atomic(path) as out:
            hasher.target = out
            write_index(self._feature_lines(), hasher)
        with self.db.transaction():
            self.db.set_written_hash(path, hasher.hexdigest())
        return True

    def _render_parquet(self, force: bool) -> bool:
        """Write items.parquet when the index was written or it is missing; True if written.

        Switched off, a file this stacsync wrote is removed rather than left to go stale.
        """
        path = PARQUET_PATH
        if not self.settings.geoparquet:
            if self.db.written_hash(path) is not None:
                self.output.delete(path)
                with self.db.transaction():
                    self.db.set_written_hash(path, None)
            return False
        if not force and self.db.written_hash(path) and self.output.exists(path):
            return False
        return self._write_parquet(path)

    def _write_parquet(self, path: str) -> bool:
        from stacsync.catalog.geoparquet import GeoParquetError, write_items_parquet

        hasher = _HashingWriter()
        try:
            with self.output.open_atomic(path) as out:
                hasher.target = out
                written = write_items_parquet(self.db.iter_item_texts(), hasher)  # items as written
        except GeoParquetError as exc:
            # An optional copy of what the catalog already says: keep the last good file
            # (open_atomic dropped the partial one) and let the pass finish.
            log.warning("%s not updated, the previous file (if any) is kept: %s", path, exc)
            return False
        with self.db.transaction():
            self.db.set_written_hash(path, hasher.hexdigest())
        log.info("wrote %s (%d items)", path, written.items)
        return True

    def _feature_lines(self):
        from stacsync.catalog.model import feature_line

        for _cid, _iid, line, text in self.db.iter_index_features():
            yield line or feature_line(self._index_feature(json.loads(text)))

    def _index_feature(self, item: dict[str, Any]) -> dict[str, Any]:
        from stacsync.catalog import index

        href = self.links.href(INDEX_PATH, item_path(item["collection"], item["id"]))
        return index.index_feature(item, href)


class _HashingWriter:
    """A write-only binary file that hashes what passes through it."""

    def __init__(self) -> None:
        import hashlib

        self._hash = hashlib.sha256()
        self.target: Any = None

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return self.target.write(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _item_datetime(
    table_datetime: str | None, metas: list[AssetMeta], collection: CollectionConfig, rows: list
) -> str:
    """Table, then the files' own dates, then the configured default, then the files' mtime.

    Never "now". The last fallback is the newest modification time at which a file's content
    last changed, so touching a file (same bytes, new mtime) does not change its item.
    """
    if table_datetime:
        return table_datetime
    own = sorted(m.datetime for m in metas if m.datetime)
    if own:
        return own[0]
    if collection.default_datetime:
        return collection.default_datetime
    newest = max(row["content_mtime_ns"] for row in rows)
    stamp = datetime.fromtimestamp(newest / 1e9, tz=UTC).replace(microsecond=0)
    return stamp.isoformat().replace("+00:00", "Z")
