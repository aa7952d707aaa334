"""Plain records and rules of the S3 seam, apart from boto3 (which only `stores.s3` imports).

Options, object records, errors, checksums as multihash, bucket-policy statements (URLs: core).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stacsync.core.errors import StacsyncError

SHA256_MULTIHASH = "1220"  # multihash code 0x12 (sha2-256), digest length 0x20
MD5_MULTIHASH = "d50110"  # multihash code 0xd5 (md5, varint d5 01), digest length 0x10
RCLONE_MD5_KEY = "md5chksum"  # rclone's x-amz-meta-md5chksum: base64 of the md5 digest
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class S3Error(StacsyncError, OSError):
    """An S3 request failed. The errno says what kind (transient ones are retried by callers'
    policies too); the message names the bucket and key and what to check."""

    def __str__(self) -> str:
        if self.filename and self.strerror:
            return f"{self.filename}: {self.strerror}"
        return super().__str__()


class S3NotFoundError(S3Error, FileNotFoundError):
    """The bucket or the object does not exist (HTTP 404)."""


class S3AccessError(S3Error, PermissionError):
    """The store refused the request (HTTP 403), or there are no credentials to sign it."""


@dataclass(frozen=True, slots=True)
class S3Options:
    """How to reach a store; credentials are never here: boto3's own chain finds them."""

    endpoint_url: str | None = None  # None: AWS itself
    region: str | None = None
    anonymous: bool = False  # unsigned requests, for public buckets


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object as a listing shows it."""

    key: str
    size: int
    etag: str  # without its quotes; a multipart upload's ends in "-<parts>" and is no md5
    last_modified_ns: int


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """One object as HeadObject shows it, with the store's checksum as multihash hex if any."""

    size: int
    etag: str
    last_modified_ns: int
    content_type: str | None
    checksum: str | None


@dataclass(frozen=True, slots=True)
class RangeRead:
    """Bytes of one ranged GET, with the whole object's size and ETag."""

    data: bytes
    size: int
    etag: str


def nanoseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def bare_etag(raw: str | None) -> str:
    return (raw or "").strip('"')


def checksum_of(head: dict[str, Any]) -> str | None:
    """A HeadObject answer's checksum as multihash hex: the store's full-object sha256, else
    rclone's md5 metadata; None when neither is there (a multipart ETag is not a checksum)."""
    sha = head.get("ChecksumSHA256")
    # A multipart upload's sha256 is a checksum of its parts' checksums (AWS: "...=-3", type
    # COMPOSITE; some stores drop both marks, so the multipart ETag "...-3" decides too): it
    # would never equal the sha256 of the bytes.
    multipart = "-" in bare_etag(head.get("ETag"))
    composite = "-" in (sha or "") or head.get("ChecksumType") not in (None, "FULL_OBJECT")
    if sha and not multipart and not composite:
        digest = _b64(sha)
        if digest is not None and len(digest) == 32:
            return SHA256_MULTIHASH + digest.hex()
    md5 = (head.get("Metadata") or {}).get(RCLONE_MD5_KEY)
    if md5:
        digest = _md5_digest(md5.strip())
        if digest is not None:
            return MD5_MULTIHASH + digest.hex()
    return None


def _md5_digest(text: str) -> bytes | None:
    # rclone writes base64 (24 characters); other tools write hex (32).
    if len(text) == 32:
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    digest = _b64(text)
    return digest if digest is not None and len(digest) == 16 else None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def public_read_statement(sid: str, resource: str) -> dict[str, Any]:
    """The statement letting anyone GET the objects `resource` matches (and nothing else)."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": resource,
    }


def grants_public_get(statement: Any, resource: str) -> bool:
    """Whether a policy statement already lets anyone GET every object under `resource`."""
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
        return False
    if "Condition" in statement or "NotPrincipal" in statement or "NotAction" in statement:
        return False  # conditional or inverted: not an unconditional grant
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        principal = principal.get("AWS")
    if "*" not in _as_list(principal):
        return False
    actions = _as_list(statement.get("Action"))
    if not any(fnmatch.fnmatchcase("s3:getobject", a.lower()) for a in actions):
        return False
    return any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement.get("Resource")))


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
