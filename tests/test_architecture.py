"""The house rules of docs/architecture.md, checked: one-way dependencies, no cycles, small rooms.

The import contracts live in pyproject.toml ([tool.importlinter]) and run through `lint-imports`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stacsync"
MAX_LINES = 500


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 5 kept, 0 broken." in done.stdout


def test_no_import_cycle_between_any_two_modules():
    graph = grimp.build_graph("stacsync", exclude_type_checking_imports=True, cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = [c for c in _strongly_connected(edges) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_python_irodsclient_is_imported_by_one_module():
    graph = grimp.build_graph("stacsync", include_external_packages=True, cache_dir=None)
    importers = graph.find_modules_that_directly_import("irods")
    assert importers == {"stacsync.stores.irods"}


def test_boto3_and_botocore_are_imported_by_one_module():
    graph = grimp.build_graph("stacsync", include_external_packages=True, cache_dir=None)
    for package in ("boto3", "botocore"):
        importers = graph.find_modules_that_directly_import(package)
        assert importers == {"stacsync.stores.s3"}, package


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_is_over_500_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"


def test_almost_no_flat_modules():
    flat = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert flat == ["demo.py"]  # and cli/, a package of its own
    rooms = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    assert len(rooms) >= 6


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative: the strongly connected components of `edges`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_tests_mirror_the_packages():
    tests = Path(__file__).resolve().parent
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    rooms.add("benchmarks")  # the repository's benchmark package, beside stacsync
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders <= rooms, f"test folders with no package: {sorted(folders - rooms)}"
    loose = sorted(p.name for p in tests.glob("test_*.py"))
    assert loose == ["test_architecture.py"], f"tests outside a package folder: {loose}"
