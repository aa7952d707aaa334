"""What a listing holds (packed entries, no object per file) and what a pass keeps of it once
its diff is done: the facts its witness needs."""

from __future__ import annotations

import gc
from pathlib import Path

from stacsync.core.records import SourceEntry
from stacsync.sources import Listing
from stacsync.sources.local import LocalSource


def _listing(*entries: SourceEntry, scope: frozenset[str] | None = None) -> Listing:
    listing = Listing(scope=scope)
    for entry in entries:
        listing.entries[entry.path] = entry
    return listing


def test_facts_count_the_files_and_keep_the_newest_mtime():
    facts = _listing(SourceEntry("a.tif", 1, 30), SourceEntry("b/c.laz", 2, 70)).facts()
    assert (facts.files, facts.newest_mtime_ns, facts.full, facts.clean) == (2, 70, True, True)


def test_an_empty_listing_has_no_newest_mtime():
    facts = Listing().facts()
    assert (facts.files, facts.newest_mtime_ns) == (0, 0)


def test_a_partial_or_troubled_listing_says_so():
    assert not _listing(SourceEntry("a.tif", 1, 3), scope=frozenset({"a.tif"})).facts().full
    skipped = _listing()
    skipped.skip("fifo.tif", "a FIFO, not a regular file: skipped")
    assert not skipped.facts().clean
    failed = _listing()
    failed.failed_dirs.append("missions")
    assert not failed.facts().clean


def test_a_local_listing_keeps_no_object_per_file(tmp_path: Path):
    # A big store's listing was a first build's largest set of objects (~270 bytes a file),
    # and freeing them after the diff did not give their memory back: the walk packs each.
    expected = []
    for i in range(200):
        folder = tmp_path / f"m{i % 10:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i:03d}.tif").write_bytes(b"x" * i)
        expected.append(f"m{i % 10:02d}/f{i:03d}.tif")

    def live_entries() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, SourceEntry))

    before = live_entries()
    listing = LocalSource(tmp_path, include=lambda p: p.endswith(".tif")).list()
    assert live_entries() == before
    assert sorted(listing.entries) == sorted(expected)
    assert listing.entries["m03/f013.tif"].size == 13
