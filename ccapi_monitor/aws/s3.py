"""S3 store for reports and checkpoints, behind the same :class:`Store` interface as a folder.

A PUT is atomic in S3 (readers see the old object or the new one, never half), which gives
the same all-or-nothing write the local store gets from rename. Throttling, 5xx and
``SlowDown`` answers are retried by botocore (standard/adaptive mode, see
:mod:`ccapi_monitor.aws.clients`); what is still failing after the retries becomes a
:class:`StoreError` with one clean line, never a botocore traceback.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from ccapi_monitor.aws.clients import make_client
from ccapi_monitor.errors import InvalidInputError, StoreError
from ccapi_monitor.storage import Store
from ccapi_monitor.tracing import get_tracer

log = structlog.get_logger(__name__)

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden"})
#: A conditional PUT that lost: 412 (the condition no longer holds) or 409 (a concurrent write).
_LOST_RACE = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPES = {
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (prefix without slashes at the ends)."""
    if not uri.startswith("s3://"):
        raise InvalidInputError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise InvalidInputError(f"invalid S3 bucket name in {uri!r}")
    return bucket, prefix.strip("/")


def _error_text(exc: Exception) -> str:
    """One line naming the S3 error code and message, without request ids or tracebacks."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Unknown")
        message = err.get("Message") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return f"{code}: {message}".rstrip(": ")
    return str(exc)


class S3Store(Store):
    """Objects under ``s3://bucket/prefix``; encryption is the bucket default unless a KMS key is given."""

    def __init__(
        self, bucket: str, prefix: str = "", *, kms_key_id: str | None = None, client: Any = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.kms_key_id = kms_key_id
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client if client is not None else make_client("s3")

    @classmethod
    def from_uri(cls, uri: str, *, kms_key_id: str | None = None, client: Any = None) -> S3Store:
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, prefix, kms_key_id=kms_key_id, client=client)

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        if not key or any(part in ("..", ".") for part in key.split("/")):
            raise ValueError(f"invalid store key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def read_bytes(self, key: str) -> bytes | None:
        return self.read_versioned(key)[0]

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """The object and its ETag; ``(None, None)`` when it does not exist."""
        full = self._key(key)
        with get_tracer().call("S3", operation="GetObject"):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=full)
                data: bytes = response["Body"].read()
                return data, str(response.get("ETag") or "") or None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in _NOT_FOUND:
                    return None, None
                if code in _DENIED and not self._listed(full, exc):
                    # S3 answers 403 for a missing key unless s3:ListBucket applies to the request,
                    # and a ListBucket limited by s3:prefix never applies to a GetObject.
                    log.info("s3_missing_key_denied", uri=f"s3://{self.bucket}/{full}")
                    return None, None
                raise StoreError(f"cannot read s3://{self.bucket}/{full}: {_error_text(exc)}") from None
            except BotoCoreError as exc:
                raise StoreError(f"cannot read s3://{self.bucket}/{full}: {_error_text(exc)}") from None

    def _listed(self, full: str, denied: ClientError) -> bool:
        """Whether ``full`` exists, by listing exactly that key (allowed by the role's prefix condition)."""
        try:
            response = self._client.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(
                f"cannot read s3://{self.bucket}/{full}: {_error_text(denied)}, "
                f"and cannot list it to tell a missing key from a denied one: {_error_text(exc)}"
            ) from None
        return any(obj["Key"] == full for obj in response.get("Contents", []))

    def write_if(self, key: str, data: bytes, content_type: str, *, expected: str | None) -> bool:
        """S3 conditional write: ``If-Match: expected`` or, for a new object, ``If-None-Match: *``."""
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        return self._put(self._key(key), data, content_type, condition)

    def write_bytes(self, key: str, data: bytes, content_type: str = _DEFAULT_CONTENT_TYPE) -> str:
        full = self._key(key)
        if content_type == _DEFAULT_CONTENT_TYPE:
            content_type = guess_content_type(full)
        self._put(full, data, content_type, {})
        log.debug("s3_put", uri=f"s3://{self.bucket}/{full}", bytes=len(data))
        return f"s3://{self.bucket}/{full}"

    def _put(self, full: str, data: bytes, content_type: str, condition: dict[str, str]) -> bool:
        """One PutObject (KMS when configured); False only when a condition lost a race (412/409)."""
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id} if self.kms_key_id else {}
        with get_tracer().call("S3", operation="PutObject"):
            try:
                self._client.put_object(
                    Bucket=self.bucket, Key=full, Body=data, ContentType=content_type, **condition, **extra
                )
            except ClientError as exc:
                if condition and exc.response.get("Error", {}).get("Code") in _LOST_RACE:
                    log.info("s3_conditional_write_lost", uri=f"s3://{self.bucket}/{full}")
                    return False
                raise StoreError(f"cannot write s3://{self.bucket}/{full}: {_error_text(exc)}") from None
            except BotoCoreError as exc:
                raise StoreError(f"cannot write s3://{self.bucket}/{full}: {_error_text(exc)}") from None
        return True

    def delete(self, key: str) -> None:
        full = self._key(key)
        with get_tracer().call("S3", operation="DeleteObject"):
            try:
                self._client.delete_object(Bucket=self.bucket, Key=full)
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"cannot delete s3://{self.bucket}/{full}: {_error_text(exc)}") from None

    def list_keys(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        with get_tracer().call("S3", operation="ListObjectsV2"):
            try:
                pages = self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=root + prefix.lstrip("/")
                )
                for page in pages:
                    keys.extend(obj["Key"][len(root) :] for obj in page.get("Contents", []))
            except (ClientError, BotoCoreError) as exc:
                where = f"s3://{self.bucket}/{root}{prefix}"
                raise StoreError(f"cannot list {where}: {_error_text(exc)}") from None
        return sorted(keys)


def guess_content_type(key: str) -> str:
    """Content type by extension, so browsers open ``report.html`` instead of downloading it."""
    for suffix, content_type in _CONTENT_TYPES.items():
        if key.endswith(suffix):
            return content_type
    guessed, _ = mimetypes.guess_type(key)
    return guessed or _DEFAULT_CONTENT_TYPE
