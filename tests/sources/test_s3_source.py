"""S3Source against a real moto_server: listings, skipped keys, failed listings, ranged reads.

Headers of real GeoTIFFs and LAS/LAZ files are read over HTTP, counting what reaches the server.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os

import laspy
import pytest
import rasterio
from s3server import dummy_credentials, store_for

from stacsync.core.retry import is_transient
from stacsync.extract.dispatch import extract_file, extract_stream
from stacsync.sources.s3 import READ_AHEAD, S3Source, why_not_a_path

WANTED = (".tif", ".las", ".laz")


def wanted(relpath: str) -> bool:
    return relpath.lower().endswith(WANTED)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    dummy_credentials(monkeypatch)


def upload(endpoint: str, bucket: str, files: dict[str, bytes]) -> None:
    store = store_for(endpoint, bucket)
    for key, data in files.items():
        store.put(key, data, "application/octet-stream")


# -- listing -----------------------------------------------------------------------------------


def test_list_gives_paths_under_the_prefix_with_size_time_and_etag(s3_server, bucket):
    upload(
        s3_server,
        bucket,
        {
            "data/a.tif": b"aaaa",
            "data/sub/b.laz": b"bb",
            "data/sub/": b"",  # a folder marker, as consoles make them
            "data/notes.txt": b"not included",
            "data-old/c.tif": b"c",  # shares the prefix's letters, not its folder
            "elsewhere/d.tif": b"d",
        },
    )
    source = S3Source(store_for(s3_server, bucket), "data", wanted)
    listing = source.list()
    assert sorted(listing.entries) == ["a.tif", "sub/b.laz"]
    entry = listing.entries["a.tif"]
    assert (entry.path, entry.size, entry.checksum) == ("a.tif", 4, None)
    assert entry.etag == hashlib.md5(b"aaaa").hexdigest()
    head = source.store.head("data/a.tif")
    assert entry.mtime_ns == head.last_modified_ns > 0
    assert not listing.failed_dirs and not listing.skipped
    assert source.stat("a.tif") == entry  # the same entry a listing gives
    assert source.stat("missing.tif") is None


def test_keys_that_are_no_paths_are_skipped_with_a_reason(s3_server, bucket):
    upload(
        s3_server,
        bucket,
        {"p/ok.tif": b"1", "p/a//b.tif": b"2", "p/./c.tif": b"3", "p/../d.tif": b"4"},
    )
    listing = S3Source(store_for(s3_server, bucket), "p/", wanted).list()
    assert list(listing.entries) == ["ok.tif"]
    assert set(listing.skipped) == {"a//b.tif", "./c.tif", "../d.tif"}
    assert "empty segment" in listing.skipped["a//b.tif"]
    assert "rename the object" in listing.skipped["../d.tif"]
    assert len(listing.problems) == 3
    assert why_not_a_path("a\0b.tif") is not None  # S3 allows NUL in keys, no path does
    assert why_not_a_path("a/b/c.tif") is None


def test_a_listing_that_fails_half_way_lists_nothing(many_keys, proxy):
    bucket, keys = many_keys  # more than a page of wanted keys under many/ (shared, read-only)
    assert len(keys) > 1000 and all(wanted(k) for k in keys)
    proxy.rule = lambda s: 503 if s.is_list and "continuation-token" in s.query else None
    source = S3Source(store_for(proxy.url, bucket, attempts=2), "many/", wanted)
    listing = source.list()
    assert listing.entries == {}  # never the first page taken for the whole
    assert listing.failed_dirs == [""]
    assert not listing.covers("00000.tif") and not listing.covers("many/00000.tif")
    [problem] = listing.problems
    assert problem.startswith(f"s3://{bucket}/many/: cannot list: ") and "HTTP 503" in problem
    assert len(proxy.requests(lambda s: s.is_list and "continuation-token" not in s.query)) == 1


def test_checksum_comes_from_one_head(s3_server, bucket):
    store = store_for(s3_server, bucket)
    store.client.put_object(Bucket=bucket, Key="p/s.tif", Body=b"abc", ChecksumAlgorithm="SHA256")
    source = S3Source(store, "p/", wanted)
    assert source.checksum("s.tif") == "1220" + hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(FileNotFoundError):
        source.checksum("gone.tif")
    # What a pass asks (Source.stored_checksum): the same, and None for a vanished object.
    assert source.stored_checksum("s.tif") == source.checksum("s.tif")
    assert source.stored_checksum("gone.tif") is None


def test_paths_as_the_store_and_gdal_name_them(s3_server, bucket):
    source = S3Source.from_url(
        f"s3://{bucket}/drone/", store_for(s3_server, bucket).options, wanted
    )
    assert source.remote is True
    assert source.local_path("m/1.tif") == f"s3://{bucket}/drone/m/1.tif"
    assert source.vsi_path("m/1.tif") == f"/vsis3/{bucket}/drone/m/1.tif"
    # Extraction opens a readable path with os.stat/open(): S3 objects go through open().
    assert source.readable_path("m/1.tif") is None


# -- reading -----------------------------------------------------------------------------------


def test_open_is_a_seekable_stream_of_ranged_gets(s3_server, bucket):
    data = bytes(range(256)) * 64  # 16 KiB
    upload(s3_server, bucket, {"p/x.tif": data})
    source = S3Source(store_for(s3_server, bucket), "p/", wanted, read_ahead=1000)
    with source.open("x.tif") as stream:
        assert stream.seekable() and stream.readable()
        assert stream.read(10) == data[:10] and stream.tell() == 10
        assert stream.read(500) == data[10:510]
        assert stream.requests == 1  # served from the first read-ahead
        stream.seek(-100, io.SEEK_END)
        assert stream.read() == data[-100:]
        assert stream.read(5) == b""
        stream.seek(2000)
        buffer = bytearray(3000)
        assert stream.readinto(buffer) == 3000 and bytes(buffer) == data[2000:5000]
        stream.seek(0)
        assert stream.read() == data
    with pytest.raises(ValueError):
        stream.read(1)
    with pytest.raises(FileNotFoundError):
        source.open("missing.tif")


def test_an_object_replaced_mid_read_is_a_transient_error(s3_server, bucket):
    upload(s3_server, bucket, {"p/v.las": b"1" * 5000})
    source = S3Source(store_for(s3_server, bucket), "p/", wanted, read_ahead=100)
    with source.open("v.las") as stream:
        upload(s3_server, bucket, {"p/v.las": b"2" * 5000})
        stream.seek(4000)
        with pytest.raises(OSError) as raised:
            stream.read(10)
    assert raised.value.errno == errno.ESTALE and is_transient(raised.value)


@pytest.mark.parametrize(
    "name", ["autzen_trim.laz", "file_with_both_wkt_and_geotiff_vlrs.las", "1_4_w_evlr.laz"]
)
def test_laspy_reads_a_header_in_a_few_gets(testdata, s3_server, bucket, proxy, name):
    upload(s3_server, bucket, {f"p/{name}": (testdata / name).read_bytes()})
    source = S3Source(store_for(proxy.url, bucket), "p/", wanted)
    with source.open(name) as stream:
        header = laspy.open(stream, closefd=False).header
    with laspy.open(testdata / name) as local:
        assert header.point_count == local.header.point_count
        assert list(header.mins) == list(local.header.mins)
    gets = proxy.requests(lambda s: s.is_get_of(bucket, f"p/{name}"))
    assert 1 <= len(gets) <= 4, [s.headers.get("range") for s in gets]
    assert all("range" in s.headers for s in gets)  # never the whole object


@pytest.mark.parametrize(
    "name", ["dataset_cog.tif", "RGB.byte.tif", "autzen_trim.laz", "autzen_clip_4326.copc.laz"]
)
def test_headers_extract_over_s3_as_from_a_local_file(testdata, s3_server, bucket, proxy, name):
    """What a pass does for a remote source (pipeline/examine.py): extract_stream on open()."""
    data = (testdata / name).read_bytes()
    upload(s3_server, bucket, {f"p/{name}": data})
    source = S3Source(store_for(proxy.url, bucket), "p/", wanted)
    entry = source.stat(name)
    over_s3 = extract_stream(name, entry.size, functools.partial(source.open, name))
    assert over_s3 == extract_file(str(testdata / name))
    spans = [_span(s.headers["range"]) for s in proxy.requests(lambda s: s.method == "GET")]
    fetched = sum(min(last, len(data) - 1) - first + 1 for first, last in spans)
    assert fetched <= len(data) + READ_AHEAD  # each byte about once, whatever is read
    if name != "RGB.byte.tif":  # striped, no overviews: its pixels are read for the footprint
        assert len(spans) <= 2  # the header in one GET, maybe the tail or an overview
        assert fetched < max(len(data) // 2, READ_AHEAD)  # headers, not whole files


def test_gdal_reads_a_cog_header_through_vsis3(testdata, s3_server, bucket, proxy, monkeypatch):
    name = "dataset_cog.tif"
    data = (testdata / name).read_bytes()
    upload(s3_server, bucket, {f"cogs/{name}": data})
    source = S3Source(store_for(proxy.url, bucket), "cogs/", wanted)
    for key, value in source.gdal_env().items():
        monkeypatch.setenv(key, value)
    with rasterio.open(source.vsi_path(name)) as remote, rasterio.open(testdata / name) as local:
        assert remote.profile == local.profile
        assert remote.overviews(1) == local.overviews(1)
    requests = proxy.requests(lambda s: s.path.startswith(f"/{bucket}"))
    assert requests and all(s.is_get_of(bucket, f"cogs/{name}") for s in requests)  # no listing
    assert len(requests) <= 4, [s.headers.get("range") for s in requests]
    assert sum(
        last - first + 1 for first, last in (_span(s.headers["range"]) for s in requests)
    ) < len(data)
    assert "AWS_SECRET_ACCESS_KEY" not in source.gdal_env()
    assert os.environ["AWS_S3_ENDPOINT"] == proxy.url.removeprefix("http://")


def _span(header: str) -> tuple[int, int]:
    """(first, last) byte of a Range header."""
    first, _, last = header.removeprefix("bytes=").partition("-")
    return int(first), int(last)
