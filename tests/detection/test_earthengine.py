"""The Earth Engine graph, built offline with the real client and its shipped algorithm list."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import ee
import numpy as np
import pytest

from ccapi_monitor.detection import arrays
from ccapi_monitor.detection.earthengine import (
    BASELINE_PERCENTILES,
    CLOUD_SCORE_BAND,
    CLOUD_SCORE_COLLECTION,
    MAX_FOOTPRINT_POLYGONS,
    MAX_PIXELS,
    S2_COLLECTION,
    SCENE_CHECK_SCALE_M,
    TILE_SCALES,
    UNOBSERVED,
    EarthEngineBackend,
    build_region_graph,
    parse_polygons,
    parse_stats,
)
from ccapi_monitor.detection.ee_quota import AdaptiveLimiter
from ccapi_monitor.errors import DetectionError
from ccapi_monitor.params import CLASS_VALUES, DetectionParams
from ccapi_monitor.regions import Region, load_regions
from tests.detection.ee_support import NetworkForbiddenError, algorithm_names, offline_ee

RUN_DATE = date(2026, 11, 23)
FIXTURES = Path(__file__).parent / "ee_fixtures"
#: Set to 1 to rewrite the golden serializations after an intended graph change.
UPDATE_GOLDEN = os.environ.get("CCAPI_UPDATE_EE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with offline_ee():
        yield


@pytest.fixture(scope="module")
def regions() -> list[Region]:
    return load_regions()


def encode(obj: Any) -> dict[str, Any]:
    encoded: dict[str, Any] = ee.serializer.encode(obj, for_cloud_api=True)
    return encoded


def expand(encoded: dict[str, Any]) -> Any:
    """The serialized expression with every ``valueReference`` replaced by its value."""
    values = encoded["values"]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return walk(values[node["valueReference"]])
            if "functionDefinitionValue" in node:  # a mapped function's body is a bare reference
                definition = node["functionDefinitionValue"]
                return {"functionDefinitionValue": {**definition, "body": walk(values[definition["body"]])}}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(values[encoded["result"]])


def invocations(tree: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every function call in the tree, with its arguments (constants unwrapped)."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            call = node.get("functionInvocationValue")
            if call is not None:
                args = {k: constant(v) for k, v in call.get("arguments", {}).items()}
                found.append((call["functionName"], args))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found


def constant(node: Any) -> Any:
    """A constant argument's value, also through ``Image.constant`` and array literals; else the node."""
    if isinstance(node, dict):
        if "constantValue" in node:
            return node["constantValue"]
        if "arrayValue" in node:
            return [constant(v) for v in node["arrayValue"]["values"]]
        call = node.get("functionInvocationValue")
        if call and call["functionName"] == "Image.constant":
            return constant(call["arguments"]["value"])
    return node


def calls(tree: Any, name: str) -> list[dict[str, Any]]:
    return [args for fn, args in invocations(tree) if fn == name]


def graph_trees(region: Region, params: DetectionParams, **kwargs: Any) -> tuple[Any, Any]:
    graph = build_region_graph(region, RUN_DATE, params, **kwargs)
    return expand(encode(graph.stats)), expand(encode(graph.polygons))


def test_datasets_and_cloud_score_link(offline: None, regions: list[Region]) -> None:
    stats, polygons = graph_trees(regions[0], DetectionParams())
    for tree in (stats, polygons):
        loaded = {args["id"] for args in calls(tree, "ImageCollection.load")}
        assert loaded == {S2_COLLECTION, CLOUD_SCORE_COLLECTION}
        links = calls(tree, "Image.linkCollection")
        assert links
        assert all(args["linkedBands"] == [CLOUD_SCORE_BAND] for args in links)


def test_cloud_mask_threshold_comes_from_params(offline: None, regions: list[Region]) -> None:
    for threshold in (0.6, 0.45):
        stats, _ = graph_trees(regions[0], DetectionParams(clear_threshold=threshold))
        masks = {
            args["image2"]
            for args in calls(stats, "Image.gte")
            if calls(args["image1"], "Image.select")
            and calls(args["image1"], "Image.select")[0]["bandSelectors"] == [CLOUD_SCORE_BAND]
        }
        assert masks == {threshold}


def test_percentiles_and_windows_from_run_date(offline: None, regions: list[Region]) -> None:
    params = DetectionParams()
    stats, polygons = graph_trees(regions[0], params)
    for tree in (stats, polygons):
        # numpy's linear definition spelled out: sorted values, position q * (n - 1).
        assert not calls(tree, "Reducer.percentile")
        assert calls(tree, "Image.arraySort")
        positions = {
            args["image2"] for args in calls(tree, "Image.multiply") if isinstance(args["image2"], float)
        }
        assert {q / 100 for q in BASELINE_PERCENTILES} <= positions
    windows = params.windows(RUN_DATE)
    expected = {
        (w.start.isoformat(), w.end.isoformat())
        for w in (windows.span, windows.baseline, windows.persistence, windows.current, *windows.fallow)
    }
    ranges = {(args["start"], args["end"]) for args in calls(stats, "DateRange")}
    assert ranges == expected
    assert ("2025-09-24", "2026-09-24") in ranges  # baseline: 365 days before the 60-day persistence window


def test_windows_without_scenes_reduce_to_unobserved_not_errors(offline: None, regions: list[Region]) -> None:
    stats, _ = graph_trees(regions[0], DetectionParams())
    placeholders = [
        args["collection2"]
        for args in calls(stats, "ImageCollection.merge")
        if calls(args["collection2"], "Image.updateMask")
    ]
    # baseline, current and persistence each merge a fully masked placeholder image
    assert len({json.dumps(p, sort_keys=True) for p in placeholders}) == 1
    assert len(placeholders) >= 3


def test_requests_carry_explicit_limits(offline: None, regions: list[Region]) -> None:
    region = regions[0]
    graph = build_region_graph(region, RUN_DATE, DetectionParams(), tile_scale=TILE_SCALES[1])
    # The count and the capped list share one vectorization (one node in the request).
    assert json.dumps(encode(graph.polygons)).count('"Image.reduceToVectors"') == 1
    stats, polygons = expand(encode(graph.stats)), expand(encode(graph.polygons))
    (reduce_region,) = [args for args in calls(stats, "Image.reduceRegion") if args["scale"] == 10]
    scene_checks = [args for args in calls(stats, "Image.reduceRegion") if args["scale"] != 10]
    assert {(a["scale"], a["bestEffort"]) for a in scene_checks} == {(SCENE_CHECK_SCALE_M, True)}
    to_vectors = calls(polygons, "Image.reduceToVectors")[0]
    for args in (reduce_region, to_vectors):
        assert args["maxPixels"] == MAX_PIXELS
        assert args["tileScale"] == TILE_SCALES[1]
        assert args["bestEffort"] is False
        assert args["scale"] == 10
    assert to_vectors["eightConnected"] is True
    (limit,) = {
        (a["limit"], a["key"], a["ascending"]) for a in calls(polygons, "Collection.limit") if "limit" in a
    }
    assert limit == (MAX_FOOTPRINT_POLYGONS, "area_ha", False)
    (pixel_count,) = {args["maxSize"] for args in calls(stats, "Image.connectedPixelCount")}
    assert pixel_count == DetectionParams().mmu_pixels == 20


def function_names(encoded: dict[str, Any]) -> set[str]:
    """Every algorithm the request calls, read from the compact encoding (no expansion)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            call = node.get("functionInvocationValue")
            if call is not None:
                found.add(call["functionName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(encoded["values"])
    return found


def test_every_called_algorithm_exists(offline: None, regions: list[Region]) -> None:
    known = algorithm_names()
    for region in regions:
        for tile_scale in TILE_SCALES:
            graph = build_region_graph(region, RUN_DATE, DetectionParams(), tile_scale=tile_scale)
            used = function_names(encode(graph.stats)) | function_names(encode(graph.polygons))
            assert "Image.reduceToVectors" in used
            assert used - known == set(), region.name


@pytest.mark.parametrize("kind", ["stats", "polygons"])
def test_golden_serialization(offline: None, regions: list[Region], kind: str) -> None:
    graph = build_region_graph(regions[0], RUN_DATE, DetectionParams())
    text = json.dumps(encode(getattr(graph, kind)), indent=1, sort_keys=True) + "\n"
    golden = FIXTURES / f"{regions[0].name}_{RUN_DATE.isoformat()}.{kind}.json"
    if UPDATE_GOLDEN:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), (
        "graph changed; if intended, rerun with CCAPI_UPDATE_EE_GOLDEN=1 and review the fixture diff"
    )


#: A changed value for every parameter the Earth Engine graph reads.
GRAPH_PARAMETERS: dict[str, Any] = {
    "current_days": 21,
    "recent_obs": 3,
    "persist_days": 90,
    "baseline_days": 300,
    "clear_threshold": 0.7,
    "min_baseline_obs": 6,
    "stable_veg_p10": 0.5,
    "clearing_drop": 0.2,
    "cleared_ndvi": 0.3,
    "green_p90": 0.55,
    "built_max_ndvi": 0.25,
    "built_max_ndwi": -0.05,
    "built_min_obs": 3,
    "fallow_span_days": 45,
    "fallow_lookback_days": 120,
    "fallow_step_days": 10,
    "mmu_ha": 0.5,
    "scale_m": 20.0,
}


@pytest.mark.parametrize(("field", "value"), sorted(GRAPH_PARAMETERS.items()))
def test_each_parameter_changes_the_graph(
    offline: None, regions: list[Region], field: str, value: Any
) -> None:
    base = build_region_graph(regions[0], RUN_DATE, DetectionParams())
    changed = build_region_graph(regions[0], RUN_DATE, DetectionParams(**{field: value}))
    before = (encode(base.stats), encode(base.polygons))
    after = (encode(changed.stats), encode(changed.polygons))
    assert before != after


def test_every_threshold_is_covered_by_the_parameter_test() -> None:
    # stac/demo-only fields and the region-level verdict are not part of the graph.
    # max_polygons caps the listed polygons client-side; the graph returns the whole footprint.
    not_in_graph = {"scl_clear", "min_observed_fraction", "offset_check_share", "max_polygons"}
    assert set(DetectionParams.model_fields) - not_in_graph == set(GRAPH_PARAMETERS)


#: Parameters of the per-pixel rules (step 5), shared by the graph and ``arrays.classify``.
RULE_PARAMETERS = (
    "min_baseline_obs",
    "stable_veg_p10",
    "clearing_drop",
    "cleared_ndvi",
    "green_p90",
    "built_max_ndvi",
    "built_max_ndwi",
    "built_min_obs",
)


def random_tile_stats(seed: int = 3, n: int = 20_000) -> arrays.TileStats:
    """Per-pixel statistics spread over every rule's range, so any threshold moves some pixel."""
    rng = np.random.default_rng(seed)

    def uniform(low: float, high: float) -> Any:
        return rng.uniform(low, high, (1, n)).astype(np.float32)

    def counts(high: int) -> Any:
        return rng.integers(0, high, (1, n)).astype(np.int16)

    return arrays.TileStats(
        p10=uniform(0.0, 0.9),
        p90=uniform(0.2, 1.0),
        baseline_count=counts(12),
        ndvi_now=uniform(-0.1, 0.9),
        ndbi_now=uniform(-0.5, 0.5),
        current_count=counts(4),
        persist_max_ndvi=uniform(0.0, 0.6),
        persist_max_ndwi=uniform(-0.4, 0.3),
        persist_count=counts(6),
        seasonal_bare=rng.random((1, n)) < 0.3,
    )


@pytest.mark.parametrize("field", RULE_PARAMETERS)
def test_one_parameter_changes_both_graph_and_array_result(
    offline: None, regions: list[Region], field: str
) -> None:
    default, changed = DetectionParams(), DetectionParams(**{field: GRAPH_PARAMETERS[field]})
    graphs = [build_region_graph(regions[0], RUN_DATE, p) for p in (default, changed)]
    assert encode(graphs[0].stats) != encode(graphs[1].stats)
    stats = random_tile_stats()
    before, observed_before = arrays.classify(stats, default)
    after, observed_after = arrays.classify(stats, changed)
    assert (before != after).any() or (observed_before != observed_after).any()


def test_rule_constants_in_graph_are_the_params_values(offline: None, regions: list[Region]) -> None:
    """The graph compares against exactly the numbers the array code reads (no second copy)."""
    params = DetectionParams()
    stats, _ = graph_trees(regions[0], params)
    compared = {
        args["image2"]
        for fn in ("Image.gte", "Image.lt", "Image.gt")
        for args in calls(stats, fn)
        if not isinstance(args["image2"], dict)
    }
    for field in ("stable_veg_p10", "cleared_ndvi", "green_p90", "built_max_ndvi", "built_max_ndwi"):
        assert getattr(params, field) in compared, field
    assert {params.min_baseline_obs, params.built_min_obs, params.clear_threshold} <= compared
    subtracted = {
        args["image2"] for args in calls(stats, "Image.subtract") if not isinstance(args["image2"], dict)
    }
    assert params.clearing_drop in subtracted


def test_mmu_beyond_connected_pixel_limit_is_refused(offline: None, regions: list[Region]) -> None:
    with pytest.raises(DetectionError, match="1024"):
        build_region_graph(regions[0], RUN_DATE, DetectionParams(mmu_ha=20.0))


def test_offline_client_refuses_network(offline: None, regions: list[Region]) -> None:
    graph = build_region_graph(regions[0], RUN_DATE, DetectionParams())
    with pytest.raises(NetworkForbiddenError):
        ee.data.computeValue(graph.stats)


def test_parse_stats_fractions_and_classes() -> None:
    value = {
        "groups": [
            {"class": UNOBSERVED, "sum": 25.0},
            {"class": 0, "sum": 70.0},
            {"class": CLASS_VALUES["vegetation_clearing"], "sum": 4.0},
            {"class": CLASS_VALUES["built_up"], "sum": 1.0},
        ],
        "scenes": {"baseline": 60, "persistence": 10, "current": 5},
    }
    fraction, areas, scenes = parse_stats(value)
    assert fraction == pytest.approx(0.75)
    assert areas == {"vegetation_clearing": 4.0, "built_up": 1.0}
    assert scenes == {"baseline": 60, "persistence": 10, "current": 5}
    assert parse_stats({"groups": None, "scenes": {}})[0] == 0.0  # no pixels at all: unobserved


def test_parse_polygons_largest_first() -> None:
    def feature(cls: int, area: float) -> dict[str, Any]:
        ring = [[0, 0], [1, 0], [1, 1], [0, 0]]
        return {
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"class": cls, "area_ha": area, "centroid": [0.5, 0.5]},
        }

    value = {"count": 7, "features": {"features": [feature(1, 0.3), feature(2, 2.0), feature(1, 1.0)]}}
    polygons, count = parse_polygons("r", value, RUN_DATE)
    assert count == 7
    assert [p.area_ha for p in polygons] == [2.0, 1.0, 0.3]
    assert [p.change_class for p in polygons] == ["built_up", "vegetation_clearing", "vegetation_clearing"]
    assert all(p.first_detected == RUN_DATE for p in polygons)


def test_describe_needs_no_credentials_or_client(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("describe() must not touch Earth Engine")

    monkeypatch.setattr(ee, "Initialize", forbidden)
    monkeypatch.setattr(ee.data, "computeValue", forbidden)
    backend = EarthEngineBackend(
        DetectionParams(), project=None, key_json=None, key_file=None, limiter=AdaptiveLimiter(16)
    )
    plan = backend.describe(RUN_DATE)
    assert plan["datasets"] == {"surface_reflectance": S2_COLLECTION, "cloud_score": CLOUD_SCORE_COLLECTION}
    assert plan["cloud_mask"] == {"band": CLOUD_SCORE_BAND, "clear_at_or_above": 0.6}
    assert plan["windows"]["current"] == {"start": "2026-10-24", "end": "2026-11-23"}
    assert plan["windows"]["baseline"] == {"start": "2025-09-24", "end": "2026-09-24"}
    assert plan["limiter"]["max_concurrency"] == 16
    assert plan["limiter"]["project_quota"] == 40
    assert plan["endpoint"] == "https://earthengine-highvolume.googleapis.com"
    assert plan["parameters"]["clear_threshold"] == 0.6
    json.dumps(plan)  # printable as-is by --dry-run


def _paths_avoid(tree: Any, target: str, through: set[str]) -> bool:
    """True when every path from the root to a ``target`` call passes a call named in ``through``."""

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            call = node.get("functionInvocationValue")
            if call is not None:
                if call["functionName"] in through:
                    return True
                if call["functionName"] == target:
                    return False
            return all(walk(v) for v in node.values())
        if isinstance(node, list):
            return all(walk(v) for v in node)
        return True

    return walk(tree)


def test_every_statistic_reads_one_mosaic_per_day(offline: None, regions: list[Region]) -> None:
    """Granules reach the statistics only through the per-day qualityMosaic on cs_cdf (the day
    list itself only reads their dates): an overlap of two MGRS tiles cannot count twice."""
    stats, polygons = graph_trees(regions[0], DetectionParams())
    for tree in (stats, polygons):
        mosaics = calls(tree, "ImageCollection.qualityMosaic")
        assert mosaics
        assert {m["qualityBand"] for m in mosaics} == {CLOUD_SCORE_BAND}
        assert _paths_avoid(
            tree,
            "Image.linkCollection",
            {"ImageCollection.qualityMosaic", "AggregateFeatureCollection.array"},
        )
        # Without the mosaic the check fails: the linked granules are reachable directly.
        assert not _paths_avoid(tree, "Image.linkCollection", {"AggregateFeatureCollection.array"})
        days = calls(tree, "Date.format")
        assert days
        assert all(d.get("format") == "YYYY-MM-dd" for d in days)


def test_class_image_is_clipped_before_the_mmu(offline: None, regions: list[Region]) -> None:
    stats, _ = graph_trees(regions[0], DetectionParams())
    for args in calls(stats, "Image.connectedPixelCount"):
        assert calls(args["input"], "Image.clip"), "connectedPixelCount must count clipped pixels only"


def test_band_at_or_below_zero_is_unobserved(offline: None, regions: list[Region]) -> None:
    stats, _ = graph_trees(regions[0], DetectionParams())
    positive = {
        tuple(calls(args["image1"], "Image.select")[0]["bandSelectors"])
        for args in calls(stats, "Image.gt")
        if args["image2"] == 0 and calls(args["image1"], "Image.select")
    }
    assert positive >= {("B3",), ("B4",), ("B8",), ("B11",)}


def test_seasonal_guard_spans_in_the_graph(offline: None, regions: list[Region]) -> None:
    params = DetectionParams()
    stats, _ = graph_trees(regions[0], params)
    ranges = {(args["start"], args["end"]) for args in calls(stats, "DateRange")}
    spans = params.windows(RUN_DATE).fallow
    assert len(spans) == 3
    assert {(w.start.isoformat(), w.end.isoformat()) for w in spans} <= ranges
