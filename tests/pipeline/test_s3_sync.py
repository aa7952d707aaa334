"""Whole passes over an S3 bucket on a real moto_server: the same catalog as from a folder,
ETag diffs, listings that fail, 503s, an S3 output opened to anonymous read, the daemon.

Every request goes over HTTP through a recording relay (tests/s3server.py), so the tests
count what stacsync asked the store for.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import GOOD, age, items_under, validate_catalog, without_hrefs
from processes import wait_for
from s3server import FaultProxy, dummy_credentials, store_for

from stacsync.check.catalog import check_catalog
from stacsync.check.schemas import SchemaValidator
from stacsync.core.errors import SourceUnavailableError
from stacsync.core.ids import item_id
from stacsync.pipeline.sync import rescan

PUBLIC = "https://objects.example.org/swift/v1"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    dummy_credentials(monkeypatch)


def _upload(endpoint: str, bucket: str, testdata: Path, names: list[str], prefix="data/"):
    """Objects with the sha256 the store keeps (what `file:checksum` is taken from)."""
    client = store_for(endpoint, bucket).client
    for name in names:
        client.put_object(
            Bucket=bucket,
            Key=prefix + name,
            Body=(testdata / name).read_bytes(),
            ChecksumAlgorithm="SHA256",
        )


def _config(tmp_path: Path, endpoint: str, source: str, output: str | None = None, extra=""):
    out = (
        f'url = "{output}"\nendpoint_url = "{endpoint}"\npublic = true'
        if output
        else (f'path = "{tmp_path / "out"}"')
    )
    text = (
        f'[source]\nurl = "{source}"\nendpoint_url = "{endpoint}"\nregion = "us-east-1"\n'
        f"[output]\n{out}\n"
        f'[manifest]\npath = "{tmp_path / "m.db"}"\n'
        '[[collection]]\nid = "drone"\ndescription = "Drone files."\n'
        "match = '^(?P<item>.+)$'\n" + extra
    )
    path = tmp_path / "stacsync.toml"
    path.write_text(text)
    return path


def _without_hrefs(item: dict[str, Any]) -> dict[str, Any]:
    item = without_hrefs(item)
    # Files without a date of their own are dated by mtime: LastModified here, the copy's
    # mtime there.
    for key in ("datetime", "title"):
        item["properties"].pop(key)
    return item


def test_a_bucket_builds_the_catalog_a_folder_builds(s3_server, bucket, testdata, tmp_path):
    _upload(s3_server, bucket, testdata, GOOD)
    local = tmp_path / "drone"  # the quick form names the collection after the folder
    local.mkdir()
    for name in GOOD:
        shutil.copyfile(testdata / name, local / name)
    age(local)
    from_folder = rescan(source=local, output=tmp_path / "lout", manifest=tmp_path / "l.db")
    rewrite = f'[[href_rewrite]]\nprefix = "s3://{bucket}"\nto = "{PUBLIC}/{bucket}"\n'
    s3 = tmp_path / "s3"
    s3.mkdir()
    summary = rescan(_config(s3, s3_server, f"s3://{bucket}/data/", extra=rewrite))
    assert summary.errors == from_folder.errors == 0
    assert summary.items_written == len(GOOD)
    folder_items, bucket_items = items_under(tmp_path / "lout"), items_under(s3 / "out")
    assert sorted(bucket_items) == sorted(item_id(n) for n in GOOD)
    for iid, item in bucket_items.items():
        assert _without_hrefs(item) == _without_hrefs(folder_items[iid]), iid
        data = item["assets"]["data"]
        name = next(n for n in GOOD if item_id(n) == iid)
        assert data["href"] == f"{PUBLIC}/{bucket}/data/{name}"
        assert data["alternate"]["s3"]["href"] == f"s3://{bucket}/data/{name}"
    # The packaged store: the shared one plus alternate-assets, which it lacks.
    assert validate_catalog(s3 / "out", Path(str(SchemaValidator().root))) > len(GOOD)


def test_modify_touch_and_delete_one_object(s3_server, bucket, testdata, tmp_path, proxy):
    _upload(s3_server, bucket, testdata, ["RGB.byte.tif", "elev.tif", "autzen_trim.laz"])
    config = _config(tmp_path, proxy.url, f"s3://{bucket}/data/")
    rescan(config)
    out = tmp_path / "out"
    store = store_for(s3_server, bucket)

    # Touch: the same bytes copied onto themselves, a new LastModified, the same ETag.
    # LastModified has whole seconds: copy until it shows.
    first = store.head("data/elev.tif")

    def touched_once() -> bool:
        store.client.copy_object(
            Bucket=bucket,
            Key="data/elev.tif",
            CopySource={"Bucket": bucket, "Key": "data/elev.tif"},
            MetadataDirective="REPLACE",
            Metadata={"touched": "yes"},
        )
        return store.head("data/elev.tif").last_modified_ns != first.last_modified_ns

    wait_for(touched_once, 10, "a new LastModified")
    assert store.head("data/elev.tif").etag == first.etag
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    proxy.seen.clear()
    touched = rescan(config)
    assert (touched.touched, touched.modified, touched.items_written) == (1, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == before
    assert [s for s in proxy.seen if not s.is_list] == []  # nothing read, no HEAD

    # Modify: new bytes, a new ETag: that item alone is extracted and rewritten.
    store.put("data/elev.tif", (testdata / "dataset_cog.tif").read_bytes(), "image/tiff")
    proxy.seen.clear()
    modified = rescan(config)
    assert (modified.modified, modified.items_written) == (1, 1)
    gets = {s.path for s in proxy.seen if s.method in ("GET", "HEAD") and not s.is_list}
    assert gets == {f"/{bucket}/data/elev.tif"}
    elev = items_under(out)["elev-tif"]
    assert elev["assets"]["data"]["file:size"] == (testdata / "dataset_cog.tif").stat().st_size

    # Delete: the item goes, the others stay.
    store.delete("data/autzen_trim.laz")
    deleted = rescan(config)
    assert (deleted.removed, deleted.items_deleted, deleted.items_written) == (1, 1, 0)
    assert sorted(items_under(out)) == ["elev-tif", "rgb-byte-tif"]


def test_a_listing_that_fails_half_way_deletes_nothing(s3_server, bucket, testdata, tmp_path):
    _upload(s3_server, bucket, testdata, ["RGB.byte.tif", "elev.tif"])
    store = store_for(s3_server, bucket)
    # 1,000 keys no pattern takes before them: the second page holds the rasters.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: store.put(f"data/a{i:04d}.txt", b"x", "text/plain"), range(1000)))
    relay = FaultProxy(s3_server)
    try:
        config = _config(tmp_path, relay.url, f"s3://{bucket}/data/")
        assert rescan(config).items_written == 2
        before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
        relay.rule = lambda s: 503 if s.is_list and "continuation-token" in s.query else None
        with pytest.raises(SourceUnavailableError, match="nothing was written"):
            rescan(config)
        after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
        assert after == before
        pages = [s for s in relay.seen if s.is_list]
        assert all(s.query.get("max-keys") == ["1000"] for s in pages)
    finally:
        relay.close()


def test_transient_errors_are_retried_and_lose_nothing(s3_server, bucket, testdata, tmp_path):
    _upload(s3_server, bucket, testdata, GOOD)
    relay = FaultProxy(s3_server)
    try:
        # Every object's first ranged GET answers 503 SlowDown, and the first listing too.
        failed: set[str] = set()

        def once_per_object(seen) -> int | None:
            if seen.method == "GET" and seen.path not in failed:
                failed.add(seen.path)
                return 503
            return None

        relay.rule = once_per_object
        summary = rescan(_config(tmp_path, relay.url, f"s3://{bucket}/data/"))
        assert summary.errors == 0 and summary.items_written == len(GOOD)
        assert len(failed) == len(GOOD) + 1  # every object and the listing failed once
    finally:
        relay.close()


def _anonymous(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _mirror(endpoint: str, bucket: str, prefix: str, dest: Path) -> None:
    """Download the published catalog by anonymous HTTP GETs, as any reader would."""
    for info in store_for(endpoint, bucket).list(prefix):
        url = f"{endpoint}/{bucket}/{info.key}"
        target = dest / info.key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=10) as answer:
            target.write_bytes(answer.read())


def test_an_s3_output_is_published_and_opened_to_anonymous_read(
    s3_server, bucket, testdata, tmp_path, proxy
):
    _upload(s3_server, bucket, testdata, ["RGB.byte.tif", "simple.copc.laz"])
    config = _config(tmp_path, proxy.url, f"s3://{bucket}/data/", output=f"s3://{bucket}/stac/")
    summary = rescan(config)
    assert summary.errors == 0 and summary.items_written == 2
    assert _anonymous(f"{s3_server}/{bucket}/stac/catalog.json") == 200
    assert _anonymous(f"{s3_server}/{bucket}/data/RGB.byte.tif") == 403  # not the output
    types = {
        s.path.rsplit(".", 1)[-1]: s.headers.get("content-type")
        for s in proxy.seen
        if s.method == "PUT" and "policy" not in s.query
    }
    assert types["json"] == "application/json" and types["geojson"] == "application/geo+json"
    mirror = tmp_path / "published"
    _mirror(s3_server, bucket, "stac/", mirror)
    report = check_catalog(mirror)
    assert report.ok, [str(p) for p in report.problems]

    # A pass with nothing new: one listing of the source, one of the output; besides them
    # only what a new process asks once (the bucket is there, the probe write, the policy).
    proxy.seen.clear()
    again = rescan(config)
    assert again.items_written == 0 and again.unchanged == 2
    assert len([s for s in proxy.seen if s.is_list]) == 2
    key = len(f"/{bucket}/")
    others = sorted((s.method, s.path[key:]) for s in proxy.seen if not s.is_list)
    probe = "stac/.stacsync-tmp-write-check"
    assert others == [("DELETE", probe), ("GET", ""), ("HEAD", ""), ("PUT", probe)], others


def test_the_daemon_follows_objects_added_and_deleted(
    s3_server, bucket, testdata, tmp_path, daemons
):
    _upload(s3_server, bucket, testdata, ["RGB.byte.tif"])
    config = _config(
        tmp_path,
        s3_server,
        f"s3://{bucket}/data/",
        extra="[daemon]\npoll_seconds = 0.2\nsettle_seconds = 0\n",
    )
    out = tmp_path / "out" / "drone"
    daemon = daemons(config)  # inherits the test's AWS environment (dummy credentials)
    wait_for((out / "rgb-byte-tif" / "rgb-byte-tif.json").is_file, 60, "first item")
    _upload(s3_server, bucket, testdata, ["elev.tif"])
    wait_for((out / "elev-tif" / "elev-tif.json").is_file, 60, "added object's item")
    store_for(s3_server, bucket).delete("data/RGB.byte.tif")
    wait_for(lambda: not (out / "rgb-byte-tif").exists(), 60, "deleted object's item gone")
    code, _ = daemon.stop()
    assert code == 0, daemon.log()
    assert f"polling s3://{bucket}/data/" in daemon.log()


def _collared_cog(path: Path) -> None:
    """A 2048² noisy COG whose data is a disc inside a nodata collar: a long border to check."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    size = 2048
    rng = np.random.default_rng(7)
    data = rng.integers(1, 255, (size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    data[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 > (size * 0.45) ** 2] = 0
    profile = {
        "driver": "COG",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
        "crs": "EPSG:32611",
        "transform": from_origin(500000, 4000000, 0.05, 0.05),
        "compress": "deflate",
        "blocksize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


@pytest.mark.parametrize(("mode", "full_resolution_reads"), [("local", False), ("always", True)])
def test_over_s3_the_footprint_comes_from_the_overview_unless_asked(
    s3_server, bucket, tmp_path, proxy, mode, full_resolution_reads
):
    cog = tmp_path / "disc.tif"
    _collared_cog(cog)
    store_for(s3_server, bucket).put("data/disc.tif", cog.read_bytes(), "image/tiff")
    extra = f'[extract]\nverify_border = "{mode}"\n'
    summary = rescan(_config(tmp_path, proxy.url, f"s3://{bucket}/data/", extra=extra))
    assert summary.errors == 0 and summary.items_written == 1
    gets = [s for s in proxy.seen if s.is_get_of(bucket, "data/disc.tif")]
    fetched = sum(int(b) - int(a) + 1 for a, b in (s.headers["range"][6:].split("-") for s in gets))
    # The header and the smallest overview come in a couple of ranged GETs; checking the
    # border at full resolution reads much of the file.
    assert (fetched > cog.stat().st_size / 4) is full_resolution_reads, (len(gets), fetched)
    if not full_resolution_reads:
        assert len(gets) <= 3
