"""Run the stacsync benchmark: every scenario and both baselines per tree size, then the targets.

Usage: python -m benchmarks.run [--with-10000] [--with-100000] [--one-item-per-file] … (README)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import measure, scenarios, watch
from benchmarks.measure import CommandFailed, Sample, Stats, repeat, rss_method, run_process
from benchmarks.report import Row, SizeResult, machine, size_table
from benchmarks.targets import budget_table, targets, targets_table
from benchmarks.trees import BenchTree, prepare, reset_stacsync

HERE = Path(__file__).resolve().parent
WARM_UP_FILES = 21
LARGE = 5000  # from this size the rebuild baseline runs once by default (it is superlinear)
# From this size only the first build and the no-change rescan run (and the walk, their
# floor): a rebuild of 10,000 files already takes ~30 s and grows faster than the tree.
HUGE = 50000
PER_FILE_SCENARIOS = ("build", "nochange")


# -- running -----------------------------------------------------------------------------------


def bench_size(tree: BenchTree, args: argparse.Namespace) -> SizeResult:
    """Every scenario on one mission tree; at HUGE and beyond, the build and no-change only."""
    if tree.file_count >= HUGE:
        return _bench_huge(tree, args.huge_runs)
    result = SizeResult(tree, args.runs)
    result.rows["walk"] = _walk(tree, args.runs)
    result.rows["rebuild"] = _rebuild(tree, _baseline_runs(tree, args), args.baseline_timeout)
    result.rows["extract"] = _extract_alone(tree, args.build_runs)
    for key, name, scenario in scenarios.ALL:
        _scenario(result, key, name, scenario, _runs(key, args))
    result.rows["watch"] = _watch(tree, args.watch_runs, args.watch_settle)
    result.rows.update(_warm(tree, args.runs))
    return result


def _bench_huge(tree: BenchTree, runs: int) -> SizeResult:
    result = SizeResult(tree, runs)
    result.rows["walk"] = _walk(tree, runs)
    result.rows["rebuild"] = Row(
        "rio-stac + pystac rebuild (baseline)",
        None,
        "",
        note=f"not run from {HUGE:,} files (it grows faster than the tree; see README)",
    )
    for key in ("build", "nochange"):
        _scenario(result, key, scenarios.NAMES[key], _function(key), runs)
    return result


def bench_per_file(tree: BenchTree, args: argparse.Namespace) -> SizeResult:
    """One item per file: the walk, the rebuild, the first build and the no-change rescan."""
    result = SizeResult(tree, args.runs)
    result.rows["walk"] = _walk(tree, args.runs)
    result.rows["rebuild"] = _rebuild(tree, _baseline_runs(tree, args), args.baseline_timeout)
    result.rows["extract"] = _extract_alone(tree, args.build_runs)
    for key in PER_FILE_SCENARIOS:
        _scenario(result, key, scenarios.NAMES[key], _function(key), _runs(key, args))
    return result


def _function(key: str):
    return next(fn for k, _name, fn in scenarios.ALL if k == key)


def _runs(key: str, args: argparse.Namespace) -> int:
    return args.build_runs if key.startswith("build") else args.runs


def _scenario(result: SizeResult, key: str, name: str, scenario, runs: int) -> None:
    _progress(f"  {name} × {runs}")
    stats, did = scenario(result.tree, runs)
    result.rows[key] = Row(name, stats, did)


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


def _extract_alone(tree: BenchTree, runs: int) -> Row:
    """The floor of the first build: its files' checksums and extraction in one process."""
    name = "extraction alone, one process (floor of the first build)"
    _progress(f"  {name} × {runs}")
    argv = [sys.executable, "-m", "benchmarks.extract_alone", str(tree.root)]
    stats = repeat([*argv, "--one-item-per-file"] if tree.per_file else argv, runs)
    done = json.loads(stats.last_stdout)
    return Row(
        name,
        stats,
        f"{done['files']} files checksummed and extracted, thumbnails as the build draws them "
        f"(last run: {done['cpu_seconds']:.2f} CPU s after start-up and imports)",
    )


def _baseline_runs(tree: BenchTree, args: argparse.Namespace) -> int:
    if args.baseline_runs is not None:
        return args.baseline_runs
    return 1 if tree.file_count >= LARGE else args.build_runs


def _rebuild(tree: BenchTree, runs: int, timeout: float) -> Row:
    _progress(f"  rio-stac + pystac rebuild × {runs}")
    name = "rio-stac + pystac rebuild (baseline)"
    argv = [*_baseline_argv(tree)]
    try:
        stats = repeat(argv, runs, timeout=timeout)
    except CommandFailed as exc:
        return Row(name, None, "", note=f"not finished: {str(exc).splitlines()[0][-120:]}")
    done = json.loads(stats.last_stdout)
    phases = done["phases"]  # of the last run, timed inside it
    rest = stats.samples[-1].seconds - sum(phases.values())
    return Row(
        name,
        stats,
        f"{done['items']} items, full rebuild (last run: start-up and imports {rest:.1f} s, "
        f"files read {phases['files']:.1f} s, pystac tree and save {phases['tree']:.1f} s, "
        f"index.geojson {phases['index']:.1f} s)",
    )


def _baseline_argv(tree: BenchTree) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.baseline_rebuild"]
    argv += [str(tree.root), str(tree.baseline_output)]
    return [*argv, "--one-item-per-file"] if tree.per_file else argv


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


def dask_section(workdir: Path, files: int) -> str:
    """benchmarks.dask_cluster on the local tree of `files` files, as its own process, last
    (its cluster would load the cores under any other figure); its tables as they come."""
    _progress(f"Dask LocalCluster vs the local pool at {files:,} files (benchmarks.dask_cluster)")
    argv = [sys.executable, "-m", "benchmarks.dask_cluster", "--files", str(files)]
    argv += ["--workdir", str(workdir), "--skip-s3"]
    done = subprocess.run(
        argv, stdout=subprocess.PIPE, text=True, cwd=HERE.parent, env=measure.child_env()
    )
    if done.returncode != 0:
        return f"### Dask LocalCluster vs the local pool\n\nfailed: exit {done.returncode}"
    return "### Dask LocalCluster vs the local pool\n\n" + done.stdout.strip()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    parser.add_argument(
        "--with-100000",
        action="store_true",
        help="Add the 100,000-file tree (first build and no-change rescan only).",
    )
    parser.add_argument(
        "--one-item-per-file",
        nargs="?",
        const="10000",
        default="",
        metavar="SIZES",
        help="Also catalog these trees one item per file (default 10000): the walk, the "
        "rebuild, the first build and the no-change rescan.",
    )
    parser.add_argument("--runs", type=int, default=5, help="Runs per incremental scenario.")
    parser.add_argument("--build-runs", type=int, default=3, help="Runs of the full build.")
    parser.add_argument(
        "--huge-runs",
        type=int,
        default=1,
        help=f"Runs of each scenario from {HUGE:,} files.",
    )
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
        "--with-dask",
        action="store_true",
        help="Last, benchmarks.dask_cluster on the local tree (--skip-s3): Dask vs local pool.",
    )
    parser.add_argument("--dask-files", type=int, default=1000, help="Tree of --with-dask.")
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
        _sizes(args.sizes)
        | ({10000} if args.with_10000 else set())
        | ({100000} if args.with_100000 else set())
    )
    args.per_file_sizes = sorted(_sizes(args.one_item_per_file))
    return args


def _sizes(text: str) -> set[int]:
    return {int(s) for s in text.split(",") if s.strip()}


def warm_up(workdir: Path) -> None:
    """One untimed run of every command on a tiny tree, so bytecode is cached for the rest."""
    tree = prepare(WARM_UP_FILES, workdir)
    _progress(f"warming the bytecode cache on {tree.label()}")
    reset_stacsync(tree)
    scenarios.settle(tree)
    scenarios.settle(tree)
    run_process([sys.executable, str(HERE / "bare_walk.py"), str(tree.root)])
    run_process(_baseline_argv(tree))
    run_process(_baseline_argv(prepare(WARM_UP_FILES, workdir, per_file=True)))


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
    per_file: dict[int, SizeResult] = {}
    for size in args.per_file_sizes:
        # --fresh regenerates a tree once: the mission run above already did it.
        fresh = args.fresh and size not in results
        tree = prepare(size, workdir, fresh=fresh, per_file=True)
        _progress(f"{tree.label()}:")
        per_file[size] = bench_per_file(tree, args)
    dask = dask_section(workdir, args.dask_files) if args.with_dask else None
    text = render(results, per_file, dask, args, time.monotonic() - started)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.profile:
        print(profile(prepare(1000, workdir), workdir, args.profile_top))


def render(
    results: dict[int, SizeResult],
    per_file: dict[int, SizeResult],
    dask: str | None,
    args: argparse.Namespace,
    seconds: float,
) -> str:
    rebuilds = (
        f"{args.baseline_runs}"
        if args.baseline_runs is not None
        else f"{args.build_runs}, once from {LARGE:,} files"
    )
    head = (
        f"Machine: {machine()}.\n\nMedian of {args.runs} runs per scenario ({args.build_runs} "
        f"for the full build; the rebuild baseline {rebuilds}; "
        f"from {HUGE:,} files only the walk, the first build and the no-change rescan, "
        f"{args.huge_runs} run each); the `runs` column says how many; each run is a whole "
        f"process; peak RSS is that process's own ({rss_method()}). "
        f"Benchmark took {seconds / 60:.1f} min."
    )
    tables = [size_table(r) for r in results.values()]
    tables += [size_table(r) for r in per_file.values()]
    verdicts = targets_table(targets(results, per_file))
    budget = budget_table(results, per_file)
    return "\n\n".join([head, *tables, *([dask] if dask else []), "### Targets", verdicts, budget])


if __name__ == "__main__":
    main()
