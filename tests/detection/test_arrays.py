"""The array algorithm on in-memory stacks: rules, windows, masks, MMU, areas and polygons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, shape

from ccapi_monitor.detection import arrays
from ccapi_monitor.detection.arrays import (
    Observation,
    TileAccumulator,
    TileStats,
    classify_stack,
    measure_region,
    polygonize,
    remove_small_components,
    sorted_percentiles,
)
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.params import CLASS_VALUES, DetectionParams
from ccapi_monitor.regions import box

RUN = date(2025, 6, 2)
PARAMS = DetectionParams()
CLEAR, CLOUD, SHADOW = 4, 9, 3
CLEARING = CLASS_VALUES["vegetation_clearing"]
BUILT = CLASS_VALUES["built_up"]

Series = Callable[[date], tuple[float, float, int]]


def reflectances(ndvi: np.ndarray, ndwi: np.ndarray) -> dict[str, np.ndarray]:
    """Band values with exactly the given NDVI and NDWI (red fixed at 0.05)."""
    red = np.full_like(ndvi, 0.05)
    nir = red * (1 + ndvi) / (1 - ndvi)
    green = nir * (1 + ndwi) / (1 - ndwi)
    return {"red": red, "nir": nir, "green": green, "swir16": nir * 1.2}


def stack(series: list[Series], run_date: date = RUN, every: int = 5) -> tuple[list[date], dict, np.ndarray]:
    """A 1 x N stack: pixel i follows ``series[i](day) -> (ndvi, ndwi, scl)`` every ``every`` days."""
    windows = PARAMS.windows(run_date)
    days = [
        windows.span.start + timedelta(days=d) for d in range(0, (run_date - windows.span.start).days, every)
    ]
    values = np.array([[s(day) for s in series] for day in days], dtype=np.float32)  # (T, N, 3)
    bands = reflectances(values[..., 0], values[..., 1])
    return days, {k: v[:, None, :] for k, v in bands.items()}, values[..., 2].astype(np.uint8)[:, None, :]


def forest(day: date) -> tuple[float, float, int]:
    return 0.8, -0.6, CLEAR


def cleared_on(when: date) -> Series:
    return lambda day: (0.8, -0.6, CLEAR) if day < when else (0.15, -0.3, CLEAR)


def paddy(offset: int) -> Series:
    """Flooded 20 d, growing 70 d, ripening 10 d, harvested bare 20 d."""

    def value(day: date) -> tuple[float, float, int]:
        d = (day.toordinal() + offset) % 120
        if d < 20:
            return 0.0, 0.3, CLEAR
        if d < 90:
            return 0.2 + 0.6 * min(1.0, (d - 20) / 40), -0.3, CLEAR
        if d < 100:
            return 0.5, -0.4, CLEAR
        return 0.15, -0.25, CLEAR

    return value


def built_from(when: date) -> Series:
    return lambda day: paddy(0)(day) if day < when else (0.12, -0.2, CLEAR)


def classify(series: list[Series], run_date: date = RUN, params: DetectionParams = PARAMS):
    days, bands, scl = stack(series, run_date)
    return classify_stack(days, bands, scl, params, run_date)


def test_forest_cleared_within_current_window_is_clearing() -> None:
    result = classify([forest, cleared_on(RUN - timedelta(days=25))])
    assert result.classes[0].tolist() == [0, CLEARING]
    assert result.observed.all()


def test_clearing_needs_the_latest_recent_obs_to_be_low() -> None:
    # Cleared 7 days ago: the latest two clear observations are one forest, one bare.
    result = classify([cleared_on(RUN - timedelta(days=7))])
    assert result.classes[0, 0] == 0
    one = classify([cleared_on(RUN - timedelta(days=7))], params=PARAMS.model_copy(update={"recent_obs": 1}))
    assert one.classes[0, 0] == CLEARING


@pytest.mark.parametrize("offset", range(0, 120, 10))
def test_paddy_through_a_full_harvest_cycle_is_never_a_change(offset: int) -> None:
    result = classify([paddy(offset)])
    assert result.observed.all()
    assert result.classes[0, 0] == 0


def test_paddy_turned_to_construction_is_built_up() -> None:
    result = classify([built_from(RUN - timedelta(days=100)), paddy(0)])
    assert result.classes[0].tolist() == [BUILT, 0]


def test_built_up_needs_dry_observations_and_enough_of_them() -> None:
    flooded_once = RUN - timedelta(days=20)

    def wet(day: date) -> tuple[float, float, int]:
        return (
            (0.05, 0.2, CLEAR)
            if abs((day - flooded_once).days) < 3
            else built_from(RUN - timedelta(days=100))(day)
        )

    def one_clear(day: date) -> tuple[float, float, int]:
        ndvi, ndwi, _ = built_from(RUN - timedelta(days=100))(day)
        late = day >= RUN - timedelta(days=PARAMS.persist_days)
        return ndvi, ndwi, CLOUD if late and day < RUN - timedelta(days=5) else CLEAR

    result = classify([wet, one_clear])
    assert result.classes[0].tolist() == [0, 0]
    assert result.stats.persist_count[0, 1] == 1


def test_pixel_clouded_in_every_current_observation_is_unobserved() -> None:
    """Built-up in the earlier persistence scenes, but never seen in the current window."""

    def hidden(day: date) -> tuple[float, float, int]:
        ndvi, ndwi, _ = built_from(RUN - timedelta(days=100))(day)
        return ndvi, ndwi, SHADOW if day >= RUN - timedelta(days=PARAMS.current_days) else CLEAR

    result = classify([hidden, built_from(RUN - timedelta(days=100))])
    assert result.observed[0].tolist() == [False, True]
    assert result.classes[0].tolist() == [0, BUILT]


def test_all_cloud_stack_observes_nothing() -> None:
    result = classify([lambda day: (0.8, -0.6, CLOUD)] * 3)
    assert not result.observed.any()
    assert not result.classes.any()
    assert result.clear_days == set()


def test_single_scene_is_not_enough() -> None:
    days, bands, scl = stack([forest, cleared_on(RUN)])
    pick = [len(days) - 1]
    result = classify_stack([days[-1]], {k: v[pick] for k, v in bands.items()}, scl[pick], PARAMS, RUN)
    assert not result.observed.any()
    assert not result.classes.any()


def test_min_baseline_obs_boundary() -> None:
    windows = PARAMS.windows(RUN)

    def sparse(keep: int) -> Series:
        baseline_days = [windows.baseline.start + timedelta(days=5 * i) for i in range(keep)]
        return lambda day: (
            0.8,
            -0.6,
            CLEAR if day in baseline_days or not windows.baseline.contains(day) else CLOUD,
        )

    result = classify([sparse(PARAMS.min_baseline_obs - 1), sparse(PARAMS.min_baseline_obs)])
    assert result.observed[0].tolist() == [False, True]


def test_thresholds_are_read_from_params() -> None:
    cleared = cleared_on(RUN - timedelta(days=25))
    assert classify([cleared]).classes[0, 0] == CLEARING
    strict = PARAMS.model_copy(update={"cleared_ndvi": 0.1})
    assert classify([cleared], params=strict).classes[0, 0] == 0


def test_offset_free_indices_ignore_reflectance_scale() -> None:
    days, bands, scl = stack([forest, cleared_on(RUN - timedelta(days=25))])
    doubled = classify_stack(days, {k: v * 2 for k, v in bands.items()}, scl, PARAMS, RUN)
    assert doubled.classes[0].tolist() == [0, CLEARING]


def test_accumulator_rejects_out_of_order_scenes() -> None:
    windows = PARAMS.windows(RUN)
    acc = TileAccumulator(PARAMS, windows, (1, 1), 2)
    one = np.ones((1, 1), dtype=np.float32)
    obs = Observation(RUN - timedelta(days=5), np.ones((1, 1), bool), one, one, one)
    acc.add(obs)
    with pytest.raises(ValueError, match="date order"):
        acc.add(obs)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 12),
    st.floats(0.0, 0.9),
    st.integers(0, 2**32 - 1),
)
def test_sorted_percentiles_match_numpy(t: int, n: int, missing: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.random((t, n)).astype(np.float32)
    values[rng.random((t, n)) < missing] = np.nan
    expected = [np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)]
    for j in range(n):
        column = values[:, j][~np.isnan(values[:, j])]
        if column.size:
            expected[0][j], expected[1][j] = np.percentile(column, [10, 90])
    (p10, p90), count = sorted_percentiles(values.copy(), (0.1, 0.9))
    np.testing.assert_allclose(p10, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p90, expected[1], rtol=1e-5, atol=1e-6)
    assert count.tolist() == np.count_nonzero(~np.isnan(values), axis=0).tolist()


# -- steps 6-8 ------------------------------------------------------------------------

GRID = RegionGrid(epsg=32748, scale_m=10.0, west=700_000.0, north=9_300_000.0, width=40, height=30)


def test_mmu_is_eight_connected_and_per_class() -> None:
    classes = np.zeros((30, 40), dtype=np.uint8)
    for i in range(20):  # a diagonal line: one 8-connected component of 20 pixels
        classes[i, i] = CLEARING
    classes[0:4, 30:34] = BUILT  # 16 pixels: under the 20-pixel MMU at 10 m
    classes[25:30, 30:34] = CLEARING  # 20 pixels, kept
    labels, components = remove_small_components(classes, PARAMS.mmu_pixels)
    assert PARAMS.mmu_pixels == 20
    assert [(name, size) for _, name, size in components] == [
        ("vegetation_clearing", 20),
        ("vegetation_clearing", 20),
    ]
    assert not labels[0:4, 30:34].any()


def test_measure_region_areas_polygons_and_outside_pixels() -> None:
    classes = np.zeros((30, 40), dtype=np.uint8)
    classes[2:12, 2:12] = BUILT  # 100 px = 1 ha
    classes[15:20, 2:7] = CLEARING  # 25 px
    classes[2:12, 35:40] = CLEARING  # 50 px, outside the region
    inside = np.ones((30, 40), dtype=bool)
    inside[:, 30:] = False
    observed = np.ones((30, 40), dtype=bool)
    observed[20:, :] = False
    measure = measure_region(classes, observed, inside, GRID, PARAMS, "r")
    assert measure.observed_fraction == pytest.approx(20 / 30)
    assert measure.area_ha["built_up"] == pytest.approx(100 * GRID.pixel_area_ha, abs=1e-4)
    assert measure.area_ha["vegetation_clearing"] == pytest.approx(25 * GRID.pixel_area_ha, abs=1e-4)
    assert GRID.pixel_area_ha == pytest.approx(0.01, rel=3e-3)  # UTM scale near the meridian
    assert [p.change_class for p in measure.polygons] == ["built_up", "vegetation_clearing"]
    first = measure.polygons[0]
    geometry = shape(first.geometry)
    assert GRID.project(geometry).area == pytest.approx(100 * 100.0)
    assert geometry.contains(Point(first.centroid))
    assert -7 < first.centroid[1] < -6  # lon/lat output (EPSG:4326)


def test_polygons_are_capped_largest_first() -> None:
    classes = np.zeros((30, 40), dtype=np.uint8)
    sizes = [(0, 5), (6, 9), (12, 16), (19, 22)]
    for r0, r1 in sizes:  # rows of 40 px wide bands: 200, 120, 160, 120 px
        classes[r0:r1, :] = BUILT
    params = PARAMS.model_copy(update={"max_polygons": 2})
    measure = measure_region(
        classes, np.ones_like(classes, bool), np.ones_like(classes, bool), GRID, params, "r"
    )
    assert measure.polygon_count == 4
    # Every component is polygonized, largest first; region_result lists the first max_polygons.
    assert [round(p.area_ha / GRID.pixel_area_ha) for p in measure.polygons] == [200, 160, 120, 120]
    assert measure.area_ha["built_up"] == pytest.approx(600 * GRID.pixel_area_ha, abs=1e-4)


def test_region_mask_of_a_non_rectangular_polygon() -> None:
    lon, lat = GRID.unproject(box(*GRID.bounds)).centroid.coords[0]
    ring = [(lon - 0.1, lat - 0.1), (lon + 0.1, lat - 0.1), (lon, lat + 0.1), (lon - 0.1, lat - 0.1)]
    triangle = shape({"type": "Polygon", "coordinates": [ring]})
    grid = RegionGrid.for_geometry(triangle, 32748, 100.0)
    mask = grid.mask(triangle)
    projected = grid.project(triangle)
    assert mask.sum() * 100 * 100 == pytest.approx(projected.area, rel=0.02)
    assert not mask[0, 0]
    assert not mask[0, -1]
    assert mask[grid.height // 2, grid.width // 2]


def test_polygons_of_diagonally_touching_pixels_are_valid_geojson() -> None:
    """8-connectivity joins pixels at corners; the published geometry must still be valid."""
    grid = RegionGrid.for_geometry(box(110.0, -7.0, 110.01, -6.99), 32749, 10.0)
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[1, 1] = labels[2, 2] = labels[3, 3] = labels[3, 1] = labels[1, 3] = 1  # an X of pixels
    (polygon,) = polygonize(labels, [(1, "built_up", 5)], grid, "r")
    geometry = shape(polygon.geometry)
    assert geometry.is_valid
    assert geometry.area > 0
    assert polygon.area_ha == pytest.approx(5 * grid.pixel_area_ha)


# -- step 1 (band <= 0), step 5 (first match, seasonal-bare guard) -----------------------


def test_negative_reflectance_makes_the_observation_unobserved() -> None:
    """A band <= 0 after scaling (an offset applied to pixels that never had it) is no observation."""
    days, bands, scl = stack([forest, forest, forest])
    bands["red"][:, 0, 1] = -0.02  # NDVI would be above 1
    bands["swir16"][:, 0, 2] = 0.0
    bands["red"][-1, 0, 0] = -0.01  # only the newest scene of pixel 0
    result = classify_stack(days, bands, scl, PARAMS, RUN)
    assert result.observed[0].tolist() == [True, False, False]
    full = classify_stack(days, stack([forest])[1], stack([forest])[2], PARAMS, RUN)
    assert result.stats.current_count[0, 0] == full.stats.current_count[0, 0] - 1
    assert np.nanmax(result.stats.p90) <= 1.0


def test_same_day_twice_is_refused_not_counted_twice() -> None:
    """One observation per acquisition day: a second granule of a day must be mosaicked first."""
    days, bands, scl = stack([forest])
    twice = [*days, days[-1]]
    with pytest.raises(ValueError, match="date order"):
        classify_stack(
            twice,
            {k: np.concatenate([v, v[-1:]]) for k, v in bands.items()},
            np.concatenate([scl, scl[-1:]]),
            PARAMS,
            RUN,
        )


def _stats(**values: float) -> TileStats:
    """One pixel's statistics; unspecified ones are a stable, observed, unchanged forest."""
    base = {
        "p10": 0.7,
        "p90": 0.85,
        "baseline_count": 40,
        "ndvi_now": 0.8,
        "ndbi_now": -0.2,
        "current_count": 4,
        "persist_max_ndvi": 0.85,
        "persist_max_ndwi": -0.5,
        "persist_count": 10,
        "seasonal_bare": False,
        **values,
    }
    return TileStats(**{k: np.array([[v]]) for k, v in base.items()})


def test_pixel_matching_both_classes_gets_the_first() -> None:
    both = _stats(ndvi_now=0.1, persist_max_ndvi=0.2, persist_max_ndwi=-0.2)
    classes, _ = arrays.classify(both, PARAMS)
    assert classes[0, 0] == CLEARING  # vegetation_clearing comes first in CLASSES
    only_built = _stats(p10=0.3, ndvi_now=0.1, persist_max_ndvi=0.2, persist_max_ndwi=-0.2)
    assert arrays.classify(only_built, PARAMS)[0][0, 0] == BUILT
    guarded = _stats(p10=0.3, ndvi_now=0.1, persist_max_ndvi=0.2, persist_max_ndwi=-0.2, seasonal_bare=True)
    assert arrays.classify(guarded, PARAMS)[0][0, 0] == 0


def seasonal_field(bare_from_doy: int, bare_days: int = 95, built_from_day: date | None = None) -> Series:
    """A rain-fed field: green (NDVI 0.75) all year except ``bare_days`` of bare dry soil
    from ``bare_from_doy`` every year; bare for good from ``built_from_day``."""

    def value(day: date) -> tuple[float, float, int]:
        if built_from_day is not None and day >= built_from_day:
            return 0.12, -0.2, CLEAR
        if (day.timetuple().tm_yday - bare_from_doy) % 365 < bare_days:
            return 0.15, -0.25, CLEAR
        return 0.75, -0.5, CLEAR

    return value


def test_dry_season_fallow_is_not_built_up() -> None:
    """Bare through this year's persistence window, but also bare in the same season last year."""
    windows = PARAMS.windows(RUN)
    start = (windows.persistence.start - timedelta(days=14)).timetuple().tm_yday
    fallow = seasonal_field(start)
    result = classify([fallow])
    assert result.stats.persist_max_ndvi[0, 0] < PARAMS.built_max_ndvi  # the built-up test alone fires
    assert result.stats.seasonal_bare[0, 0]
    assert result.classes[0, 0] == 0
    unguarded = PARAMS.model_copy(update={"fallow_lookback_days": 0})  # no span fits: guard off
    assert classify([fallow], params=unguarded).classes[0, 0] == BUILT


def test_construction_on_a_field_green_a_year_earlier_is_built_up() -> None:
    """The same kind of field, bare in another season, built on 100 days ago: green a year
    earlier in this season, so the guard does not apply."""
    windows = PARAMS.windows(RUN)
    autumn = (windows.persistence.start + timedelta(days=150)).timetuple().tm_yday
    site = seasonal_field(autumn, built_from_day=RUN - timedelta(days=100))
    result = classify([site, seasonal_field(autumn)])
    assert not result.stats.seasonal_bare[0].any()
    assert result.classes[0].tolist() == [BUILT, 0]


def test_seasonal_spans_follow_the_parameters() -> None:
    windows = PARAMS.windows(RUN)
    assert [(w.start - windows.baseline.start).days for w in windows.fallow] == [0, 15, 30]
    assert {(w.end - w.start).days for w in windows.fallow} == {60}
    assert PARAMS.model_copy(update={"fallow_lookback_days": 59}).windows(RUN).fallow == ()


def test_mmu_applies_after_clipping_to_the_region() -> None:
    """A component of 30 pixels of which 15 lie inside the region is a 15-pixel sliver: dropped."""
    classes = np.zeros((30, 40), dtype=np.uint8)
    classes[10:16, 25:30] = BUILT  # 30 px straddling column 27/28
    classes[0:5, 0:5] = CLEARING  # 25 px inside
    inside = np.ones((30, 40), dtype=bool)
    inside[:, 28:] = False
    measure = measure_region(classes, np.ones_like(inside), inside, GRID, PARAMS, "r")
    assert measure.area_ha["built_up"] == 0.0
    assert measure.polygon_count == 1
    everywhere = measure_region(classes, np.ones_like(inside), np.ones_like(inside), GRID, PARAMS, "r")
    assert everywhere.area_ha["built_up"] > 0
