"""`s3://bucket/prefix/` addresses: parsed and checked once, for the config and the S3 seam.

Plain text rules, no boto3: the config checks a URL without loading an S3 client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a key prefix: "" for the whole bucket, else ending in "/"."""

    bucket: str
    prefix: str

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key or self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket/prefix/` → S3Location; ValueError saying what is wrong with the URL."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError(f"{url!r} is not an S3 URL: expected s3://bucket/prefix/")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{url!r}: an S3 URL has no user, query or fragment (s3://bucket/prefix/)")
    bucket = parts.netloc
    if not bucket:
        raise ValueError(f"{url!r} names no bucket: expected s3://bucket/prefix/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"{url!r}: {bucket!r} is not a valid bucket name (3 to 63 lowercase letters, digits,"
            " dots or hyphens, starting and ending with a letter or digit)"
        )
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # "data" must not also match "data-old/..."
    if prefix and any(seg in ("", ".", "..") for seg in prefix[:-1].split("/")):
        raise ValueError(f"{url!r}: the prefix has an empty, '.' or '..' segment")
    return S3Location(bucket, prefix)
