"""Local copies of metadata tables kept inside a remote (iRODS) source.

Layouts read tables as local files; a copy is fetched again only when its object changed.
"""

from __future__ import annotations

import logging
import os

from stacsync.config.settings import Settings, TableConfig
from stacsync.core.atomic import atomic_path
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
    import shutil

    local.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(local, mode=None, prefix=".fetch-") as tmp:
        with tmp.open("wb") as out, source.open(table.source_relpath) as stream:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        # The object's mtime on the copy: the layout fingerprint sees exactly its changes.
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
    log.info("fetched metadata table %s (%d bytes)", table.source_relpath, entry.size)
