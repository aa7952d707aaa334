"""IrodsSource against the in-process fake server: listings, replicas, retries, streams.

No network: every session is a FakeIrodsClient on a FakeIrodsServer.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import irods.exception as ex
import pytest
from fake_irods import FakeIrodsServer, sha2

from stacsync.core.checksum import checksum_stream
from stacsync.core.retry import TRANSIENT_ERRNOS, is_transient
from stacsync.sources.irods import IrodsSource, multihash_of

ROOT = "/iplant/home/alice/drone"
T0 = 1_700_000_000
MB = 1024 * 1024


def included(relpath: str) -> bool:
    return relpath.endswith((".tif", ".laz"))


@pytest.fixture
def server() -> FakeIrodsServer:
    return FakeIrodsServer(clock=T0)


def make_source(server: FakeIrodsServer, root: str = ROOT, **kwargs) -> IrodsSource:
    kwargs.setdefault("retry_wait", 0)
    return IrodsSource(server.factory("alice"), root, included, **kwargs)


# -- full listings ---------------------------------------------------------------------------


def test_listing_of_many_pages_is_one_query(server):
    for i in range(600):
        server.add_object(f"{ROOT}/m{i // 100}/f{i:03d}.tif", b"x" * i, modify_time=T0 + i)
    server.add_object(f"{ROOT}/notes.txt", b"not an asset")
    listing = make_source(server, page_size=100).list()
    assert len(listing.entries) == 600
    assert not listing.failed_dirs and not listing.problems
    entry = listing.entries["m3/f345.tif"]
    assert (entry.size, entry.mtime_ns) == (345, (T0 + 345) * 1_000_000_000)
    assert len(server.calls("query")) == 1
    assert len(server.calls("page")) == 7  # 601 rows, 100 a page: results arrive page by page


def test_server_serves_at_most_256_rows_a_page(server):
    for i in range(600):
        server.add_object(f"{ROOT}/f{i:03d}.tif", b"x")
    listing = make_source(server, page_size=1000).list()
    assert len(listing.entries) == 600
    assert len(server.calls("page")) == 3


def test_wildcard_siblings_and_pruned_collections_are_left_out(server):
    root = "/iplant/home/alice/my_data"
    server.add_object(f"{root}/a.tif", b"a")
    server.add_object(f"{root}/sub/b.laz", b"b")
    server.add_object("/iplant/home/alice/myXdata/c.tif", b"c")  # `_` matches X
    server.add_object("/iplant/home/alice/my_data2/d.tif", b"d")
    server.add_object(f"{root}/catalog/e.tif", b"e")
    source = make_source(server, root, prune=[f"{root}/catalog"])
    assert sorted(source.list().entries) == ["a.tif", "sub/b.laz"]
    assert source.local_path("sub/b.laz") == f"{root}/sub/b.laz"


def test_deleted_objects_disappear_from_a_full_listing(server):
    server.add_object(f"{ROOT}/a.tif", b"a")
    server.add_object(f"{ROOT}/b.tif", b"b")
    source = make_source(server)
    assert sorted(source.list().entries) == ["a.tif", "b.tif"]
    server.delete_object(f"{ROOT}/b.tif")
    listing = source.list()
    assert sorted(listing.entries) == ["a.tif"]
    assert listing.covers("b.tif")  # seen to be gone: a removal


def test_missing_root_is_a_failed_listing_not_an_empty_tree(server):
    listing = make_source(server, "/iplant/home/alice/nope").list()
    assert listing.entries == {}
    assert listing.failed_dirs == [""]
    assert "not found" in listing.problems[0]
    assert not listing.covers("anything.tif")


# -- since-listings ------------------------------------------------------------------------


def test_since_listing_picks_up_new_and_modified_objects_only(server):
    for name in ("old.tif", "changed.tif", "gone.tif"):
        server.add_object(f"{ROOT}/{name}", b"v1", modify_time=T0)
    source = make_source(server, skew_seconds=60)
    server.clock = T0 + 1000
    server.add_object(f"{ROOT}/new.tif", b"new")
    server.write_object(f"{ROOT}/changed.tif", b"version 2")
    server.delete_object(f"{ROOT}/gone.tif")
    listing = source.list_since(T0 + 900)
    assert sorted(listing.entries) == ["changed.tif", "new.tif"]
    assert listing.entries["changed.tif"].size == len(b"version 2")
    assert listing.scope == {"changed.tif", "new.tif"}
    assert not listing.covers("old.tif") and not listing.covers("gone.tif")
    since = server.calls("query")[-1][1]
    assert since == T0 + 900 - 60


def test_since_listing_allows_for_clock_skew(server):
    server.add_object(f"{ROOT}/late.tif", b"x", modify_time=T0 - 100)
    assert "late.tif" in make_source(server, skew_seconds=300).list_since(T0).entries
    assert "late.tif" not in make_source(server, skew_seconds=30).list_since(T0).entries


# -- replicas ------------------------------------------------------------------------------


def test_stale_replica_never_counts(server):
    obj = server.add_object(f"{ROOT}/a.tif", b"good bytes", replicas=2, modify_time=T0)
    stale = obj.replicas[1]
    stale.status, stale.data, stale.modify_time, stale.checksum = "0", b"old", T0 + 50, sha2(b"old")
    entry = make_source(server).list().entries["a.tif"]
    assert entry.size == len(b"good bytes")
    assert entry.mtime_ns == T0 * 1_000_000_000
    assert entry.checksum == multihash_of(sha2(b"good bytes"))


def test_object_with_only_stale_replicas_is_a_problem_not_a_removal(server):
    server.add_object(f"{ROOT}/ok.tif", b"ok")
    server.add_object(f"{ROOT}/stale.tif", b"s", replicas=2, statuses=("0", "0"))
    server.add_object(f"{ROOT}/uploading.laz", b"u", statuses=("2",))
    source = make_source(server)
    listing = source.list()
    assert sorted(listing.entries) == ["ok.tif"]
    assert not listing.covers("stale.tif") and not listing.covers("uploading.laz")
    assert listing.covers("ok.tif")
    assert any("stale.tif: no good replica (0: stale, 1: stale)" in p for p in listing.problems)
    assert any("being written" in p for p in listing.problems)
    with pytest.raises(OSError) as raised:
        source.stat("stale.tif")
    assert raised.value.errno == errno.EAGAIN


def test_since_listing_rechecks_an_object_whose_only_new_replica_is_stale(server):
    obj = server.add_object(f"{ROOT}/a.tif", b"data", replicas=2, modify_time=T0)
    obj.replicas[1].status, obj.replicas[1].modify_time = "0", T0 + 500
    listing = make_source(server, skew_seconds=0).list_since(T0 + 400)
    assert listing.entries["a.tif"].mtime_ns == T0 * 1_000_000_000  # from the good replica
    assert listing.problems == []
    assert server.calls("replicas") == [(f"{ROOT}/a.tif",)]


# -- failures while listing ------------------------------------------------------------------


def test_network_error_mid_listing_retries_with_a_fresh_session(server):
    for i in range(500):
        server.add_object(f"{ROOT}/f{i:03d}.tif", b"x")
    server.fail("page", after=2, restart=True)  # the server restarts while serving page 3
    source = make_source(server, page_size=100)
    listing = source.list()
    assert len(listing.entries) == 500
    assert listing.failed_dirs == [] and listing.problems == []
    assert len(server.calls("query")) == 2
    assert len(server.sessions) == 2
    assert server.sessions[0].closed  # the dead session was let go, the retry used a new one


def test_listing_that_keeps_failing_deletes_nothing(server):
    server.add_object(f"{ROOT}/a.tif", b"a")
    server.fail("page", times=99)
    listing = make_source(server, attempts=3).list()
    assert listing.entries == {}
    assert listing.failed_dirs == [""]
    assert "cannot list iRODS collection" in listing.problems[0]
    assert "connection lost" in listing.problems[0]
    assert not listing.covers("a.tif")
    assert len(server.calls("query")) == 3
    assert len(server.sessions) == 3  # a fresh session for every attempt


def test_permission_denied_listing_is_not_retried(server):
    server.add_object(f"{ROOT}/a.tif", b"a")
    server.fail("query", ex.CAT_NO_ACCESS_PERMISSION(ROOT), times=99)
    listing = make_source(server).list()
    assert listing.failed_dirs == [""]
    assert "permission denied" in listing.problems[0]
    assert len(server.calls("query")) == 1


# -- checksums -------------------------------------------------------------------------------


def test_server_checksums_become_multihash_without_reading_bytes(server):
    data = os.urandom(10_000)
    server.add_object(f"{ROOT}/sha.tif", data)
    server.add_object(f"{ROOT}/none.tif", data, checksum=False)
    server.add_object(f"{ROOT}/md5.tif", data, checksum=hashlib.md5(data).hexdigest())
    entries = make_source(server).list().entries
    assert entries["sha.tif"].checksum == checksum_stream(io.BytesIO(data))
    assert entries["sha.tif"].checksum == "1220" + hashlib.sha256(data).hexdigest()
    assert entries["none.tif"].checksum is None
    assert entries["md5.tif"].checksum is None  # not comparable with ours
    assert server.calls("checksum") == []
    assert sum(s.bytes_read for s in server.reads.values()) == 0


def test_missing_checksums_are_computed_by_the_server_on_request(server):
    data = b"some raster bytes"
    server.add_object(f"{ROOT}/has.tif", data)
    server.add_object(f"{ROOT}/lacks.tif", data, checksum=False)
    source = make_source(server, compute_checksums=True)
    entries = source.list().entries
    assert entries["lacks.tif"].checksum == "1220" + hashlib.sha256(data).hexdigest()
    assert server.calls("checksum") == [(f"{ROOT}/lacks.tif",)]
    assert sum(s.bytes_read for s in server.reads.values()) == 0
    source.list()  # the server kept it: not asked again
    assert len(server.calls("checksum")) == 1


def test_checksum_of_one_file(server):
    server.add_object(f"{ROOT}/lacks.tif", b"abc", checksum=False)
    source = make_source(server)
    assert source.checksum("lacks.tif") is None
    assert source.checksum("lacks.tif", compute=True) == "1220" + hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(FileNotFoundError):
        source.checksum("missing.tif")


def test_malformed_checksums_are_ignored():
    assert multihash_of("sha2:not base64!") is None
    assert multihash_of("sha2:" + "QUJD") is None  # three bytes, not a sha-256
    assert multihash_of(None) is None


# -- stat and open ---------------------------------------------------------------------------


def test_stat_one_object(server):
    server.add_object(f"{ROOT}/a.tif", b"abc", modify_time=T0 + 5)
    source = make_source(server)
    entry = source.stat("a.tif")
    assert (entry.path, entry.size, entry.mtime_ns) == ("a.tif", 3, (T0 + 5) * 1_000_000_000)
    assert source.stat("missing.tif") is None


def test_open_reads_seeks_and_closes_as_a_file(server):
    data = bytes(range(256)) * 100
    server.add_object(f"{ROOT}/a.tif", data)
    with make_source(server).open("a.tif") as stream:
        assert stream.seekable() and stream.readable()
        assert stream.read(4) == data[:4]
        stream.seek(1000)
        assert stream.tell() == 1000
        assert stream.read(10) == data[1000:1010]
        stream.seek(-5, io.SEEK_END)
        assert stream.read() == data[-5:]
        buffer = bytearray(8)
        stream.seek(0)
        assert stream.readinto(buffer) == 8 and bytes(buffer) == data[:8]
    assert stream.closed


def test_permission_denied_on_one_object_is_a_clear_oserror(server):
    server.add_object(f"{ROOT}/mine.tif", b"mine")
    server.add_object(f"{ROOT}/theirs.tif", b"theirs", owner="bob")
    source = make_source(server)
    assert sorted(source.list().entries) == ["mine.tif", "theirs.tif"]
    with pytest.raises(PermissionError) as raised:
        source.open("theirs.tif")
    assert raised.value.errno == errno.EACCES
    assert "permission denied by iRODS" in raised.value.strerror
    assert raised.value.filename == f"{ROOT}/theirs.tif"
    assert not is_transient(raised.value)
    with source.open("mine.tif") as stream:
        assert stream.read() == b"mine"


def test_open_missing_object_is_file_not_found(server):
    with pytest.raises(FileNotFoundError):
        make_source(server).open("nope.tif")


def test_network_error_mid_read_is_transient_and_a_retry_reads_again(server):
    data = os.urandom(100_000)
    server.add_object(f"{ROOT}/a.tif", data)
    server.fail("read", after=16_384, path=f"{ROOT}/a.tif")
    source = make_source(server)
    stream = source.open("a.tif")
    with pytest.raises(OSError) as raised:
        stream.read()
    assert raised.value.errno in TRANSIENT_ERRNOS and is_transient(raised.value)
    stream.close()
    with source.open("a.tif") as again:
        assert checksum_stream(again) == "1220" + hashlib.sha256(data).hexdigest()


def test_server_restart_between_reads_gives_a_fresh_session(server):
    server.add_object(f"{ROOT}/a.tif", b"abc")
    source = make_source(server)
    with source.open("a.tif") as stream:
        assert stream.read() == b"abc"
    server.restart()
    with pytest.raises(OSError) as raised:
        source.open("a.tif")
    assert is_transient(raised.value)
    with source.open("a.tif") as stream:  # what the retry policy does next
        assert stream.read() == b"abc"


# -- header reads through the stream are bounded ---------------------------------------------


def padded(testdata: Path, name: str, size: int) -> bytes:
    """A real file with zeros after its end: a big object whose header is the real one."""
    data = (testdata / name).read_bytes()
    return data + bytes(size - len(data))


def test_big_laz_header_reads_well_under_a_megabyte(server, testdata):
    from stacsync.extract.pointcloud import extract_pointcloud_stream

    data = padded(testdata, "autzen_trim.laz", 50 * MB)
    path = f"{ROOT}/points.laz"
    server.add_object(path, data)
    source = make_source(server)
    entry = source.stat("points.laz")
    with source.open("points.laz") as stream:
        meta = extract_pointcloud_stream(stream, entry.size, "points.laz")
    assert meta.kind == "pointcloud" and meta.pointcloud.point_count > 0
    stats = server.reads[path]
    assert 0 < stats.bytes_read < MB // 4, stats
    assert stats.read_calls < 100


def test_big_raster_header_reads_well_under_a_megabyte(server, testdata):
    rasterio = pytest.importorskip("rasterio")
    data = padded(testdata, "cogeo.tif", 50 * MB)
    path = f"{ROOT}/ortho.tif"
    server.add_object(path, data)
    source = make_source(server)

    def opener(name: str, mode: str = "rb"):
        # GDAL also asks for sidecars (ortho.tif.aux.xml...): those must not be found.
        return source.open(name)

    with rasterio.open("ortho.tif", opener=opener) as dataset:
        assert dataset.width > 0 and dataset.crs is not None
        assert dataset.overviews(1)
    stats = server.reads[path]
    assert 0 < stats.bytes_read < MB // 4, stats


def test_close_is_idempotent(server):
    server.add_object(f"{ROOT}/a.tif", b"a")
    source = make_source(server)
    source.list()
    source.close()
    source.close()
    assert all(c.closed for c in server.sessions)


# -- the seam itself, without a server -------------------------------------------------------


class _StubSession:
    """Just enough of iRODSSession to build real python-irodsclient queries."""

    username, zone, server_version = "alice", "iplant", (4, 3, 2)

    def query(self, *columns):
        from irods.query import Query

        return Query(self, *columns)


def test_seam_listing_is_one_paged_query_with_an_or_condition(monkeypatch):
    from datetime import UTC, datetime

    from irods.models import Collection, DataObject
    from irods.query import Query

    from stacsync.stores.irods import IrodsClient, ObjectRow

    sent = []

    def get_batches(query):
        sent.append(query._message().pack())
        when = datetime.fromtimestamp(T0, UTC)
        yield [
            {
                Collection.name: f"{ROOT}/sub",
                DataObject.name: "a.tif",
                DataObject.size: 3,
                DataObject.modify_time: when,
                DataObject.checksum: "",
                DataObject.replica_number: 1,
                DataObject.replica_status: "0",
            }
        ]

    monkeypatch.setattr(Query, "get_batches", get_batches)
    client = IrodsClient(_StubSession())
    rows = list(client.iter_objects("/iplant/home/alice/my_data/", modified_since=T0, page_size=99))
    assert rows == [ObjectRow(f"{ROOT}/sub", "a.tif", 3, T0, None, 1, "0")]
    (message,) = sent
    assert "<maxRows>99</maxRows>" in message
    assert "= '/iplant/home/alice/my_data' || like '/iplant/home/alice/my_data/%'" in message
    assert "&gt;= '01700000000'" in message  # catalog times compare as 11-digit strings
    with pytest.raises(ValueError, match="single quote"):
        list(client.iter_objects("/iplant/home/o'brien"))


def test_seam_maps_irods_errors_to_oserrors():
    from irods.session import NonAnonymousLoginWithoutPassword

    from stacsync.stores.irods import as_oserror, grants_read, is_name_taken

    cases = {
        ex.CAT_NO_ACCESS_PERMISSION("x"): (PermissionError, errno.EACCES),
        ex.CAT_INVALID_AUTHENTICATION("x"): (PermissionError, errno.EACCES),
        NonAnonymousLoginWithoutPassword(): (PermissionError, errno.EACCES),
        ex.OBJ_PATH_DOES_NOT_EXIST("x"): (FileNotFoundError, errno.ENOENT),
        ex.DataObjectDoesNotExist(): (FileNotFoundError, errno.ENOENT),
        ex.NetworkException("gone"): (OSError, errno.ECONNRESET),
        ex.SYS_SOCK_READ_TIMEDOUT("x"): (OSError, errno.ETIMEDOUT),
        ex.SYS_REPLICA_INACCESSIBLE("x"): (OSError, errno.EAGAIN),
        ex.CAT_NAME_EXISTS_AS_DATAOBJ("x"): (FileExistsError, errno.EEXIST),
        ex.SYS_INTERNAL_NULL_INPUT_ERR("x"): (OSError, errno.EPROTO),
    }
    for exc, (kind, code) in cases.items():
        mapped = as_oserror(exc, "/p")
        assert isinstance(mapped, kind) and mapped.errno == code, exc
        assert mapped.filename == "/p"
    assert is_transient(as_oserror(ex.NetworkException("gone"), "/p"))
    assert not is_transient(as_oserror(ex.CAT_NO_ACCESS_PERMISSION("x"), "/p"))
    assert is_name_taken(ex.OVERWRITE_WITHOUT_FORCE_FLAG())
    assert grants_read("read_object") and grants_read("read object") and grants_read("own")
    assert grants_read("modify_object") and not grants_read("read_metadata")
    assert not grants_read("null") and not grants_read("nonsense")


def test_seam_connect_needs_an_env_file_and_a_password(tmp_path, monkeypatch):
    from stacsync.stores.irods import IrodsClient, IrodsConnectError

    monkeypatch.delenv("IRODS_ENVIRONMENT_FILE", raising=False)
    with pytest.raises(IrodsConnectError, match="run iinit"):
        IrodsClient.connect(str(tmp_path / "missing.json"))
    env = tmp_path / "irods_environment.json"
    env.write_text(
        '{"irods_host": "irods.example", "irods_port": 1247, "irods_user_name": "alice",'
        ' "irods_zone_name": "tempZone"}'
    )
    monkeypatch.setenv("IRODS_AUTHENTICATION_FILE", str(tmp_path / "no-irodsA"))
    with pytest.raises(IrodsConnectError, match="run iinit"):
        IrodsClient.connect(str(env))


def test_seam_anonymous_session_is_lazy_and_keeps_no_secret(tmp_path, monkeypatch):
    from stacsync.stores.irods import IrodsClient

    for var in ("IRODS_HOST", "IRODS_PORT", "IRODS_ZONE_NAME"):
        monkeypatch.delenv(var, raising=False)
    client = IrodsClient.connect(str(tmp_path / "none.json"), anonymous=True)
    try:  # nothing has connected yet: no network in tests
        assert (client.user, client.zone) == ("anonymous", "iplant")
        assert client.session.host == "data.cyverse.org"
        assert repr(client) == "<IrodsClient anonymous#iplant>"
    finally:
        client.close()
        client.close()
    monkeypatch.setenv("IRODS_HOST", "localhost")
    monkeypatch.setenv("IRODS_ZONE_NAME", "tempZone")
    other = IrodsClient.connect(str(tmp_path / "none.json"), anonymous=True)
    assert (other.zone, other.session.host) == ("tempZone", "localhost")
    other.close()
