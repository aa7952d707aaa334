"""Write a synthetic COPC file of a chosen size, for benchmarks/s3.py (needs copclib).

copclib is not a stacsync dependency: run this with an interpreter that has it, e.g.

    python3 -m venv /tmp/copcvenv && /tmp/copcvenv/bin/pip install copclib laspy lazrs numpy
    /tmp/copcvenv/bin/python benchmarks/s3_copc.py OUT.copc.laz --points 6000000

The cloud is a 1 km² terrain in UTM zone 10N (WKT CRS), point format 6, an octree of depth 4:
level L holds a share of the points proportional to 4**L, each point in the node of its level
that contains it, so the root and the first levels are a coarse, even sample of the whole.
"""

from __future__ import annotations

import argparse
import sys

import copclib
import laspy
import numpy as np
from pyproj import CRS

DEPTH = 4
SIDE = 1000.0  # metres
ORIGIN = (500_000.0, 4_200_000.0, 100.0)


def write(path: str, points: int, seed: int = 16) -> None:
    rng = np.random.default_rng(seed)
    x0, y0, z0 = ORIGIN
    x = x0 + rng.random(points) * SIDE
    y = y0 + rng.random(points) * SIDE
    z = z0 + 20 * (1 + np.sin(x / 90.0) * np.cos(y / 70.0)) + rng.random(points) * 15
    halfsize = SIDE / 2
    center = (x0 + halfsize, y0 + halfsize, z0 + halfsize)
    weights = 4.0 ** np.arange(DEPTH + 1)
    level = rng.choice(DEPTH + 1, size=points, p=weights / weights.sum())

    wkt = CRS.from_epsg(32610).to_wkt()
    scale, offset = copclib.Vector3(0.01, 0.01, 0.01), copclib.Vector3(*ORIGIN)
    config = copclib.CopcConfigWriter(6, scale, offset, wkt)
    header = config.las_header
    header.min = copclib.Vector3(float(x.min()), float(y.min()), float(z.min()))
    header.max = copclib.Vector3(float(x.max()), float(y.max()), float(z.max()))
    info = config.copc_info
    info.center_x, info.center_y, info.center_z = center
    info.halfsize = halfsize
    info.spacing = SIDE / 128
    writer = copclib.FileWriter(path, config)

    las_header = laspy.LasHeader(point_format=6, version="1.4")
    las_header.scales, las_header.offsets = [0.01] * 3, list(ORIGIN)
    low = np.array([x0, y0, z0])
    for depth in range(DEPTH + 1):
        pick = level == depth
        cells = 2**depth
        size = SIDE / cells
        cx = np.minimum(((x[pick] - low[0]) // size).astype(int), cells - 1)
        cy = np.minimum(((y[pick] - low[1]) // size).astype(int), cells - 1)
        cz = np.minimum(((z[pick] - low[2]) // size).astype(int), cells - 1)
        node_of = (cx * cells + cy) * cells + cz
        order = np.argsort(node_of, kind="stable")
        xs, ys, zs = x[pick][order], y[pick][order], z[pick][order]
        nodes, starts = np.unique(node_of[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        for node, start, end in zip(nodes, starts, ends, strict=True):
            record = laspy.ScaleAwarePointRecord.zeros(int(end - start), header=las_header)
            record.x, record.y, record.z = xs[start:end], ys[start:end], zs[start:end]
            count = int(end - start)
            record.intensity = rng.integers(0, 4000, count)
            record.return_number = np.ones(count, np.uint8)
            record.number_of_returns = np.ones(count, np.uint8)
            record.classification = np.full(count, 2, np.uint8)
            key = copclib.VoxelKey(
                depth, int(node // (cells * cells)), int(node // cells % cells), int(node % cells)
            )
            writer.AddNode(key, copclib.VectorChar(record.array.view(np.int8).ravel()))
    writer.Close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--points", type=int, default=6_000_000)
    args = parser.parse_args()
    write(args.output, args.points)
    print(args.output, file=sys.stderr)


if __name__ == "__main__":
    main()
