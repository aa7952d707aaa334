"""Catalog files in an iRODS collection: put under a temporary name, then renamed into place.

`exists` answers from one listing per pass; `make_public` opens the output to anonymous read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from stacsync.core.atomic import TEMP_PREFIX
from stacsync.core.errors import OutputError
from stacsync.stores import irods as seam
from stacsync.stores.irods import ANONYMOUS, IrodsClientLike, iRODSAccess

if TYPE_CHECKING:
    from stacsync.config.settings import Settings

log = logging.getLogger(__name__)


class IrodsOutput:
    """Atomic writes and deletes of catalog files under one iRODS collection.

    iRODS cannot rename over an existing object, so replacing a file is put to a temporary
    name, remove the old one, rename: a reader sees the old file, then for an instant none,
    then the new one, never a part of one. A crash in that instant leaves the file missing;
    the next pass sees it missing and writes it again.
    """

    def __init__(self, client: IrodsClientLike, root_collection: str):
        self.client = client
        self.root = root_collection.rstrip("/")
        if not self.root.startswith("/"):
            raise OutputError(f"output {root_collection!r}: iRODS collection must be absolute")
        self._lock = threading.RLock()
        self._files: set[str] | None = None  # relpaths below the root, from this pass's listing
        self._collections: set[str] = set()  # logical collections known to exist

    # -- once per pass -------------------------------------------------------------------

    def check_writable(self) -> None:
        """Create the collection if needed; starts a new pass (the next `exists` lists again).

        Write permission itself shows on the first write, as an OutputError naming the file.
        """
        try:
            self.client.mkdirs(self.root)
        except Exception as exc:
            if seam.is_name_taken(exc):
                raise OutputError(f"output {self.root}: exists and is not a collection") from exc
            raise self._error(f"output {self.root}: cannot create collection", exc) from exc
        self.refresh()
        self._collections.add(self.root)

    def refresh(self) -> None:
        """Forget what the last listing said; the next `exists` lists the output again."""
        with self._lock:
            self._files = None
            self._collections = set()

    def sweep_temp_files(self) -> None:
        """Remove temporary objects a crash left between put and rename (never seen by readers)."""
        try:
            paths = list(self.client.list_collection_files(self.root))
        except Exception as exc:
            log.warning("output %s: cannot list temporary files: %s", self.root, exc)
            return
        for path in paths:
            if posixpath.basename(path).startswith(TEMP_PREFIX) and self._under_root(path):
                with contextlib.suppress(Exception):
                    self.client.remove(path)
        self.refresh()

    # -- files ---------------------------------------------------------------------------

    def path(self, relpath: str) -> str:
        """The logical path of a catalog file; refuses anything outside the root."""
        norm = posixpath.normpath(relpath) if relpath else "."
        if norm in (".", "..") or norm.startswith(("/", "../")) or relpath.startswith("/"):
            raise OutputError(f"refusing to write {relpath!r}: outside the output collection")
        return f"{self.root}/{norm}"

    def exists(self, relpath: str) -> bool:
        # Called for every item on every pass: answered from one listing per pass.
        return posixpath.normpath(relpath) in self._known_files()

    def write(self, relpath: str, data: bytes) -> None:
        with self.open_atomic(relpath) as out:
            out.write(data)

    @contextlib.contextmanager
    def open_atomic(self, relpath: str) -> Iterator[BinaryIO]:
        """A local buffer that appears as `relpath` in iRODS only once complete."""
        target = self.path(relpath)
        fd, local = tempfile.mkstemp(prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            self._publish(local, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(local)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to gather: an iRODS put is durable once it returns."""
        return contextlib.nullcontext()

    def delete(self, relpath: str) -> None:
        """Remove a file, and the collections it leaves empty (up to the root)."""
        target = self.path(relpath)
        try:
            self.client.remove(target)
        except Exception as exc:
            if not seam.is_not_found(exc):
                raise self._error(f"cannot delete {relpath}", exc, target) from exc
        files = self._known_files()
        with self._lock:
            files.discard(self._rel(target))
        self._remove_empty(posixpath.dirname(target))

    # -- publishing ----------------------------------------------------------------------

    def make_public(self, settings: Settings) -> None:
        """With `irods.public_read` (the default), give `irods.public_user` read on the output
        collection, recursively and inherited by new files; it looks before it sets anything.
        The user's zone is `irods.public_zone`, else the output collection's own."""
        irods = settings.irods
        if not irods.public_read:
            return
        zone = irods.public_zone or PurePosixPath(self.root).parts[1]
        self.ensure_public_read(irods.public_user, zone)  # logs what it grants

    def ensure_public_read(self, user: str = ANONYMOUS, zone: str = "iplant") -> bool:
        """Give `user#zone` read on the output collection, recursively and inherited by new
        files; True when anything had to be set."""
        return ensure_public_read(self.client, self.root, user=user, zone=zone)

    # -- internals -----------------------------------------------------------------------

    def _publish(self, local: str, target: str) -> None:
        rel = self._rel(target)
        parent = posixpath.dirname(target)
        tmp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            self._ensure_collection(parent)
            self.client.put(local, tmp)
            self._replace(tmp, target, rel)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.client.remove(tmp)
            if isinstance(exc, OutputError) or not seam.is_irods_error(exc):
                raise
            raise self._error(f"cannot write {rel}", exc, target) from exc
        with self._lock:
            self._known_files().add(rel)

    def _replace(self, tmp: str, target: str, rel: str) -> None:
        files = self._known_files()
        with self._lock:
            known = rel in files
        if known:
            self._remove_if_present(target)
        try:
            self.client.rename(tmp, target)
        except Exception as exc:
            # Someone made the file since our listing: same dance, one more call.
            if not seam.is_name_taken(exc) or self.client.is_collection(target):
                raise
            self._remove_if_present(target)
            self.client.rename(tmp, target)

    def _remove_if_present(self, path: str) -> None:
        try:
            self.client.remove(path)
        except Exception as exc:
            if not seam.is_not_found(exc):
                raise

    def _ensure_collection(self, coll: str) -> None:
        with self._lock:
            if coll in self._collections:
                return
        self.client.mkdirs(coll)
        with self._lock:
            while coll != self.root and coll.startswith(self.root + "/"):
                self._collections.add(coll)
                coll = posixpath.dirname(coll)

    def _remove_empty(self, coll: str) -> None:
        """Remove collections a delete emptied; stops at the first that still holds anything."""
        files = self._known_files()
        while coll != self.root and coll.startswith(self.root + "/"):
            prefix = self._rel(coll) + "/"
            with self._lock:
                if any(f.startswith(prefix) for f in files):
                    return
            try:
                # Not recursive: a sub-collection we do not know of keeps it, as it should.
                self.client.remove_collection(coll)
            except Exception:
                return
            with self._lock:
                self._collections.discard(coll)
            coll = posixpath.dirname(coll)

    def _known_files(self) -> set[str]:
        with self._lock:
            if self._files is not None:
                return self._files
        try:
            paths = list(self.client.list_collection_files(self.root))
        except Exception as exc:
            raise self._error(f"output {self.root}: cannot list collection", exc) from exc
        files: set[str] = set()
        collections = {self.root}
        for path in paths:
            if not self._under_root(path) or posixpath.basename(path).startswith(TEMP_PREFIX):
                continue  # a LIKE wildcard's sibling, or a temp file nobody should see
            files.add(self._rel(path))
            coll = posixpath.dirname(path)
            while coll != self.root and coll not in collections:
                collections.add(coll)
                coll = posixpath.dirname(coll)
        with self._lock:
            self._files = files
            self._collections |= collections
            return files

    def _under_root(self, path: str) -> bool:
        return path.startswith(self.root + "/")

    def _rel(self, path: str) -> str:
        return path[len(self.root) + 1 :]

    def _error(self, message: str, exc: BaseException, path: str | None = None) -> OutputError:
        os_error = seam.as_oserror(exc, path or self.root)
        return OutputError(f"{message}: {os_error.strerror or os_error}")


def ensure_public_read(
    client: IrodsClientLike, collection: str, *, user: str = ANONYMOUS, zone: str = "iplant"
) -> bool:
    """Open `collection` (and only it: never a parent) to `user#zone` for reading, with
    inheritance so files written later are readable too. Looks before it sets anything;
    returns True when it had to set something.

    Usable on its own for an output written through the CyVerse FUSE mount.
    """
    collection = collection.rstrip("/")
    try:
        state = client.get_acls(collection)
        readable = any(
            entry.user_name == user
            and (entry.user_zone or zone) == zone
            and seam.grants_read(entry.access_name)
            for entry in state.entries
        )
        if readable and state.inherit:
            return False
        # Files made while either was missing may lack read: always grant it recursively.
        client.set_acl(iRODSAccess("read", collection, user, zone), recursive=True)
        if not state.inherit:
            client.set_acl(iRODSAccess("inherit", collection), recursive=True)
    except Exception as exc:
        if not seam.is_irods_error(exc):
            raise
        reason = seam.as_oserror(exc, collection)
        raise OutputError(
            f"output {collection}: cannot open to {user}#{zone}: {reason.strerror or reason}"
        ) from exc
    log.info("output %s: read access for %s#%s set, inherited by new files", collection, user, zone)
    return True
