"""Pick the reader for a file by its extension, run it with retries, and name what failed.

The one entry point of extraction: `extract_file` for a path, `extract_stream` for a stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import BinaryIO, TypeVar

from stacsync.core.errors import ExtractError
from stacsync.core.records import AssetMeta
from stacsync.core.retry import ATTEMPTS, is_transient, retrying
from stacsync.extract.shown import PixelPolicy

__all__ = ["TransientIOError", "extract_file", "extract_stream", "reader_for"]

_T = TypeVar("_T")

RASTER_SUFFIXES = frozenset({".tif", ".tiff"})
POINTCLOUD_SUFFIXES = frozenset({".las", ".laz"})
# Plain images (a thumbnail someone already made): cataloged as they are, never read.
IMAGE_TYPES = {".png": "image/png"}
IMAGE_KIND = "image"  # AssetMeta.kind of a plain image: no CRS, no geometry


class TransientIOError(ExtractError):
    """An I/O error that persisted through every retry; the next pass tries again."""


def reader_for(path: str) -> str | None:
    """'raster', 'pointcloud', 'image' or None, by extension (content is checked by the reader)."""
    suffix = _suffix(path)
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if suffix in POINTCLOUD_SUFFIXES:
        return "pointcloud"
    if suffix in IMAGE_TYPES:
        return IMAGE_KIND
    return None


def _suffix(path: str) -> str:
    """`PurePosixPath(path).suffix.lower()` without a path object: this runs for every file of
    a pass, and tens of thousands of short-lived objects fragment a big pass's memory."""
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def plain_image(name: str) -> AssetMeta:
    """What a plain image asset is: its media type, and no CRS or place of its own.

    Nothing is read: a PNG is published as it is (its size comes from the listing), and its
    item's geometry comes from the item's geospatial files. Zero boxes and an empty geometry
    stand for "none"; the catalog model leaves such assets out of footprints.
    """
    media_type = IMAGE_TYPES[_suffix(name)]
    return AssetMeta(
        kind=IMAGE_KIND,
        media_type=media_type,
        crs_code=None,
        crs_wkt2="",
        bbox_native=(0.0, 0.0, 0.0, 0.0),
        bbox_4326=(0.0, 0.0, 0.0, 0.0),
        geometry_4326={},
        footprint_method="none: a plain image, not read (no geometry of its own)",
    )


def extract_file(
    path: str,
    *,
    crs_override: str | None = None,
    read_overviews: bool = True,
    pixels: PixelPolicy | None = None,
) -> AssetMeta:
    """Describe one file from its header; ExtractError for anything a person must fix.

    With `read_overviews` a raster's smallest useful overview (a COPC cloud's coarse octree
    levels) is read too, for a valid-data footprint and a thumbnail; without, headers only.
    `pixels` says which thumbnail is worth drawing and whether to check the traced border at
    full resolution (None: draw it, check it).
    """
    kind = reader_for(path)
    name = PurePosixPath(path).name
    if kind is None:
        raise ExtractError(f"{name}: no reader for this file type")
    if kind == IMAGE_KIND:
        return plain_image(name)
    return _guarded(
        name, lambda: _extract_with_retries(path, kind, crs_override, read_overviews, pixels)
    )


def extract_stream(
    name: str,
    size: int,
    open_stream: Callable[[], BinaryIO],
    *,
    crs_override: str | None = None,
    read_overviews: bool = True,
    pixels: PixelPolicy | None = None,
) -> AssetMeta:
    """Describe a file known only as a seekable stream (an iRODS data object), as `extract_file`.

    `name` is the file name (it picks the reader and starts every message), `size` its length in
    bytes. `open_stream()` must return a new seekable binary file object each time; each attempt
    opens one and closes it. Only header bytes are read. Results equal `extract_file`'s for the
    same bytes, except that sidecar files (.ovr, .aux.xml) do not exist for a stream.
    """
    kind = reader_for(name)
    if kind is None:
        raise ExtractError(f"{name}: no reader for this file type")
    if kind == IMAGE_KIND:
        return plain_image(name)
    return _guarded(
        name,
        lambda: _extract_stream_with_retries(
            name, size, open_stream, kind, crs_override, read_overviews, pixels
        ),
    )


def _guarded(name: str, extract: Callable[[], _T]) -> _T:
    """Turn what escapes the retries into ExtractError (TransientIOError for I/O hiccups)."""
    try:
        return extract()
    except OSError as exc:
        if is_transient(exc):
            raise TransientIOError(
                f"{name}: I/O error persisted after {ATTEMPTS} attempts ({exc.strerror or exc});"
                " will retry on the next pass"
            ) from exc
        raise ExtractError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    except MemoryError as exc:
        raise ExtractError(f"{name}: header asks for more memory than is sane") from exc


@retrying()
def _extract_with_retries(
    path: str,
    kind: str,
    crs_override: str | None,
    read_overviews: bool,
    pixels: PixelPolicy | None = None,
) -> AssetMeta:
    # The readers load rasterio, laspy and pyproj: imported on the first file that needs them.
    if kind == "raster":
        from stacsync.extract.raster import extract_raster

        return extract_raster(
            path, crs_override=crs_override, read_overviews=read_overviews, pixels=pixels
        )
    from stacsync.extract.pointcloud import extract_pointcloud

    return extract_pointcloud(path, crs_override=crs_override, read_overviews=read_overviews)


@retrying()
def _extract_stream_with_retries(
    name: str,
    size: int,
    open_stream: Callable[[], BinaryIO],
    kind: str,
    crs_override: str | None,
    read_overviews: bool,
    pixels: PixelPolicy | None = None,
) -> AssetMeta:
    options = {"crs_override": crs_override, "read_overviews": read_overviews}
    if kind == "raster":
        from stacsync.extract.raster import extract_raster_stream

        return extract_raster_stream(open_stream, size, name, pixels=pixels, **options)
    from stacsync.extract.pointcloud import extract_pointcloud_stream

    # closing(), not the stream's own context manager: a stream need only have close().
    with contextlib.closing(_opened(open_stream, name)) as fileobj:
        return extract_pointcloud_stream(fileobj, size, name, **options)


def _opened(open_stream: Callable[[], BinaryIO], name: str) -> BinaryIO:
    """Open the stream, with the messages a path that cannot be opened gets."""
    try:
        return open_stream()
    except OSError as exc:
        if is_transient(exc):
            raise
        if isinstance(exc, FileNotFoundError):
            raise ExtractError(f"{name}: file not found") from exc
        if isinstance(exc, PermissionError):
            raise ExtractError(f"{name}: permission denied") from exc
        raise ExtractError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
