"""Week over week: new vs persisting polygons, and finding the previous published run."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box, mapping, shape
from shapely.ops import unary_union
from structlog.testing import capture_logs

from ccapi_monitor.changes import (
    FootprintStore,
    PreviousRun,
    label_changes,
    load_previous_run,
    polygons_from_geojson,
)
from ccapi_monitor.detection.base import ImageryBackend, region_result
from ccapi_monitor.errors import StoreError
from ccapi_monitor.infrastructure.factory import OffSource
from ccapi_monitor.models import ChangePolygon, DetectionResult, ImageryInfo
from ccapi_monitor.params import CLASSES, DetectionParams
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.reports.json_report import publish_reports
from ccapi_monitor.reports.layout import LATEST_KEY, report_keys
from ccapi_monitor.runner import RunDependencies, Runner
from ccapi_monitor.scoring import load_land_prices
from ccapi_monitor.settings import Settings
from ccapi_monitor.storage import LocalStore, Store
from tests.worker import demo_args, run_worker

WEEK1 = date(2025, 8, 6)  # dry season: a new site is seen clear the week it appears
WEEK2 = date(2025, 8, 13)


def poly(
    x: float,
    y: float,
    size: float = 0.001,
    cls: str = "built_up",
    region: str = "bekasi_industrial_belt",
    first: date | None = None,
) -> ChangePolygon:
    geom = box(x, y, x + size, y + size)
    return ChangePolygon(
        region=region,
        change_class=cls,
        area_ha=round((size * 110_000) ** 2 / 10_000, 4),
        centroid=(geom.centroid.x, geom.centroid.y),
        geometry=mapping(geom),
        first_detected=first,
    )


def features(polygons: list[ChangePolygon]) -> list[dict[str, Any]]:
    """Polygons as their GeoJSON features (shapely gives tuples, JSON gives lists)."""
    return [json.loads(json.dumps(p.to_feature())) for p in polygons]


# --- labelling ----------------------------------------------------------------------


def test_first_run_everything_is_new():
    polygons = [poly(107.0, -6.3), poly(107.01, -6.3, cls="vegetation_clearing")]
    labelled, new_ha = label_changes(polygons, None, WEEK1)
    assert [p.change for p in labelled] == ["new", "new"]
    assert {p.first_detected for p in labelled} == {WEEK1}
    assert new_ha == {
        c: pytest.approx(sum(p.area_ha for p in polygons if p.change_class == c)) for c in CLASSES
    }


def test_no_polygons_gives_every_class_zero():
    assert label_changes([], None, WEEK1) == ([], dict.fromkeys(CLASSES, 0.0))
    assert label_changes([], [poly(107.0, -6.3)], WEEK1) == ([], dict.fromkeys(CLASSES, 0.0))


def test_overlapping_same_class_persists_and_keeps_earliest_first_detected():
    previous = [
        poly(107.0, -6.3, first=WEEK1 - timedelta(days=14)),
        poly(107.0005, -6.3, first=WEEK1),  # overlaps the same new polygon, detected later
    ]
    grown = poly(107.0002, -6.3002, size=0.002)  # the site grew: still the same site
    labelled, new_ha = label_changes([grown], previous, WEEK2, mmu_ha=0.2)
    assert labelled[0].change == "persisting"
    assert labelled[0].first_detected == WEEK1 - timedelta(days=14)
    # Only the growth is new: the grown square minus the two old squares, geodesic.
    growth = shape(grown.geometry).difference(shape(previous[0].geometry).union(shape(previous[1].geometry)))
    assert new_ha["built_up"] == pytest.approx(geodesic_ha(growth), abs=1e-4)  # rounded to 4 places
    assert 0 < new_ha["built_up"] < grown.area_ha
    assert new_ha["vegetation_clearing"] == 0.0


def test_growth_counts_only_parts_of_at_least_the_mmu():
    previous = [poly(107.0, -6.3, size=0.002, first=WEEK1)]
    sliver = poly(107.0, -6.3, size=0.00201)  # 1.1 m wider: a 0.05 ha sliver
    grown = poly(107.0, -6.3, size=0.0026)  # about 3 ha more
    assert label_changes([sliver], previous, WEEK2, mmu_ha=0.2)[1]["built_up"] == 0.0
    assert label_changes([grown], previous, WEEK2, mmu_ha=0.2)[1]["built_up"] > 2.5


def geodesic_ha(geometry: Any) -> float:
    area, _ = pyproj.Geod(ellps="WGS84").geometry_area_perimeter(geometry)
    return abs(area) / 10_000


def test_other_class_or_disjoint_polygon_is_new():
    previous = [poly(107.0, -6.3, cls="vegetation_clearing", first=WEEK1)]
    same_place_other_class = poly(107.0, -6.3, cls="built_up")
    elsewhere = poly(107.2, -6.2, cls="vegetation_clearing")
    labelled, new_ha = label_changes([same_place_other_class, elsewhere], previous, WEEK2)
    assert [(p.change, p.first_detected) for p in labelled] == [("new", WEEK2), ("new", WEEK2)]
    assert new_ha["built_up"] == pytest.approx(same_place_other_class.area_ha)
    assert new_ha["vegetation_clearing"] == pytest.approx(elsewhere.area_ha)


def test_inputs_are_not_modified_and_order_is_kept():
    polygons = [poly(107.0 + i * 0.01, -6.3) for i in range(5)]
    previous = [poly(107.02, -6.3, first=WEEK1)]
    labelled, _ = label_changes(polygons, previous, WEEK2)
    assert [p.centroid for p in labelled] == [p.centroid for p in polygons]
    assert [p.change for p in labelled] == ["new", "new", "persisting", "new", "new"]
    assert all(p.first_detected is None for p in polygons)


def test_invalid_previous_geometry_is_repaired_not_fatal():
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[107, -6.3], [107.01, -6.29], [107.01, -6.3], [107, -6.29], [107, -6.3]]],
    }
    previous = [poly(0, 0).model_copy(update={"geometry": bowtie, "first_detected": WEEK1})]
    labelled, _ = label_changes([poly(107.0, -6.2995, size=0.0005)], previous, WEEK2)
    assert labelled[0].change == "persisting"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(106.0, 107.0), st.floats(-7.0, -6.0), st.floats(0.0002, 0.01), st.sampled_from(CLASSES)
        ),
        max_size=30,
    )
)
def test_a_week_against_itself_is_all_persisting(specs):
    polygons = [poly(x, y, size, cls, first=WEEK1) for x, y, size, cls in specs]
    labelled, new_ha = label_changes(polygons, polygons, WEEK2)
    assert all(p.change == "persisting" and p.first_detected == WEEK1 for p in labelled)
    assert new_ha == dict.fromkeys(CLASSES, 0.0)


# --- the previous run from the reports store ---------------------------------------


def publish(
    store: Store,
    run_date: date,
    run_id: str,
    polygons: list[ChangePolygon],
    statuses: dict[str, str],
    *,
    pointer: bool = True,
    previous: dict[str, Any] | None = None,
    status: str = "succeeded",
) -> dict[str, Any]:
    """Write a run the way reports/json_report.py lays it out (files first, then latest.json)."""
    keys = report_keys(run_date, run_id)
    report = {
        "run_id": run_id,
        "run_date": run_date.isoformat(),
        "status": status,
        "regions": [{"name": n, "status": s} for n, s in statuses.items()],
    }
    store.write_bytes(keys["json"], json.dumps(report).encode())
    store.write_bytes(
        keys["geojson"],
        json.dumps({"type": "FeatureCollection", "features": [p.to_feature() for p in polygons]}).encode(),
    )
    store.write_bytes(keys["html"], b"<html></html>")
    entry = {
        "run_id": run_id,
        "run_date": run_date.isoformat(),
        "status": status,
        "report": keys["json"],
        "changes": keys["geojson"],
        "html": keys["html"],
        "written_at": "2026-11-16T07:00:00+00:00",
    }
    if pointer:
        store.write_bytes(LATEST_KEY, json.dumps({**entry, "previous": previous}).encode())
    return entry


def test_two_consecutive_runs(tmp_path):
    """Week 1 publishes; week 2 finds it through latest.json and labels against it."""
    store = LocalStore(tmp_path)
    assert load_previous_run(store, before=WEEK1) is None  # first run ever

    week1_raw = [
        poly(107.0, -6.3),
        poly(107.05, -6.25, cls="vegetation_clearing", region="cikarang_mega_industrial"),
    ]
    week1, _ = label_changes(week1_raw, None, WEEK1)
    publish(
        store,
        WEEK1,
        "run-w1",
        week1,
        {"bekasi_industrial_belt": "ok", "cikarang_mega_industrial": "ok", "jember_southern_coast": "failed"},
    )

    previous = load_previous_run(store, before=WEEK2)
    assert isinstance(previous, PreviousRun)
    assert (previous.run_id, previous.run_date) == ("run-w1", WEEK1)
    assert features(previous.polygons("bekasi_industrial_belt")) == features(week1[:1])
    assert features(previous.polygons()) == features(week1)
    assert previous.compared("bekasi_industrial_belt")
    assert not previous.compared("jember_southern_coast")  # failed last week: nothing to compare with
    assert previous.describe().polygon_count == 2

    week2_raw = [poly(107.0003, -6.3003), poly(107.1, -6.2)]
    week2, new_ha = label_changes(week2_raw, previous.polygons("bekasi_industrial_belt"), WEEK2)
    assert [(p.change, p.first_detected) for p in week2] == [("persisting", WEEK1), ("new", WEEK2)]
    # The new site counts whole; the persisting one adds the part of it outside last week's.
    moved = shape(week2_raw[0].geometry).difference(shape(week1[0].geometry))
    assert new_ha == {
        "vegetation_clearing": 0.0,
        "built_up": pytest.approx(week2_raw[1].area_ha + geodesic_ha(moved), abs=2e-4),
    }


def test_rerun_of_the_same_week_compares_with_the_week_before(tmp_path):
    store = LocalStore(tmp_path)
    w1 = publish(store, WEEK1, "run-w1", [poly(107.0, -6.3, first=WEEK1)], {"bekasi_industrial_belt": "ok"})
    publish(store, WEEK2, "run-w2a", [], {"bekasi_industrial_belt": "ok"}, previous=w1)
    previous = load_previous_run(store, before=WEEK2)
    assert previous is not None
    assert previous.run_id == "run-w1"
    # Without a date, latest.json itself is the previous run.
    latest = load_previous_run(store)
    assert latest is not None
    assert latest.run_id == "run-w2a"


def test_backfill_finds_the_newest_published_run_before_its_date(tmp_path):
    store = LocalStore(tmp_path)
    older = WEEK1 - timedelta(days=7)
    publish(store, older - timedelta(days=7), "run-a", [poly(107.0, -6.3)], {"bekasi_industrial_belt": "ok"})
    publish(store, older, "run-b", [poly(107.0, -6.3)], {"bekasi_industrial_belt": "ok"}, pointer=False)
    publish(store, older, "run-c", [], {"bekasi_industrial_belt": "failed"}, pointer=False, status="failed")
    publish(store, WEEK2, "run-w2", [], {"bekasi_industrial_belt": "ok"}, previous=None)
    previous = load_previous_run(store, before=WEEK1)  # backfilling the week of WEEK1
    assert previous is not None
    assert previous.run_id == "run-b"


@pytest.mark.parametrize(
    "broken",
    [
        "changes_missing",
        "changes_corrupt",
        "report_corrupt",
        "pointer_corrupt",
        "pointer_incomplete",
        "feature_invalid",
    ],
)
def test_broken_previous_run_is_none_with_a_warning(tmp_path, broken):
    store = LocalStore(tmp_path)
    entry = publish(store, WEEK1, "run-w1", [poly(107.0, -6.3)], {"bekasi_industrial_belt": "ok"})
    if broken == "changes_missing":
        store.delete(entry["changes"])
    elif broken == "changes_corrupt":
        store.write_bytes(entry["changes"], b'{"type": "FeatureCollection", "features": [')
    elif broken == "report_corrupt":
        store.write_bytes(entry["report"], b"<html>not json</html>")
    elif broken == "pointer_corrupt":
        store.write_bytes(LATEST_KEY, b"\x00\xff")
    elif broken == "pointer_incomplete":
        store.write_bytes(LATEST_KEY, json.dumps({"run_id": "x", "run_date": WEEK1.isoformat()}).encode())
    else:
        feature = {
            "type": "Feature",
            "properties": {"region": "r", "class": "forest"},
            "geometry": mapping(box(0, 0, 1, 1)),
        }
        store.write_bytes(
            entry["changes"], json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()
        )
    with capture_logs() as logs:
        assert load_previous_run(store, before=WEEK2) is None
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert logs[0]["event"].startswith("previous run")


def test_unreadable_store_is_not_a_first_run(tmp_path):
    class BrokenStore(LocalStore):
        def read_bytes(self, key: str) -> bytes | None:
            raise StoreError(f"cannot read {key}: access denied")

    with pytest.raises(StoreError):
        load_previous_run(BrokenStore(tmp_path), before=WEEK2)


def test_geojson_round_trip_and_centroid_fallback():
    original = [poly(107.0, -6.3, first=WEEK1), poly(107.1, -6.3, cls="vegetation_clearing", first=WEEK1)]
    document: dict[str, Any] = {"type": "FeatureCollection", "features": [p.to_feature() for p in original]}
    parsed = polygons_from_geojson(json.loads(json.dumps(document)))
    assert [(p.change_class, p.first_detected, p.region) for p in parsed] == [
        (p.change_class, p.first_detected, p.region) for p in original
    ]
    del document["features"][0]["properties"]["centroid"]
    assert polygons_from_geojson(document)[0].centroid == pytest.approx(original[0].centroid, abs=1e-6)
    with pytest.raises(ValueError, match="FeatureCollection"):
        polygons_from_geojson({"type": "Feature"})


# --- two consecutive demo runs, end to end ------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
def test_two_consecutive_demo_runs(tmp_path: Path, worker_env: dict[str, str]):
    """The worker on the demo archive, a week apart: week 2 compares with week 1 through latest.json."""
    out, cache = tmp_path / "reports", tmp_path / "cache"
    region = "semarang_port_expansion"  # overlaps no other region

    def run(run_date: date) -> dict[str, Any]:
        proc = run_worker(demo_args(out, cache, run_date.isoformat(), [region]), worker_env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        latest = json.loads((out / LATEST_KEY).read_text())
        assert latest["run_date"] == run_date.isoformat()
        return {
            "run_id": latest["run_id"],
            "report": json.loads((out / latest["report"]).read_text()),
            "changes": polygons_from_geojson(json.loads((out / latest["changes"]).read_text())),
            "html": (out / latest["html"]).read_text(),
        }

    week1 = run(WEEK1)
    assert week1["changes"], "the demo plants events every week: week 1 must find some"
    assert {p.change for p in week1["changes"]} == {"new"}
    assert "No previous run to compare with" in week1["html"]
    # The demo's mislabelled items are corrected and counted in the imagery section.
    corrections = week1["report"]["imagery"]["corrections"]
    assert corrections
    assert {c["applied_offset"] for c in corrections} == {0.0, -0.1}
    assert week1["report"]["imagery"]["items_read"] > len(corrections)

    week2 = run(WEEK2)
    report = week2["report"]
    assert report["previous_run"]["run_id"] == week1["run_id"]
    assert f"Compared with the previous run {week1['run_id']}" in week2["html"]
    kinds = {p.change for p in week2["changes"]}
    assert kinds == {"new", "persisting"}, "a week later, old sites persist and new ones appear"
    previous_by_class = {
        c: [shape(p.geometry) for p in week1["changes"] if p.change_class == c] for c in CLASSES
    }
    for polygon in week2["changes"]:
        overlaps = any(shape(polygon.geometry).intersects(g) for g in previous_by_class[polygon.change_class])
        assert overlaps == (polygon.change == "persisting"), polygon
        if polygon.change == "persisting":
            assert polygon.first_detected is not None
            assert polygon.first_detected <= WEEK1
        else:
            assert polygon.first_detected == WEEK2
    (result,) = report["regions"]
    assert result["compared_against"] == {"run_id": week1["run_id"], "run_date": WEEK1.isoformat()}
    if result["polygon_count"] == len(week2["changes"]):  # under the cap: every component is listed
        for c in CLASSES:
            # New sites whole, grown sites their growth: this footprint outside last week's.
            new = sum(p.area_ha for p in week2["changes"] if p.change == "new" and p.change_class == c)
            persisting = [
                shape(p.geometry)
                for p in week2["changes"]
                if p.change == "persisting" and p.change_class == c
            ]
            before = unary_union(previous_by_class[c]) if previous_by_class[c] else None
            growth = sum(
                ha
                for g in persisting
                for part in getattr(g.difference(before), "geoms", [g.difference(before)])
                if (ha := geodesic_ha(part)) >= 0.2
            )
            assert result["new_area_ha"][c] == pytest.approx(new + growth, abs=2e-2)


# --- week over week against the region's most recent earlier ok run -----------------------


class ScriptedBackend(ImageryBackend):
    """Per run date: ``None`` (insufficient observations) or the sites ``(x, y, size)`` found,
    largest first, through the real ``region_result`` (which lists the first max_polygons)."""

    name = "demo"

    def __init__(
        self, params: DetectionParams, weeks: dict[date, list[tuple[float, float, float]] | None]
    ) -> None:
        super().__init__(params)
        self.weeks = weeks

    def detect(self, region: Region, run_date: date, cancel: Any = None) -> DetectionResult:
        sites = self.weeks[run_date]
        polygons = [
            poly(x, y, size, region=region.name).model_copy(
                update={"area_ha": geodesic_ha(box(x, y, x + size, y + size))}
            )
            for x, y, size in sites or []
        ]
        return region_result(
            self.params,
            source=self.name,
            observed_fraction=0.2 if sites is None else 0.95,
            area_ha={"vegetation_clearing": 0.0, "built_up": sum(p.area_ha for p in polygons)},
            polygons=polygons,
            polygon_count=len(polygons),
            scenes={"baseline": 40, "persistence": 8, "current": 4},
            details={},
        )


def test_week_lost_to_cloud_compares_with_the_last_ok_run_and_its_whole_footprint(tmp_path):
    """week 1 ok -> week 2 insufficient_observations -> week 3 ok."""
    region = next(r for r in load_regions() if r.name == "bekasi_industrial_belt")
    x0, y0, _, _ = region.bounds
    sites = [(x0 + 0.01 * i, y0 + 0.01, 0.004 - 0.0005 * i) for i in range(5)]  # largest first
    grown = (sites[0][0], sites[0][1], 0.005)  # site 0 grew by 0.001 deg on two sides
    newcomer = (x0 + 0.08, y0 + 0.05, 0.002)
    week3 = date(2025, 8, 20)
    params = DetectionParams(max_polygons=3)  # sites 3 and 4 are never listed, only kept
    backend = ScriptedBackend(params, {WEEK1: sites, WEEK2: None, week3: [grown, *sites[1:], newcomer]})
    store = LocalStore(tmp_path / "reports")
    summaries = {}
    for run_date in (WEEK1, WEEK2, week3):
        settings_ = Settings(
            run_date=run_date,
            imagery="demo",
            infrastructure="off",
            output=store.uri,
            cache=str(tmp_path / "c"),
        )
        deps = RunDependencies(
            backend=backend,
            infrastructure=OffSource(),
            reports=store,
            cache=LocalStore(tmp_path / "c"),
            prices=load_land_prices(),
            params=params,
            imagery_info=ImageryInfo(source="demo"),
            previous=load_previous_run(store, before=run_date),
        )
        summary = Runner(settings_, [region], deps, run_id=f"run-{run_date}").run()
        publish_reports(store, summary, "<html></html>")
        summaries[run_date] = summary.regions[0]

    first, cloudy, third = summaries[WEEK1], summaries[WEEK2], summaries[week3]
    assert first.status == "ok"
    assert len(first.polygons) == 3
    assert first.polygon_count == 5
    assert cloudy.status == "insufficient_observations"
    assert third.compared_against is not None
    assert (third.compared_against.run_id, third.compared_against.run_date) == (f"run-{WEEK1}", WEEK1)
    # Week 1's sites persist in week 3; the newcomer is new.
    assert [p.change for p in third.polygons] == ["persisting", "persisting", "persisting"]
    assert all(p.first_detected == WEEK1 for p in third.polygons)
    footprint = FootprintStore(store).previous(region.name, week3 + timedelta(days=7))
    assert footprint is not None
    assert footprint.run_id == f"run-{week3}"
    labels = {round(p.area_ha, 3): p.change for p in footprint.polygons}
    assert list(labels.values()).count("persisting") == 5  # sites 3 and 4 too: still known
    assert list(labels.values()).count("new") == 1
    # New hectares: the newcomer whole, site 0 only its growth; sites 3 and 4 add nothing.
    growth = box(grown[0], grown[1], grown[0] + grown[2], grown[1] + grown[2]).difference(
        box(sites[0][0], sites[0][1], sites[0][0] + sites[0][2], sites[0][1] + sites[0][2])
    )
    expected = geodesic_ha(
        box(newcomer[0], newcomer[1], newcomer[0] + newcomer[2], newcomer[1] + newcomer[2])
    )
    assert third.new_area_ha == {
        "vegetation_clearing": 0.0,
        "built_up": pytest.approx(expected + geodesic_ha(growth), abs=1e-3),
    }
    report = json.loads(store.read_bytes(f"weekly/{week3}/run-{week3}/report.json") or b"{}")
    assert report["regions"][0]["compared_against"] == {
        "run_id": f"run-{WEEK1}",
        "run_date": WEEK1.isoformat(),
    }


def test_unpublished_runs_are_never_compared_against(tmp_path):
    store = LocalStore(tmp_path)
    footprints = FootprintStore(store)
    footprints.save("r", WEEK1, "crashed", [poly(107.0, -6.3, region="r")])
    assert footprints.previous("r", WEEK2) is None
