"""Benchmark trees: OFO-shaped folders from the demo generator, cached by their parameters.

A tree of N files is round(N / 7) missions (6 COGs and a LAZ each) plus the mission GeoPackage.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from stacsync.demo import ASSET_FILES, TABLE_PATH, DemoTree, demo_config_toml, make_demo_tree

SEED = 0
# The 10,000-file case is about counts, so its rasters and point clouds are small.
SMALL_FROM = 5000
SMALL_RASTER, SMALL_POINTS = 64, 200
DEFAULT_RASTER, DEFAULT_POINTS = 256, 2000
_MARKER = ".bench-tree.json"
_RACY_SECONDS = 2.5  # stacsync re-checks files whose mtime is this close to its stat


@dataclass(frozen=True)
class BenchTree:
    """One generated tree and the per-run places a scenario writes to."""

    files_wanted: int
    missions: int
    raster_size: int
    points: int
    root: Path  # the source folder (holds missions/ and metadata/)
    work: Path  # output, manifest and config of stacsync runs live here

    @property
    def asset_files(self) -> list[Path]:
        """Every file stacsync catalogs, sorted (mission folder order)."""
        return sorted(p for p in (self.root / "missions").rglob("*") if p.is_file())

    @property
    def file_count(self) -> int:
        return self.missions * len(ASSET_FILES)

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
        return f"{self.file_count:,} files ({self.missions} missions, {self.raster_size} px)"


def missions_for(files: int) -> int:
    """Missions whose asset files come closest to `files`."""
    return max(1, round(files / len(ASSET_FILES)))


def prepare(files: int, workdir: Path, *, fresh: bool = False) -> BenchTree:
    """Generate (or reuse) the tree for `files` files and write a stacsync config for it."""
    small = files >= SMALL_FROM
    tree = BenchTree(
        files_wanted=files,
        missions=missions_for(files),
        raster_size=SMALL_RASTER if small else DEFAULT_RASTER,
        points=SMALL_POINTS if small else DEFAULT_POINTS,
        root=workdir / f"tree-{files}" / "data",
        work=workdir / f"tree-{files}" / "run",
    )
    params = {"missions": tree.missions, "raster": tree.raster_size, "points": tree.points}
    marker = tree.root / _MARKER
    if fresh or not marker.is_file() or json.loads(marker.read_text()) != params:
        _generate(tree, params, marker)
    tree.work.mkdir(parents=True, exist_ok=True)
    demo = DemoTree(root=tree.root, files=(), table=tree.table, missions=())
    tree.config.write_text(demo_config_toml(demo, tree.output, tree.manifest), encoding="utf-8")
    return tree


def _generate(tree: BenchTree, params: dict[str, int], marker: Path) -> None:
    print(f"generating {tree.label()} in {tree.root} …", flush=True)
    started = time.monotonic()
    shutil.rmtree(tree.root, ignore_errors=True)
    make_demo_tree(
        tree.root, tree.missions, seed=SEED, raster_size=tree.raster_size, points=tree.points
    )
    marker.write_text(json.dumps(params), encoding="utf-8")
    # Let the newest mtime age past stacsync's racy window, so a settled pass is really settled.
    time.sleep(max(0.0, _RACY_SECONDS - (time.monotonic() - started)))
    print(f"  generated in {time.monotonic() - started:.1f} s", flush=True)


def reset_stacsync(tree: BenchTree) -> None:
    """Forget every stacsync run: output folder, manifest, its WAL and lock file."""
    shutil.rmtree(tree.output, ignore_errors=True)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{tree.manifest}{suffix}").unlink(missing_ok=True)
