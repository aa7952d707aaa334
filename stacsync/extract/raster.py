"""Header-only GeoTIFF/COG extraction: one `AssetMeta` per raster file.

Reads tags, CRS, geotransform, block layout and overview list with rasterio; never reads pixels.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import CRSError as RasterioCRSError
from rasterio.errors import RasterioError, RasterioIOError

from stacsync.errors import ExtractError
from stacsync.extract.geometry import footprint_4326, identify_crs, metres_per_unit
from stacsync.records import AssetMeta, Band, BBox, RasterInfo

try:  # GDAL's own error classes, raised for errors GDAL reports after a successful open
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover - private module; fall back to the public base
    CPLE_BaseError = RasterioError

log = logging.getLogger(__name__)

MEDIA_TYPE = "image/tiff; application=geotiff"
MEDIA_TYPE_COG = "image/tiff; application=geotiff; profile=cloud-optimized"

# GDAL lists the whole folder on open to find sidecars; on a FUSE mount of a folder with
# thousands of files that is a network listing per file. TRUE skips the listing but GDAL then
# stat()s each candidate sidecar by name (.ovr, .aux.xml, .msk...), so external overviews and
# PAM metadata are still found. EMPTY_DIR would be cheaper still but silently hides a .ovr, and
# we would then report "no overviews" for a file that has them.
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}
# rio-cogeo reopens the file once per overview level; sidecars are irrelevant to its layout checks
# and the one it cares about (an external .ovr) we test ourselves from `src.files`. So its opens
# need not probe for sidecars at all.
COG_VALIDATE_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}

# Errors a FUSE/network mount gives while the server hiccups: the caller retries these.
TRANSIENT_ERRNOS = frozenset(
    {errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ESTALE, errno.ECONNRESET}
)
# GDAL reports OS errors as text only; recognise them by the C library's strerror wording.
_TRANSIENT_TEXT = {os.strerror(code).lower(): code for code in TRANSIENT_ERRNOS}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")

# eo:common_name values of the STAC eo extension (v2.0.0; v1.1.0 lacks green05 and rededge07x).
EO_COMMON_NAMES = frozenset(
    {
        "pan", "coastal", "blue", "green", "green05", "yellow", "red", "rededge", "rededge071",
        "rededge075", "rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir",
        "lwir11", "lwir12",
    }
)  # fmt: skip
# GDAL colour interpretations that name a spectral band. Not "yellow" (a CMYK ink, not the
# ~600 nm band), not "alpha", not "swir" (ambiguous between swir16 and swir22).
_COLOR_INTERP_COMMON = {
    "red": "red", "green": "green", "blue": "blue", "pan": "pan", "coastal": "coastal",
    "rededge": "rededge", "nir": "nir", "lwir": "lwir",
}  # fmt: skip

# TIFF DateTime is "YYYY:MM:DD HH:MM:SS" with no zone; a few writers use dashes or a "T".
_DATETIME_FORMATS = ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def extract_raster(path: str | os.PathLike, *, crs_override: str | None = None) -> AssetMeta:
    """Describe a GeoTIFF/COG from its header.

    `crs_override` is only used when the file has no CRS. Raises ExtractError (message starts with
    the file name) for anything a person must fix, and OSError with a transient errno (EIO,
    EREMOTEIO, ETIMEDOUT, EAGAIN, ESTALE, ECONNRESET) for hiccups worth a retry.
    """
    fspath = os.fspath(path)
    name = os.path.basename(fspath)
    try:
        size = _file_size(fspath, name)
        with rasterio.Env(**GDAL_ENV), _open(fspath, name, size) as src:
            return _describe(src, fspath, name, size, crs_override)
    except ExtractError:
        raise
    except (RasterioError, CPLE_BaseError) as exc:
        raise _gdal_failure(exc, fspath, name, "GDAL cannot read the header") from exc
    except OSError as exc:
        raise _os_failure(exc, name) from exc


# --- opening and errors ----------------------------------------------------------------------


def _file_size(path: str, name: str) -> int:
    st = os.stat(path)  # OSError handled by the caller: transient or permanent
    if not stat.S_ISREG(st.st_mode):
        raise ExtractError(f"{name}: not a regular file")
    if st.st_size == 0:
        raise ExtractError(f"{name}: file is empty")
    return st.st_size


def _open(path: str, name: str, size: int) -> Any:
    try:
        # Only the GTiff driver: we publish these as image/tiff, so a JPEG or PNG named .tif is
        # not something to describe as one.
        return rasterio.open(path, driver="GTiff")
    except RasterioIOError as exc:
        raise _open_failure(exc, path, name, size) from exc


def _open_failure(exc: Exception, path: str, name: str, size: int) -> Exception:
    message = _gdal_message(exc, path, name)
    transient = _transient_errno(message)
    if transient is not None:
        return OSError(transient, f"{name}: {message}")
    lowered = message.lower()
    if "no such file" in lowered:
        return ExtractError(f"{name}: file not found")
    if "permission denied" in lowered:
        return ExtractError(f"{name}: permission denied")
    try:
        layout = _tiff_layout(path, size)
    except (ValueError, struct.error):  # TIFF magic, broken structure
        return ExtractError(f"{name}: not a readable GeoTIFF (GDAL cannot read it: {message})")
    except OSError as os_exc:
        return _os_failure(os_exc, name)
    if layout is None:
        return ExtractError(f"{name}: not a GeoTIFF (GDAL cannot read it: {message})")
    if layout.declared_end > size:
        return _truncated(name, layout.declared_end, size)
    return ExtractError(f"{name}: not a readable GeoTIFF (GDAL cannot read it: {message})")


def _gdal_failure(exc: Exception, path: str, name: str, what: str) -> Exception:
    message = _gdal_message(exc, path, name)
    transient = _transient_errno(message)
    if transient is not None:
        return OSError(transient, f"{name}: {message}")
    return ExtractError(f"{name}: {what} ({message})")


def _os_failure(exc: OSError, name: str) -> Exception:
    if str(exc.strerror or "").startswith(f"{name}: "):
        return exc  # already one of ours (raised while opening)
    if exc.errno in TRANSIENT_ERRNOS:
        return OSError(exc.errno, f"{name}: {exc.strerror or exc}")
    if exc.errno == errno.ENOENT:
        return ExtractError(f"{name}: file not found")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ExtractError(f"{name}: permission denied")
    return ExtractError(f"{name}: cannot read file ({exc.strerror or exc})")


def _gdal_message(exc: Exception, path: str, name: str) -> str:
    # GDAL quotes the path it was given; the caller already prefixes the bare name.
    text = str(exc).replace(path, name)
    if text.startswith(f"{name}: "):
        text = text[len(name) + 2 :]
    return text.strip() or type(exc).__name__


def _transient_errno(message: str) -> int | None:
    match = _ERRNO_IN_TEXT.search(message)
    if match and int(match.group(1)) in TRANSIENT_ERRNOS:
        return int(match.group(1))
    lowered = message.lower()
    for text, code in _TRANSIENT_TEXT.items():
        if text in lowered:
            return code
    return None


def _truncated(name: str, declared: int, size: int) -> ExtractError:
    return ExtractError(
        f"{name}: file is truncated (header declares data up to byte {declared}, "
        f"file has {size} bytes)"
    )


# --- the description -------------------------------------------------------------------------


def _describe(src: Any, path: str, name: str, size: int, crs_override: str | None) -> AssetMeta:
    warnings: list[str] = []
    # First: a cut-off file can open with its CRS or geotransform missing, and "no CRS" would
    # be the wrong diagnosis.
    layout = _checked_layout(path, name, size, warnings)
    _check_rpc_gcp_only(src, name)
    crs_code, crs_wkt = _crs(src, name, crs_override, warnings)
    _check_geotransform(src, name)
    corners = _corners(src)
    try:
        bbox_4326, geometry = footprint_4326(corners, crs_wkt)
    except ExtractError as exc:
        raise ExtractError(f"{name}: {exc}") from exc
    when, problem = _tiff_datetime(src.tags().get("TIFFTAG_DATETIME"))
    if problem:
        warnings.append(problem)
    raster = _raster_info(src, path, crs_wkt, layout, warnings)
    return AssetMeta(
        kind="raster",
        media_type=MEDIA_TYPE_COG if raster.is_cog else MEDIA_TYPE,
        crs_code=crs_code,
        crs_wkt2=crs_wkt,
        bbox_native=_envelope(corners),
        bbox_4326=bbox_4326,
        geometry_4326=geometry,
        datetime=when,
        raster=raster,
        warnings=tuple(warnings),
    )


def _check_rpc_gcp_only(src: Any, name: str) -> None:
    # Checked before the CRS: such files often carry a CRS (test_rpcs.tif says EPSG:4326) or
    # none but the GCPs', and "no CRS" would send the user looking in the wrong place.
    if src.transform.is_identity and (src.gcps[0] or src.rpcs):
        # GDAL hands back the identity matrix, so "bounds" would be pixel numbers in degrees.
        raise ExtractError(f"{name}: no usable geotransform (georeferenced only by RPCs/GCPs)")


def _check_geotransform(src: Any, name: str) -> None:
    transform = src.transform
    if transform.is_identity:
        raise ExtractError(f"{name}: no geotransform (the pixel grid is not placed on the Earth)")
    if transform.determinant == 0:
        raise ExtractError(f"{name}: invalid geotransform (pixel size is zero: {tuple(transform)})")


def _crs(
    src: Any, name: str, crs_override: str | None, warnings: list[str]
) -> tuple[str | None, str]:
    if src.crs is None:
        if not crs_override:
            raise ExtractError(
                f"{name}: no coordinate reference system "
                "(set crs in the collection config to assume one)"
            )
        try:
            code, wkt = identify_crs(crs_override)
        except ExtractError as exc:
            raise ExtractError(f"{name}: configured crs is unusable: {exc}") from exc
        warnings.append(f"file has no CRS; assumed {code or crs_override!r} from the config")
        return code, wkt
    return _identify_file_crs(src.crs, name)


def _identify_file_crs(crs: Any, name: str) -> tuple[str | None, str]:
    # rasterio only serialises the file's CRS; pyproj identifies it (one PROJ for both extractors).
    # WKT2 first because it is lossless; WKT1 as a fallback for a pyproj whose PROJ is older than
    # the one in the rasterio wheel.
    error: Exception | None = None
    for version in ("WKT2_2019", None):
        try:
            text = crs.to_wkt(version=version) if version else crs.to_wkt()
            return identify_crs(text)
        except (ExtractError, RasterioCRSError) as exc:
            error = exc
    raise ExtractError(f"{name}: coordinate reference system cannot be read ({error})")


def _corners(src: Any) -> list[tuple[float, float]]:
    # The grid's corners, not the envelope: for a rotated grid the envelope is a wrong footprint.
    t, w, h = src.transform, src.width, src.height
    return [t @ (0, 0), t @ (w, 0), t @ (w, h), t @ (0, h)]


def _envelope(corners: list[tuple[float, float]]) -> BBox:
    xs = [x for x, _ in corners]
    ys = [y for _, y in corners]
    return (min(xs), min(ys), max(xs), max(ys))


def _tiff_datetime(value: str | None) -> tuple[str | None, str | None]:
    """TIFF DateTime -> ISO 8601 UTC (the tag has no zone; UTC is the catalog's convention)."""
    if not value or not value.strip():
        return None, None
    text = value.strip().rstrip("\x00")
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).strftime("%Y-%m-%dT%H:%M:%SZ"), None
        except ValueError:
            continue
    return None, f"TIFF DateTime tag {text!r} is not a date; ignored"


# --- raster facts ----------------------------------------------------------------------------


def _raster_info(
    src: Any, path: str, crs_wkt: str, layout: _TiffLayout | None, warnings: list[str]
) -> RasterInfo:
    bands = tuple(_band(src, i) for i in range(src.count))
    resolution = (float(src.res[0]), float(src.res[1]))
    unit = metres_per_unit(crs_wkt)
    block_rows, block_cols = src.block_shapes[0]
    overviews = tuple(int(f) for f in src.overviews(1))
    is_cog, problems = _cog_status(src, path, warnings)
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


def _band(src: Any, i: int) -> Band:
    interp = src.colorinterp[i].name
    interp = None if interp == "undefined" else interp
    description = src.descriptions[i] or None
    return Band(
        data_type=src.dtypes[i],
        nodata=_nodata(src.nodatavals[i]),
        description=description,
        color_interp=interp,
        common_name=_common_name(interp, description),
        unit=src.units[i] or None,
        # GDAL answers 1 and 0 when no scale/offset is set; those carry no information.
        scale=None if src.scales[i] in (None, 1.0) else float(src.scales[i]),
        offset=None if src.offsets[i] in (None, 0.0) else float(src.offsets[i]),
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


def _cog_status(src: Any, path: str, warnings: list[str]) -> tuple[bool, tuple[str, ...]]:
    """Validate the COG layout with rio-cogeo in strict mode (its warnings count as problems).

    rio-cogeo (like GDAL's validate_cloud_optimized_geotiff.py) accepts an untiled file of at most
    512x512: a client fetches it in one or two range requests, so we accept it too. It only warns
    about a bigger file without overviews; we refuse those: a STAC browser showing a large
    orthomosaic zoomed out would have to fetch every full-resolution tile.
    """
    from rio_cogeo.cogeo import cog_validate

    problems: list[str] = []
    if any(f.lower().endswith(".ovr") for f in src.files[1:]):
        problems.append("Overviews found in external .ovr file. They should be internal")
    try:
        _valid, errors, cog_warnings = cog_validate(
            path, strict=True, config=COG_VALIDATE_ENV, quiet=True
        )
    except (RasterioError, CPLE_BaseError) as exc:
        if _transient_errno(str(exc)) is not None:
            raise
        warnings.append(f"COG validation failed ({exc}); not labelled cloud-optimized")
        return False, ("COG validation failed",)
    problems.extend(errors)
    problems.extend(cog_warnings)
    return not problems, tuple(problems)


# --- TIFF layout: a small, header-only IFD reader for the truncation check -------------------

_TAG_STRIP_OFFSETS, _TAG_STRIP_COUNTS = 273, 279
_TAG_TILE_WIDTH, _TAG_TILE_OFFSETS, _TAG_TILE_COUNTS = 322, 324, 325
_INT_TYPES = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}  # SHORT, LONG, IFD, LONG8, IFD8
# Bytes per value of every TIFF field type, to know where out-of-line tag values end.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TYPE_SIZES |= {16: 8, 17: 8, 18: 8}
# Offset arrays up to this many entries are read whole (<= 64 KiB); longer ones (huge
# files: one request per 8 KiB entries on a FUSE mount adds up) only by their last entry, which
# in every writer we know of is the block that ends furthest into the file.
_FULL_ARRAY_MAX = 8192
_HEAD_BYTES = 65536  # COG headers (all IFDs and offset arrays) fit in one read of this size
_MAX_IFDS = 512


_Entry = tuple[int, int, bytes]  # TIFF field type, value count, raw value/offset field


@dataclass(frozen=True, slots=True)
class _TiffLayout:
    tiled: bool
    declared_end: int  # furthest byte the header says the file holds (IFDs, arrays, blocks)
    ifds: int


class _BeyondEnd(Exception):
    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


def _checked_layout(path: str, name: str, size: int, warnings: list[str]) -> _TiffLayout | None:
    """Compare what the TIFF header declares with the file size: a truncated file still opens."""
    try:
        layout = _tiff_layout(path, size)
    except (ValueError, struct.error) as exc:
        log.debug("%s: cannot parse TIFF structure: %s", name, exc)
        warnings.append(f"TIFF structure not checked for truncation ({exc})")
        return None
    if layout is None:
        warnings.append("not a plain TIFF container; truncation not checked")
    elif layout.declared_end > size:
        raise _truncated(name, layout.declared_end, size)
    return layout


def _tiff_layout(path: str, size: int) -> _TiffLayout | None:
    """Walk the IFD chain; None when the file is not a TIFF. Raises ValueError if malformed."""
    with open(path, "rb") as fh:
        reader = _Reader(fh, size)
        try:
            fmt = reader.header()
            if fmt is None:
                return None
            tiled, end, count = False, 0, 0
            for ifd_end, tags in reader.ifds(fmt):
                if count == 0:
                    tiled = _TAG_TILE_WIDTH in tags
                end = max(end, ifd_end, reader.data_end(fmt, tags))
                count += 1
        except _BeyondEnd as beyond:
            return _TiffLayout(tiled=False, declared_end=beyond.end, ifds=count)
    return _TiffLayout(tiled=tiled, declared_end=end, ifds=count)


@dataclass(frozen=True, slots=True)
class _Format:
    order: str  # struct byte order
    count: str  # struct code of an IFD's entry count
    offset: str  # struct code of an offset / inline value field
    entry: int  # bytes per IFD entry
    first: int  # offset of the first IFD


class _Reader:
    """Reads only the bytes the header points at, from one cached head block when possible."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh, self.size = fh, size
        self.head = fh.read(min(size, _HEAD_BYTES))

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset in TIFF header")
        if offset + length > self.size:
            raise _BeyondEnd(offset + length)
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        self.fh.seek(offset)
        data = self.fh.read(length)
        if len(data) < length:  # the file shrank while we read it
            raise _BeyondEnd(offset + length)
        return data

    def header(self) -> _Format | None:
        head = self.head[:16]
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 8:
            return None
        magic = struct.unpack(order + "H", head[2:4])[0]
        if magic == 42:
            first = struct.unpack(order + "I", head[4:8])[0]
            return _Format(order, "H", "I", 12, first)
        if magic == 43 and len(head) >= 16:
            first = struct.unpack(order + "Q", head[8:16])[0]
            return _Format(order, "Q", "Q", 20, first)
        return None

    def ifds(self, fmt: _Format) -> Iterator[tuple[int, dict[int, _Entry]]]:
        offset, seen = fmt.first, set()
        count_size, value_size = struct.calcsize(fmt.count), struct.calcsize(fmt.offset)
        while offset and len(seen) < _MAX_IFDS:
            if offset in seen:
                raise ValueError("IFD chain loops")
            seen.add(offset)
            n = struct.unpack(fmt.order + fmt.count, self.read(offset, count_size))[0]
            if n == 0 or n > 4096:
                raise ValueError(f"implausible IFD entry count {n}")
            body = self.read(offset + count_size, n * fmt.entry + value_size)
            tags, values_end = self._entries(fmt, body, n)
            yield max(offset + count_size + len(body), values_end), tags
            offset = struct.unpack(fmt.order + fmt.offset, body[n * fmt.entry :])[0]

    @staticmethod
    def _entries(fmt: _Format, body: bytes, n: int) -> tuple[dict[int, _Entry], int]:
        """Tags of one IFD, and where the furthest out-of-line tag value ends."""
        tags: dict[int, _Entry] = {}
        head = fmt.order + "HH" + fmt.offset  # tag, type, value count (LONG or LONG8)
        head_size = struct.calcsize(head)
        values_end = 0
        for i in range(n):
            raw = body[i * fmt.entry : (i + 1) * fmt.entry]
            tag, typ, count = struct.unpack(head, raw[:head_size])
            field = raw[head_size:]
            tags[tag] = (typ, count, field)
            length = count * _TYPE_SIZES.get(typ, 1)
            if length > len(field):  # the value lives elsewhere; the field holds its offset
                start = struct.unpack(fmt.order + fmt.offset, field)[0]
                values_end = max(values_end, start + length)
        return tags, values_end

    def data_end(self, fmt: _Format, tags: dict[int, _Entry]) -> int:
        pairs = [(_TAG_TILE_OFFSETS, _TAG_TILE_COUNTS), (_TAG_STRIP_OFFSETS, _TAG_STRIP_COUNTS)]
        for off_tag, cnt_tag in pairs:
            if off_tag in tags and cnt_tag in tags:
                offsets = self._array(fmt, tags[off_tag])
                counts = self._array(fmt, tags[cnt_tag])
                return max((o + c for o, c in zip(offsets, counts, strict=False) if o), default=0)
        return 0

    def _array(self, fmt: _Format, entry: _Entry) -> list[int]:
        typ, count, field = entry
        code = _INT_TYPES.get(typ)
        if code is None or count == 0:
            raise ValueError(f"unexpected TIFF type {typ} for a block offset/byte count")
        item = struct.calcsize(code)
        if count * item <= len(field):
            return list(struct.unpack(f"{fmt.order}{count}{code}", field[: count * item]))
        start = struct.unpack(fmt.order + fmt.offset, field)[0]
        if start + count * item > self.size:
            raise _BeyondEnd(start + count * item)
        if count <= _FULL_ARRAY_MAX:
            return list(struct.unpack(f"{fmt.order}{count}{code}", self.read(start, count * item)))
        last = self.read(start + (count - 1) * item, item)
        return list(struct.unpack(fmt.order + code, last))
