"""Benchmark trees: OFO-shaped folders from the demo generator, cached by their parameters.

A tree of N files is round(N / 7) missions (6 COGs and a LAZ each) plus the mission GeoPackage.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio.raw

from stacsync.demo import (
    ASSET_FILES,
    FIRST_ID,
    MATCH,
    PROCESSED,
    TABLE_LAYER,
    TABLE_PATH,
    DemoTree,
    demo_config_toml,
    make_demo_tree,
)

SEED = 0
# The 10,000-file case is about counts, so its rasters and point clouds are small.
SMALL_FROM = 5000
SMALL_RASTER, SMALL_POINTS = 64, 200
DEFAULT_RASTER, DEFAULT_POINTS = 256, 2000
# Drawing a mission costs ~23 ms, so a bigger tree repeats the first 1,429 (the 10,000-file
# tree) under new ids: 100,000 files in about a minute instead of six.
DRAWN_MISSIONS = 1429
# One item per file: the OFO config with only its match changed, so the GeoPackage join
# (datetime, properties) is the same work; the item id is the path, as in the quick form.
PER_FILE_MATCH = r"missions/(?P<item>(?P<key>\d{6})/processed[^/]*/full/[^/]+\.(tif|laz))$"
_MARKER = ".bench-tree.json"
_RACY_SECONDS = 2.5  # stacsync re-checks files whose mtime is this close to its stat
_TIFF_DATE = re.compile(rb"(\d{4}:\d\d:\d\d \d\d:\d\d:\d\d)\x00")
_LAS_GUID = slice(8, 12)  # GUID data 1 of the LAS header: free for a copy number


@dataclass(frozen=True)
class BenchTree:
    """One generated tree and the per-run places a scenario writes to."""

    files_wanted: int
    missions: int
    raster_size: int
    points: int
    root: Path  # the source folder (holds missions/ and metadata/)
    work: Path  # output, manifest and config of stacsync runs live here
    per_file: bool = False  # one item per file instead of one per mission

    @property
    def asset_files(self) -> list[Path]:
        """Every file stacsync catalogs, sorted (mission folder order)."""
        return sorted(p for p in (self.root / "missions").rglob("*") if p.is_file())

    @property
    def file_count(self) -> int:
        return self.missions * len(ASSET_FILES)

    @property
    def items(self) -> int:
        return self.file_count if self.per_file else self.missions

    @property
    def config(self) -> Path:
        return self.work / "stacsync.toml"

    @property
    def output(self) -> Path:
        return self.work / "catalog"

    @property
    def manifest(self) -> Path:
        return self.work / "stacsync.db"

    @property
    def baseline_output(self) -> Path:
        return self.work / "baseline-catalog"

    @property
    def table(self) -> Path:
        return self.root / TABLE_PATH

    def label(self) -> str:
        copied = (
            f", {DRAWN_MISSIONS} drawn and repeated under new ids"
            if self.missions > DRAWN_MISSIONS
            else ""
        )
        per_file = ", one item per file" if self.per_file else ""
        return (
            f"{self.file_count:,} files ({self.missions} missions{copied}, "
            f"{self.raster_size} px{per_file})"
        )


def missions_for(files: int) -> int:
    """Missions whose asset files come closest to `files`."""
    return max(1, round(files / len(ASSET_FILES)))


def prepare(files: int, workdir: Path, *, fresh: bool = False, per_file: bool = False) -> BenchTree:
    """Generate (or reuse) the tree for `files` files and write a stacsync config for it.

    `per_file` trees share the files of the mission tree of that size, not its runs.
    """
    small = files >= SMALL_FROM
    tree = BenchTree(
        files_wanted=files,
        missions=missions_for(files),
        raster_size=SMALL_RASTER if small else DEFAULT_RASTER,
        points=SMALL_POINTS if small else DEFAULT_POINTS,
        root=workdir / f"tree-{files}" / "data",
        work=workdir / f"tree-{files}" / ("run-per-file" if per_file else "run"),
        per_file=per_file,
    )
    params = {"missions": tree.missions, "raster": tree.raster_size, "points": tree.points}
    if tree.missions > DRAWN_MISSIONS:
        params["drawn"] = DRAWN_MISSIONS
    marker = tree.root / _MARKER
    if fresh or not marker.is_file() or json.loads(marker.read_text()) != params:
        _generate(tree, params, marker)
    tree.work.mkdir(parents=True, exist_ok=True)
    tree.config.write_text(config_toml(tree), encoding="utf-8")
    return tree


def config_toml(tree: BenchTree) -> str:
    """The demo's OFO config for `tree`; for a per-file tree, its match and description changed."""
    demo = DemoTree(root=tree.root, files=(), table=tree.table, missions=())
    text = demo_config_toml(demo, tree.output, tree.manifest)
    if not tree.per_file:
        return text
    for old, new in (
        (f"match = '{MATCH}'", f"match = '{PER_FILE_MATCH}'"),
        ("one item per drone mission", "one item per file"),
    ):
        if old not in text:
            raise RuntimeError(f"the demo config no longer holds {old!r}")
        text = text.replace(old, new)
    return text


def _generate(tree: BenchTree, params: dict[str, int], marker: Path) -> None:
    _say(f"generating {tree.label()} in {tree.root} …")
    started = time.monotonic()
    shutil.rmtree(tree.root, ignore_errors=True)
    drawn = min(tree.missions, DRAWN_MISSIONS)
    make_demo_tree(tree.root, drawn, seed=SEED, raster_size=tree.raster_size, points=tree.points)
    if tree.missions > drawn:
        _say(f"  drew {drawn} missions in {time.monotonic() - started:.1f} s")
        _repeat_missions(tree.root, drawn, tree.missions)
    marker.write_text(json.dumps(params), encoding="utf-8")
    _say(f"  generated in {time.monotonic() - started:.1f} s")
    # Let the newest mtime age past stacsync's racy window, so a settled pass is really settled.
    time.sleep(_RACY_SECONDS)


def _say(message: str) -> None:
    # stdout is the report's: progress goes to stderr.
    print(message, file=sys.stderr, flush=True)


def _repeat_missions(root: Path, drawn: int, missions: int) -> None:
    """Missions `drawn`… as copies of the drawn ones under new ids, each file with its own bytes,
    and a GeoPackage with a row for every mission (and, as the demo's, one without files)."""
    for index in range(drawn, missions):
        copy = index // drawn  # 1 for the first repetition
        source = root / "missions" / _mission_id(index % drawn) / PROCESSED
        target = root / "missions" / _mission_id(index) / PROCESSED
        target.mkdir(parents=True)
        for name in ASSET_FILES:
            data = (source / name).read_bytes()
            (target / name).write_bytes(_distinct(data, copy))
    table = root / TABLE_PATH
    meta, _fids, geometry, fields = pyogrio.raw.read(table)
    names = [str(name) for name in meta["fields"]]
    # Row `drawn` of the demo's table is its mission without files: it stays last.
    rows = np.array([i % drawn for i in range(missions)] + [drawn])
    columns = [np.asarray(values)[rows] for values in fields]
    columns[names.index("dataset_id")] = np.array(
        [_mission_id(i) for i in range(missions + 1)], dtype=object
    )
    table.unlink()
    pyogrio.raw.write(
        table,
        np.asarray(geometry, dtype=object)[rows],
        columns,
        names,
        layer=TABLE_LAYER,
        driver="GPKG",
        geometry_type="MultiPolygon",
        crs="EPSG:4326",
    )


def _mission_id(index: int) -> str:
    return f"{FIRST_ID + index:06d}"


def _distinct(data: bytes, copy: int) -> bytes:
    """The file's bytes, changed where no reader looks for pixels or points, so no copy has
    the checksum of its original: the TIFF DateTime moves by `copy` seconds, the LAS GUID
    holds `copy`. Same size, same layout (a COG stays a valid COG)."""
    out = bytearray(data)
    if data[:4] == b"LASF":
        out[_LAS_GUID] = struct.pack("<I", copy)
        return bytes(out)
    found = _TIFF_DATE.search(data, 0, 4096)
    if found is None:
        raise ValueError("no TIFF DateTime in the first 4 KiB")
    when = dt.datetime.strptime(found[1].decode(), "%Y:%m:%d %H:%M:%S")
    moved = (when + dt.timedelta(seconds=copy)).strftime("%Y:%m:%d %H:%M:%S").encode()
    out[found.start(1) : found.end(1)] = moved
    return bytes(out)


def reset_stacsync(tree: BenchTree) -> None:
    """Forget every stacsync run: output folder, manifest, its WAL and lock file."""
    shutil.rmtree(tree.output, ignore_errors=True)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{tree.manifest}{suffix}").unlink(missing_ok=True)
