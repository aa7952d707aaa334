"""Local copies of metadata tables kept inside a remote (iRODS, S3) source.

Layouts read tables as local files; a copy is fetched again only when its object changed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from stacsync.config.collection_keys import ITEM_PLACEHOLDER
from stacsync.config.settings import Settings, TableConfig
from stacsync.core.atomic import atomic_path, atomic_writer
from stacsync.core.records import SourceEntry
from stacsync.sources import Source

log = logging.getLogger(__name__)


def fetch_tables(settings: Settings, source: Source) -> list[str]:
    """Bring every remote table's local copy up to date; problems as messages for a person.

    A table that cannot be fetched keeps its last copy (the layout goes on with it); one
    that is gone from the source loses its copy, so the layout reports it missing.
    """
    problems = []
    for collection in settings.collections:
        table = collection.table
        if table is None or table.source_relpath is None:
            continue
        try:
            _fetch(table, source)
        except OSError as exc:
            problems.append(
                f"{table.source_relpath}: cannot fetch the metadata table "
                f"({exc.strerror or exc}); using the last copy"
            )
            log.warning("%s", problems[-1])
    return problems


def _fetch(table: TableConfig, source: Source) -> None:
    assert table.source_relpath is not None
    entry = source.stat(table.source_relpath)
    local = table.path
    if entry is None:
        local.unlink(missing_ok=True)
        return
    try:
        st = local.stat()
        if (st.st_size, st.st_mtime_ns) == (entry.size, entry.mtime_ns):
            return
    except FileNotFoundError:
        pass
    local.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(local, mode=None, prefix=".fetch-") as tmp:
        with tmp.open("wb") as out, source.open(table.source_relpath) as stream:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        # The object's mtime on the copy: the layout fingerprint sees exactly its changes.
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
    log.info("fetched metadata table %s (%d bytes)", table.source_relpath, entry.size)


# --------------------------------------------------------------------------------------------
# Per-item tables (`table.per_item`): one file per item, found in the listing.
# --------------------------------------------------------------------------------------------

Version = tuple[str | None, int, int]  # (ETag, size, mtime_ns) of the file as last read


@dataclass(frozen=True)
class ItemTableFile:
    """One item's own metadata file, as the listing shows it."""

    item: str  # the `item` group it stands for
    entry: SourceEntry  # its path relative to the source, size, mtime, ETag

    @property
    def version(self) -> Version:
        return (self.entry.etag, self.entry.size, self.entry.mtime_ns)


class ItemTemplate:
    """The files a per-item `table.path` names: which listed paths they are, and where."""

    def __init__(self, table: TableConfig, source_path: Path):
        template = table.source_relpath
        if template is None:  # read in place: relative to the source when it lies inside
            try:
                template = table.path.relative_to(source_path).as_posix()
            except ValueError:
                template = None
        self.relpath = template  # None: outside the source, never listed
        self.local = str(table.path)  # the copy (remote source) or the file itself
        self.remote = table.source_relpath is not None
        self._pattern = _template_regex(template) if template is not None else None

    def item_of(self, relpath: str) -> str | None:
        """The item a listed path is the table of, or None when it is not one."""
        if self._pattern is None:
            return None
        found = self._pattern.fullmatch(relpath)
        if found is None:
            return None
        item = found.group(1)
        # The first {item} decides; every other one must say the same.
        return item if self.relpath_of(item) == relpath else None

    def suffix(self) -> str:
        """The files' extension, `.gpkg` (for messages)."""
        return Path(self.relpath or self.local).suffix

    def relpath_of(self, item: str) -> str:
        assert self.relpath is not None
        return self.relpath.replace(ITEM_PLACEHOLDER, item)

    def local_of(self, item: str) -> Path:
        return Path(self.local.replace(ITEM_PLACEHOLDER, item))


def _template_regex(template: str) -> re.Pattern[str]:
    first, *rest = template.split(ITEM_PLACEHOLDER)
    parts = [re.escape(first), *(f"([^/]+){re.escape(r)}" for r in rest)]
    return re.compile("".join(parts), re.DOTALL)


def fetch_item_table(source: Source, where: ItemTemplate, found: ItemTableFile) -> None:
    """Copy one item's table from the source beside the manifest: one GET (OSError if not)."""
    local = where.local_of(found.item)
    local.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(local, mode=None, prefix=".fetch-") as tmp,
        tmp.open("wb") as out,
        source.open(found.entry.path) as stream,
    ):
        shutil.copyfileobj(stream, out, 1024 * 1024)
    log.info("fetched metadata table %s (%d bytes)", found.entry.path, found.entry.size)


def drop_item_table(where: ItemTemplate, item: str) -> None:
    """Forget the copy of a table gone from the source (a local file is never touched)."""
    if where.remote:
        where.local_of(item).unlink(missing_ok=True)


class ReadVersions:
    """Which version of each per-item table the catalog was last made from, by source path.

    A small JSON file beside the manifest, written after the manifest's own transaction: a
    crash in between only has the next pass read those files once more.
    """

    def __init__(self, manifest_path: Path):
        self.path = manifest_path.parent / f"{manifest_path.name}.tables" / "item-tables.json"
        self.versions: dict[str, Version] = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            self.versions = {k: (v[0], int(v[1]), int(v[2])) for k, v in loaded.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, IndexError, AttributeError) as exc:
            # Unreadable: every per-item table is read again, nothing is lost.
            log.warning("%s: %s; reading every per-item table again", self.path, exc)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(self.path) as out:
            out.write(json.dumps(self.versions, sort_keys=True).encode("utf-8"))
