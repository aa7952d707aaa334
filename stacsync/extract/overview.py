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

__all__ = [
    "FULL_READ_BYTES",
    "MAX_LEVEL_PIXELS",
    "MIN_SIDE",
    "READ_SIDE",
    "Sample",
    "SamplePlan",
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


@dataclass(frozen=True, slots=True)
class Sample:
    """The raster at the planned scale: some bands' values and where any band has data."""

    values: np.ndarray  # (len(indexes), rows, cols) in the bands' own dtype
    indexes: tuple[int, ...]  # 1-based band numbers of `values`
    valid: np.ndarray  # (rows, cols) bool: a band other than alpha has data here
    transform: Affine  # the raster's transform at the sample's scale
    level: str


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
    return SamplePlan(shape, level)


def data_bands(colorinterp: Sequence[str]) -> tuple[int, ...]:
    """1-based numbers of the bands that hold data: every band but alpha (all if only alpha)."""
    found = tuple(i for i, ci in enumerate(colorinterp, start=1) if ci != "alpha")
    return found or tuple(range(1, len(colorinterp) + 1))


def read_sample(src: Any, plan: SamplePlan, wanted: Sequence[int] = ()) -> Sample:
    """Read the planned grid of an open rasterio dataset: data bands' values and their masks.

    Validity comes from GDAL's masks (per-dataset mask, alpha band, nodata value) plus NaN in
    float bands, whatever the nodata value: a pixel is valid where any data band is. `wanted`
    bands (for a thumbnail) are read too. GDAL picks the overview matching the grid, so only
    that level's blocks are decoded.
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
    return Sample(values, indexes, valid, transform, plan.level)
