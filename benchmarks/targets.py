"""The issue's targets, each a ratio of two figures of one run, with its goal and verdict.

A target whose sizes did not run is listed as not measured, with the option that adds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from benchmarks import scenarios
from benchmarks.report import SizeResult, figure

MID, BIG, HUGE = 1000, 10000, 100000
_NEEDS = {MID: "`--sizes 1000`", BIG: "`--with-10000`", HUGE: "`--with-100000`"}


@dataclass(frozen=True)
class Target:
    name: str
    figure: float | None
    goal: str
    met: bool | None
    needs: str = ""  # the options that would measure it, when it was not


def targets(
    results: dict[int, SizeResult], per_file: dict[int, SizeResult] | None = None
) -> list[Target]:
    """Every target, from the figures of this run (figure None where its sizes did not run)."""
    mid, big, huge = results.get(MID), results.get(BIG), results.get(HUGE)
    big_per_file = (per_file or {}).get(BIG)

    def m(result: SizeResult | None, key: str) -> float | None:
        return result.median(key) if result else None

    def p(result: SizeResult | None, key: str) -> float | None:
        return result.peak(key) if result else None

    need_mid, need_big = _NEEDS[MID], _NEEDS[BIG]
    need_both = f"{need_mid} and {need_big}"
    return [
        _at_least(
            "no-change rescan @1,000: rebuild ÷ rescan",
            m(mid, "rebuild"),
            m(mid, "nochange"),
            100,
            need_mid,
        ),
        _at_most(
            "no-change rescan @1,000: rescan ÷ bare walk",
            m(mid, "nochange"),
            m(mid, "walk"),
            3,
            need_mid,
        ),
        _at_most(
            "no-change pass inside `stacsync run` @1,000: pass ÷ bare walk (both warm)",
            m(mid, "warm_nochange"),
            m(mid, "warm_walk"),
            3,
            need_mid,
        ),
        _at_least(
            "full first build @1,000, headers only: rebuild ÷ build",
            m(mid, "rebuild"),
            m(mid, "build_headers"),
            2,
            need_mid,
        ),
        _at_least(
            "full first build @1,000 with footprints and thumbnails: rebuild ÷ build",
            m(mid, "rebuild"),
            m(mid, "build"),
            2,
            need_mid,
        ),
        _at_least(
            "full first build @10,000 with footprints and thumbnails: rebuild ÷ build",
            m(big, "rebuild"),
            m(big, "build"),
            2,
            need_big,
        ),
        _at_least(
            "first build @10,000, one item per file: rebuild ÷ build",
            m(big_per_file, "rebuild"),
            m(big_per_file, "build"),
            20,
            "`--one-item-per-file 10000`",
        ),
        _at_most(
            "modify 1 file @10,000 ÷ @1,000",
            m(big, "modify"),
            m(mid, "modify"),
            1.5,
            need_both,
        ),
        _at_most(
            "modify 1 file: cost beyond the walk, 10,000 ÷ 1,000",
            _beyond_walk(big, "modify"),
            _beyond_walk(mid, "modify"),
            1.5,
            need_both,
        ),
        _at_most(
            "peak RSS (max of all scenarios), 10,000 ÷ 1,000",
            _max_peak(big),
            _max_peak(mid),
            1.3,
            need_both,
        ),
        _at_most(
            "peak RSS of the first build @100,000 ÷ @10,000",
            p(huge, "build"),
            p(big, "build"),
            1.5,
            f"{need_big} and {_NEEDS[HUGE]}",
        ),
    ]


def _beyond_walk(result: SizeResult | None, key: str) -> float | None:
    if result is None:
        return None
    this, walk = result.median(key), result.median("walk")
    return None if this is None or walk is None else this - walk


def _max_peak(result: SizeResult | None) -> float | None:
    if result is None:
        return None
    peaks = [result.peak(key) for key, _name, _fn in scenarios.ALL]
    return max((p for p in peaks if p is not None), default=None)


def _at_least(name: str, a: float | None, b: float | None, goal: float, needs: str) -> Target:
    figure = None if a is None or not b else a / b
    return Target(name, figure, f"≥ {goal:g}×", None if figure is None else figure >= goal, needs)


def _at_most(name: str, a: float | None, b: float | None, goal: float, needs: str) -> Target:
    figure = None if a is None or not b else a / b
    return Target(name, figure, f"≤ {goal:g}×", None if figure is None else figure <= goal, needs)


def targets_table(items: list[Target]) -> str:
    lines = ["| target | figure | goal | verdict |", "|---|---:|---:|---|"]
    for t in items:
        figure = "–" if t.figure is None else f"{t.figure:,.2f}×"
        verdict = {True: "met", False: "**missed**", None: f"not measured (needs {t.needs})"}
        lines.append(f"| {t.name} | {figure} | {t.goal} | {verdict[t.met]} |")
    return "\n".join(lines)


# The first-build targets: (what, size, one item per file, goal as rebuild ÷ build).
BUILD_GOALS = (
    ("@1,000, footprints and thumbnails", MID, False, 2.0),
    ("@10,000, footprints and thumbnails", BIG, False, 2.0),
    ("@10,000, one item per file", BIG, True, 20.0),
)


def budget_table(
    results: dict[int, SizeResult],
    per_file: dict[int, SizeResult] | None = None,
    cores: int | None = None,
) -> str:
    """What each first-build target leaves: the wall time it allows, the CPU time that is on
    every core at once, against what extracting the files alone costs in one process and what
    the build spent. A target whose CPU is less than the extraction's cannot be met by any
    pipeline around that extraction."""
    cores = cores or os.cpu_count() or 1
    rows = []
    for name, size, one_per_file, goal in BUILD_GOALS:
        result = ((per_file or {}) if one_per_file else results).get(size)
        rebuild = result.median("rebuild") if result else None
        if result is None or rebuild is None:
            continue
        allowed = rebuild / goal
        rows.append(
            f"| {name} | {rebuild:.2f} | {allowed:.2f} | {allowed * cores:.2f} "
            f"| {figure(result.cpu('extract'))} | {figure(result.median('build'))} "
            f"| {figure(result.cpu('build'))} |"
        )
    if not rows:
        options = "`--sizes 1000`, `--with-10000`, `--one-item-per-file`"
        return f"No first-build target's tree ran ({options})."
    return "\n".join(
        [
            f"What each first-build target leaves on this machine's {cores} cores (CPU s: user "
            "+ system time of every process of the run, the median run's):",
            "",
            "| first build | rebuild s | goal: build ≤ s | CPU s that allows | extraction "
            "alone, CPU s | the build, s | the build, CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
