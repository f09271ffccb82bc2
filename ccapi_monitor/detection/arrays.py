"""docs/design/detection.md steps 2-8 as array code: masks, indices, per-pixel statistics, classes,
minimum mapping unit, equal-area hectares and polygons.

The work splits in two so memory stays bounded: per spatial tile, scenes stream
through a :class:`TileAccumulator` in date order (only the baseline NDVI is kept as
a stack, because percentiles need every value); per region, :func:`measure_region`
runs the minimum mapping unit and polygonization on the small uint8 class raster.
:func:`classify_stack` does the per-tile part for an in-memory time stack.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, cast

import numpy as np
import rasterio.features
import shapely
from numpy.typing import NDArray
from scipy import ndimage
from shapely.geometry import mapping, shape

from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.models import ChangePolygon
from ccapi_monitor.params import CLASS_VALUES, CLASSES, DetectionParams, Windows

FloatArray = NDArray[np.float32]
BoolArray = NDArray[np.bool_]

#: Reflectance bands the algorithm reads (Earth Search asset keys); SCL comes separately.
REFLECTANCE_BANDS: Final[tuple[str, ...]] = ("green", "red", "nir", "swir16")
UNCLASSIFIED: Final = 0
_EIGHT_CONNECTED: Final = np.ones((3, 3), dtype=bool)


@dataclass
class Observation:
    """One scene on one tile after masking (step 2) and indices (step 3); NaN where not clear.

    NDWI is only computed for persistence-window scenes and NDBI only for current-window
    scenes (``None`` elsewhere): nothing else reads them, and the baseline is most scenes.
    """

    day: date
    clear: BoolArray
    ndvi: FloatArray
    ndwi: FloatArray | None = None
    ndbi: FloatArray | None = None


@functools.cache
def _clear_lookup(scl_clear: tuple[int, ...]) -> BoolArray:
    table = np.zeros(256, dtype=bool)
    table[list(scl_clear)] = True
    return table


def _index(a: FloatArray, b: FloatArray, total: FloatArray, where: BoolArray) -> FloatArray:
    """(a - b) / total where ``where``, NaN elsewhere (two passes, no masked writes)."""
    out = a - b
    np.divide(out, total, out=out)
    return np.where(where, out, np.float32(np.nan))


def observe(
    day: date,
    bands: Mapping[str, FloatArray],
    scl: NDArray[Any],
    params: DetectionParams,
    windows: Windows | None = None,
) -> Observation:
    """Mask one scene and compute its indices.

    ``bands`` are surface reflectances (NaN for nodata), or reflectances times one
    positive factor common to the bands. A pixel is clear when its SCL class is kept
    and every band read is above 0 (docs/design/detection.md step 1, the same rule as the Earth
    Engine graph): with the -0.1 offset of baseline 04.00, dark pixels can go negative,
    and a negative band makes an index meaningless (NDVI above 1). With ``windows``,
    indices a scene's windows do not use are skipped.
    """
    green, red, nir, swir = bands["green"], bands["red"], bands["nir"], bands["swir16"]
    clear = _clear_lookup(tuple(params.scl_clear))[scl.astype(np.uint8, copy=False)]
    with np.errstate(invalid="ignore", divide="ignore"):
        for band in (green, red, nir, swir):
            clear &= band > 0  # False for NaN (nodata)
        obs = Observation(day=day, clear=clear, ndvi=_index(nir, red, nir + red, clear))
        if windows is None or windows.persistence.contains(day) or windows.in_fallow(day):
            obs.ndwi = _index(green, nir, green + nir, clear)
        if windows is None or windows.current.contains(day):
            obs.ndbi = _index(swir, nir, swir + nir, clear)
    return obs


@dataclass
class TileStats:
    """Per-pixel statistics of one tile (step 4)."""

    p10: FloatArray
    p90: FloatArray
    baseline_count: NDArray[np.int16]
    ndvi_now: FloatArray
    ndbi_now: FloatArray
    current_count: NDArray[np.int16]
    persist_max_ndvi: FloatArray
    persist_max_ndwi: FloatArray
    persist_count: NDArray[np.int16]
    #: Seasonal-bare guard: bare and dry through one of last year's same-season spans.
    seasonal_bare: BoolArray


#: Columns sorted at a time by :func:`sorted_percentiles`: a block of a year of values
#: (4096 x ~70 float32, about 1 MB) stays in cache while it is transposed and sorted.
PERCENTILE_BLOCK: Final = 4096


def sorted_percentiles(
    stack: FloatArray, quantiles: Sequence[float]
) -> tuple[list[FloatArray], NDArray[Any]]:
    """Per-column percentiles of a ``(T, N)`` stack with NaN for missing values.

    Same definition as ``numpy.nanpercentile`` (linear interpolation), but one sort for
    all quantiles: nanpercentile is about 20 times slower on these shapes. The columns
    are sorted in blocks, each copied so that a pixel's values are contiguous: sorting
    along the first axis of the whole stack walks memory with a stride of a row and
    costs about twice as much (benchmarks/README.md). ``stack`` is left unchanged.
    Returns the percentiles (NaN where a column has no value) and the value counts.
    """
    n = stack.shape[1]
    results = [np.empty(n, dtype=np.float32) for _ in quantiles]
    count = np.empty(n, dtype=np.intp)
    for start in range(0, n, PERCENTILE_BLOCK):
        stop = min(n, start + PERCENTILE_BLOCK)
        block = stack[:, start:stop].T.copy()  # (pixels, T), C order: a copy, even of one column
        block.sort(axis=1)  # NaN sorts last
        block_count = np.count_nonzero(~np.isnan(block), axis=1)
        last = np.maximum(block_count - 1, 0)
        for out, q in zip(results, quantiles, strict=True):
            pos = q * last
            lo = np.floor(pos).astype(np.intp)
            hi = np.minimum(lo + 1, last)
            frac = (pos - lo).astype(np.float32)
            low = np.take_along_axis(block, lo[:, None], axis=1)[:, 0]
            high = np.take_along_axis(block, hi[:, None], axis=1)[:, 0]
            value = low + (high - low) * frac
            value[block_count == 0] = np.nan
            out[start:stop] = value
        count[start:stop] = block_count
    return results, count


class TileAccumulator:
    """Streams a tile's observations, in date order, into the statistics of step 4.

    Only the baseline NDVI is held as a stack (percentiles need every value); the
    persistence statistics are running maxima and the current window keeps its few
    scenes, so memory is ``baseline scenes x tile pixels`` floats.
    """

    def __init__(
        self, params: DetectionParams, windows: Windows, shape: tuple[int, int], baseline_scenes: int
    ) -> None:
        self.params = params
        self.windows = windows
        self.shape = shape
        # Not pre-filled: every baseline scene writes its row, and finish() reads only those
        # (filling ~300 MB with NaN first cost a second pass over the largest array).
        self._baseline = np.empty((max(baseline_scenes, 1), *shape), dtype=np.float32)
        self._n_baseline = 0
        self._current: list[Observation] = []
        self._persist_max_ndvi = np.full(shape, -np.inf, dtype=np.float32)
        self._persist_max_ndwi = np.full(shape, -np.inf, dtype=np.float32)
        self._persist_count = np.zeros(shape, dtype=np.int16)
        # Per seasonal-bare span: max NDVI, max NDWI and clear count, like the persistence window.
        self._fallow = [
            (
                np.full(shape, -np.inf, dtype=np.float32),
                np.full(shape, -np.inf, dtype=np.float32),
                np.zeros(shape, dtype=np.int16),
            )
            for _ in windows.fallow
        ]
        self._last_day: date | None = None

    def add(self, obs: Observation) -> None:
        if self._last_day is not None and obs.day <= self._last_day:
            raise ValueError(f"observations must arrive in date order ({obs.day} after {self._last_day})")
        self._last_day = obs.day
        if self.windows.baseline.contains(obs.day):
            if self._n_baseline == self._baseline.shape[0]:
                raise ValueError("more baseline scenes than announced")
            self._baseline[self._n_baseline] = obs.ndvi
            self._n_baseline += 1
        # Running maxima and counts of the persistence window and of each seasonal span.
        spans = [
            acc for acc, span in zip(self._fallow, self.windows.fallow, strict=True) if span.contains(obs.day)
        ]
        if self.windows.persistence.contains(obs.day):
            spans.append((self._persist_max_ndvi, self._persist_max_ndwi, self._persist_count))
        if spans and obs.ndwi is None:
            raise ValueError(f"scene {obs.day} in the persistence window or a seasonal span lacks NDWI")
        for max_ndvi, max_ndwi, count in spans:
            np.fmax(max_ndvi, obs.ndvi, out=max_ndvi)
            np.fmax(max_ndwi, cast(FloatArray, obs.ndwi), out=max_ndwi)
            count += obs.clear
        if self.windows.current.contains(obs.day):
            if obs.ndbi is None:
                raise ValueError(f"scene {obs.day} in the current window lacks NDBI")
            self._current.append(obs)

    def finish(self) -> TileStats:
        height, width = self.shape
        if self._n_baseline == 0:
            self._baseline[0] = np.nan  # no baseline scene: every pixel has no value
        flat = self._baseline[: max(self._n_baseline, 1)].reshape(-1, height * width)
        (p10, p90), count = sorted_percentiles(flat, (0.10, 0.90))
        # NDVI_now: mean of the latest ``recent_obs`` clear observations, newest first.
        total = np.zeros(self.shape, dtype=np.float32)
        ndbi_total = np.zeros(self.shape, dtype=np.float32)
        taken = np.zeros(self.shape, dtype=np.int16)
        current_count = np.zeros(self.shape, dtype=np.int16)
        for obs in reversed(self._current):
            take = obs.clear & (taken < self.params.recent_obs)
            total[take] += obs.ndvi[take]
            ndbi_total[take] += np.nan_to_num(cast(FloatArray, obs.ndbi)[take])
            taken += take
            current_count += obs.clear
        with np.errstate(invalid="ignore", divide="ignore"):
            ndvi_now = np.where(taken > 0, total / taken, np.nan).astype(np.float32)
            ndbi_now = np.where(taken > 0, ndbi_total / taken, np.nan).astype(np.float32)
        return TileStats(
            p10=p10.reshape(self.shape),
            p90=p90.reshape(self.shape),
            baseline_count=count.reshape(self.shape).astype(np.int16),
            ndvi_now=ndvi_now,
            ndbi_now=ndbi_now,
            current_count=current_count,
            persist_max_ndvi=self._persist_max_ndvi,
            persist_max_ndwi=self._persist_max_ndwi,
            persist_count=self._persist_count,
            seasonal_bare=self._seasonal_bare(),
        )

    def _seasonal_bare(self) -> BoolArray:
        """Pixels bare and dry in every clear observation of one seasonal span (at least
        ``built_min_obs`` of them): dry-season fallow, which is bare every year."""
        bare = np.zeros(self.shape, dtype=bool)
        for max_ndvi, max_ndwi, count in self._fallow:
            bare |= bare_and_dry(max_ndvi, max_ndwi, count, self.params)
        return bare


def bare_and_dry(
    max_ndvi: FloatArray, max_ndwi: FloatArray, count: NDArray[np.int16], params: DetectionParams
) -> BoolArray:
    """Every clear observation of a span below ``built_max_ndvi`` NDVI and ``built_max_ndwi``
    NDWI, over at least ``built_min_obs`` of them: the built-up test, also used on last
    year's same-season spans by the seasonal-bare guard."""
    return (
        (max_ndvi < params.built_max_ndvi)
        & (max_ndwi < params.built_max_ndwi)
        & (count >= params.built_min_obs)
    )


def classify(stats: TileStats, params: DetectionParams) -> tuple[NDArray[np.uint8], BoolArray]:
    """Step 5: class values (0 none, see ``CLASS_VALUES``) and the observed mask.

    ``built_up`` excludes pixels the seasonal-bare guard found bare in last year's same
    season: dry-season fallow is bare for months every year, a building site was green.

    A pixel is observed when it has ``min_baseline_obs`` clear baseline observations
    and at least one clear observation in the current window: what is reported as
    "now" must have been seen now, so a pixel under cloud or shadow in every current
    scene gets no class, whatever the earlier persistence scenes showed.
    """
    observed = (stats.baseline_count >= params.min_baseline_obs) & (stats.current_count >= 1)
    with np.errstate(invalid="ignore"):
        clearing = (
            (stats.p10 >= params.stable_veg_p10)
            & (stats.ndvi_now < stats.p10 - params.clearing_drop)
            & (stats.ndvi_now < params.cleared_ndvi)
        )
        built = (
            (stats.p90 >= params.green_p90)
            & bare_and_dry(stats.persist_max_ndvi, stats.persist_max_ndwi, stats.persist_count, params)
            & ~stats.seasonal_bare
        )
    classes = np.zeros(stats.p10.shape, dtype=np.uint8)
    classes[built & observed] = CLASS_VALUES["built_up"]
    classes[clearing & observed] = CLASS_VALUES["vegetation_clearing"]  # first match wins
    return classes, observed


@dataclass
class TileClassification:
    classes: NDArray[np.uint8]
    observed: BoolArray
    stats: TileStats
    #: Days with at least one clear pixel, for the scene counts of the result.
    clear_days: set[date] = field(default_factory=set)


def classify_stack(
    days: Sequence[date],
    bands: Mapping[str, FloatArray],
    scl: NDArray[Any],
    params: DetectionParams,
    run_date: date,
) -> TileClassification:
    """Steps 2-5 for an in-memory ``(T, H, W)`` stack of reflectances and SCL, days ascending."""
    windows = params.windows(run_date)
    order = sorted(range(len(days)), key=lambda i: days[i])
    shape = cast(tuple[int, int], tuple(scl.shape[1:]))
    acc = TileAccumulator(params, windows, shape, sum(windows.baseline.contains(d) for d in days))
    clear_days: set[date] = set()
    for i in order:
        obs = observe(days[i], {k: bands[k][i] for k in REFLECTANCE_BANDS}, scl[i], params, windows)
        if obs.clear.any():
            clear_days.add(days[i])
        acc.add(obs)
    stats = acc.finish()
    classes, observed = classify(stats, params)
    return TileClassification(classes=classes, observed=observed, stats=stats, clear_days=clear_days)


def scene_counts(clear_days: set[date], windows: Windows) -> dict[str, int]:
    """Clear-scene counts per window (a scene counts when any region pixel was clear)."""
    return {
        name: sum(getattr(windows, name).contains(d) for d in clear_days)
        for name in ("baseline", "persistence", "current")
    }


@dataclass
class RegionMeasure:
    """Steps 6-8 for one region."""

    observed_fraction: float
    area_ha: dict[str, float]
    polygons: list[ChangePolygon]
    polygon_count: int
    mean_ndbi: dict[str, float | None]


def remove_small_components(
    classes: NDArray[np.uint8], min_pixels: int
) -> tuple[NDArray[np.int32], list[tuple[int, str, int]]]:
    """Step 6: label 8-connected components per class and drop those under ``min_pixels``.

    Returns a label raster (0 outside kept components) and ``(label, class, pixels)``
    for each kept component, largest first (ties: lowest label, i.e. top-left first).
    """
    labels = np.zeros(classes.shape, dtype=np.int32)
    components: list[tuple[int, str, int]] = []
    offset = 0
    for name in CLASSES:
        lab, n = ndimage.label(classes == CLASS_VALUES[name], structure=_EIGHT_CONNECTED)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = np.flatnonzero(sizes >= min_pixels)
        keep = keep[keep > 0]
        lookup = np.zeros(n + 1, dtype=np.int32)
        lookup[keep] = np.arange(offset + 1, offset + 1 + keep.size, dtype=np.int32)
        relabelled = lookup[lab]
        labels = np.where(relabelled > 0, relabelled, labels)
        components.extend((offset + 1 + i, name, int(sizes[old])) for i, old in enumerate(keep.tolist()))
        offset += keep.size
    components.sort(key=lambda c: (-c[2], c[0]))
    return labels, components


def _valid(geometry: Any) -> Any:
    """8-connected pixels touch at corners, which GeoJSON consumers reject as self-touching
    rings; ``make_valid`` splits them into a valid (Multi)Polygon with the same area."""
    return geometry if geometry.is_valid else shapely.make_valid(geometry, method="structure")


def polygonize(
    labels: NDArray[np.int32],
    components: Sequence[tuple[int, str, int]],
    grid: RegionGrid,
    region_name: str,
) -> list[ChangePolygon]:
    """Step 8: one lon/lat polygon per component, in the order given."""
    wanted = np.zeros(int(labels.max()) + 1, dtype=bool)
    for label, _, _ in components:
        wanted[label] = True
    selected = np.where(wanted[labels], labels, 0).astype(np.int32)
    parts: dict[int, list[Any]] = {}
    for geom, value in rasterio.features.shapes(
        selected, mask=selected > 0, connectivity=8, transform=grid.transform
    ):
        parts.setdefault(int(value), []).append(shape(geom))
    polygons = []
    for label, name, pixels in components:
        utm = _valid(shapely.union_all(parts[label]) if len(parts[label]) > 1 else parts[label][0])
        lonlat = _valid(grid.unproject(utm))
        centroid = grid.unproject(utm.centroid)
        polygons.append(
            ChangePolygon(
                region=region_name,
                change_class=cast(Any, name),
                area_ha=pixels * grid.pixel_area_ha,
                centroid=(float(centroid.x), float(centroid.y)),
                geometry=mapping(lonlat),
            )
        )
    return polygons


def measure_region(
    classes: NDArray[np.uint8],
    observed: BoolArray,
    inside: BoolArray,
    grid: RegionGrid,
    params: DetectionParams,
    region_name: str,
    ndbi_now: FloatArray | None = None,
) -> RegionMeasure:
    """Steps 6-8 on a region's class raster; pixels outside the region count for nothing."""
    classes = np.where(inside, classes, UNCLASSIFIED).astype(np.uint8)
    n_inside = int(np.count_nonzero(inside))
    observed_fraction = float(np.count_nonzero(observed & inside)) / n_inside if n_inside else 0.0
    labels, components = remove_small_components(classes, params.mmu_pixels)
    area_ha = dict.fromkeys(CLASSES, 0.0)
    for _, name, pixels in components:
        area_ha[name] += pixels * grid.pixel_area_ha
    mean_ndbi: dict[str, float | None] = {}
    for name in CLASSES:
        kept = (labels > 0) & (classes == CLASS_VALUES[name])
        values = ndbi_now[kept] if ndbi_now is not None else np.empty(0, np.float32)
        values = values[np.isfinite(values)]
        mean_ndbi[name] = round(float(values.mean()), 4) if values.size else None
    # Every component: the first max_polygons are listed, all form the week-over-week footprint.
    polygons = polygonize(labels, components, grid, region_name)
    return RegionMeasure(
        observed_fraction=observed_fraction,
        area_ha={k: round(v, 4) for k, v in area_ha.items()},
        polygons=polygons,
        polygon_count=len(components),
        mean_ndbi=mean_ndbi,
    )
