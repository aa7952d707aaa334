"""Run the stacsync benchmark: every scenario and both baselines per tree size, then the targets.

Usage: python -m benchmarks.run [--sizes 100,1000] [--with-10000] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import measure, scenarios, watch
from benchmarks.measure import CommandFailed, Sample, Stats, repeat, rss_method, run_process
from benchmarks.trees import BenchTree, prepare, reset_stacsync

HERE = Path(__file__).resolve().parent
SCENARIOS = (
    (
        "build_headers",
        "stacsync full first build, headers only (`read_overviews = false`)",
        scenarios.full_build_headers_only,
    ),
    ("build", "stacsync full first build (footprints, thumbnails)", scenarios.full_build),
    ("nochange", "stacsync no-change rescan", scenarios.no_change),
    ("touch", "stacsync touch 10 files", scenarios.touch),
    ("modify", "stacsync modify 1 file", scenarios.modify),
    ("remove", "stacsync remove 1 file", scenarios.remove),
)
WARM_UP_FILES = 21
LARGE = 5000  # from this size the rebuild baseline runs once by default (it is superlinear)


@dataclass
class Row:
    """One line of a size's table."""

    name: str
    stats: Stats | None
    did: str
    note: str = ""


@dataclass
class SizeResult:
    tree: BenchTree
    runs: int
    rows: dict[str, Row] = field(default_factory=dict)

    def median(self, key: str) -> float | None:
        row = self.rows.get(key)
        return row.stats.median if row and row.stats else None

    def peak(self, key: str) -> float | None:
        row = self.rows.get(key)
        return row.stats.peak_rss_mb if row and row.stats else None


# -- running -----------------------------------------------------------------------------------


def bench_size(tree: BenchTree, args: argparse.Namespace) -> SizeResult:
    result = SizeResult(tree, args.runs)
    result.rows["walk"] = _walk(tree, args.runs)
    result.rows["rebuild"] = _rebuild(tree, _baseline_runs(tree, args), args.baseline_timeout)
    for key, name, scenario in SCENARIOS:
        runs = args.build_runs if key.startswith("build") else args.runs
        _progress(f"  {name} × {runs}")
        stats, did = scenario(tree, runs)
        result.rows[key] = Row(name, stats, did)
    result.rows["watch"] = _watch(tree, args.watch_runs, args.watch_settle)
    result.rows.update(_warm(tree, args.runs))
    return result


def _warm(tree: BenchTree, runs: int) -> dict[str, Row]:
    """A no-change pass and a bare walk timed inside one running process (no start-up)."""
    _progress(f"  warm no-change pass and walk × {runs}")
    argv = [sys.executable, "-m", "benchmarks.warm_pass", str(tree.config), str(tree.root)]
    done = subprocess.run(
        [*argv, str(runs)], capture_output=True, text=True, check=True, cwd=HERE.parent
    )
    figures = json.loads(done.stdout)

    def stats(key: str) -> Stats:
        return Stats(tuple(Sample(s, figures["rss_mb"], "") for s in figures[key]))

    return {
        "warm_walk": Row("bare walk + stat, inside a running process", stats("walk"), "floor"),
        "warm_nochange": Row(
            "no-change pass inside a running process (a `stacsync run` poll)",
            stats("pass"),
            "manifest kept open, as the daemon keeps it",
        ),
    }


def _walk(tree: BenchTree, runs: int) -> Row:
    _progress(f"  bare walk × {runs}")
    argv = [sys.executable, str(HERE / "bare_walk.py"), str(tree.root)]
    stats = repeat(argv, runs)
    return Row("bare walk + stat (floor)", stats, f"{stats.last_stdout.strip()} files stat()ed")


def _baseline_runs(tree: BenchTree, args: argparse.Namespace) -> int:
    if args.baseline_runs is not None:
        return args.baseline_runs
    return 1 if tree.file_count >= LARGE else args.build_runs


def _rebuild(tree: BenchTree, runs: int, timeout: float) -> Row:
    _progress(f"  rio-stac + pystac rebuild × {runs}")
    name = "rio-stac + pystac rebuild (baseline)"
    argv = [sys.executable, "-m", "benchmarks.baseline_rebuild"]
    argv += [str(tree.root), str(tree.baseline_output)]
    try:
        stats = repeat(argv, runs, timeout=timeout)
    except CommandFailed as exc:
        return Row(name, None, "", note=f"not finished: {str(exc).splitlines()[0][-120:]}")
    items = json.loads(stats.last_stdout)["items"]
    return Row(name, stats, f"{items} items, full rebuild")


def _watch(tree: BenchTree, runs: int, settle: float) -> Row:
    name = "watch: last write → item on disk"
    if not watch.available():
        return Row(name, None, "", note="TODO: needs `stacsync run` (not in this stacsync yet)")
    if runs <= 0:
        return Row(name, None, "", note="skipped (--watch-runs 0)")
    _progress(f"  {name} × {runs}")
    try:
        stats = watch.latency(tree, runs, settle)
        return Row(name, stats, f"1 modified file; `stacsync run`, settle {settle:g} s included")
    except (TimeoutError, OSError, subprocess.SubprocessError) as exc:
        return Row(name, None, "", note=f"failed: {exc}")
    finally:
        scenarios.settle(tree)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- reporting ---------------------------------------------------------------------------------


def size_table(result: SizeResult) -> str:
    tree = result.tree
    rebuild, walk = result.median("rebuild"), result.median("walk")
    lines = [
        f"### {tree.label()}",
        "",
        "| scenario | median s | fastest s | peak RSS MB | rebuild ÷ this | this ÷ walk "
        "| what it did |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result.rows.values():
        if row.stats is None:
            lines.append(f"| {row.name} | – | – | – | – | – | {row.note} |")
            continue
        s = row.stats
        vs_rebuild = _ratio(rebuild, s.median)
        vs_walk = _ratio(s.median, walk)
        lines.append(
            f"| {row.name} | {s.median:.3f} | {s.fastest:.3f} | {s.peak_rss_mb:.0f} "
            f"| {vs_rebuild} | {vs_walk} | {row.did} |"
        )
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "–"
    return f"{a / b:,.1f}×"


@dataclass(frozen=True)
class Target:
    name: str
    figure: float | None
    goal: str
    met: bool | None


def targets(results: dict[int, SizeResult]) -> list[Target]:
    """The issue's targets, from the figures of this run (None where a size was not run)."""
    mid = results.get(1000)
    big = results.get(10000)
    out: list[Target] = []
    if mid:
        nochange = mid.median("nochange")
        out.append(
            _at_least(
                "no-change rescan @1,000: rebuild ÷ rescan", mid.median("rebuild"), nochange, 100
            )
        )
        out.append(
            _at_most("no-change rescan @1,000: rescan ÷ bare walk", nochange, mid.median("walk"), 3)
        )
        out.append(
            _at_most(
                "no-change pass inside `stacsync run` @1,000: pass ÷ bare walk (both warm)",
                mid.median("warm_nochange"),
                mid.median("warm_walk"),
                3,
            )
        )
        out.append(
            _at_least(
                "full first build @1,000, headers only: rebuild ÷ build",
                mid.median("rebuild"),
                mid.median("build_headers"),
                2,
            )
        )
        out.append(
            _at_least(
                "full first build @1,000 with footprints and thumbnails: rebuild ÷ build",
                mid.median("rebuild"),
                mid.median("build"),
                2,
            )
        )
    if mid and big:
        beyond_mid = _beyond_walk(mid, "modify")
        beyond_big = _beyond_walk(big, "modify")
        out.append(
            _at_most(
                "modify 1 file: cost beyond the walk, 10,000 ÷ 1,000", beyond_big, beyond_mid, 1.5
            )
        )
        out.append(
            _at_most(
                "peak RSS (max of all scenarios), 10,000 ÷ 1,000",
                _max_peak(big),
                _max_peak(mid),
                1.3,
            )
        )
    return out


def _beyond_walk(result: SizeResult, key: str) -> float | None:
    this, walk = result.median(key), result.median("walk")
    return None if this is None or walk is None else this - walk


def _max_peak(result: SizeResult) -> float:
    keys = [key for key, _name, _fn in SCENARIOS]
    return max(result.peak(k) or 0.0 for k in keys)


def _at_least(name: str, a: float | None, b: float | None, goal: float) -> Target:
    figure = None if a is None or not b else a / b
    return Target(name, figure, f"≥ {goal:g}×", None if figure is None else figure >= goal)


def _at_most(name: str, a: float | None, b: float | None, goal: float) -> Target:
    figure = None if a is None or not b else a / b
    return Target(name, figure, f"≤ {goal:g}×", None if figure is None else figure <= goal)


def targets_table(items: list[Target]) -> str:
    lines = ["| target | figure | goal | verdict |", "|---|---:|---:|---|"]
    for t in items:
        figure = "–" if t.figure is None else f"{t.figure:,.2f}×"
        verdict = {True: "met", False: "**missed**", None: "not measured"}[t.met]
        lines.append(f"| {t.name} | {figure} | {t.goal} | {verdict} |")
    return "\n".join(lines)


def machine() -> str:
    """nproc, CPU model, RAM, Python, rasterio and GDAL versions."""
    import rasterio

    cpu = _cpuinfo("model name") or platform.processor() or "unknown CPU"
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {ram_gib:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, rasterio "
        f"{rasterio.__version__}, GDAL {rasterio.__gdal_version__}"
    )


def _cpuinfo(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


# -- profiling ---------------------------------------------------------------------------------


def profile(tree: BenchTree, workdir: Path, top: int) -> str:
    """cProfile the full first build and the no-change rescan of `tree`; reports on disk too."""
    parts = []
    reset_stacsync(tree)
    for name in ("build", "nochange"):
        out = workdir / f"profile-{tree.files_wanted}-{name}.prof"
        argv = [sys.executable, "-m", "benchmarks.profile_pass", str(tree.config), str(out)]
        sample = run_process([*argv, "--top", str(top)])
        text = sample.stdout
        (out.with_suffix(".txt")).write_text(text, encoding="utf-8")
        parts.append(f"## profile: {name} at {tree.label()} ({out})\n{text}")
        if name == "build":
            scenarios.settle(tree)
    return "\n".join(parts)


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="File counts, comma-separated.")
    parser.add_argument("--with-10000", action="store_true", help="Add the 10,000-file tree.")
    parser.add_argument("--runs", type=int, default=5, help="Runs per incremental scenario.")
    parser.add_argument("--build-runs", type=int, default=3, help="Runs of the full build.")
    parser.add_argument("--watch-runs", type=int, default=3, help="Writes timed under `run`.")
    parser.add_argument(
        "--watch-settle",
        type=float,
        default=1.0,
        help="`stacsync run --settle-seconds` for the watch scenario (part of its latency).",
    )
    parser.add_argument(
        "--baseline-runs",
        type=int,
        help=f"Runs of the rebuild (default: as --build-runs, 1 from {LARGE:,} files).",
    )
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=1200.0,
        help="Give up on one rebuild after this many seconds.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/stacsync-bench"),
        help="Where trees (kept between runs) and outputs go.",
    )
    parser.add_argument("--fresh", action="store_true", help="Regenerate the trees.")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Also cProfile the build and no-change rescan at 1,000 files.",
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--markdown", type=Path, help="Also write the tables to this file.")
    args = parser.parse_args(argv)
    args.size_list = sorted(
        {int(s) for s in args.sizes.split(",") if s.strip()}
        | ({10000} if args.with_10000 else set())
    )
    return args


def warm_up(workdir: Path) -> None:
    """One untimed run of every command on a tiny tree, so bytecode is cached for the rest."""
    tree = prepare(WARM_UP_FILES, workdir)
    _progress(f"warming the bytecode cache on {tree.label()}")
    reset_stacsync(tree)
    scenarios.settle(tree)
    scenarios.settle(tree)
    run_process([sys.executable, str(HERE / "bare_walk.py"), str(tree.root)])
    run_process(
        [
            sys.executable,
            "-m",
            "benchmarks.baseline_rebuild",
            str(tree.root),
            str(tree.baseline_output),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    workdir = args.workdir.resolve()
    measure.pycache_prefix = workdir / "pycache"
    warm_up(workdir)
    results: dict[int, SizeResult] = {}
    for size in args.size_list:
        tree = prepare(size, workdir, fresh=args.fresh)
        _progress(f"{tree.label()}:")
        results[size] = bench_size(tree, args)
    text = render(results, args, time.monotonic() - started)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.profile:
        print(profile(prepare(1000, workdir), workdir, args.profile_top))


def render(results: dict[int, SizeResult], args: argparse.Namespace, seconds: float) -> str:
    head = (
        f"Machine: {machine()}.\n\nMedian of {args.runs} runs per scenario ({args.build_runs} "
        f"for the full build; the rebuild baseline {args.build_runs}, once from {LARGE:,} files); "
        f"each run is a whole process; peak RSS is that process's own ({rss_method()}). "
        f"Benchmark took {seconds / 60:.1f} min."
    )
    tables = [size_table(r) for r in results.values()]
    goals = targets(results)
    verdicts = targets_table(goals) if goals else "(the targets need the 1,000-file tree)"
    return "\n\n".join([head, *tables, "### Targets", verdicts])


if __name__ == "__main__":
    main()
