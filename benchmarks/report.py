"""The benchmark's figures as rows and Markdown tables: one table per tree, the machine line.

`run.py` fills `SizeResult`s; `targets.py` reads them.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import Stats
from benchmarks.trees import BenchTree


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

    def cpu(self, key: str) -> float | None:
        row = self.rows.get(key)
        return row.stats.cpu_seconds if row and row.stats else None


def size_table(result: SizeResult) -> str:
    tree = result.tree
    rebuild, walk = result.median("rebuild"), result.median("walk")
    lines = [
        f"### {tree.label()}",
        "",
        "| scenario | runs | median s | fastest s | CPU s | peak RSS MB | workers' peak MB "
        "| rebuild ÷ this | this ÷ walk | what it did |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in result.rows.values():
        if row.stats is None:
            lines.append(f"| {row.name} | – | – | – | – | – | – | – | – | {row.note} |")
            continue
        s = row.stats
        vs_rebuild = _ratio(rebuild, s.median)
        vs_walk = _ratio(s.median, walk)
        lines.append(
            f"| {row.name} | {len(s.samples)} | {s.median:.3f} | {s.fastest:.3f} "
            f"| {figure(s.cpu_seconds)} | {s.peak_rss_mb:.0f} | {_mb(s.workers_peak_rss_mb)} "
            f"| {vs_rebuild} | {vs_walk} | {row.did} |"
        )
    return "\n".join(lines)


def figure(value: float | None) -> str:
    """Seconds to two decimals, "–" when not measured."""
    return "–" if value is None else f"{value:.2f}"


def _mb(value: float) -> str:
    return f"{value:.0f}" if value else "–"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "–"
    return f"{a / b:,.1f}×"


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
