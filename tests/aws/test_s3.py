"""S3Store against a moto server: round trips, content types, encryption, retries, errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ccapi_monitor.aws.clients import make_client
from ccapi_monitor.aws.s3 import S3Store, guess_content_type, parse_s3_uri
from ccapi_monitor.errors import InvalidInputError, StoreError
from ccapi_monitor.store_factory import open_store
from tests.aws.conftest import MotoServer
from tests.aws.faults import BotocoreFaults


def test_round_trip_list_and_delete(bucket: str, moto_server: MotoServer) -> None:
    store = S3Store.from_uri(f"s3://{bucket}/reports/")
    uri = store.write_bytes("weekly/2026-11-23/r1/report.json", b'{"ok": true}', "application/json")
    store.write_bytes("weekly/latest.json", b"{}", "application/json")
    # An object beside the store's prefix must not leak into its listing.
    moto_server.client("s3").put_object(Bucket=bucket, Key="reports-old/x.json", Body=b"x")

    assert uri == f"s3://{bucket}/reports/weekly/2026-11-23/r1/report.json"
    assert store.url_for("weekly/latest.json") == f"s3://{bucket}/reports/weekly/latest.json"
    assert store.read_bytes("weekly/2026-11-23/r1/report.json") == b'{"ok": true}'
    assert store.list_keys() == ["weekly/2026-11-23/r1/report.json", "weekly/latest.json"]
    assert store.list_keys("weekly/2026") == ["weekly/2026-11-23/r1/report.json"]
    store.delete("weekly/latest.json")
    assert store.read_bytes("weekly/latest.json") is None
    assert store.exists("weekly/2026-11-23/r1/report.json")


def test_bucket_root_store_has_no_prefix(bucket: str) -> None:
    store = S3Store.from_uri(f"s3://{bucket}")
    store.write_bytes("a/b.json", b"1", "application/json")
    assert store.list_keys() == ["a/b.json"]
    assert store.url_for("a/b.json") == f"s3://{bucket}/a/b.json"


def test_missing_key_reads_as_none(bucket: str) -> None:
    assert S3Store.from_uri(f"s3://{bucket}/cache").read_bytes("checkpoints/nope.json") is None


@pytest.mark.parametrize(
    ("key", "given", "expected"),
    [
        ("report.json", "application/json", "application/json"),
        ("report.html", "text/html; charset=utf-8", "text/html; charset=utf-8"),
        ("changes.geojson", "application/octet-stream", "application/geo+json"),
        ("map.png", "application/octet-stream", "image/png"),
    ],
)
def test_content_type_is_stored(
    bucket: str, moto_server: MotoServer, key: str, given: str, expected: str
) -> None:
    S3Store.from_uri(f"s3://{bucket}/p").write_bytes(key, b"data", given)
    head = moto_server.client("s3").head_object(Bucket=bucket, Key=f"p/{key}")
    assert head["ContentType"] == expected


def test_kms_key_is_requested_on_every_put(bucket: str, moto_server: MotoServer) -> None:
    key_id = moto_server.client("kms").create_key(Description="ccapi reports")["KeyMetadata"]["KeyId"]
    S3Store.from_uri(f"s3://{bucket}/p", kms_key_id=key_id).write_bytes("r.json", b"{}", "application/json")
    head = moto_server.client("s3").head_object(Bucket=bucket, Key="p/r.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]


def test_without_kms_key_the_bucket_default_applies(bucket: str, moto_server: MotoServer) -> None:
    s3 = moto_server.client("s3")
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    S3Store.from_uri(f"s3://{bucket}/p").write_bytes("r.json", b"{}", "application/json")
    head = s3.head_object(Bucket=bucket, Key="p/r.json")
    assert head["ServerSideEncryption"] == "AES256"
    assert "SSEKMSKeyId" not in head


@pytest.mark.parametrize("status", [500, 503])
def test_transient_put_errors_are_retried(bucket: str, status: int) -> None:
    client = make_client("s3")
    faults = BotocoreFaults(status=status, failures=2).install(client)
    store = S3Store.from_uri(f"s3://{bucket}/p", client=client)

    store.write_bytes("weekly/latest.json", b'{"run_id": "r1"}', "application/json")

    assert faults.injected == 2
    assert faults.attempts == 3  # two injected failures, then the real PUT
    assert store.read_bytes("weekly/latest.json") == b'{"run_id": "r1"}'


def test_exhausted_retries_raise_store_error(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    client = make_client("s3")
    faults = BotocoreFaults(status=503, failures=None).install(client)
    store = S3Store.from_uri(f"s3://{bucket}/p", client=client)

    with pytest.raises(StoreError, match=r"cannot write s3://.*/p/weekly/latest.json: SlowDown"):
        store.write_bytes("weekly/latest.json", b"{}", "application/json")

    assert faults.attempts == 3
    assert store.read_bytes("weekly/latest.json") is None


def test_missing_bucket_is_a_clean_store_error(moto_server: MotoServer) -> None:
    store = S3Store.from_uri("s3://no-such-bucket-here/p")
    with pytest.raises(StoreError, match="NoSuchBucket") as excinfo:
        store.write_bytes("x.json", b"{}", "application/json")
    assert "Traceback" not in str(excinfo.value)
    with pytest.raises(StoreError, match="NoSuchBucket"):
        store.read_bytes("x.json")
    with pytest.raises(StoreError, match="NoSuchBucket"):
        store.list_keys()


def test_open_store_passes_the_kms_key(bucket: str) -> None:
    store = open_store(f"s3://{bucket}/cache", kms_key_id="alias/ccapi")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.kms_key_id) == (bucket, "cache", "alias/ccapi")


@pytest.mark.parametrize("uri", ["s3://", "s3://UPPER/x", "s3://a/x", "gs://bucket/x"])
def test_bad_uris_are_invalid_input(uri: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_s3_uri(uri)


def test_keys_cannot_escape_the_prefix(bucket: str) -> None:
    store = S3Store.from_uri(f"s3://{bucket}/reports")
    with pytest.raises(ValueError, match="invalid store key"):
        store.write_bytes("../cache/x.json", b"{}")


def test_guess_content_type_defaults_to_octet_stream() -> None:
    assert guess_content_type("checkpoint.unknownext") == "application/octet-stream"


def test_retry_mode_and_attempts_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    retries = make_client("s3").meta.config.retries
    assert (retries["mode"], retries["total_max_attempts"]) == ("adaptive", 7)
    monkeypatch.delenv("AWS_RETRY_MODE")
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    retries = make_client("s3").meta.config.retries
    assert (retries["mode"], retries["total_max_attempts"]) == ("standard", 5)


def test_one_store_is_safe_to_share_between_region_threads(bucket: str) -> None:
    """The runner checkpoints regions from a thread pool through one store (one boto3 client)."""
    store = S3Store.from_uri(f"s3://{bucket}/cache")
    keys = [f"checkpoints/2026-11-23/region_{i:02d}.json" for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: store.write_bytes(key, key.encode(), "application/json"), keys))
        bodies = list(pool.map(store.read_bytes, keys))
    assert bodies == [key.encode() for key in keys]
    assert store.list_keys("checkpoints/") == sorted(keys)
