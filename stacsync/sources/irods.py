"""An iRODS collection as a source: one paged GenQuery per listing, server checksums, streams.

Only good replicas count; a tree that could not be listed is reported, never read as deletions.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import io
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from stacsync.core.records import SourceEntry
from stacsync.core.retry import is_transient
from stacsync.sources import Listing
from stacsync.stores import irods as seam
from stacsync.stores.irods import PAGE_SIZE, IrodsClientLike, ObjectRow

log = logging.getLogger(__name__)

ClientFactory = Callable[[], IrodsClientLike]
T = TypeVar("T")

# How far before the last poll a since-listing looks: clock skew between this host and the
# catalog, plus objects whose modify time was stamped before their upload was committed.
DEFAULT_SKEW_SECONDS = 300.0
ATTEMPTS = 5
SHA256_MULTIHASH = "1220"  # multihash code 0x12 (sha2-256), digest length 0x20


def multihash_of(raw: str | None) -> str | None:
    """Our multihash hex for an iRODS checksum ("sha2:" + base64 sha-256); None for anything
    else (no checksum, md5 or another scheme) since it could not be compared with ours."""
    if not raw or not raw.startswith("sha2:"):
        return None
    try:
        digest = base64.b64decode(raw[len("sha2:") :], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(digest) != 32:
        return None
    return SHA256_MULTIHASH + digest.hex()


@dataclass(slots=True)
class _Replicas:
    """What the listing saw of one data object's replicas, folded as rows arrive."""

    good: ObjectRow | None = None
    good_checksums: list[tuple[int, str]] = field(default_factory=list)
    other: list[ObjectRow] = field(default_factory=list)

    def add(self, row: ObjectRow) -> None:
        if row.replica_status != seam.GOOD_REPLICA:
            self.other.append(row)
            return
        if row.checksum:
            self.good_checksums.append((row.replica_number, row.checksum))
        # The newest good replica, ties to the lowest number: the same pick whatever the
        # order rows come in, so an unchanged object never looks touched.
        if self.good is None or (row.modify_time, -row.replica_number) > (
            self.good.modify_time,
            -self.good.replica_number,
        ):
            self.good = row

    def entry(self, relpath: str) -> SourceEntry:
        assert self.good is not None
        # Good replicas hold the same bytes, so any good replica's sha2 will do.
        candidates = [self.good.checksum, *(c for _, c in sorted(self.good_checksums))]
        checksum = next((m for m in map(multihash_of, candidates) if m), None)
        return SourceEntry(relpath, self.good.size, self.good.modify_time * 1_000_000_000, checksum)

    def why_not(self) -> str:
        states = ", ".join(
            f"{r.replica_number}: {_STATUS.get(r.replica_status, r.replica_status)}"
            for r in sorted(self.other, key=lambda r: r.replica_number)
        )
        return f"no good replica ({states}); left as it was until one is good"


_STATUS = {"0": "stale", "2": "being written", "3": "read-locked", "4": "write-locked"}


class IrodsSource:
    """Data objects at or below the collection `root` for which `include(relpath)` is true.

    `client_factory` makes a fresh session (`IrodsClient.connect`, or a test fake). Listings
    run on their own session, so a paged query never shares a connection with the reads
    worker threads do; a session that lost its server is dropped and a new one made.
    """

    def __init__(
        self,
        client_factory: ClientFactory,
        root: str,
        include: Callable[[str], bool],
        *,
        compute_checksums: bool = False,
        skew_seconds: float = DEFAULT_SKEW_SECONDS,
        prune: Iterable[str] = (),
        page_size: int = PAGE_SIZE,
        attempts: int = ATTEMPTS,
        retry_wait: float = 0.5,
        max_wait: float = 10.0,
    ):
        self.root = _collection(root)
        self.include = include
        self.compute_checksums = compute_checksums
        self.skew_seconds = skew_seconds
        self.prune = tuple(_collection(p) for p in prune)
        self.page_size = page_size
        self._factory = client_factory
        self._attempts = attempts
        self._retry_wait = retry_wait
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._lister: IrodsClientLike | None = None
        self._io: IrodsClientLike | None = None

    # -- listings ------------------------------------------------------------------------

    def list(self) -> Listing:
        """Every included data object below the root, from one paged query."""
        return self._listing(None)

    def list_since(self, since_epoch: float) -> Listing:
        """Objects modified at or after `since_epoch` minus the skew allowance, for polling.

        The listing's scope is the paths it returned, so nothing else counts as removed:
        deletions, and objects moved in with an old modify time, wait for a full listing.
        """
        since = max(0, int(since_epoch - self.skew_seconds))
        listing = self._listing(since)
        listing.scope = frozenset(listing.entries) | frozenset(d for d in listing.failed_dirs if d)
        return listing

    def _listing(self, since: int | None) -> Listing:
        listing = Listing()
        try:
            seen = self._retrying(lambda: self._query(since))
        except OSError as exc:
            listing.failed_dirs.append("")
            listing.problems.append(f"{self.root}: cannot list iRODS collection: {_reason(exc)}")
            log.warning("cannot list %s: %s", self.root, _reason(exc))
            return listing
        for relpath, replicas in sorted(seen.items()):
            if replicas.good is None and since is not None:
                # Only part of its replicas changed in the window; ask for all of them.
                replicas = self._recheck(relpath, listing) or replicas
            if replicas.good is None:
                if relpath not in listing.failed_dirs:
                    listing.failed_dirs.append(relpath)  # unknown state is not absence
                    listing.problems.append(f"{relpath}: {replicas.why_not()}")
                continue
            listing.entries.add(replicas.entry(relpath))  # once: `seen` is by path
        if self.compute_checksums:
            self._fill_checksums(listing)
        return listing

    def _query(self, since: int | None) -> dict[str, _Replicas]:
        client = self._listing_client()
        try:
            if not client.is_collection(self.root):
                raise FileNotFoundError(
                    errno.ENOENT, "collection not found, or not visible to this user", self.root
                )
            seen: dict[str, _Replicas] = {}
            skipped: set[str] = set()
            for row in client.iter_objects(
                self.root, modified_since=since, page_size=self.page_size
            ):
                relpath = self._relpath(row)
                if relpath is None or relpath in skipped:
                    continue
                replicas = seen.get(relpath)
                if replicas is None:
                    if not self.include(relpath):
                        skipped.add(relpath)
                        continue
                    replicas = seen[relpath] = _Replicas()
                replicas.add(row)
            return seen
        except Exception as exc:
            failure = self._failure(exc, self.root, listing=True)
            if failure is exc:
                raise
            raise failure from exc

    def _relpath(self, row: ObjectRow) -> str | None:
        """The row's path below the root; None for rows a LIKE wildcard let in, or pruned."""
        coll = row.collection
        if coll == self.root:
            return row.name
        if not coll.startswith(self.root + "/"):
            return None
        if any(coll == p or coll.startswith(p + "/") for p in self.prune):
            return None
        return f"{coll[len(self.root) + 1 :]}/{row.name}"

    def _recheck(self, relpath: str, listing: Listing) -> _Replicas | None:
        try:
            rows = self._retrying(
                lambda: self._listing_call(lambda c: c.replicas(self._path(relpath)))
            )
        except OSError as exc:
            listing.failed_dirs.append(relpath)
            listing.problems.append(f"{relpath}: cannot read its replicas: {_reason(exc)}")
            return None
        replicas = _Replicas()
        for row in rows:
            replicas.add(row)
        return replicas

    def _fill_checksums(self, listing: Listing) -> None:
        """Ask the server to checksum what has none (server-side: no bytes come here)."""
        for relpath, entry in list(listing.entries.items()):
            if entry.checksum is not None:
                continue
            path = self._path(relpath)
            try:
                raw = self._listing_call(lambda c, p=path: c.compute_checksum(p))
            except OSError as exc:
                listing.problems.append(f"{relpath}: server could not checksum it: {_reason(exc)}")
                if is_transient(exc):
                    break  # the server is away: the rest wait for the next listing
                continue
            checksum = multihash_of(raw)
            if checksum is None:
                log.debug("%s: server checksum %r is not sha2, not used", relpath, raw)
                continue
            listing.entries[relpath] = SourceEntry(entry.path, entry.size, entry.mtime_ns, checksum)

    # -- one file ------------------------------------------------------------------------

    def stat(self, relpath: str) -> SourceEntry | None:
        """One object's good replica, or None when it does not exist; an object with no good
        replica raises EAGAIN (unknown, not absent: callers must not treat it as removed)."""
        path = self._path(relpath)
        rows = self._io_call(lambda c: c.replicas(path), path)
        if not rows:
            return None
        replicas = _Replicas()
        for row in rows:
            replicas.add(row)
        if replicas.good is None:
            raise OSError(errno.EAGAIN, replicas.why_not(), path)
        return replicas.entry(relpath)

    def checksum(self, relpath: str, *, compute: bool | None = None) -> str | None:
        """The server's sha2 checksum as multihash hex, computed server-side when missing and
        `compute` (default: the source's `compute_checksums`) allows; never reads the bytes."""
        entry = self.stat(relpath)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, "not found in iRODS", self._path(relpath))
        if entry.checksum is not None:
            return entry.checksum
        if not (self.compute_checksums if compute is None else compute):
            return None
        path = self._path(relpath)
        return multihash_of(self._io_call(lambda c: c.compute_checksum(path), path))

    def open(self, relpath: str) -> BinaryIO:
        """A seekable stream that reads only what it is asked (plus one small buffer)."""
        path = self._path(relpath)
        stream = self._io_call(lambda c: c.open(path), path)
        return IrodsStream(stream, path)  # type: ignore[return-value]

    def local_path(self, relpath: str) -> str:
        """The logical iRODS path of a file (what the public href is derived from)."""
        return self._path(relpath)

    remote = True  # reads are round trips: see Source.remote

    def readable_path(self, relpath: str) -> str | None:
        """None: GDAL and laspy cannot open an iRODS path; read through `open()`."""
        return None

    def stored_checksum(self, relpath: str) -> str | None:
        """None: iRODS checksums come with the listing (`SourceEntry.checksum`)."""
        return None

    def close(self) -> None:
        """Close both sessions; safe to call twice."""
        with self._lock:
            clients, self._lister, self._io = (self._lister, self._io), None, None
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    # -- sessions and errors -------------------------------------------------------------

    def _path(self, relpath: str) -> str:
        return f"{self.root}/{relpath}"

    def _listing_client(self) -> IrodsClientLike:
        with self._lock:
            if self._lister is None:
                self._lister = self._factory()
            return self._lister

    def _io_client(self) -> IrodsClientLike:
        with self._lock:
            if self._io is None:
                self._io = self._factory()
            return self._io

    def _listing_call(self, fn: Callable[[IrodsClientLike], T]) -> T:
        try:
            return fn(self._listing_client())
        except Exception as exc:
            failure = self._failure(exc, self.root, listing=True)
            if failure is exc:
                raise
            raise failure from exc

    def _io_call(self, fn: Callable[[IrodsClientLike], T], path: str) -> T:
        client = self._io_client()
        try:
            return fn(client)
        except Exception as exc:
            failure = self._failure(exc, path, listing=False, client=client)
            if failure is exc:
                raise
            raise failure from exc

    def _failure(
        self, exc: Exception, path: str, *, listing: bool, client: Any = None
    ) -> BaseException:
        """The OSError to raise for `exc` (itself when it is not iRODS's); a session that lost
        its server is let go, so the next attempt starts a fresh one."""
        if not seam.is_irods_error(exc):
            return exc
        if seam.is_network_error(exc):
            self._drop(listing=listing, client=client)
        return seam.as_oserror(exc, path)

    def _drop(self, *, listing: bool, client: Any) -> None:
        with self._lock:
            if listing:
                old, self._lister = self._lister, None
            elif self._io is client:
                # Not closed: other threads may still be reading through it.
                old, self._io = None, None
            else:
                old = None
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Same policy as extraction retries (bounded, exponential), with a fresh session."""
        for attempt in Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=self._max_wait),
            reraise=True,
            before_sleep=lambda state: log.info(
                "iRODS listing of %s failed (%s), retrying (attempt %d)",
                self.root,
                _reason(state.outcome.exception()),
                state.attempt_number,
            ),
        ):
            with attempt:
                return fn()
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True raises


class IrodsStream(io.BufferedIOBase):
    """A data object's read stream whose iRODS errors arrive as OSErrors (transient errno for
    a lost connection), so the extraction and checksum retry policies apply unchanged."""

    def __init__(self, inner: BinaryIO, path: str):
        super().__init__()
        self._inner = inner
        self.name = path

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._call(self._inner.read, -1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self._call(self._inner.read, size)

    def readinto(self, buffer: Any) -> int:
        return self._call(self._inner.readinto, buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._call(self._inner.seek, offset, whence)

    def tell(self) -> int:
        return self._call(self._inner.tell)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._inner.close()
        except Exception as exc:
            # A read-only stream has nothing to lose at close; the server drops it anyway.
            if not seam.is_irods_error(exc):
                raise
            log.debug("closing %s: %s", self.name, exc)
        finally:
            super().close()

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.closed:
            raise ValueError("I/O operation on closed iRODS stream")
        try:
            return fn(*args)
        except Exception as exc:
            if seam.is_irods_error(exc):
                raise seam.as_oserror(exc, self.name) from exc
            raise


def _collection(path: str) -> str:
    path = path.rstrip("/")
    if not path.startswith("/"):
        raise ValueError(f"iRODS collection must be an absolute path: {path!r}")
    if "'" in path:
        raise ValueError(f"iRODS paths with a single quote are not supported: {path!r}")
    return path


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
