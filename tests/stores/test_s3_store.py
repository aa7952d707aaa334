"""The S3 seam against a real moto_server over HTTP: paging, retries, checksums, ranges, policy.

Faults come from a relay in front of the server (tests/s3server.py); boto3 is never mocked.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import json
import logging
import re
import urllib.error
import urllib.request

import pytest
from s3server import dummy_credentials, fail_first, store_for

from stacsync.core.checksum import checksum_stream
from stacsync.core.errors import StacsyncError
from stacsync.core.retry import is_transient
from stacsync.stores.s3 import (
    PAGE_SIZE,
    S3AccessError,
    S3Error,
    S3NotFoundError,
    S3Options,
    S3Store,
    parse_s3_url,
)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    dummy_credentials(monkeypatch)


def anonymous_status(endpoint: str, bucket: str, key: str) -> int:
    """The status of a plain, unsigned HTTP GET (what a browser or a STAC client does)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/{bucket}/{key}", timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def count_calls(store: S3Store, operation: str) -> list[dict]:
    """The request (query string, headers, body) of each `operation` call the store's own
    client makes from now on."""
    calls: list[dict] = []
    store.client.meta.events.register(
        f"before-call.s3.{operation}", lambda params, **_: calls.append(params)
    )
    return calls


# -- URLs --------------------------------------------------------------------------------------


def test_parse_s3_url():
    assert parse_s3_url("s3://bucket/prefix/").prefix == "prefix/"
    assert parse_s3_url("s3://bucket/a/b") == parse_s3_url("s3://bucket/a/b/")
    assert parse_s3_url("s3://bucket").prefix == ""
    assert parse_s3_url("s3://my.bucket-1/x/").bucket == "my.bucket-1"
    for url, says in [
        ("/data/x", "not an S3 URL"),
        ("https://host/bucket", "not an S3 URL"),
        ("s3:///prefix", "names no bucket"),
        ("s3://Bucket/x", "not a valid bucket name"),
        ("s3://ab/x", "not a valid bucket name"),
        ("s3://bucket/a/../b/", "'..' segment"),
        ("s3://bucket/a//b/", "empty"),
        ("s3://bucket/x?versionId=1", "no user, query or fragment"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_s3_url(url)


# -- listing -----------------------------------------------------------------------------------


def test_listing_pages_through_2500_keys_asking_1000_at_a_time(s3_server, many_keys):
    bucket, keys = many_keys
    store = store_for(s3_server, bucket)
    calls = count_calls(store, "ListObjectsV2")
    listed = list(store.list("many/"))
    assert [o.key for o in listed] == keys
    assert all(o.size == len(o.key) for o in listed)
    assert listed[0].etag == hashlib.md5(keys[0].encode()).hexdigest()  # unquoted
    assert all(o.last_modified_ns > 1_600_000_000 * 10**9 for o in listed)
    queries = [c["query_string"] for c in calls]
    assert [q["max-keys"] for q in queries] == [PAGE_SIZE] * 3
    assert "continuation-token" not in queries[0]
    assert queries[1]["continuation-token"] and queries[2]["continuation-token"]


def test_listing_streams_page_by_page(s3_server, many_keys):
    bucket, _ = many_keys
    store = store_for(s3_server, bucket)
    calls = count_calls(store, "ListObjectsV2")
    pages = store.list("many/")
    first = [next(pages) for _ in range(PAGE_SIZE)]
    assert len(calls) == 1 and first[-1].key == "many/00999.tif"
    next(pages)
    assert len(calls) == 2


def test_listing_retries_503_and_loses_nothing(many_keys, proxy):
    bucket, keys = many_keys
    later_page = lambda s: s.is_list and "continuation-token" in s.query  # noqa: E731
    proxy.rule = fail_first(2, 503, later_page)
    store = store_for(proxy.url, bucket)
    assert [o.key for o in store.list("many/")] == keys
    assert len(proxy.requests(lambda s: s.is_list)) == 3 + 2


def test_listing_that_fails_half_way_raises_after_its_retries(many_keys, proxy):
    bucket, _ = many_keys
    proxy.rule = lambda s: 503 if s.is_list and "continuation-token" in s.query else None
    store = store_for(proxy.url, bucket, attempts=3)
    got = []
    with pytest.raises(S3Error) as raised:
        got.extend(store.list("many/"))
    assert len(got) == PAGE_SIZE  # pages stream; the raise is what says the rest is missing
    assert is_transient(raised.value) and f"s3://{bucket}/many/" in str(raised.value)
    assert len(proxy.requests(lambda s: s.is_list)) == 1 + 3  # page 1, then 3 tries of page 2


def test_a_page_claiming_more_without_a_token_stops_the_listing(many_keys, proxy):
    bucket, _ = many_keys
    proxy.rewrite = lambda seen, body: re.sub(
        rb"<NextContinuationToken>.*?</NextContinuationToken>", b"", body
    )
    with pytest.raises(S3Error, match="incomplete") as raised:
        list(store_for(proxy.url, bucket).list("many/"))
    assert raised.value.errno == errno.EPROTO and not is_transient(raised.value)


def test_botocore_does_not_retry_on_its_own(bucket, proxy):
    proxy.rule = lambda s: 503
    with pytest.raises(S3Error):
        store_for(proxy.url, bucket, attempts=1).head("x")
    assert len(proxy.seen) == 1  # our policy is the only retry policy


def test_missing_bucket_says_so(s3_server):
    store = store_for(s3_server, "no-such-bucket-here")
    with pytest.raises(S3NotFoundError, match="bucket not found") as raised:
        list(store.list(""))
    assert "s3://no-such-bucket-here/" in str(raised.value)
    assert isinstance(raised.value, StacsyncError) and isinstance(raised.value, FileNotFoundError)


def test_access_denied_names_the_key_and_what_to_check(bucket, proxy):
    proxy.rule = lambda s: 403
    with pytest.raises(S3AccessError) as raised:
        store_for(proxy.url, bucket).get("a/b.tif")
    message = str(raised.value)
    assert f"s3://{bucket}/a/b.tif" in message and "credentials" in message
    assert len(proxy.seen) == 1  # a refusal is not retried


def test_anonymous_reads_of_a_private_object_say_so(s3_server, bucket):
    store_for(s3_server, bucket).put("private.tif", b"x", "image/tiff")
    anonymous = store_for(s3_server, bucket, anonymous=True)
    with pytest.raises(S3AccessError, match="anonymous"):
        anonymous.get("private.tif")


def test_no_credentials_says_where_they_are_looked_for(s3_server, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(S3AccessError, match=r"no credentials found.*AWS_ACCESS_KEY_ID"):
        store_for(s3_server, bucket).head("x")


# -- objects -----------------------------------------------------------------------------------


def test_head_reads_the_stores_sha256_as_our_multihash(s3_server, bucket):
    store = store_for(s3_server, bucket)
    data = b"some bytes" * 100
    store.client.put_object(Bucket=bucket, Key="sha.tif", Body=data, ChecksumAlgorithm="SHA256")
    head = store.head("sha.tif")
    assert head.checksum == checksum_stream(io.BytesIO(data))  # the same spelling as ours
    assert head.checksum.startswith("1220") and head.size == len(data)


@pytest.mark.parametrize("spelling", ["base64", "hex"])
def test_head_reads_rclones_md5_metadata(s3_server, bucket, spelling):
    store = store_for(s3_server, bucket)
    digest = hashlib.md5(b"rclone copied me").digest()
    value = base64.b64encode(digest).decode() if spelling == "base64" else digest.hex()
    store.client.put_object(
        Bucket=bucket, Key="r.las", Body=b"rclone copied me", Metadata={"md5chksum": value}
    )
    assert store.head("r.las").checksum == "d50110" + digest.hex()


def test_head_without_a_checksum_and_of_a_missing_object(s3_server, bucket):
    store = store_for(s3_server, bucket)
    store.put("plain.json", b"{}", "application/json")
    head = store.head("plain.json")
    assert head.checksum is None and head.content_type == "application/json"
    assert head.etag == hashlib.md5(b"{}").hexdigest()
    assert store.head("missing.json") is None


def test_multipart_etag_is_kept_and_is_no_checksum(s3_server, bucket):
    store = store_for(s3_server, bucket)
    client = store.client
    upload = client.create_multipart_upload(
        Bucket=bucket, Key="big.laz", ChecksumAlgorithm="SHA256"
    )["UploadId"]
    parts = []
    for number, body in ((1, b"a" * (5 * 1024 * 1024)), (2, b"b" * 10)):
        answer = client.upload_part(
            Bucket=bucket,
            Key="big.laz",
            UploadId=upload,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
        )
        parts.append(
            {
                "PartNumber": number,
                "ETag": answer["ETag"],
                "ChecksumSHA256": answer["ChecksumSHA256"],
            }
        )
    client.complete_multipart_upload(
        Bucket=bucket, Key="big.laz", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    [listed] = store.list("big")
    head = store.head("big.laz")
    assert listed.etag.endswith("-2") and head.etag == listed.etag
    # The store's sha256 of a multipart upload is a checksum of the parts' checksums (moto
    # sends it without AWS's "-2" suffix and COMPOSITE type): never taken for the file's.
    raw = client.head_object(Bucket=bucket, Key="big.laz", ChecksumMode="ENABLED")
    assert raw["ChecksumSHA256"]
    assert head.checksum is None


def test_ranges_and_whole_objects(s3_server, bucket):
    store = store_for(s3_server, bucket)
    data = bytes(range(256)) * 40
    store.put("r.bin", data, "application/octet-stream")
    assert store.get_range("r.bin", 10, 20) == data[10:30]
    assert store.get_range("r.bin", len(data) - 5, 100) == data[-5:]
    assert store.get_range("r.bin", len(data) + 5, 10) == b""  # past the end: nothing
    assert store.get("r.bin") == data
    got = store.read_range("r.bin", 0, 4)
    assert (got.size, got.etag) == (len(data), hashlib.md5(data).hexdigest())
    store.put("empty.bin", b"", "application/octet-stream")
    assert store.read_range("empty.bin", 0, 100).size == 0
    with pytest.raises(FileNotFoundError):
        store.get_range("nope.bin", 0, 10)


def test_a_replaced_object_is_not_read_as_a_mix(s3_server, bucket):
    store = store_for(s3_server, bucket)
    store.put("v.bin", b"first version", "application/octet-stream")
    etag = store.head("v.bin").etag
    store.put("v.bin", b"second version", "application/octet-stream")
    with pytest.raises(S3Error) as raised:
        store.read_range("v.bin", 0, 4, if_match=etag)
    assert raised.value.errno == errno.ESTALE


def test_reads_are_retried_on_503(bucket, proxy, s3_server):
    store_for(s3_server, bucket).put("flaky.bin", b"0123456789", "application/octet-stream")
    proxy.rule = fail_first(3, 503, lambda s: s.method in ("GET", "HEAD"))
    store = store_for(proxy.url, bucket)
    assert store.get_range("flaky.bin", 2, 3) == b"234"
    assert store.head("flaky.bin").size == 10
    assert len(proxy.seen) == 3 + 2


def test_retries_log_no_credentials(bucket, proxy, caplog, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    proxy.rule = fail_first(2, 503, lambda s: True)
    with caplog.at_level(logging.DEBUG, logger="stacsync"):
        assert store_for(proxy.url, bucket).head("x") is None
    assert "retrying" in caplog.text and "s3cr3t-value" not in caplog.text


def test_puts_carry_no_checksum_the_operation_does_not_require(s3_server, bucket):
    store = store_for(s3_server, bucket)
    sent: list[dict] = []
    store.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    store.put("c.json", b'{"a": 1}', "application/json")
    [headers] = sent
    names = {k.lower() for k in headers}
    assert not any(n.startswith("x-amz-checksum") for n in names), names
    assert "x-amz-sdk-checksum-algorithm" not in names and "content-md5" not in names
    assert headers["Content-Type"] in ("application/json", b"application/json")
    store.delete("c.json")
    store.delete("c.json")  # gone already: nothing to do
    assert store.head("c.json") is None


# -- public read -------------------------------------------------------------------------------


def test_grant_public_read_opens_the_prefix_only(s3_server, bucket):
    store = store_for(s3_server, bucket)
    store.put("catalog/catalog.json", b"{}", "application/json")
    store.put("private/secret.tif", b"x", "image/tiff")
    store.client.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "theirs",
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                        "Action": "s3:ListBucket",
                        "Resource": f"arn:aws:s3:::{bucket}",
                    }
                ],
            }
        ),
    )
    assert anonymous_status(s3_server, bucket, "catalog/catalog.json") == 403
    said = store.grant_public_read("catalog/")
    assert "allows anonymous GET" in said and f"s3://{bucket}/catalog/" in said
    assert anonymous_status(s3_server, bucket, "catalog/catalog.json") == 200
    assert anonymous_status(s3_server, bucket, "private/secret.tif") == 403
    policy = json.loads(store.client.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Sid"] == "theirs"  # merged, not replaced
    assert policy["Statement"][1]["Resource"] == f"arn:aws:s3:::{bucket}/catalog/*"

    puts = count_calls(store, "PutBucketPolicy")
    assert "already allowed" in store.grant_public_read("catalog/")
    assert puts == []  # looked before setting


def test_grant_public_read_falls_back_to_acls_without_a_policy_api(s3_server, bucket, proxy):
    direct = store_for(s3_server, bucket)
    direct.put("out/a.json", b"{}", "application/json")
    direct.put("other/b.json", b"{}", "application/json")
    proxy.rule = lambda s: 501 if "policy" in s.query else None  # a store with no policy API
    store = store_for(proxy.url, bucket)
    said = store.grant_public_read("out/")
    assert "no bucket policy API" in said and "1 objects" in said
    store.put("out/later.json", b"{}", "application/json")
    assert anonymous_status(s3_server, bucket, "out/a.json") == 200
    assert anonymous_status(s3_server, bucket, "out/later.json") == 200
    assert anonymous_status(s3_server, bucket, "other/b.json") == 403
    assert "already set" in store.grant_public_read("out/")


# -- GDAL --------------------------------------------------------------------------------------


def test_gdal_env_names_the_endpoint_and_no_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    store = S3Store(S3Options("http://127.0.0.1:9000", "eu-west-1"), "bucket")
    env = store.gdal_env()
    assert env == {
        "AWS_S3_ENDPOINT": "127.0.0.1:9000",
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_NO_SIGN_REQUEST": "NO",
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "AWS_REGION": "eu-west-1",
    }
    public = S3Store(S3Options("https://s3.example.org", None, anonymous=True), "b").gdal_env()
    assert public["AWS_HTTPS"] == "YES" and public["AWS_NO_SIGN_REQUEST"] == "YES"
    assert public["AWS_S3_ENDPOINT"] == "s3.example.org"
    aws = S3Store(S3Options(region="us-west-2"), "b").gdal_env()
    assert "AWS_S3_ENDPOINT" not in aws and aws["AWS_HTTPS"] == "YES"
    assert not any("KEY" in k or "SECRET" in k or "TOKEN" in k for k in env)
    assert "AKIAEXAMPLE" not in env.values()
