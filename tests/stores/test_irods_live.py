"""Live tests of the iRODS layer against a real server (CyVerse, or a local iRODS in docker).

Skipped unless STACSYNC_IRODS_TEST_ENV names an irods_environment.json (after `iinit`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from stacsync.publish.irods import IrodsOutput
from stacsync.sources.irods import IrodsSource
from stacsync.stores.irods import IrodsClient, as_oserror, grants_read

ENV = os.environ.get("STACSYNC_IRODS_TEST_ENV")
pytestmark = pytest.mark.skipif(
    not ENV,
    reason="live iRODS tests: set STACSYNC_IRODS_TEST_ENV to an irods_environment.json",
)


def connect() -> IrodsClient:
    assert ENV is not None
    return IrodsClient.connect(ENV)


@pytest.fixture(scope="module")
def client():
    client = connect()
    yield client
    client.close()


@pytest.fixture
def scratch(client):
    """A fresh collection under the user's home (an underscore on purpose: a LIKE wildcard),
    removed with everything in it afterwards."""
    home = os.environ.get("STACSYNC_IRODS_TEST_HOME") or f"/{client.zone}/home/{client.user}"
    path = f"{home}/stacsync_live_{uuid.uuid4().hex[:10]}"
    client.mkdirs(path)
    yield path
    client.remove_collection(path, recursive=True)


def put_bytes(client: IrodsClient, tmp_path: Path, path: str, data: bytes) -> None:
    local = tmp_path / uuid.uuid4().hex
    local.write_bytes(data)
    client.mkdirs(path.rsplit("/", 1)[0])
    client.put(str(local), path)


def test_list_stat_and_stream(client, scratch, tmp_path):
    files = {"a.tif": b"a" * 10, "m1/b.tif": os.urandom(70_000), "m1/deep/c.laz": b"c"}
    for rel, data in files.items():
        put_bytes(client, tmp_path, f"{scratch}/{rel}", data)
    put_bytes(client, tmp_path, f"{scratch}/skip.txt", b"no")
    source = IrodsSource(connect, scratch, lambda p: p.endswith((".tif", ".laz")), page_size=2)
    try:
        listing = source.list()  # page size 2: the continuation is exercised
        assert not listing.failed_dirs, listing.problems
        assert {k: v.size for k, v in listing.entries.items()} == {
            k: len(v) for k, v in files.items()
        }
        entry = source.stat("m1/b.tif")
        assert entry is not None and entry.size == 70_000
        assert source.stat("m1/nope.tif") is None
        with source.open("m1/b.tif") as stream:
            stream.seek(60_000)
            assert stream.read(100) == files["m1/b.tif"][60_000:60_100]
        since = source.list_since(entry.mtime_ns / 1e9)
        assert "m1/b.tif" in since.entries
        assert source.local_path("a.tif") == f"{scratch}/a.tif"
    finally:
        source.close()


def test_server_checksum_is_computed_server_side(client, scratch, tmp_path):
    data = os.urandom(5000)
    put_bytes(client, tmp_path, f"{scratch}/x.tif", data)
    raw = client.compute_checksum(f"{scratch}/x.tif")
    if not raw.startswith("sha2:"):
        pytest.skip(f"this zone's default hash scheme is not sha2 ({raw[:8]}...)")
    source = IrodsSource(connect, scratch, lambda p: True)
    try:
        assert source.list().entries["x.tif"].checksum == "1220" + hashlib.sha256(data).hexdigest()
    finally:
        source.close()


def test_laz_header_through_a_stream(client, scratch, tmp_path, testdata):
    from stacsync.extract.pointcloud import extract_pointcloud_stream

    put_bytes(client, tmp_path, f"{scratch}/simple.laz", (testdata / "simple.laz").read_bytes())
    source = IrodsSource(connect, scratch, lambda p: True)
    try:
        entry = source.stat("simple.laz")
        with source.open("simple.laz") as stream:
            meta = extract_pointcloud_stream(stream, entry.size, "simple.laz")
        assert meta.pointcloud.point_count > 0
    finally:
        source.close()


def test_output_put_rename_remove(client, scratch):
    output = IrodsOutput(client, f"{scratch}/catalog")
    output.check_writable()
    output.write("catalog.json", b'{"v": 1}')
    output.write("catalog.json", b'{"v": 2}')  # replace: remove + rename
    output.write("c1/items/i1.json", b"{}")
    assert output.exists("catalog.json") and output.exists("c1/items/i1.json")
    output.check_writable()  # a new pass lists again
    assert output.exists("c1/items/i1.json")
    with client.open(f"{scratch}/catalog/catalog.json") as stream:
        assert stream.read() == b'{"v": 2}'
    output.delete("c1/items/i1.json")
    assert not client.is_collection(f"{scratch}/catalog/c1")
    names = list(client.list_collection_files(f"{scratch}/catalog"))
    assert names == [f"{scratch}/catalog/catalog.json"]


def test_public_read_on_the_output_only(client, scratch):
    output = IrodsOutput(client, f"{scratch}/catalog")
    output.check_writable()
    output.write("catalog.json", b"{}")
    try:
        assert output.ensure_public_read() is True
    except OSError as exc:
        if "CAT_INVALID_USER" in str(exc):
            pytest.skip("this zone has no anonymous user")
        raise
    state = client.get_acls(f"{scratch}/catalog")
    assert state.inherit
    assert any(e.user_name == "anonymous" and grants_read(e.access_name) for e in state.entries)
    assert not any(e.user_name == "anonymous" for e in client.get_acls(scratch).entries)
    assert output.ensure_public_read() is False  # already set: no call


def test_missing_object_errors_are_classified_as_not_found(client, scratch):
    """Calibrates stacsync.stores.irods.NOT_FOUND_ERRORS against what this server really raises."""
    for call in (client.open, client.remove):
        with pytest.raises(Exception) as raised:
            call(f"{scratch}/missing.tif")
        mapped = as_oserror(raised.value, "x")
        assert isinstance(mapped, FileNotFoundError), f"{raised.value!r} is not seen as missing"
