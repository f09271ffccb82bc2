"""Benchmark: the Earth Engine backend on 29 regions against a simulated Earth Engine.

The real client stack runs unchanged (earthengine-api, googleapiclient, google-auth,
the backend, the limiter); only the HTTP transport is replaced by a model of Earth
Engine: heavy-tailed (lognormal) service times that grow with region area, 429 above a
concurrency quota, occasional 503s, "Computation timed out." and client deadlines.
Service times are drawn per (request, attempt) from a seeded generator, so every
scenario of one run faces the same work; 429 rejections cost only a round trip.

Reported per scenario: makespan, the lower bound ``max(slowest region, total work /
usable concurrency)`` (work = service time of every attempt the server actually ran;
the slowest region's two requests run in parallel, so its bound is the longer one),
their ratio, and the one-region-at-a-time makespan measured in the same run.

Run: ``.venv/bin/python -m benchmarks.bench_earthengine`` (prints JSON; about 4 minutes for three seeds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import ee
import httplib2
import structlog

from ccapi_monitor.detection.earthengine import TILE_SCALES, EarthEngineBackend, build_region_graph
from ccapi_monitor.detection.ee_quota import DEFAULT_GATHER_S, AdaptiveLimiter, RetryPolicy
from ccapi_monitor.errors import CCAPIError
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.settings import Settings
from tests.detection.ee_support import ALGORITHMS_FILE, DISCOVERY_DOCUMENT, offline_ee, service_account_key

RUN_DATE = date(2026, 11, 23)
SIM_ROOT = "https://earthengine-highvolume.sim.invalid"


@dataclass(frozen=True)
class Model:
    """Earth Engine as seen from the client; times in Earth Engine seconds."""

    time_scale: float = 0.05  # wall seconds per Earth Engine second
    quota: int = 40
    stats_median_s: float = 30.0  # a 490 km2 region; scales with sqrt(area)
    polygons_share: float = 0.6
    sigma: float = 0.8  # lognormal shape: p99 is ~6.4x the median
    p_unavailable: float = 0.03
    p_computation_timeout: float = 0.02
    heavier_tiles_cost: float = 1.3  # a tileScale-8 retry is slower than the original
    round_trip_s: float = 0.3
    deadline_s: float = 300.0


@dataclass
class Attempt:
    key: str
    outcome: str
    service_s: float  # wall seconds the server worked (0 for a 429)
    started: float = field(default_factory=time.perf_counter)


@dataclass
class SimulatedEarthEngine:
    """An httplib2-compatible transport answering like Earth Engine (discovery, token, compute)."""

    model: Model
    seed: int
    requests: dict[str, tuple[str, str, float]]  # expression digest -> (region, kind, area factor)
    log: list[Attempt] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    served: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(
        self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any
    ) -> tuple[httplib2.Response, bytes]:
        if "$discovery" in uri:
            document = json.loads(DISCOVERY_DOCUMENT.read_text(encoding="utf-8"))
            document["rootUrl"] = document["baseUrl"] = SIM_ROOT + "/"
            return self._reply(200, document)
        if uri.endswith("/token"):
            return self._reply(200, {"access_token": "sim", "expires_in": 3600, "token_type": "Bearer"})
        if "/algorithms" in uri:
            return self._reply(200, json.loads(ALGORITHMS_FILE.read_text(encoding="utf-8")))
        if "value:compute" in uri:
            return self._compute(body)
        return self._reply(404, {"error": {"code": 404, "message": uri}})

    @staticmethod
    def _reply(status: int, payload: dict[str, Any]) -> tuple[httplib2.Response, bytes]:
        return httplib2.Response({"status": status, "content-type": "application/json"}), json.dumps(
            payload
        ).encode()

    @staticmethod
    def _error(status: int, message: str) -> tuple[httplib2.Response, bytes]:
        return SimulatedEarthEngine._reply(status, {"error": {"code": status, "message": message}})

    def _compute(self, body: str) -> tuple[httplib2.Response, bytes]:
        m = self.model
        key = digest(body)
        _, kind, factor = self.requests.get(key, ("unknown", "probe", 0.01))
        with self.lock:
            if self.in_flight >= m.quota:
                self.log.append(Attempt(key, "429", 0.0))
                rejected = True
            else:
                rejected = False
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                attempt = self.served[key]
                self.served[key] += 1
        if rejected:
            time.sleep(m.round_trip_s * m.time_scale)
            return self._error(429, "Too many concurrent aggregations.")
        try:
            rng = random.Random(f"{self.seed}:{key}:{attempt}")
            median = m.stats_median_s * factor * (1.0 if kind == "stats" else m.polygons_share)
            service = median * math.exp(rng.gauss(0.0, m.sigma))
            roll = rng.random()
            if roll < m.p_unavailable:
                outcome, service = "503", m.round_trip_s
            elif roll < m.p_unavailable + m.p_computation_timeout:
                outcome, service = "computation_timeout", min(service, 270.0)
            elif service > m.deadline_s:
                outcome, service = "deadline", m.deadline_s
            else:
                outcome = "ok"
            self.log.append(Attempt(key, outcome, service * m.time_scale))
            time.sleep(service * m.time_scale)
        finally:
            with self.lock:
                self.in_flight -= 1
        if outcome == "503":
            return self._error(503, "The service is currently unavailable.")
        if outcome == "computation_timeout":
            return self._error(400, "Computation timed out.")
        if outcome == "deadline":
            raise TimeoutError("simulated client deadline exceeded")
        return self._reply(200, {"result": answer(kind)})

    def chains(self) -> dict[tuple[str, str], list[Attempt]]:
        """Attempts per logical request (region, kind), all escalation levels, in start order."""
        chains: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
        for attempt in self.log:
            region, kind, _ = self.requests.get(attempt.key, ("probe", "probe", 0.0))
            chains[(region, kind)].append(attempt)
        return {k: sorted(v, key=lambda a: a.started) for k, v in chains.items()}

    def describe_request(self, t0: float, last: bool) -> dict[str, Any]:
        """The request that ended last (``last``) or that did the most work: where the makespan went."""
        chains = self.chains()
        if last:
            key = max(chains, key=lambda k: max(a.started + a.service_s for a in chains[k]))
        else:
            key = max(chains, key=lambda k: sum(a.service_s for a in chains[k]))
        region, kind = key
        chain = chains[key]
        return {
            "region": region,
            "kind": kind,
            "first_start_s": round(chain[0].started - t0, 3),
            "end_s": round(max(a.started + a.service_s for a in chain) - t0, 3),
            "attempts": [(a.outcome, round(a.started - t0, 3), round(a.service_s, 3)) for a in chain],
        }

    def work_by_request(self) -> dict[tuple[str, str], float]:
        """Server work (wall s) per (region, kind), all escalation levels and attempts."""
        work: dict[tuple[str, str], float] = defaultdict(float)
        for attempt in self.log:
            region, kind, _ = self.requests.get(attempt.key, ("probe", "probe", 0.0))
            work[(region, kind)] += attempt.service_s
        return work


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def request_body(expression: Any) -> str:
    """The body googleapiclient sends for ``value:compute`` (its JsonModel: ``json.dumps``)."""
    return json.dumps({"expression": ee.serializer.encode(expression, for_cloud_api=True)})


def answer(kind: str) -> dict[str, Any]:
    if kind == "stats":
        groups = [{"class": -1, "sum": 50.0}, {"class": 0, "sum": 900.0}, {"class": 1, "sum": 3.0}]
        return {"groups": groups, "scenes": {"baseline": 70, "persistence": 12, "current": 6}}
    if kind == "polygons":
        return {"count": 0, "features": {"type": "FeatureCollection", "features": []}}
    return {"s2": 1, "cloud_score": 1}


def request_table(regions: list[Region], params: DetectionParams) -> dict[str, tuple[str, str, float]]:
    """Digest of each request the backend can send -> (region, kind, service-time factor)."""
    median_area = sorted(r.area_km2 for r in regions)[len(regions) // 2]
    table: dict[str, tuple[str, str, float]] = {}
    with offline_ee():
        for region in regions:
            size = math.sqrt(region.area_km2 / median_area)
            for level, tile_scale in enumerate(TILE_SCALES):
                graph = build_region_graph(region, RUN_DATE, params, tile_scale=tile_scale)
                cost = size * (1.3**level)
                for kind, expr in (("stats", graph.stats), ("polygons", graph.polygons)):
                    table[digest(request_body(expr))] = (region.name, kind, cost)
    return table


def run_scenario(
    name: str,
    *,
    regions: list[Region],
    table: dict[str, tuple[str, str, float]],
    model: Model,
    max_concurrency: int,
    regions_in_flight: int,
    seed: int,
    key_json: str,
    gather_s: float = DEFAULT_GATHER_S,
) -> dict[str, Any]:
    sim = SimulatedEarthEngine(model=model, seed=seed, requests=table)
    limiter = AdaptiveLimiter(max_concurrency, gather_s=gather_s)
    # Real policy, delays on the simulated clock.
    policy = RetryPolicy(base_delay_s=2.0 * model.time_scale, max_delay_s=60.0 * model.time_scale)
    backend = EarthEngineBackend(
        DetectionParams(),
        project="sim",
        key_json=key_json,
        key_file=None,
        max_concurrency=max_concurrency,
        deadline_s=model.deadline_s * model.time_scale,
        url=SIM_ROOT,
        limiter=limiter,
        retry_policy=policy,
        http_transport=sim,
    )
    backend.prepare(regions, RUN_DATE)
    sim.log.clear()
    sim.served.clear()
    outcomes: dict[str, str] = {}

    def one(region: Region) -> None:
        try:
            outcomes[region.name] = backend.detect(region, RUN_DATE).status
        except CCAPIError as exc:
            outcomes[region.name] = f"failed: {exc}"

    started = time.perf_counter()
    # Like the runner: at most ``regions_in_flight`` regions, the next one when one ends.
    with ThreadPoolExecutor(max_workers=regions_in_flight) as pool:
        list(pool.map(one, regions))
    makespan = time.perf_counter() - started

    work = sim.work_by_request()
    last_request = sim.describe_request(started, last=True)
    longest_request = sim.describe_request(started, last=False)
    usable = min(max_concurrency, model.quota)
    slowest = max(max(work[(r.name, "stats")], work[(r.name, "polygons")]) for r in regions)
    total = sum(work.values())
    bound = max(slowest, total / usable)
    by_outcome: dict[str, int] = defaultdict(int)
    for attempt in sim.log:
        by_outcome[attempt.outcome] += 1
    unmatched = sum(1 for attempt in sim.log if attempt.key not in table)
    failed = sorted(n for n, status in outcomes.items() if status.startswith("failed"))
    return {
        "scenario": name,
        "regions": len(regions),
        "max_concurrency": max_concurrency,
        "regions_in_flight": regions_in_flight,
        "gather_s": gather_s,
        "server_quota": model.quota,
        "usable_concurrency": usable,
        "makespan_s": round(makespan, 3),
        "lower_bound_s": round(bound, 3),
        "slowest_region_s": round(slowest, 3),
        "total_work_s": round(total, 3),
        "ratio_to_lower_bound": round(makespan / bound, 3),
        "regions_failed": failed,
        "regions_lost": len(regions) - len(outcomes),
        "unmodelled_requests": unmatched,
        "server_attempts": dict(sorted(by_outcome.items())),
        "last_request": last_request,
        "longest_request": longest_request,
        "server_peak_in_flight": sim.peak_in_flight,
        "limiter": limiter.snapshot(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    # 1 EE second = 50 ms: the client's own CPU per request (encoding, HTTP, ~10 ms on a busy
    # 2-core machine) is real time, so a faster clock would inflate it into EE minutes.
    parser.add_argument("--time-scale", type=float, default=0.05, help="wall seconds per EE second")
    parser.add_argument("--gather-s", type=float, default=DEFAULT_GATHER_S, help="limiter burst window")
    parser.add_argument("--skip-sequential", action="store_true")
    args = parser.parse_args(argv)
    # Keep stdout for the JSON report: retries are logged at info, which is noise here.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )

    regions = load_regions()
    table = request_table(regions, DetectionParams())
    key_json = json.dumps(service_account_key(SIM_ROOT + "/token"))
    base = Model(time_scale=args.time_scale)
    everything = len(regions)
    default = Settings.model_fields["ee_max_concurrency"].default
    scenarios = [
        # The settings default (the project's whole quota), all regions in flight as the runner keeps them.
        (f"limit_{default}_quota_40", base, default, everything),
        # The default while other users of the project hold 30 of its 40 slots (429 storm, AIMD).
        (f"limit_{default}_quota_10", Model(time_scale=args.time_scale, quota=10), default, everything),
        # A shared project's setting (and the former default): 16 of 40, bound for the 16 this process may use.
        ("limit_16_quota_40", base, 16, everything),
        # The same without the limiter's gather window: the first arrivals take the slots.
        ("limit_16_quota_40_no_gather", base, 16, everything),
        # The same with the runner's default regions in flight for Earth Engine (16 / 2).
        ("limit_16_quota_40_8_regions", base, 16, 8),
        # The project is shared: only 10 slots are free, the limiter starts at 16 (429 storm).
        ("limit_16_quota_10", Model(time_scale=args.time_scale, quota=10), 16, everything),
    ]
    if not args.skip_sequential:
        scenarios.append(("one_region_at_a_time", base, 16, 1))
    reports = []
    for seed in args.seeds:
        results = [
            run_scenario(
                name,
                regions=regions,
                table=table,
                model=model,
                max_concurrency=limit,
                regions_in_flight=in_flight,
                seed=seed,
                key_json=key_json,
                gather_s=0.0 if name.endswith("_no_gather") else args.gather_s,
            )
            for name, model, limit, in_flight in scenarios
        ]
        for result in results:
            result["target_met"] = (
                result["ratio_to_lower_bound"] <= 1.1
                and not result["regions_failed"]
                and not result["regions_lost"]
            )
        report: dict[str, Any] = {"seed": seed, "scenarios": results}
        if not args.skip_sequential:
            report["speedup_vs_one_region_at_a_time"] = {
                r["scenario"]: round(results[-1]["makespan_s"] / r["makespan_s"], 2) for r in results[:-1]
            }
        reports.append(report)
    summary = {
        name: {
            str(r["seed"]): s["ratio_to_lower_bound"]
            for r in reports
            for s in r["scenarios"]
            if s["scenario"] == name
        }
        for name, *_ in scenarios
    }
    json.dump(
        {"benchmark": "earthengine", "ratio_to_lower_bound": summary, "target": 1.1, "runs": reports},
        sys.stdout,
        indent=2,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
