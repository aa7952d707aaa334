"""A tree's digest: equal exactly when a walk would see the same names, kinds, sizes and mtimes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stacsync.core import tree
from stacsync.sources.local import LocalSource


def _make(root: Path) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "catalog").mkdir()
    (root / "a" / "one.tif").write_bytes(b"1")
    (root / "a" / "b" / "two.laz").write_bytes(b"22")
    (root / "a" / "notes.txt").write_text("not listed")
    (root / "catalog" / "item.json").write_text("{}")
    (root / "b\udcff.tif").write_bytes(b"not UTF-8")
    return root


def _recorded(root: Path, prune: tuple[Path, ...] = ()) -> tree.TreeDigest:
    """What a pass's own walk (LocalSource) listed, as the witness records it."""
    recorder = tree.Recorder(str(root))
    source = LocalSource(
        root, include=lambda p: p.endswith(".tif"), prune=prune, scandir=recorder.scandir
    )
    listing = source.list()
    assert not listing.problems
    found = recorder.result()
    assert found is not None
    return found


def test_the_fast_walk_sees_what_the_pass_walk_listed(tmp_path: Path):
    root = _make(tmp_path / "src")
    found = _recorded(root, prune=(root / "catalog",))
    assert found.unwalked() == ("catalog",)
    # Every name in walked folders (listed by the rules or not), the pruned one not entered.
    assert tree.walk(str(root), frozenset({"catalog"})) == (found.entries, found.hexdigest())
    assert found.entries == 7


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "a" / "new.txt").write_text("x"),  # even a file no rule lists
        lambda r: (r / "a" / "one.tif").write_bytes(b"9"),  # same size: a new mtime
        lambda r: os.utime(r / "a" / "one.tif", ns=(0, 1)),
        lambda r: (r / "a" / "b" / "two.laz").write_bytes(b"222"),
        lambda r: (r / "a" / "one.tif").rename(r / "a" / "ONE.tif"),
        lambda r: (r / "a" / "b" / "c").mkdir(),
        lambda r: (r / "a" / "one.tif").unlink(),
        lambda r: os.mkfifo(r / "a" / "pipe.tif"),
    ],
)
def test_any_change_changes_the_digest(tmp_path: Path, change):
    root = _make(tmp_path / "src")
    before = tree.walk(str(root), frozenset({"catalog"}))
    change(root)
    assert tree.walk(str(root), frozenset({"catalog"})) != before


def test_a_pass_right_after_a_walk_lists_what_it_walked(tmp_path: Path):
    root = _make(tmp_path / "src")
    walked = tree.walk(str(root), frozenset({"catalog"}))
    (root / "a" / "one.tif").unlink()  # after the walk: the listing's snapshot still has it
    recorder = tree.Recorder(str(root))
    listing = LocalSource(
        root,
        include=lambda p: p.endswith(".tif"),
        prune=(root / "catalog",),
        scandir=recorder.scandir,
    ).list()
    assert "a/one.tif" in listing.entries
    found = recorder.result()
    assert (found.entries, found.hexdigest()) == walked
    # Served once: the next listing walks the tree again.
    again = LocalSource(root, include=lambda p: p.endswith(".tif"), prune=(root / "catalog",))
    assert "a/one.tif" not in again.list().entries
    tree.walk(str(root), frozenset({"catalog"}))
    tree.forget_walk()
    recorder = tree.Recorder(str(root))
    fresh = LocalSource(root, include=lambda p: p.endswith(".tif"), scandir=recorder.scandir)
    assert "a/one.tif" not in fresh.list().entries


def test_what_is_not_walked_may_change(tmp_path: Path):
    root = _make(tmp_path / "src")
    before = tree.walk(str(root), frozenset({"catalog"}))
    (root / "catalog" / "item.json").write_text('{"changed": true}')
    assert tree.walk(str(root), frozenset({"catalog"})) == before


def test_the_digest_does_not_depend_on_walk_order(tmp_path: Path):
    root = _make(tmp_path / "src")
    listed = {}
    for folder in ("", "a", "a/b", "catalog"):
        with os.scandir(root / folder) as it:
            listed[folder] = list(it)
    forward, backward = tree.TreeDigest(), tree.TreeDigest()
    for folder in listed:
        forward.add(folder, listed[folder])
    for folder in reversed(listed):
        backward.add(folder, list(reversed(listed[folder])))
    assert forward.hexdigest() == backward.hexdigest()
    assert forward.hexdigest() == tree.walk(str(root), frozenset())[1]


def test_unwalked_folders_do_not_depend_on_walk_order(tmp_path: Path):
    root = _make(tmp_path / "src")
    listed = {}
    for folder in ("", "a", "a/b"):  # "catalog" is named by the root, never listed
        with os.scandir(root / folder) as it:
            listed[folder] = list(it)
    down, up = tree.TreeDigest(), tree.TreeDigest()
    for folder in listed:
        down.add(folder, listed[folder])
    for folder in reversed(listed):  # children before the folders that name them
        up.add(folder, listed[folder])
    assert down.unwalked() == up.unwalked() == ("catalog",)
    # Going down, only the frontier (and the root, which nothing names) is kept.
    assert down._pending == {"catalog"} and down._early == {""}


def test_names_cannot_shift_between_folders(tmp_path: Path):
    """Folder "a" holding "b/c"-like names is no tree with the same lines split otherwise."""
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "x").mkdir(parents=True)
    (one / "x" / "y").write_bytes(b"1")
    (two / "x").mkdir(parents=True)
    (two / "x" / "y").mkdir()
    assert tree.walk(str(one), frozenset())[1] != tree.walk(str(two), frozenset())[1]


def test_a_recorder_keeps_no_entry_of_a_folder_once_the_next_is_listed(tmp_path: Path):
    root = _make(tmp_path / "src")
    recorder = tree.Recorder(str(root))
    LocalSource(root, include=lambda p: True, scandir=recorder.scandir).list()
    # Only the last folder listed is still held, and digesting it drops it.
    assert recorder._pending is not None
    assert recorder.result() is not None
    assert recorder._pending is None


def test_a_digest_keeps_32_bytes_a_folder_until_it_is_read(tmp_path: Path):
    # A 100,000-file tree has ~43,000 folders: a record of the folder's name and digest as
    # text would be ~6 MB of a first build's memory.
    root = _make(tmp_path / "src")
    folders = sum(1 for _ in os.walk(root))
    found = _recorded(root)
    assert len(found._records) == 32 * folders
    assert found.hexdigest() == tree.walk(str(root), frozenset())[1]


def test_a_symbolic_link_makes_a_tree_incomparable(tmp_path: Path):
    root = _make(tmp_path / "src")
    (root / "a" / "link.tif").symlink_to(root / "a" / "one.tif")
    assert tree.walk(str(root), frozenset()) is None
    recorder = tree.Recorder(str(root))
    LocalSource(root, include=lambda p: True, scandir=recorder.scandir).list()
    assert recorder.result() is None


def test_a_folder_that_cannot_be_read_makes_a_tree_incomparable(tmp_path: Path):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    root = _make(tmp_path / "src")
    (root / "a" / "b").chmod(0)
    try:
        assert tree.walk(str(root), frozenset()) is None
    finally:
        (root / "a" / "b").chmod(0o700)


def test_a_missing_root_is_incomparable(tmp_path: Path):
    assert tree.walk(str(tmp_path / "gone"), frozenset()) is None
