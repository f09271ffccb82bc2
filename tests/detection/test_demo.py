"""The demo archive: layout, determinism, reuse, and detection accuracy against planted truth."""

from __future__ import annotations

import json
import multiprocessing
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from shapely.geometry import shape

from ccapi_monitor.detection.demo import (
    ASSETS,
    DRY_FIELD,
    DemoBackend,
    DemoConfig,
    cog_blocksize,
    scene_days,
    synthesize,
)
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.detection.stac import StacBackend
from ccapi_monitor.errors import DetectionError
from ccapi_monitor.params import CLASSES, DetectionParams
from tests.detection.conftest import (
    REGION_A,
    TEST_CONFIG,
    DemoArchiveFixture,
    accuracy,
    paddy_false_share,
)


@pytest.mark.parametrize("region", ["alpha", "bravo"])
def test_accuracy_against_planted_footprints(demo_archive: DemoArchiveFixture, region: str) -> None:
    result = demo_archive.results[region]
    truth = demo_archive.backend.truth_path(region, demo_archive.run_date)
    scores = accuracy(result, truth, next(r for r in demo_archive.regions if r.name == region), 40.0)
    for name in CLASSES:
        assert scores[name]["truth_px"] >= 100, (name, scores[name])  # enough truth to mean something
        assert scores[name]["users"] >= 0.90, (name, scores[name])
        assert scores[name]["producers"] >= 0.90, (name, scores[name])


@pytest.mark.parametrize("region", ["alpha", "bravo"])
def test_paddy_harvests_are_not_changes(demo_archive: DemoArchiveFixture, region: str) -> None:
    backend = demo_archive.backend
    region_obj = next(r for r in demo_archive.regions if r.name == region)
    share = paddy_false_share(
        demo_archive.results[region], backend, region_obj, backend.truth_path(region, demo_archive.run_date)
    )
    assert share < 0.01


@pytest.mark.parametrize("region", ["alpha", "bravo"])
def test_dry_season_fallow_is_not_a_change(demo_archive: DemoArchiveFixture, region: str) -> None:
    """Rain-fed fields are bare through this dry-season run's persistence window, and were
    in the same season last year: the seasonal-bare guard keeps them out of built_up."""
    backend = demo_archive.backend
    region_obj = next(r for r in demo_archive.regions if r.name == region)
    truth = backend.truth_path(region, demo_archive.run_date)
    share = paddy_false_share(demo_archive.results[region], backend, region_obj, truth, DRY_FIELD)
    assert share < 0.01


def test_dry_fields_are_built_up_without_the_seasonal_guard(demo_archive: DemoArchiveFixture) -> None:
    """The demo's dry fields do exercise the guard: switched off, many read as construction."""
    unguarded = demo_archive.backend.params.model_copy(update={"fallow_lookback_days": 0})
    backend = DemoBackend(unguarded, demo_archive.backend.archive.root.parent, TEST_CONFIG)
    result = backend.detect(REGION_A, demo_archive.run_date)
    truth = backend.truth_path(REGION_A.name, demo_archive.run_date)
    assert paddy_false_share(result, backend, REGION_A, truth, DRY_FIELD) > 0.1


def test_result_says_demo(demo_archive: DemoArchiveFixture) -> None:
    result = demo_archive.results[REGION_A.name]
    assert result.source == "demo"
    assert result.status == "ok"
    assert result.scenes["baseline"] >= 20
    assert result.scenes["current"] >= 3
    assert result.polygon_count == len(result.polygons)
    areas = [p.area_ha for p in result.polygons]
    assert areas == sorted(areas, reverse=True)
    described = demo_archive.backend.describe(demo_archive.run_date)
    assert described["source"] == "demo"
    assert described["scale_m"] == TEST_CONFIG.scale_m


def test_demo_params_use_the_archive_pixel_size() -> None:
    params = DetectionParams(clearing_drop=0.2)
    adjusted = DemoBackend.demo_params(params)
    assert adjusted.scale_m == DemoConfig().scale_m
    assert adjusted.model_dump(exclude={"scale_m"}) == params.model_dump(exclude={"scale_m"})


def test_archive_layout_is_earth_search_like(demo_archive: DemoArchiveFixture) -> None:
    items = json.loads(
        demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date).read_text()
    )["features"]
    days = scene_days(demo_archive.run_date, demo_archive.backend.params, TEST_CONFIG)
    # alpha lies in the overlap of two granules of its UTM zone: two items a day, overlapping.
    by_day: dict[str, list[dict[str, Any]]] = {}
    for feature in items:
        by_day.setdefault(feature["properties"]["datetime"][:10], []).append(feature)
    assert len(by_day) == len(days)
    assert {len(v) for v in by_day.values()} == {2}
    north, south = (shape(f["geometry"]) for f in next(iter(by_day.values())))
    assert north.intersection(south).area > 0.2 * north.area
    offsets = {i["assets"]["red"]["raster:bands"][0].get("offset") for i in items}
    assert offsets == {None, -0.1}
    item = items[0]
    assert item["collection"] == "sentinel-2-l2a"
    assert set(item["assets"]) == set(ASSETS)
    items_dir = demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date).parent
    sizes = {}
    for key, asset in item["assets"].items():
        with rasterio.open(items_dir / asset["href"]) as src:
            sizes[key] = src.res[0]
            assert src.driver == "GTiff"
            assert src.profile["tiled"]
            assert src.block_shapes[0] == (cog_blocksize(src.width, src.height),) * 2
            assert src.block_shapes[0][0] >= max(src.width, src.height)  # one tile holds these small images
    assert sizes["red"] == TEST_CONFIG.scale_m
    assert sizes["swir16"] == sizes["scl"] == 2 * TEST_CONFIG.scale_m


def test_scenes_are_deterministic(demo_archive: DemoArchiveFixture) -> None:
    world = demo_archive.backend.archive.world(REGION_A, demo_archive.run_date)
    day = scene_days(demo_archive.run_date, demo_archive.backend.params, TEST_CONFIG)[-1]
    a, b = synthesize(world, day, TEST_CONFIG), synthesize(world, day, TEST_CONFIG)
    assert all(np.array_equal(a.bands[k], b.bands[k]) for k in a.bands)
    assert np.array_equal(a.scl, b.scl)
    codes = set(np.unique(a.scl).tolist())
    assert codes <= {2, 3, 4, 5, 6, 8, 9, 10}


def test_prepare_reuses_the_archive(demo_archive: DemoArchiveFixture) -> None:
    root = demo_archive.backend.archive.root
    cogs = sorted(root.glob("scenes/alpha/*/red.tif"))
    before = {p: p.stat().st_mtime_ns for p in cogs}
    fresh = DemoBackend(DetectionParams(max_polygons=100_000), root.parent, TEST_CONFIG)
    fresh.prepare([REGION_A], demo_archive.run_date)
    assert {p: p.stat().st_mtime_ns for p in cogs} == before
    truth = json.loads(fresh.truth_path(REGION_A.name, demo_archive.run_date).read_text())
    assert {f["properties"]["class"] for f in truth["features"]} >= {*CLASSES, "transition"}


def test_preflight_needs_a_writable_archive_folder(tmp_path: Path) -> None:
    assert DemoBackend(DetectionParams(), tmp_path / "archive").preflight() == []
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    problems = DemoBackend(DetectionParams(), blocker).preflight()
    assert len(problems) == 1
    assert "not writable" in problems[0]


def test_detect_before_prepare_fails(tmp_path: Path) -> None:
    with pytest.raises(DetectionError, match="prepare"):
        DemoBackend(DetectionParams(), tmp_path).detect(REGION_A, date(2025, 8, 13))


def test_no_detection_where_every_current_observation_is_clouded(
    demo_archive: DemoArchiveFixture, tmp_path: Path
) -> None:
    """Cloud (SCL 9) over the largest detected change in every current scene: it must vanish."""
    backend = demo_archive.backend
    run_date = demo_archive.run_date
    items_path = backend.archive.items_path(REGION_A.name, run_date)
    features = json.loads(items_path.read_text())["features"]
    target = demo_archive.results[REGION_A.name].polygons[0]
    grid = RegionGrid.for_region(REGION_A, backend.params.scale_m)
    footprint = grid.project(shape(target.geometry))
    current = backend.params.windows(run_date).current
    clouded = 0
    for feature in features:
        for asset in feature["assets"].values():
            asset["href"] = str((items_path.parent / asset["href"]).resolve())
        if not current.contains(date.fromisoformat(feature["properties"]["datetime"][:10])):
            continue
        with rasterio.open(feature["assets"]["scl"]["href"]) as src:
            profile, scl = src.profile, src.read(1)
            with warnings.catch_warnings():  # rasterio warns about its temporary in-memory dataset
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                cover = rasterize(
                    [footprint.buffer(2 * src.res[0])], out_shape=scl.shape, transform=src.transform
                )
        scl[cover > 0] = 9
        out = tmp_path / f"{feature['id']}_scl.tif"
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(scl, 1)
        feature["assets"]["scl"]["href"] = str(out)
        clouded += 1
    assert clouded >= 3
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    result = StacBackend(backend.params, str(path)).detect(REGION_A, run_date)
    for polygon in result.polygons:
        assert not shape(polygon.geometry).intersects(shape(target.geometry).buffer(-1e-6))
    assert result.observed_fraction < demo_archive.results[REGION_A.name].observed_fraction
    # The rest of the region is unaffected.
    assert result.polygon_count == demo_archive.results[REGION_A.name].polygon_count - 1


def test_detection_in_worker_processes_equals_detection_in_process(demo_archive: DemoArchiveFixture) -> None:
    """The fixture's backend ran ``prepare``, so it detected in forked workers; a backend that
    did not detects in-process. Same result, and the workers' offset verdicts reached the
    backend's ledger (the report's corrections and chips read it)."""
    assert any(child.name.startswith("ForkPoolWorker") for child in multiprocessing.active_children())
    here = DemoBackend(demo_archive.backend.params, demo_archive.backend.archive.root.parent, TEST_CONFIG)
    for region in demo_archive.regions:
        in_process = here.detect(region, demo_archive.run_date)
        in_worker = demo_archive.results[region.name]
        assert in_worker.model_dump(exclude={"duration_s"}) == in_process.model_dump(exclude={"duration_s"})
    assert demo_archive.backend.corrections() == here.corrections()
    assert len(here.corrections()) > 0
    read = here.items_read()
    assert read is not None
    assert read > 0
    assert demo_archive.backend.items_read() == read


def test_make_demo_defaults_are_coarse_and_sparse(tmp_path: Path) -> None:
    """The default (make demo) archive: 100 m pixels, 15-day baseline cadence, 5-day recent."""
    backend = DemoBackend(DetectionParams(), tmp_path)
    run_date = date(2025, 8, 13)
    world = backend.archive.world(REGION_A, run_date)
    assert backend.params.scale_m == 100.0
    assert world.grid.width * world.grid.scale_m == pytest.approx(7000, abs=600)
    days = scene_days(run_date, backend.params, backend.config)
    windows = backend.params.windows(run_date)
    recent = [d for d in days if windows.persistence.contains(d)]
    assert len(recent) == 12
    assert len(days) - len(recent) in (24, 25)
