"""A full one-shot pass that leaves a witness, so the next `stacsync rescan` can prove "no change".

A witness is left only when a next pass over the same files would change and tell nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from stacsync.catalog.links import (
    INDEX_PATH,
    PARQUET_PATH,
    catalog_path,
    collection_path,
    item_path,
)
from stacsync.config.load import load_settings
from stacsync.config.settings import Settings
from stacsync.core import tree
from stacsync.core.summary import PassSummary
from stacsync.keeper.mail import collections_to_announce
from stacsync.manifest import witness
from stacsync.manifest.db import Manifest
from stacsync.pipeline import sync
from stacsync.pipeline.assemble import make_source
from stacsync.pipeline.sync import RACY_WINDOW_NS, SyncPass
from stacsync.publish.local import LocalOutput
from stacsync.sources.local import LocalSource

log = logging.getLogger(__name__)

# Every Settings field, and why a no-change pass under it does nothing the witness misses.
# A new field fails tests/pipeline/test_leave_witness.py until it is added here, and to the
# checks of `_refuse_settings` if a pass with nothing changed may act on it.
REVIEWED_SETTINGS = {
    "source_path": "the walk's root, in the witness",
    "output_path": "the output folder, its files checked",
    "manifest_path": "where the witness is",
    "workers": "extraction only",
    "collections": "in the config bytes; remote and per-item tables refused",
    "config_path": "in the witness",
    "public_url": "in the config bytes",
    "href_rewrites": "in the config bytes",
    "include": "the walk's rules, in the witness",
    "exclude": "the walk's rules, in the witness",
    "settle_seconds": "in the witness (young files are deferred)",
    "follow_symlinks": "the walk's rule, in the witness",
    "min_files": "the witnessed listing had enough",
    "catalog_id": "in the config bytes",
    "catalog_title": "in the config bytes",
    "catalog_description": "in the config bytes",
    "item_ids": "in the config bytes",
    "checksum": "changed files only",
    "source_irods": "refused: not a local folder",
    "output_irods": "refused: not a local folder",
    "irods": "refused with iRODS",
    "parent_catalog": "refused until linked",
    "notify": "refused while a collection is unannounced",
    "read_overviews": "extraction only",
    "remote_threads": "extraction only",
    "verify_border": "extraction only",
    "scheduler": "refused: a pass may reach the scheduler",
    "batch_files": "extraction only",
    "geoparquet": "refused: its check needs the loader",
    "source_s3": "refused: not a local folder",
    "output_s3": "refused: not a local folder",
    "daemon": "`stacsync run` only",
    "stac_api": "refused: a pass pushes to the API",
}


# What a pass that found nothing to do reports, but for what stays true of the catalog.
_STILL_TRUE = ("unchanged", "errors", "files_without_rows", "table_rows_without_files", "output")
_NOTHING_DONE = {
    k: v for k, v in PassSummary().to_dict().items() if k not in (*_STILL_TRUE, "seconds")
}


class _NoWitness(Exception):
    """Why this pass leaves no witness (logged at debug level)."""


def rescan(config: Settings | str | os.PathLike | None = None, **kwargs: Any) -> PassSummary:
    """`pipeline.sync.rescan`, leaving a witness after a pass over a config file alone.

    The quick form, a `Settings` object, or any option beyond `progress` runs a plain pass.
    """
    extra = {k: v for k, v in kwargs.items() if k != "progress" and v not in (None, False)}
    if config is None or isinstance(config, Settings) or extra:
        return sync.rescan(config, **kwargs)
    path = Path(os.path.expanduser(config)).absolute()
    before = _Inputs.read(path)  # before loading: what the pass runs under, not what came after
    settings = load_settings(path)
    try:
        with Manifest.open_writer(settings.manifest_path, purpose="stacsync rescan") as db:
            source, recorder = _recorded_source(settings)  # as SyncPass makes it: after the lock
            full = SyncPass(settings, db, source=source, progress=kwargs.get("progress"))
            summary = full.run()
            leave_witness(full, summary, before, recorder)
    finally:
        tree.forget_walk()  # what cli.fast walked served this pass's listing, once
    return summary


def _recorded_source(settings: Settings) -> tuple[Any, tree.Recorder | None]:
    """The pass's source; a local folder's walk keeps what it listed, for the witness."""
    source = make_source(settings)
    if type(source) is not LocalSource:
        return source, None
    recorder = tree.Recorder(str(source.root))
    return LocalSource.for_settings(settings, scandir=recorder.scandir), recorder


class _Inputs:
    """The config's bytes and the code, read before the pass and again once it is done."""

    def __init__(self, config_path: Path, config: bytes | None, code: str):
        self.config_path = config_path
        self.config = config
        self.code = code

    @classmethod
    def read(cls, config_path: Path) -> _Inputs:
        try:
            data = config_path.read_bytes()
        except OSError:
            data = None
        return cls(config_path, data, witness.code_stamp())


def leave_witness(
    full: SyncPass, summary: PassSummary, before: _Inputs, recorder: tree.Recorder | None
) -> None:
    """Store what this finished pass saw, or drop the last witness when it cannot vouch."""
    found = witness.last_pass(full.db.conn)
    try:
        left = _build(full, summary, before, recorder)
    except _NoWitness as exc:
        log.debug("no rescan witness left: %s", exc)
        left = None
    witness.store(full.db, left, found[0] if found else None)


def _build(
    full: SyncPass, summary: PassSummary, before: _Inputs, recorder: tree.Recorder | None
) -> witness.Witness:
    s, db = full.settings, full.db
    _refuse_settings(full)
    if recorder is None:
        raise _NoWitness("the source is not a local folder")
    listed = getattr(full, "listed", None)
    if listed is None or not listed.full:
        raise _NoWitness("not a full listing")
    if not listed.clean or summary.listing_problems:
        raise _NoWitness("the listing reported problems (they are reported again each pass)")
    # Only a pass that found nothing to do vouches: the next is then its twin, summary and all.
    # (After a change the next full pass leaves the witness; changed passes pay nothing for it.)
    no_change = summary.to_dict()
    del no_change["seconds"]
    if no_change != _NOTHING_DONE | {k: no_change[k] for k in _STILL_TRUE}:
        raise _NoWitness("the pass changed, deferred or failed to render something")
    if summary.unchanged != listed.files:
        raise _NoWitness("not every listed file was found unchanged")
    # As the next pass returns them: the stored value, in its stored order (this pass may have
    # computed them afresh, in collection order).
    no_change["table_rows_without_files"] = db.state.unused_rows
    if no_change["table_rows_without_files"] != summary.table_rows_without_files:
        raise _NoWitness("the table rows without files are not the stored ones")
    # Tables stat-ed before the fingerprint is recomputed: a table that changes in between
    # either changes the fingerprint (refused) or is seen changed by the next check.
    side_files = {str(p): witness.file_stat(p) for p in full.layout.table_files()}
    if full._layout_fingerprint() != db.state.layout_fingerprint:
        raise _NoWitness("a metadata table or the layout changed during the pass")
    if full._render_fingerprint() != db.state.render_fingerprint:
        raise _NoWitness("the render fingerprint is not the stored one")
    output_files = _output_files(full)
    config_sha = _config_digest(before)
    if _manifest_path(before) != s.manifest_path:
        raise _NoWitness("the manifest path cannot be found without the loader")
    seen = _tree(recorder)
    facts = _manifest_facts(db, summary, listed.files)
    return witness.Witness(
        config_path=str(before.config_path),
        config_sha256=config_sha,
        home=os.environ.get("HOME"),
        code=before.code,
        manifest_path=str(s.manifest_path),
        source_root=recorder.root,
        tree_entries=seen.entries,
        tree_sha256=seen.hexdigest(),
        unwalked=seen.unwalked(),
        newest_mtime_ns=listed.newest_mtime_ns,
        settle_ns=int(s.settle_seconds * 1e9),
        side_files=side_files,
        output_root=str(full.output.root),
        output_files=output_files,
        summary=no_change,
        summary_json=witness.summary_json_parts(no_change),
        manifest=facts,
        racy_window_ns=RACY_WINDOW_NS,
    )


def _tree(recorder: tree.Recorder) -> tree.TreeDigest:
    """The digest of what the pass's walk listed, and the folders it saw but did not walk."""
    try:
        found = recorder.result()
    except OSError as exc:
        raise _NoWitness(f"the source changed during the pass ({exc})") from None
    if found is None:
        raise _NoWitness("a symbolic link in the source")
    return found


def _refuse_settings(full: SyncPass) -> None:
    """Refuse what a no-change pass may still act on, or what only the loader can check."""
    s, db = full.settings, full.db
    if s.config_path is None:
        raise _NoWitness("no config file")
    if type(full.source) is not LocalSource or type(full.output) is not LocalOutput:
        raise _NoWitness("the source or the output is not a local folder")
    if s.geoparquet or s.scheduler or s.stac_api is not None:
        raise _NoWitness("geoparquet, a scheduler or a STAC API is configured")
    for c in s.collections:
        if c.table is not None and (c.table.source_relpath is not None or c.table.per_item):
            raise _NoWitness(f"collection {c.id}: a fetched or per-item table")
    if s.parent_catalog is not None and db.state.linked_parent != s.parent_catalog:
        raise _NoWitness("the parent catalog is not linked yet")
    if s.notify is not None and collections_to_announce(
        db.published_collections(), db.state.announced_collections
    ):
        raise _NoWitness("a collection is not announced yet")


def _manifest_facts(db: Manifest, summary: PassSummary, listed: int) -> witness.ManifestFacts:
    """The manifest as the next pass would find it, if that pass is to find nothing to do."""
    facts = witness.facts_of(db.conn, RACY_WINDOW_NS)
    # The next pass's diff: every listed file has its row, and none needs a look again.
    if facts.files != listed or facts.needing_look:
        raise _NoWitness("files unlisted, pending, in transient error or in the racy window")
    if facts.dirty_items or facts.skipped:
        raise _NoWitness("dirty items or skipped paths")
    if (facts.errors, facts.with_problems) != (summary.errors, summary.files_without_rows):
        raise _NoWitness("the manifest changed after the pass counted it")
    return facts


def _output_files(full: SyncPass) -> tuple[str, ...]:
    """What `Renderer.render` re-renders when missing: items, collections, catalog, index."""
    db = full.db
    if db.written_hash(INDEX_PATH) is None or db.written_hash(PARQUET_PATH) is not None:
        raise _NoWitness("the index or items.parquet is not as a finished pass leaves it")
    items = [item_path(cid, iid) for cid, iid, digest in db.item_hashes() if digest is not None]
    # Not checked here: the fast path looks for each of them every time.
    return (
        *sorted(items),
        catalog_path(),
        *(collection_path(c.id) for c in full.settings.collections),
        INDEX_PATH,
    )


def _manifest_path(before: _Inputs) -> Path | None:
    """Where the fast path will look for the manifest, knowing only the config's bytes."""
    assert before.config is not None
    try:
        return witness.manifest_path_in(before.config_path, before.config.decode("utf-8"))
    except ValueError:
        return None


def _config_digest(before: _Inputs) -> str:
    """The config's digest, when it is still the file the pass loaded and the code the same."""
    after = _Inputs.read(before.config_path)
    if before.config is None or after.config != before.config or after.code != before.code:
        raise _NoWitness("the config file or stacsync's code changed during the pass")
    return witness.digest(before.config)
