"""An in-process stand-in for an iRODS server and its sessions, for tests of the iRODS layer.

It keeps objects, replicas, checksums and ACLs, pages queries, counts bytes read, and raises
python-irodsclient's own exception classes where a server would.

What it models: logical paths, collections with owners, ACLs (read_object / modify_object /
own, recursive, inheritance copied onto new children), replicas with status and their own
size / modify time / checksum, GenQuery paging (at most MAX_SQL_ROWS rows a page, whatever is
asked), LIKE wildcards in the root (`%`, `_`, unescaped: the worst a server could do), uploads
that are visible half-written under their own name, rename that never overwrites, sessions
that die when the server restarts, and injectable faults (NetworkException mid-listing or
mid-read, any error on any call).

What it does not: groups, tickets, resources and hierarchies, trash, quotas, strict ACL
policy (every name is listed to every user; opening needs read), GenQuery beyond what
stacsync asks, parallel transfers, or time passing on its own (`server.clock` is set by tests).
"""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import irods.exception as ex
from irods import MAX_SQL_ROWS
from irods.access import iRODSAccess

from stacsync.stores.irods import PAGE_SIZE, AclState, ObjectRow

_RANK = {"read_object": 1050, "modify_object": 1120, "own": 1200}
_ALIASES = {
    "read": "read_object",
    "read object": "read_object",
    "read_object": "read_object",
    "write": "modify_object",
    "modify object": "modify_object",
    "modify_object": "modify_object",
    "own": "own",
}


def sha2(data: bytes) -> str:
    """The checksum iRODS records for `data` with the sha2 hash scheme."""
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


@dataclass
class FakeReplica:
    """One replica: its own bytes, modify time, checksum and status ("1" good, "0" stale...)."""

    number: int
    data: bytes
    modify_time: int
    status: str = "1"
    checksum: str | None = None


@dataclass
class FakeObject:
    """A data object: its replicas and its ACL ({(user, zone): access name})."""

    replicas: list[FakeReplica]
    acl: dict[tuple[str, str], str]

    def good(self) -> FakeReplica | None:
        return next((r for r in self.replicas if r.status == "1"), None)


@dataclass
class FakeCollection:
    """A collection: its ACL and whether new children inherit it."""

    acl: dict[tuple[str, str], str]
    inherit: bool = False


@dataclass
class ReadStats:
    """What came over the wire for one path, across all the streams opened on it."""

    opens: int = 0
    bytes_read: int = 0
    read_calls: int = 0


@dataclass
class Fault:
    """An error the server raises on the next matching call(s).

    `after` is how far the operation got first: pages served (op "page"), bytes served
    (op "read", "put"), ignored otherwise. `restart` also kills every open session.
    """

    op: str
    exc: BaseException
    times: int = 1
    after: int = 0
    path: str | None = None
    restart: bool = False


@dataclass
class FakeIrodsServer:
    """The catalog and storage behind every fake session; tests arrange and inspect it here."""

    zone: str = "iplant"
    users: tuple[str, ...] = ("rods", "alice", "bob", "anonymous")
    clock: int = 1_700_000_000  # what "now" is when the server stamps a modify time
    hash_scheme: str = "sha2"  # "sha2" or "md5": what compute_checksum produces
    checksum_on_put: bool = False
    put_chunk: int = 64 * 1024
    objects: dict[str, FakeObject] = field(default_factory=dict)
    collections: dict[str, FakeCollection] = field(default_factory=dict)
    history: list[tuple] = field(default_factory=list)  # every call: (op, *args)
    timeline: list[tuple[str, bytes | None]] = field(default_factory=list)  # path, what it shows
    reads: dict[str, ReadStats] = field(default_factory=lambda: defaultdict(ReadStats))
    faults: list[Fault] = field(default_factory=list)
    sessions: list[FakeIrodsClient] = field(default_factory=list)
    generation: int = 0  # bumps on restart; older sessions are dead

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        for path in ("/", f"/{self.zone}", f"/{self.zone}/home"):
            self.collections[path] = FakeCollection({("rods", self.zone): "own"})
        for user in self.users:
            if user not in ("rods", "anonymous"):
                self.collections[f"/{self.zone}/home/{user}"] = FakeCollection(
                    {(user, self.zone): "own"}
                )

    # -- sessions ------------------------------------------------------------------------

    def client(self, user: str = "alice") -> FakeIrodsClient:
        """A new session for `user` (counted in `sessions`)."""
        client = FakeIrodsClient(self, user)
        self.sessions.append(client)
        return client

    def factory(self, user: str = "alice") -> Callable[[], FakeIrodsClient]:
        """A client factory, as IrodsSource takes one."""
        return lambda: self.client(user)

    def restart(self) -> None:
        """The server goes down and comes back: every open session is dead."""
        self.generation += 1

    # -- arranging -----------------------------------------------------------------------

    def add_object(
        self,
        path: str,
        data: bytes = b"",
        *,
        owner: str = "alice",
        modify_time: int | None = None,
        checksum: bool | str | None = True,
        replicas: int = 1,
        statuses: tuple[str, ...] = (),
    ) -> FakeObject:
        """Put an object straight into the catalog (parents made, owned by `owner`).

        `checksum`: True for the sha2 of the bytes, False/None for none, or a raw string.
        `statuses` gives each replica's status (default all good).
        """
        with self.lock:
            self._make_parents(posixpath.dirname(path), owner)
            when = self.clock if modify_time is None else modify_time
            raw = sha2(data) if checksum is True else (checksum or None)
            obj = FakeObject(
                [
                    FakeReplica(n, data, when, statuses[n] if n < len(statuses) else "1", raw)
                    for n in range(replicas)
                ],
                {(owner, self.zone): "own"},
            )
            self.objects[path] = obj
            self._show(path)
            return obj

    def write_object(self, path: str, data: bytes, *, modify_time: int | None = None) -> None:
        """Overwrite replica 0 as a client would; the other replicas become stale."""
        with self.lock:
            obj = self.objects[path]
            first = obj.replicas[0]
            first.data, first.status, first.checksum = data, "1", None
            first.modify_time = self.clock if modify_time is None else modify_time
            for other in obj.replicas[1:]:
                other.status = "0"
            self._show(path)

    def delete_object(self, path: str) -> None:
        with self.lock:
            del self.objects[path]
            self._show(path)

    def grant(self, path: str, user: str, access: str) -> None:
        """Set an ACL entry directly ("read", "write", "own", "null")."""
        with self.lock:
            node = self.objects.get(path) or self.collections[path]
            self._apply(node, user, self.zone, access)

    def fail(
        self,
        op: str,
        exc: BaseException | None = None,
        *,
        times: int = 1,
        after: int = 0,
        path: str | None = None,
        restart: bool = False,
    ) -> Fault:
        """Make the next `times` calls of `op` raise `exc` (default: a NetworkException)."""
        fault = Fault(
            op,
            exc or ex.NetworkException("Could not receive server response"),
            times,
            after,
            path,
            restart,
        )
        self.faults.append(fault)
        return fault

    # -- inspecting ----------------------------------------------------------------------

    def calls(self, op: str) -> list[tuple]:
        """The recorded calls of one operation, without the op name."""
        return [h[1:] for h in self.history if h[0] == op]

    def visible(self, path: str) -> list[bytes | None]:
        """What a reader of `path` could have seen after each change, in order."""
        return [data for p, data in self.timeline if p == path]

    def data(self, path: str) -> bytes:
        return self.objects[path].replicas[0].data

    def acl(self, path: str) -> dict[tuple[str, str], str]:
        node = self.objects.get(path) or self.collections[path]
        return dict(node.acl)

    def inherits(self, path: str) -> bool:
        return self.collections[path].inherit

    # -- the server's rules --------------------------------------------------------------

    def strike(self, op: str, path: str | None = None, progress: int = 0) -> None:
        """Raise the first armed fault that matches this call."""
        with self.lock:
            for fault in self.faults:
                if fault.times <= 0 or fault.op != op or progress < fault.after:
                    continue
                if fault.path is not None and fault.path != path:
                    continue
                fault.times -= 1
                if fault.restart:
                    self.restart()
                raise fault.exc

    def can(self, user: str, path: str, access: str) -> bool:
        node = self.objects.get(path) or self.collections.get(path)
        if node is None:
            return False
        level = node.acl.get((user, self.zone))
        return level is not None and _RANK[level] >= _RANK[access]

    def in_tree(self, root: str, collection: str) -> bool:
        """COLL_NAME = 'root' || like 'root/%', with `%` and `_` in root as wildcards."""
        if collection == root:
            return True
        pattern = "".join(
            ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in root + "/%"
        )
        return re.fullmatch(pattern, collection, flags=re.DOTALL) is not None

    def _show(self, path: str) -> None:
        obj = self.objects.get(path)
        self.timeline.append((path, None if obj is None else obj.replicas[0].data))

    def _make_parents(self, coll: str, owner: str) -> None:
        missing = []
        while coll not in self.collections:
            missing.append(coll)
            coll = posixpath.dirname(coll)
        for path in reversed(missing):
            self._new_collection(path, owner)

    def _new_collection(self, path: str, owner: str) -> None:
        parent = self.collections[posixpath.dirname(path)]
        acl = {(owner, self.zone): "own"}
        if parent.inherit:
            acl = {**parent.acl, **acl}
        self.collections[path] = FakeCollection(acl, parent.inherit)

    def _apply(self, node: FakeObject | FakeCollection, user: str, zone: str, access: str) -> None:
        if access == "null":
            node.acl.pop((user, zone), None)
        else:
            node.acl[(user, zone)] = _ALIASES[access]

    def _below(self, coll: str) -> tuple[list[str], list[str]]:
        colls = [c for c in self.collections if c == coll or c.startswith(coll.rstrip("/") + "/")]
        objs = [p for p in self.objects if p.startswith(coll.rstrip("/") + "/")]
        return colls, objs


class FakeIrodsClient:
    """One session on a FakeIrodsServer, with the methods of stacsync.stores.irods.IrodsClient."""

    def __init__(self, server: FakeIrodsServer, user: str):
        self.server = server
        self.user = user
        self.zone = server.zone
        self.closed = False
        self._generation = server.generation

    def __repr__(self) -> str:
        return f"<FakeIrodsClient {self.user}#{self.zone}>"

    def alive(self) -> None:
        """Raise as python-irodsclient does when the connection is gone."""
        if self.closed or self._generation != self.server.generation:
            raise ex.NetworkException("Could not receive server response")

    def _enter(self, op: str, *args: object, path: str | None = None) -> None:
        self.server.history.append((op, *args))
        self.alive()
        self.server.strike(op, path)

    def close(self) -> None:
        self.server.history.append(("close", self.user))
        self.closed = True

    # -- listing -------------------------------------------------------------------------

    def iter_objects(
        self, root: str, *, modified_since: int | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[ObjectRow]:
        self._enter("query", root, modified_since, page_size)
        server = self.server
        with server.lock:
            rows = [
                ObjectRow(
                    posixpath.dirname(path),
                    posixpath.basename(path),
                    len(r.data),
                    r.modify_time,
                    r.checksum,
                    r.number,
                    r.status,
                )
                for path, obj in server.objects.items()
                if server.in_tree(root, posixpath.dirname(path))
                for r in obj.replicas
                if modified_since is None or r.modify_time >= modified_since
            ]
        rows.sort(key=lambda r: (r.collection, r.name, r.replica_number))
        yield from self._pages(rows, page_size)

    def list_collection_files(self, root: str, *, page_size: int = PAGE_SIZE) -> Iterator[str]:
        self._enter("list_files", root, page_size)
        server = self.server
        with server.lock:
            paths = sorted(p for p in server.objects if server.in_tree(root, posixpath.dirname(p)))
        yield from self._pages(paths, page_size)

    def _pages(self, rows: list, page_size: int) -> Iterator:
        size = max(1, min(page_size, MAX_SQL_ROWS))
        starts = range(0, len(rows), size) if rows else [0]
        for index, start in enumerate(starts):
            self.server.history.append(("page", index))
            self.alive()
            self.server.strike("page", progress=index)
            yield from rows[start : start + size]

    def replicas(self, path: str) -> list[ObjectRow]:
        self._enter("replicas", path, path=path)
        obj = self.server.objects.get(path)
        if obj is None:
            return []
        coll, name = posixpath.split(path)
        return [
            ObjectRow(coll, name, len(r.data), r.modify_time, r.checksum, r.number, r.status)
            for r in obj.replicas
        ]

    def is_collection(self, path: str) -> bool:
        self._enter("is_collection", path, path=path)
        return path.rstrip("/") in self.server.collections

    # -- bytes ---------------------------------------------------------------------------

    def open(self, path: str) -> io.BufferedReader:
        self._enter("open", path, path=path)
        server = self.server
        with server.lock:
            obj = server.objects.get(path)
            if obj is None:
                raise ex.OBJ_PATH_DOES_NOT_EXIST(path)
            if not server.can(self.user, path, "read_object"):
                raise ex.CAT_NO_ACCESS_PERMISSION(path)
            replica = obj.good()
            if replica is None:
                raise ex.SYS_REPLICA_INACCESSIBLE(path)
            server.reads[path].opens += 1
        # python-irodsclient hands back a buffered stream over the raw object descriptor.
        return io.BufferedReader(_FakeRawStream(self, path, replica.data))

    def compute_checksum(self, path: str) -> str:
        self._enter("checksum", path, path=path)
        server = self.server
        with server.lock:
            obj = server.objects.get(path)
            if obj is None:
                raise ex.OBJ_PATH_DOES_NOT_EXIST(path)
            if not server.can(self.user, path, "read_object"):
                raise ex.CAT_NO_ACCESS_PERMISSION(path)
            replica = obj.good()
            if replica is None:
                raise ex.SYS_REPLICA_INACCESSIBLE(path)
            if replica.checksum is None:
                data = replica.data
                if server.hash_scheme == "sha2":
                    replica.checksum = sha2(data)
                else:
                    replica.checksum = hashlib.md5(data).hexdigest()
            return replica.checksum

    def put(self, local_file: str, path: str) -> None:
        self._enter("put", local_file, path, path=path)
        server = self.server
        with open(local_file, "rb") as fh:
            data = fh.read()
        with server.lock:
            if path in server.collections:  # python-irodsclient puts *into* a collection
                path = f"{path}/{posixpath.basename(local_file)}"
            if path in server.objects:
                raise ex.OVERWRITE_WITHOUT_FORCE_FLAG()
            parent = posixpath.dirname(path)
            if parent not in server.collections:
                raise ex.CAT_UNKNOWN_COLLECTION(parent)
            if not server.can(self.user, parent, "modify_object"):
                raise ex.CAT_NO_ACCESS_PERMISSION(parent)
            acl = {(self.user, self.zone): "own"}
            if server.collections[parent].inherit:
                acl = {**server.collections[parent].acl, **acl}
            replica = FakeReplica(0, b"", server.clock, status="2")
            server.objects[path] = FakeObject([replica], acl)
            server._show(path)
        # The upload is visible under its name while it runs, as on a real server.
        for start in range(0, len(data), server.put_chunk):
            self.alive()
            server.strike("put", path, progress=start)
            with server.lock:
                replica.data = data[: start + server.put_chunk]
                server._show(path)
        with server.lock:
            replica.data, replica.status, replica.modify_time = data, "1", server.clock
            replica.checksum = sha2(data) if server.checksum_on_put else None
            server._show(path)

    def rename(self, src: str, dst: str) -> None:
        self._enter("rename", src, dst, path=src)
        server = self.server
        with server.lock:
            if src not in server.objects:
                raise ex.CAT_UNKNOWN_FILE(src)
            if dst in server.collections:
                raise ex.CAT_NAME_EXISTS_AS_COLLECTION(dst)
            if dst in server.objects:
                raise ex.CAT_NAME_EXISTS_AS_DATAOBJ(dst)
            parent = posixpath.dirname(dst)
            if parent not in server.collections:
                raise ex.CAT_UNKNOWN_COLLECTION(parent)
            for coll in {posixpath.dirname(src), parent}:
                if not server.can(self.user, coll, "modify_object"):
                    raise ex.CAT_NO_ACCESS_PERMISSION(coll)
            server.objects[dst] = server.objects.pop(src)
            server._show(src)
            server._show(dst)

    def remove(self, path: str) -> None:
        self._enter("remove", path, path=path)
        server = self.server
        with server.lock:
            if path not in server.objects:
                raise ex.CAT_UNKNOWN_FILE(path)
            if not server.can(self.user, path, "own"):
                raise ex.CAT_NO_ACCESS_PERMISSION(path)
            del server.objects[path]
            server._show(path)

    def remove_collection(self, path: str, *, recursive: bool = False) -> None:
        self._enter("remove_collection", path, recursive, path=path)
        server = self.server
        with server.lock:
            if path not in server.collections:
                raise ex.CAT_UNKNOWN_COLLECTION(path)
            if not server.can(self.user, path, "own"):
                raise ex.CAT_NO_ACCESS_PERMISSION(path)
            colls, objs = server._below(path)
            if not recursive and (objs or len(colls) > 1):
                raise ex.CAT_COLLECTION_NOT_EMPTY(path)
            for obj in objs:
                del server.objects[obj]
                server._show(obj)
            for coll in colls:
                del server.collections[coll]

    def mkdirs(self, path: str) -> None:
        self._enter("mkdirs", path, path=path)
        server = self.server
        path = path.rstrip("/")
        with server.lock:
            if path in server.objects:
                raise ex.CAT_NAME_EXISTS_AS_DATAOBJ(path)
            missing, coll = [], path
            while coll not in server.collections:
                if coll in server.objects:
                    raise ex.CAT_NAME_EXISTS_AS_DATAOBJ(coll)
                missing.append(coll)
                coll = posixpath.dirname(coll)
            if missing and not server.can(self.user, coll, "modify_object"):
                raise ex.CAT_NO_ACCESS_PERMISSION(coll)
            for new in reversed(missing):
                server._new_collection(new, self.user)

    # -- access control ------------------------------------------------------------------

    def get_acls(self, path: str) -> AclState:
        self._enter("get_acls", path, path=path)
        server = self.server
        with server.lock:
            node = server.collections.get(path) or server.objects.get(path)
            if node is None:
                raise ex.DataObjectDoesNotExist(path)
            entries = tuple(
                iRODSAccess(level, path, user, zone) for (user, zone), level in node.acl.items()
            )
            return AclState(path, entries, isinstance(node, FakeCollection) and node.inherit)

    def set_acl(self, access: iRODSAccess, *, recursive: bool = False) -> None:
        self._enter("set_acl", access.copy(), recursive, path=access.path)
        server = self.server
        path = access.path.rstrip("/")
        with server.lock:
            is_coll = path in server.collections
            if not is_coll and path not in server.objects:
                raise ex.CAT_UNKNOWN_FILE(path)
            if not server.can(self.user, path, "own"):
                raise ex.CAT_NO_ACCESS_PERMISSION(path)
            colls, objs = server._below(path) if (is_coll and recursive) else ([path], [])
            if access.access_name in ("inherit", "noinherit"):
                if not is_coll:
                    raise ex.CAT_INVALID_ARGUMENT(path)
                for coll in colls:
                    server.collections[coll].inherit = access.access_name == "inherit"
                return
            if access.user_name not in server.users:
                raise ex.CAT_INVALID_USER(access.user_name)
            if access.access_name != "null" and access.access_name not in _ALIASES:
                raise ex.CAT_INVALID_ARGUMENT(access.access_name)
            zone = access.user_zone or server.zone
            targets = [
                server.collections[c] if c in server.collections else server.objects[c]
                for c in colls
            ] + [server.objects[o] for o in objs]
            for node in targets:
                server._apply(node, access.user_name, zone, access.access_name)


class _FakeRawStream(io.RawIOBase):
    """The raw descriptor under a read stream: counts every byte and call that reaches it."""

    def __init__(self, client: FakeIrodsClient, path: str, data: bytes):
        self._client = client
        self._path = path
        self._data = data
        self._pos = 0
        self._served = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._client.alive()
        self._client.server.strike("read", self._path, progress=self._served)
        chunk = self._data[self._pos : self._pos + len(buffer)]
        n = len(chunk)
        buffer[:n] = chunk
        self._pos += n
        self._served += n
        stats = self._client.server.reads[self._path]
        stats.bytes_read += n
        stats.read_calls += 1
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._client.alive()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos
