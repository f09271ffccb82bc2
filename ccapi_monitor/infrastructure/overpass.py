"""Infrastructure from the Overpass API: one query per region, cached, fair to the servers.

Fair use (https://wiki.openstreetmap.org/wiki/Overpass_API#Public_Overpass_API_instances):
at most :data:`MAX_IN_FLIGHT` requests in flight per process (a module-level semaphore
shared by every instance), a server-side ``[timeout:]`` plus a client timeout, backoff
on 429/5xx honouring ``Retry-After``, and rotation through the endpoint list.

An answer carrying a ``remark`` (the server's way of saying "query timed out" or
"out of memory" inside an HTTP 200) is an error, never an empty success, and is never
cached: the system this replaces stored a timed-out road query as "no roads" for a week.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any
from urllib.parse import urlparse

import requests
import structlog

from ccapi_monitor.errors import InfrastructureError, InvalidInputError, StoreError
from ccapi_monitor.infrastructure.base import InfrastructureSource, MapLine, map_lines
from ccapi_monitor.infrastructure.features import (
    AREA_RELATION_TYPES,
    Coord,
    OsmFeature,
    assemble_rings,
    node_feature,
    relation_feature,
    way_feature,
)
from ccapi_monitor.infrastructure.measure import build_result, search_area
from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.regions import Region
from ccapi_monitor.storage import Store
from ccapi_monitor.tracing import get_tracer

log = structlog.get_logger(__name__)

#: Requests in flight to Overpass from this process, whatever the number of sources.
MAX_IN_FLIGHT = 2
_IN_FLIGHT = threading.BoundedSemaphore(MAX_IN_FLIGHT)
#: HTTP statuses worth another try (rate limited, gateway timeout, server trouble).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 120.0
CACHE_FORMAT = 1


def _user_agent() -> str:
    try:
        version = metadata.version("ccapi-monitor")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"ccapi-monitor/{version} (weekly Java land-change monitor; python-requests)"


USER_AGENT = _user_agent()


def _round_out(value: float, up: bool) -> float:
    """Rounded outwards to 1e-5 deg (~1 m): a stable query text (and cache key) that still
    covers the whole search area."""
    return (math.ceil if up else math.floor)(value * 1e5) / 1e5


def build_query(bounds: tuple[float, float, float, float], timeout_s: float) -> str:
    """The one Overpass QL query for a search area's (west, south, east, north) bounds.

    The tag rules mirror :func:`ccapi_monitor.infrastructure.features.classify`, which
    makes the final decision. Each statement carries the bbox filter (rather than the
    global ``[bbox:]`` setting) so that ``out geom`` returns whole, unclipped geometries.
    """
    west, south, east, north = bounds
    bbox = ",".join(
        f"{_round_out(v, up):.5f}" for v, up in ((south, False), (west, False), (north, True), (east, True))
    )
    roads = "motorway|trunk|primary|secondary"
    return "\n".join(
        [
            f"[out:json][timeout:{int(timeout_s)}];",
            "(",
            f'  way["highway"~"^({roads})(_link)?$"]({bbox});',
            f'  way["highway"="construction"]["construction"~"^({roads})(_link)?$"]({bbox});',
            f'  way["railway"~"^(rail|light_rail|construction)$"]({bbox});',
            f'  nwr["aeroway"="aerodrome"]({bbox});',
            f'  nwr["landuse"="port"]({bbox});',
            f'  nwr["harbour"="yes"]({bbox});',
            f'  nwr["amenity"="ferry_terminal"]({bbox});',
            ");",
            "out geom;",
        ]
    )


def _coords(points: Sequence[Mapping[str, Any] | None]) -> list[Coord]:
    """Overpass geometry arrays; ``null`` marks a node outside the answer and is skipped."""
    return [(float(p["lon"]), float(p["lat"])) for p in points if p]


def parse_answer(answer: Mapping[str, Any]) -> list[OsmFeature]:
    """Features from an Overpass JSON answer (``out geom``); raises on a malformed one."""
    elements = answer.get("elements")
    if not isinstance(elements, list):
        raise InfrastructureError("Overpass answer has no 'elements' list")
    features: list[OsmFeature] = []
    try:
        for element in elements:
            tags = element.get("tags") or {}
            kind = element.get("type")
            osm_id = int(element["id"])
            feature: OsmFeature | None = None
            if kind == "node":
                feature = node_feature(osm_id, tags, float(element["lon"]), float(element["lat"]))
            elif kind == "way":
                feature = way_feature(osm_id, tags, _coords(element.get("geometry") or []))
            elif kind == "relation" and tags.get("type") in AREA_RELATION_TYPES:
                outer = [
                    _coords(m.get("geometry") or [])
                    for m in element.get("members") or []
                    if m.get("type") == "way" and m.get("role") in ("outer", "")
                ]
                feature = relation_feature(osm_id, tags, assemble_rings(outer))
            if feature is not None:
                features.append(feature)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InfrastructureError(f"malformed Overpass answer: {type(exc).__name__}: {exc}") from None
    return features


def data_age_days(answer: Mapping[str, Any], now: datetime) -> float | None:
    """Age of the OSM data behind an answer (``osm3s.timestamp_osm_base``), if stated."""
    stamp = (answer.get("osm3s") or {}).get("timestamp_osm_base")
    if not isinstance(stamp, str):
        return None
    try:
        base = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (now - base).total_seconds() / 86400.0)


@dataclass(frozen=True)
class _CacheEntry:
    fetched_at: datetime
    answer: dict[str, Any]
    features: list[OsmFeature]


class _RetryableError(Exception):
    """One attempt failed in a way another attempt (or endpoint) may fix."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OverpassSource(InfrastructureSource):
    """Infrastructure from Overpass, one query per region, cached for ``cache_ttl_days``."""

    name = "overpass"

    def __init__(
        self,
        cache: Store,
        endpoints: Sequence[str],
        *,
        buffer_km: float = 25.0,
        timeout_s: float = 180,
        max_in_flight: int = 2,
        cache_ttl_days: float = 7,
        session: requests.Session | None = None,
        max_attempts: int = 4,
        backoff_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not endpoints:
            raise InvalidInputError("Overpass: at least one endpoint is needed")
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise InvalidInputError(f"Overpass: max_in_flight must be 1..{MAX_IN_FLIGHT} (fair use)")
        self.cache = cache
        self.endpoints = tuple(endpoints)
        self.buffer_km = buffer_km
        self.timeout_s = timeout_s
        self.cache_ttl = timedelta(days=cache_ttl_days)
        self.max_attempts = max(max_attempts, 1)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._session = session or requests.Session()
        self._own_limit = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._next_endpoint = 0
        #: Attempts beyond the first, over this source's life (for logs and tests).
        self.retries = 0

    # -- the interface -------------------------------------------------------------

    def preflight(self) -> list[str]:
        """Configuration problems only: a server being down is what the stale cache is for."""
        problems = []
        for url in self.endpoints:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(f"Overpass endpoint is not an http(s) URL: {url!r}")
        return problems

    def fetch(self, region: Region) -> InfrastructureResult:
        query = build_query(search_area(region, self.buffer_km).bounds, self.timeout_s)
        key = self.cache_key(region, query)
        now = datetime.now(UTC)
        cached = self._read_cache(key)
        if cached is not None and now - cached.fetched_at < self.cache_ttl:
            return self._result(region, cached, stale=False)
        try:
            answer, features = self._query(query, region.name)
        except InfrastructureError as exc:
            if cached is None:
                raise
            log.warning("overpass_stale_cache", region=region.name, error=str(exc), key=key)
            return self._result(region, cached, stale=True)
        entry = _CacheEntry(now, answer, features)
        self._write_cache(key, query, entry)
        return self._result(region, entry, stale=False)

    def map_lines(self, region: Region) -> list[MapLine]:
        """The lines of the region's cached answer (the one :meth:`fetch` used), if any."""
        query = build_query(search_area(region, self.buffer_km).bounds, self.timeout_s)
        cached = self._read_cache(self.cache_key(region, query))
        return [] if cached is None else map_lines(region, cached.features)

    # -- cache ---------------------------------------------------------------------

    def cache_key(self, region: Region, query: str) -> str:
        digest = hashlib.sha256(query.encode()).hexdigest()[:16]
        return f"osm/overpass/{region.name}-{self.buffer_km:g}km-{digest}.json"

    def _read_cache(self, key: str) -> _CacheEntry | None:
        try:
            data = self.cache.read_bytes(key)
            if data is None:
                return None
            document = json.loads(data)
            if document.get("format") != CACHE_FORMAT:
                return None
            fetched_at = datetime.fromisoformat(document["fetched_at"])
            answer = document["answer"]
            features = parse_answer(answer)  # an entry that no longer parses is no entry
        except (StoreError, ValueError, KeyError, TypeError, AttributeError, InfrastructureError) as exc:
            log.warning("overpass_cache_unreadable", key=key, error=str(exc))
            return None
        if fetched_at.tzinfo is None:
            fetched_at = fetched_at.replace(tzinfo=UTC)
        return _CacheEntry(fetched_at, answer, features)

    def _write_cache(self, key: str, query: str, entry: _CacheEntry) -> None:
        document = {
            "format": CACHE_FORMAT,
            "fetched_at": entry.fetched_at.isoformat(),
            "query": query,
            "answer": entry.answer,
        }
        try:
            self.cache.write_bytes(key, json.dumps(document).encode(), content_type="application/json")
        except StoreError as exc:  # the answer is still good for this run
            log.warning("overpass_cache_write_failed", key=key, error=str(exc))

    def _result(self, region: Region, entry: _CacheEntry, *, stale: bool) -> InfrastructureResult:
        return build_result(
            region,
            entry.features,
            source="overpass",
            buffer_km=self.buffer_km,
            fetched_at=entry.fetched_at,
            stale=stale,
            data_age_days=data_age_days(entry.answer, datetime.now(UTC)),
        )

    # -- HTTP ----------------------------------------------------------------------

    def _endpoint(self) -> str:
        with self._lock:
            url = self.endpoints[self._next_endpoint % len(self.endpoints)]
            self._next_endpoint += 1
            return url

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """This instance's limit, then the process-wide one."""
        with self._own_limit, _IN_FLIGHT:
            yield

    def _query(self, query: str, region: str) -> tuple[dict[str, Any], list[OsmFeature]]:
        """A checked answer, trying up to ``max_attempts`` times across the endpoints."""
        failures: list[str] = []
        for attempt in range(self.max_attempts):
            url = self._endpoint()
            if attempt:
                with self._lock:
                    self.retries += 1
            try:
                with self._slot():
                    return self._attempt(url, query)
            except _RetryableError as exc:
                failures.append(f"{url}: {exc}")
                log.warning(
                    "overpass_attempt_failed",
                    region=region,
                    endpoint=url,
                    attempt=attempt + 1,
                    error=str(exc),
                )
                if attempt + 1 < self.max_attempts:
                    self._sleep(self._delay(attempt, exc.retry_after_s))
        raise InfrastructureError(
            f"Overpass failed after {self.max_attempts} attempts: " + "; ".join(failures[-3:])
        )

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), MAX_BACKOFF_S)
        base = min(self.backoff_s * 2.0**attempt, MAX_BACKOFF_S)
        return base * (0.5 + random.random() / 2)  # jitter, so concurrent regions spread out

    def _attempt(self, url: str, query: str) -> tuple[dict[str, Any], list[OsmFeature]]:
        try:
            with get_tracer().call("Overpass", endpoint=url):
                response = self._session.post(
                    url,
                    data={"data": query},
                    headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                    timeout=(10.0, self.timeout_s + 30.0),
                )
        except requests.RequestException as exc:
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code in RETRY_STATUSES:
            raise _RetryableError(f"HTTP {response.status_code}", _retry_after(response))
        if response.status_code != 200:
            # A rejected query (400) will not improve with retries.
            raise InfrastructureError(
                f"Overpass {url} answered HTTP {response.status_code}: {response.text[:200]!r}"
            )
        try:
            answer = response.json()
        except ValueError:
            raise _RetryableError("answer is not JSON") from None
        if not isinstance(answer, dict):
            raise _RetryableError("answer is not a JSON object")
        remark = answer.get("remark")
        if remark:
            raise _RetryableError(f"server remark: {str(remark)[:200]}")
        try:
            return answer, parse_answer(answer)
        except InfrastructureError as exc:
            raise _RetryableError(str(exc)) from None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None
