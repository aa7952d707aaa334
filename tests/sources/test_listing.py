"""What a pass keeps of a listing once its diff is done: the facts its witness needs."""

from __future__ import annotations

from stacsync.core.records import SourceEntry
from stacsync.sources import Listing


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
