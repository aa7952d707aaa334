"""Benchmark extraction on a Dask LocalCluster (2 workers) against the local pool (issue 17).

Usage: python -m benchmarks.dask_cluster [--files 1000] [--workdir DIR] [--skip-s3]
       [--markdown FILE]

One run, side by side: a full first build of the same OFO-shaped tree by `stacsync rescan`
with the local process pool, then with `--scheduler` on a LocalCluster started here (its first
pass, then a second on warm workers); then the same tree uploaded to moto_server and built
from S3 both ways, where every request is counted (the relay of benchmarks/s3.py) and CPU
is read per process: the per-file costs docs/scale.md projects a 1,000,000-object build from.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.report import machine
from benchmarks.trees import BenchTree, prepare, reset_stacsync

STACSYNC = Path(sys.executable).with_name("stacsync")
BUCKET, PREFIX = "scale", "missions/"
WORKERS = 2


@dataclass
class Build:
    """One `stacsync rescan --json` process and what it cost."""

    name: str
    seconds: float
    summary: dict
    coordinator_cpu: float  # user + sys of the stacsync process (and its own children)
    worker_cpu: float | None = None  # user + sys of the Dask workers during the pass
    requests: Counter[str] = field(default_factory=Counter)  # S3 requests by operation
    body_bytes: int = 0
    # The local pool's workers are children of a fork server the pass never waits for:
    # their CPU is nowhere in this process's accounts.
    cpu_counted: bool = True

    @property
    def files(self) -> int:
        return self.summary["added"] + self.summary["modified"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu() -> float:
    """On a Dask worker: the CPU seconds its process used so far (all its threads)."""
    times = os.times()
    return times.user + times.system


def _set_environ(values: dict[str, str]) -> None:
    """On a Dask worker: add `values` to its environment."""
    os.environ.update(values)


def stacsync_build(name: str, argv: list[str], env: dict[str, str], client=None) -> Build:
    """Run one build as a process; with `client`, also the CPU its Dask workers spent."""
    before_workers = sum(client.run(_process_cpu).values()) if client else None
    before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run([str(STACSYNC), *argv, "--json"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: stacsync exited {done.returncode}:\n{done.stderr[-3000:]}")
    workers = None
    if client is not None:
        workers = sum(client.run(_process_cpu).values()) - before_workers
    build = Build(name, seconds, json.loads(done.stdout), _children_cpu() - before, workers)
    print(f"  {name}: {seconds:.2f} s, {build.files} files", file=sys.stderr, flush=True)
    return build


def catalog_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- the local tree ----------------------------------------------------------------------


def local_builds(tree: BenchTree, address: str, client) -> tuple[list[Build], bool]:
    """Local pool, then Dask cold and warm; True when all three catalogs are byte-identical."""
    env = dict(os.environ)
    argv = ["rescan", "--config", str(tree.config)]
    builds, catalogs = [], []
    for name, extra, cluster in (
        ("local pool (2 processes)", [], None),
        ("Dask LocalCluster, 2 workers: first pass (workers import the readers)", True, client),
        ("Dask LocalCluster, 2 workers: warm", True, client),
    ):
        reset_stacsync(tree)
        more = ["--scheduler", address] if extra else []
        builds.append(stacsync_build(name, argv + more, env, cluster))
        builds[-1].cpu_counted = bool(extra)
        catalogs.append(catalog_bytes(tree.output))
    return builds, all(c == catalogs[0] for c in catalogs)


# -- the same tree on S3 (moto_server) ---------------------------------------------------


def s3_builds(tree: BenchTree, workdir: Path, address: str, client) -> list[Build]:
    from benchmarks.s3 import Server, aws_env

    env = aws_env()
    credentials = {k: v for k, v in env.items() if k.startswith("AWS_")}
    os.environ.update(credentials)  # for the uploads; the local-tree builds are done
    # Workers read the store with their own credentials: moto's, in their environment
    # only from here on (rasterio builds an AWS session per open when it sees them).
    client.run(_set_environ, credentials)
    server = Server(workdir)
    try:
        server.client.create_bucket(Bucket=BUCKET)
        files = tree.asset_files
        missions = tree.root / "missions"
        uploads = [(PREFIX + str(p.relative_to(missions)), p.read_bytes) for p in files]
        megabytes = server.put_many(BUCKET, uploads) / 1e6
        print(f"  uploaded {len(files)} objects, {megabytes:.0f} MB", file=sys.stderr)
        builds = []
        for name, more, cluster in (
            ("S3, local threads (`extract.remote_threads` = 32)", [], None),
            ("S3, Dask LocalCluster, 2 workers (warm)", ["--scheduler", address], client),
        ):
            out = workdir / "s3-run"
            reset_stacsync(_Places(out))
            argv = ["rescan", f"s3://{BUCKET}/{PREFIX}", "--endpoint-url", server.endpoint]
            argv += ["--output", str(out / "catalog"), "--manifest", str(out / "stacsync.db")]
            server.log.take()
            build = stacsync_build(name, argv + more, env, cluster)
            hits = server.log.take()
            build.requests = Counter(h.op for h in hits)
            build.body_bytes = sum(h.body_bytes for h in hits)
            builds.append(build)
        return builds
    finally:
        server.close()


@dataclass(frozen=True)
class _Places:
    """What `reset_stacsync` needs of a tree: its output folder and manifest."""

    work: Path

    @property
    def output(self) -> Path:
        return self.work / "catalog"

    @property
    def manifest(self) -> Path:
        return self.work / "stacsync.db"


# -- report ------------------------------------------------------------------------------


def table(builds: list[Build], baseline: Build) -> str:
    rows = [
        "| build | wall s | vs local pool | coordinator CPU s | worker CPU s | "
        "CPU ms per file (coord. + workers) | S3 requests per file | KB read per file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in builds:
        n = max(1, b.files)
        cpu = b.coordinator_cpu + (b.worker_cpu or 0.0)
        per_file = f"{1000 * b.coordinator_cpu / n:.1f} + {1000 * (b.worker_cpu or 0) / n:.1f}"
        per_file = f"{per_file} ({1000 * cpu / n:.1f})" if b.cpu_counted else "pool not counted"
        requests = sum(b.requests.values())
        ops = ", ".join(f"{op} {c / n:.2f}" for op, c in sorted(b.requests.items()))
        rows.append(
            f"| {b.name} | {b.seconds:.2f} | {baseline.seconds / b.seconds:.2f}× "
            f"| {b.coordinator_cpu:.2f} | {'' if b.worker_cpu is None else f'{b.worker_cpu:.2f}'} "
            f"| {per_file} "
            f"| {f'{requests / n:.2f} ({ops})' if requests else ''} "
            f"| {f'{b.body_bytes / n / 1024:.1f}' if requests else ''} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="Files of the OFO tree.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/stacsync-bench"))
    parser.add_argument("--skip-s3", action="store_true", help="Only the local tree.")
    parser.add_argument("--markdown", type=Path, help="Also write the tables to this file.")
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    started = time.monotonic()
    tree = prepare(args.files, args.workdir)
    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster_seconds = time.perf_counter() - t0
        print(f"  LocalCluster up in {cluster_seconds:.2f} s", file=sys.stderr)
        address = cluster.scheduler_address
        builds, same = local_builds(tree, address, client)
        s3 = [] if args.skip_s3 else s3_builds(tree, args.workdir, address, client)
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    text = [
        f"{machine()}; load average at the end {load} (1/5/15 min; other work on the VM).",
        "",
        f"{tree.label()}, the OFO config (footprints and thumbnails), `batch_files` = 50; "
        f"LocalCluster of {WORKERS} worker processes × 1 thread on the same 2 cores, started "
        f"in {cluster_seconds:.1f} s (not in the figures). Catalogs byte-identical across the "
        f"three local-tree builds: **{'yes' if same else 'NO'}**.",
        "",
        table(builds, builds[0]),
    ]
    if s3:
        text += [
            "",
            f"The same {len(tree.asset_files):,} files from S3 (moto_server behind a logging "
            "relay on 127.0.0.1), quick form (one item per file):",
            "",
            table(s3, s3[0]),
        ]
    text += ["", f"Benchmark took {(time.monotonic() - started) / 60:.1f} min."]
    report = "\n".join(text)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
