"""The runner: one run of the weekly job from validated settings to a :class:`RunSummary`.

Regions run concurrently and isolated: an exception in one region marks that region
``failed`` and never stops the others. Each finished region is checkpointed to the
cache store, so a rerun of the same week (a crash, a Step Functions retry, SIGTERM)
reuses it instead of starting over.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyproj
import structlog
from shapely.geometry import shape
from shapely.ops import unary_union

from ccapi_monitor.changes import FootprintStore, PreviousFootprint, PreviousRun, label_changes
from ccapi_monitor.detection.base import ImageryBackend
from ccapi_monitor.errors import (
    AbortedError,
    CredentialsError,
    ExitCode,
    InfrastructureError,
    RegionTimeoutError,
)
from ccapi_monitor.infrastructure.base import InfrastructureSource
from ccapi_monitor.market.base import MarketData, region_figures
from ccapi_monitor.market.models import MarketFigures
from ccapi_monitor.models import (
    NO_PREVIOUS_RUN_NOTE,
    ChangePolygon,
    ImageryInfo,
    InfrastructureResult,
    InvestmentScore,
    PreviousRunInfo,
    PreviousRunRef,
    RegionResult,
    RunStatus,
    RunSummary,
    Totals,
)
from ccapi_monitor.params import CLASSES, DetectionParams, Windows
from ccapi_monitor.regions import Region
from ccapi_monitor.scoring import LandPrice, score_region
from ccapi_monitor.settings import Settings
from ccapi_monitor.storage import Store
from ccapi_monitor.tracing import get_tracer

log = structlog.get_logger(__name__)
_GEOD = pyproj.Geod(ellps="WGS84")

#: Name prefix of the region worker threads; the job looks for lingering ones by it after an abort.
REGION_THREAD_PREFIX = "region"

#: How often the main thread looks at deadlines and abort requests.
_POLL_S = 0.2

AbortCheck = Callable[[], ExitCode | None]


@dataclass
class _InFlight:
    region: Region
    future: Future[RegionResult]
    cancel: threading.Event
    started: float


Progress = Callable[[int, int, int], None]  # done, failed, total


@dataclass
class RunDependencies:
    """Everything a run talks to, built by the CLI (or a test) from settings."""

    backend: ImageryBackend
    infrastructure: InfrastructureSource
    reports: Store
    cache: Store
    prices: Mapping[int, LandPrice]
    params: DetectionParams
    imagery_info: ImageryInfo
    previous: PreviousRun | None = None
    #: The run's market data, loaded once (docs/market.md); ``None``: regions carry no market figures.
    market: MarketData | None = None
    #: Complete change footprints of earlier runs (kept in the reports store).
    footprints: FootprintStore = field(init=False)

    def __post_init__(self) -> None:
        self.footprints = FootprintStore(self.reports)


def region_identity(region: Region) -> dict[str, Any]:
    """The fields every RegionResult of ``region`` starts from, whatever happened to it."""
    return {
        "name": region.name,
        "province": region.province,
        "focus": region.focus,
        "priority": region.priority,
        "tier": region.tier,
        "area_km2": round(region.area_km2, 3),
    }


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def exit_code_for(results: list[RegionResult]) -> tuple[ExitCode, RunStatus]:
    """0 when no region failed, 1 when none succeeded, 2 in between."""
    failed = sum(r.status == "failed" for r in results)
    if failed == 0:
        return ExitCode.OK, "succeeded"
    if failed == len(results):
        return ExitCode.FAILED, "failed"
    return ExitCode.PARTIAL, "partial"


def _geodesic_ha(geometry: Any) -> float:
    area_m2, _ = _GEOD.geometry_area_perimeter(geometry)
    return abs(area_m2) / 10_000.0


def aggregate(results: list[RegionResult], geometries: Mapping[str, Any]) -> Totals:
    """Totals per class, and Java-wide totals that count overlapping region boxes once.

    Every location is credited to the first region (in result order) that covers it:
    for each later region, the part of its change polygons inside regions already
    counted is subtracted. Overlaps are measured on polygons (equal-area, geodesic);
    region figures themselves come from the backends' pixel counts.
    """
    measured = [r for r in results if r.area_ha is not None]
    sums = {c: sum((r.area_ha or {}).get(c, 0.0) for r in measured) for c in CLASSES}
    new_sums = {c: sum((r.new_area_ha or {}).get(c, 0.0) for r in measured) for c in CLASSES}
    overlap = dict.fromkeys(CLASSES, 0.0)
    new_overlap = dict.fromkeys(CLASSES, 0.0)
    covered: Any = None
    for result in measured:
        if covered is not None:
            for polygon in result.polygons:
                shared = shape(polygon.geometry).intersection(covered)
                if shared.is_empty:
                    continue
                ha = _geodesic_ha(shared)
                overlap[polygon.change_class] += ha
                if polygon.change == "new":
                    new_overlap[polygon.change_class] += ha
        region_geom = geometries[result.name]
        covered = region_geom if covered is None else unary_union([covered, region_geom])
    return Totals(
        area_ha={c: round(sums[c], 4) for c in CLASSES},
        new_area_ha={c: round(new_sums[c], 4) for c in CLASSES},
        union_area_ha={c: round(max(0.0, sums[c] - overlap[c]), 4) for c in CLASSES},
        union_new_area_ha={c: round(max(0.0, new_sums[c] - new_overlap[c]), 4) for c in CLASSES},
        polygon_count=sum(r.polygon_count for r in measured),
        regions_measured=len(measured),
    )


class Runner:
    """Processes regions concurrently, checkpoints them, and returns the run's summary."""

    def __init__(
        self,
        settings: Settings,
        regions: list[Region],
        deps: RunDependencies,
        *,
        run_id: str | None = None,
        abort_check: AbortCheck = lambda: None,
        progress: Progress | None = None,
        abort_grace_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.regions = regions
        self.deps = deps
        self.run_id = run_id or new_run_id()
        self.abort_check = abort_check
        self.progress = progress
        self.abort_grace_s = abort_grace_s
        self.windows = deps.params.windows(settings.run_date)
        self._priors: dict[str, PreviousFootprint | None] = {}
        self._priors_lock = threading.Lock()

    # -- checkpoints -------------------------------------------------------------------------------

    def checkpoint_key(self, region: Region) -> str:
        """Keyed by everything that changes a region's result, so a stale one is never reused."""
        identity = {
            "imagery": self.settings.imagery,
            "stac_items": self.settings.stac_items,
            "stac_collection": self.settings.stac_collection,
            "params": self.deps.params.fingerprint(),
            "infrastructure": self.settings.infrastructure,
            "osm_pbf": str(self.settings.osm_pbf) if self.settings.osm_pbf else None,
            "buffer_km": self.settings.infrastructure_buffer_km,
            "previous_run": self.deps.previous.run_id if self.deps.previous else None,
            "compared_against": prior.run_id if (prior := self._prior(region)) else None,
            "geometry": region.geometry.wkb_hex,
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return f"checkpoints/{self.settings.run_date.isoformat()}/{region.name}-{digest}.json"

    def _load_checkpoint(self, region: Region) -> RegionResult | None:
        if self.settings.force_refresh:
            return None
        raw = self.deps.cache.read_bytes(self.checkpoint_key(region))
        if raw is None:
            return None
        try:
            result = RegionResult.model_validate_json(raw)
        except ValueError:
            log.warning("checkpoint_unreadable", region=region.name)
            return None
        return result.model_copy(update={"from_checkpoint": True})

    # -- one region ----------------------------------------------------------------------------------

    def _prior(self, region: Region) -> PreviousFootprint | None:
        """The region's footprint from its most recent earlier ``ok`` published run (memoized).

        Runs published before footprints were kept have none: then the previous run's
        listed polygons stand in, as before.
        """
        with self._priors_lock:
            if region.name in self._priors:
                return self._priors[region.name]
        found = self.deps.footprints.previous(region.name, self.settings.run_date)
        legacy = self.deps.previous
        if found is None and legacy is not None and legacy.compared(region.name):
            found = PreviousFootprint(legacy.run_id, legacy.run_date, legacy.polygons(region.name))
        with self._priors_lock:
            return self._priors.setdefault(region.name, found)

    def _infrastructure(self, region: Region) -> InfrastructureResult:
        source = self.deps.infrastructure
        try:
            return source.fetch(region)
        except InfrastructureError as exc:
            log.warning("infrastructure_failed", region=region.name, error=str(exc))
            return InfrastructureResult(source=source.name, status="error", error=str(exc))

    def _market(self, region: Region) -> MarketFigures | None:
        if self.deps.market is None:
            return None
        return region_figures(region, self.deps.market, self.settings.run_date, self.deps.prices)

    def _score(
        self,
        region: Region,
        new_area: dict[str, float] | None,
        infrastructure: InfrastructureResult | None,
        market: MarketFigures | None,
    ) -> InvestmentScore:
        return score_region(
            new_area_ha=new_area,
            area_km2=region.area_km2,
            infrastructure=infrastructure,
            tier=region.tier,
            prices=self.deps.prices,
            market=market,
        )

    def process_region(self, region: Region, cancel: threading.Event) -> RegionResult:
        """One region in its own trace subsegment, annotated with the region's outcome."""
        structlog.contextvars.bind_contextvars(region=region.name)
        with get_tracer().region(region.name) as span:
            try:
                result = self._compute_region(region, cancel)
            except Exception:
                span.annotate("status", "failed")
                raise
            span.annotate("status", result.status)
            span.annotate("from_checkpoint", result.from_checkpoint)
            return result

    def _compute_region(self, region: Region, cancel: threading.Event) -> RegionResult:
        """Detect, label week over week, enrich, score and checkpoint one region."""
        started = time.monotonic()
        cached = self._load_checkpoint(region)
        if cached is not None:
            log.info("region_reused", status=cached.status)
            # Market figures and scoring are pure and cheap: redo them so this run's prices apply.
            market = self._market(region)
            return cached.model_copy(
                update={
                    "market": market,
                    "score": self._score(region, cached.new_area_ha, cached.infrastructure, market),
                }
            )
        detection = self.deps.backend.detect(region, self.settings.run_date, cancel)
        prior = self._prior(region)
        polygons: list[ChangePolygon] = []
        new_area: dict[str, float] | None = None
        if detection.status == "ok":
            footprint, new_area = label_changes(
                detection.footprint or detection.polygons,
                prior.polygons if prior is not None else None,
                self.settings.run_date,
                mmu_ha=self.deps.params.mmu_ha,
            )
            polygons = footprint[: len(detection.polygons)]
            self.deps.footprints.save(region.name, self.settings.run_date, self.run_id, footprint)
        infrastructure = self._infrastructure(region)
        market = self._market(region)
        score = self._score(region, new_area, infrastructure, market)
        result = RegionResult(
            **region_identity(region),
            status=detection.status,
            observed_fraction=round(detection.observed_fraction, 4),
            area_ha=detection.area_ha,
            new_area_ha=new_area,
            polygon_count=detection.polygon_count,
            polygons=polygons,
            scenes=detection.scenes,
            infrastructure=infrastructure,
            market=market,
            score=score,
            compared_against=(
                PreviousRunRef(run_id=prior.run_id, run_date=prior.run_date)
                if prior is not None and detection.status == "ok"
                else None
            ),
            duration_s=round(time.monotonic() - started, 3),
        )
        # A finished result is valid even if the run is being stopped: keep it for the rerun.
        self.deps.cache.write_bytes(
            self.checkpoint_key(region), result.model_dump_json().encode(), "application/json"
        )
        log.info("region_done", status=result.status, duration_s=result.duration_s)
        return result

    def _failed(self, region: Region, error: BaseException) -> RegionResult:
        message = str(error) or type(error).__name__
        log.error("region_failed", region=region.name, error=message, error_type=type(error).__name__)
        return RegionResult(**region_identity(region), status="failed", error=message)

    # -- the run -------------------------------------------------------------------------------------

    def run_regions(self) -> list[RegionResult]:
        """All regions, at most ``regions_in_flight`` at once, deadlines and aborts honoured.

        Credentials that fail mid-run (:class:`CredentialsError`) end the whole run with exit 4:
        every other region would fail the same way.
        """
        pending = list(self.regions)
        results: dict[str, RegionResult] = {}
        running: dict[str, _InFlight] = {}
        failed = 0
        total = len(self.regions)
        deadline_s = self.settings.region_timeout
        in_flight = self.settings.regions_in_flight
        pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=REGION_THREAD_PREFIX)
        abort_code: ExitCode | None = None
        try:
            while pending or running:
                abort_code = abort_code or self.abort_check()
                if abort_code is not None:
                    break
                while pending and len(running) < in_flight:
                    region = pending.pop(0)
                    cancel = threading.Event()
                    ctx = contextvars.copy_context()
                    future = pool.submit(ctx.run, self.process_region, region, cancel)
                    running[region.name] = _InFlight(region, future, cancel, time.monotonic())
                now = time.monotonic()
                for name, job in list(running.items()):
                    region = job.region
                    if job.future.done():
                        del running[name]
                        error = job.future.exception()
                        if isinstance(error, CredentialsError):
                            for other in running.values():
                                other.cancel.set()
                            raise error
                        results[name] = self._failed(region, error) if error else job.future.result()
                    elif now - job.started > deadline_s:
                        # The thread cannot be killed; it sees ``cancel`` and its result is dropped.
                        job.cancel.set()
                        del running[name]
                        results[name] = self._failed(
                            region, RegionTimeoutError(f"region exceeded its {deadline_s:g} s deadline")
                        )
                    else:
                        continue
                    failed += results[name].status == "failed"
                    if self.progress:
                        self.progress(len(results), failed, total)
                if running:
                    wait([j.future for j in running.values()], timeout=_POLL_S, return_when=FIRST_COMPLETED)
            if abort_code is not None:
                self._abort(running, abort_code)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return [results[r.name] for r in self.regions]

    def _abort(self, running: Mapping[str, _InFlight], code: ExitCode) -> None:
        """Stop: cancel in-flight regions, give them a moment to checkpoint, then give up."""
        log.warning("run_aborting", in_flight=sorted(running), exit_code=int(code))
        for job in running.values():
            job.cancel.set()
        wait([j.future for j in running.values()], timeout=self.abort_grace_s)
        raise AbortedError("run aborted before completion; nothing published", exit_code=code)

    def run(self) -> RunSummary:
        started = time.monotonic()
        structlog.contextvars.bind_contextvars(run_id=self.run_id)
        log.info("run_started", regions=len(self.regions), run_date=self.settings.run_date.isoformat())
        self.deps.backend.prepare(self.regions, self.settings.run_date)
        results = self.run_regions()
        previous = self.deps.previous
        return build_summary(
            self.settings,
            self.regions,
            results,
            run_id=self.run_id,
            duration_s=round(time.monotonic() - started, 3),
            imagery=self.deps.imagery_info.model_copy(
                update={
                    "corrections": self.deps.backend.corrections(),
                    **({"items_read": n} if (n := self.deps.backend.items_read()) is not None else {}),
                }
            ),
            windows=self.windows,
            params=self.deps.params,
            previous_run=previous.describe() if previous else PreviousRunInfo(note=NO_PREVIOUS_RUN_NOTE),
        )


def build_summary(
    settings: Settings,
    regions: list[Region],
    results: list[RegionResult],
    *,
    run_id: str,
    duration_s: float,
    imagery: ImageryInfo,
    windows: Windows,
    params: DetectionParams,
    previous_run: PreviousRunInfo,
) -> RunSummary:
    """The run's summary from its region results: one place for single runs and fan-out's assemble."""
    code, status = exit_code_for(results)
    return RunSummary(
        run_id=run_id,
        run_date=settings.run_date,
        status=status,
        exit_code=int(code),
        environment=settings.environment,
        duration_s=round(duration_s, 3),
        regions=results,
        totals=aggregate(results, {r.name: r.geometry for r in regions}),
        imagery=imagery,
        windows=windows,
        parameters=params,
        previous_run=previous_run,
    )
