"""Open the store for a URI: a local folder or ``s3://bucket/prefix``.

Lives apart from :mod:`ccapi_monitor.storage` (the interface) and
:mod:`ccapi_monitor.aws.s3` (which implements it), so neither imports the other's user.
"""

from __future__ import annotations

from ccapi_monitor.storage import LocalStore, Store


def open_store(uri: str, *, kms_key_id: str | None = None) -> Store:
    """A store for ``s3://bucket/prefix`` or a local folder path."""
    if uri.startswith("s3://"):
        from ccapi_monitor.aws.s3 import S3Store  # boto3 only when S3 is used

        return S3Store.from_uri(uri, kms_key_id=kms_key_id)
    return LocalStore(uri)
