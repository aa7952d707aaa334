"""The one seam between stacsync and S3-compatible object stores: the only module importing boto3.

Paged listings, heads with the store's checksums, ranged reads, puts, and opening a prefix to all.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as boto_exc
from botocore import UNSIGNED
from botocore.config import Config
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from stacsync.core.retry import is_transient

# One definition of S3 URLs, in core: the config checks them without loading boto3.
from stacsync.core.s3url import S3Location, parse_s3_url
from stacsync.stores.s3_records import (
    ObjectHead,
    ObjectInfo,
    RangeRead,
    S3AccessError,
    S3Error,
    S3NotFoundError,
    S3Options,
    bare_etag,
    checksum_of,
    grants_public_get,
    nanoseconds,
    public_read_statement,
)

__all__ = [
    "PAGE_SIZE",
    "ObjectHead",
    "ObjectInfo",
    "RangeRead",
    "S3AccessError",
    "S3Error",
    "S3Location",
    "S3NotFoundError",
    "S3Options",
    "S3Store",
    "checksum_of",
    "parse_s3_url",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 1000  # ListObjectsV2's own maximum: asked for on every page, never assumed
ATTEMPTS = 4
PUBLIC_READ_SID = "StacsyncPublicRead"
# Stores without a bucket-policy API answer its calls with one of these.
_NO_POLICY_API = {"NotImplemented", "MethodNotAllowed", "XNotImplemented", "NotSupported"}
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"}
_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


class S3Store:
    """One bucket of an S3-compatible store, through one boto3 client (thread-safe).

    Every call is retried on transient failures (5xx, SlowDown, timeouts, resets) with
    exponential backoff: `attempts` in all, waits from `retry_wait` up to `max_wait` seconds.
    botocore's own retries are off, so this policy is the only one.
    """

    def __init__(
        self,
        options: S3Options,
        bucket: str,
        *,
        attempts: int = ATTEMPTS,
        retry_wait: float = 0.2,
        max_wait: float = 5.0,
    ):
        self.options = options
        self.bucket = bucket
        self.attempts = attempts
        self.retry_wait = retry_wait
        self.max_wait = max_wait
        config = Config(
            # Only what an operation requires: stores that predate flexible checksums refuse
            # the CRC32 headers botocore now adds by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1, "mode": "standard"},  # ours are the retries
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
            **({"signature_version": UNSIGNED} if options.anonymous else {}),
        )
        # A session of our own: boto3's default session is not safe to share across threads.
        # Credentials come only from boto3's chain (env vars, shared files, profile, roles).
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=options.endpoint_url, region_name=options.region, config=config
        )
        self._lock = threading.Lock()
        self._acl_prefixes: set[str] = set()  # prefixes made public by object ACLs

    # -- reading -------------------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, one page at a time.

        Raises S3Error if any page fails (after retries) or the store's paging is broken:
        a listing cut short must never look complete.
        """
        token: str | None = None
        seen: set[str] = set()
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": PAGE_SIZE}
            if token is not None:
                args["ContinuationToken"] = token
            page = self._call("list", prefix, lambda a=args: self.client.list_objects_v2(**a))
            for item in page.get("Contents", ()):
                key = item["Key"]
                if key.startswith(prefix):  # a store that ignored Prefix: not ours to list
                    yield ObjectInfo(
                        key,
                        item["Size"],
                        bare_etag(item.get("ETag")),
                        nanoseconds(item["LastModified"]),
                    )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token or token in seen:
                what = "no continuation token" if not token else "a continuation token again"
                raise S3Error(
                    errno.EPROTO,
                    f"listing stopped: the store said more keys follow but gave {what};"
                    " the listing is incomplete",
                    self._url(prefix),
                )
            seen.add(token)

    def head(self, key: str) -> ObjectHead | None:
        """The object's size, ETag, time, type and checksum; None when it does not exist."""
        try:
            head = self._call(
                "head",
                key,
                lambda: self.client.head_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
                ),
            )
        except S3NotFoundError:
            return None
        return ObjectHead(
            head["ContentLength"],
            bare_etag(head.get("ETag")),
            nanoseconds(head["LastModified"]),
            head.get("ContentType"),
            checksum_of(head),
        )

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Up to `length` bytes from `start` (fewer at the end of the object)."""
        return self.read_range(key, start, length).data

    def read_range(
        self, key: str, start: int, length: int, *, if_match: str | None = None
    ) -> RangeRead:
        """Bytes from `start`, with the object's size and ETag. With `if_match`, an object
        replaced since raises S3Error(ESTALE) instead of mixing two versions' bytes."""
        if start < 0 or length <= 0:
            raise ValueError(f"bad range: start {start}, length {length}")
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Range": f"bytes={start}-{start + length - 1}",
        }
        if if_match is not None:
            args["IfMatch"] = f'"{if_match}"'

        def fetch() -> RangeRead | None:
            try:
                answer = self.client.get_object(**args)
            except boto_exc.ClientError as exc:
                if _status(exc) == 416 or _code(exc) == "InvalidRange":
                    return None  # at or past the end (or an empty object)
                raise
            data = answer["Body"].read()  # inside the retry: a reset mid-body is retried
            if "ContentRange" in answer:
                size = int(answer["ContentRange"].rpartition("/")[2])
            else:  # a store that ignores Range: the whole object came
                size = len(data)
                data = data[start : start + length]
            return RangeRead(data, size, bare_etag(answer.get("ETag")))

        got = self._call("read", key, fetch)
        if got is not None:
            return got
        head = self.head(key)
        if head is None:
            raise S3NotFoundError(errno.ENOENT, "cannot read: object not found", self._url(key))
        if if_match is not None and head.etag != if_match:
            raise S3Error(errno.ESTALE, "object was replaced while being read", self._url(key))
        return RangeRead(b"", head.size, head.etag)

    def get(self, key: str) -> bytes:
        """The whole object."""
        return self._call(
            "read", key, lambda: self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        )

    # -- writing -------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """One PUT (atomic: readers see the old object or the new); objects under a prefix
        made public by ACLs get the public-read ACL too."""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
        }
        with self._lock:
            if any(key.startswith(p) for p in self._acl_prefixes):
                args["ACL"] = "public-read"
        self._call("write", key, lambda: self.client.put_object(**args))

    def delete(self, key: str) -> None:
        """Remove an object; nothing happens if it is gone."""
        self._call("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    def check_bucket(self) -> None:
        """Raise S3Error unless the bucket exists and these credentials may use it."""
        self._call("reach", "", lambda: self.client.head_bucket(Bucket=self.bucket))

    def grant_public_read(self, prefix: str) -> str:
        """Let anyone GET objects under `prefix` (and only there); a sentence saying what
        was set. A bucket-policy statement merged into the policy; it looks first and sets
        nothing when anonymous reads are already allowed. Where the store has no policy API,
        each object gets the public-read ACL, and so do objects this store puts later."""
        resource = f"arn:aws:s3:::{self.bucket}/{prefix}*"
        try:
            policy = self._policy()
        except _NoPolicyApi:
            return self._grant_by_acl(prefix)
        statements = policy.setdefault("Statement", [])
        if isinstance(statements, dict):
            statements = policy["Statement"] = [statements]
        if any(grants_public_get(s, resource) for s in statements):
            return f"{self._url(prefix)}: anonymous read already allowed by the bucket policy"
        # One Sid per prefix (letters and digits only, as AWS wants), the same on every run.
        sid = PUBLIC_READ_SID + hashlib.sha256(prefix.encode()).hexdigest()[:12]
        statements.append(public_read_statement(sid, resource))
        policy.setdefault("Version", "2012-10-17")
        text = json.dumps(policy)
        try:
            self._call(
                "set the policy of",
                "",
                lambda: self.client.put_bucket_policy(Bucket=self.bucket, Policy=text),
            )
        except S3AccessError as exc:
            raise S3AccessError(
                errno.EACCES,
                "may not set the bucket policy (the bucket's Block Public Access settings, or"
                " these credentials' rights); ask its owner to add this statement: "
                + json.dumps(statements[-1]),
                exc.filename,
            ) from exc
        log.info("%s: bucket policy now allows anonymous GET under it", self._url(prefix))
        return f"{self._url(prefix)}: bucket policy statement {sid} allows anonymous GET under it"

    def _policy(self) -> dict[str, Any]:
        try:
            answer = self._call(
                "read the policy of", "", lambda: self.client.get_bucket_policy(Bucket=self.bucket)
            )
        except S3Error as exc:
            if isinstance(exc.__cause__, boto_exc.ClientError):
                code = _code(exc.__cause__)
                if code == "NoSuchBucketPolicy":
                    return {"Version": "2012-10-17", "Statement": []}
                if code in _NO_POLICY_API or _status(exc.__cause__) in (405, 501):
                    raise _NoPolicyApi from exc
            raise
        return json.loads(answer["Policy"])

    def _grant_by_acl(self, prefix: str) -> str:
        with self._lock:
            done = prefix in self._acl_prefixes
            self._acl_prefixes.add(prefix)
        if done:  # every object put since carries the ACL: no need to touch them all again
            return f"{self._url(prefix)}: public-read ACLs already set by this process"
        count = 0
        for info in self.list(prefix):
            self._call(
                "set the ACL of",
                info.key,
                lambda k=info.key: self.client.put_object_acl(
                    Bucket=self.bucket, Key=k, ACL="public-read"
                ),
            )
            count += 1
        log.info("%s: no bucket policy API; public-read ACL set on %d objects", prefix, count)
        return (
            f"{self._url(prefix)}: the store has no bucket policy API; public-read ACL set on"
            f" {count} objects, and set on each object written through stacsync from now on"
        )

    # -- GDAL ----------------------------------------------------------------------------

    def gdal_env(self) -> dict[str, str]:
        """GDAL config options for /vsis3/ paths to this store. No credentials: GDAL reads
        the same AWS variables and credentials file boto3 does."""
        env = {
            "AWS_VIRTUAL_HOSTING": "FALSE",  # path-style, as our own client
            "AWS_NO_SIGN_REQUEST": "YES" if self.options.anonymous else "NO",
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no listing per open
            "AWS_REGION": self.options.region or self.client.meta.region_name or "us-east-1",
            "AWS_HTTPS": "YES",
        }
        if self.options.endpoint_url:
            parts = urlsplit(self.options.endpoint_url)
            env["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
            env["AWS_HTTPS"] = "YES" if parts.scheme == "https" else "NO"
        return env

    # -- errors and retries --------------------------------------------------------------

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, action: str, key: str, fn: Callable[[], T]) -> T:
        """`fn()` with our retry policy; botocore's errors arrive as S3Errors."""

        def once() -> T:
            try:
                return fn()
            except (boto_exc.BotoCoreError, boto_exc.ClientError) as exc:
                raise self._error(exc, action, key) from exc

        for attempt in Retrying(
            retry=retry_if_exception(_worth_retrying),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.retry_wait, max=self.max_wait),
            reraise=True,
            before_sleep=lambda state: log.info(
                "%s, retrying (attempt %d)", state.outcome.exception(), state.attempt_number
            ),
        ):
            with attempt:
                return once()
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True raises

    def _error(self, exc: Exception, action: str, key: str) -> S3Error:
        where = self._url(key)
        if isinstance(exc, boto_exc.ClientError):
            code, status = _code(exc), _status(exc)
            if status == 404 or code in _NOT_FOUND:
                what = "object not found"
                if code == "NoSuchBucket" or not key:
                    what = "bucket not found (check the bucket name, endpoint URL and region)"
                return S3NotFoundError(errno.ENOENT, f"cannot {action}: {what}", where)
            if status == 403 or code in _DENIED:
                return S3AccessError(errno.EACCES, f"cannot {action}: {self._denied(code)}", where)
            if status == 412:
                return S3Error(errno.ESTALE, "object was replaced while being read", where)
            if status in (500, 502, 503, 504) or code in _BUSY:
                no = errno.ETIMEDOUT if code == "RequestTimeout" else errno.EAGAIN
                return S3Error(
                    no, f"cannot {action}: store busy or failing ({code}, HTTP {status})", where
                )
            return S3Error(errno.EPROTO, f"cannot {action}: {code} (HTTP {status})", where)
        if isinstance(exc, boto_exc.NoCredentialsError | boto_exc.PartialCredentialsError):
            return S3AccessError(
                errno.EACCES,
                f"cannot {action}: no credentials found (set AWS_ACCESS_KEY_ID and"
                " AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials; or mark the store"
                " anonymous if it is public)",
                where,
            )
        if isinstance(exc, boto_exc.ConnectTimeoutError | boto_exc.ReadTimeoutError):
            return S3Error(errno.ETIMEDOUT, f"cannot {action}: timed out ({exc})", where)
        if isinstance(exc, boto_exc.SSLError):
            return S3Error(errno.EPROTO, f"cannot {action}: TLS failed ({exc})", where)
        if isinstance(exc, boto_exc.EndpointConnectionError):
            return S3Error(errno.EAGAIN, f"cannot {action}: cannot connect ({exc})", where)
        if isinstance(
            exc, boto_exc.HTTPClientError | boto_exc.ConnectionError | boto_exc.IncompleteReadError
        ):
            return S3Error(errno.ECONNRESET, f"cannot {action}: connection lost ({exc})", where)
        return S3Error(errno.EPROTO, f"cannot {action}: {exc}", where)

    def _denied(self, code: str) -> str:
        if self.options.anonymous:
            return (
                f"access denied ({code}) to anonymous requests: the object is not public;"
                " give credentials and set anonymous to false, or ask for a public-read policy"
            )
        return (
            f"access denied ({code}): check the credentials boto3 finds (AWS_ACCESS_KEY_ID,"
            " AWS_PROFILE, ~/.aws/credentials), their rights in the bucket policy, and"
            " whether the store should be read anonymously"
        )


class _NoPolicyApi(Exception):
    """The store answers bucket-policy calls with 'not implemented'."""


def _worth_retrying(exc: BaseException) -> bool:
    # A replaced object stays replaced: asking again cannot help.
    return is_transient(exc) and getattr(exc, "errno", None) != errno.ESTALE


def _code(exc: boto_exc.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: boto_exc.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
