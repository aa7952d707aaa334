"""What a COPC cloud's octree says about where its points are: node cubes and coarse points.

Every node's cube holds all of its points, but a coarse node's cube is large: its points are a
sample of the whole cube, and no deeper node need lie where they do. So the coarse levels are
decoded (X/Y only, a bounded number of points) and the deeper nodes stand as their cubes. Only
the COPC info VLR, the root hierarchy page and the coarse nodes are read.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import lazrs
import numpy as np

__all__ = ["MAX_POINTS", "CopcError", "CopcLayout", "CopcSample", "read_copc_sample"]

# Levels are added while the points read stay at or under this: enough to outline a survey,
# a few milliseconds to decode.
MAX_POINTS = 50_000
# The root node is read whatever its size, up to this (writers keep nodes near 100k points).
MAX_ROOT_POINTS = 250_000
_MAX_PAGE_BYTES = 8 * 1024 * 1024  # the root hierarchy page: 262,144 nodes
_INFO = struct.Struct("<5d2Q")  # center x, y, z, halfsize, spacing, root page offset, its size
_ENTRY = struct.Struct("<4iQii")  # level, x, y, z, offset, byte size, point count (-1: a page)


class CopcError(ValueError):
    """The COPC structures are missing, inconsistent with the file, or cannot be decoded."""


@dataclass(frozen=True, slots=True)
class CopcSample:
    """X/Y of every point in octree levels 0..deepest, in the file's CRS units, and the rest.

    `nodes` holds (level, x, y) of every node below `deepest` that holds points or whose
    subtree is described in a child page (not read): their cubes hold all the other points.
    The octree's cube is `center` ± `halfsize`; a level-d node (d, i, j) spans
    [center - halfsize + i * side, ... + side] in x (j in y), side = 2 * halfsize / 2**d.
    """

    x: np.ndarray
    y: np.ndarray
    deepest: int
    nodes: np.ndarray  # int64 (n, 3): level, x, y
    center: tuple[float, float]
    halfsize: float
    hierarchy_bytes: int  # of the root hierarchy page
    node_bytes: int  # of the decoded nodes


@dataclass(frozen=True, slots=True)
class CopcLayout:
    """What the header says about the points, as the COPC reader needs it."""

    size: int  # of the file, in bytes
    point_data_offset: int
    record_length: int
    scales: tuple[float, float, float]
    offsets: tuple[float, float, float]


def read_copc_sample(
    read_at: Callable[[int, int], bytes],
    layout: CopcLayout,
    info: bytes,
    laszip: bytes,
    max_points: int = MAX_POINTS,
) -> CopcSample:
    """Decode levels 0..n of the octree, the deepest n whose points stay within `max_points`.

    `read_at(offset, length)` reads the file; `info` and `laszip` are the record data of the COPC
    info VLR and the LASzip VLR. Raises CopcError for anything wrong with the structure or the
    compressed points, and lets OSError through (the caller retries transient ones).
    """
    if len(info) < _INFO.size:
        raise CopcError(f"COPC info VLR is {len(info)} bytes, shorter than {_INFO.size}")
    cx, cy, _cz, halfsize, _spacing, page_offset, page_size = _INFO.unpack_from(info)
    if not (math.isfinite(cx) and math.isfinite(cy) and math.isfinite(halfsize) and halfsize > 0):
        raise CopcError(f"COPC info VLR has an impossible cube (halfsize {halfsize})")
    entries = _root_page(read_at, layout, page_offset, page_size)
    deepest = _deepest_level(entries, max_points)
    chosen = sorted((e for e in entries if 0 <= e[0] <= deepest and e[6] > 0), key=lambda e: e[4])
    for entry in chosen:
        _check_node(entry, layout)
    compressed = b"".join(read_at(e[4], e[5]) for e in chosen)
    if len(compressed) != sum(e[5] for e in chosen):
        raise CopcError("file ended inside an octree node")
    count = sum(e[6] for e in chosen)
    points = np.zeros(count * layout.record_length, dtype=np.uint8)
    try:
        lazrs.decompress_points_with_chunk_table(
            compressed,
            laszip,
            points,
            [(e[6], e[5]) for e in chosen],
            # X and Y are all a footprint needs; the other layers stay compressed.
            lazrs.DecompressionSelection(lazrs.SELECTIVE_DECOMPRESS_XY_RETURNS_CHANNEL),
        )
    except lazrs.LazrsError as exc:
        raise CopcError(f"octree nodes cannot be decoded ({exc})") from exc
    stride = (layout.record_length,)
    x = np.ndarray((count,), "<i4", points, 0, stride) * layout.scales[0] + layout.offsets[0]
    y = np.ndarray((count,), "<i4", points, 4, stride) * layout.scales[1] + layout.offsets[1]
    below = [(e[0], e[1], e[2]) for e in entries if e[0] > deepest and e[6] != 0]
    for level, x_key, y_key in below:
        if not (0 < level < 32 and 0 <= x_key < 1 << level and 0 <= y_key < 1 << level):
            raise CopcError(f"octree node {level}-{x_key}-{y_key} is outside the octree")
    return CopcSample(
        x=x,
        y=y,
        deepest=deepest,
        nodes=np.asarray(below, dtype=np.int64).reshape(-1, 3),
        center=(cx, cy),
        halfsize=halfsize,
        hierarchy_bytes=page_size,
        node_bytes=len(compressed),
    )


def _root_page(
    read_at: Callable[[int, int], bytes], layout: CopcLayout, offset: int, size: int
) -> list[tuple[int, ...]]:
    if size == 0 or size % _ENTRY.size or size > _MAX_PAGE_BYTES:
        raise CopcError(f"COPC root hierarchy page has an impossible size ({size} bytes)")
    if offset < layout.point_data_offset or offset + size > layout.size:
        raise CopcError(
            f"COPC root hierarchy page (offset {offset}, {size} bytes) is not inside the file"
        )
    page = read_at(offset, size)
    if len(page) != size:
        raise CopcError("file ended inside the COPC root hierarchy page")
    return [_ENTRY.unpack_from(page, at) for at in range(0, size, _ENTRY.size)]


def _deepest_level(entries: list[tuple[int, ...]], max_points: int) -> int:
    """The deepest level to read: all of its points and its ancestors' fit in `max_points`."""
    points = Counter()
    paged = set()  # levels with nodes described in a child page we do not read
    for level, *_key, _offset, _size, count in entries:
        if count > 0:
            points[level] += count
        elif count < 0:
            paged.add(level)
    if points[0] == 0:
        raise CopcError("COPC octree has no points in its root node")
    if points[0] > MAX_ROOT_POINTS:
        raise CopcError(f"COPC root node holds {points[0]} points, more than we decode")
    deepest, total = 0, points[0]
    for level in range(1, max(points) + 1):
        if level in paged or not points[level] or total + points[level] > max_points:
            break
        deepest, total = level, total + points[level]
    return deepest


def _check_node(entry: tuple[int, ...], layout: CopcLayout) -> None:
    level, x, y, z, offset, size, count = entry
    if size <= 0 or offset < layout.point_data_offset or offset + size > layout.size:
        raise CopcError(
            f"octree node {level}-{x}-{y}-{z} (offset {offset}, {size} bytes) is not inside"
            " the point data"
        )
    if count > size * 100:  # LAZ never packs a point into less than a hundredth of a byte
        raise CopcError(f"octree node {level}-{x}-{y}-{z} claims {count} points in {size} bytes")
