"""An S3 bucket prefix as a source: one paged listing per pass, ranged reads of headers only.

A listing that fails part-way lists nothing (never a cut listing read as deletions).
"""

from __future__ import annotations

import errno
import io
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, BinaryIO

from stacsync.core.records import SourceEntry
from stacsync.sources import Listing
from stacsync.stores.s3 import S3Options, S3Store, parse_s3_url

log = logging.getLogger(__name__)

# One GET brings this much from where a read starts: a LAS header and its VLRs, or a TIFF's
# first IFDs, in one request; the extractors' own block cache sits on top of it.
READ_AHEAD = 64 * 1024
KEEP_BUFFERS = 4  # the header, the tail (LAZ chunk table, EVLRs) and a couple more


class S3Source:
    """Objects under `prefix` of one bucket for which `include(relpath)` is true.

    Paths are keys relative to the prefix. Listings carry size, LastModified and the ETag;
    checksums cost a HEAD each, so they are fetched only through `checksum()`.
    """

    remote = True  # reads are round trips: see Source.remote

    def __init__(
        self,
        store: S3Store,
        prefix: str,
        include: Callable[[str], bool],
        *,
        read_ahead: int = READ_AHEAD,
    ):
        self.store = store
        self.prefix = prefix.lstrip("/")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"  # "data" must not also list "data-old/..."
        self.include = include
        self.read_ahead = read_ahead

    @classmethod
    def from_url(
        cls,
        url: str,
        options: S3Options,
        include: Callable[[str], bool],
        **store_args: Any,
    ) -> S3Source:
        """The source for `s3://bucket/prefix/` (ValueError for a malformed URL)."""
        where = parse_s3_url(url)
        return cls(S3Store(options, where.bucket, **store_args), where.prefix, include)

    @property
    def url(self) -> str:
        return f"s3://{self.store.bucket}/{self.prefix}"

    # -- listings ------------------------------------------------------------------------

    def list(self) -> Listing:
        """Every included object under the prefix; a listing that fails at any page lists
        nothing and says why (`failed_dirs` holds the root)."""
        listing = Listing()
        try:
            for info in self.store.list(self.prefix):
                relpath = info.key[len(self.prefix) :]
                if not relpath or relpath.endswith("/"):
                    continue  # a folder marker: S3 has no folders
                if not self.include(relpath):
                    continue
                why = why_not_a_path(relpath)
                if why is not None:
                    listing.skip(relpath, why)
                    continue
                etag = info.etag or None
                entry = SourceEntry(relpath, info.size, info.last_modified_ns, None, etag)
                listing.entries.add(entry)  # a listing names each key once
        except OSError as exc:
            log.warning("cannot list %s: %s", self.url, exc.strerror or exc)
            return Listing(
                failed_dirs=[""],
                problems=[f"{self.url}: {exc.strerror or exc}"],
            )
        return listing

    # -- one file ------------------------------------------------------------------------

    def stat(self, relpath: str) -> SourceEntry | None:
        """One object as the listing would show it (no checksum), or None when absent."""
        head = self.store.head(self.key(relpath))
        if head is None:
            return None
        return SourceEntry(relpath, head.size, head.last_modified_ns, None, head.etag or None)

    def checksum(self, relpath: str) -> str | None:
        """The store's checksum as multihash hex (sha2-256 from x-amz-checksum-sha256, else
        md5 from rclone's metadata), from one HEAD; None when it keeps none."""
        key = self.key(relpath)
        head = self.store.head(key)
        if head is None:
            raise FileNotFoundError(errno.ENOENT, "object not found", self.local_path(relpath))
        return head.checksum

    def stored_checksum(self, relpath: str) -> str | None:
        """`checksum()` for a pass (Source protocol): None also when the object is gone, as
        the next listing will show; the header read that follows reports it."""
        head = self.store.head(self.key(relpath))
        return None if head is None else head.checksum

    def open(self, relpath: str) -> BinaryIO:
        """A seekable stream of ranged GETs; the first one (the header) is made here."""
        return S3ObjectStream(self.store, self.key(relpath), read_ahead=self.read_ahead)  # type: ignore[return-value]

    def local_path(self, relpath: str) -> str:
        """The object's address, s3://bucket/key (what a public href is derived from)."""
        return f"s3://{self.store.bucket}/{self.key(relpath)}"

    def readable_path(self, relpath: str) -> str | None:
        """None: extraction opens a readable path with the OS (os.stat, open) for rasters and
        point clouds alike, so objects are read through `open()`; `vsi_path` is GDAL's."""
        return None

    def vsi_path(self, relpath: str) -> str:
        """The object as GDAL names it, for rasterio with `gdal_env()` in its environment."""
        return f"/vsis3/{self.store.bucket}/{self.key(relpath)}"

    def gdal_env(self) -> dict[str, str]:
        return self.store.gdal_env()

    def key(self, relpath: str) -> str:
        return self.prefix + relpath


def why_not_a_path(relpath: str) -> str | None:
    """Why an object's key (relative to the prefix) cannot be a file path; None if it can."""
    if "\0" in relpath:
        return "its key holds a NUL character, which no file path can; rename the object"
    segments = relpath.split("/")
    if "" in segments:
        return (
            "its key has an empty segment (a leading '/' or '//'), so it is no plain relative"
            " path; rename the object"
        )
    if "." in segments or ".." in segments:
        return "its key has a '.' or '..' segment, which a path cannot keep; rename the object"
    return None


class S3ObjectStream(io.BufferedIOBase):
    """A read-only, seekable view of one object: each read outside what is buffered is one
    ranged GET of at least `read_ahead` bytes. Every GET after the first asks for the same
    ETag, so an object replaced mid-read raises ESTALE (transient: the reader starts over)."""

    def __init__(self, store: S3Store, key: str, *, read_ahead: int = READ_AHEAD):
        super().__init__()
        self._store = store
        self._key = key
        self._read_ahead = max(1, read_ahead)
        self.name = f"s3://{store.bucket}/{key}"
        first = store.read_range(key, 0, self._read_ahead)
        self.size = first.size
        self.etag = first.etag
        self._buffers: OrderedDict[int, bytes] = OrderedDict({0: first.data})
        self._pos = 0
        self.requests = 1  # GETs made, for tests and logs

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise OSError(errno.EINVAL, "negative seek position", self.name)
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        parts: list[bytes] = []
        while self._pos < end:
            start, buffer = self._buffer_at(self._pos, end)
            chunk = buffer[self._pos - start : end - start]
            if not chunk:
                break  # the object ended before its declared size: no more to give
            parts.append(chunk)
            self._pos += len(chunk)
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._buffers.clear()
        super().close()

    def _buffer_at(self, pos: int, end: int) -> tuple[int, bytes]:
        for start, buffer in self._buffers.items():
            if start <= pos < start + len(buffer):
                self._buffers.move_to_end(start)
                return start, buffer
        got = self._store.read_range(
            self._key, pos, max(end - pos, self._read_ahead), if_match=self.etag
        )
        self.requests += 1
        self._buffers[pos] = got.data
        while len(self._buffers) > KEEP_BUFFERS:
            self._buffers.popitem(last=False)
        return pos, got.data

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed S3 stream")
