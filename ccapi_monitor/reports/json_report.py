"""report.json, changes.geojson/.parquet and the publishing order that keeps a week whole.

Report files are written first, then the week's partitions of the curated history
(:mod:`ccapi_monitor.reports.history`), and ``weekly/latest.json`` last, so a reader
that follows the pointer always finds a complete run; a run that does not complete
never moves it, nor touches the history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from ccapi_monitor.errors import StoreError
from ccapi_monitor.models import (
    ChangePolygon,
    ImageryInfo,
    PreviousRunInfo,
    RegionResult,
    RunStatus,
    RunSummary,
    Totals,
)
from ccapi_monitor.params import DetectionParams, Windows
from ccapi_monitor.quality import QualityReport
from ccapi_monitor.reports.history import PARQUET_TYPE, changes_parquet, write_history
from ccapi_monitor.reports.layout import LATEST_KEY, SCHEMA_VERSION, report_keys
from ccapi_monitor.storage import Store

log = structlog.get_logger(__name__)


class RegionReport(RegionResult):
    """A region as report.json has it: its polygons are published in changes.geojson."""

    polygons: list[ChangePolygon] = Field(default_factory=list, exclude=True)


class RunCounts(BaseModel):
    total: int = Field(ge=0)
    succeeded: int = Field(ge=0)
    failed: int = Field(ge=0)
    insufficient: int = Field(ge=0)


class ReportDocument(BaseModel):
    """One run of the weekly Java land-clearing and construction monitor. Areas in hectares on
    an equal-area basis (docs/design/report.md)."""

    model_config = ConfigDict(
        title="ccapi-monitor weekly report (report.json)", json_schema_serialization_defaults_required=True
    )

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    #: The pattern new_run_id() produces; stated in the schema, not enforced on test fixtures.
    run_id: str = Field(json_schema_extra={"pattern": r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$"})
    run_date: date
    status: RunStatus
    exit_code: int = Field(ge=0)
    environment: str
    generated_at: str
    imagery: ImageryInfo
    windows: Windows
    parameters: DetectionParams
    previous_run: PreviousRunInfo
    counts: RunCounts
    regions: list[RegionReport] = Field(min_length=1)
    totals: Totals
    duration_s: float = Field(ge=0)
    #: The data-quality gate's verdict (docs/quality.md); null when the gate did not run.
    quality: QualityReport | None = None


def build_report(summary: RunSummary) -> dict[str, Any]:
    """The machine-readable report; its JSON Schema (docs/report.schema.json) is generated from
    :class:`ReportDocument` by ``make report-schema``."""
    document = ReportDocument.model_validate(
        {
            **summary.model_dump(include={"run_id", "run_date", "status", "exit_code", "environment"}),
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "imagery": summary.imagery,
            "windows": summary.windows,
            "parameters": summary.parameters,
            "previous_run": summary.previous_run,
            "counts": summary.counts(),
            "regions": [r.model_dump() for r in summary.regions],
            "totals": summary.totals,
            "duration_s": round(summary.duration_s, 3),
            "quality": summary.quality,
        }
    )
    return document.model_dump(mode="json")


def build_changes(summary: RunSummary) -> dict[str, Any]:
    """All regions' change polygons as one FeatureCollection in EPSG:4326."""
    features = [p.to_feature() for r in summary.regions for p in r.polygons]
    return {
        "type": "FeatureCollection",
        "name": f"ccapi-changes-{summary.run_date.isoformat()}",
        "features": features,
    }


def _json_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


#: Attempts to move ``latest.json`` when other runs keep moving it at the same time.
POINTER_ATTEMPTS = 5


def _parse_pointer(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        pointer = json.loads(raw)
        date.fromisoformat(pointer["run_date"])
    except (ValueError, KeyError, TypeError):
        log.warning("latest_pointer_unreadable", key=LATEST_KEY)
        return None
    return pointer if isinstance(pointer, dict) else None


def move_latest_pointer(store: Store, pointer: dict[str, Any]) -> bool:
    """Move ``latest.json`` to ``pointer`` unless a newer week is there; safe against concurrent runs.

    Read, decide with :func:`next_pointer`, write only if nobody wrote in between (S3
    conditional writes); on a lost race, read the winner's pointer and decide again. A
    scheduled and a manual run finishing together therefore never leave the older week.
    """
    for _ in range(POINTER_ATTEMPTS):
        raw, version = store.read_versioned(LATEST_KEY)
        latest = next_pointer(_parse_pointer(raw), pointer)
        if latest is None:
            log.info("latest_not_moved", reason="a newer week is already published")
            return False
        if store.write_if(LATEST_KEY, _json_bytes(latest), "application/json", expected=version):
            return True
        log.info("latest_pointer_race", action="re-reading the pointer another run just wrote")
    raise StoreError(
        f"{LATEST_KEY} kept changing under {POINTER_ATTEMPTS} attempts to move it; rerun to publish the pointer"
    )


def next_pointer(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any] | None:
    """The pointer to write, or ``None`` to leave ``latest.json`` as it is.

    ``latest.json`` names the newest week: a backfill of an older week does not move
    it. It also remembers the newest run of an earlier week as ``previous``, so a rerun
    of this week still compares against last week, not against itself.
    """
    if old is None:
        return {**new, "previous": None}
    old_date, new_date = date.fromisoformat(old["run_date"]), date.fromisoformat(new["run_date"])
    if new_date < old_date:
        return None
    if new_date > old_date:
        return {**new, "previous": {k: v for k, v in old.items() if k != "previous"}}
    return {**new, "previous": old.get("previous")}


def publish_reports(
    store: Store,
    summary: RunSummary,
    html: str,
    *,
    move_latest: bool = True,
    region_geometries: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Write the report set, then (for a run that published regions) the history and ``latest.json``.

    A run in which every region failed still leaves its report for diagnosis, but the
    pointer keeps naming the last good week and the history keeps that week's last good
    run. ``region_geometries`` give the regions table its outlines. Returns the files'
    URIs by kind.
    """
    keys = report_keys(summary.run_date, summary.run_id)
    report = build_report(summary)
    uris = {
        "json": store.write_bytes(keys["json"], _json_bytes(report), "application/json"),
        "geojson": store.write_bytes(
            keys["geojson"], _json_bytes(build_changes(summary)), "application/geo+json"
        ),
        "parquet": store.write_bytes(keys["parquet"], changes_parquet(summary), PARQUET_TYPE),
        "html": store.write_bytes(keys["html"], html.encode("utf-8"), "text/html; charset=utf-8"),
    }
    if move_latest:
        polygons = [p for r in summary.regions for p in r.polygons]
        write_history(store, summary.run_id, summary.run_date, report, polygons, region_geometries or {})
    pointer = {
        "run_id": summary.run_id,
        "run_date": summary.run_date.isoformat(),
        "status": summary.status,
        "report": keys["json"],
        "changes": keys["geojson"],
        "html": keys["html"],
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if move_latest:
        move_latest_pointer(store, pointer)
    log.info("reports_published", latest_moved=move_latest, **uris)
    return uris
