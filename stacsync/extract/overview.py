"""Read a raster's pixels once, small: its smallest useful overview, never the full resolution.

Plans which level to read (and refuses what would cost too much), then reads values and validity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

__all__ = [
    "FULL_READ_BYTES",
    "MAX_LEVEL_PIXELS",
    "MIN_SIDE",
    "READ_SIDE",
    "Sample",
    "SamplePlan",
    "border_checked",
    "data_bands",
    "plan_sample",
    "read_sample",
]

# The coarsest overview at least this long on its long side is read: coarser ones (COGs go down
# to a few pixels) would blur the outline and the thumbnail.
MIN_SIDE = 128
# The sample grid is at most this long a side; a bigger level is decimated on the read.
READ_SIDE = 512
# The most pixels (per band) GDAL may have to decode from one level to make the sample: a big
# striped raster without overviews would otherwise be read whole, on a FUSE mount or over iRODS.
MAX_LEVEL_PIXELS = 2048 * 2048
# A raster with no usable overview is read at full resolution only when the whole file is at
# most this big: a bounded cost per file, even over iRODS; bigger ones keep the grid box.
FULL_READ_BYTES = 2 * 1024 * 1024
# Bands read to decide validity: a hyperspectral cube need not be read whole to find its edge.
MAX_VALIDITY_BANDS = 8


@dataclass(frozen=True, slots=True)
class SamplePlan:
    """What to read: a grid of `shape` (rows, cols) over the whole raster, or nothing and why."""

    shape: tuple[int, int] | None
    level: str  # "1/16 overview (167x167 px)", or why nothing is read
    factor: int = 1  # the overview read (1: full resolution, possibly decimated)


@dataclass(frozen=True, slots=True)
class Sample:
    """The raster at the planned scale: some bands' values and where any band has data."""

    values: np.ndarray  # (len(indexes), rows, cols) in the bands' own dtype
    indexes: tuple[int, ...]  # 1-based band numbers of `values`
    valid: np.ndarray  # (rows, cols) bool: a band other than alpha has data here
    transform: Affine  # the raster's transform at the sample's scale
    level: str
    # (rows, cols) bool: cells holding a full-resolution valid pixel centre, as far as known:
    # `valid`, plus what the full-resolution check of the data's border found; None: as `valid`
    extent: np.ndarray | None = None


def plan_sample(width: int, height: int, factors: Sequence[int], file_size: int = 0) -> SamplePlan:
    """The level to read for a width × height raster with these overview factors (band 1).

    The coarsest overview whose long side is at least MIN_SIDE; a raster with none such is read
    at full resolution when the file is at most FULL_READ_BYTES and the image at most
    MAX_LEVEL_PIXELS, else through its finest overview; with no overview at all and too big,
    nothing is read.
    """
    levels = [(f, -(-height // f), -(-width // f)) for f in sorted(set(factors)) if f > 1]
    usable = [lv for lv in levels if max(lv[1], lv[2]) >= MIN_SIDE]
    if usable:
        factor, rows, cols = usable[-1]
    elif width * height <= MAX_LEVEL_PIXELS and file_size <= FULL_READ_BYTES:
        factor, rows, cols = 1, height, width
    elif levels:
        factor, rows, cols = levels[0]
    elif width * height > MAX_LEVEL_PIXELS:
        return SamplePlan(None, f"no overview and too big to read ({width}x{height} px)")
    else:
        mb = file_size / 2**20
        return SamplePlan(None, f"no overview and the file is too big to read whole ({mb:.1f} MB)")
    if rows * cols > MAX_LEVEL_PIXELS:
        return SamplePlan(None, f"smallest overview too big to read (1/{factor}: {cols}x{rows} px)")
    step = max(1, math.ceil(max(rows, cols) / READ_SIDE))
    shape = (-(-rows // step), -(-cols // step))
    size = f"{shape[1]}x{shape[0]} px"
    if factor == 1 and step == 1:
        level = f"full resolution ({size})"
    elif factor == 1:
        level = f"1/{step} of full resolution ({size})"
    elif step == 1:
        level = f"1/{factor} overview ({size})"
    else:
        level = f"1/{factor} overview read at 1/{factor * step} ({size})"
    return SamplePlan(shape, level, factor)


def data_bands(colorinterp: Sequence[str]) -> tuple[int, ...]:
    """1-based numbers of the bands that hold data: every band but alpha (all if only alpha)."""
    found = tuple(i for i, ci in enumerate(colorinterp, start=1) if ci != "alpha")
    return found or tuple(range(1, len(colorinterp) + 1))


def read_sample(
    src: Any, plan: SamplePlan, wanted: Sequence[int] = (), *, verify_border: bool = True
) -> Sample:
    """Read the planned grid of an open rasterio dataset: data bands' values and their masks.

    Validity comes from GDAL's masks (per-dataset mask, alpha band, nodata value) plus NaN in
    float bands, whatever the nodata value: a pixel is valid where any data band is. `wanted`
    bands (for a thumbnail) are read too. GDAL picks the overview matching the grid, so only
    that level's blocks are decoded. With `verify_border` the traced border is checked at full
    resolution (`border_checked`); without, the overview is taken at its word.
    """
    if plan.shape is None:
        raise ValueError(f"nothing to read: {plan.level}")
    rows, cols = plan.shape
    names = [ci.name for ci in src.colorinterp]
    bands = data_bands(names)
    indexes = tuple(sorted({*bands[:MAX_VALIDITY_BANDS], *wanted}))
    read = src.read(
        indexes, out_shape=(len(indexes), rows, cols), masked=True, resampling=Resampling.nearest
    )
    values = np.ma.getdata(read)
    missing = np.ma.getmaskarray(read)
    if values.dtype.kind in "fc":
        missing = missing | np.isnan(values)
    counted = [k for k, band in enumerate(indexes) if band in bands]
    valid = ~missing[counted].all(axis=0)
    transform = src.transform @ Affine.scale(src.width / cols, src.height / rows)
    checked = tuple(indexes[k] for k in counted)
    if plan.factor == 1:
        # Full resolution read (maybe decimated): pool every pixel, so none is skipped.
        if (rows, cols) != (src.height, src.width):
            valid = _FullResolution(src, checked, (rows, cols)).cells(0, rows, 0, cols)
        return Sample(values, indexes, valid, transform, plan.level, valid)
    extent = border_checked(src, checked, valid) if verify_border else valid
    return Sample(values, indexes, valid, transform, plan.level, extent)


# --- the full-resolution check of an overview's border ---------------------------------------

# At most this many full-resolution pixels (per band) are decoded to check a border; beyond it
# every cell counts as valid (the footprint is then the grid box): a bounded cost per file.
MAX_BORDER_PIXELS = 16 * MAX_LEVEL_PIXELS
# Border cells are read in windows of about this many full-resolution pixels a side (at least
# one cell), so neighbouring cells share a read and GDAL decodes each block about once.
_WINDOW_SIDE = 256


def border_checked(src: Any, bands: Sequence[int], valid: np.ndarray) -> np.ndarray:
    """`valid` (cells of an overview-scale grid) grown by the cells that hold a full-resolution
    valid pixel centre and touch the valid cells, transitively.

    An overview can disagree with full resolution (an averaging overview turns a block with one
    NaN into NaN; a nearest one picks a nodata pixel): every invalid cell next to a valid one is
    read at full resolution, and so on from any cell found valid, so every cell around the
    result was seen empty at full resolution. The cost grows with the border, not the area.
    All cells count as valid if more than MAX_BORDER_PIXELS would be decoded.
    """
    full = _FullResolution(src, bands, valid.shape)
    rows, cols = valid.shape
    extent = valid.copy()
    known = valid.copy()
    step_r = max(1, round(_WINDOW_SIDE / full.cell[0]))
    step_c = max(1, round(_WINDOW_SIDE / full.cell[1]))
    while True:
        frontier = _around(extent) & ~known
        if not frontier.any():
            return extent
        br, bc = np.nonzero(frontier)
        windows = set(zip((br // step_r).tolist(), (bc // step_c).tolist(), strict=True))
        for wr, wc in sorted(windows):
            r0, c0 = wr * step_r, wc * step_c
            r1, c1 = min(rows, r0 + step_r), min(cols, c0 + step_c)
            if full.decoded > MAX_BORDER_PIXELS:
                return np.ones_like(valid)
            extent[r0:r1, c0:c1] |= full.cells(r0, r1, c0, c1)
            known[r0:r1, c0:c1] = True


def _around(cells: np.ndarray) -> np.ndarray:
    """Cells next to (8 ways) a True cell, the True cells included."""
    p = np.pad(cells, 1)
    out = np.zeros_like(cells)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            out |= p[dr : dr + cells.shape[0], dc : dc + cells.shape[1]]
    return out


class _FullResolution:
    """Which cells of a coarser grid over the raster hold a valid full-resolution pixel centre."""

    def __init__(self, src: Any, bands: Sequence[int], shape: tuple[int, int]) -> None:
        self.src, self.bands = src, tuple(bands)
        self.cell = (src.height / shape[0], src.width / shape[1])
        self.decoded = 0

    def _firsts(self, start: int, stop: int, axis: int, size: int) -> np.ndarray:
        """First full-resolution pixel whose centre is in each cell start..stop along `axis`
        (`size` pixels long): the last one ends the cells, at most at the raster's edge."""
        # As math.ceil(cell * self.cell[axis] - 0.5) per cell: the same float operations.
        cells = np.arange(start, stop + 1, dtype=np.float64)
        firsts = np.maximum(0, np.ceil(cells * self.cell[axis] - 0.5)).astype(np.int64)
        firsts[-1] = min(firsts[-1], size)
        return firsts

    def cells(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """(r1 - r0, c1 - c0) bool: the cells in these rows and columns that hold one."""
        row_starts = self._firsts(r0, r1, 0, self.src.height)
        col_starts = self._firsts(c0, c1, 1, self.src.width)
        top, left = int(row_starts[0]), int(col_starts[0])
        window = Window(left, top, int(col_starts[-1]) - left, int(row_starts[-1]) - top)
        pixels = self.valid(window)
        rs = row_starts[:-1] - top
        cs = col_starts[:-1] - left
        if pixels.size and _uniform(rs, pixels.shape[0]) and _uniform(cs, pixels.shape[1]):
            # Cells of k × m pixels each (an overview's usual case): a reshape pools them at a
            # fraction of reduceat's cost, to the same answer.
            k, m = pixels.shape[0] // len(rs), pixels.shape[1] // len(cs)
            return pixels.reshape(len(rs), k, len(cs), m).any(axis=(1, 3))
        pooled = np.logical_or.reduceat(pixels, rs, axis=0) if pixels.size else pixels
        return np.logical_or.reduceat(pooled, cs, axis=1) if pooled.size else pooled

    def valid(self, window: Window) -> np.ndarray:
        """Full-resolution validity in `window`: a band's mask says so and it is not NaN."""
        self.decoded += int(window.width * window.height)
        masks = self.src.read_masks(self.bands, window=window) > 0
        if np.dtype(self.src.dtypes[self.bands[0] - 1]).kind in "fc":
            masks &= ~np.isnan(self.src.read(self.bands, window=window))
        return masks.any(axis=0)


def _uniform(starts: np.ndarray, length: int) -> bool:
    """Whether `starts` cut 0..length into pieces of one size."""
    step = length // len(starts)
    return step * len(starts) == length and np.array_equal(starts, np.arange(len(starts)) * step)
