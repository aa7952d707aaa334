"""Describe a LAS/LAZ/COPC point cloud from its header and VLRs alone, never decoding a point.

Every count and offset the header declares is checked against the file size before laspy sees it.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, BinaryIO

import laspy
import numpy as np
import pyproj
from laspy.vlrs.known import GeoKeyDirectoryVlr, WktCoordinateSystemVlr
from laspy.vlrs.vlrlist import VLRList
from pyproj.crs import GeographicCRS
from pyproj.crs.coordinate_system import Ellipsoidal3DCS
from pyproj.exceptions import CRSError

from stacsync.core.errors import ExtractError
from stacsync.core.records import AssetMeta, BBox, PointCloudInfo
from stacsync.extract import is_transient
from stacsync.extract.copc import CopcError, CopcLayout, read_copc_sample
from stacsync.extract.footprint import Traced, occupancy, trace
from stacsync.extract.geometry import footprint_4326, identify_crs, parse_crs

log = logging.getLogger(__name__)

MEDIA_LAS = "application/vnd.las"
MEDIA_LAZ = "application/vnd.laszip"
MEDIA_COPC = "application/vnd.laszip+copc"

_SIGNATURE = b"LASF"
# Smallest public header each minor version defines (LAS 1.0-1.2, 1.3, 1.4).
_MIN_HEADER_SIZE = {0: 227, 1: 227, 2: 227, 3: 235, 4: 375}
# Bytes of the core record of each point format, before any extra bytes.
_POINT_SIZE = {0: 20, 1: 28, 2: 26, 3: 34, 4: 57, 5: 63, 6: 30, 7: 36, 8: 38, 9: 59, 10: 67}
_VLR_HEADER = struct.Struct("<H16sHH32s")  # reserved, user id, record id, length, description
_EVLR_HEADER = struct.Struct("<H16sHQ32s")  # as a VLR, with a 64-bit length
_CRS_RECORD_IDS = frozenset({2111, 2112, 34735, 34736, 34737})
# laspy reads the whole header + VLR block into memory; no honest file needs more than this.
_MAX_VLR_BLOCK = 64 * 1024 * 1024
_MAX_CRS_EVLR = 1024 * 1024
# A geocentric box whose corners sit further than this from the ellipsoid is not on the Earth.
_MAX_ECEF_HEIGHT = 100_000.0


@dataclass(frozen=True, slots=True)
class _Header:
    """The fixed public header as the file states it, read with struct."""

    version: tuple[int, int]
    header_size: int
    offset_to_point_data: int
    number_of_vlrs: int
    point_format: int
    compressed: bool
    point_record_length: int
    point_count: int
    legacy_point_count: int
    scales: tuple[float, float, float]
    offsets: tuple[float, float, float]
    mins: tuple[float, float, float]
    maxs: tuple[float, float, float]
    creation: tuple[int, int]  # (day of year, year) as stored
    start_of_first_evlr: int = 0
    number_of_evlrs: int = 0


@dataclass(frozen=True, slots=True)
class _Record:
    """Where one VLR or EVLR sits in the file."""

    user_id: str
    record_id: int
    header_offset: int
    data_offset: int
    length: int


def extract_pointcloud(
    path: str | os.PathLike[str], *, crs_override: str | None = None, read_overviews: bool = True
) -> AssetMeta:
    """Describe the LAS/LAZ/COPC file at `path` from its header and VLRs.

    Raises ExtractError (message starts with the file name) for anything a person must fix,
    and lets transient OSErrors (EIO, EREMOTEIO, ...) through, errno intact, for the caller
    to retry.
    """
    name = os.path.basename(os.fspath(path))
    try:
        fileobj = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _os_error(name, exc) from exc
    with fileobj:
        try:
            size = os.fstat(fileobj.fileno()).st_size
        except OSError as exc:
            raise _os_error(name, exc) from exc
        return extract_pointcloud_stream(
            fileobj, size, name, crs_override=crs_override, read_overviews=read_overviews
        )


def extract_pointcloud_stream(
    fileobj: BinaryIO,
    size: int,
    name: str,
    *,
    crs_override: str | None = None,
    read_overviews: bool = True,
) -> AssetMeta:
    """Describe a point cloud read from a seekable binary file object of `size` bytes.

    `name` is the bare file name used in messages. Only the header, the VLRs, the LAZ
    chunk-table pointer and the EVLR headers are read, plus, for a COPC cloud and unless
    `read_overviews` is false, the points of its octree's coarse levels (for the footprint).
    """
    try:
        return _extract(fileobj, size, name, crs_override, read_overviews)
    except OSError as exc:
        raise _os_error(name, exc) from exc


def _os_error(name: str, exc: OSError) -> OSError | ExtractError:
    """Transient errors go back as they are (the caller retries); the rest become ExtractError."""
    if is_transient(exc):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ExtractError(f"{name}: file not found")
    if isinstance(exc, PermissionError):
        return ExtractError(f"{name}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return ExtractError(f"{name}: is a directory, not a LAS/LAZ file")
    return ExtractError(f"{name}: cannot read file ({exc.strerror or exc})")


def _extract(
    fileobj: BinaryIO, size: int, name: str, crs_override: str | None, read_overviews: bool
) -> AssetMeta:
    header = _read_header(fileobj, size, name)
    _check_layout(header, size, name)
    block = _read_at(fileobj, 0, header.offset_to_point_data)
    if len(block) < header.offset_to_point_data:
        raise ExtractError(f"{name}: file is truncated (ended while reading the VLRs)")
    vlrs = _walk_vlrs(block, header, name)
    _check_point_data(fileobj, header, vlrs, size, name)
    evlrs = _walk_evlrs(fileobj, header, size, name)
    _check_extent(header, name)
    las_header = _laspy_header(fileobj, block, evlrs, name)
    warnings: list[str] = []
    crs_wkt = _choose_crs(las_header, vlrs + evlrs, crs_override, name, warnings)
    outline = None
    if read_overviews:
        outline = _copc_outline(fileobj, size, header, block, vlrs, crs_wkt, warnings)
    return _asset_meta(header, las_header, vlrs, crs_wkt, name, warnings, outline)


# --- step 1: the fixed header, checked against the file size -----------------------------------


def _read_at(fileobj: BinaryIO, offset: int, length: int) -> bytes:
    """Read up to `length` bytes at `offset`; streams may return short reads, so loop."""
    fileobj.seek(offset)
    parts: list[bytes] = []
    remaining = length
    while remaining > 0:
        chunk = fileobj.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _read_header(fileobj: BinaryIO, size: int, name: str) -> _Header:
    if size == 0:
        raise ExtractError(f"{name}: file is empty")
    raw = _read_at(fileobj, 0, min(size, 375))
    if raw[:4] != _SIGNATURE:
        raise ExtractError(f"{name}: not a LAS/LAZ file (bad signature)")
    if len(raw) < 227:
        raise ExtractError(
            f"{name}: file is truncated ({size} bytes, shorter than a LAS header of 227 bytes)"
        )
    major, minor = raw[24], raw[25]
    if major != 1 or minor not in _MIN_HEADER_SIZE:
        raise ExtractError(f"{name}: unsupported LAS version {major}.{minor}")
    return _parse_header(raw, (major, minor), name)


def _parse_header(raw: bytes, version: tuple[int, int], name: str) -> _Header:
    header_size, offset, n_vlrs, fmt_raw, rec_len, legacy_count = struct.unpack_from(
        "<HIIBHI", raw, 94
    )
    if header_size < _MIN_HEADER_SIZE[version[1]] or len(raw) < _MIN_HEADER_SIZE[version[1]]:
        raise ExtractError(
            f"{name}: header size {header_size} is too small for LAS {version[0]}.{version[1]}"
            f" (needs {_MIN_HEADER_SIZE[version[1]]} bytes)"
        )
    numbers = struct.unpack_from("<12d", raw, 131)
    day, year = struct.unpack_from("<HH", raw, 90)
    fields: dict[str, Any] = {}
    if version[1] >= 4:
        start_evlr, n_evlrs, count64 = struct.unpack_from("<QIQ", raw, 235)
        fields = {"start_of_first_evlr": start_evlr, "number_of_evlrs": n_evlrs}
    return _Header(
        version=version,
        header_size=header_size,
        offset_to_point_data=offset,
        number_of_vlrs=n_vlrs,
        point_format=fmt_raw & 0x3F,  # bits 6/7 flag LASzip compression
        compressed=bool(fmt_raw & 0x80),
        point_record_length=rec_len,
        # LAS 1.4 keeps the true count in the 64-bit field, as laspy does.
        point_count=count64 if version[1] >= 4 else legacy_count,
        legacy_point_count=legacy_count,
        scales=numbers[0:3],
        offsets=numbers[3:6],
        maxs=(numbers[6], numbers[8], numbers[10]),  # stored as max x, min x, max y, ...
        mins=(numbers[7], numbers[9], numbers[11]),
        creation=(day, year),
        **fields,
    )


def _check_layout(h: _Header, size: int, name: str) -> None:
    """The header's own sizes and counts must fit in the file before laspy trusts them."""
    if h.header_size > h.offset_to_point_data:
        raise ExtractError(
            f"{name}: header size {h.header_size} is past the start of the point data"
            f" (offset {h.offset_to_point_data})"
        )
    room = h.offset_to_point_data - h.header_size
    if h.number_of_vlrs * _VLR_HEADER.size > room:
        raise ExtractError(
            f"{name}: header claims {h.number_of_vlrs} VLRs, more than fit before the point"
            f" data (offset {h.offset_to_point_data})"
        )
    if h.offset_to_point_data > size:
        raise ExtractError(
            f"{name}: file is truncated (point data should start at offset"
            f" {h.offset_to_point_data}, file has {size} bytes)"
        )
    if h.offset_to_point_data > _MAX_VLR_BLOCK:
        raise ExtractError(
            f"{name}: header claims {h.offset_to_point_data} bytes of header and VLRs before the"
            f" point data; refusing to read more than {_MAX_VLR_BLOCK}"
        )
    if h.point_format not in _POINT_SIZE:
        raise ExtractError(f"{name}: unknown point format {h.point_format}")
    if h.point_record_length < _POINT_SIZE[h.point_format]:
        raise ExtractError(
            f"{name}: point record length {h.point_record_length} is shorter than point format"
            f" {h.point_format} needs ({_POINT_SIZE[h.point_format]} bytes)"
        )


def _walk_vlrs(block: bytes, h: _Header, name: str) -> list[_Record]:
    """Follow the VLR chain inside the header block; each record must end before the points."""
    records: list[_Record] = []
    pos = h.header_size
    for index in range(h.number_of_vlrs):
        if pos + _VLR_HEADER.size > h.offset_to_point_data:
            raise ExtractError(
                f"{name}: VLR {index + 1} of {h.number_of_vlrs} starts past the point data"
                f" (offset {h.offset_to_point_data})"
            )
        _, user, record_id, length, _ = _VLR_HEADER.unpack_from(block, pos)
        data_offset = pos + _VLR_HEADER.size
        if data_offset + length > h.offset_to_point_data:
            raise ExtractError(
                f"{name}: VLR {index + 1} of {h.number_of_vlrs} ({_user_id(user)} {record_id})"
                f" runs past the start of the point data (offset {h.offset_to_point_data})"
            )
        records.append(_Record(_user_id(user), record_id, pos, data_offset, length))
        pos = data_offset + length
    return records


def _user_id(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def _check_point_data(
    fileobj: BinaryIO, h: _Header, vlrs: list[_Record], size: int, name: str
) -> None:
    """The point data the header declares must be in the file (a header read still opens)."""
    if h.compressed:
        _check_laz(fileobj, h, vlrs, size, name)
        return
    end = h.offset_to_point_data + h.point_count * h.point_record_length
    if end > size:
        raise ExtractError(
            f"{name}: file is truncated (header declares {h.point_count} points of"
            f" {h.point_record_length} bytes after offset {h.offset_to_point_data},"
            f" file has {size} bytes)"
        )
    if h.number_of_evlrs and end > h.start_of_first_evlr:
        raise ExtractError(
            f"{name}: the {h.point_count} points declared overlap the EVLRs"
            f" (points end at {end}, EVLRs start at {h.start_of_first_evlr})"
        )


def _check_laz(fileobj: BinaryIO, h: _Header, vlrs: list[_Record], size: int, name: str) -> None:
    if not any(v.user_id == "laszip encoded" and v.record_id == 22204 for v in vlrs):
        raise ExtractError(
            f"{name}: compressed point format but no LASzip VLR, so the points cannot be decoded"
        )
    if h.point_count == 0:
        return
    raw = _read_at(fileobj, h.offset_to_point_data, 8)
    if len(raw) < 8:
        raise ExtractError(
            f"{name}: file is truncated (no LAZ chunk table pointer after offset"
            f" {h.offset_to_point_data}, file has {size} bytes)"
        )
    (table,) = struct.unpack("<q", raw)
    # -1 means a streaming writer left the table pointer at the end of the file instead.
    if table != -1 and not h.offset_to_point_data + 8 <= table <= size - 8:
        raise ExtractError(
            f"{name}: file is truncated (LAZ chunk table should be at offset {table},"
            f" file has {size} bytes)"
        )


def _walk_evlrs(fileobj: BinaryIO, h: _Header, size: int, name: str) -> list[_Record]:
    """Read EVLR headers only; each declared record must lie inside the file."""
    if h.number_of_evlrs == 0:
        return []
    start = h.start_of_first_evlr
    if start < h.offset_to_point_data or start + h.number_of_evlrs * _EVLR_HEADER.size > size:
        raise ExtractError(
            f"{name}: header claims {h.number_of_evlrs} EVLRs from offset {start}, which do not"
            f" fit in the file ({size} bytes)"
        )
    records: list[_Record] = []
    pos = start
    for index in range(h.number_of_evlrs):
        raw = _read_at(fileobj, pos, _EVLR_HEADER.size)
        if len(raw) < _EVLR_HEADER.size:
            raise ExtractError(f"{name}: file is truncated (EVLR {index + 1} header cut off)")
        _, user, record_id, length, _ = _EVLR_HEADER.unpack(raw)
        data_offset = pos + _EVLR_HEADER.size
        if data_offset + length > size:
            raise ExtractError(
                f"{name}: file is truncated (EVLR {index + 1} declares {length} bytes at offset"
                f" {data_offset}, file has {size} bytes)"
            )
        records.append(_Record(_user_id(user), record_id, pos, data_offset, length))
        pos = data_offset + length
    return records


def _check_extent(h: _Header, name: str) -> None:
    """Headers lie: reject a box that is not finite, inverted, or unrepresentable."""
    if h.point_count == 0:
        # A deliberate choice: an empty cloud has no footprint, and (0, 0) would be a lie.
        raise ExtractError(f"{name}: no points, so no footprint")
    values = (*h.scales, *h.offsets, *h.mins, *h.maxs)
    if not all(math.isfinite(v) for v in values):
        raise ExtractError(f"{name}: header scales/offsets/bounds are not finite numbers")
    if any(s == 0 for s in h.scales):
        raise ExtractError(f"{name}: header has a zero coordinate scale")
    for axis, lo, hi, scale, offset in zip("XYZ", h.mins, h.maxs, h.scales, h.offsets, strict=True):
        if lo > hi:
            raise ExtractError(f"{name}: header bounds are inverted ({axis} min {lo} > max {hi})")
        _check_representable(axis, lo, hi, scale, offset, name)


def _check_representable(
    axis: str, lo: float, hi: float, scale: float, offset: float, name: str
) -> None:
    """Coordinates are int32 × scale + offset, so the header box must lie within that range."""
    ends = (offset + scale * -(2**31), offset + scale * (2**31 - 1))
    slack = abs(scale) + 1e-9 * max(abs(ends[0]), abs(ends[1]))
    if lo < min(ends) - slack or hi > max(ends) + slack:
        raise ExtractError(
            f"{name}: header {axis} bounds [{lo}, {hi}] cannot be stored with scale {scale} and"
            f" offset {offset}; the header box is wrong"
        )


# --- step 2: laspy reads the validated header block, never the points ---------------------------


def _laspy_header(
    fileobj: BinaryIO, block: bytes, evlrs: list[_Record], name: str
) -> laspy.LasHeader:
    """Hand laspy only the checked header+VLR bytes, so it cannot reach (or decode) any point."""
    try:
        reader = laspy.open(io.BytesIO(block), closefd=False, read_evlrs=False)
        header = reader.header
    except (laspy.errors.LaspyException, ValueError, IndexError, KeyError, struct.error) as exc:
        raise ExtractError(f"{name}: laspy cannot read the header ({exc})") from exc
    crs_evlrs = [e for e in evlrs if _is_crs_record(e)]
    if crs_evlrs:
        header.evlrs = _read_crs_evlrs(fileobj, crs_evlrs, name)
    return header


def _is_crs_record(rec: _Record) -> bool:
    return rec.user_id == "LASF_Projection" and rec.record_id in _CRS_RECORD_IDS


def _read_crs_evlrs(fileobj: BinaryIO, records: list[_Record], name: str) -> VLRList:
    """Load only the CRS EVLRs: others (waveforms, COPC hierarchy) can be huge and are unused."""
    wanted = [r for r in records if r.length <= _MAX_CRS_EVLR]
    if len(wanted) < len(records):
        log.warning("%s: skipping a CRS EVLR larger than %d bytes", name, _MAX_CRS_EVLR)
    raw = b"".join(_read_at(fileobj, r.header_offset, _EVLR_HEADER.size + r.length) for r in wanted)
    try:
        return VLRList.read_from(io.BytesIO(raw), len(wanted), extended=True)
    except (laspy.errors.LaspyException, ValueError, IndexError, struct.error) as exc:
        raise ExtractError(f"{name}: cannot read the CRS EVLRs ({exc})") from exc


# --- step 3: which CRS, and is it believable ----------------------------------------------------


def _choose_crs(
    las_header: laspy.LasHeader,
    records: Sequence[_Record],
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


def _no_crs_reason(records: Sequence[_Record]) -> str:
    hint = "set crs in the collection config to assume one"
    if any(r.user_id == "LASF_Projection" and r.record_id == 34735 for r in records):
        return (
            "no coordinate reference system laspy can read (the GeoTIFF keys are user-defined"
            f" or malformed; {hint})"
        )
    if any(_is_crs_record(r) for r in records):
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


# --- step 4: footprint ------------------------------------------------------------------------


def _footprint(
    h: _Header, crs_wkt: str, name: str, warnings: list[str]
) -> tuple[BBox, dict[str, Any]]:
    crs, horizontal, horizontal_wkt = _crs_parts(crs_wkt)
    minx, miny, maxx, maxy = h.mins[0], h.mins[1], h.maxs[0], h.maxs[1]
    if horizontal.is_geocentric:
        to_geodetic, ring_wkt = _geodetic(horizontal_wkt)
        ring = _geocentric_ring(h, to_geodetic, name)
    elif horizontal.is_geographic:
        _check_geographic(minx, miny, maxx, maxy, name)
        ring, ring_wkt = _box_ring(minx, miny, maxx, maxy), crs_wkt
    elif horizontal.is_projected:
        ring, ring_wkt = _box_ring(minx, miny, maxx, maxy), crs_wkt
    else:
        raise ExtractError(
            f"{name}: CRS {crs.name!r} ({horizontal.type_name}) does not place X/Y on the Earth,"
            " so there is no footprint"
        )
    try:
        bbox, geometry = footprint_4326(ring, ring_wkt)
    except ExtractError as exc:
        raise ExtractError(
            f"{name}: no footprint from the header box in {crs.name!r}: {exc}"
        ) from exc
    _check_area_of_use(bbox, horizontal, horizontal_wkt, warnings)
    return bbox, geometry


def _copc_outline(
    fileobj: BinaryIO,
    size: int,
    h: _Header,
    block: bytes,
    vlrs: Sequence[_Record],
    crs_wkt: str,
    warnings: list[str],
) -> tuple[Traced, str] | None:
    """Where a COPC cloud's points are, from its octree's coarse levels; None: use the header box.

    Cells a few points wide that hold a point, traced (see `footprint.trace`): a grid keeps
    separate flight blocks and concave edges apart, costs the same however the points lie, and
    covers every point read by construction, where a concave hull's ratio would need tuning per
    survey and its vertices a second simplification.
    """
    info = _record_data(block, vlrs, "copc", 1)
    laszip = _record_data(block, vlrs, "laszip encoded", 22204)
    if not h.compressed or info is None or laszip is None:
        return None
    _, horizontal, _ = _crs_parts(crs_wkt)
    if not (horizontal.is_projected or horizontal.is_geographic):
        return None  # the header box's own checks say what is wrong
    layout = CopcLayout(size, h.offset_to_point_data, h.point_record_length, h.scales, h.offsets)
    try:
        sample = read_copc_sample(functools.partial(_read_at, fileobj), layout, info, laszip)
        # Points outside the header's box would mean the header is wrong; stay inside it.
        x = np.clip(sample.x, h.mins[0], h.maxs[0])
        y = np.clip(sample.y, h.mins[1], h.maxs[1])
        cells = occupancy(x, y)
        if cells is None:
            raise CopcError("the points read lie on a line or a point")
        # Points, unlike pixel centres, reach their cells' edges: straight lon/lat edges must
        # stay well inside the 1 % margin `occupancy` leaves around them.
        traced = trace(*cells, crs_wkt, chord=0.002)
    except (CopcError, ExtractError) as exc:
        warnings.append(f"footprint from the header box: COPC octree not usable ({exc})")
        return None
    levels = "level 0" if sample.deepest == 0 else f"levels 0-{sample.deepest}"
    return traced, f"COPC octree {levels} ({len(x):,} points)"


def _record_data(
    block: bytes, vlrs: Sequence[_Record], user_id: str, record_id: int
) -> bytes | None:
    for rec in vlrs:
        if rec.user_id == user_id and rec.record_id == record_id:
            return block[rec.data_offset : rec.data_offset + rec.length]
    return None


@functools.lru_cache(maxsize=64)
def _crs_parts(crs_wkt: str) -> tuple[pyproj.CRS, pyproj.CRS, str]:
    """The CRS, its horizontal part and that part's WKT: worked out once per CRS, not per file."""
    crs = parse_crs(crs_wkt)
    horizontal = _horizontal(crs)
    return crs, horizontal, horizontal.to_wkt()


@functools.lru_cache(maxsize=16)
def _geodetic(geocentric_wkt: str) -> tuple[pyproj.Transformer, str]:
    """Transformer from a geocentric CRS to lon/lat/height on its datum, and the 2-D lon/lat WKT."""
    # crs.geodetic_crs of a geocentric CRS is itself: build lon/lat/height on the same datum.
    crs = parse_crs(geocentric_wkt)
    geodetic = GeographicCRS(datum=crs.datum, ellipsoidal_cs=Ellipsoidal3DCS())
    to_geodetic = pyproj.Transformer.from_crs(crs, geodetic, always_xy=True)
    return to_geodetic, GeographicCRS(datum=crs.datum).to_wkt()


def _box_ring(minx: float, miny: float, maxx: float, maxy: float) -> list[tuple[float, float]]:
    return [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny)]


def _check_geographic(minx: float, miny: float, maxx: float, maxy: float, name: str) -> None:
    if miny < -90 or maxy > 90:
        raise ExtractError(
            f"{name}: geographic CRS but header latitudes [{miny}, {maxy}] are outside ±90;"
            " the header or its CRS is wrong"
        )
    if minx < -180 or maxx > 360:
        raise ExtractError(
            f"{name}: geographic CRS but header longitudes [{minx}, {maxx}] are outside"
            " -180..360; the header or its CRS is wrong"
        )


def _geocentric_ring(
    h: _Header, to_geodetic: pyproj.Transformer, name: str
) -> list[tuple[float, float]]:
    """Earth-centred X/Y/Z: map the eight box corners to lon/lat, refusing boxes off the Earth."""
    corners = [
        to_geodetic.transform(x, y, z)
        for x in (h.mins[0], h.maxs[0])
        for y in (h.mins[1], h.maxs[1])
        for z in (h.mins[2], h.maxs[2])
    ]
    heights = [c[2] for c in corners]
    if not all(math.isfinite(v) for c in corners for v in c) or max(map(abs, heights)) > (
        _MAX_ECEF_HEIGHT
    ):
        raise ExtractError(
            f"{name}: geocentric CRS but the header box is not near the Earth's surface"
            f" (corner heights {min(heights):.0f} to {max(heights):.0f} m); the CRS is wrong"
        )
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    if max(lons) - min(lons) > 180:
        raise ExtractError(f"{name}: geocentric box crossing the antimeridian is not supported")
    return _box_ring(min(lons), min(lats), max(lons), max(lats))


@functools.lru_cache(maxsize=64)
def _area_of_use(crs_wkt: str) -> Any:
    """The CRS's own area of use, else the one its authority code has (WKT may omit USAGE)."""
    crs = parse_crs(crs_wkt)
    if crs.area_of_use is not None:
        return crs.area_of_use
    try:
        # Identification searches proj.db (tens of ms); the cache makes it once per CRS.
        authority = crs.to_authority(min_confidence=90)
        return pyproj.CRS.from_authority(*authority).area_of_use if authority else None
    except CRSError:
        return None


def _check_area_of_use(bbox: BBox, crs: pyproj.CRS, crs_wkt: str, warnings: list[str]) -> None:
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


# --- step 5: the record -----------------------------------------------------------------------


def _asset_meta(
    h: _Header,
    las_header: laspy.LasHeader,
    vlrs: Sequence[_Record],
    crs_wkt: str,
    name: str,
    warnings: list[str],
    outline: tuple[Traced, str] | None,
) -> AssetMeta:
    # The header box always: it checks the header against the CRS's area of use.
    bbox_4326, geometry = _footprint(h, crs_wkt, name, warnings)
    method = "header box"
    if outline is not None:  # a COPC cloud: where its points are
        traced, method = outline
        bbox_4326, geometry = traced.bbox, traced.geometry
    crs_code, crs_wkt2 = identify_crs(crs_wkt)
    copc = h.compressed and any(v.user_id == "copc" and v.record_id == 1 for v in vlrs)
    encoding, media_type = _encoding(h.compressed, copc)
    if h.version[1] >= 4 and h.legacy_point_count not in (0, h.point_count):
        warnings.append(
            f"legacy point count {h.legacy_point_count} disagrees with the LAS 1.4 count"
            f" {h.point_count}; used the latter"
        )
    info = PointCloudInfo(
        las_version=f"{h.version[0]}.{h.version[1]}",
        point_format=h.point_format,
        point_count=h.point_count,
        point_record_length=h.point_record_length,
        scales=h.scales,
        offsets=h.offsets,
        mins=h.mins,
        maxs=h.maxs,
        compressed=h.compressed,
        copc=copc,
        schemas=_schemas(las_header.point_format),
        encoding=encoding,
    )
    for warning in warnings:
        log.warning("%s: %s", name, warning)
    return AssetMeta(
        kind="pointcloud",
        media_type=media_type,
        crs_code=crs_code,
        crs_wkt2=crs_wkt2,
        bbox_native=(h.mins[0], h.mins[1], h.maxs[0], h.maxs[1]),
        bbox_4326=bbox_4326,
        geometry_4326=geometry,
        footprint_method=method,
        datetime=_creation_datetime(*h.creation, name, warnings),
        pointcloud=info,
        warnings=tuple(warnings),
    )


def _encoding(compressed: bool, copc: bool) -> tuple[str, str]:
    if copc:
        return "COPC", MEDIA_COPC
    if compressed:
        return "LASzip", MEDIA_LAZ
    return "LAS", MEDIA_LAS


_KIND_TYPES = {
    "SignedInteger": "signed",
    "UnsignedInteger": "unsigned",
    "FloatingPoint": "floating",
    "BitField": "unsigned",  # packed flags: reported as the whole byte that holds them
}


def _schemas(point_format: laspy.PointFormat) -> tuple[dict[str, Any], ...]:
    """pc:schemas as the record is stored: X/Y/Z are the scaled int32s, bit fields one byte."""
    return tuple(
        {
            "name": dim.name,
            "size": max(1, math.ceil(dim.num_bits * dim.num_elements / 8)),
            "type": _KIND_TYPES[dim.kind.name],
        }
        for dim in point_format.dimensions
    )


def _creation_datetime(day: int, year: int, name: str, warnings: list[str]) -> str | None:
    """ISO 8601 from the header's (day of year, year); unset or impossible dates give None."""
    if day == 0 or year == 0:
        return None
    try:
        created = date(year, 1, 1) + timedelta(days=day - 1)
    except (ValueError, OverflowError):
        created = None
    today = datetime.now(UTC).date()
    if created is None or created.year != year or year < 1990 or created > today:
        warnings.append(f"ignored implausible creation date (day {day} of year {year})")
        log.debug("%s: creation date day %d year %d ignored", name, day, year)
        return None
    return f"{created.isoformat()}T00:00:00Z"
