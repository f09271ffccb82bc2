"""The data-quality gate: one test per check, each with a passing and a failing input.

Runs are built from the packaged Java regions with real change polygons, and turned
into documents by the same functions that publish them (``build_report``,
``build_changes``, ``run_metric_values``); each failing case injects one fault.
History is written to a local reports store by the real publisher.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyproj
import pytest
from shapely.geometry import box, mapping

from ccapi_monitor.aws.metrics import run_metric_values
from ccapi_monitor.aws.stepfunctions import success_payload
from ccapi_monitor.models import ChangePolygon, ImageryInfo, RegionResult, RunSummary
from ccapi_monitor.params import CLASSES, DetectionParams
from ccapi_monitor.quality import (
    CHANGE_CLASSES,
    DEFAULT_THRESHOLDS,
    HISTORY_CHECKS,
    INVARIANT_CHECKS,
    PublishedReport,
    QualityReport,
    evaluate,
    gate_run,
    load_history,
    parse_report,
)
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.reports.json_report import build_changes, build_report, publish_reports
from ccapi_monitor.runner import aggregate
from ccapi_monitor.storage import LocalStore

RUN_DATE = date(2026, 11, 23)
_GEOD = pyproj.Geod(ellps="WGS84")
#: Four regions whose boxes overlap no other region, so Java-wide totals are plain sums.
NAMES = (
    "banyuwangi_ferry_corridor",
    "jember_southern_coast",
    "semarang_port_expansion",
    "purwokerto_south_expansion",
)


def _regions() -> list[Region]:
    by_name = {r.name: r for r in load_regions()}
    return [by_name[n] for n in NAMES]


REGIONS = _regions()
GEOMETRIES = {r.name: r.geometry for r in REGIONS}


def _square(region: Region, side_deg: float, offset_deg: float) -> tuple[dict[str, Any], float]:
    """A square change polygon near the region's centre and its geodesic hectares."""
    c = region.geometry.centroid
    square = box(c.x + offset_deg, c.y, c.x + offset_deg + side_deg, c.y + side_deg)
    area_m2, _ = _GEOD.geometry_area_perimeter(square)
    return mapping(square), round(abs(area_m2) / 10_000.0, 4)


def _region(
    region: Region, *, persisting_side: float, new_side: float, observed: float, status: str = "ok"
) -> RegionResult:
    """One region with a persisting clearing and a new building site, figures from their areas."""
    base = {key: getattr(region, key) for key in ("name", "province", "focus", "priority", "tier")}
    base["area_km2"] = round(region.area_km2, 3)
    if status == "failed":
        return RegionResult(**base, status="failed", error="imagery unavailable")
    if status == "insufficient_observations":
        return RegionResult(**base, status=status, observed_fraction=observed)
    old_geom, old_ha = _square(region, persisting_side, 0.0)
    new_geom, new_ha = _square(region, new_side, persisting_side + 0.002)
    centroid = (region.geometry.centroid.x, region.geometry.centroid.y)
    polygons = [
        ChangePolygon(
            region=region.name,
            change_class=change_class,
            area_ha=hectares,
            centroid=centroid,
            geometry=geometry,
            change=kind,
            first_detected=first,
        )
        for change_class, geometry, hectares, kind, first in (
            ("vegetation_clearing", old_geom, old_ha, "persisting", RUN_DATE - timedelta(days=70)),
            ("built_up", new_geom, new_ha, "new", RUN_DATE),
        )
    ]
    return RegionResult(
        **base,
        status="ok",
        observed_fraction=observed,
        area_ha={"vegetation_clearing": old_ha, "built_up": new_ha},
        new_area_ha={"vegetation_clearing": 0.0, "built_up": new_ha},
        polygon_count=2,
        polygons=polygons,
    )


def make_run(
    run_date: date = RUN_DATE,
    *,
    run_id: str | None = None,
    persisting_side: float = 0.01,
    new_side: float = 0.002,
    observed: float = 0.9,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> RunSummary:
    """A consistent run over REGIONS; ``overrides`` changes one region's arguments by name."""
    results = []
    for region in REGIONS:
        kwargs: dict[str, Any] = {
            "persisting_side": persisting_side,
            "new_side": new_side,
            "observed": observed,
            **(overrides or {}).get(region.name, {}),
        }
        results.append(_region(region, **kwargs))
    failed = sum(r.status == "failed" for r in results)
    return RunSummary(
        run_id=run_id or f"{run_date:%Y%m%d}T060000Z-abc123",
        run_date=run_date,
        status="partial" if failed else "succeeded",
        exit_code=2 if failed else 0,
        environment="test",
        duration_s=12.0,
        regions=results,
        totals=aggregate(results, GEOMETRIES),
        imagery=ImageryInfo(source="stac", collection="sentinel-2-c1-l2a"),
        windows=DetectionParams().windows(run_date),
        parameters=DetectionParams(),
    )


def documents(summary: RunSummary) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    metrics = {name: value for name, (value, _unit) in run_metric_values(summary).items()}
    return build_report(summary), build_changes(summary), metrics


def gate(
    report: dict[str, Any],
    changes: dict[str, Any],
    metrics: dict[str, float],
    history: list[PublishedReport] | None = None,
    **kwargs: Any,
) -> QualityReport:
    return evaluate(report, changes, metrics, regions=GEOMETRIES, history=history or [], **kwargs)


def names(quality: QualityReport) -> list[tuple[str, str, str | None]]:
    return [(f.name, f.severity, f.region) for f in quality.findings]


def _history(weeks: int = 8, **kwargs: Any) -> list[PublishedReport]:
    """Earlier weeks, newest first, as load_history returns them."""
    return [
        parse_report(build_report(make_run(RUN_DATE - timedelta(weeks=w), **kwargs)))
        for w in range(1, weeks + 1)
    ]


FIRST = REGIONS[0].name


# --- a consistent run ---------------------------------------------------------------------------


def test_a_consistent_run_passes_every_check() -> None:
    quality = gate(*documents(make_run()), history=_history())
    assert quality.findings == []
    assert quality.status == "passed"
    assert not quality.blocks_publication
    assert quality.history_weeks == 8
    assert quality.checks == [*INVARIANT_CHECKS, *HISTORY_CHECKS]
    assert quality.skipped == {}


def test_without_history_the_history_checks_are_skipped_and_say_why() -> None:
    quality = gate(*documents(make_run()), history=_history(weeks=2))
    assert quality.status == "passed"
    assert quality.skipped == dict.fromkeys(HISTORY_CHECKS, "2 earlier published week(s), 4 needed")
    assert quality.checks == list(INVARIANT_CHECKS)


def test_change_classes_match_the_detection_parameters() -> None:
    assert tuple(CHANGE_CLASSES) == tuple(CLASSES)


# --- invariants -----------------------------------------------------------------------------------


def test_negative_hectares_are_critical() -> None:
    report, changes, metrics = documents(make_run())
    report["regions"][0]["area_ha"]["vegetation_clearing"] = -3.0
    quality = gate(report, changes, metrics)
    assert ("hectares_negative", "critical", FIRST) in names(quality)
    assert quality.status == "failed"
    assert quality.blocks_publication


def test_new_hectares_above_the_detected_total_are_critical() -> None:
    report, changes, metrics = documents(make_run())
    report["regions"][1]["area_ha"]["built_up"] = report["regions"][1]["new_area_ha"]["built_up"] - 1.0
    assert ("new_exceeds_total", "critical", REGIONS[1].name) in names(gate(report, changes, metrics))


def test_hectares_beyond_the_regions_observed_area_are_critical() -> None:
    """An offset slip that makes every forest 'cleared' measures more change than was observed."""
    summary = make_run()
    report, changes, metrics = documents(summary)
    observed_ha = REGIONS[0].area_km2 * 100 * 0.9
    report["regions"][0]["area_ha"]["vegetation_clearing"] = observed_ha * 0.6
    report["regions"][0]["area_ha"]["built_up"] = observed_ha * 0.45
    found = [f for f in gate(report, changes, metrics).findings if f.name == "hectares_exceed_observed_area"]
    assert [(f.severity, f.region) for f in found] == [("critical", FIRST)]
    assert found[0].limit == pytest.approx(observed_ha, rel=1e-3)
    report["regions"][0]["area_ha"]["built_up"] = observed_ha * 0.39  # 99 % of the observed area: fine
    assert "hectares_exceed_observed_area" not in {f.name for f in gate(report, changes, metrics).findings}


@pytest.mark.parametrize("fraction", [1.3, -0.1])
def test_observed_fraction_outside_0_1_is_critical(fraction: float) -> None:
    report, changes, metrics = documents(make_run())
    report["regions"][2]["observed_fraction"] = fraction
    assert ("observed_fraction_range", "critical", REGIONS[2].name) in names(gate(report, changes, metrics))


def test_an_ok_region_without_observed_fraction_is_critical_a_failed_one_is_not() -> None:
    report, changes, metrics = documents(make_run(overrides={FIRST: {"status": "failed"}}))
    assert "observed_fraction_range" not in {f.name for f in gate(report, changes, metrics).findings}
    report["regions"][1]["observed_fraction"] = None
    assert ("observed_fraction_range", "critical", REGIONS[1].name) in names(gate(report, changes, metrics))


def test_every_planned_region_is_accounted_for_once() -> None:
    report, changes, _ = documents(make_run())
    missing = copy.deepcopy(report)
    dropped = missing["regions"].pop()
    missing["counts"] = {
        **missing["counts"],
        "total": len(missing["regions"]),
        "succeeded": len(missing["regions"]),
    }
    changes_without = {
        **changes,
        "features": [f for f in changes["features"] if f["properties"]["region"] != dropped["name"]],
    }
    assert names(gate(missing, changes_without, {})) == [("regions_accounted", "critical", dropped["name"])]

    doubled = copy.deepcopy(report)
    doubled["regions"].append(copy.deepcopy(doubled["regions"][0]))
    assert ("regions_accounted", "critical", FIRST) in names(gate(doubled, changes, {}))

    stranger = copy.deepcopy(report)
    stranger["regions"][0]["name"] = "atlantis"
    assert ("regions_accounted", "critical", "atlantis") in names(gate(stranger, changes, {}))


def test_invalid_polygons_are_critical() -> None:
    report, changes, metrics = documents(make_run())
    feature = changes["features"][0]
    c = REGIONS[0].geometry.centroid  # a bow tie: the ring crosses itself
    feature["geometry"] = {
        "type": "Polygon",
        "coordinates": [
            [[c.x, c.y], [c.x + 0.01, c.y + 0.01], [c.x + 0.01, c.y], [c.x, c.y + 0.01], [c.x, c.y]]
        ],
    }
    assert ("polygon_validity", "critical", FIRST) in names(gate(report, changes, metrics))
    feature["geometry"] = {"type": "Point", "coordinates": [c.x, c.y]}
    assert ("polygon_validity", "critical", FIRST) in names(gate(report, changes, metrics))
    feature["geometry"] = {"type": "Polygon"}
    assert "polygon_validity" in {f.name for f in gate(report, changes, metrics).findings}


def test_polygons_in_metres_or_outside_their_region_are_critical() -> None:
    report, changes, metrics = documents(make_run())
    feature = changes["features"][0]
    # The same square in UTM zone 49S metres, as a writer that forgot to reproject would emit it.
    to_utm = pyproj.Transformer.from_crs(4326, 32749, always_xy=True)
    ring = [to_utm.transform(x, y) for x, y in feature["geometry"]["coordinates"][0]]
    metres = copy.deepcopy(changes)
    metres["features"][0]["geometry"] = {"type": "Polygon", "coordinates": [ring]}
    assert ("polygon_crs", "critical", FIRST) in names(gate(report, metres, metrics))

    shifted = copy.deepcopy(changes)
    shifted["features"][0]["geometry"]["coordinates"] = [
        [[x + 0.5, y] for x, y in feature["geometry"]["coordinates"][0]]
    ]
    assert ("polygon_crs", "critical", FIRST) in names(gate(report, shifted, metrics))

    declared = {**changes, "crs": {"type": "name", "properties": {"name": "EPSG:32749"}}}
    assert ("polygon_crs", "critical", None) in names(gate(report, declared, metrics))
    wgs84 = {**changes, "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}}
    assert gate(report, wgs84, metrics).findings == []


def test_report_changes_and_metrics_must_agree() -> None:
    report, changes, metrics = documents(make_run(overrides={FIRST: {"status": "failed"}}))
    assert gate(report, changes, metrics).findings == []

    def found(r: dict[str, Any], c: dict[str, Any], m: dict[str, float]) -> list[tuple[str, str, str | None]]:
        return [n for n in names(gate(r, c, m)) if n[0] == "counts_consistent"]

    wrong_counts = {**report, "counts": {**report["counts"], "succeeded": 4}}
    assert found(wrong_counts, changes, metrics) == [("counts_consistent", "critical", None)]

    ghost = copy.deepcopy(changes)
    ghost["features"].append(
        {
            **copy.deepcopy(ghost["features"][0]),
            "properties": {**ghost["features"][0]["properties"], "region": FIRST},
        }
    )
    assert ("counts_consistent", "critical", FIRST) in found(
        report, ghost, metrics
    )  # a failed region's polygon

    extra = copy.deepcopy(changes)
    extra["features"].append(copy.deepcopy(extra["features"][0]))
    second = extra["features"][0]["properties"]["region"]
    assert ("counts_consistent", "critical", second) in found(report, extra, metrics)  # 3 listed, 2 counted

    new_area = copy.deepcopy(report)
    new_area["regions"][1]["new_area_ha"]["built_up"] += 5.0
    new_area["regions"][1]["area_ha"]["built_up"] += 5.0
    assert ("counts_consistent", "critical", REGIONS[1].name) in found(new_area, changes, metrics)

    assert found(report, changes, {**metrics, "RegionsSucceeded": metrics["RegionsSucceeded"] + 1}) == [
        ("counts_consistent", "critical", None)
    ]
    assert found(report, changes, {**metrics, "HectaresBuilt": metrics["HectaresBuilt"] * 2}) == [
        ("counts_consistent", "critical", None)
    ]


# --- history ----------------------------------------------------------------------------------------


def test_a_region_far_above_its_own_history_is_a_warning() -> None:
    history = _history()  # ~4.9 new ha of built_up a week in every region
    spike = make_run(overrides={FIRST: {"new_side": 0.008}})  # ~78 ha: 16x its median
    quality = gate(*documents(spike), history=history)
    assert names(quality) == [("region_new_area_spike", "warn", FIRST)]
    assert quality.status == "warnings"
    assert not quality.blocks_publication

    busy = make_run(overrides={FIRST: {"new_side": 0.004}})  # ~20 ha: 4x, below both limits
    assert gate(*documents(busy), history=history).findings == []


def test_a_spike_below_the_absolute_floor_is_not_reported() -> None:
    history = _history(new_side=0.0005)  # ~0.3 ha a week
    spike = make_run(overrides={FIRST: {"new_side": 0.004}})  # ~20 ha: 60x, but under 25 ha
    assert gate(*documents(spike), history=history).findings == []


def test_a_region_with_too_few_ok_weeks_is_not_judged() -> None:
    history = [
        parse_report(
            build_report(make_run(RUN_DATE - timedelta(weeks=w), overrides={FIRST: {"status": "failed"}}))
        )
        for w in range(1, 9)
    ]
    spike = make_run(overrides={FIRST: {"new_side": 0.008}})
    quality = gate(*documents(spike), history=history)
    assert quality.findings == []
    assert quality.skipped["region_new_area_spike"] == "1 region(s) have fewer than 4 earlier ok weeks"


def test_a_doubled_java_wide_area_is_critical() -> None:
    """The signature of a backend change that doubles areas: every region, every class, x2."""
    history = _history()
    doubled = make_run(persisting_side=0.01 * 2**0.5, new_side=0.002 * 2**0.5)
    quality = gate(*documents(doubled), history=history)
    assert ("java_area_jump", "critical", None) in names(quality)
    assert quality.status == "failed"
    ordinary = make_run(persisting_side=0.01 * 1.2**0.5)  # 20 % more: a busy week
    assert gate(*documents(ordinary), history=history).findings == []


def test_clouded_out_history_weeks_do_not_make_a_jump() -> None:
    """History compares over the regions ok in both weeks, so half a week missing is no jump."""
    clouded = {r.name: {"status": "insufficient_observations", "observed": 0.2} for r in REGIONS[1:]}
    history = _history(overrides=clouded)
    quality = gate(*documents(make_run()), history=history)
    assert "java_area_jump" not in {f.name for f in quality.findings}


def test_ten_times_the_usual_new_construction_is_critical() -> None:
    history = _history()
    boom = make_run(new_side=0.002 * 13**0.5)  # ~64 new ha per region, 254 ha Java-wide vs ~20
    found = names(gate(*documents(boom), history=history))
    assert ("java_new_area_jump", "critical", None) in found
    assert ("region_new_area_spike", "warn", FIRST) in found
    assert gate(*documents(make_run(new_side=0.002 * 3**0.5)), history=history).findings == []


def test_observed_fraction_dropping_in_most_regions_is_a_warning() -> None:
    history = _history(observed=0.95)
    low = make_run(observed=0.55)
    quality = gate(*documents(low), history=history)
    assert [(f.name, f.severity) for f in quality.findings] == [("observed_fraction_drop", "warn")]
    assert all(r.name in quality.findings[0].message for r in REGIONS)
    one_cloudy = make_run(observed=0.95, overrides={FIRST: {"observed": 0.55}})
    assert gate(*documents(one_cloudy), history=history).findings == []


# --- provenance -----------------------------------------------------------------------------------


def _with_corrections(corrected: int, items: int | None) -> dict[str, Any]:
    report, _, _ = documents(make_run())
    report["imagery"]["corrections"] = [
        {
            "item_id": f"S2B_49MBN_20261120_{i}_L2A",
            "reason": "offset not applied",
            "declared_offset": -1000,
            "applied_offset": 0,
        }
        for i in range(corrected)
    ]
    if items is not None:
        report["imagery"]["items_read"] = items
    return report


@pytest.mark.parametrize(
    ("corrected", "items", "expected"),
    [
        (0, 40, []),
        (2, 40, []),
        (6, 40, [("imagery_corrections", "warn", None)]),
        (20, 40, [("imagery_corrections", "critical", None)]),
        (3, None, [("imagery_corrections", "warn", None)]),
    ],
)
def test_imagery_corrections_above_a_share_of_the_items(
    corrected: int, items: int | None, expected: list[tuple[str, str, None]]
) -> None:
    _, changes, metrics = documents(make_run())
    assert names(gate(_with_corrections(corrected, items), changes, metrics)) == expected


# --- verdicts and history from the store ----------------------------------------------------------


def test_an_operator_accepts_a_reviewed_run() -> None:
    report, changes, metrics = documents(make_run())
    report["regions"][0]["observed_fraction"] = 1.3
    quality = gate(report, changes, metrics, accept=True)
    assert (quality.status, quality.accepted, quality.failures) == ("accepted", True, 1)
    assert not quality.blocks_publication
    assert "data quality accepted: 1 critical" in quality.summary_line()
    clean = gate(*documents(make_run()), accept=True)
    assert (clean.status, clean.accepted) == ("passed", False)


def test_summary_line_names_the_first_critical_finding() -> None:
    report, changes, metrics = documents(make_run())
    report["regions"][0]["area_ha"]["vegetation_clearing"] = -1.0
    line = gate(report, changes, metrics).summary_line()
    assert line.startswith("data quality failed: 2 critical, 0 warning(s); first: hectares_negative")
    assert f"[{FIRST}]" in line


def _publish(store: LocalStore, summary: RunSummary, status: str | None = None) -> None:
    if status is not None:
        summary = summary.model_copy(update={"status": status})
    publish_reports(store, summary, "<html></html>", move_latest=summary.status in ("succeeded", "partial"))


def test_history_is_read_from_published_reports(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "reports")
    for weeks in range(1, 4):
        _publish(store, make_run(RUN_DATE - timedelta(weeks=weeks)))
    last_week = RUN_DATE - timedelta(weeks=1)
    _publish(store, make_run(last_week, run_id="20261116T090000Z-rerun1"))  # a later rerun of that week
    _publish(store, make_run(last_week, run_id="20261116T120000Z-qfail1"), status="quality_failed")
    _publish(store, make_run(RUN_DATE))  # the same week: never its own history
    _publish(store, make_run(RUN_DATE + timedelta(weeks=1)))  # a later week (this is a backfill)
    store.write_bytes(
        f"weekly/{RUN_DATE - timedelta(weeks=4)}/20261026T060000Z-broken/report.json", b"{not json"
    )

    history = load_history(store, before=RUN_DATE)
    assert [(h.run_date, h.run_id) for h in history] == [
        (last_week, "20261116T090000Z-rerun1"),
        (RUN_DATE - timedelta(weeks=2), "20261109T060000Z-abc123"),
        (RUN_DATE - timedelta(weeks=3), "20261102T060000Z-abc123"),
    ]
    short = load_history(
        store, before=RUN_DATE, t=DEFAULT_THRESHOLDS.model_copy(update={"history_lookback_weeks": 2})
    )
    assert len(short) == 2


def test_parse_report_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"not a report\.json"):
        parse_report({"run_id": "x"})
    report = json.loads(json.dumps(build_report(make_run())))
    assert parse_report(report).ok().keys() == set(GEOMETRIES)


def test_docs_give_every_threshold_with_its_value_and_every_check() -> None:
    """docs/quality.md is the reference for the thresholds: it must match the code."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "quality.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([\d.]+) \|", text, flags=re.MULTILINE))
    expected = {name: str(value) for name, value in DEFAULT_THRESHOLDS.model_dump().items()}
    assert rows == expected
    documented = set(
        re.findall(r"^\| `(\w+)` \| (?:warn|critical|warn / critical) \|", text, flags=re.MULTILINE)
    )
    assert documented == {*INVARIANT_CHECKS, *HISTORY_CHECKS}


def test_the_page_shows_the_quality_section_escaped() -> None:
    from ccapi_monitor.reports.html import render_html

    report, changes, metrics = documents(make_run())
    report["regions"][0]["observed_fraction"] = 1.3
    quality = gate(report, changes, metrics, history=_history(weeks=2))
    page = render_html(make_run().model_copy(update={"quality": quality}))
    section = page[page.index('<section id="quality"') : page.index("</section>", page.index('id="quality"'))]
    assert "Data quality: failed" in section
    assert "Not published." in section
    assert f"<td>observed_fraction_range</td><td>critical</td><td>{FIRST}</td>" in section
    assert "Not checked: region_new_area_spike (2 earlier published week(s), 4 needed)" in section
    assert 'id="quality"' not in render_html(make_run())  # no verdict, no section

    quality = quality.model_copy(
        update={"findings": [quality.findings[0].model_copy(update={"message": "<script>x</script>"})]}
    )
    assert "&lt;script&gt;x&lt;/script&gt;" in render_html(make_run().model_copy(update={"quality": quality}))


def _doubled_history_store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "reports")
    for weeks in range(1, 5):
        _publish(store, make_run(RUN_DATE - timedelta(weeks=weeks), persisting_side=0.01 / 2**0.5))
    return store


def test_gate_run_stops_a_publishing_run_and_reports_through_metrics_and_callback(tmp_path: Path) -> None:
    store = _doubled_history_store(tmp_path)
    gated = gate_run(make_run(), regions=GEOMETRIES, reports=store)
    assert (gated.status, gated.exit_code) == ("quality_failed", 5)
    assert gated.quality is not None
    assert gated.quality.history_weeks == 4
    metrics = run_metric_values(gated)
    assert metrics["DataQualityFailures"] == (float(gated.quality.failures), "Count")
    assert metrics["DataQualityWarnings"] == (0.0, "Count")
    payload = success_payload(gated)
    assert payload["status"] == "quality_failed"
    assert payload["quality"] == gated.quality.callback_fields()
    assert payload["quality"]["message"].startswith("data quality failed: 1 critical")

    accepted = gate_run(make_run(), regions=GEOMETRIES, reports=store, accept=True)
    assert (accepted.status, accepted.exit_code, accepted.quality and accepted.quality.status) == (
        "succeeded",
        0,
        "accepted",
    )


def test_gate_run_keeps_exit_1_when_no_region_succeeded(tmp_path: Path) -> None:
    all_failed = {name: {"status": "failed"} for name in GEOMETRIES}
    summary = make_run(overrides=all_failed).model_copy(update={"status": "failed", "exit_code": 1})
    report, changes, metrics = documents(summary)
    summary = summary.model_copy(update={"regions": [*summary.regions[:-1]]})  # one region lost: critical
    gated = gate_run(summary, regions=GEOMETRIES, reports=LocalStore(tmp_path))
    assert (gated.status, gated.exit_code) == ("failed", 1)
    assert gated.quality is not None
    assert gated.quality.status == "failed"
    assert report["counts"]["failed"] == len(GEOMETRIES)
    assert changes["features"] == []
    assert "DataQualityFailures" not in metrics  # no verdict yet: no quality metrics
