"""The Earth Engine backend: docs/design/detection.md as a server-side graph, two requests a region.

:func:`build_region_graph` is a pure function of (region, run date, parameters): it reads
every threshold from :class:`~ccapi_monitor.params.DetectionParams`, the same object the
array backends use, so there is no second copy of the algorithm's numbers. Per region
the backend sends exactly two ``computeValue`` requests, concurrently: one dictionary
with every statistic, one with the polygons. Both go through the process-wide
:class:`~ccapi_monitor.detection.ee_quota.AdaptiveLimiter`.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Final

import structlog
from shapely.geometry import mapping

from ccapi_monitor.detection.base import ImageryBackend, region_result
from ccapi_monitor.detection.ee_auth import HIGH_VOLUME_URL, initialize_client, load_credentials
from ccapi_monitor.detection.ee_quota import (
    PROJECT_QUOTA,
    AdaptiveLimiter,
    RequestStats,
    RetryPolicy,
    run_with_retries,
    shared_limiter,
)
from ccapi_monitor.errors import AbortedError, CCAPIError, CredentialsError, DetectionError, PreflightError
from ccapi_monitor.models import ChangePolygon, DetectionResult
from ccapi_monitor.params import CLASS_VALUES, CLASSES, DateWindow, DetectionParams, Windows
from ccapi_monitor.regions import Region
from ccapi_monitor.tracing import get_tracer

#: ``ee`` ships no type information: its objects are annotated with this alias.
EEObject = Any

log = structlog.get_logger(__name__)

S2_COLLECTION: Final = "COPERNICUS/S2_SR_HARMONIZED"
CLOUD_SCORE_COLLECTION: Final = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
CLOUD_SCORE_BAND: Final = "cs_cdf"
BASELINE_PERCENTILES: Final = (10, 90)
#: The bands the algorithm reads (asset key of the array backends -> Sentinel-2 band).
REFLECTANCE_BANDS: Final = {"green": "B3", "red": "B4", "nir": "B8", "swir16": "B11"}
#: Acquisition days are UTC calendar days, as the array backends group STAC items.
DAY_FORMAT: Final = "YYYY-MM-dd"
#: Class-band value of pixels without enough clear observations (counted, never classified).
UNOBSERVED: Final = -1
#: Largest region (5,000 km2) at 10 m is 5e7 pixels. 1e9 is explicit headroom: a region
#: never silently fails on the 1e8 default, and nothing near this size is ever sent.
MAX_PIXELS: Final = 1_000_000_000
#: tileScale 2 halves the tile edge (1/4 of the memory per tile) from the start, because
#: a year of percentiles plus a connected-pixel neighbourhood is memory-hungry; a request
#: that still times out or runs out of memory is retried once at 8.
TILE_SCALES: Final = (2, 8)
#: connectedPixelCount's maxSize limit in Earth Engine.
MAX_CONNECTED_PIXELS: Final = 1024
#: Expected polygons-request time relative to the statistics request (orders the queue).
POLYGONS_RELATIVE_COST: Final = 0.6
#: Resolution of the per-scene "any clear pixel" check behind the scene counts.
SCENE_CHECK_SCALE_M: Final = 100
#: Components returned per region, largest first: the first ``max_polygons`` are listed,
#: all of them are the footprint week over week compares against. 20,000 polygons is
#: about 10 MB of GeoJSON, within a computeValue response; more are counted, not returned.
MAX_FOOTPRINT_POLYGONS: Final = 20_000
#: Metres of error allowed when reprojecting polygons and centroids to EPSG:4326.
MAX_ERROR_M: Final = 1


@dataclass(frozen=True)
class RegionGraph:
    """The two expressions sent for one region (plus what they were built with)."""

    stats: EEObject
    polygons: EEObject
    crs: str
    tile_scale: int


def _window_dates(window: DateWindow) -> tuple[str, str]:
    return window.start.isoformat(), window.end.isoformat()


def _linked_scenes(geometry: EEObject, span: DateWindow) -> EEObject:
    """Sentinel-2 granules over the region with their Cloud Score+ band (joined on ``system:index``)."""
    import ee

    start, end = _window_dates(span)
    s2 = ee.ImageCollection(S2_COLLECTION).filterBounds(geometry).filterDate(start, end)
    scores = ee.ImageCollection(CLOUD_SCORE_COLLECTION).filterBounds(geometry).filterDate(start, end)
    return s2.linkCollection(scores, [CLOUD_SCORE_BAND])


def _daily_mosaics(linked: EEObject) -> EEObject:
    """One image per acquisition day (docs/design/detection.md step 1): the granules (MGRS tiles) of a
    UTC day mosaicked, per pixel the granule with the highest ``cs_cdf``.

    Adjacent tiles overlap by about 10 km; without this a pixel in the overlap would count
    one acquisition twice (scene counts, ``built_min_obs``, "the latest observations",
    percentile weights). Each mosaic is stamped at 00:00 UTC of its day, so window filters
    see the day exactly as the array backends do.
    """
    import ee

    bands = [*REFLECTANCE_BANDS.values(), CLOUD_SCORE_BAND]
    stamped = linked.map(lambda image: image.select(bands).set("day", image.date().format(DAY_FORMAT)))

    def mosaic(day: EEObject) -> EEObject:
        granules = stamped.filter(ee.Filter.eq("day", day))
        return granules.qualityMosaic(CLOUD_SCORE_BAND).set(
            "system:time_start", ee.Date.parse(DAY_FORMAT, day).millis()
        )

    days = ee.List(stamped.aggregate_array("day")).distinct()
    return ee.ImageCollection.fromImages(days.map(mosaic))


def _observations(params: DetectionParams, days: EEObject) -> EEObject:
    """NDVI/NDWI per day, masked where Cloud Score+ says the pixel is not clear or any band
    read is <= 0 (unobserved, as in the array backends)."""
    import ee

    def indices(image: EEObject) -> EEObject:
        # S2_SR_HARMONIZED already removes the baseline-04.00 offset, so DN are reflectance
        # x 10000 with no offset; normalized differences are scale-free, no divide needed.
        clear = image.select(CLOUD_SCORE_BAND).gte(params.clear_threshold)
        for band in REFLECTANCE_BANDS.values():
            clear = clear.And(image.select(band).gt(0))
        ndvi = image.normalizedDifference([REFLECTANCE_BANDS["nir"], REFLECTANCE_BANDS["red"]]).rename("ndvi")
        ndwi = image.normalizedDifference([REFLECTANCE_BANDS["green"], REFLECTANCE_BANDS["nir"]]).rename(
            "ndwi"
        )
        # NDBI is descriptive only (not a rule), so it is not computed server-side.
        return ee.Image(ndvi.addBands(ndwi).updateMask(clear).copyProperties(image, ["system:time_start"]))

    return days.map(indices)


def _linear_percentiles(values: EEObject, count: EEObject, quantiles: tuple[int, ...]) -> list[EEObject]:
    """numpy's default (linear) percentile of each pixel's clear values, as the array code.

    ``values`` is the per-pixel 1-D array of clear observations; Earth Engine's own
    percentile reducer uses another definition, so the interpolation is spelled out:
    position ``q * (n - 1)`` in the sorted values, linear between its neighbours.
    """
    import ee

    sorted_values = values.arraySort()
    last = count.subtract(1).max(0)
    out = []
    for q in quantiles:
        position = last.multiply(q / 100.0)
        low = position.floor()
        high = low.add(1).min(last)
        low_value = sorted_values.arrayGet(low.toInt())
        high_value = sorted_values.arrayGet(high.toInt())
        value = low_value.add(high_value.subtract(low_value).multiply(position.subtract(low)))
        out.append(ee.Image(value).updateMask(count.gt(0)).rename(f"ndvi_p{q}"))
    return out


def _bare_and_dry(params: DetectionParams, window: EEObject) -> EEObject:
    """Every clear observation of ``window`` below the built-up NDVI and NDWI limits, over
    at least ``built_min_obs`` of them (the array code's ``bare_and_dry``); 0 where unknown."""
    peak = window.select(["ndvi", "ndwi"]).max()
    count = window.select("ndvi").count().unmask(0)
    return (
        peak.select("ndvi")
        .lt(params.built_max_ndvi)
        .And(peak.select("ndwi").lt(params.built_max_ndwi))
        .unmask(0)
        .And(count.gte(params.built_min_obs))
    )


def _class_image(
    params: DetectionParams, observations: EEObject, run_date: date, geometry: EEObject
) -> EEObject:
    """Per pixel: UNOBSERVED, 0 (observed, no change) or a CLASS_VALUES value; clipped to
    the region, then the MMU applied (so slivers at the edge go as in the array code)."""
    import ee

    windows = params.windows(run_date)

    def in_window(window: DateWindow) -> EEObject:
        # A fully masked placeholder keeps a window without any scene (an outage) from
        # reducing to a band-less image, which would fail the request instead of leaving
        # the pixels unobserved. Masked values are ignored by every reducer used here.
        placeholder = (
            ee.Image.constant([0, 0])
            .rename(["ndvi", "ndwi"])
            .toFloat()
            .updateMask(0)
            .set("system:time_start", 0)
        )
        return observations.filterDate(*_window_dates(window)).merge(ee.ImageCollection([placeholder]))

    # Baseline: every clear NDVI of the pixel as an array (toArray() leaves masked ones out).
    baseline_values = in_window(windows.baseline).select("ndvi").toArray().arrayProject([0])
    baseline_count = baseline_values.arrayLength(0).unmask(0)
    p10, p90 = _linear_percentiles(
        baseline_values.updateMask(baseline_count.gt(0)), baseline_count, BASELINE_PERCENTILES
    )

    # NDVI_now: mean of the latest `recent_obs` clear observations. toArray() keeps only
    # unmasked observations, in collection order (newest first after the sort).
    current = in_window(windows.current).select("ndvi")
    stacked = current.sort("system:time_start", False).toArray()
    current_count = stacked.arrayLength(0).unmask(0)
    ndvi_now = (
        stacked.updateMask(current_count.gt(0))
        .arraySlice(0, 0, params.recent_obs)
        .arrayReduce(ee.Reducer.mean(), [0])
        .arrayGet([0, 0])
    )

    # Seasonal-bare guard: bare and dry through one of last year's same-season spans.
    seasonal_bare = ee.Image.constant(0)
    for span in windows.fallow:
        seasonal_bare = seasonal_bare.Or(_bare_and_dry(params, in_window(span)))

    observed = baseline_count.gte(params.min_baseline_obs).And(current_count.gt(0))
    clearing = (
        p10.gte(params.stable_veg_p10)
        .And(ndvi_now.lt(p10.subtract(params.clearing_drop)))
        .And(ndvi_now.lt(params.cleared_ndvi))
    )
    built = (
        p90.gte(params.green_p90)
        .And(_bare_and_dry(params, in_window(windows.persistence)))
        .And(seasonal_bare.Not())
    )
    # First match wins: the earlier class in CLASSES is written last.
    classes = ee.Image.constant(0)
    for name, rule in reversed(list(zip(CLASSES, (clearing, built), strict=True))):
        classes = classes.where(rule.unmask(0), CLASS_VALUES[name])
    classes = classes.where(observed.Not(), UNOBSERVED).clip(geometry)

    # Minimum mapping unit: 8-connected components of one class smaller than mmu_pixels
    # go back to 0. Counting stops at mmu_pixels, which is all the test needs. Pixels
    # outside the region are masked by the clip, so they never join a component.
    mmu = params.mmu_pixels
    kept = ee.Image.constant(0)
    for name in CLASSES:
        component = classes.eq(CLASS_VALUES[name]).selfMask().connectedPixelCount(mmu, True)
        kept = kept.Or(component.gte(mmu).unmask(0))
    return classes.where(classes.gt(0).And(kept.Not()), 0).toInt8().rename("class")


def _clear_scene_counts(
    params: DetectionParams, days: EEObject, geometry: EEObject, crs: str, windows: Windows
) -> EEObject:
    """Days per window with any clear pixel over the region (as the array backends count).

    Counted on the daily mosaics, so a day is one scene however many granules it has.
    Checked on the Cloud Score+ band at SCENE_CHECK_SCALE_M: a yes/no per day needs
    no 10 m pass, and bestEffort is harmless for a maximum (unlike for hectares).
    """
    import ee

    def score(image: EEObject) -> EEObject:
        peak = image.select(CLOUD_SCORE_BAND).reduceRegion(
            reducer=ee.Reducer.max(),
            geometry=geometry,
            scale=SCENE_CHECK_SCALE_M,
            crs=crs,
            bestEffort=True,
            maxPixels=MAX_PIXELS,
        )
        return image.set("clear_peak", peak.get(CLOUD_SCORE_BAND))

    clear = days.map(score).filter(ee.Filter.gte("clear_peak", params.clear_threshold))
    return ee.Dictionary(
        {
            name: clear.filterDate(*_window_dates(getattr(windows, name))).size()
            for name in ("baseline", "persistence", "current")
        }
    )


def build_region_graph(
    region: Region, run_date: date, params: DetectionParams, *, tile_scale: int = TILE_SCALES[0]
) -> RegionGraph:
    """The statistics and polygon expressions for one region (pure; needs no network)."""
    import ee

    if params.mmu_pixels > MAX_CONNECTED_PIXELS:
        raise DetectionError(
            f"mmu_ha {params.mmu_ha} is {params.mmu_pixels} pixels at {params.scale_m} m; "
            f"Earth Engine counts connected pixels up to {MAX_CONNECTED_PIXELS}"
        )
    geometry = ee.Geometry(json.loads(json.dumps(mapping(region.geometry))), None, False)
    windows = params.windows(run_date)
    days = _daily_mosaics(_linked_scenes(geometry, windows.span))
    classes = _class_image(params, _observations(params, days), run_date, geometry)
    # The region's UTM grid at scale_m: the same pixels the array backends classify.
    crs = f"EPSG:{region.utm_epsg}"
    area_ha = ee.Image.pixelArea().divide(10_000).rename("area_ha")

    # bestEffort=False everywhere: best effort would silently coarsen the scale and change
    # the hectares; a request that is too big should fail loudly and be retried heavier.
    grouped = area_ha.addBands(classes).reduceRegion(
        reducer=ee.Reducer.sum().group(1, "class"),
        geometry=geometry,
        scale=params.scale_m,
        crs=crs,
        bestEffort=False,
        maxPixels=MAX_PIXELS,
        tileScale=tile_scale,
    )
    scenes = _clear_scene_counts(params, days, geometry, crs, windows)
    stats = ee.Dictionary({"groups": grouped.get("groups"), "scenes": scenes})

    changed = classes.gt(0)
    vectors = (
        classes.updateMask(changed)
        .addBands(area_ha.updateMask(changed))
        .reduceToVectors(
            reducer=ee.Reducer.sum(),
            geometry=geometry,
            scale=params.scale_m,
            crs=crs,
            geometryType="polygon",
            eightConnected=True,
            labelProperty="class",
            bestEffort=False,
            maxPixels=MAX_PIXELS,
            tileScale=tile_scale,
        )
    )

    def finish(feature: EEObject) -> EEObject:
        shape = feature.geometry()
        return ee.Feature(
            shape.transform("EPSG:4326", MAX_ERROR_M),
            {
                "class": feature.get("class"),
                "area_ha": feature.get("sum"),
                "centroid": shape.centroid(MAX_ERROR_M).transform("EPSG:4326", MAX_ERROR_M).coordinates(),
            },
        )

    polygons = vectors.map(finish)
    polygon_expr = ee.Dictionary(
        {"count": polygons.size(), "features": polygons.limit(MAX_FOOTPRINT_POLYGONS, "area_ha", False)}
    )
    return RegionGraph(stats=stats, polygons=polygon_expr, crs=crs, tile_scale=tile_scale)


def compute_value(expression: EEObject) -> Any:
    """``ee.data.computeValue``: the client library's public entry point.

    It re-encodes the graph on every attempt (about 10 ms of CPU), which is nothing next
    to an Earth Engine request; a private entry point would break silently on an upgrade.
    """
    import ee

    with get_tracer().call("EarthEngine", operation="computeValue"):
        return ee.data.computeValue(expression)


def parse_stats(value: dict[str, Any]) -> tuple[float, dict[str, float], dict[str, int]]:
    """``(observed_fraction, hectares per class, scenes)`` from the statistics response."""
    by_value: dict[int, float] = {}
    for group in value.get("groups") or []:
        by_value[int(group["class"])] = by_value.get(int(group["class"]), 0.0) + float(group["sum"])
    total = sum(by_value.values())
    observed = sum(ha for cls, ha in by_value.items() if cls != UNOBSERVED)
    fraction = observed / total if total > 0 else 0.0
    areas = {name: by_value.get(CLASS_VALUES[name], 0.0) for name in CLASSES}
    scenes = {str(k): int(v) for k, v in (value.get("scenes") or {}).items()}
    return fraction, areas, scenes


def parse_polygons(region: str, value: dict[str, Any], run_date: date) -> tuple[list[ChangePolygon], int]:
    """Polygons (largest first) and the component count before the cap."""
    names = {v: k for k, v in CLASS_VALUES.items()}
    polygons = []
    for feature in (value.get("features") or {}).get("features", []):
        props = feature.get("properties") or {}
        lon, lat = props["centroid"]
        polygons.append(
            ChangePolygon(
                region=region,
                change_class=names[int(props["class"])],
                area_ha=float(props["area_ha"]),
                centroid=(float(lon), float(lat)),
                geometry=feature["geometry"],
                first_detected=run_date,
            )
        )
    polygons.sort(key=lambda p: p.area_ha, reverse=True)
    return polygons, int(value.get("count", len(polygons)))


class EarthEngineBackend(ImageryBackend):
    """docs/design/detection.md on Google Earth Engine, quota-aware (see docs/earthengine.md)."""

    name: ClassVar[str] = "earthengine"

    def __init__(
        self,
        params: DetectionParams,
        *,
        project: str | None,
        key_json: str | None,
        key_file: Path | None,
        max_concurrency: int = 16,
        deadline_s: float = 300.0,
        url: str = HIGH_VOLUME_URL,
        limiter: AdaptiveLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        http_transport: Any = None,
    ) -> None:
        super().__init__(params)
        self._project = project
        self._key_json = key_json
        self._key_file = key_file
        self.deadline_s = deadline_s
        self.url = url
        self.limiter = limiter or shared_limiter(max_concurrency)
        self.retry_policy = retry_policy or RetryPolicy()
        self._http_transport = http_transport
        self._init_lock = threading.Lock()
        self._ready = False
        # Polygon requests run beside the statistics request of the same region.
        self._pool = ThreadPoolExecutor(max_workers=PROJECT_QUOTA, thread_name_prefix="ee-polygons")
        self._rng = random.Random()
        self._graphs: dict[tuple[str, date, int], RegionGraph] = {}
        self._graphs_lock = threading.Lock()

    def describe(self, run_date: date) -> dict[str, Any]:
        windows = self.params.windows(run_date)
        return {
            "source": self.name,
            "datasets": {"surface_reflectance": S2_COLLECTION, "cloud_score": CLOUD_SCORE_COLLECTION},
            "cloud_mask": {"band": CLOUD_SCORE_BAND, "clear_at_or_above": self.params.clear_threshold},
            "baseline_percentiles": list(BASELINE_PERCENTILES),
            "windows": windows.model_dump(mode="json"),
            "parameters": self.params.model_dump(mode="json"),
            "parameters_fingerprint": self.params.fingerprint(),
            "endpoint": self.url,
            "requests_per_region": 2,
            "tile_scales": list(TILE_SCALES),
            "max_pixels": MAX_PIXELS,
            "limiter": {
                "max_concurrency": self.limiter.max_concurrency,
                "project_quota": PROJECT_QUOTA,
                "deadline_s": self.deadline_s,
                "max_attempts": self.retry_policy.max_attempts,
                "base_delay_s": self.retry_policy.base_delay_s,
                "max_delay_s": self.retry_policy.max_delay_s,
            },
            "project": self._project,
        }

    def _ensure_client(self) -> None:
        with self._init_lock:
            if self._ready:
                return
            credentials, project, account = load_credentials(self._key_json, self._key_file, self._project)
            try:
                # Discovery and the algorithm list are requests too: transient failures
                # and 429s at start-up are retried like any other request.
                run_with_retries(
                    lambda _: initialize_client(
                        credentials,
                        project,
                        url=self.url,
                        deadline_s=self.deadline_s,
                        http_transport=self._http_transport,
                    ),
                    limiter=self.limiter,
                    policy=self.retry_policy,
                    what=f"client start-up for service account {account}, project {project}",
                    rng=self._rng,
                )
            except CredentialsError as exc:
                raise CredentialsError(f"{exc}; `--imagery demo` runs offline") from None
            except DetectionError as exc:
                raise PreflightError(f"Earth Engine at {self.url} is not usable: {exc}") from None
            log.info("earth engine ready", project=project, account=account, endpoint=self.url)
            self._ready = True

    def prepare(self, regions: list[Region], run_date: date) -> None:
        """Initialize the client and build every region's graph before the first request.

        Building costs ~10 ms of CPU a region under the GIL; done here it does not delay
        the first requests of the batch.
        """
        self._ensure_client()
        for region in regions:
            self._graph(region, run_date, TILE_SCALES[0])

    def _graph(self, region: Region, run_date: date, tile_scale: int) -> RegionGraph:
        key = (region.name, run_date, tile_scale)
        with self._graphs_lock:
            cached = self._graphs.get(key)
        if cached is None:
            cached = build_region_graph(region, run_date, self.params, tile_scale=tile_scale)
            with self._graphs_lock:
                self._graphs[key] = cached
        return cached

    def preflight(self) -> list[str]:
        """Credentials, project and dataset access, checked with one tiny computation."""
        import ee

        try:
            self._ensure_client()
            probe = ee.Dictionary(
                {
                    "s2": ee.ImageCollection(S2_COLLECTION).limit(1).size(),
                    "cloud_score": ee.ImageCollection(CLOUD_SCORE_COLLECTION).limit(1).size(),
                }
            )
            value = self._compute(lambda _: probe, "preflight probe", priority=0.0, cancel=None)
        except CCAPIError as exc:
            return [str(exc)]
        empty = [name for name, size in sorted(value.items()) if not size]
        return [f"Earth Engine: no images readable in {name}" for name in empty]

    def _compute(
        self,
        expression: Callable[[int], EEObject],
        what: str,
        *,
        priority: float,
        cancel: threading.Event | None,
        stats: RequestStats | None = None,
    ) -> Any:
        return run_with_retries(
            lambda escalation: compute_value(expression(escalation)),
            limiter=self.limiter,
            policy=self.retry_policy,
            what=what,
            priority=priority,
            cancel=cancel,
            rng=self._rng,
            stats=stats,
        )

    def detect(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        if cancel is not None and cancel.is_set():
            raise AbortedError(f"cancelled before detection of {region.name}")
        self._ensure_client()

        def graph(escalation: int) -> RegionGraph:
            return self._graph(region, run_date, TILE_SCALES[min(escalation, len(TILE_SCALES) - 1)])

        stats_cost, poly_cost = RequestStats(), RequestStats()
        stop_polygons = threading.Event()
        # Largest expected work first (statistics cost more than polygons): long requests
        # that start last are what stretch a heavy-tailed batch past its lower bound.
        priority = region.area_km2
        poly_future: Future[Any] = self._pool.submit(
            self._compute,
            lambda esc: graph(esc).polygons,
            f"polygons request for {region.name}",
            priority=priority * POLYGONS_RELATIVE_COST,
            cancel=stop_polygons,
            stats=poly_cost,
        )
        try:
            stats_value = self._compute(
                lambda esc: graph(esc).stats,
                f"statistics request for {region.name}",
                priority=priority,
                cancel=cancel,
                stats=stats_cost,
            )
            poly_value = self._wait(poly_future, cancel, stop_polygons)
        except BaseException:
            stop_polygons.set()
            raise
        fraction, areas, scenes = parse_stats(stats_value)
        polygons, count = parse_polygons(region.name, poly_value, run_date)
        details = {
            "requests": {"statistics": stats_cost.as_dict(), "polygons": poly_cost.as_dict()},
            "crs": f"EPSG:{region.utm_epsg}",
        }
        return region_result(
            self.params,
            source=self.name,
            observed_fraction=fraction,
            area_ha=areas,
            polygons=polygons,
            polygon_count=count,
            scenes=scenes,
            details=details,
        )

    @staticmethod
    def _wait(future: Future[Any], cancel: threading.Event | None, stop: threading.Event) -> Any:
        """The polygons result, passing a cancel of the region on to its retries."""
        while True:
            if cancel is not None and cancel.is_set():
                stop.set()
                raise AbortedError("cancelled while waiting for the polygons request")
            try:
                return future.result(timeout=0.2)
            except TimeoutError:
                continue
