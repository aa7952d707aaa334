"""Catalog files in an S3 bucket prefix: the `Output` protocol over one PUT per file.

A PUT is atomic (readers see the old object or the new), so there are no temporary objects.
"""

from __future__ import annotations

import contextlib
import io
import logging
import posixpath
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from stacsync.core.atomic import TEMP_PREFIX
from stacsync.core.errors import OutputError
from stacsync.stores.s3 import S3Options, S3Store, parse_s3_url

if TYPE_CHECKING:
    from stacsync.config.settings import Settings

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".parquet": "application/vnd.apache.parquet",
    ".png": "image/png",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
PROBE_NAME = f"{TEMP_PREFIX}write-check"


def content_type(relpath: str) -> str:
    """The Content-Type a catalog file is served with, from its extension."""
    return CONTENT_TYPES.get(posixpath.splitext(relpath)[1].lower(), DEFAULT_CONTENT_TYPE)


class S3Output:
    """Writes and deletes of catalog files under one prefix of a bucket.

    `public` (`[output] public`): whether `make_public` opens the prefix to anonymous GET;
    `make_public` takes the settings only to honour the `Output` protocol.
    """

    def __init__(self, store: S3Store, prefix: str, *, public: bool = False):
        self.store = store
        self.prefix = prefix.lstrip("/")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self.public = public
        self.last_grant: str | None = None  # what make_public last reported
        self._writable = False  # check_writable's probe succeeded once
        self._keys: set[str] | None = None  # keys under the prefix, listed once per pass

    @classmethod
    def from_url(
        cls, url: str, options: S3Options, *, public: bool = False, **store_args: Any
    ) -> S3Output:
        """The output for `s3://bucket/prefix/` (ValueError for a malformed URL)."""
        where = parse_s3_url(url)
        return cls(S3Store(options, where.bucket, **store_args), where.prefix, public=public)

    @property
    def url(self) -> str:
        return f"s3://{self.store.bucket}/{self.prefix}"

    # -- once per pass -------------------------------------------------------------------

    def check_writable(self) -> None:
        """Prove the bucket is there and this identity may write under the prefix (one PUT
        and one DELETE of a probe object, once per output object: a daemon's polls write
        nothing), or raise OutputError saying what to check. Starts a pass: the objects
        under the prefix are listed again at the first `exists`."""
        self._keys = None
        if self._writable:
            return
        try:
            self.store.check_bucket()
        except OSError as exc:
            raise OutputError(f"output {self.url}: {_why(exc)}") from exc
        probe = self.prefix + PROBE_NAME
        try:
            self.store.put(probe, b"", DEFAULT_CONTENT_TYPE)
        except OSError as exc:
            raise OutputError(f"output {self.url}: {_why(exc)}") from exc
        try:
            self.store.delete(probe)
        except OSError as exc:  # writable all the same; the probe is empty and harmless
            log.warning("output %s: cannot delete %s: %s", self.url, probe, _why(exc))
        self._writable = True

    def make_public(self, settings: Settings) -> None:
        """With `public`, let anyone GET objects under the prefix (a bucket-policy statement,
        or object ACLs where the store has no policy API); the store looks before it sets.
        Once per output object: a daemon's later polls make no request for it."""
        if not self.public or self.last_grant is not None:
            return
        try:
            self.last_grant = self.store.grant_public_read(self.prefix)
        except OSError as exc:
            reason = _why(exc)
            raise OutputError(f"output {self.url}: cannot open to public read: {reason}") from exc
        log.info("%s", self.last_grant)

    def sweep_temp_files(self) -> None:
        """Nothing to sweep: a PUT leaves no temporary object behind."""

    # -- files ---------------------------------------------------------------------------

    def key(self, relpath: str) -> str:
        """The object key of a catalog file; refuses anything outside the prefix."""
        norm = posixpath.normpath(relpath) if relpath else "."
        if norm in (".", "..") or norm.startswith(("/", "../")) or relpath.startswith("/"):
            raise OutputError(f"refusing to write {relpath!r}: outside the output prefix")
        return self.prefix + norm

    def exists(self, relpath: str) -> bool:
        """From one listing of the prefix per pass (a pass asks for every item), kept up to
        date by this output's own writes and deletes."""
        return self.key(relpath) in self._known_keys()

    def _known_keys(self) -> set[str]:
        if self._keys is None:
            try:
                self._keys = {info.key for info in self.store.list(self.prefix)}
            except OSError as exc:
                raise OutputError(f"output {self.url}: {_why(exc)}") from exc
        return self._keys

    def write(self, relpath: str, data: bytes) -> None:
        """One PUT, with the Content-Type of the file's extension."""
        key = self.key(relpath)
        try:
            self.store.put(key, bytes(data), content_type(relpath))
        except OSError as exc:
            raise OutputError(f"output {self.url}: {_why(exc)}") from exc
        if self._keys is not None:
            self._keys.add(key)

    @contextlib.contextmanager
    def open_atomic(self, relpath: str) -> Iterator[BinaryIO]:
        """A memory buffer PUT as `relpath` when the block ends cleanly; nothing on error."""
        self.key(relpath)  # refuse a bad path before the caller writes anything
        buffer = io.BytesIO()
        yield buffer
        self.write(relpath, buffer.getvalue())

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to gather: an S3 PUT is durable once it returns."""
        return contextlib.nullcontext()

    def delete(self, relpath: str) -> None:
        """Remove the object (nothing if it is gone; S3 has no folders to tidy)."""
        key = self.key(relpath)
        try:
            self.store.delete(key)
        except OSError as exc:
            raise OutputError(f"output {self.url}: {_why(exc)}") from exc
        if self._keys is not None:
            self._keys.discard(key)


def _why(exc: OSError) -> str:
    # A store error reads "s3://bucket/key: what failed: what to check".
    return str(exc) if exc.strerror and exc.filename else exc.strerror or str(exc)
