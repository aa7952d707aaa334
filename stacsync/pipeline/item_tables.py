"""A pass's metadata tables: fetch remote ones, and re-place the items whose own file changed.

Per-item files (`table.per_item`) are seen in the listing, so a pass with no change reads none.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from stacsync.catalog.layout import Layout
from stacsync.config.settings import CollectionConfig, Settings
from stacsync.core.errors import ConfigError
from stacsync.core.records import FileState
from stacsync.manifest.db import Manifest
from stacsync.sources import Listing, Source
from stacsync.sources.include import is_included
from stacsync.sources.tables import (
    ItemTableFile,
    ItemTemplate,
    ReadVersions,
    drop_item_table,
    fetch_item_table,
    fetch_tables,
)

log = logging.getLogger(__name__)


class PassParts(Protocol):
    """What of a `SyncPass` the tables need (a protocol: this module must not import sync)."""

    settings: Settings
    source: Source
    db: Manifest
    layout: Layout


def fetch_all_tables(sync: PassParts, listing: Listing) -> list[str]:
    """Bring every table up to date for this pass; problems as messages for a person.

    Takes the per-item table files out of `listing` (they describe items, they are not
    cataloged) and re-places the files of each item whose table came, changed or went.
    """
    return [*fetch_tables(sync.settings, sync.source), *refresh_item_tables(sync, listing)]


def refresh_item_tables(sync: PassParts, listing: Listing) -> list[str]:
    """Per-item tables: the listing says which changed; only those are read (fetched)."""
    templates = _templates(sync.settings)
    if not templates:
        return []
    found = _take_from_listing(listing, templates)
    versions = ReadVersions(sync.settings.manifest_path)
    before = dict(versions.versions)
    problems: list[str] = []
    changed: set[tuple[str, str]] = set()  # (collection id, item group)
    new = [hit for hit in found.values() if _is_new(versions, hit[1], hit[2])]
    for (collection, _where, table_file), problem in zip(
        new, _fetch_remote(sync, new), strict=True
    ):
        if problem is not None:
            problems.append(problem)  # not recorded as read: the next pass tries again
            continue
        versions.versions[table_file.entry.path] = table_file.version
        changed.add((collection.id, table_file.item))
    for relpath in list(versions.versions):
        if relpath in found or not listing.covers(relpath):
            continue  # still there, or outside what this (partial) listing looked at
        del versions.versions[relpath]
        gone = _owner(templates, relpath)
        if gone is not None:
            collection, where, item = gone
            drop_item_table(where, item)
            changed.add((collection.id, item))
    if changed:
        _replace_items(sync, changed)
    if versions.versions != before:
        versions.save()  # after the manifest's transaction: a crash reads them once more
    return problems


def _fetch_remote(
    sync: PassParts, new: list[tuple[CollectionConfig, ItemTemplate, ItemTableFile]]
) -> list[str | None]:
    """Fetch the new tables of a remote source, in threads (a first build fetches them all);
    for each, None or why it could not be fetched. A local source's are read in place."""

    def fetch(hit: tuple[CollectionConfig, ItemTemplate, ItemTableFile]) -> str | None:
        _collection, where, table_file = hit
        if not where.remote:
            return None
        try:
            fetch_item_table(sync.source, where, table_file)
        except OSError as exc:
            problem = (
                f"{table_file.entry.path}: cannot fetch the metadata table "
                f"({exc.strerror or exc}); trying again next pass"
            )
            log.warning("%s", problem)
            return problem
        return None

    if len(new) < 2:
        return [fetch(hit) for hit in new]
    with ThreadPoolExecutor(max_workers=min(len(new), sync.settings.workers * 2 or 1)) as pool:
        return list(pool.map(fetch, new))


def _templates(settings: Settings) -> list[tuple[CollectionConfig, ItemTemplate]]:
    """The per-item tables of the settings; ConfigError when their files cannot be listed."""
    found = []
    for index, collection in enumerate(settings.collections):
        table = collection.table
        if table is None or not table.per_item:
            continue
        where = ItemTemplate(table, settings.source_path)
        key = f"collection[{index}].table.path"
        if where.relpath is None:
            raise ConfigError(f"{key}: a per-item table must lie inside the source")
        sample = where.relpath_of("000000")
        if not is_included(settings, sample):
            # Changes are seen in the listing: a file it leaves out would never be read again.
            raise ConfigError(
                f"{key}: source.include/exclude leave out the per-item tables "
                f"({sample} is not listed); add a pattern such as '*{where.suffix()}'"
            )
        found.append((collection, where))
    return found


def _take_from_listing(
    listing: Listing, templates: list[tuple[CollectionConfig, ItemTemplate]]
) -> dict[str, tuple[CollectionConfig, ItemTemplate, ItemTableFile]]:
    found = {}
    for relpath, entry in listing.entries.items():
        owner = _owner(templates, relpath)
        if owner is not None:
            collection, where, item = owner
            found[relpath] = (collection, where, ItemTableFile(item, entry))
    listing.entries.remove_all(found)  # tables, not assets: neither cataloged nor unmatched
    return found


def _owner(
    templates: list[tuple[CollectionConfig, ItemTemplate]], relpath: str
) -> tuple[CollectionConfig, ItemTemplate, str] | None:
    for collection, where in templates:
        item = where.item_of(relpath)
        if item is not None:
            return collection, where, item
    return None


def _is_new(versions: ReadVersions, where: ItemTemplate, table_file: ItemTableFile) -> bool:
    if versions.versions.get(table_file.entry.path) != table_file.version:
        return True
    # A copy someone deleted is fetched again (one local stat; no request when it is there).
    return where.remote and not where.local_of(table_file.item).is_file()


def _replace_items(sync: PassParts, changed: set[tuple[str, str]]) -> None:
    """Re-place the files of the items whose own table changed, and mark those items dirty.

    Files in error because the table was missing, or whose item can no longer be placed,
    become pending: this pass's diff looks at them again.
    """
    collections = {c.id: c for c in sync.settings.collections}
    for cid, item in changed:
        sync.layout.forget_item_table(cid, item)
    rows = sync.db.file_rows()
    with sync.db.transaction():
        for row in rows.values():
            collection = collections.get(row.collection_id or "")
            if collection is None:
                continue
            groups = collection.match.search(row.path)
            if groups is None or (collection.id, groups.get("item")) not in changed:
                continue
            if row.item_id:
                sync.db.mark_item_dirty(row.collection_id, row.item_id)
            placement = sync.layout.place(row.path)
            if placement is None or not placement.placed or row.status != FileState.OK:
                sync.db.update_file(row.path, status=FileState.PENDING.value)
                continue
            sync.db.update_file(
                row.path,
                collection_id=placement.collection_id,
                item_id=placement.item_id,
                asset_key=placement.asset_key,
                problem=placement.problem,
                table_key=placement.table_key,
            )
            sync.db.mark_item_dirty(placement.collection_id, placement.item_id)
