"""Checksum and extract one changed file: the per-file work of a pass, in worker threads.

Never raises for a per-file problem: every outcome is a `Result` the pass commits.
"""

from __future__ import annotations

import functools
import logging
import posixpath
from dataclasses import dataclass

from stacsync.catalog.layout import Placement
from stacsync.config.settings import Settings
from stacsync.core.checksum import checksum_stream
from stacsync.core.errors import ExtractError
from stacsync.core.names import display
from stacsync.core.records import AssetMeta, SourceEntry
from stacsync.core.retry import is_transient, retrying
from stacsync.extract.dispatch import TransientIOError, extract_file, extract_stream
from stacsync.extract.shown import PixelPolicy, ThumbnailBar
from stacsync.manifest.rows import FileRow
from stacsync.sources import Source

log = logging.getLogger(__name__)

# A first build of this many local files is examined in processes (stacsync.pipeline.workers):
# starting them costs ~0.4 s, a header read a few ms.
MIN_PROCESS_FILES = 200


@dataclass(frozen=True, slots=True)
class Work:
    """One file that needs a checksum and/or an extraction."""

    entry: SourceEntry
    placement: Placement | None  # None: known file, placed only if its content changed
    old: FileRow | None
    crs: str | None
    checksum_first: bool  # known file: hash before deciding whether to extract
    # A raster's thumbnail is drawn only if its item may show it (None: always).
    thumbnail: ThumbnailBar | None = None


@dataclass(frozen=True, slots=True)
class Result:
    work: Work
    checksum: str | None
    meta: AssetMeta | None
    error: str | None
    transient: bool
    extracted: bool


class Examiner:
    """Checksums and header extractions of one pass's changed files (thread-safe)."""

    def __init__(self, settings: Settings, source: Source):
        self.settings = settings
        self.source = source
        mode = settings.verify_border
        self._verify_border = mode == "always" or (mode == "local" and not source.remote)

    def examine(self, work: Work) -> Result:
        """Checksum (known files first) and extract; never raises for a per-file problem."""
        path = work.entry.path
        checksum = None
        try:
            checksum = self.checksum(work.entry)
            if work.checksum_first and checksum == work.old.checksum:
                return Result(work, checksum, None, None, False, extracted=False)
            meta = self.extract(work)
            return Result(work, checksum, meta, None, False, extracted=True)
        except TransientIOError as exc:
            return Result(work, checksum, None, str(exc), True, extracted=True)
        except ExtractError as exc:
            return Result(work, checksum, None, str(exc), False, extracted=True)
        except OSError as exc:
            name = file_name(path)
            message = f"{name}: cannot read file ({exc.strerror or exc})"
            return Result(work, checksum, None, message, is_transient(exc), extracted=True)
        except Exception as exc:  # a reader bug must cost one file, never the pass
            log.exception("unexpected error on %s", display(path))
            message = f"{file_name(path)}: unexpected error while reading ({exc!r}); please report"
            return Result(work, checksum, None, message, False, extracted=True)

    def extract(self, work: Work) -> AssetMeta:
        path = work.entry.path
        readable = self.source.readable_path(path)
        options = {
            "crs_override": work.crs,
            "read_overviews": self.settings.read_overviews,
            "pixels": PixelPolicy(work.thumbnail, self._verify_border),
        }
        if readable is not None:
            return extract_file(readable, **options)
        return extract_stream(
            file_name(path), work.entry.size, functools.partial(self.source.open, path), **options
        )

    def checksum(self, entry: SourceEntry) -> str | None:
        """The store's checksum when it keeps one (iRODS), else one read of the file."""
        if self.settings.checksum == "none":
            return None
        if entry.checksum is not None:
            return entry.checksum
        if self.source.remote:
            # Hashing a remote object would download it whole: the store's own checksum, if
            # it keeps one its listing does not show (S3: one HEAD), else none; the header is
            # re-read instead (`irods.compute_checksums` fills iRODS checksums).
            return self.source.stored_checksum(entry.path)
        return self._read_checksum(entry.path)

    @retrying()
    def _read_checksum(self, path: str) -> str | None:
        with self.source.open(path) as stream:
            return checksum_stream(stream, self.settings.checksum)


def worth_processes(new: int, first: str | None, workers: int, source: Source) -> bool:
    """Parse headers in processes when enough local files are new (a first build): `new`
    files are extracted for sure (not checksummed first), the first of them at `first`."""
    if workers < 2 or first is None:
        return False
    # Processes open local files by path; a remote source (iRODS, S3) is latency-bound: the
    # pass's threads wait on the network, and a forked client connection is not safe.
    local = not source.remote and source.readable_path(first) is not None
    return new >= MIN_PROCESS_FILES and local


def file_name(path: str) -> str:
    """A file's name as messages and GDAL's stream paths show it (printable, UTF-8)."""
    return display(posixpath.basename(path))
