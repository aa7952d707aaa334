"""Header-only GeoTIFF/COG extraction: one `AssetMeta` per raster, read from a path or a stream.

Tags, CRS, geotransform and overviews come from rasterio, the COG layout from our own IFD reader.
"""

from __future__ import annotations

import errno
import functools
import io
import logging
import os
import re
import stat
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, BinaryIO

import rasterio
from rasterio.abc import FileContainer
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
# A stream has no siblings to find, so GDAL need not even ask for them. VSI_CACHE stays off
# whatever the user's environment says: our own block cache already turns libtiff's small reads
# into few stream reads, and GDAL's would fetch in larger chunks on top of it.
STREAM_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "VSI_CACHE": "FALSE"}

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
    except OSError as exc:
        raise _os_failure(exc, name) from exc
    source = _Source(name, size, fspath, functools.partial(open, fspath, "rb"), GDAL_ENV)
    return _extract(source, crs_override)


def extract_raster_stream(
    open_stream: Callable[[], BinaryIO], size: int, name: str, *, crs_override: str | None = None
) -> AssetMeta:
    """Describe a GeoTIFF/COG read from a seekable stream of `size` bytes, as `extract_raster` does.

    `open_stream()` returns a new binary file object (read/seek/tell/close); it is called once and
    everything (GDAL's reads and ours) is served from that one stream in cached blocks. Sidecar
    files (.ovr, .aux.xml) cannot exist for a stream and are not looked for. Same errors as
    `extract_raster`, including a read error the stream raised while GDAL was reading.
    """
    if size <= 0:
        raise ExtractError(f"{name}: file is empty")
    try:
        # Opened here, not first inside GDAL, so "not found" or "permission denied" is reported
        # as such instead of as a file GDAL could not recognise.
        cache = _StreamCache(open_stream, size)
    except OSError as exc:
        raise _os_failure(exc, name) from exc
    try:
        gdal_path = f"/stacsync/{name}"
        source = _Source(
            name,
            size,
            gdal_path,
            lambda: _StreamView(cache, for_gdal=False),
            STREAM_GDAL_ENV,
            opener=_StreamFiles(gdal_path, cache),
            cache=cache,
        )
        return _extract(source, crs_override)
    finally:
        cache.close()


# --- where the bytes come from ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    """One raster as GDAL and our IFD reader see it: a local path, or a stream behind an opener."""

    name: str
    size: int
    gdal_path: str  # what GDAL is asked to open: the path, or the name the stream is served as
    open_bytes: Callable[[], IO[bytes]]  # a new file object for our own header reads
    env: dict[str, str]
    opener: FileContainer | None = None  # None: GDAL opens gdal_path itself
    cache: _StreamCache | None = None

    def hidden_error(self) -> OSError | None:
        """A read error the stream raised while GDAL read it (GDAL only saw a short read)."""
        return self.cache.hidden if self.cache is not None else None


# Streams are fetched in aligned blocks, each once: libtiff reads IFDs and tag values a few bytes at
# a time (hundreds of reads for a COG with overviews), and on iRODS every read is a round trip.
_STREAM_BLOCK = 16 * 1024
# At most 4 MiB kept: a header needs far less, and a hostile one cannot make us hold more.
_STREAM_MAX_BLOCKS = 256


class _StreamCache:
    """One open stream shared by GDAL's file handles and our IFD reader."""

    def __init__(self, open_stream: Callable[[], BinaryIO], size: int) -> None:
        self.size = size
        self.hidden: OSError | None = None
        self._stream = open_stream()
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    def close(self) -> None:
        self._stream.close()

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if offset < 0 or offset >= end:
            return b""
        first, last = offset // _STREAM_BLOCK, (end - 1) // _STREAM_BLOCK
        data = b"".join(self._blocks_between(first, last))
        skip = offset - first * _STREAM_BLOCK
        return data[skip : skip + end - offset]

    def _blocks_between(self, first: int, last: int) -> Iterator[bytes]:
        index = first
        while index <= last:
            cached = self._blocks.get(index)
            if cached is not None:
                self._blocks.move_to_end(index)
                yield cached
                index += 1
                continue
            stop = index  # fetch the whole run of missing blocks in one read
            while stop < last and stop + 1 not in self._blocks:
                stop += 1
            data = self._read_raw(index * _STREAM_BLOCK, (stop - index + 1) * _STREAM_BLOCK)
            for k in range(index, stop + 1):
                block = data[(k - index) * _STREAM_BLOCK : (k - index + 1) * _STREAM_BLOCK]
                self._remember(k, block)
                yield block
                if len(block) < _STREAM_BLOCK:
                    return  # the stream ended early; nothing after this block
            index = stop + 1

    def _read_raw(self, offset: int, length: int) -> bytes:
        length = min(length, self.size - offset)
        self._stream.seek(offset)
        parts: list[bytes] = []
        while length > 0:
            chunk = self._stream.read(length)  # streams may return short reads
            if not chunk:
                break
            parts.append(chunk)
            length -= len(chunk)
        return b"".join(parts)

    def _remember(self, index: int, block: bytes) -> None:
        self._blocks[index] = block
        while len(self._blocks) > _STREAM_MAX_BLOCKS:
            self._blocks.popitem(last=False)


class _StreamView(io.RawIOBase):
    """A file object over the cache with its own position (GDAL opens a file more than once)."""

    def __init__(self, cache: _StreamCache, *, for_gdal: bool) -> None:
        super().__init__()
        self._cache, self._for_gdal, self._pos = cache, for_gdal, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._cache.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._cache.size - self._pos
        try:
            data = self._cache.read(self._pos, size)
        except OSError as exc:
            if not self._for_gdal:
                raise
            # rasterio's VSI plugin cannot carry a Python exception back through GDAL: keep the
            # error for the caller to raise, and let GDAL see the end of the file.
            if self._cache.hidden is None:
                self._cache.hidden = exc
            return b""
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _StreamFiles(FileContainer):
    """The one-file filesystem rasterio's opener plugin shows GDAL for a stream."""

    def __init__(self, path: str, cache: _StreamCache) -> None:
        self.path, self._cache = path, cache

    def open(self, path: str, mode: str = "r", **kwds: Any) -> _StreamView:
        if path != self.path or not mode.startswith("r"):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return _StreamView(self._cache, for_gdal=True)

    def isfile(self, path: str) -> bool:
        return path == self.path

    def isdir(self, path: str) -> bool:
        return False

    def ls(self, path: str) -> list[str]:
        return []

    def mtime(self, path: str) -> int:
        return 0

    def rm(self, path: str) -> None:
        raise PermissionError(errno.EACCES, "read-only stream", path)

    def size(self, path: str) -> int:
        # Answered without opening anything: rasterio asks once per registration and GDAL per stat.
        if path != self.path:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return self._cache.size


# --- opening and errors ----------------------------------------------------------------------


def _extract(source: _Source, crs_override: str | None) -> AssetMeta:
    try:
        with rasterio.Env(**source.env), _open(source) as src:
            meta = _describe(src, source, crs_override)
    except (ExtractError, RasterioError, CPLE_BaseError, OSError) as exc:
        failure = _failure(exc, source)
        if failure is exc:
            raise
        raise failure from exc
    hidden = source.hidden_error()
    if hidden is not None:  # GDAL coped with a short read, but what it returned may be wrong
        raise _os_failure(hidden, source.name) from hidden
    return meta


def _failure(exc: Exception, source: _Source) -> Exception:
    hidden = source.hidden_error()
    if hidden is not None:
        # GDAL failed because the stream did: that error is the diagnosis (and may be transient).
        return _os_failure(hidden, source.name)
    if isinstance(exc, ExtractError):
        return exc
    if isinstance(exc, RasterioError | CPLE_BaseError):
        return _gdal_failure(exc, source, "GDAL cannot read the header")
    return _os_failure(exc, source.name)


def _file_size(path: str, name: str) -> int:
    st = os.stat(path)  # OSError handled by the caller: transient or permanent
    if not stat.S_ISREG(st.st_mode):
        raise ExtractError(f"{name}: not a regular file")
    if st.st_size == 0:
        raise ExtractError(f"{name}: file is empty")
    return st.st_size


def _open(source: _Source) -> Any:
    try:
        # Only the GTiff driver: we publish these as image/tiff, so a JPEG or PNG named .tif is
        # not something to describe as one.
        return rasterio.open(source.gdal_path, driver="GTiff", opener=source.opener)
    except RasterioIOError as exc:
        raise _open_failure(exc, source) from exc


def _open_failure(exc: Exception, source: _Source) -> Exception:
    name = source.name
    message = _gdal_message(exc, source)
    transient = _transient_errno(message)
    if transient is not None:
        return OSError(transient, f"{name}: {message}")
    lowered = message.lower()
    if "no such file" in lowered:
        return ExtractError(f"{name}: file not found")
    if "permission denied" in lowered:
        return ExtractError(f"{name}: permission denied")
    try:
        with source.open_bytes() as fh:
            layout = _tiff_layout(fh, source.size)
    except (ValueError, struct.error):  # TIFF magic, broken structure
        return ExtractError(f"{name}: not a readable GeoTIFF (GDAL cannot read it: {message})")
    except OSError as os_exc:
        return _os_failure(os_exc, name)
    if layout is None:
        return ExtractError(f"{name}: not a GeoTIFF (GDAL cannot read it: {message})")
    if layout.declared_end > source.size:
        return _truncated(name, layout.declared_end, source.size)
    return ExtractError(f"{name}: not a readable GeoTIFF (GDAL cannot read it: {message})")


def _gdal_failure(exc: Exception, source: _Source, what: str) -> Exception:
    message = _gdal_message(exc, source)
    transient = _transient_errno(message)
    if transient is not None:
        return OSError(transient, f"{source.name}: {message}")
    return ExtractError(f"{source.name}: {what} ({message})")


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


def _gdal_message(exc: Exception, source: _Source) -> str:
    # GDAL quotes the path it was given (for a stream, behind rasterio's /vsiriopener_<id>/
    # prefix); the caller already prefixes the bare name.
    name = source.name
    text = re.sub(r"[^\s'\"]*" + re.escape(source.gdal_path), lambda _: name, str(exc))
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


def _describe(src: Any, source: _Source, crs_override: str | None) -> AssetMeta:
    name = source.name
    warnings: list[str] = []
    # First: a cut-off file can open with its CRS or geotransform missing, and "no CRS" would
    # be the wrong diagnosis.
    layout = _checked_layout(source, warnings)
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
    raster = _raster_info(src, crs_wkt, layout)
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


def _raster_info(src: Any, crs_wkt: str, layout: _TiffLayout | None) -> RasterInfo:
    bands = tuple(_band(src, i) for i in range(src.count))
    resolution = (float(src.res[0]), float(src.res[1]))
    unit = metres_per_unit(crs_wkt)
    block_rows, block_cols = src.block_shapes[0]
    overviews = tuple(int(f) for f in src.overviews(1))
    is_cog, problems = _cog_status(src, layout)
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


def _cog_status(src: Any, layout: _TiffLayout | None) -> tuple[bool, tuple[str, ...]]:
    """The COG verdict of rio-cogeo's strict mode, from the open dataset and the IFDs we parsed.

    rio-cogeo (like GDAL's validate_cloud_optimized_geotiff.py) accepts an untiled file of at most
    512x512: a client fetches it in one or two range requests, so we accept it too. It only warns
    about a bigger file without overviews; we refuse those: a STAC browser showing a large
    orthomosaic zoomed out would have to fetch every full-resolution tile. Nothing is reopened:
    rio-cogeo opened every file once more, and once more per overview level.
    """
    problems: list[str] = []
    if any(f.lower().endswith(".ovr") for f in src.files[1:]):
        problems.append("Overviews found in external .ovr file. They should be internal")
    if layout is None or not layout.images:
        problems.append("COG layout not checked (the TIFF structure could not be read)")
    else:
        problems.extend(_cog_layout_problems(src, layout))
    return not problems, tuple(problems)


# --- COG rules: rio-cogeo's cog_validate (strict), its messages and their order ----------------

_COG_UNTILED_MAX = 512  # pixels per side below which tiles and overviews are not needed
_COG_MAX_FIRST_IFD = 300  # GDAL >= 3.1 writes ~140 bytes of "ghost" structural metadata first


def _cog_layout_problems(src: Any, layout: _TiffLayout) -> list[str]:
    main, overviews = layout.images[0], layout.overviews()
    # As rasterio's overviews() computes them: from the widths alone. Only internal overviews
    # count (rio-cogeo opened the file without looking for a .ovr, reported above).
    factors = [round(src.width / ovr.width) for ovr in overviews]
    errors: list[str] = []
    advice: list[str] = []  # rio-cogeo's warnings: problems in strict mode, listed last
    if src.width > _COG_UNTILED_MAX or src.height > _COG_UNTILED_MAX:
        if src.block_shapes[0][1] == src.width:
            errors.append("The file is greater than 512xH or 512xW, but is not tiled")
        if not factors:
            advice.append(
                "The file is greater than 512xH or 512xW, it is recommended to include internal "
                "overviews"
            )
    if main.offset > _COG_MAX_FIRST_IFD:
        errors.append(f"The offset of the main IFD should be < 300. It is {main.offset} instead")
    if layout.edited:
        errors.append(
            "This file used to have optimizations in its layout, but those have been, at least "
            "partly, invalidated by later changes"
        )
    errors.extend(_overview_ifd_problems(main, overviews, factors))
    errors.extend(_first_block_problems(main, overviews))
    errors.extend(
        f"Overview of index {ix} is not tiled"
        for ix, ovr in enumerate(overviews)
        if max(ovr.width, ovr.height) > _COG_UNTILED_MAX and ovr.block_width == ovr.width
    )
    return errors + advice


def _overview_ifd_problems(
    main: _Ifd, overviews: tuple[_Ifd, ...], factors: list[int]
) -> list[str]:
    """Overviews from largest to smallest, each IFD after the previous one."""
    problems = ["Overviews should be sorted"] if factors != sorted(factors) else []
    previous = main.offset
    for ix, (factor, ovr) in enumerate(zip(factors, overviews, strict=True)):
        if factor <= 1:
            problems.append(f"Invalid Decimation {factor} for overview level {ix}")
        if ovr.offset < previous:
            before = "the main image" if ix == 0 else f"index {ix - 1}"
            problems.append(
                f"The offset of the IFD for overview of index {ix} is {ovr.offset}, whereas it "
                f"should be greater than the one of {before}, which is at byte {previous}"
            )
        previous = ovr.offset
    return problems


def _first_block_problems(main: _Ifd, overviews: tuple[_Ifd, ...]) -> list[str]:
    """Image data after all IFDs, smallest overview's data first, full resolution's last.

    Each image is represented by its first stored block, as in GDAL's validate script. (rio-cogeo
    searches a block grid with rows and columns swapped, which can miss the first stored block of
    a sparse image with non-square blocks; that is the one case where our verdict may differ.)
    An image without a stored block is left out of the comparison, as rio-cogeo leaves it out.
    """
    data = [ifd.first_block for ifd in (main, *overviews) if ifd.first_block > 0]
    problems: list[str] = []
    last_ifd = (overviews[-1] if overviews else main).offset
    if data and data[-1] < last_ifd:
        what = "the smallest overview" if overviews else "the image"
        problems.append(f"The offset of the first block of {what} should be after its IFD")
    for i in range(len(data) - 2, 0, -1):
        if data[i] < data[i + 1]:
            problems.append(
                f"The offset of the first block of overview of index {i - 1} should be after the "
                f"one of the overview of index {i}"
            )
    if len(data) >= 2 and data[0] < data[1]:
        problems.append(
            "The offset of the first block of the main resolution image should be after the one "
            f"of the overview of index {len(overviews) - 1}"
        )
    return problems


# --- TIFF layout: a small, header-only IFD reader for the truncation and COG checks ----------

_TAG_SUBFILE_TYPE, _TAG_WIDTH, _TAG_HEIGHT = 254, 256, 257
_TAG_STRIP_OFFSETS, _TAG_SAMPLES, _TAG_ROWS_PER_STRIP, _TAG_STRIP_COUNTS = 273, 277, 278, 279
_TAG_PLANAR = 284
_TAG_TILE_WIDTH, _TAG_TILE_LENGTH, _TAG_TILE_OFFSETS, _TAG_TILE_COUNTS = 322, 323, 324, 325
_TAG_SUB_IFDS = 330
_REDUCED_IMAGE, _MASK = 1, 4  # NewSubfileType bits
_PLANAR_SEPARATE = 2
_INT_TYPES = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}  # SHORT, LONG, IFD, LONG8, IFD8
# Bytes per value of every TIFF field type, to know where out-of-line tag values end.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TYPE_SIZES |= {16: 8, 17: 8, 18: 8}
# Offset arrays up to this many entries are read whole (<= 64 KiB); longer ones (huge
# files: one request per 8 KiB entries on a FUSE mount adds up) only by their last entry, which
# in every writer we know of is the block that ends furthest into the file.
_FULL_ARRAY_MAX = 8192
# The search for an image's first stored block reads growing slices of its offset arrays and gives
# up after this many empty blocks (a sparse image that empty is reported as having no data).
_FIRST_BLOCK_SLICE, _FIRST_BLOCK_MAX = 256, 65536
_HEAD_BYTES = 65536  # COG headers (all IFDs and offset arrays) fit in one read of this size
_MAX_IFDS = 512
_MAX_OVERVIEWS = 30  # GDAL stops there (a guard against hostile files)
# GDAL >= 3.1 writes "ghost" structural metadata right after the TIFF header.
_GHOST_KEY = b"GDAL_STRUCTURAL_METADATA_SIZE="
_GHOST_EDITED = b"KNOWN_INCOMPATIBLE_EDITION=YES"


_Entry = tuple[int, int, bytes]  # TIFF field type, value count, raw value/offset field


@dataclass(frozen=True, slots=True)
class _Ifd:
    """The facts of one IFD (image) that the COG rules look at."""

    offset: int
    subfile_type: int
    width: int
    height: int
    samples: int
    block_width: int  # TileWidth, or the image width for strips
    first_block: int  # offset of band 1's first stored block; 0 when none is stored


@dataclass(frozen=True, slots=True)
class _TiffLayout:
    tiled: bool
    declared_end: int  # furthest byte the header says the file holds (IFDs, arrays, blocks)
    images: tuple[_Ifd, ...] = ()  # in GDAL's order: first IFD, its SubIFDs, the rest of the chain
    edited: bool = False  # GDAL's ghost header says later edits broke the layout optimisations

    def overviews(self) -> tuple[_Ifd, ...]:
        """The IFDs GDAL takes as internal overviews of the first image, in GDAL's order."""
        main = self.images[0]
        found = [
            ifd
            for ifd in self.images[1:]
            if ifd.subfile_type & _REDUCED_IMAGE
            and not ifd.subfile_type & _MASK
            and ifd.samples == main.samples  # GDAL keeps overviews with the main band count
            and ifd.width > 0  # and those it can open
        ]
        return tuple(found[:_MAX_OVERVIEWS])


class _BeyondEnd(Exception):
    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


def _checked_layout(source: _Source, warnings: list[str]) -> _TiffLayout | None:
    """Compare what the TIFF header declares with the file size: a truncated file still opens."""
    try:
        with source.open_bytes() as fh:
            layout = _tiff_layout(fh, source.size)
    except (ValueError, struct.error) as exc:
        log.debug("%s: cannot parse TIFF structure: %s", source.name, exc)
        warnings.append(f"TIFF structure not checked for truncation ({exc})")
        return None
    if layout is None:
        warnings.append("not a plain TIFF container; truncation not checked")
    elif layout.declared_end > source.size:
        raise _truncated(source.name, layout.declared_end, source.size)
    return layout


def _tiff_layout(fh: IO[bytes], size: int) -> _TiffLayout | None:
    """Walk the IFDs; None when the file is not a TIFF. Raises ValueError if malformed."""
    reader = _Reader(fh, size)
    fmt = reader.header()
    if fmt is None:
        return None
    images: list[_Ifd] = []
    end = 0
    try:
        for offset, ifd_end, tags in reader.walk(fmt):
            end = max(end, ifd_end, reader.data_end(fmt, tags))
            images.append(reader.image(fmt, offset, tags))
    except _BeyondEnd as beyond:
        return _TiffLayout(tiled=False, declared_end=beyond.end)
    return _TiffLayout(
        tiled=_TAG_TILE_WIDTH in reader.first_tags,
        declared_end=end,
        images=tuple(images),
        edited=reader.edited(fmt),
    )


@dataclass(frozen=True, slots=True)
class _Format:
    order: str  # struct byte order
    count: str  # struct code of an IFD's entry count
    offset: str  # struct code of an offset / inline value field
    entry: int  # bytes per IFD entry
    first: int  # offset of the first IFD
    ghost: int  # where GDAL's ghost header would start (right after the TIFF header)


class _Reader:
    """Reads only the bytes the header points at, from one cached head block when possible."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh, self.size = fh, size
        self.head = fh.read(min(size, _HEAD_BYTES))
        self.first_tags: dict[int, _Entry] = {}

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
            return _Format(order, "H", "I", 12, first, 8)
        if magic == 43 and len(head) >= 16:
            first = struct.unpack(order + "Q", head[8:16])[0]
            return _Format(order, "Q", "Q", 20, first, 16)
        return None

    def edited(self, fmt: _Format) -> bool:
        start = fmt.ghost
        if not self.head.startswith(_GHOST_KEY, start):
            return False
        digits = self.head[start + len(_GHOST_KEY) : start + len(_GHOST_KEY) + 6]
        length = len(_GHOST_KEY) + len(b"000000 bytes\n") + (int(digits) if digits.isdigit() else 0)
        return _GHOST_EDITED in self.head[start : start + length]

    def walk(self, fmt: _Format) -> Iterator[tuple[int, int, dict[int, _Entry]]]:
        """(offset, end, tags) of each IFD in GDAL's order: the first, its SubIFDs, the rest."""
        offset, seen = fmt.first, set()
        while offset and len(seen) < _MAX_IFDS:
            if offset in seen:
                raise ValueError("IFD chain loops")
            seen.add(offset)
            ifd_end, tags, following = self.ifd(fmt, offset)
            yield offset, ifd_end, tags
            if len(seen) == 1:
                self.first_tags = tags
                for sub in self._sub_ifds(fmt, tags):
                    sub_end, sub_tags, _ = self.ifd(fmt, sub)
                    yield sub, sub_end, sub_tags
            offset = following

    def _sub_ifds(self, fmt: _Format, tags: dict[int, _Entry]) -> list[int]:
        entry = tags.get(_TAG_SUB_IFDS)
        if entry is None:
            return []
        if entry[1] > _MAX_IFDS:
            raise ValueError(f"implausible SubIFD count {entry[1]}")
        return self._slice(fmt, entry, 0, entry[1])

    def ifd(self, fmt: _Format, offset: int) -> tuple[int, dict[int, _Entry], int]:
        """(where the IFD and its out-of-line values end, its tags, the next IFD's offset)."""
        count_size, value_size = struct.calcsize(fmt.count), struct.calcsize(fmt.offset)
        n = struct.unpack(fmt.order + fmt.count, self.read(offset, count_size))[0]
        if n == 0 or n > 4096:
            raise ValueError(f"implausible IFD entry count {n}")
        body = self.read(offset + count_size, n * fmt.entry + value_size)
        tags, values_end = self._entries(fmt, body, n)
        following = struct.unpack(fmt.order + fmt.offset, body[n * fmt.entry :])[0]
        return max(offset + count_size + len(body), values_end), tags, following

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

    def image(self, fmt: _Format, offset: int, tags: dict[int, _Entry]) -> _Ifd:
        width = self._scalar(fmt, tags, _TAG_WIDTH, 0)
        height = self._scalar(fmt, tags, _TAG_HEIGHT, 0)
        if _TAG_TILE_WIDTH in tags:
            block_width = self._scalar(fmt, tags, _TAG_TILE_WIDTH, 0)
            block_height = self._scalar(fmt, tags, _TAG_TILE_LENGTH, 0)
        else:
            block_width = width
            block_height = min(self._scalar(fmt, tags, _TAG_ROWS_PER_STRIP, height), height)
        band_blocks = _FIRST_BLOCK_MAX
        separate = self._scalar(fmt, tags, _TAG_PLANAR, 1) == _PLANAR_SEPARATE
        if separate and block_width and block_height:
            # Band 1's blocks come first; the search must not run into band 2's.
            band_blocks = -(-width // block_width) * -(-height // block_height)
        return _Ifd(
            offset=offset,
            subfile_type=self._scalar(fmt, tags, _TAG_SUBFILE_TYPE, 0),
            width=width,
            height=height,
            samples=self._scalar(fmt, tags, _TAG_SAMPLES, 1),
            block_width=block_width,
            first_block=self._first_block(fmt, tags, band_blocks),
        )

    @staticmethod
    def _scalar(fmt: _Format, tags: dict[int, _Entry], tag: int, default: int) -> int:
        entry = tags.get(tag)
        if entry is None:
            return default
        typ, count, field = entry
        code = _INT_TYPES.get(typ)
        if code is None or count == 0:
            raise ValueError(f"unexpected TIFF type {typ} for tag {tag}")
        return struct.unpack_from(fmt.order + code, field)[0]

    @staticmethod
    def _block_tags(tags: dict[int, _Entry]) -> tuple[_Entry, _Entry] | None:
        for off_tag, cnt_tag in (
            (_TAG_TILE_OFFSETS, _TAG_TILE_COUNTS),
            (_TAG_STRIP_OFFSETS, _TAG_STRIP_COUNTS),
        ):
            if off_tag in tags and cnt_tag in tags:
                return tags[off_tag], tags[cnt_tag]
        return None

    def data_end(self, fmt: _Format, tags: dict[int, _Entry]) -> int:
        pair = self._block_tags(tags)
        if pair is None:
            return 0
        offsets, counts = (self._array(fmt, entry) for entry in pair)
        return max((o + c for o, c in zip(offsets, counts, strict=False) if o), default=0)

    def _first_block(self, fmt: _Format, tags: dict[int, _Entry], band_blocks: int) -> int:
        """Offset of the first block with data (offset and byte count both non-zero), or 0."""
        pair = self._block_tags(tags)
        if pair is None:
            return 0
        total = min(pair[0][1], pair[1][1], band_blocks, _FIRST_BLOCK_MAX)
        start, step = 0, _FIRST_BLOCK_SLICE
        while start < total:  # almost always decided by the first entry
            n = min(step, total - start)
            offsets, counts = (self._slice(fmt, entry, start, n) for entry in pair)
            found = next((o for o, c in zip(offsets, counts, strict=True) if o and c), 0)
            if found:
                return found
            start, step = start + n, min(step * 4, _FULL_ARRAY_MAX)
        return 0

    def _array(self, fmt: _Format, entry: _Entry) -> list[int]:
        count = entry[1]
        if count <= _FULL_ARRAY_MAX:
            return self._slice(fmt, entry, 0, count)
        return self._slice(fmt, entry, count - 1, 1)

    def _slice(self, fmt: _Format, entry: _Entry, start: int, n: int) -> list[int]:
        """Values start..start+n of an integer array tag, inline or out-of-line."""
        typ, count, field = entry
        code = _INT_TYPES.get(typ)
        if code is None or count == 0:
            raise ValueError(f"unexpected TIFF type {typ} for a block offset/byte count")
        item = struct.calcsize(code)
        if count * item <= len(field):
            values = struct.unpack(f"{fmt.order}{count}{code}", field[: count * item])
            return list(values[start : start + n])
        first = struct.unpack(fmt.order + fmt.offset, field)[0]
        if first + count * item > self.size:
            raise _BeyondEnd(first + count * item)
        raw = self.read(first + start * item, n * item)
        return list(struct.unpack(f"{fmt.order}{n}{code}", raw))
