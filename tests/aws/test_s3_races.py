"""S3 behaviour offline tests cannot get from moto alone: 403 for a missing key, and racing pointer writes.

moto enforces no IAM, so the 403 that S3 gives a role whose ``s3:ListBucket`` carries an
``s3:prefix`` condition is injected at the HTTP layer (:class:`BotocoreFaults`), exactly as
S3 sends it; everything else is the moto server. moto 5.2 implements ``If-Match`` and
``If-None-Match`` on PutObject (412 PreconditionFailed), so the conditional writes are real.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccapi_monitor.aws.clients import make_client
from ccapi_monitor.aws.s3 import S3Store
from ccapi_monitor.errors import StoreError
from ccapi_monitor.reports.json_report import move_latest_pointer
from ccapi_monitor.reports.layout import LATEST_KEY
from tests.aws.conftest import MotoServer
from tests.aws.faults import BotocoreFaults


def _store(bucket: str, client: Any = None) -> S3Store:
    return S3Store.from_uri(f"s3://{bucket}/reports", client=client)


def test_denied_read_of_a_missing_key_is_not_there(bucket: str) -> None:
    client = make_client("s3")
    faults = BotocoreFaults(status=403, failures=None, operation="GetObject").install(client)
    assert _store(bucket, client).read_bytes(LATEST_KEY) is None  # first run: no previous week
    assert faults.injected >= 1


def test_denied_read_of_an_existing_key_is_a_permission_error(bucket: str) -> None:
    _store(bucket).write_bytes(LATEST_KEY, b"{}", "application/json")
    client = make_client("s3")
    BotocoreFaults(status=403, failures=None, operation="GetObject").install(client)
    with pytest.raises(StoreError, match=r"cannot read s3://.*/reports/weekly/latest.json: AccessDenied"):
        _store(bucket, client).read_bytes(LATEST_KEY)


def test_denied_read_and_denied_list_name_both(bucket: str) -> None:
    client = make_client("s3")
    BotocoreFaults(status=403, failures=None, operation="GetObject").install(client)
    BotocoreFaults(status=403, failures=None, operation="ListObjectsV2").install(client)
    with pytest.raises(StoreError, match=r"AccessDenied.*cannot list it to tell a missing key"):
        _store(bucket, client).read_bytes(LATEST_KEY)


def test_conditional_writes_against_moto(bucket: str) -> None:
    store = _store(bucket)
    assert store.write_if("weekly/latest.json", b"1", "application/json", expected=None)
    assert not store.write_if("weekly/latest.json", b"2", "application/json", expected=None), (
        "If-None-Match: *"
    )
    data, etag = store.read_versioned("weekly/latest.json")
    assert data == b"1"
    assert etag
    assert store.write_if("weekly/latest.json", b"3", "application/json", expected=etag)
    assert not store.write_if("weekly/latest.json", b"4", "application/json", expected=etag), "stale If-Match"
    assert store.read_bytes("weekly/latest.json") == b"3"


def _pointer(run_date: str, run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "run_date": run_date,
        "status": "succeeded",
        "report": f"weekly/{run_date}/{run_id}/report.json",
    }


class _Interloper:
    """Another run's pointer write, landing between our read and our conditional write."""

    def __init__(self, store: S3Store, pointer: dict[str, Any]) -> None:
        self.store, self.pointer, self.fired = store, pointer, False

    def __call__(self, **_kwargs: Any) -> None:
        if not self.fired:
            self.fired = True
            self.store.write_bytes(LATEST_KEY, json.dumps(self.pointer).encode(), "application/json")


def _racing_store(
    bucket: str, moto_server: MotoServer, interloper_pointer: dict[str, Any]
) -> tuple[S3Store, _Interloper]:
    client = make_client("s3")
    interloper = _Interloper(_store(bucket), interloper_pointer)
    client.meta.events.register("before-call.s3.PutObject", interloper)
    return _store(bucket, client), interloper


def test_a_newer_week_written_meanwhile_is_kept(bucket: str, moto_server: MotoServer) -> None:
    _store(bucket).write_bytes(
        LATEST_KEY, json.dumps(_pointer("2026-11-16", "w47")).encode(), "application/json"
    )
    ours, interloper = _racing_store(bucket, moto_server, _pointer("2026-11-30", "w49-manual"))

    moved = move_latest_pointer(ours, _pointer("2026-11-23", "w48-scheduled"))

    assert interloper.fired
    assert moved is False, "our older week must not overwrite the newer pointer"
    assert json.loads(_store(bucket).read_bytes(LATEST_KEY) or b"")["run_id"] == "w49-manual"


def test_an_older_week_written_meanwhile_is_superseded(bucket: str, moto_server: MotoServer) -> None:
    ours, interloper = _racing_store(bucket, moto_server, _pointer("2026-11-16", "w47-backfill"))

    assert move_latest_pointer(ours, _pointer("2026-11-23", "w48"))

    assert interloper.fired
    latest = json.loads(_store(bucket).read_bytes(LATEST_KEY) or b"")
    assert latest["run_id"] == "w48"
    assert latest["previous"]["run_id"] == "w47-backfill", "the race winner becomes our previous week"


def test_a_pointer_that_never_settles_is_a_store_error(bucket: str, moto_server: MotoServer) -> None:
    client = make_client("s3")
    other = _store(bucket)
    dates = iter(f"2026-12-{day:02d}" for day in range(1, 30))

    def always_first(**_kwargs: Any) -> None:
        other.write_bytes(LATEST_KEY, json.dumps(_pointer(next(dates), "x")).encode(), "application/json")

    client.meta.events.register("before-call.s3.PutObject", always_first)
    with pytest.raises(StoreError, match="kept changing"):
        move_latest_pointer(_store(bucket, client), _pointer("2027-01-04", "late"))
