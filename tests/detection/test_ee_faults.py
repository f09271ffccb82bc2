"""Faults through the client's real HTTP stack: earthengine-api, googleapiclient, google-auth
and requests talking to a fake Earth Engine on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import ee
import pytest

from ccapi_monitor.detection.earthengine import (
    TILE_SCALES,
    EarthEngineBackend,
    build_region_graph,
    compute_value,
)
from ccapi_monitor.detection.ee_quota import AdaptiveLimiter, RetryPolicy
from ccapi_monitor.errors import AbortedError, CredentialsError, DetectionError, ExitCode, PreflightError
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region, load_regions
from tests.detection.ee_support import (
    FakeEarthEngine,
    Reply,
    default_answer,
    ee_error,
    service_account_key,
    slow_answer,
    stats_value,
)

RUN_DATE = date(2026, 11, 23)
POLICY = RetryPolicy(max_attempts=5, base_delay_s=0.002, max_delay_s=0.01)
TOO_MANY = ee_error(429, "Too many concurrent aggregations.", "RESOURCE_EXHAUSTED")
UNAVAILABLE = ee_error(503, "The service is currently unavailable.", "UNAVAILABLE")
INVALID_GRANT: Reply = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})

BackendFactory = Callable[..., EarthEngineBackend]


@pytest.fixture
def backend_for(fake_ee: FakeEarthEngine) -> BackendFactory:
    def make(params: DetectionParams | None = None, **kwargs: Any) -> EarthEngineBackend:
        options: dict[str, Any] = {
            "project": "ccapi-test",
            "key_json": json.dumps(service_account_key(fake_ee.url + "/token")),
            "key_file": None,
            "deadline_s": 2.0,
            "url": fake_ee.url,
            "limiter": AdaptiveLimiter(4),
            "retry_policy": POLICY,
        }
        options.update(kwargs)
        return EarthEngineBackend(params or DetectionParams(), **options)

    return make


@pytest.fixture(scope="module")
def region() -> Region:
    return load_regions()[0]


def tile_scales(fake_ee: FakeEarthEngine) -> list[int]:
    return [
        int(m) for body in fake_ee.bodies for m in re.findall(r'"tileScale": \{"constantValue": (\d+)', body)
    ]


def test_happy_path_two_requests_same_shape(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    backend = backend_for(DetectionParams(max_polygons=2))
    backend.prepare([region], RUN_DATE)
    result = backend.detect(region, RUN_DATE)
    assert fake_ee.hits["compute"] == 2
    assert result.status == "ok"
    assert result.source == "earthengine"
    assert result.area_ha == {"vegetation_clearing": 12.5, "built_up": 3.25}
    assert result.observed_fraction == pytest.approx(815.75 / 915.75)
    assert result.scenes == {"baseline": 70, "persistence": 12, "current": 6}
    assert [p.area_ha for p in result.polygons] == [1.5, 1.0]  # largest first, capped at max_polygons
    assert result.polygon_count == 5
    assert result.details["requests"]["statistics"]["attempts"] == 1
    assert backend.preflight() == []


def test_insufficient_observations_reports_no_area(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    def cloudy(body: str) -> Reply:
        if '"scenes"' in body:
            return 200, {"result": stats_value(unobserved_ha=900.0, none_ha=100.0)}
        return default_answer(body)

    fake_ee.compute = cloudy
    result = backend_for().detect(region, RUN_DATE)
    assert result.status == "insufficient_observations"
    assert result.area_ha is None
    assert result.polygons == []
    assert result.observed_fraction == pytest.approx(115.75 / 1015.75)


def test_429_storm_recovers_and_counts(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    fake_ee.script([TOO_MANY] * 4)
    backend = backend_for()
    result = backend.detect(region, RUN_DATE)
    assert result.status == "ok"
    requests = result.details["requests"]
    retried = requests["statistics"]["retries"].get("quota", 0) + requests["polygons"]["retries"].get(
        "quota", 0
    )
    assert retried == 4
    assert fake_ee.hits["compute"] == 6
    assert backend.limiter.counters["throttled"] == 4
    assert backend.limiter.min_window_seen < 4


def test_endless_429_fails_region_with_message_bounded(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    fake_ee.compute = lambda body: TOO_MANY
    with pytest.raises(DetectionError, match=r"after 5 attempts: Too many concurrent aggregations\.") as info:
        backend_for().detect(region, RUN_DATE)
    assert info.value.exit_code == ExitCode.FAILED
    assert fake_ee.hits["compute"] <= 2 * POLICY.max_attempts


def test_503_is_retried(fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region) -> None:
    fake_ee.script([UNAVAILABLE, UNAVAILABLE])
    backend = backend_for()
    result = backend.detect(region, RUN_DATE)
    assert result.status == "ok"
    assert fake_ee.hits["compute"] == 4
    assert backend.limiter.counters["transient"] == 2
    assert backend.limiter.counters["throttled"] == 0  # a 503 is not a quota signal


@pytest.mark.parametrize("message", ["Computation timed out.", "User memory limit exceeded."])
def test_heavy_errors_retry_once_with_larger_tile_scale(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region, message: str
) -> None:
    fake_ee.script([ee_error(400, message)])
    result = backend_for(limiter=AdaptiveLimiter(1)).detect(region, RUN_DATE)
    assert result.status == "ok"
    assert sorted(tile_scales(fake_ee)) == sorted([TILE_SCALES[0], TILE_SCALES[0], TILE_SCALES[1]])

    fake_ee.compute = lambda body: ee_error(400, message)
    with pytest.raises(DetectionError, match=re.escape(f"after 2 attempts: {message}")):
        backend_for().detect(region, RUN_DATE)


def test_deadline_exceeded_is_bounded(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    fake_ee.compute = slow_answer(1.5)
    backend = backend_for(deadline_s=0.3)
    backend.prepare([region], RUN_DATE)
    with pytest.raises(DetectionError, match=r"after 2 attempts: .*[Tt]imed? ?out") as info:
        backend.detect(region, RUN_DATE)
    assert "0 changes" not in str(info.value)
    assert backend.limiter.counters["deadline"] <= 4  # two requests, one retry each
    assert fake_ee.hits["compute"] <= 4


def test_deadline_once_then_success(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    slow = slow_answer(1.5)
    calls = []
    lock = threading.Lock()

    def first_slow(body: str) -> Reply:
        with lock:
            calls.append(body)
            first = len(calls) == 1
        return slow(body) if first else default_answer(body)

    fake_ee.compute = first_slow
    backend = backend_for(deadline_s=0.5, limiter=AdaptiveLimiter(1))
    result = backend.detect(region, RUN_DATE)
    assert result.status == "ok"
    assert backend.limiter.counters["deadline"] == 1


def test_fatal_server_error_is_not_retried(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    fake_ee.compute = lambda body: ee_error(400, "ImageCollection.load: ImageCollection asset 'X' not found.")
    with pytest.raises(DetectionError, match=r"after 1 attempt: ImageCollection\.load"):
        backend_for().detect(region, RUN_DATE)
    assert fake_ee.hits["compute"] <= 2


def test_credentials_refused_at_prepare_exit_4(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    fake_ee.token_reply = INVALID_GRANT
    backend = backend_for()
    with pytest.raises(CredentialsError) as info:
        backend.prepare([region], RUN_DATE)
    message = str(info.value)
    assert info.value.exit_code == ExitCode.PREFLIGHT_FAILED
    assert "GEE_SERVICE_ACCOUNT_KEY" in message
    assert "--imagery demo" in message
    assert "PRIVATE KEY" not in message
    problems = backend.preflight()
    assert len(problems) == 1
    assert "GEE_SERVICE_ACCOUNT_KEY" in problems[0]


def test_credentials_expiring_mid_run_stop_every_region(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    backend = backend_for()
    backend.prepare([region], RUN_DATE)
    # The key was revoked: the server rejects the cached token and the refresh fails.
    fake_ee.token_reply = INVALID_GRANT
    fake_ee.compute = lambda body: ee_error(
        401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
    )
    with pytest.raises(CredentialsError, match="GEE_SERVICE_ACCOUNT_KEY") as info:
        backend.detect(region, RUN_DATE)
    assert info.value.exit_code == ExitCode.PREFLIGHT_FAILED
    sent = fake_ee.hits["compute"]
    with pytest.raises(CredentialsError):
        backend.detect(load_regions()[1], RUN_DATE)
    assert fake_ee.hits["compute"] == sent  # later regions fail fast without a request


def test_missing_and_malformed_credentials(
    backend_for: BackendFactory, tmp_path: Path, region: Region
) -> None:
    with pytest.raises(
        CredentialsError, match=r"GEE_SERVICE_ACCOUNT_KEY .*GEE_SERVICE_ACCOUNT_KEY_FILE.*GEE_PROJECT"
    ):
        backend_for(key_json=None).prepare([region], RUN_DATE)
    secret = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----MIIsecret'
    with pytest.raises(CredentialsError) as info:
        backend_for(key_json=secret).prepare([region], RUN_DATE)
    assert "MIIsecret" not in str(info.value)
    assert "not valid JSON" in str(info.value)
    with pytest.raises(CredentialsError, match="GEE_SERVICE_ACCOUNT_KEY_FILE names"):
        backend_for(key_json=None, key_file=tmp_path / "missing.json").prepare([region], RUN_DATE)
    bad_key = {"type": "service_account", "client_email": "a@b", "private_key": "not a key", "token_uri": "x"}
    with pytest.raises(CredentialsError, match="private key that cannot be loaded") as info:
        backend_for(key_json=json.dumps(bad_key)).prepare([region], RUN_DATE)
    assert "not a key" not in str(info.value)


def test_key_file_and_project_from_key(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, tmp_path: Path, region: Region
) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(service_account_key(fake_ee.url + "/token", project="from-key")))
    backend = backend_for(key_json=None, key_file=key_file, project=None)
    assert backend.preflight() == []
    assert fake_ee.compute_paths
    assert all("/projects/from-key/value:compute" in path for path in fake_ee.compute_paths), (
        fake_ee.compute_paths
    )


def test_limiter_caps_in_flight_requests_across_regions(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory
) -> None:
    fake_ee.compute = slow_answer(0.05)
    backend = backend_for(limiter=AdaptiveLimiter(3))
    regions = load_regions()[:6]
    backend.prepare(regions, RUN_DATE)
    results: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda r=r: results.__setitem__(r.name, backend.detect(r, RUN_DATE).status))
        for r in regions
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {r.name: "ok" for r in regions}
    assert fake_ee.peak_in_flight <= 3
    assert fake_ee.hits["compute"] == 12


def test_requests_go_through_public_compute_value(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend sends exactly what ``ee.data.computeValue`` sends, through that public call."""
    backend = backend_for()
    backend.prepare([region], RUN_DATE)
    sent: list[Any] = []
    public = ee.data.computeValue

    def spy(expression: Any) -> Any:
        sent.append(expression)
        return public(expression)

    monkeypatch.setattr(ee.data, "computeValue", spy)
    graph = build_region_graph(region, RUN_DATE, DetectionParams())
    compute_value(graph.stats)
    assert backend.detect(region, RUN_DATE).status == "ok"
    assert len(sent) == 3  # the direct call, then the region's statistics and polygons
    assert fake_ee.bodies[0] in fake_ee.bodies[1:]  # the region's statistics request, byte for byte


def test_start_up_retries_transient_failures(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    fake_ee.discovery_failures = 2
    backend = backend_for()
    backend.prepare([region], RUN_DATE)
    assert backend.limiter.counters["transient"] == 2
    assert backend.detect(region, RUN_DATE).status == "ok"


def test_unreachable_endpoint_is_a_preflight_failure(backend_for: BackendFactory, region: Region) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = backend_for(url=f"http://127.0.0.1:{port}")
    with pytest.raises(PreflightError, match=r"not usable: .*after 5 attempts") as info:
        backend.prepare([region], RUN_DATE)
    assert info.value.exit_code == ExitCode.PREFLIGHT_FAILED
    assert not isinstance(info.value, CredentialsError)


def test_cancel_stops_a_region_between_attempts(
    fake_ee: FakeEarthEngine, backend_for: BackendFactory, region: Region
) -> None:
    backend = backend_for(retry_policy=RetryPolicy(base_delay_s=30.0, max_delay_s=30.0))
    backend.prepare([region], RUN_DATE)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(AbortedError):
        backend.detect(region, RUN_DATE, cancel)
    assert fake_ee.hits["compute"] == 0

    cancel.clear()
    fake_ee.compute = lambda body: UNAVAILABLE  # every attempt fails, then a 30 s backoff
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(AbortedError):
        backend.detect(region, RUN_DATE, cancel)
    assert fake_ee.hits["compute"] <= 2
