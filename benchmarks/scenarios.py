"""The timed scenarios: each is one `stacsync rescan --json` process after a change to the tree.

Changed files get an mtime 3 s in the past (no racy re-check); each leaves the tree as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import Sample, Stats, run_process
from benchmarks.trees import BenchTree, reset_stacsync

BACKDATE_NS = 3_000_000_000
TOUCHED = 10


@dataclass(frozen=True)
class Expect:
    """What the pass summary must say for the scenario to have done what it claims."""

    counts: dict[str, int]
    items_written: int | None = None
    index_written: bool | None = None


def stacsync_head() -> list[str]:
    """The installed `stacsync` script beside this Python, else `python -m stacsync.cli`."""
    script = Path(sys.executable).parent / "stacsync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stacsync.cli"]


def stacsync_argv(config: Path) -> list[str]:
    """The command a user runs, as its own process."""
    return [*stacsync_head(), "rescan", "--config", str(config), "--json"]


def rescan(tree: BenchTree, config: Path | None = None) -> Sample:
    return run_process(stacsync_argv(config or tree.config))


def check(sample: Sample, expect: Expect) -> str:
    """A short account of what the pass did; raises when it is not what the scenario expects."""
    summary = json.loads(sample.stdout)
    wrong = [f"{k}={summary[k]} (want {v})" for k, v in expect.counts.items() if summary[k] != v]
    if expect.items_written is not None and summary["items_written"] != expect.items_written:
        wrong.append(f"items_written={summary['items_written']} (want {expect.items_written})")
    if expect.index_written is not None and summary["index_written"] != expect.index_written:
        wrong.append(f"index_written={summary['index_written']} (want {expect.index_written})")
    if summary["errors"]:
        wrong.append(f"errors={summary['errors']}")
    if wrong:
        raise AssertionError("unexpected pass summary: " + ", ".join(wrong))
    return describe(summary)


def describe(summary: dict) -> str:
    counts = ("added", "modified", "touched", "removed", "unchanged")
    changed = ", ".join(f"{summary[k]} {k}" for k in counts if summary[k])
    written = [f"{summary['items_written']} items"] if summary["items_written"] else []
    written += ["collection"] if summary["collections_written"] else []
    written += ["catalog"] if summary["catalog_written"] else []
    written += ["index"] if summary["index_written"] else []
    return f"{changed}; wrote {', '.join(written) or 'nothing'}"


# -- scenarios ---------------------------------------------------------------------------------


def full_build(tree: BenchTree, runs: int, config: Path | None = None) -> tuple[Stats, str]:
    """From nothing: no manifest, no output. Leaves the tree built and settled."""
    built = _builds(tree, runs, config)
    settle(tree)
    return built


def _builds(tree: BenchTree, runs: int, config: Path | None) -> tuple[Stats, str]:
    samples = []
    for _ in range(runs):
        reset_stacsync(tree)
        samples.append(rescan(tree, config))
    did = check(samples[-1], Expect({"added": tree.file_count}, tree.items, True))
    return Stats(tuple(samples)), did


def full_build_headers_only(tree: BenchTree, runs: int) -> tuple[Stats, str]:
    """From nothing, reading headers only (`[extract] read_overviews = false`): no footprint
    tracing, no thumbnails. The scenarios after it start from the full build's state."""
    config = tree.work / "stacsync-headers-only.toml"
    config.write_text(
        tree.config.read_text(encoding="utf-8") + "\n[extract]\nread_overviews = false\n",
        encoding="utf-8",
    )
    built = _builds(tree, runs, config)
    reset_stacsync(tree)
    return built


def no_change(tree: BenchTree, runs: int) -> tuple[Stats, str]:
    samples = tuple(rescan(tree) for _ in range(runs))
    did = check(samples[-1], Expect({"unchanged": tree.file_count}, 0, False))
    return Stats(samples), did


def touch(tree: BenchTree, runs: int) -> tuple[Stats, str]:
    """New mtimes, same bytes: checksummed, nothing extracted or rewritten."""
    files = tree.asset_files
    chosen = [files[i * len(files) // TOUCHED] for i in range(TOUCHED)]

    def change(_run: int) -> None:
        for path in chosen:
            _backdate(path)

    return _repeat_after(tree, runs, change, Expect({"touched": TOUCHED}, 0, False))


def modify(tree: BenchTree, runs: int) -> tuple[Stats, str]:
    """New bytes in one orthomosaic (same size and header): one item, then the index."""
    path = _mission_file(tree, tree.missions // 2, "orthomosaic.tif")
    original = path.read_bytes()
    offset = len(original) * 3 // 4

    def change(run: int) -> None:
        data = bytearray(original)
        data[offset] ^= (run % 255) + 1
        path.write_bytes(data)
        _backdate(path)

    try:
        return _repeat_after(tree, runs, change, Expect({"modified": 1}, 1, True))
    finally:
        path.write_bytes(original)
        _backdate(path)
        settle(tree)


def remove(tree: BenchTree, runs: int) -> tuple[Stats, str]:
    """One DSM disappears: its item loses an asset; put back (untimed) after each run."""
    path = _mission_file(tree, tree.missions // 3, "dsm-mesh.tif")
    aside = tree.work / "removed.tif"
    samples = []
    did = ""
    for _ in range(runs):
        with _moved_aside(path, aside):
            sample = rescan(tree)
            did = check(sample, Expect({"removed": 1}, 1, True))
        samples.append(sample)
        settle(tree)
    return Stats(tuple(samples)), did


# -- helpers -----------------------------------------------------------------------------------


def settle(tree: BenchTree) -> None:
    """An untimed pass that brings the manifest back in line with the tree."""
    rescan(tree)


def _repeat_after(
    tree: BenchTree, runs: int, change: Callable[[int], None], expect: Expect
) -> tuple[Stats, str]:
    samples = []
    did = ""
    for run in range(runs):
        change(run)
        sample = rescan(tree)
        did = check(sample, expect)
        samples.append(sample)
    return Stats(tuple(samples)), did


def _backdate(path: Path) -> None:
    stamp = time.time_ns() - BACKDATE_NS
    os.utime(path, ns=(stamp, stamp))


def _mission_file(tree: BenchTree, index: int, name: str) -> Path:
    folders = sorted(tree.root.glob("missions/*/processed*/full"))
    return folders[index] / name


@contextmanager
def _moved_aside(path: Path, aside: Path) -> Iterator[None]:
    shutil.move(path, aside)  # same filesystem: a rename, mtime kept
    try:
        yield
    finally:
        shutil.move(aside, path)


# Key, table name and function of every stacsync scenario, in the order they run.
ALL: tuple[tuple[str, str, Callable[[BenchTree, int], tuple[Stats, str]]], ...] = (
    (
        "build_headers",
        "stacsync full first build, headers only (`read_overviews = false`)",
        full_build_headers_only,
    ),
    ("build", "stacsync full first build (footprints, thumbnails)", full_build),
    ("nochange", "stacsync no-change rescan", no_change),
    ("touch", "stacsync touch 10 files", touch),
    ("modify", "stacsync modify 1 file", modify),
    ("remove", "stacsync remove 1 file", remove),
)
NAMES = {key: name for key, name, _fn in ALL}
