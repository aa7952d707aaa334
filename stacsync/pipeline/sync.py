"""One pass: list the source, diff with the manifest, extract what changed, commit, render, publish.

`rescan` is the entry point for the CLI and for notebooks; `SyncPass` is the machinery.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from stacsync.catalog.layout import Layout, Placement
from stacsync.catalog.render import ITEM_FORMAT, Renderer
from stacsync.config.load import load_settings, quick_settings
from stacsync.config.settings import Settings
from stacsync.core.errors import SourceUnavailableError, StacsyncError
from stacsync.core.names import display
from stacsync.core.records import FileState, SourceEntry
from stacsync.core.summary import PassSummary
from stacsync.keeper.tell import Keeper
from stacsync.manifest.db import Manifest
from stacsync.manifest.rows import FileRow, now_iso, wall_clock_ns
from stacsync.pipeline.api_push import push_api
from stacsync.pipeline.assemble import make_output, make_parent_store, make_source
from stacsync.pipeline.examine import Examiner, Result, Work, file_name
from stacsync.pipeline.extraction import choose_extraction
from stacsync.pipeline.item_tables import fetch_all_tables
from stacsync.pipeline.plan import WorkPlan
from stacsync.pipeline.ready import extracted
from stacsync.pipeline.thumbnails import kept_thumbnail
from stacsync.publish.base import Output
from stacsync.sources import Listing, Source
from stacsync.sources.include import is_included

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]
"""progress(phase, done, total): called from the pass's thread as work completes."""

# A file whose mtime is this close to the moment we stat it may change again within the
# same timestamp tick; it is re-checked next pass (the "racy git" problem).
RACY_WINDOW_NS = 2_000_000_000
COMMIT_BATCH = 200


def rescan(
    config: Settings | str | os.PathLike | None = None,
    *,
    source: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    public_url: str | None = None,
    min_files: int | None = None,
    progress: ProgressFn | None = None,
    endpoint_url: str | None = None,
    anonymous: bool = False,
    scheduler: str | None = None,
) -> PassSummary:
    """Run one full pass and return its summary.

    Give either a config (a `Settings` or the path of a TOML file), or the quick form:
    `source`, `output` and `manifest` (one collection, one item per file; `min_files` as
    `source.min_files`; an `s3://bucket/prefix/` source with `endpoint_url` and
    `anonymous`); `scheduler` (a Dask scheduler) wins over `[scale] scheduler`. Per-file problems
    are recorded in the manifest and counted in the summary; a `StacsyncError` means the pass could
    not run at all (bad config, unwritable output, manifest locked, a source that cannot be listed
    or lists too few files).

    >>> summary = rescan(source="drone", output="catalog", manifest="stacsync.db")
    >>> summary.items_written
    """
    quick = {"endpoint_url": endpoint_url, "anonymous": anonymous}
    settings = _settings(config, source, output, manifest, public_url, min_files, quick)
    settings = dataclasses.replace(settings, scheduler=scheduler or settings.scheduler)
    with Manifest.open_writer(settings.manifest_path, purpose="stacsync rescan") as db:
        return SyncPass(settings, db, progress=progress).run()


def _settings(config, source, output, manifest, public_url, min_files, quick) -> Settings:
    if isinstance(config, Settings):
        return config
    if config is not None:
        return load_settings(Path(config))
    if source is None or output is None or manifest is None:
        raise StacsyncError("give a config file, or all of source, output and manifest")
    # An s3:// URL stays a string: a Path would fold its "//".
    where = source if str(source).startswith("s3:") else Path(source)
    return quick_settings(where, Path(output), Path(manifest), public_url, min_files, **quick)


class SyncPass:
    """The pass machinery, bound to one settings object, manifest, source and output."""

    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        *,
        source: Source | None = None,
        output: Output | None = None,
        progress: ProgressFn | None = None,
    ):
        self.settings = settings
        self.db = manifest
        self.layout = Layout(settings)
        self.output = output or make_output(settings)
        self.source = source or make_source(settings)
        self.progress = progress or (lambda phase, done, total: None)
        self.collections = {c.id: c for c in settings.collections}
        self.examiner = Examiner(settings, self.source)

    # -- the pass ------------------------------------------------------------------------

    def run(self, paths: Iterable[str] | None = None) -> PassSummary:
        """A full pass, or with `paths` one that looks only at those files (event hints).

        A path in `paths` that no longer exists is treated as removed; nothing outside
        `paths` is listed, diffed or removed.
        """
        started = time.monotonic()
        # Listed before anything is written: a source that cannot be trusted changes nothing.
        listing = self.source.list() if paths is None else self._stat_only(paths)
        if paths is None:
            self._check_source(listing)
        self.output.check_writable()
        self.output.make_public(self.settings)  # as the settings ask; it looks before it sets
        if self.db.last_pass_unfinished():
            self.output.sweep_temp_files()
        summary = PassSummary(output=self.settings.output_label)
        pass_id = self.db.begin_pass()
        keeper = Keeper(self.settings, self.db, make_parent_store(self.settings, self.output))
        keeper.before()
        summary.listing_problems = [*fetch_all_tables(self, listing), *listing.problems]
        with self.db.transaction():
            self.db.set_skipped(listing.skipped, scope=listing.scope)
        self.progress("list", len(listing.entries), len(listing.entries))
        rows = self.db.file_rows()
        layout_changed = self._refresh_layout_if_changed(rows)
        if layout_changed:
            rows = self.db.file_rows()
        self.listed = listing.facts()  # what pipeline.witness vouches for after the pass
        plan = self._diff(listing, rows, summary)
        del listing, rows  # a first build's biggest objects: the plan holds what it needs
        renderer = Renderer(self.settings, self.db, self.output, self.layout, self.source)
        self._process(plan, summary, renderer)
        shaping = self._render_fingerprint()
        settings_changed = self.db.state.render_fingerprint != shaping
        renderer.render(summary, settings_changed=settings_changed)
        if settings_changed:
            with self.db.transaction():  # only once rendered: a crash before must redo it
                self.db.state.render_fingerprint = shaping
        push_api(self.settings, self.db)  # after the static catalog; a down API waits a pass
        summary.errors, summary.files_without_rows = self.db.error_and_problem_counts()
        summary.table_rows_without_files = self._unused_rows(  # a path joins a row, not bytes
            fresh=layout_changed or bool(summary.added or summary.removed)
        )
        keeper.after(summary)
        summary.seconds = round(time.monotonic() - started, 3)
        self.db.finish_pass(pass_id, summary.to_dict())
        log.info(summary.log_line())
        return summary

    def _check_source(self, listing: Listing) -> None:
        """Refuse a full listing that failed at the root or found too few files to trust.

        An unmounted mount point or a mistyped path lists nothing: taken at its word, the pass
        would delete every item. Instead nothing is written and the catalog stays as it is.
        """
        where = self.settings.source_label
        if "" in listing.failed_dirs:
            reasons = "; ".join(listing.problems) or f"source {where} cannot be listed"
            raise SourceUnavailableError(f"{reasons}; nothing was written")
        wanted = self.settings.min_files
        if listing.listed() < wanted:
            raise SourceUnavailableError(
                f"source {where}: lists {listing.listed()} matching files, fewer than "
                f"source.min_files = {wanted} (is it mounted? is the path right?); nothing was "
                "written. Set source.min_files = 0 (or --min-files 0) if the source may be empty."
            )

    def _stat_only(self, paths: Iterable[str]) -> Listing:
        scope = frozenset(paths)
        listing = Listing(scope=scope)
        for path in sorted(scope):
            try:
                entry = self.source.stat(path)
            except OSError as exc:
                # Unknown state is not absence: keep the file, say why.
                listing.failed_dirs.append(path)
                listing.problems.append(f"{path}: cannot stat: {exc.strerror or exc}")
                continue
            if entry is not None and is_included(self.settings, path):
                listing.entries[path] = entry
        return listing

    # -- diff ----------------------------------------------------------------------------

    def _diff(self, listing: Listing, rows: dict[str, FileRow], summary: PassSummary) -> WorkPlan:
        """Sort every listed file into unchanged / deferred / work, and drop removed files."""
        now_ns = wall_clock_ns()
        settle_ns = int(self.settings.settle_seconds * 1e9)
        plan = WorkPlan(lambda entry: self._work(entry, self.layout.place(entry.path), None))
        touched: list[SourceEntry] = []
        unseen = set(rows)  # known files the listing does not hold (it has no index of paths)
        for path, entry in listing.entries.items():
            old = rows.get(path)
            if old is not None:
                unseen.discard(path)
            if settle_ns and entry.mtime_ns > now_ns - settle_ns:
                summary.deferred += 1
                continue
            if old is not None and old.same_version(entry):
                # The store says these are the same bytes: nothing to read, whatever the mtime.
                if entry.mtime_ns != old.mtime_ns:
                    touched.append(entry)
                else:
                    summary.unchanged += 1
                continue
            if old is not None and not old.needs_look(entry, RACY_WINDOW_NS):
                summary.unchanged += 1
                continue
            if self._checksum_decides(old, entry):
                # Most such files turn out touched: place them (which may read a metadata
                # table) only once the checksum says their content changed.
                crs = self.collections[old.collection_id].crs
                plan.add(Work(entry, None, old, crs, checksum_first=True))
                continue
            placement = self.layout.place(path)
            if placement is None:
                self._record_unmatched(entry, old, now_ns, summary)
                continue
            if not placement.placed:
                self._record_unplaced(entry, placement, old, summary)
                continue
            plan.add(self._work(entry, placement, old))
        if touched:
            with self.db.transaction():
                for entry in touched:
                    self.db.update_stat(entry.path, entry.mtime_ns, now_ns, entry.etag)
            summary.touched += len(touched)
        self._remove_missing(listing, unseen, rows, summary)
        plan.finish(self.db)
        return plan

    def _checksum_decides(self, old: FileRow | None, entry: SourceEntry) -> bool:
        """A known good file with a stored checksum: its checksum says touched or modified.

        Not an object whose version token changed: the store already says it was rewritten.
        """
        return (
            entry.etag is None
            and old is not None
            and old.status == FileState.OK
            and old.checksum is not None
            and old.collection_id in self.collections
            and self.settings.checksum != "none"
        )

    def _work(self, entry: SourceEntry, placement: Placement | None, old: FileRow | None) -> Work:
        if placement is None or not placement.placed:  # placed again, as the diff placed it
            raise RuntimeError(f"{display(entry.path)}: its placement changed during the pass")
        collection = self.collections[placement.collection_id]
        return Work(entry, placement, old, collection.crs, checksum_first=False)

    def _record_unmatched(
        self, entry: SourceEntry, old: FileRow | None, now_ns: int, summary: PassSummary
    ) -> None:
        summary.unmatched += 1
        with self.db.transaction():
            if old is not None and old.item_id:
                self.db.mark_item_dirty(old.collection_id, old.item_id)
            self.db.upsert_file(
                {
                    "path": entry.path,
                    "size": entry.size,
                    "mtime_ns": entry.mtime_ns,
                    "status": FileState.UNMATCHED.value,
                    "collection_id": None,
                    "item_id": None,
                    "asset_key": None,
                    "meta_json": None,
                    "error": None,
                    "problem": None,
                    "scanned_ns": now_ns,
                }
            )

    def _record_unplaced(
        self, entry: SourceEntry, placement: Placement, old: FileRow | None, summary: PassSummary
    ) -> None:
        """A file whose item id must come from a missing table row: an error, not extracted."""
        message = f"{file_name(entry.path)}: {placement.problem}"
        result = Result(
            Work(entry, placement, old, None, False), None, None, message, False, extracted=True
        )
        self._commit([result], summary)

    def _remove_missing(
        self, listing: Listing, unseen: set[str], rows: dict[str, FileRow], summary: PassSummary
    ) -> None:
        gone = [p for p in rows if p in unseen and listing.covers(p)]
        with self.db.transaction():
            for path in gone:
                old = rows[path]
                if old.item_id:
                    self.db.mark_item_dirty(old.collection_id, old.item_id)
                self.db.delete_file(path)
        summary.removed += sum(1 for p in gone if rows[p].status != FileState.UNMATCHED)

    # -- checksum + extract, in worker threads; commits on this thread ------------------

    def _process(self, plan: WorkPlan, summary: PassSummary, renderer: Renderer) -> None:
        """Examine the work, commit results in batches, and render each item as soon as all
        its files are committed, while the workers go on with the rest."""
        if not plan:
            return
        total = len(plan)
        batch: list[Result] = []

        def commit() -> None:
            self._commit(batch, summary)
            ready = plan.ready.done(batch)
            renderer.render_ready(ready, summary, extraction.offload, extracted(batch))

        with choose_extraction(self.settings, self.source, self.examiner, plan) as extraction:
            for done, result in enumerate(extraction.results(plan.handed_over()), start=1):
                batch.append(result)
                if len(batch) >= COMMIT_BATCH:
                    commit()
                    batch = []
                self.progress("extract", done, total)
            commit()

    def _commit(self, batch: list[Result], summary: PassSummary) -> None:
        scanned_ns = wall_clock_ns()
        with self.db.transaction():
            for result in batch:
                self._commit_one(result, summary, scanned_ns)

    def _commit_one(self, result: Result, summary: PassSummary, scanned_ns: int) -> None:
        work, entry, old = result.work, result.work.entry, result.work.old
        if not result.extracted:
            # Same bytes. A racy re-check (same size and mtime) is not a touch.
            if entry.mtime_ns == old.mtime_ns:
                summary.unchanged += 1
            else:
                summary.touched += 1
            self.db.update_stat(entry.path, entry.mtime_ns, scanned_ns, entry.etag)
            return
        if old is None:
            summary.added += 1
        else:
            summary.modified += 1
        p = work.placement or self._place_known(old)
        status, error = FileState.OK, result.error
        if error is None:
            owner = self.db.asset_slot_owner(p.collection_id, p.item_id, p.asset_key)
            if owner is not None and owner != entry.path:
                error = (
                    f"{file_name(entry.path)}: same item {p.item_id!r} and asset key "
                    f"{p.asset_key!r} as {owner}; rename one or change the collection's match"
                )
        if error is not None:
            status = FileState.ERROR
            if old is None or old.status != FileState.ERROR:
                summary.new_errors += 1
            log.warning("%s (%s)", error, display(entry.path))
        if old is not None and old.item_id:
            self.db.mark_item_dirty(old.collection_id, old.item_id)
        if p.item_id:
            self.db.mark_item_dirty(p.collection_id, p.item_id)
        self.db.upsert_file(
            {
                "path": entry.path,
                "size": entry.size,
                "mtime_ns": entry.mtime_ns,
                "content_mtime_ns": entry.mtime_ns,
                "checksum": result.checksum,
                "etag": entry.etag,
                "status": status.value,
                "collection_id": p.collection_id,
                "item_id": p.item_id or None,
                "asset_key": p.asset_key,
                "meta_json": result.meta.to_json() if result.meta else None,
                "error": error,
                "error_transient": int(result.transient),
                "error_since": now_iso() if error else None,
                "problem": p.problem,
                "table_key": p.table_key,
                "scanned_ns": scanned_ns,
            }
        )
        # A thumbnail is made only by an extraction, i.e. when the file changed: replace the
        # old one, or drop it when there is none now (an error, a point cloud).
        ok = status == FileState.OK and result.meta is not None
        kept = kept_thumbnail(work, result.meta, self.settings.read_overviews) if ok else None
        self.db.set_thumbnail(entry.path, kept)

    def _place_known(self, old: FileRow) -> Placement:
        """Where a known file goes now; its old place if the layout disagrees mid-pass.

        The layout fingerprint was checked at the start of this pass, so a disagreement can
        only come from a table edited during the pass; the next pass re-places everything.
        """
        placement = self.layout.place(old.path)
        if placement is not None and placement.placed:
            return placement
        return Placement(old.collection_id, old.item_id, old.asset_key, None, {}, None)

    # -- config and metadata-table changes -----------------------------------------------

    def _refresh_layout_if_changed(self, rows: dict[str, FileRow]) -> bool:
        """Re-place every file when the layout or a metadata table changed since last pass.

        Placement is cheap (a regex and a table lookup), so everything is re-placed and all
        items re-rendered; items whose JSON comes out the same are not rewritten.
        """
        fingerprint = self._layout_fingerprint()
        if self.db.state.layout_fingerprint == fingerprint:
            return False
        with self.db.transaction():
            self.db.mark_all_items_dirty()
            for row in rows.values():
                self._replace(row)
            self.db.state.layout_fingerprint = fingerprint
        return True

    def _replace(self, row: FileRow) -> None:
        """Re-place one file; the caller has already marked every existing item dirty."""
        placement = self.layout.place(row.path)
        if placement is None or not placement.placed or row.status != FileState.OK:
            # Unmatched or failed files get a fresh look (a new crs or match may fix them).
            self.db.update_file(row.path, status=FileState.PENDING.value)
            return
        self.db.update_file(
            row.path,
            collection_id=placement.collection_id,
            item_id=placement.item_id or None,
            asset_key=placement.asset_key,
            problem=placement.problem,
            table_key=placement.table_key,
        )
        if placement.item_id:
            self.db.mark_item_dirty(placement.collection_id, placement.item_id)

    def _render_fingerprint(self) -> str:
        """A hash of the settings that shape collections and the catalog."""
        s = self.settings
        shaping = (s.catalog_id, s.catalog_title, s.catalog_description, s.public_url)
        return hashlib.sha256(repr((shaping, s.collections)).encode()).hexdigest()

    def _layout_fingerprint(self) -> str:
        # Only what decides where files go and what items say; not workers, settle time or
        # the catalog's title (a change there must not re-place every file).
        s = self.settings
        parts = [repr((s.source_path, s.public_url, s.href_rewrites, s.collections))]
        parts.append(f"item ids {s.item_ids}")
        parts.append(f"item format {ITEM_FORMAT}")  # what the catalog model writes for a row
        for table in self.layout.table_files():
            try:
                st = table.stat()
                parts.append(f"{table}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append(f"{table}:missing")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _unused_rows(self, fresh: bool) -> dict[str, list[str]]:
        """Table rows no file joined; recomputed only when files or tables changed.

        Reading a GeoPackage costs a GDAL import, which a no-change pass should not pay.
        """
        cached = self.db.state.unused_rows
        if cached is not None and not fresh:
            return cached
        unused = {}
        for cid in self.collections:
            rows = self.layout.unused_rows(cid, self.db.used_table_keys(cid))
            if rows:
                unused[cid] = rows
        with self.db.transaction():
            self.db.state.unused_rows = unused
        return unused
