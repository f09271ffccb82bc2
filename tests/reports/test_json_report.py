from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from ccapi_monitor.models import ChangePolygon, InvestmentScore, RegionResult, RunSummary
from ccapi_monitor.reports.history import partition_key
from ccapi_monitor.reports.json_report import build_changes, build_report, publish_reports
from ccapi_monitor.reports.layout import LATEST_KEY, report_keys
from ccapi_monitor.storage import LocalStore
from tools import report_schema

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report.schema.json").read_text())


def _region(name: str, status: str) -> RegionResult:
    base = {"name": name, "province": "banten", "focus": "urban", "priority": 1, "tier": 2, "area_km2": 489.7}
    if status == "failed":
        return RegionResult(**base, status="failed", error="asset unreadable")
    if status == "insufficient_observations":
        return RegionResult(**base, status="insufficient_observations", observed_fraction=0.31)
    polygon = ChangePolygon(
        region=name,
        change_class="built_up",
        area_ha=1.5,
        centroid=(106.01, -6.01),
        geometry={
            "type": "Polygon",
            "coordinates": [[[106.0, -6.0], [106.02, -6.0], [106.02, -6.02], [106.0, -6.0]]],
        },
        first_detected=date(2026, 11, 23),
    )
    return RegionResult(
        **base,
        status="ok",
        observed_fraction=0.93,
        area_ha={"vegetation_clearing": 0.0, "built_up": 1.5},
        new_area_ha={"vegetation_clearing": 0.0, "built_up": 1.5},
        polygon_count=1,
        polygons=[polygon],
        score=InvestmentScore(value=55.0, label="WATCH", rationale="1.5 ha built up"),
    )


def _summary(*statuses: str) -> RunSummary:
    zeros = {"vegetation_clearing": 0.0, "built_up": 1.5}
    return RunSummary(
        run_id="20261123T060000Z-abc123",
        run_date=date(2026, 11, 23),
        status="partial" if "failed" in statuses else "succeeded",
        exit_code=2 if "failed" in statuses else 0,
        environment="test",
        duration_s=12.5,
        regions=[_region(f"r{i}", s) for i, s in enumerate(statuses)],
        totals={
            "area_ha": zeros,
            "new_area_ha": zeros,
            "union_area_ha": zeros,
            "union_new_area_ha": zeros,
            "polygon_count": 1,
            "regions_measured": 1,
        },
        imagery={"source": "demo"},
        windows={
            "current": {"start": "2026-10-24", "end": "2026-11-23"},
            "persistence": {"start": "2026-09-24", "end": "2026-11-23"},
            "baseline": {"start": "2025-09-24", "end": "2026-09-24"},
        },
        parameters={},
    )


def test_report_validates_against_the_published_schema() -> None:
    report = build_report(_summary("ok", "failed", "insufficient_observations"))
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(report)
    assert report["counts"] == {"total": 3, "succeeded": 1, "failed": 1, "insufficient": 1}
    assert "polygons" not in report["regions"][0]  # polygons live in changes.geojson


def test_the_schema_is_generated_from_the_models() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"
    assert path.read_text(encoding="utf-8") == report_schema.render(), (
        "docs/report.schema.json is stale: run `make report-schema` and commit it"
    )
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_rejects_zero_hectares_for_an_unmeasured_region() -> None:
    report = build_report(_summary("insufficient_observations"))
    report["regions"][0]["area_ha"] = {"vegetation_clearing": 0.0, "built_up": 0.0}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, SCHEMA)


def test_changes_features_carry_the_documented_properties() -> None:
    changes = build_changes(_summary("ok", "ok"))
    assert len(changes["features"]) == 2
    props = changes["features"][0]["properties"]
    assert {"region", "class", "area_ha", "change", "first_detected"} <= set(props)
    assert props["class"] == "built_up"
    assert props["first_detected"] == "2026-11-23"


class RecordingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.order: list[str] = []

    def write_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.order.append(key)
        return super().write_bytes(key, data, content_type)


def test_latest_pointer_is_written_last(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    summary = _summary("ok")
    uris = publish_reports(store, summary, "<html></html>")
    keys = report_keys(summary.run_date, summary.run_id)
    history = [partition_key(table, summary.run_date) for table in ("changes", "regions")]
    assert store.order == [keys["json"], keys["geojson"], keys["parquet"], keys["html"], *history, LATEST_KEY]
    pointer = json.loads(store.read_bytes(LATEST_KEY) or b"")
    assert pointer["report"] == keys["json"]
    assert set(uris) == {"json", "geojson", "parquet", "html"}


def test_a_run_that_published_no_region_leaves_latest_alone(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    publish_reports(store, _summary("failed"), "<html></html>", move_latest=False)
    assert LATEST_KEY not in store.order
    assert not [key for key in store.order if key.startswith("history/")]
    assert store.read_bytes(LATEST_KEY) is None


def _pointer(run_date: str, run_id: str) -> dict[str, object]:
    return {"run_id": run_id, "run_date": run_date, "report": f"weekly/{run_date}/{run_id}/report.json"}


def test_pointer_remembers_the_previous_week_across_reruns() -> None:
    from ccapi_monitor.reports.json_report import next_pointer

    first = next_pointer(None, _pointer("2026-11-16", "a"))
    assert first is not None
    assert first["previous"] is None
    second = next_pointer(first, _pointer("2026-11-23", "b"))
    assert second is not None
    assert second["previous"]["run_id"] == "a"
    rerun = next_pointer(second, _pointer("2026-11-23", "c"))
    assert rerun is not None
    assert (rerun["run_id"], rerun["previous"]["run_id"]) == ("c", "a")
    assert next_pointer(rerun, _pointer("2026-11-09", "old")) is None  # a backfill never moves latest
