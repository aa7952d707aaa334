"""The keeper's parent catalog kept in iRODS: read it, and replace it without losing its ACLs.

Loaded only for an iRODS output with a `parent_catalog` (python-irodsclient costs start-up).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import tempfile
import uuid

from stacsync.core.atomic import TEMP_PREFIX
from stacsync.stores import irods as seam
from stacsync.stores.irods import IrodsClientLike, iRODSAccess

log = logging.getLogger(__name__)


class IrodsParentStore:
    """A parent catalog in iRODS (a `stacsync.keeper.parent.ParentStore`), read and replaced
    through an iRODS session (the output's). Both methods raise OSError.

    The keeper's file is replaced atomically: the new bytes are put beside it, the old file
    is renamed aside, the new one renamed in (the old one is put back if that fails), the
    old file's ACLs are copied onto the new one (a public parent stays public), and the old
    file is removed. It needs write access to the parent's collection, not only the file.
    """

    def __init__(self, client: IrodsClientLike):
        self.client = client

    def read(self, path: str) -> bytes:
        try:
            with self.client.open(path) as stream:
                return stream.read()
        except Exception as exc:
            if not seam.is_irods_error(exc):
                raise
            raise seam.as_oserror(exc, path) from exc

    def write(self, path: str, data: bytes) -> None:
        coll = posixpath.dirname(path)
        token = uuid.uuid4().hex
        new, old = f"{coll}/{TEMP_PREFIX}{token}", f"{coll}/{TEMP_PREFIX}old-{token}"
        fd, local = tempfile.mkstemp(prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            self._swap(local, path, new, old)
        except Exception as exc:
            if not seam.is_irods_error(exc):
                raise
            raise seam.as_oserror(exc, path) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(local)

    def _swap(self, local: str, path: str, new: str, old: str) -> None:
        client = self.client
        acls = client.get_acls(path)
        client.put(local, new)
        try:
            client.rename(path, old)
        except Exception:
            with contextlib.suppress(Exception):
                client.remove(new)
            raise
        try:
            client.rename(new, path)
        except Exception:
            with contextlib.suppress(Exception):
                client.rename(old, path)
                client.remove(new)
            raise
        for entry in acls.entries:
            if (entry.user_name, entry.user_zone) != (client.user, client.zone):
                access = iRODSAccess(entry.access_name, path, entry.user_name, entry.user_zone)
                client.set_acl(access)
        try:
            client.remove(old)
        except Exception as exc:
            # Only the keeper may delete their file: the old copy stays, hidden by its name.
            log.warning("parent catalog %s: old copy %s left behind: %s", path, old, exc)
