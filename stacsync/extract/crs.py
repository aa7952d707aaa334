"""Name and parse CRSs with pyproj: any CRS text to an authority code and WKT2, cached.

Both extractors go through here, so rasters and point clouds name a CRS with the same PROJ.
"""

from __future__ import annotations

import functools
import math

from pyproj import CRS
from pyproj.crs import CompoundCRS
from pyproj.exceptions import CRSError

from stacsync.core.errors import ExtractError

__all__ = ["MIN_CONFIDENCE", "identify_crs", "metres_per_unit", "parse_crs", "strip_compound"]

# PROJ's identification confidence: 100 = same name and equivalent, 90/70 = equivalent definition
# under another name, 50/25 = NOT known to be equivalent (similar names, or the same CRS with its
# axes in another order). At 70 and above PROJ vouches for the code: asking for 90+ would only drop
# codes of files whose writer spelled the name differently (the LAS file with both WKT and GeoTIFF
# keys is EPSG:6880 only at 70).
MIN_CONFIDENCE = 70
# Below 70 an EPSG candidate is accepted only when the EPSG definition, re-created from proj.db, is
# the same CRS as the file's with the axes possibly in another order (see _same_crs). That is how
# GDAL writes and reads GeoTIFFs: a WKT without AUTHORITY nodes always lists easting first, so
# EPSG:3035 (northing first in EPSG) comes back at 50. rgb1.tif's UTM 18N WKT also matches
# EPSG:3450 at 50 but is not that CRS: it fails the check and keeps no code.
VERIFY_MIN_CONFIDENCE = 25


def identify_crs(crs_text: str) -> tuple[str | None, str]:
    """Any CRS text (WKT1/WKT2/PROJJSON/'EPSG:n'/ESRI WKT) -> (authority code or None, WKT2_2019).

    The code is 'AUTH:CODE' (EPSG preferred when an equivalent EPSG CRS exists, even when the
    text carries no authority codes or lists its axes in another order than EPSG). A compound CRS
    gets its own code or none (never its horizontal part's); a BoundCRS its source CRS's code.
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
        code = _epsg_code(candidate)
        if code is None:
            auth = candidate.to_authority(min_confidence=MIN_CONFIDENCE)
            code = f"{auth[0]}:{auth[1]}" if auth else None
        if code:
            return code
    return None


def _epsg_code(crs: CRS) -> str | None:
    """EPSG code PROJ vouches for (confidence >= 70), else one verified equivalent, else None."""
    matches = crs.list_authority("EPSG", min_confidence=VERIFY_MIN_CONFIDENCE)
    for match in matches:
        if match.confidence >= MIN_CONFIDENCE:
            return f"EPSG:{match.code}"
    for match in matches:
        try:
            reference = CRS.from_epsg(int(match.code))
        except (CRSError, ValueError):
            continue
        if _same_crs(crs, reference):
            return f"EPSG:{match.code}"
    return None


def _same_crs(crs: CRS, reference: CRS) -> bool:
    """Same coordinates as `reference` (PROJ's equivalence test), the order of the axes aside.

    PROJ's `ignore_axis_order` only forgives the order of geographic axes; a projected CRS with
    northing first is compared again with the reference's axes put in the file's order. Datum
    names are still compared (NAD83 and NAD83(2011) share every parameter but are not the same).
    """
    if crs.equals(reference, ignore_axis_order=True):
        return True
    if crs.is_compound or reference.is_compound:
        parts, references = crs.sub_crs_list, reference.sub_crs_list
        return (
            crs.is_compound
            and reference.is_compound
            and len(parts) == len(references)
            and all(_same_crs(a, b) for a, b in zip(parts, references, strict=True))
        )
    reordered = _axes_in_order_of(reference, crs)
    return reordered is not None and crs.equals(reordered, ignore_axis_order=True)


def _axes_in_order_of(reference: CRS, crs: CRS) -> CRS | None:
    """`reference` with its coordinate system's axes in `crs`'s order; None if they differ."""
    data = reference.to_json_dict()
    axes = (data.get("coordinate_system") or {}).get("axis") or []
    wanted = [axis.direction.lower() for axis in crs.axis_info]
    by_direction = {str(axis.get("direction", "")).lower(): axis for axis in axes}
    if len(by_direction) != len(axes) or sorted(by_direction) != sorted(wanted):
        return None
    data["coordinate_system"]["axis"] = [by_direction[d] for d in wanted]
    data.pop("id", None)
    try:
        return CRS.from_json_dict(data)
    except CRSError:
        return None


def _identification_candidates(crs: CRS) -> list[CRS]:
    # The CRS itself, compound ones included (EPSG has compound codes such as 7415); a compound
    # without a code gets none, not its horizontal part's: proj:code names the whole CRS of the
    # data, and proj:wkt2 then carries it. A BoundCRS (TOWGS84 or another transformation hint)
    # places the data in its source CRS: that one is identified.
    out = [crs]
    while crs.is_bound and crs.source_crs is not None:
        crs = crs.source_crs
        out.append(crs)
    if crs.is_compound and any(part.is_bound for part in crs.sub_crs_list):
        parts = [part.source_crs if part.is_bound else part for part in crs.sub_crs_list]
        out.append(CompoundCRS(crs.name, parts))
    return out


def strip_compound(crs: CRS) -> CRS:
    while crs.is_compound:
        crs = crs.sub_crs_list[0]
    return crs


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
