"""S3Output against a real moto_server: one PUT per file, Content-Types, public read, errors.

Anonymous reads are checked with plain urllib GETs, as a STAC browser would make them.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from s3server import dummy_credentials, store_for

from stacsync.core.errors import OutputError
from stacsync.publish.s3 import PROBE_NAME, S3Output, content_type


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    dummy_credentials(monkeypatch)


@pytest.fixture
def output(s3_server, bucket) -> S3Output:
    return S3Output(store_for(s3_server, bucket), "catalog")


def anonymous_get(endpoint: str, bucket: str, key: str) -> tuple[int, str | None]:
    """Status and Content-Type of an unsigned HTTP GET."""
    try:
        with urllib.request.urlopen(f"{endpoint}/{bucket}/{key}", timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_write_exists_delete(output):
    output.check_writable()
    assert not output.exists("catalog.json")
    output.write("catalog.json", b'{"type": "Catalog"}')
    output.write("c/i/i.json", b"{}")
    assert output.exists("catalog.json") and output.exists("c/i/i.json")
    assert output.store.get("catalog/catalog.json") == b'{"type": "Catalog"}'
    output.write("catalog.json", b"{}")  # replaced in one PUT
    assert output.store.get("catalog/catalog.json") == b"{}"
    output.delete("c/i/i.json")
    output.delete("c/i/i.json")  # gone already: nothing to do
    assert not output.exists("c/i/i.json")
    assert [o.key for o in output.store.list("")] == ["catalog/catalog.json"]


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("catalog.json", "application/json"),
        ("index.geojson", "application/geo+json"),
        ("items.parquet", "application/vnd.apache.parquet"),
        ("c/i/thumb.PNG", "image/png"),
        ("notes.bin", "application/octet-stream"),
    ],
)
def test_each_file_is_served_with_its_content_type(output, relpath, expected):
    assert content_type(relpath) == expected
    output.write(relpath, b"x")
    assert output.store.head(f"catalog/{relpath}").content_type == expected


def test_open_atomic_puts_on_a_clean_exit_only(output):
    with output.open_atomic("c/collection.json") as out:
        out.write(b'{"type": ')
        assert not output.exists("c/collection.json")  # nothing until the block ends
        out.write(b'"Collection"}')
    assert output.store.get("catalog/c/collection.json") == b'{"type": "Collection"}'
    with pytest.raises(RuntimeError), output.open_atomic("c/broken.json") as out:
        out.write(b"{half")
        raise RuntimeError("renderer failed")
    assert not output.exists("c/broken.json")


def test_paths_outside_the_prefix_are_refused(output):
    for bad in ("../escape.json", "/abs.json", "", "a/../../b.json"):
        with pytest.raises(OutputError, match="outside the output prefix"):
            output.write(bad, b"{}")
    assert output.key("a/./b.json") == "catalog/a/b.json"


def test_puts_carry_no_checksum_header(output):
    sent: list[dict] = []
    output.store.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    output.write("catalog.json", b"{}")
    [headers] = sent
    assert not any(k.lower().startswith("x-amz-checksum") for k in headers), headers


def test_check_writable_leaves_nothing_behind(output):
    output.check_writable()
    assert list(output.store.list("")) == []
    output.sweep_temp_files()  # a PUT leaves no temp files: nothing to do, nothing fails


def test_check_writable_names_a_missing_bucket(s3_server):
    output = S3Output(store_for(s3_server, "no-such-bucket-for-output"), "catalog/")
    with pytest.raises(OutputError) as raised:
        output.check_writable()
    message = str(raised.value)
    assert "s3://no-such-bucket-for-output/catalog/" in message and "bucket not found" in message


def test_check_writable_says_when_writes_are_refused(bucket, proxy):
    proxy.rule = lambda s: 403 if s.method == "PUT" else None
    output = S3Output(store_for(proxy.url, bucket), "catalog/")
    with pytest.raises(OutputError) as raised:
        output.check_writable()
    message = str(raised.value)
    assert f"catalog/{PROBE_NAME}" in message and "access denied" in message
    assert "credentials" in message


def test_write_errors_are_output_errors(bucket, proxy):
    proxy.rule = lambda s: 503
    output = S3Output(store_for(proxy.url, bucket, attempts=2), "catalog/")
    with pytest.raises(OutputError, match=r"catalog\.json.*HTTP 503"):
        output.write("catalog.json", b"{}")
    assert len(proxy.seen) == 2  # retried, then given up


def test_make_public_opens_the_output_prefix_only(s3_server, bucket):
    store = store_for(s3_server, bucket)
    store.put("private/data.tif", b"x", "image/tiff")
    closed = S3Output(store, "catalog/", public=False)
    closed.write("catalog.json", b"{}")
    closed.make_public(settings=None)
    assert anonymous_get(s3_server, bucket, "catalog/catalog.json") == (403, None)

    output = S3Output(store, "catalog/", public=True)
    output.make_public(settings=None)
    assert "allows anonymous GET" in output.last_grant
    assert anonymous_get(s3_server, bucket, "catalog/catalog.json") == (200, "application/json")
    output.write("c/later.json", b"{}")  # written after: public too (the policy covers it)
    assert anonymous_get(s3_server, bucket, "catalog/c/later.json")[0] == 200
    assert anonymous_get(s3_server, bucket, "private/data.tif") == (403, None)
    granted = output.last_grant
    output.make_public(settings=None)  # a daemon's next poll: nothing asked again
    assert output.last_grant == granted
    again = S3Output(store, "catalog/", public=True)  # the next `stacsync rescan`
    again.make_public(settings=None)
    assert "already allowed" in again.last_grant


def test_make_public_says_what_to_ask_for_when_refused(bucket, proxy):
    proxy.rule = lambda s: 403 if "policy" in s.query and s.method == "PUT" else None
    output = S3Output(store_for(proxy.url, bucket), "catalog/", public=True)
    with pytest.raises(OutputError, match="cannot open to public read") as raised:
        output.make_public(settings=None)
    assert "ask its owner to add this statement" in str(raised.value)
    assert f"arn:aws:s3:::{bucket}/catalog/*" in str(raised.value)


def test_from_url(s3_server, bucket):
    options = store_for(s3_server, bucket).options
    output = S3Output.from_url(f"s3://{bucket}/stac", options, public=True)
    assert (output.store.bucket, output.prefix, output.public) == (bucket, "stac/", True)
    with pytest.raises(ValueError, match="not an S3 URL"):
        S3Output.from_url("/local/folder", options)
