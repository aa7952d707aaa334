"""A no-change `stacsync rescan --config` answered from the witness is the full pass, exactly.

Each scenario runs twice from the same files: the real `stacsync` (fast path allowed) and the
click command line alone (always the full pass); stdout, exit, stderr, the manifest's pass
rows and the catalog must come out the same.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import CSV, CSV_CONFIG, age, catalog_bytes
from processes import write_config

import stacsync
from stacsync.cli.fast import absolute
from stacsync.config.load import load_settings
from stacsync.manifest import witness
from stacsync.manifest.db import Manifest
from stacsync.manifest.lock import ManifestLock
from stacsync.pipeline.sync import SyncPass

FAST = [sys.executable, "-X", "importtime", "-m", "stacsync.cli"]
# The fast path alone, without `site`: what a .pth file imports (an editable install's finder
# loads pathlib, re, contextlib…) would hide it. stacsync from where this test imported it.
BARE_ALONE = [sys.executable, "-S", "-X", "importtime", "-c", "pass"]
FAST_ALONE = [*BARE_ALONE[:-1], "from stacsync.cli.fast import main; main()"]
FULL = [sys.executable, "-c", "from stacsync.cli.main import main; main()"]
FILES = ["RGB.byte.tif", "dataset_cog.tif", "autzen_trim.laz"]


@dataclass(frozen=True)
class Outcome:
    """What one `stacsync rescan` process did, its duration and log times left out."""

    code: int
    stdout: str
    stderr: str
    passes: list[tuple[bool, dict]]  # (finished, summary without seconds), oldest first
    catalog: dict[str, bytes]
    loaded: frozenset[str]  # modules imported (FAST runs only)


def run(command: list[str], root: Path, *args: str) -> Outcome:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if "-S" in command:  # no site-packages: stacsync (all the fast path needs) from its folder
        env["PYTHONPATH"] = str(Path(stacsync.__file__).parents[1])
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=root, env=env, timeout=120
    )
    lines = done.stderr.splitlines(keepends=True)
    loaded = frozenset(
        line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")
    )
    stderr = "".join(line for line in lines if not line.startswith("import time:"))
    stderr = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "", stderr, flags=re.M)
    return Outcome(
        done.returncode,
        _without_seconds(done.stdout),
        stderr,
        _passes(root / "stacsync.db"),
        catalog_bytes(root / "catalog") if (root / "catalog").is_dir() else {},
        frozenset(m for m in loaded if " " not in m),  # not the header ("imported package")
    )


def _without_seconds(stdout: str) -> str:
    try:
        summary = json.loads(stdout)
    except ValueError:
        return "".join(line for line in stdout.splitlines(True) if not line.startswith("Took "))
    # Byte for byte as the full pass's json.dumps prints it (the fast path writes it without).
    assert stdout == json.dumps(summary, sort_keys=True) + "\n"
    summary.pop("seconds")
    return json.dumps(summary, sort_keys=True)


def _passes(db: Path) -> list[tuple[bool, dict]]:
    if not db.is_file():
        return []
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT finished, summary_json FROM pass ORDER BY id").fetchall()
    finally:
        conn.close()
    passes = []
    for finished, text in rows:
        summary = json.loads(text) if text else {}
        assert not text or text == json.dumps(summary, sort_keys=True)
        summary.pop("seconds", None)
        passes.append((finished is not None, summary))
    return passes


def both_ways(root: Path, *args: str) -> tuple[Outcome, Outcome]:
    """The same command from the same files: fast path allowed, then the full pass alone."""
    snapshot = root.parent / f"{root.name}.snapshot"
    shutil.copytree(root, snapshot, symlinks=True)  # copy2: mtimes to the nanosecond
    fast = run(FAST, root, *args)
    shutil.rmtree(root)
    snapshot.rename(root)
    full = run(FULL, root, *args)
    return fast, full


def answered_fast(outcome: Outcome) -> bool:
    return "stacsync.pipeline.sync" not in outcome.loaded and "stacsync.cli.fast" in outcome.loaded


def assert_same(fast: Outcome, full: Outcome) -> None:
    assert (fast.code, fast.stdout, fast.stderr) == (full.code, full.stdout, full.stderr)
    assert fast.passes == full.passes
    assert fast.catalog == full.catalog


RESCAN = ("rescan", "--config", "stacsync.toml", "--json")


@pytest.fixture
def tree(tmp_path: Path, copy_testdata) -> Path:
    """A source of real files out of the racy window, catalogued by a full pass, then found
    unchanged by another, which left the witness."""
    root = tmp_path / "t"
    write_config(root)
    copy_testdata(*FILES, dest=root / "src")
    age(root / "src")
    for _ in range(2):
        done = run(FULL, root, *RESCAN)
        assert done.code == 0, done.stderr
    return root


def test_no_change_is_answered_fast_and_is_the_full_pass(tree: Path):
    fast, full = both_ways(tree, *RESCAN)
    assert answered_fast(fast)
    assert_same(fast, full)
    assert json.loads(fast.stdout)["unchanged"] == len(FILES)
    # ...and again: the fast pass keeps the witness it was answered from.
    again, _ = both_ways(tree, *RESCAN)
    assert answered_fast(again)


@pytest.mark.parametrize(
    "args",
    [
        ("rescan", "--config", "stacsync.toml"),  # the human summary
        ("-q", "rescan", "-c", "stacsync.toml", "--json"),
        ("rescan", "--json", "--config=stacsync.toml"),
        ("rescan", "--config", ".//stacsync.toml", "--json"),  # as the loader spells it
    ],
)
def test_other_spellings_of_a_no_change_rescan(tree: Path, args: tuple[str, ...]):
    fast, full = both_ways(tree, *args)
    assert answered_fast(fast)
    assert_same(fast, full)


def _add(root: Path) -> None:
    shutil.copyfile(root / "src" / "RGB.byte.tif", root / "src" / "copy.tif")
    age(root / "src")


def _modify(root: Path) -> None:
    path = root / "src" / "dataset_cog.tif"
    st = path.stat()
    shutil.copyfile(root / "src" / "RGB.byte.tif", path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))


def _modify_same_size_and_mtime(root: Path) -> None:
    # The racy case the full pass cannot see either: no witness hides more than a stat does.
    path = root / "src" / "RGB.byte.tif"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _touch(root: Path) -> None:
    path = root / "src" / "RGB.byte.tif"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))


def _delete(root: Path) -> None:
    (root / "src" / "autzen_trim.laz").unlink()


def _add_unlisted(root: Path) -> None:
    (root / "src" / "notes.txt").write_text("not a product")


def _add_folder(root: Path) -> None:
    (root / "src" / "more").mkdir()
    shutil.copyfile(root / "src" / "RGB.byte.tif", root / "src" / "more" / "RGB.byte.tif")
    age(root / "src")


def _edit_config(root: Path) -> None:
    config = root / "stacsync.toml"
    config.write_text(config.read_text().replace("Daemon test", "Edited title"))


def _delete_item(root: Path) -> None:
    items = (root / "catalog" / "files").glob("*/*.json")
    next(p for p in items if not p.parent.name.startswith("_")).unlink()


def _delete_output(name: str):
    def delete(root: Path) -> None:
        (root / "catalog" / name).unlink()

    delete.__name__ = f"_delete_{name}"
    return delete


def _unfinished_pass(root: Path) -> None:
    with sqlite3.connect(root / "stacsync.db") as conn:
        conn.execute("INSERT INTO pass (started) VALUES ('2026-01-01T00:00:00Z')")


def _manifest_edit(sql: str):
    def edit(root: Path) -> None:
        with sqlite3.connect(root / "stacsync.db") as conn:
            assert conn.execute(sql).rowcount

    return edit


def _fresh_mtime(root: Path) -> None:
    # A file written just now: its pass records it within the racy window.
    path = root / "src" / "RGB.byte.tif"
    path.write_bytes(path.read_bytes())


def _daemon_pass(root: Path) -> None:
    # What `stacsync run` does on an event: a pass over the changed paths only.
    _touch(root)
    settings = load_settings(root / "stacsync.toml")
    with Manifest.open_writer(settings.manifest_path) as db:
        assert SyncPass(settings, db).run(paths=["RGB.byte.tif"]).touched == 1


def _symlink(root: Path) -> None:
    (root / "src" / "link.tif").symlink_to(root / "src" / "RGB.byte.tif")


CHANGES = [
    _add,
    _modify,
    _modify_same_size_and_mtime,
    _touch,
    _delete,
    _add_unlisted,
    _add_folder,
    _edit_config,
    _delete_item,
    _delete_output("catalog.json"),
    _delete_output("files/collection.json"),
    _delete_output("index.geojson"),
    _unfinished_pass,
    _manifest_edit("UPDATE item SET dirty = 1"),
    _manifest_edit("UPDATE asset_file SET status = 'pending' WHERE path = 'RGB.byte.tif'"),
    _manifest_edit(
        "UPDATE asset_file SET status = 'error', error = 'EIO', error_transient = 1"
        " WHERE path = 'autzen_trim.laz'"
    ),
    _manifest_edit("UPDATE asset_file SET scanned_ns = mtime_ns WHERE path = 'RGB.byte.tif'"),
    _manifest_edit("DELETE FROM state WHERE key = 'render_fingerprint'"),
    _manifest_edit("DELETE FROM written WHERE path = 'index.geojson'"),
    _fresh_mtime,
    _daemon_pass,
    _symlink,
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__.strip("_"))
def test_after_a_change_both_paths_give_the_full_pass(tree: Path, change):
    change(tree)
    fast, full = both_ways(tree, *RESCAN)
    assert_same(fast, full)
    if change is not _modify_same_size_and_mtime:
        assert not answered_fast(fast)  # also after _daemon_pass: a pass it did not vouch for
    # The next pass finds nothing to do and leaves a witness again, where it can.
    if change not in (_fresh_mtime, _symlink):
        assert run(FULL, tree, *RESCAN).code == 0
        again, again_full = both_ways(tree, *RESCAN)
        assert answered_fast(again)
        assert_same(again, again_full)


@pytest.fixture
def csv_tree(tmp_path: Path, copy_testdata) -> Path:
    """Files grouped by a CSV table, with a file no row names and a row no file joins."""
    root = tmp_path / "csv"
    src = root / "src"
    for name, source in [
        ("west_a.tif", "RGB.byte.tif"),
        ("north.laz", "autzen_trim.laz"),
        ("stray.tif", "dataset_cog.tif"),
    ]:
        copy_testdata(source, dest=src)
        (src / source).rename(src / name)
    age(src)
    (src / "plots.csv").write_text(CSV + "south,P3,2019-05-22\n")
    (root / "stacsync.toml").write_text(CSV_CONFIG)
    for _ in range(2):
        done = run(FULL, root, *RESCAN)
        assert done.code == 0, done.stderr
    return root


def test_table_notes_and_errors_are_reported_as_the_full_pass_does(csv_tree: Path):
    human = ("rescan", "--config", "stacsync.toml")
    fast, full = both_ways(csv_tree, *human)
    assert answered_fast(fast)
    assert_same(fast, full)
    assert "table rows without files" in fast.stdout and "Errors:" in fast.stdout
    fast, full = both_ways(csv_tree, *RESCAN)
    assert answered_fast(fast)
    assert_same(fast, full)
    # A table edited: every file is placed again (the layout fingerprint), never answered fast.
    table = csv_tree / "src" / "plots.csv"
    table.write_text(table.read_text().replace("2019-05-21", "2019-06-02"))
    fast, full = both_ways(csv_tree, *RESCAN)
    assert not answered_fast(fast)
    assert_same(fast, full)
    assert json.loads(fast.stdout)["items_written"] == 1


def test_a_locked_manifest_exits_3_with_the_same_message(tree: Path):
    lock = ManifestLock(tree / "stacsync.db")
    lock.acquire("a test holding the lock")
    try:  # not both_ways: a copy of the folder would not be locked; a locked run changes nothing
        fast = run(FAST, tree, *RESCAN)
        full = run(FULL, tree, *RESCAN)
    finally:
        lock.release()
    assert fast.code == 3
    assert "is locked by" in fast.stderr
    assert_same(fast, full)


def test_a_config_that_no_longer_loads_is_reported_as_before(tree: Path):
    (tree / "stacsync.toml").write_text("[source\n")
    fast, full = both_ways(tree, *RESCAN)
    assert fast.code == 2
    assert_same(fast, full)


def test_an_unreadable_output_is_reported_as_before(tree: Path):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    (tree / "catalog").chmod(0o500)
    try:
        fast, full = both_ways(tree, *RESCAN)
    finally:
        (tree / "catalog").chmod(0o700)
    assert fast.code == 4
    assert_same(fast, full)


def test_the_quick_form_and_other_options_take_the_full_path(tree: Path):
    quick = ("rescan", "src", "--output", "catalog", "--manifest", "stacsync.db", "--json")
    fast, full = both_ways(tree, *quick)
    assert not answered_fast(fast)
    assert_same(fast, full)
    verbose = ("-v", *RESCAN)
    fast, full = both_ways(tree, *verbose)
    assert not answered_fast(fast)
    assert "pass: 0 added" in fast.stderr  # the pass's own log line, as -v asks


# What a no-change rescan may load beyond a bare interpreter, both without `site`. A module
# more is a deliberate choice: it costs every `stacsync rescan` (the target is 3x a bare walk
# of the tree).
ALLOWED = {
    "stacsync",
    "stacsync.cli",
    "stacsync.cli.fast",
    "stacsync.cli.report",
    "stacsync.core",
    "stacsync.core.clock",
    "stacsync.core.errors",
    "stacsync.core.sha256",
    "stacsync.core.tree",
    "stacsync.manifest",
    "stacsync.manifest.lock",
    "stacsync.manifest.schema",
    "stacsync.manifest.state",
    "stacsync.manifest.witness",
}
# The standard library's share (the same on 3.11 to 3.13), by top-level name: `site` loads os
# and its kin anyway; collections (namedtuple) brings a few small modules; _sha256 (not
# OpenSSL's), _sqlite3 (sqlite3's C core, without the package's datetime; it imports
# functools) and fcntl do the work.
STDLIB = {
    *("os", "posixpath", "genericpath", "stat", "_stat", "_collections_abc", "__future__"),
    *("collections", "_collections", "itertools", "keyword", "operator", "_operator"),
    *("reprlib", "_sha256", "_sqlite3", "functools", "_functools", "types", "fcntl"),
}
HEAVY = {"rasterio", "laspy", "shapely", "pyproj", "pystac", "jsonschema", "numpy", "osgeo"}
# Each costs the fast path milliseconds, with what it imports: what it was freed from.
SLOW = {
    *("typing", "pathlib", "contextlib", "dataclasses", "inspect", "datetime", "sqlite3"),
    *("urllib", "fnmatch", "tomllib", "logging", "click", "hashlib", "_hashlib"),
    *("json", "re", "enum"),  # json imports re, which imports enum
}


@pytest.mark.parametrize("args", [RESCAN, RESCAN[:-1]], ids=["json", "for-people"])
def test_a_no_change_rescan_loads_a_few_cheap_modules(tree: Path, args):
    bare = run(BARE_ALONE, tree)
    fast = run(FAST_ALONE, tree, *args)
    assert fast.code == 0, fast.stderr  # without site-packages, no click to fall back on
    assert answered_fast(fast)
    loaded = fast.loaded - bare.loaded
    ours = {m for m in loaded if m.split(".")[0] == "stacsync"}
    assert ours <= ALLOWED, f"a no-change rescan now loads {sorted(ours - ALLOWED)}"
    others = loaded - ours
    slow = {m for m in others if m.split(".")[0] in SLOW | HEAVY}
    assert not slow, f"a no-change rescan loads {sorted(slow)} again"
    extra = {m for m in others if m.split(".")[0] not in STDLIB}
    assert not extra, f"a no-change rescan now loads {sorted(extra)}"


def test_the_installed_command_starts_without_re(tree: Path):
    """`stacsync` as pip installed it (bin/stacsync): an entry-point wrapper would import re."""
    command = Path(sys.executable).with_name("stacsync")
    assert command.is_file(), f"{command}: install stacsync (pip install -e .) to run the suite"
    run(FAST, tree, *RESCAN)  # settled: the next pass finds nothing to do
    bare = run([sys.executable, "-X", "importtime", "-c", "pass"], tree)  # with site
    fast = run([sys.executable, "-X", "importtime", str(command)], tree, *RESCAN)
    assert answered_fast(fast), fast.stderr
    assert not (fast.loaded - bare.loaded) & {"re", "json", "enum"}


@pytest.mark.parametrize(
    "path",
    ["s.toml", "./s.toml", "a//b/./s.toml", "a/../s.toml", "a/", ".", "/x/./y/", "//x/s", "///x"],
)
def test_the_config_path_is_made_absolute_as_pathlib_does(tmp_path: Path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    assert absolute(path) == str(Path(path).absolute())


def test_a_manifest_under_an_odd_name_opens_on_the_fast_path(tmp_path: Path):
    folder = tmp_path / "a b%20#?é"
    folder.mkdir()
    path = folder / "stacsync.db"
    Manifest.open_writer(path).close()
    assert witness._file_uri(str(path)) == path.as_uri()
    with witness.FastWriter.open(path) as fast:
        assert fast.conn.execute("PRAGMA user_version").fetchone()[0] > 0


def test_a_full_no_change_pass_loads_no_heavy_library(tree: Path):
    full = run([sys.executable, "-X", "importtime", *FULL[1:]], tree, *RESCAN)
    assert full.code == 0
    assert json.loads(full.stdout)["unchanged"] == len(FILES)
    assert "stacsync.pipeline.sync" in full.loaded  # the full pass, not the fast path
    assert not {m.split(".")[0] for m in full.loaded} & HEAVY
