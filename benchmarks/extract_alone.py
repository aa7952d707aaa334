"""The floor of a first build: every file of a tree checksummed and extracted in one process.

No pool, manifest or catalog: what any build that reads these files as stacsync does must spend.
Usage: python -m benchmarks.extract_alone ROOT [--one-item-per-file]; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

from stacsync.core.checksum import checksum_stream
from stacsync.extract.dispatch import extract_file, reader_for
from stacsync.extract.shown import PixelPolicy, ThumbnailBar, key_rank

MISSION_FILES = "missions/*/processed*/full/*"


def policies(files: list[Path], *, per_file: bool) -> Iterator[tuple[Path, PixelPolicy]]:
    """Each file with the pixel policy a first build gives it (see pipeline/thumbnails.py):
    a raster draws its thumbnail only if it can beat its item's other rasters by key."""
    items: dict[Path, list[Path]] = {}
    for path in files:
        items.setdefault(path if per_file else path.parent, []).append(path)
    for members in items.values():
        rasters = [(key_rank(p.stem), p.stem) for p in members if reader_for(str(p)) == "raster"]
        for path in members:
            ranked = (key_rank(path.stem), path.stem)
            others = [r for r in rasters if r != ranked]
            raster = reader_for(str(path)) == "raster"
            bar = ThumbnailBar(path.stem, *min(others)) if raster and others else None
            yield path, PixelPolicy(bar)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--one-item-per-file", action="store_true")
    args = parser.parse_args()
    files = sorted(p for p in args.root.glob(MISSION_FILES) if p.is_file())
    cpu, wall = time.process_time(), time.perf_counter()
    for path, policy in policies(files, per_file=args.one_item_per_file):
        with path.open("rb") as stream:
            checksum_stream(stream)
        extract_file(str(path), pixels=policy)
    figures = {
        "files": len(files),
        "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - wall,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
