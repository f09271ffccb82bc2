"""The Overpass source against a local server (127.0.0.1) serving recorded-format answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely

from ccapi_monitor.errors import InfrastructureError, InvalidInputError, StoreError
from ccapi_monitor.infrastructure import overpass
from ccapi_monitor.infrastructure.measure import search_area
from ccapi_monitor.infrastructure.overpass import OverpassSource, build_query, data_age_days, parse_answer
from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.regions import Region
from ccapi_monitor.storage import LocalStore
from tests.infrastructure.conftest import OverpassStub, Reply
from tests.infrastructure.osmdata import ACROSS, OsmData, region

TIMEOUT_REMARK = 'runtime error: Query timed out in "query" at line 3 after 181 seconds.'

MakeSource = Callable[..., OverpassSource]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_source(cache: LocalStore, sleeps: list[float]) -> MakeSource:
    def make(*endpoints: str, **options: Any) -> OverpassSource:
        options.setdefault("max_attempts", 3)
        options.setdefault("timeout_s", 20)
        return OverpassSource(cache, list(endpoints), sleep=sleeps.append, **options)

    return make


def answer_for(scenario: OsmData, reg: Region) -> dict[str, Any]:
    return scenario.overpass_answer(search_area(reg, 25.0).bounds)


def cached_keys(cache: LocalStore) -> list[str]:
    return cache.list_keys("osm/overpass/")


def test_success_measures_the_answer_and_caches_it(
    overpass_server: OverpassStub, make_source: MakeSource, cache: LocalStore, scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.queue(Reply(body=answer_for(scenario, across)))

    result = make_source(overpass_server.url).fetch(across)

    assert result.source == "overpass"
    assert result.status == "ok"
    assert result.confidence == "high"
    assert result.features is not None
    assert result.nearest_km is not None
    assert result.features["major_roads_km"] > 70  # motorway clipped to ~72 km plus a 1.1 km link
    assert result.features["airports"] == 2  # a node and a multipolygon relation
    assert result.features["ports"] == 2  # port area with its terminal, and a harbour
    assert result.nearest_km["motorway"] == 0.0
    assert result.score is not None
    assert 0 < result.score <= 100
    assert len(overpass_server.requests) == 1
    [key] = cached_keys(cache)
    assert key.startswith("osm/overpass/across-25km-")
    assert key.endswith(".json")


def test_request_is_one_polite_query_with_geometry(
    overpass_server: OverpassStub, make_source: MakeSource, scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.queue(Reply(body=answer_for(scenario, across)))

    make_source(overpass_server.url).fetch(across)

    [request] = overpass_server.requests
    assert "ccapi-monitor" in request.headers["User-Agent"]
    assert request.query == build_query(search_area(across, 25.0).bounds, 20)
    for fragment in ("out geom;", "[timeout:20]", '"highway"="construction"', "ferry_terminal", "light_rail"):
        assert fragment in request.query
    bbox = request.query.split("out geom;")[0].split("](")[1].split(")")[0]
    south, west, north, east = map(float, bbox.split(","))
    assert shapely.box(west, south, east, north).contains(search_area(across, 25.0).polygon)
    assert request.query.count(f"]({bbox});") == 7


def test_remark_answer_is_an_error_and_is_not_cached(
    overpass_server: OverpassStub, make_source: MakeSource, cache: LocalStore
) -> None:
    overpass_server.default = Reply(body={"version": 0.6, "elements": [], "remark": TIMEOUT_REMARK})

    with pytest.raises(InfrastructureError, match="timed out"):
        make_source(overpass_server.url).fetch(region("across", *ACROSS))

    assert len(overpass_server.requests) == 3  # every attempt, never an empty success
    assert cached_keys(cache) == []


def test_rate_limited_then_success_is_retried_after_the_servers_delay(
    overpass_server: OverpassStub, make_source: MakeSource, sleeps: list[float], scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.queue(
        Reply(429, b"rate_limited", headers={"Retry-After": "2"}), Reply(body=answer_for(scenario, across))
    )
    source = make_source(overpass_server.url)

    result = source.fetch(across)

    assert result.status == "ok"
    assert source.retries == 1
    assert len(overpass_server.requests) == 2
    assert sleeps == [2.0]


def test_gateway_timeout_backs_off_exponentially(
    overpass_server: OverpassStub, make_source: MakeSource, sleeps: list[float], scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.queue(Reply(504), Reply(504), Reply(body=answer_for(scenario, across)))
    source = make_source(overpass_server.url, backoff_s=4.0)

    assert source.fetch(across).status == "ok"
    assert source.retries == 2
    first, second = sleeps
    assert 2.0 <= first <= 4.0
    assert 4.0 <= second <= 8.0


def test_bad_request_is_not_retried(overpass_server: OverpassStub, make_source: MakeSource) -> None:
    overpass_server.queue(Reply(400, b"<p>Error: line 1: parse error</p>"))

    with pytest.raises(InfrastructureError, match="HTTP 400"):
        make_source(overpass_server.url).fetch(region("across", *ACROSS))

    assert len(overpass_server.requests) == 1


def test_non_json_answer_is_an_error(overpass_server: OverpassStub, make_source: MakeSource) -> None:
    overpass_server.default = Reply(200, b"<html>The server is probably too busy</html>")

    with pytest.raises(InfrastructureError, match="not JSON"):
        make_source(overpass_server.url).fetch(region("across", *ACROSS))


def test_endpoints_are_rotated_when_one_is_down(
    overpass_server: OverpassStub, make_source: MakeSource, dead_endpoint: str, scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.queue(Reply(body=answer_for(scenario, across)))
    source = make_source(dead_endpoint, overpass_server.url)

    assert source.fetch(across).status == "ok"
    assert source.retries == 1
    assert len(overpass_server.requests) == 1


def test_server_down_without_cache_raises(
    make_source: MakeSource, dead_endpoint: str, cache: LocalStore
) -> None:
    with pytest.raises(InfrastructureError, match="3 attempts"):
        make_source(dead_endpoint).fetch(region("across", *ACROSS))

    assert cached_keys(cache) == []


def _age_cache_entry(cache: LocalStore, days: float) -> None:
    [key] = cached_keys(cache)
    document = json.loads(cache.read_bytes(key) or b"")
    document["fetched_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    cache.write_bytes(key, json.dumps(document).encode())


def test_server_down_with_expired_cache_serves_it_marked_stale(
    overpass_server: OverpassStub,
    make_source: MakeSource,
    dead_endpoint: str,
    cache: LocalStore,
    scenario: OsmData,
) -> None:
    across = region("across", *ACROSS)
    overpass_server.queue(Reply(body=answer_for(scenario, across)))
    fresh = make_source(overpass_server.url).fetch(across)
    _age_cache_entry(cache, days=30)

    stale = make_source(dead_endpoint).fetch(across)

    assert stale.status == "stale"
    assert stale.confidence == "medium"
    assert stale.features == fresh.features
    assert stale.nearest_km == fresh.nearest_km
    assert stale.fetched_at is not None
    assert stale.fetched_at < (fresh.fetched_at or "")


def test_cache_is_reused_within_ttl_and_refreshed_after(
    overpass_server: OverpassStub, make_source: MakeSource, cache: LocalStore, scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.default = Reply(body=answer_for(scenario, across))
    source = make_source(overpass_server.url)

    first = source.fetch(across)
    _age_cache_entry(cache, days=6.9)
    second = source.fetch(across)
    assert len(overpass_server.requests) == 1
    assert second.status == "ok"
    assert second.features == first.features

    _age_cache_entry(cache, days=7.1)
    third = source.fetch(across)
    assert len(overpass_server.requests) == 2
    assert third.status == "ok"


def test_unreadable_cache_entry_is_refetched(
    overpass_server: OverpassStub, make_source: MakeSource, cache: LocalStore, scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.default = Reply(body=answer_for(scenario, across))
    source = make_source(overpass_server.url)
    source.fetch(across)
    [key] = cached_keys(cache)
    cache.write_bytes(key, b"{not json")

    assert source.fetch(across).status == "ok"
    assert len(overpass_server.requests) == 2


def test_at_most_two_requests_in_flight_across_instances(
    overpass_server: OverpassStub, make_source: MakeSource, scenario: OsmData
) -> None:
    overpass_server.default = Reply(body=answer_for(scenario, region("across", *ACROSS)), delay_s=0.25)
    sources = [make_source(overpass_server.url), make_source(overpass_server.url)]
    regions = [region(f"r{i}", 106.9 + 0.01 * i, -6.3, 107.1, -6.1) for i in range(6)]
    start = threading.Barrier(len(regions))

    def fetch(i: int) -> InfrastructureResult:
        start.wait()
        return sources[i % 2].fetch(regions[i])

    with ThreadPoolExecutor(len(regions)) as pool:
        results = list(pool.map(fetch, range(len(regions))))

    assert all(r.status == "ok" for r in results)
    assert len(overpass_server.requests) == len(regions)
    assert overpass_server.max_in_flight == overpass.MAX_IN_FLIGHT == 2


@pytest.mark.parametrize(
    ("endpoints", "options"),
    [([], {}), (["http://127.0.0.1:1/api/interpreter"], {"max_in_flight": 3})],
)
def test_invalid_configuration_is_invalid_input(
    cache: LocalStore, endpoints: list[str], options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        OverpassSource(cache, endpoints, **options)


def test_preflight_reports_malformed_endpoints(cache: LocalStore) -> None:
    good = OverpassSource(cache, ["https://overpass-api.de/api/interpreter"])
    bad = OverpassSource(cache, ["overpass-api.de/api/interpreter"])

    assert good.preflight() == []
    assert len(bad.preflight()) == 1


def test_parse_answer_skips_unlocated_nodes_and_rejects_malformed_elements() -> None:
    way = {
        "type": "way",
        "id": 5,
        "tags": {"highway": "trunk"},
        "geometry": [{"lat": -6.2, "lon": 106.9}, None, {"lat": -6.2, "lon": 107.0}],
    }

    [feature] = parse_answer({"elements": [way]})

    assert list(feature.geometry.coords) == [(106.9, -6.2), (107.0, -6.2)]
    with pytest.raises(InfrastructureError, match="malformed"):
        parse_answer({"elements": [{"type": "node", "tags": {"aeroway": "aerodrome"}}]})
    with pytest.raises(InfrastructureError, match="elements"):
        parse_answer({"remark": "runtime error: out of memory"})


def test_data_age_comes_from_the_osm_base_timestamp() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    assert data_age_days({"osm3s": {"timestamp_osm_base": "2026-11-25T12:00:00Z"}}, now) == pytest.approx(2.0)
    assert data_age_days({}, now) is None
    assert data_age_days({"osm3s": {"timestamp_osm_base": "yesterday"}}, now) is None


class _ReadOnlyStore(LocalStore):
    def write_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        raise StoreError(f"cannot write {key}: AccessDenied")


def test_a_cache_that_cannot_be_written_does_not_lose_the_answer(
    overpass_server: OverpassStub, tmp_path: Path, scenario: OsmData
) -> None:
    across = region("across", *ACROSS)
    overpass_server.queue(Reply(body=answer_for(scenario, across)))
    store = _ReadOnlyStore(tmp_path / "readonly")

    result = OverpassSource(store, [overpass_server.url]).fetch(across)

    assert result.status == "ok"
    assert store.list_keys() == []
