"""What an open GeoTIFF says about itself: grid, bands, overviews, COG layout and date.

Plain facts for `RasterInfo` and `Band`, read from rasterio's dataset and our own IFD layout.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rasterio.enums import MaskFlags

from stacsync.core.records import EO_COMMON_NAMES, Band, RasterInfo
from stacsync.extract.crs import metres_per_unit
from stacsync.extract.tiff import TiffLayout, cog_status

# GDAL colour interpretations that name a spectral band. Not "yellow" (a CMYK ink, not the
# ~600 nm band), not "alpha", not "swir" (ambiguous between swir16 and swir22).
_COLOR_INTERP_COMMON = {
    "red": "red", "green": "green", "blue": "blue", "pan": "pan", "coastal": "coastal",
    "rededge": "rededge", "nir": "nir", "lwir": "lwir",
}  # fmt: skip

# TIFF DateTime is "YYYY:MM:DD HH:MM:SS" with no zone; a few writers use dashes or a "T".
_DATETIME_FORMATS = ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
_TIFF_DATETIME = re.compile(r"(\d{4}):(\d\d):(\d\d) (\d\d):(\d\d):(\d\d)", re.ASCII)


def tiff_datetime(value: str | None) -> tuple[str | None, str | None]:
    """TIFF DateTime -> ISO 8601 UTC (the tag has no zone; UTC is the catalog's convention)."""
    if not value or not value.strip():
        return None, None
    text = value.strip().rstrip("\x00")
    digits = _TIFF_DATETIME.fullmatch(text)
    if digits:  # the tag's own format, as strptime reads it, without strptime's cost
        try:
            when = datetime(*(int(d) for d in digits.groups()))
            return when.strftime("%Y-%m-%dT%H:%M:%SZ"), None
        except ValueError:
            pass  # no such day or time: the formats below say so
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).strftime("%Y-%m-%dT%H:%M:%SZ"), None
        except ValueError:
            continue
    return None, f"TIFF DateTime tag {text!r} is not a date; ignored"


def raster_info(src: Any, crs_wkt: str, layout: TiffLayout | None) -> RasterInfo:
    # rasterio rebuilds each per-band tuple on every access: read each one once.
    per_band = zip(
        src.colorinterp, src.descriptions, src.dtypes, src.nodatavals, src.units, src.scales,
        src.offsets, strict=True,
    )  # fmt: skip
    bands = tuple(_band(*values) for values in per_band)
    resolution = (float(src.res[0]), float(src.res[1]))
    unit = metres_per_unit(crs_wkt)
    block_rows, block_cols = src.block_shapes[0]
    overviews = tuple(int(f) for f in src.overviews(1))
    is_cog, problems = cog_status(src, layout)
    return RasterInfo(
        width=src.width,
        height=src.height,
        bands=bands,
        transform=tuple(float(v) for v in tuple(src.transform)[:6]),
        resolution=resolution,
        # The coarser axis: a ground sample distance should never claim more detail than exists.
        resolution_m=max(resolution) * unit if unit else None,
        overviews=overviews,
        tiled=layout.tiled if layout is not None else block_cols != src.width,
        block_shape=(int(block_rows), int(block_cols)),
        # rasterio's name, not GDAL's raw item: "YCbCr JPEG" is JPEG with a colour transform.
        compression=getattr(src.compression, "value", None),
        is_cog=is_cog,
        cog_problems=problems,
        has_alpha=_has_alpha(src),
    )


def _band(
    colorinterp: Any,
    description: str | None,
    dtype: str,
    nodata: float | None,
    unit: str | None,
    scale: float | None,
    offset: float | None,
) -> Band:
    interp = None if colorinterp.name == "undefined" else colorinterp.name
    description = description or None
    return Band(
        data_type=dtype,
        nodata=_nodata(nodata),
        description=description,
        color_interp=interp,
        common_name=_common_name(interp, description),
        unit=unit or None,
        # GDAL answers 1 and 0 when no scale/offset is set; those carry no information.
        scale=None if scale in (None, 1.0) else float(scale),
        offset=None if offset in (None, 0.0) else float(offset),
    )


def _nodata(value: float | None) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def _common_name(interp: str | None, description: str | None) -> str | None:
    # A description naming a band wins over the colour interpretation: a colour-infrared photo
    # shows its NIR band as "red".
    if description and description.strip().lower() in EO_COMMON_NAMES:
        return description.strip().lower()
    return _COLOR_INTERP_COMMON.get((interp or "").lower())


def _has_alpha(src: Any) -> bool:
    if any(ci.name == "alpha" for ci in src.colorinterp):
        return True
    return any(MaskFlags.alpha in flags for flags in src.mask_flag_enums)
