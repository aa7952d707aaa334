"""The benchmark's CPU figures: a run's CPU time counts the processes below it, the floor
module draws the thumbnails a build draws, and the budget table does its arithmetic."""

from __future__ import annotations

import json
import sys
import textwrap

from benchmarks.extract_alone import policies
from benchmarks.measure import Sample, Stats, run_process
from benchmarks.report import Row, SizeResult
from benchmarks.targets import budget_table
from benchmarks.trees import BenchTree
from stacsync.demo import make_demo_tree

# A grandchild that burns this much CPU, under a child that only waits for it.
BURN = 0.5


def test_a_runs_cpu_time_counts_the_processes_below_it():
    burn = f"import time\nwhile time.process_time() < {BURN}: pass"
    child = textwrap.dedent(f"""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", {burn!r}], check=True)
    """)
    sample = run_process([sys.executable, "-c", child])
    # The last ~10 ms of the grandchild's life can fall after the last reading; the child
    # itself uses far less than BURN, so the figure is the grandchild's.
    assert BURN * 0.7 <= sample.cpu_seconds <= BURN + 1.0


def test_the_floor_draws_only_the_thumbnails_a_first_build_draws(tmp_path):
    make_demo_tree(tmp_path / "data", missions=2, raster_size=32, points=50)
    files = sorted(p for p in (tmp_path / "data").glob("missions/*/processed*/full/*"))
    assert len(files) == 14  # per mission: 6 rasters and a point cloud

    by_mission = dict(policies(files, per_file=False))
    # An item shows its orthomosaic: no other raster draws (their headers are not known yet,
    # so they are ranked by key, as the pass ranks them); point clouds have no bar.
    drawing = [p.name for p in files if p.suffix == ".tif" and by_mission[p].draws(None)]
    assert drawing == ["orthomosaic.tif", "orthomosaic.tif"]
    assert all(by_mission[p].thumbnail is None for p in files if p.suffix == ".laz")
    # One item per file: every raster is its item's only one, and draws.
    assert all(policy.thumbnail is None for _, policy in policies(files, per_file=True))


def _result(tmp_path, per_file: bool, rebuild: float, build: float, cpu: dict) -> SizeResult:
    tree = BenchTree(10003, 1429, 64, 200, tmp_path, tmp_path, per_file=per_file)
    result = SizeResult(tree, 1)
    for key, seconds in (("rebuild", rebuild), ("build", build), ("extract", build)):
        stats = Stats((Sample(seconds, 1.0, json.dumps({}), cpu_seconds=cpu.get(key)),))
        result.rows[key] = Row(key, stats, "")
    return result


def test_the_budget_table_gives_each_build_target_its_cpu(tmp_path):
    missions = _result(tmp_path, False, 30.0, 20.0, {"extract": 25.0, "build": 39.0})
    per_file = _result(tmp_path, True, 320.0, 45.0, {"extract": 29.5, "build": 75.0})

    table = budget_table({10000: missions}, {10000: per_file}, cores=2)

    lines = table.splitlines()
    # goal: 30 / 2 = 15 s, so 30 CPU s on 2 cores; one per file 320 / 20 = 16 s, 32 CPU s.
    assert (
        "| @10,000, footprints and thumbnails | 30.00 | 15.00 | 30.00 | 25.00 | 20.00 | 39.00 |"
        in lines
    )
    assert (
        "| @10,000, one item per file | 320.00 | 16.00 | 32.00 | 29.50 | 45.00 | 75.00 |" in lines
    )
    assert sum(line.startswith("| @") for line in lines) == 2  # @1,000 did not run
    assert budget_table({}, {}, cores=2).startswith("No first-build target's tree ran")
