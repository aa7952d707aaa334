"""`[source] url` and `[output] url`: S3 prefixes in the config, and the mistakes it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacsync.catalog.hrefs import rewrite_href
from stacsync.config.load import load_settings
from stacsync.config.settings import S3Settings
from stacsync.core.errors import ConfigError

S3 = """
[source]
url = "s3://ofo-public/drone/missions_03"
endpoint_url = "https://js2.jetstream-cloud.org:8001/"
anonymous = true
[output]
url = "s3://my-stac/catalog/"
endpoint_url = "https://js2.jetstream-cloud.org:8001"
public = true
[[href_rewrite]]
prefix = "s3://ofo-public/"
to = "https://js2.jetstream-cloud.org:8001/swift/v1/ofo-public"
[[collection]]
id = "c"
match = '^(?P<item>.+)$'
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "stacsync.toml"
    path.write_text(text)
    return load_settings(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return str(info.value)


def test_s3_source_and_output(tmp_path: Path):
    s = _load(tmp_path, S3)
    assert s.source_s3 == S3Settings(
        url="s3://ofo-public/drone/missions_03/",
        endpoint_url="https://js2.jetstream-cloud.org:8001",
        anonymous=True,
    )
    assert s.output_s3 == S3Settings(
        url="s3://my-stac/catalog/",
        endpoint_url="https://js2.jetstream-cloud.org:8001",
        public=True,
    )
    assert (s.source_label, s.output_label) == (s.source_s3.url, s.output_s3.url)
    address = "s3://ofo-public/drone/missions_03/000123/a b.tif"
    assert rewrite_href(s, address) == (
        "https://js2.jetstream-cloud.org:8001/swift/v1/ofo-public/drone/missions_03/000123/a%20b.tif"
    )
    assert rewrite_href(s, "s3://other/x y.tif") == "s3://other/x%20y.tif"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace('url = "s3://ofo-public', 'url = "s3://Bad_Bucket'),
            "source.url: 's3://Bad_Bucket/drone/missions_03': 'Bad_Bucket' is not a valid "
            "bucket name",
        ),
        (
            lambda t: t.replace('url = "s3://my-stac', 'url = "https://my-stac'),
            "output.url: 'https://my-stac/catalog/' is not an S3 URL",
        ),
        (
            lambda t: t.replace("[source]\n", '[source]\npath = "data"\n'),
            "source.url: give only one of source.path, source.irods and source.url "
            "(source.path and source.url are set)",
        ),
        (
            lambda t: t.replace("anonymous = true", 'aws_secret_access_key = "abc"'),
            "source.aws_secret_access_key: credentials do not belong in the config file",
        ),
        (
            lambda t: t.replace("public = true", 'access_key = "AKIA…"'),
            "output.access_key: credentials do not belong in the config file",
        ),
        (
            lambda t: t.replace('url = "s3://my-stac/catalog/"\n', 'path = "out"\n'),
            "output.endpoint_url: only used with output.url (an S3 bucket)",
        ),
        (
            lambda t: t.replace("public = true", 'parent_catalog = "/x/catalog.json"'),
            "output.parent_catalog: not supported with output.url (S3) yet",
        ),
        (
            lambda t: t.replace('prefix = "s3://ofo-public/"', 'prefix = "ofo-public/"'),
            "href_rewrite[0].prefix: must be an absolute path (start with /) or s3://bucket/",
        ),
    ],
)
def test_s3_mistakes_are_named(tmp_path: Path, change, message: str):
    assert message in _error(tmp_path, change(S3))


def test_a_bad_url_is_not_also_reported_as_missing(tmp_path: Path):
    text = _error(tmp_path, S3.replace("s3://ofo-public", "s3://x"))
    assert "source.url:" in text and "source.path: required" not in text
