"""Serve one seekable stream (an iRODS data object) to GDAL and to our own header reads.

GDAL sees it as a one-file filesystem through rasterio's opener; reads go through a block cache.
"""

from __future__ import annotations

import errno
import io
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from rasterio.abc import FileContainer

__all__ = ["STREAM_BLOCK", "STREAM_MAX_BLOCKS", "StreamCache", "StreamFiles", "StreamView"]

# Streams are fetched in aligned blocks, each once: libtiff reads IFDs and tag values a few bytes at
# a time (hundreds of reads for a COG with overviews), and on iRODS every read is a round trip.
STREAM_BLOCK = 16 * 1024
# At most 4 MiB kept: a header needs far less, and a hostile one cannot make us hold more.
STREAM_MAX_BLOCKS = 256


class StreamCache:
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
        first, last = offset // STREAM_BLOCK, (end - 1) // STREAM_BLOCK
        data = b"".join(self._blocks_between(first, last))
        skip = offset - first * STREAM_BLOCK
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
            data = self._read_raw(index * STREAM_BLOCK, (stop - index + 1) * STREAM_BLOCK)
            for k in range(index, stop + 1):
                block = data[(k - index) * STREAM_BLOCK : (k - index + 1) * STREAM_BLOCK]
                self._remember(k, block)
                yield block
                if len(block) < STREAM_BLOCK:
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
        while len(self._blocks) > STREAM_MAX_BLOCKS:
            self._blocks.popitem(last=False)


class StreamView(io.RawIOBase):
    """A file object over the cache with its own position (GDAL opens a file more than once)."""

    def __init__(self, cache: StreamCache, *, for_gdal: bool) -> None:
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


class StreamFiles(FileContainer):
    """The one-file filesystem rasterio's opener plugin shows GDAL for a stream."""

    def __init__(self, path: str, cache: StreamCache) -> None:
        self.path, self._cache = path, cache

    def open(self, path: str, mode: str = "r", **kwds: Any) -> StreamView:
        if path != self.path or not mode.startswith("r"):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return StreamView(self._cache, for_gdal=True)

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
