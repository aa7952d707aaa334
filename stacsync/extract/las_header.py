"""The LAS public header, VLRs and EVLRs read with struct and checked against the file size.

Only bytes that passed those checks reach laspy, so a lying header cannot make it allocate.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import laspy
from laspy.vlrs.vlrlist import VLRList

from stacsync.core.errors import ExtractError

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class Header:
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
class Record:
    """Where one VLR or EVLR sits in the file."""

    user_id: str
    record_id: int
    header_offset: int
    data_offset: int
    length: int


def read_at(fileobj: BinaryIO, offset: int, length: int) -> bytes:
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


# --- the fixed header, checked against the file size -----------------------------------------


def read_header(fileobj: BinaryIO, size: int, name: str) -> Header:
    if size == 0:
        raise ExtractError(f"{name}: file is empty")
    raw = read_at(fileobj, 0, min(size, 375))
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


def _parse_header(raw: bytes, version: tuple[int, int], name: str) -> Header:
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
    return Header(
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


def check_layout(h: Header, size: int, name: str) -> None:
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


def walk_vlrs(block: bytes, h: Header, name: str) -> list[Record]:
    """Follow the VLR chain inside the header block; each record must end before the points."""
    records: list[Record] = []
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
        records.append(Record(_user_id(user), record_id, pos, data_offset, length))
        pos = data_offset + length
    return records


def _user_id(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def check_point_data(
    fileobj: BinaryIO, h: Header, vlrs: list[Record], size: int, name: str
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


def _check_laz(fileobj: BinaryIO, h: Header, vlrs: list[Record], size: int, name: str) -> None:
    if not any(v.user_id == "laszip encoded" and v.record_id == 22204 for v in vlrs):
        raise ExtractError(
            f"{name}: compressed point format but no LASzip VLR, so the points cannot be decoded"
        )
    if h.point_count == 0:
        return
    raw = read_at(fileobj, h.offset_to_point_data, 8)
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


def walk_evlrs(fileobj: BinaryIO, h: Header, size: int, name: str) -> list[Record]:
    """Read EVLR headers only; each declared record must lie inside the file."""
    if h.number_of_evlrs == 0:
        return []
    start = h.start_of_first_evlr
    if start < h.offset_to_point_data or start + h.number_of_evlrs * _EVLR_HEADER.size > size:
        raise ExtractError(
            f"{name}: header claims {h.number_of_evlrs} EVLRs from offset {start}, which do not"
            f" fit in the file ({size} bytes)"
        )
    records: list[Record] = []
    pos = start
    for index in range(h.number_of_evlrs):
        raw = read_at(fileobj, pos, _EVLR_HEADER.size)
        if len(raw) < _EVLR_HEADER.size:
            raise ExtractError(f"{name}: file is truncated (EVLR {index + 1} header cut off)")
        _, user, record_id, length, _ = _EVLR_HEADER.unpack(raw)
        data_offset = pos + _EVLR_HEADER.size
        if data_offset + length > size:
            raise ExtractError(
                f"{name}: file is truncated (EVLR {index + 1} declares {length} bytes at offset"
                f" {data_offset}, file has {size} bytes)"
            )
        records.append(Record(_user_id(user), record_id, pos, data_offset, length))
        pos = data_offset + length
    return records


def check_extent(h: Header, name: str) -> None:
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


def record_data(block: bytes, vlrs: Sequence[Record], user_id: str, record_id: int) -> bytes | None:
    for rec in vlrs:
        if rec.user_id == user_id and rec.record_id == record_id:
            return block[rec.data_offset : rec.data_offset + rec.length]
    return None


# --- laspy reads the validated header block, never the points --------------------------------


def laspy_header(
    fileobj: BinaryIO, block: bytes, evlrs: list[Record], name: str
) -> laspy.LasHeader:
    """Hand laspy only the checked header+VLR bytes, so it cannot reach (or decode) any point."""
    try:
        reader = laspy.open(io.BytesIO(block), closefd=False, read_evlrs=False)
        header = reader.header
    except (laspy.errors.LaspyException, ValueError, IndexError, KeyError, struct.error) as exc:
        raise ExtractError(f"{name}: laspy cannot read the header ({exc})") from exc
    crs_evlrs = [e for e in evlrs if is_crs_record(e)]
    if crs_evlrs:
        header.evlrs = _read_crs_evlrs(fileobj, crs_evlrs, name)
    return header


def is_crs_record(rec: Record) -> bool:
    return rec.user_id == "LASF_Projection" and rec.record_id in _CRS_RECORD_IDS


def _read_crs_evlrs(fileobj: BinaryIO, records: list[Record], name: str) -> VLRList:
    """Load only the CRS EVLRs: others (waveforms, COPC hierarchy) can be huge and are unused."""
    wanted = [r for r in records if r.length <= _MAX_CRS_EVLR]
    if len(wanted) < len(records):
        log.warning("%s: skipping a CRS EVLR larger than %d bytes", name, _MAX_CRS_EVLR)
    raw = b"".join(read_at(fileobj, r.header_offset, _EVLR_HEADER.size + r.length) for r in wanted)
    try:
        return VLRList.read_from(io.BytesIO(raw), len(wanted), extended=True)
    except (laspy.errors.LaspyException, ValueError, IndexError, struct.error) as exc:
        raise ExtractError(f"{name}: cannot read the CRS EVLRs ({exc})") from exc
