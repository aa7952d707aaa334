"""Which CRS a point cloud is in: its own CRS records, else the configured one; never a guess.

Each CRS record is parsed on its own, once per distinct record; areas of use are checked here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import laspy
import pyproj
from laspy.vlrs.known import GeoKeyDirectoryVlr, WktCoordinateSystemVlr
from pyproj.exceptions import CRSError

from stacsync.core.errors import ExtractError
from stacsync.core.records import BBox
from stacsync.extract.crs import identify_crs, parse_crs
from stacsync.extract.las_header import Record, is_crs_record


def choose_crs(
    las_header: laspy.LasHeader,
    records: Sequence[Record],
    crs_override: str | None,
    name: str,
    warnings: list[str],
) -> str:
    """WKT of the CRS to use: the file's own, else the configured fallback; never a guess.

    The configured crs only fills a gap (as for rasters): a file that declares a valid CRS
    keeps it, so one collection-wide setting cannot silently relabel good files.
    """
    try:
        file_crs, problem = _file_crs(las_header)
    except ExtractError as exc:
        if crs_override is None:
            raise ExtractError(f"{name}: {exc}") from exc
        file_crs, problem = None, str(exc)
    if file_crs is not None:
        if problem:
            warnings.append(problem)
        return file_crs.to_wkt()
    if crs_override is not None:
        return _override_crs(crs_override, problem, name, warnings)
    raise ExtractError(f"{name}: {_no_crs_reason(records)}")


def _file_crs(las_header: laspy.LasHeader) -> tuple[pyproj.CRS | None, str | None]:
    """Parse each CRS VLR on its own (WKT first, as laspy does): one bad record hides no other.

    Returns (crs or None, a note about a broken record that was passed over). Raises
    ExtractError (without the file name) when CRS records exist but none is valid.
    """
    found: dict[type, pyproj.CRS] = {}
    errors: list[str] = []
    records = list(las_header.vlrs.get_by_id("LASF_Projection"))
    if las_header.evlrs is not None:
        records += las_header.evlrs.get_by_id("LASF_Projection")
    for rec in records:
        if not isinstance(rec, WktCoordinateSystemVlr | GeoKeyDirectoryVlr):
            continue
        kind = "WKT VLR" if isinstance(rec, WktCoordinateSystemVlr) else "GeoTIFF keys"
        if kind == "WKT VLR" and not rec.string.strip("\0 \n"):
            errors.append("invalid CRS in WKT VLR (the WKT string is empty)")
            continue
        try:
            crs = _record_crs(rec)
        except (CRSError, ValueError) as exc:
            errors.append(f"invalid CRS in {kind} ({exc})")
            continue
        if crs is not None:
            found.setdefault(type(rec), crs)
    crs = found.get(WktCoordinateSystemVlr) or found.get(GeoKeyDirectoryVlr)
    if crs is None and errors:
        raise ExtractError("; ".join(errors))
    return crs, ("; ".join(errors) + ", used the other CRS record") if errors else None


def _record_crs(rec: WktCoordinateSystemVlr | GeoKeyDirectoryVlr) -> pyproj.CRS | None:
    """laspy's own parse_crs, run once per distinct record: a mission's files share a few CRSs."""
    return _crs_of_record(type(rec), bytes(rec.record_data_bytes()))


@functools.lru_cache(maxsize=128)
def _crs_of_record(kind: type, data: bytes) -> pyproj.CRS | None:
    # Rebuilt from the record's bytes so laspy's rules (which GeoKeys count, how WKT is decoded)
    # stay laspy's. Parse errors are raised again each time: lru_cache never stores exceptions.
    rec = kind()
    rec.parse_record_data(data)
    return rec.parse_crs()


def _no_crs_reason(records: Sequence[Record]) -> str:
    hint = "set crs in the collection config to assume one"
    if any(r.user_id == "LASF_Projection" and r.record_id == 34735 for r in records):
        return (
            "no coordinate reference system laspy can read (the GeoTIFF keys are user-defined"
            f" or malformed; {hint})"
        )
    if any(is_crs_record(r) for r in records):
        return f"no coordinate reference system laspy can read in its CRS records ({hint})"
    return f"no coordinate reference system ({hint})"


def _override_crs(crs_override: str, problem: str | None, name: str, warnings: list[str]) -> str:
    try:
        _, wkt = identify_crs(crs_override)
    except ExtractError as exc:
        raise ExtractError(f"{name}: invalid crs_override {crs_override!r}: {exc}") from exc
    warnings.append(
        f"{problem}; configured crs {crs_override!r} used instead"
        if problem
        else f"no CRS in the file; configured crs {crs_override!r} assumed"
    )
    return wkt


def _horizontal(crs: pyproj.CRS) -> pyproj.CRS:
    """The part of a bound or compound CRS that places X/Y on the Earth."""
    if crs.is_bound and crs.source_crs is not None:
        crs = crs.source_crs
    if crs.is_compound:
        for sub in crs.sub_crs_list:
            if not sub.is_vertical:
                return _horizontal(sub)
    return crs


@functools.lru_cache(maxsize=64)
def crs_parts(crs_wkt: str) -> tuple[pyproj.CRS, pyproj.CRS, str]:
    """The CRS, its horizontal part and that part's WKT: worked out once per CRS, not per file."""
    crs = parse_crs(crs_wkt)
    horizontal = _horizontal(crs)
    return crs, horizontal, horizontal.to_wkt()


@functools.lru_cache(maxsize=64)
def _area_of_use(crs_wkt: str) -> Any:
    """The CRS's own area of use, else the one its authority code has (WKT may omit USAGE)."""
    crs = parse_crs(crs_wkt)
    if crs.area_of_use is not None:
        return crs.area_of_use
    # Identified as for proj:code (a WKT without authority codes too), else by its horizontal
    # part: a compound without a code of its own lies where that part does. Cached per CRS.
    for part in (crs, _horizontal(crs)):
        try:
            code, _ = identify_crs(part.to_wkt())
            if code:
                return pyproj.CRS.from_user_input(code).area_of_use
        except (CRSError, ExtractError):
            continue
    return None


def check_area_of_use(bbox: BBox, crs: pyproj.CRS, crs_wkt: str, warnings: list[str]) -> None:
    """A footprint far outside its CRS's area of use usually means wrong units or a wrong CRS."""
    area = _area_of_use(crs_wkt)
    west, south, east, north = bbox
    if area is None or west > east or area.west > area.east:
        return  # antimeridian boxes: not worth guessing
    margin = 1.0
    if (
        east < area.west - margin
        or west > area.east + margin
        or north < area.south - margin
        or south > area.north + margin
    ):
        warnings.append(
            f"footprint {tuple(round(v, 4) for v in bbox)} lies outside the area of use of"
            f" {crs.name!r} ({area.west}, {area.south}, {area.east}, {area.north}):"
            " check the CRS and the coordinate units"
        )
