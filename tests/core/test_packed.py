"""A packed listing holds entries as a dict of them would, in far less memory.

Names come from a shared store: any bytes, newlines, 2,000 characters; checksum and ETag keep
the difference between none and an empty one.
"""

from __future__ import annotations

import os
import random
import tracemalloc

import pytest

from stacsync.core.packed import PackedEntries
from stacsync.core.records import SourceEntry

HOSTILE = [
    SourceEntry("a/b.tif", 1, 2),
    SourceEntry(os.fsdecode(b"bad\xff utf8\n/line\nbreak.tif"), 0, -5, "", None),
    SourceEntry("x" * 2000 + ".laz", 2**62, 2**62, None, ""),
    SourceEntry("lone \ud800 surrogate/\u00e9t\u00e9 \U0001f332.tif", 7, 0, "1220ab" * 10, 'e"t'),
    SourceEntry("", 0, 0),
]


def test_entries_come_back_equal_and_in_order():
    packed = PackedEntries(HOSTILE)
    assert len(packed) == len(HOSTILE)
    assert list(packed.values()) == HOSTILE
    assert list(packed.items()) == [(e.path, e) for e in HOSTILE]
    assert list(packed) == [e.path for e in HOSTILE]  # read again: reading does not consume
    assert packed.newest_mtime_ns() == 2**62


@pytest.mark.parametrize("entry", HOSTILE)
def test_each_hostile_entry_alone(entry: SourceEntry):
    packed = PackedEntries([entry])
    assert list(packed.values()) == [entry]
    assert packed[entry.path] == entry and entry.path in packed


def test_behaves_as_a_dict_under_any_mix_of_operations():
    # The sources use it as the dict it replaced: add, replace in place, delete, look up.
    rng = random.Random(17)
    paths = [f"m/{i:03d}/{'é' if i % 7 == 0 else ''}f.tif" for i in range(60)]
    for _ in range(30):
        packed, model = PackedEntries(), {}
        for _ in range(120):
            path = rng.choice(paths)
            op = rng.random()
            entry = SourceEntry(path, rng.randrange(10**6), rng.randrange(-(10**9), 10**18))
            if op < 0.35 and path not in model:
                packed.add(entry)
                model[path] = entry
            elif op < 0.7:
                packed[path] = entry
                model[path] = entry
            elif op < 0.85 and path in model:
                del packed[path]
                del model[path]
            else:
                assert (path in packed) == (path in model)
                assert packed.get(path) == model.get(path)
        assert list(packed.items()) == list(model.items())
        assert len(packed) == len(model)
        newest = max((e.mtime_ns for e in model.values()), default=0)
        assert packed.newest_mtime_ns() == newest


@pytest.mark.parametrize("indexed", [False, True])
def test_remove_all_deletes_what_is_held(indexed: bool):
    packed = PackedEntries(HOSTILE)
    if indexed:
        assert HOSTILE[0].path in packed  # builds the index first
    packed.remove_all({HOSTILE[1].path, HOSTILE[3].path, "not/held.tif"})
    assert list(packed.values()) == [HOSTILE[0], HOSTILE[2], HOSTILE[4]]
    assert len(packed) == 3 and HOSTILE[1].path not in packed


def test_adding_a_held_path_once_indexed_replaces_it():
    packed = PackedEntries(HOSTILE[:2])
    assert HOSTILE[0].path in packed
    packed.add(SourceEntry(HOSTILE[0].path, 5, 5))
    assert list(packed.values()) == [SourceEntry(HOSTILE[0].path, 5, 5), HOSTILE[1]]


def test_a_deleted_path_is_gone_and_may_come_back_at_the_end():
    packed = PackedEntries(HOSTILE[:3])
    del packed["a/b.tif"]
    with pytest.raises(KeyError):
        packed["a/b.tif"]
    packed["a/b.tif"] = SourceEntry("a/b.tif", 9, 9)
    assert [e.path for e in packed.values()][-1] == "a/b.tif"
    with pytest.raises(ValueError, match="cannot be held as"):
        packed["other.tif"] = SourceEntry("a/b.tif", 9, 9)


def test_a_packed_listing_is_far_smaller_than_a_dict_of_entries():
    # What it is for: a first build's listing of 100,000 files was ~27 MB of Python objects.
    # The paths are ~45 characters, as in the benchmark's tree.
    def listed(i: int) -> SourceEntry:
        return SourceEntry(f"missions/{i:06d}/processed_v2/full/ortho.tif", 2**40 + i, i * 10**9)

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        as_dict = {entry.path: entry for entry in map(listed, range(10_000))}
        dict_bytes = tracemalloc.get_traced_memory()[0] - before
        del as_dict
        before = tracemalloc.get_traced_memory()[0]
        packed = PackedEntries()
        for i in range(10_000):
            packed.add(listed(i))
        packed_bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert packed_bytes * 3 < dict_bytes, (packed_bytes, dict_bytes)
    assert len(packed) == 10_000
