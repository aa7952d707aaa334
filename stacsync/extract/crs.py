"""Name and parse CRSs with pyproj: any CRS text to an authority code and WKT2, cached.

Both extractors go through here, so rasters and point clouds name a CRS with the same PROJ.
"""

from __future__ import annotations

import functools
import math

from pyproj import CRS
from pyproj.exceptions import CRSError

from stacsync.core.errors import ExtractError

__all__ = ["MIN_CONFIDENCE", "identify_crs", "metres_per_unit", "parse_crs", "strip_compound"]

# PROJ's identification confidence: 100 = same name and equivalent, 90/70 = equivalent definition
# under another name, 50/25 = NOT equivalent (only the names look alike). 70 is therefore the
# lowest level at which a code denotes the same coordinates; asking for 90+ would only drop codes
# of files whose writer spelled the name differently (the LAS file with both WKT and GeoTIFF keys
# is EPSG:6880 only at 70). Never accept below 70: rgb1.tif's UTM 18N WKT matches EPSG:3450 at 50.
MIN_CONFIDENCE = 70


def identify_crs(crs_text: str) -> tuple[str | None, str]:
    """Any CRS text (WKT1/WKT2/PROJJSON/'EPSG:n'/ESRI WKT) -> (authority code or None, WKT2_2019).

    The code is 'AUTH:CODE' (EPSG preferred when an equivalent EPSG CRS exists). A compound CRS
    without a code of its own gets its horizontal part's code; a BoundCRS its source CRS's code.
    The WKT2 always describes the full CRS as given. Raises ExtractError when it cannot be parsed.
    """
    return _identify_cached(crs_text)


def parse_crs(crs_text: str) -> CRS:
    """Any CRS text -> pyproj CRS, parsed once per distinct text; ExtractError when unparseable.

    The returned object is shared between callers and threads (pyproj >= 3.1 CRS objects are
    thread-safe): never modify it.
    """
    return _parse(crs_text)


@functools.lru_cache(maxsize=256)
def metres_per_unit(crs_wkt: str) -> float | None:
    """Linear unit of a projected CRS in metres (1.0 for metre, 0.3048 for foot...).

    None for geographic, geocentric or unparseable CRSs and for mixed axis units.
    """
    try:
        crs = _parse(crs_wkt)
    except ExtractError:
        return None
    crs = strip_compound(crs)
    if crs.is_bound:
        crs = crs.source_crs
    if not (crs.is_projected or crs.is_engineering):
        return None
    factors = {a.unit_conversion_factor for a in crs.axis_info[:2]}
    if len(factors) != 1:
        return None
    factor = factors.pop()
    return float(factor) if factor and math.isfinite(factor) and factor > 0 else None


@functools.lru_cache(maxsize=256)
def _identify_cached(crs_text: str) -> tuple[str | None, str]:
    # Identification queries proj.db (tens of ms); a pass sees the same few CRSs thousands of times.
    crs = _parse(crs_text)
    wkt = crs.to_wkt("WKT2_2019")
    if not wkt:
        raise ExtractError(f"CRS cannot be written as WKT2: {crs.name}")
    return _authority_code(crs), wkt


# Parsing WKT costs about a millisecond and identification far more; thousands of files of one
# mission share one CRS, so every CRS step below is cached by the text it starts from. ExtractErrors
# are not cached (lru_cache never stores exceptions), which only costs time for broken files.
@functools.lru_cache(maxsize=256)
def _parse(crs_text: str) -> CRS:
    if not crs_text or not str(crs_text).strip():
        raise ExtractError("CRS definition is empty")
    try:
        return CRS.from_user_input(crs_text)
    except CRSError as exc:
        raise ExtractError(
            f"cannot parse CRS definition ({_shorten(str(crs_text))}): {exc}"
        ) from exc


def _authority_code(crs: CRS) -> str | None:
    for candidate in _identification_candidates(crs):
        auth = candidate.to_authority("EPSG", min_confidence=MIN_CONFIDENCE)
        auth = auth or candidate.to_authority(min_confidence=MIN_CONFIDENCE)
        if auth:
            return f"{auth[0]}:{auth[1]}"
    return None


def _identification_candidates(crs: CRS) -> list[CRS]:
    # The CRS itself first (EPSG has compound codes such as 5498), then the part that
    # places the data horizontally: STAC's proj:code is about where the grid lies.
    out = [crs]
    inner = crs
    while inner.is_compound or inner.is_bound:
        inner = inner.sub_crs_list[0] if inner.is_compound else inner.source_crs
        out.append(inner)
    return out


def strip_compound(crs: CRS) -> CRS:
    while crs.is_compound:
        crs = crs.sub_crs_list[0]
    return crs


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
