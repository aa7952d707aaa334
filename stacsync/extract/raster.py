"""Header-only GeoTIFF/COG extraction: one `AssetMeta` per raster, read from a path or a stream.

Here: opening (GDAL options, errors) and the checks and pixels; the facts are in `raster_info`.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import os
import re
import stat
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import rasterio
from rasterio.abc import FileContainer
from rasterio.errors import CRSError as RasterioCRSError
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.session import DummySession

from stacsync.core.errors import ExtractError
from stacsync.core.records import AssetMeta, BBox, RasterInfo
from stacsync.core.retry import TRANSIENT_ERRNOS, is_transient
from stacsync.extract.crs import identify_crs
from stacsync.extract.footprint import trace
from stacsync.extract.geometry import footprint_4326
from stacsync.extract.overview import plan_sample, read_sample
from stacsync.extract.raster_info import raster_info, tiff_datetime
from stacsync.extract.shown import PixelPolicy
from stacsync.extract.streams import StreamCache, StreamFiles, StreamView
from stacsync.extract.thumbnail import render_thumbnail, thumbnail_bands
from stacsync.extract.tiff import TiffLayout, read_tiff_layout

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
# GTIFF_IMPLICIT_JPEG_OVR is pinned off as rasterio's own default has it: when on (GDAL's
# default inside a bare rasterio.Env), a JPEG-compressed file without overviews is read at
# reduced scale through JPEG's DCT, and the valid-data mask (so the footprint) would depend on
# the environment a pass happens to run in.
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE", "GTIFF_IMPLICIT_JPEG_OVR": "NO"}
# A stream has no siblings to find, so GDAL need not even ask for them. VSI_CACHE stays off
# whatever the user's environment says: our own block cache already turns libtiff's small reads
# into few stream reads, and GDAL's would fetch in larger chunks on top of it.
STREAM_GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "VSI_CACHE": "FALSE",
    "GTIFF_IMPLICIT_JPEG_OVR": "NO",
}

# GDAL reports OS errors as text only; recognise them by the C library's strerror wording.
_TRANSIENT_TEXT = {os.strerror(code).lower(): code for code in TRANSIENT_ERRNOS}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")
_OPENER_LOCK = threading.Lock()
_HEADER_BYTES = 64 * 1024  # a TIFF's first IFDs and tile offsets, as a remote read fetches


def extract_raster(
    path: str | os.PathLike,
    *,
    crs_override: str | None = None,
    read_overviews: bool = True,
    pixels: PixelPolicy | None = None,
) -> AssetMeta:
    """Describe a GeoTIFF/COG from its header.

    `crs_override` is only used when the file has no CRS. `pixels`: draw the thumbnail only
    if this raster can be the one its item shows, check the border at full resolution or not
    (None: both, when overviews are read).
    Raises ExtractError (message starts with the file name) for anything a person must fix,
    and OSError with a transient errno (EIO, EREMOTEIO, ETIMEDOUT, EAGAIN, ESTALE, ECONNRESET)
    for hiccups worth a retry.
    """
    fspath = os.fspath(path)
    name = os.path.basename(fspath)
    try:
        size = _file_size(fspath, name)
    except OSError as exc:
        raise _os_failure(exc, name) from exc
    source = _Source(name, size, fspath, functools.partial(open, fspath, "rb"), GDAL_ENV)
    return _extract(source, crs_override, read_overviews, pixels)


def extract_raster_stream(
    open_stream: Callable[[], BinaryIO],
    size: int,
    name: str,
    *,
    crs_override: str | None = None,
    read_overviews: bool = True,
    pixels: PixelPolicy | None = None,
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
        cache = StreamCache(open_stream, size)
    except OSError as exc:
        raise _os_failure(exc, name) from exc
    try:
        # The header block, fetched before the lock below: streams wait on it side by side.
        cache.read(0, min(size, _HEADER_BYTES))
        gdal_path = f"/stacsync/{name}"
        source = _Source(
            name,
            size,
            gdal_path,
            lambda: StreamView(cache, for_gdal=False),
            STREAM_GDAL_ENV,
            opener=StreamFiles(gdal_path, cache),
            cache=cache,
        )
        # rasterio's Python-file layer (its opener registry and GDAL plugin handlers) is not
        # thread-safe (rasterio#3636); a pass reading a remote store in many threads once
        # died of SIGSEGV in it. One stream at a time goes through GDAL.
        with _OPENER_LOCK:
            return _extract(source, crs_override, read_overviews, pixels)
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
    cache: StreamCache | None = None

    def hidden_error(self) -> OSError | None:
        """A read error the stream raised while GDAL read it (GDAL only saw a short read)."""
        return self.cache.hidden if self.cache is not None else None


# --- opening and errors ----------------------------------------------------------------------


def _extract(
    source: _Source,
    crs_override: str | None,
    read_overviews: bool,
    pixels: PixelPolicy | None = None,
) -> AssetMeta:
    try:
        # No AWS session: stacsync never reads through GDAL's S3 driver, and with AWS
        # credentials in the environment rasterio would build a boto3 session per file.
        with rasterio.Env(session=DummySession(), **source.env), _open(source) as src:
            meta = _describe(src, source, crs_override, read_overviews, pixels)
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
            layout = read_tiff_layout(fh, source.size)
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
    if is_transient(exc):
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


def _describe(
    src: Any,
    source: _Source,
    crs_override: str | None,
    read_overviews: bool,
    pixels: PixelPolicy | None = None,
) -> AssetMeta:
    name = source.name
    warnings: list[str] = []
    # First: a cut-off file can open with its CRS or geotransform missing, and "no CRS" would
    # be the wrong diagnosis.
    layout = _checked_layout(source, warnings)
    _check_rpc_gcp_only(src, name)
    crs_code, crs_wkt = _crs(src, name, crs_override, warnings)
    _check_geotransform(src, name)
    corners = _corners(src)
    off_globe: ExtractError | None = None
    try:
        grid = footprint_4326(corners, crs_wkt)
    except ExtractError as exc:
        if "cannot be transformed" not in str(exc):
            raise ExtractError(f"{name}: {exc}") from exc
        # Grid corners off the Earth (a geostationary disk): only its valid pixels place it.
        off_globe, grid = exc, _OFF_GLOBE
    when, problem = tiff_datetime(src.tags().get("TIFFTAG_DATETIME"))
    if problem:
        warnings.append(problem)
    raster = raster_info(src, crs_wkt, layout)
    if read_overviews:
        policy = pixels or PixelPolicy()
        seen = _look_at_pixels(src, source, crs_wkt, grid, warnings, policy, raster)
    else:
        seen = _Pixels(*grid, "grid box: overviews not read (extract.read_overviews = false)", None)
    if off_globe is not None and seen.geometry is _OFF_GLOBE[1]:
        raise ExtractError(f"{name}: {off_globe}") from off_globe
    return AssetMeta(
        kind="raster",
        media_type=MEDIA_TYPE_COG if raster.is_cog else MEDIA_TYPE,
        crs_code=crs_code,
        crs_wkt2=crs_wkt,
        bbox_native=_envelope(corners),
        bbox_4326=seen.bbox,
        geometry_4326=seen.geometry,
        footprint_method=seen.method,
        datetime=when,
        raster=raster,
        warnings=tuple(warnings),
        thumbnail=seen.thumbnail,
    )


# --- pixels: the valid-data footprint and the thumbnail, from one small read -------------------


# Stands for the grid box of a grid whose corners are off the Earth: there is none.
_OFF_GLOBE: tuple[BBox, dict[str, Any]] = ((math.nan,) * 4, {})


@dataclass(frozen=True, slots=True)
class _Pixels:
    bbox: BBox
    geometry: dict[str, Any]
    method: str  # AssetMeta.footprint_method
    thumbnail: bytes | None


def _look_at_pixels(
    src: Any,
    source: _Source,
    crs_wkt: str,
    grid: tuple[BBox, dict[str, Any]],
    warnings: list[str],
    policy: PixelPolicy,
    raster: RasterInfo,
) -> _Pixels:
    """Trace where the data is and draw the thumbnail (if the item may show it), from the
    smallest useful overview (its border checked at full resolution if `policy` says so).

    Anything short of an I/O error worth a retry leaves the grid box (and says why): the header
    facts are already known, and a footprint that is too big is better than no item.
    """
    plan = plan_sample(src.width, src.height, raster.overviews, source.size)  # band 1's, read once
    if plan.shape is None:
        return _Pixels(*grid, f"grid box: {plan.level}", None)
    bands = thumbnail_bands([ci.name for ci in src.colorinterp])
    try:
        sample = read_sample(src, plan, bands, verify_border=policy.verify_border)
    except (RasterioError, CPLE_BaseError) as exc:
        message = _gdal_message(exc, source)
        if source.hidden_error() is not None or _transient_errno(message) is not None:
            raise  # _extract turns it into the stream's error or a transient OSError
        warnings.append(
            f"pixels ({plan.level}) cannot be read ({message}); the footprint is the "
            "grid box and there is no thumbnail"
        )
        return _Pixels(*grid, f"grid box: {plan.level} cannot be read", None)
    thumbnail = render_thumbnail(sample, bands) if policy.draws(raster) else None
    extent = sample.valid if sample.extent is None else sample.extent
    if not extent.any():
        warnings.append(
            f"no valid pixels: every pixel read ({sample.level}) is nodata or masked; "
            "the footprint is the whole grid"
        )
        return _Pixels(*grid, f"grid box: all nodata at {sample.level}", thumbnail)
    if extent.all():
        # The traced outline would be the grid's rectangle: keep the exact grid box.
        return _Pixels(*grid, f"grid box: every pixel valid at {sample.level}", thumbnail)
    try:
        # Grown one traced pixel, so no valid centre is cut; not when every full-resolution
        # pixel was traced as such: each centre is half a pixel inside the outline already.
        grow = 0.0 if extent.shape == (src.height, src.width) else 1.0
        traced = trace(extent, sample.transform, crs_wkt, grow=grow)
    except ExtractError as exc:
        warnings.append(f"valid-data outline not usable ({exc}); the footprint is the grid box")
        return _Pixels(*grid, "grid box: valid-data outline not usable", thumbnail)
    return _Pixels(traced.bbox, traced.geometry, f"valid-data mask at {sample.level}", thumbnail)


def _checked_layout(source: _Source, warnings: list[str]) -> TiffLayout | None:
    """Compare what the TIFF header declares with the file size: a truncated file still opens."""
    try:
        with source.open_bytes() as fh:
            layout = read_tiff_layout(fh, source.size)
    except (ValueError, struct.error) as exc:
        log.debug("%s: cannot parse TIFF structure: %s", source.name, exc)
        warnings.append(f"TIFF structure not checked for truncation ({exc})")
        return None
    if layout is None:
        warnings.append("not a plain TIFF container; truncation not checked")
    elif layout.declared_end > source.size:
        raise _truncated(source.name, layout.declared_end, source.size)
    return layout


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
