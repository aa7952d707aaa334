"""The one seam between stacsync and an iRODS server: the only module that imports `irods`.

Thin on purpose: sessions, one paged listing query, streams, writes, checksums and ACLs.
Where a session connects (environment file, variables, CyVerse defaults) is `irods_env`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol

import irods.exception as irods_exc
from irods import MAX_SQL_ROWS
from irods.access import iRODSAccess
from irods.column import Criterion, In
from irods.models import Collection, CollectionAccess, DataAccess, DataObject, User
from irods.session import NonAnonymousLoginWithoutPassword, iRODSSession

from stacsync.stores.irods_env import (
    ANONYMOUS,
    IrodsConnectError,
    anonymous_target,
    environment_file,
)

__all__ = [
    "ANONYMOUS",
    "PAGE_SIZE",
    "AclState",
    "IrodsClient",
    "IrodsClientLike",
    "IrodsConnectError",
    "ObjectRow",
    "as_oserror",
    "grants_read",
    "iRODSAccess",
    "is_irods_error",
    "is_name_taken",
    "is_network_error",
    "is_not_found",
]

# The server serves at most MAX_SQL_ROWS (256) rows per GenQuery page, whatever a client asks:
# a bigger page size changes nothing but the request.
PAGE_SIZE = MAX_SQL_ROWS
GOOD_REPLICA = "1"
DEFAULT_TIMEOUT = 120.0

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    irods_exc.NetworkException,
    irods_exc.SYS_HEADER_READ_LEN_ERR,
    irods_exc.SYS_HEADER_WRITE_LEN_ERR,
    irods_exc.SYS_SOCK_READ_TIMEDOUT,
    irods_exc.SYS_AGENT_INIT_ERR,
    irods_exc.SYS_EXCEED_CONNECT_CNT,
    socket.timeout,
    ConnectionError,
)
NOT_FOUND_ERRORS: tuple[type[BaseException], ...] = (
    irods_exc.DoesNotExist,
    irods_exc.OBJ_PATH_DOES_NOT_EXIST,
    irods_exc.CAT_UNKNOWN_FILE,
    irods_exc.CAT_UNKNOWN_COLLECTION,
    irods_exc.USER_FILE_DOES_NOT_EXIST,
    irods_exc.CAT_NO_ROWS_FOUND,
)
PERMISSION_ERRORS: tuple[type[BaseException], ...] = (
    irods_exc.CAT_NO_ACCESS_PERMISSION,
    irods_exc.CAT_INSUFFICIENT_PRIVILEGE_LEVEL,
    irods_exc.SYS_NO_API_PRIV,
)
AUTH_ERRORS: tuple[type[BaseException], ...] = (
    irods_exc.CAT_INVALID_AUTHENTICATION,
    irods_exc.CAT_INVALID_USER,
    irods_exc.CAT_PASSWORD_EXPIRED,
    irods_exc.PAM_AUTH_PASSWORD_FAILED,
    NonAnonymousLoginWithoutPassword,
)
NAME_TAKEN_ERRORS: tuple[type[BaseException], ...] = (
    irods_exc.CAT_NAME_EXISTS_AS_DATAOBJ,
    irods_exc.CAT_NAME_EXISTS_AS_COLLECTION,
    irods_exc.OVERWRITE_WITHOUT_FORCE_FLAG,
    irods_exc.DataObjectExistsAtLogicalPath,
)
NO_GOOD_REPLICA_ERRORS: tuple[type[BaseException], ...] = (
    irods_exc.SYS_REPLICA_INACCESSIBLE,
    irods_exc.SYS_REPLICA_DOES_NOT_EXIST,
    irods_exc.HIERARCHY_ERROR,
)
# Access levels at or above read_object (iRODS 4.3 names; 4.2 spells them with spaces).
_READ_LEVEL = iRODSAccess.to_int("read_object")


@dataclass(frozen=True, slots=True)
class ObjectRow:
    """One replica of one data object, as the catalog lists it."""

    collection: str  # logical collection path, no trailing slash
    name: str  # data object name
    size: int
    modify_time: int  # epoch seconds (the catalog keeps whole seconds)
    checksum: str | None  # raw server string: "sha2:BASE64", an md5 hex, or None
    replica_number: int
    replica_status: str  # "1" good, "0" stale, "2" being written, "3"/"4" locked


@dataclass(frozen=True, slots=True)
class AclState:
    """Who may do what on one collection or data object; `inherit` only means anything on
    collections (new children copy the collection's ACLs)."""

    path: str
    entries: tuple[iRODSAccess, ...]
    inherit: bool = False


class IrodsClientLike(Protocol):
    """What stacsync needs from an iRODS session; `IrodsClient` and the tests' fake implement it."""

    user: str
    zone: str

    def iter_objects(
        self, root: str, *, modified_since: int | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[ObjectRow]: ...

    def list_collection_files(self, root: str, *, page_size: int = PAGE_SIZE) -> Iterator[str]: ...

    def replicas(self, path: str) -> list[ObjectRow]: ...

    def is_collection(self, path: str) -> bool: ...

    def open(self, path: str) -> BinaryIO: ...

    def compute_checksum(self, path: str) -> str: ...

    def put(self, local_file: str, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None: ...

    def remove(self, path: str) -> None: ...

    def remove_collection(self, path: str, *, recursive: bool = False) -> None: ...

    def mkdirs(self, path: str) -> None: ...

    def get_acls(self, path: str) -> AclState: ...

    def set_acl(self, access: iRODSAccess, *, recursive: bool = False) -> None: ...

    def close(self) -> None: ...


class _InTree(Criterion):
    """COLL_NAME = 'root' || like 'root/%': a collection and everything below it, one condition.

    GenQuery1 allows `||` between sub-conditions on the same column. `%` and `_` in the root
    stay wildcards: escaping them depends on the catalog database, and a pattern that matched
    too little would make files look deleted. Callers drop the extra rows by prefix instead.
    """

    def __init__(self, root: str):
        super().__init__("=", Collection.name, root)

    @property
    def irods_value(self) -> str:
        return f"'{self.value}' || like '{self.value}/%'"


class IrodsClient:
    """One iRODS session (a small pool of connections) behind stacsync's narrow interface."""

    def __init__(self, session: iRODSSession):
        self._session = session
        self.user: str = session.username
        self.zone: str = session.zone

    def __repr__(self) -> str:
        # Never the session or its account: they hold the password.
        return f"<IrodsClient {self.user}#{self.zone}>"

    @classmethod
    def connect(
        cls,
        env_file: str | None = None,
        *,
        anonymous: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> IrodsClient:
        """A session from the iRODS environment file (and the password `iinit` scrambled into
        ~/.irods/.irodsA), or an anonymous read-only one for public collections.

        `env_file` defaults to $IRODS_ENVIRONMENT_FILE, then ~/.irods/irods_environment.json.
        Anonymous sessions take host, port and zone from $IRODS_HOST, $IRODS_PORT and
        $IRODS_ZONE_NAME, then the env file if there is one, then CyVerse's Data Store.
        Nothing connects until the first call; no credential ever reaches a log or a message.
        """
        path = environment_file(env_file)
        try:
            if anonymous:
                host, port, zone = anonymous_target(path)
                session = iRODSSession(host=host, port=port, user=ANONYMOUS, password="", zone=zone)
            else:
                if not os.path.isfile(path):
                    raise IrodsConnectError(
                        f"no iRODS environment file at {path}: run iinit, or set"
                        " IRODS_ENVIRONMENT_FILE"
                    )
                session = iRODSSession(irods_env_file=path)
        except NonAnonymousLoginWithoutPassword as exc:
            raise IrodsConnectError(
                "no iRODS password for this environment: run iinit (it writes ~/.irods/.irodsA)"
            ) from exc
        except (KeyError, ValueError) as exc:
            raise IrodsConnectError(
                f"iRODS environment file {path} is incomplete or not JSON ({type(exc).__name__})"
            ) from exc
        session.connection_timeout = timeout
        return cls(session)

    def close(self) -> None:
        """Disconnect every pooled connection; safe to call twice."""
        session, self._session = self._session, None
        if session is not None:
            # A session whose server went away may fail to say goodbye; nothing to lose.
            with contextlib.suppress(Exception):
                session.cleanup()

    @property
    def session(self) -> iRODSSession:
        if self._session is None:
            raise irods_exc.NetworkException("session closed")
        return self._session

    # -- listing -----------------------------------------------------------------------------

    def iter_objects(
        self, root: str, *, modified_since: int | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[ObjectRow]:
        """Every replica of every data object at or below `root`, one GenQuery, page by page.

        `modified_since` (epoch seconds) keeps replicas modified at or after it. Stopping the
        iteration early closes the query on the server.
        """
        query = self._replica_query().filter(_InTree(_checked(root)))
        if modified_since is not None:
            # The catalog stores times as zero-padded 11-digit strings and compares them as
            # strings: a datetime is what the column type pads correctly.
            query = query.filter(
                DataObject.modify_time >= datetime.fromtimestamp(int(modified_since), UTC)
            )
        for page in query.limit(page_size).get_batches():
            for row in page:
                yield _object_row(row)

    def _replica_query(self) -> Any:
        """A GenQuery for the columns an ObjectRow holds (one row per replica)."""
        return self.session.query(
            Collection.name,
            DataObject.name,
            DataObject.size,
            DataObject.modify_time,
            DataObject.checksum,
            DataObject.replica_number,
            DataObject.replica_status,
        )

    def list_collection_files(self, root: str, *, page_size: int = PAGE_SIZE) -> Iterator[str]:
        """Logical paths of the data objects at or below `root` (one paged GenQuery)."""
        query = self.session.query(Collection.name, DataObject.name).filter(_InTree(_checked(root)))
        for page in query.limit(page_size).get_batches():
            for row in page:
                yield f"{row[Collection.name]}/{row[DataObject.name]}"

    def replicas(self, path: str) -> list[ObjectRow]:
        """Every replica of the data object at `path`; empty when there is none."""
        parent, name = posixpath.split(_checked(path))
        query = self._replica_query().filter(Collection.name == parent, DataObject.name == name)
        return [_object_row(row) for row in query]

    def is_collection(self, path: str) -> bool:
        return self.session.collections.exists(_checked(path))

    # -- bytes ---------------------------------------------------------------------------

    def open(self, path: str) -> BinaryIO:
        """A seekable read stream on a good replica (it holds one connection until closed)."""
        return self.session.data_objects.open(_checked(path), "r")

    def compute_checksum(self, path: str) -> str:
        """The server's checksum of `path`, computed server-side if it has none yet (no bytes
        come to us). Its scheme is the zone's default_hash_scheme ("sha2:..." or md5 hex)."""
        return self.session.data_objects.chksum(_checked(path))

    def put(self, local_file: str, path: str) -> None:
        """Upload a local file to a new data object; refuses to overwrite an existing one."""
        self.session.data_objects.put(local_file, _checked(path))

    def rename(self, src: str, dst: str) -> None:
        """Rename a data object. iRODS has no rename-over: an existing `dst` is an error."""
        src, dst = _checked(src), _checked(dst)
        # python-irodsclient would move the object *into* a collection called `dst`.
        if self.session.collections.exists(dst):
            raise irods_exc.CAT_NAME_EXISTS_AS_COLLECTION(dst)
        self.session.data_objects.move(src, dst)

    def remove(self, path: str) -> None:
        """Delete a data object for good (no trash: what we remove we can always rebuild)."""
        self.session.data_objects.unlink(_checked(path), force=True)

    def remove_collection(self, path: str, *, recursive: bool = False) -> None:
        """Delete a collection (for good); without `recursive` only an empty one."""
        self.session.collections.remove(_checked(path), recurse=recursive, force=True)

    def mkdirs(self, path: str) -> None:
        """Create a collection and any missing parents; nothing when it exists."""
        path = _checked(path)
        if not self.session.collections.exists(path):
            self.session.collections.create(path, recurse=True)

    # -- access control ------------------------------------------------------------------

    def get_acls(self, path: str) -> AclState:
        """The ACLs of a collection or data object, as the server names them."""
        path = _checked(path)
        session = self.session
        try:
            coll = session.collections.get(path)
        except irods_exc.CollectionDoesNotExist:
            coll = None
        if coll is not None:
            rows = session.query(CollectionAccess.name, CollectionAccess.user_id).filter(
                Collection.name == path
            )
            access_col, user_col = CollectionAccess.name, CollectionAccess.user_id
            inherit = coll.inheritance
        else:
            parent, name = posixpath.split(path)
            if not session.data_objects.exists(path):
                raise irods_exc.DataObjectDoesNotExist(path)
            rows = session.query(DataAccess.name, DataAccess.user_id).filter(
                Collection.name == parent, DataObject.name == name
            )
            access_col, user_col = DataAccess.name, DataAccess.user_id
            inherit = False
        grants = [(row[access_col], row[user_col]) for row in rows]
        users = self._users({user_id for _, user_id in grants})
        entries = tuple(
            iRODSAccess(access, path, *users[user_id])
            for access, user_id in grants
            if user_id in users
        )
        return AclState(path, entries, bool(inherit))

    def _users(self, ids: set[int]) -> dict[int, tuple[str, str]]:
        if not ids:
            return {}
        cond = In(User.id, sorted(ids)) if len(ids) > 1 else User.id == next(iter(ids))
        rows = self.session.query(User.id, User.name, User.zone).filter(cond)
        return {row[User.id]: (row[User.name], row[User.zone]) for row in rows}

    def set_acl(self, access: iRODSAccess, *, recursive: bool = False) -> None:
        """Grant (or with "null" revoke) access; `iRODSAccess("inherit", path)` turns on
        inheritance. `recursive` applies it to everything below a collection too."""
        self.session.acls.set(access, recursive=recursive)


# -- errors, as stacsync sees them --------------------------------------------------------


def is_network_error(exc: BaseException) -> bool:
    """The connection or the server went away: a fresh session and a retry may cure it."""
    return isinstance(exc, NETWORK_ERRORS)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, NOT_FOUND_ERRORS)


def is_name_taken(exc: BaseException) -> bool:
    """A data object or collection already has the name we wanted."""
    return isinstance(exc, NAME_TAKEN_ERRORS)


def is_irods_error(exc: BaseException) -> bool:
    """Anything python-irodsclient raises about the server or the connection."""
    return isinstance(
        exc,
        irods_exc.iRODSException
        | irods_exc.PycommandsException
        | NonAnonymousLoginWithoutPassword
        | socket.timeout
        | ConnectionError,
    )


def as_oserror(exc: BaseException, path: str) -> OSError:
    """The OSError a file API would have raised, so callers' retry and error rows just work.

    Network trouble gets a transient errno (ECONNRESET, ETIMEDOUT) that the extraction
    retry policy retries; a stale-only object gets EAGAIN, i.e. "try again later".
    """
    what = _describe(exc)
    if isinstance(exc, PERMISSION_ERRORS):
        return PermissionError(errno.EACCES, f"permission denied by iRODS ({what})", path)
    if isinstance(exc, AUTH_ERRORS):
        return PermissionError(errno.EACCES, f"iRODS login refused ({what}); run iinit again", path)
    if isinstance(exc, NOT_FOUND_ERRORS):
        return FileNotFoundError(errno.ENOENT, f"not found in iRODS ({what})", path)
    if isinstance(exc, NAME_TAKEN_ERRORS):
        return FileExistsError(errno.EEXIST, f"name already taken in iRODS ({what})", path)
    if isinstance(exc, NO_GOOD_REPLICA_ERRORS):
        return OSError(errno.EAGAIN, f"no good replica to read ({what})", path)
    if isinstance(exc, irods_exc.SYS_SOCK_READ_TIMEDOUT | socket.timeout):
        return OSError(errno.ETIMEDOUT, f"iRODS connection timed out ({what})", path)
    if isinstance(exc, NETWORK_ERRORS):
        return OSError(errno.ECONNRESET, f"iRODS connection lost ({what})", path)
    if isinstance(exc, OSError):
        return exc
    return OSError(errno.EPROTO, f"iRODS error ({what})", path)


def grants_read(access_name: str) -> bool:
    """True when an access level as the server reports it ("read_object", "read object",
    "modify_object", "own", ...) lets its holder read."""
    name = access_name.replace(" ", "_")
    name = {"read": "read_object", "write": "modify_object"}.get(name, name)
    try:
        return iRODSAccess.to_int(name) >= _READ_LEVEL
    except KeyError:
        return False


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    detail = str(exc).strip()
    if detail and len(detail) < 200 and detail != name:
        return f"{name}: {detail}"
    return name


# -- helpers -----------------------------------------------------------------------------


def _checked(path: str) -> str:
    """An absolute logical path without a trailing slash. GenQuery1 has no way to escape a
    single quote inside a value, so such paths are refused rather than mangled."""
    if not path.startswith("/"):
        raise ValueError(f"iRODS path must be absolute: {path!r}")
    if "'" in path:
        raise ValueError(f"iRODS paths with a single quote are not supported: {path!r}")
    return path.rstrip("/") or "/"


def _object_row(row: dict) -> ObjectRow:
    modified = row[DataObject.modify_time]
    if isinstance(modified, datetime):
        modified = int(modified.timestamp())
    return ObjectRow(
        collection=row[Collection.name],
        name=row[DataObject.name],
        size=int(row[DataObject.size]),
        modify_time=int(modified),
        checksum=row[DataObject.checksum] or None,
        replica_number=int(row[DataObject.replica_number]),
        replica_status=str(row[DataObject.replica_status]),
    )
