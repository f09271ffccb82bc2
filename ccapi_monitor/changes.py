"""Week over week (docs/design/detection.md step 9): which change polygons are new this week.

Detection compares the present with the past year, so a clearing stays visible for
weeks. A polygon that intersects a polygon of the same class in the previous
published run is ``persisting`` (it keeps its original ``first_detected``); any other
is ``new``. ``new_area_ha`` sums the new ones, and is what the score counts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import shapely
import structlog
from pydantic import ValidationError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ccapi_monitor.errors import StoreError
from ccapi_monitor.models import ChangePolygon, PreviousRunInfo
from ccapi_monitor.params import CLASSES
from ccapi_monitor.reports.layout import LATEST_KEY, run_prefix
from ccapi_monitor.storage import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PreviousRun:
    """The previous published run, as far as week over week needs it."""

    run_id: str
    run_date: date
    report_key: str | None
    changes_key: str
    polygons_by_region: dict[str, list[ChangePolygon]] = field(default_factory=dict)
    #: Regions that were ``ok`` in the previous run (from its report.json); ``None`` when unknown.
    ok_regions: frozenset[str] | None = None

    def compared(self, region: str) -> bool:
        """Whether ``region`` had a result last week: if not, all its polygons count as new."""
        return self.ok_regions is None or region in self.ok_regions

    def polygons(self, region: str | None = None) -> list[ChangePolygon]:
        """One region's previous polygons, or every region's when ``region`` is None."""
        if region is not None:
            return list(self.polygons_by_region.get(region, []))
        return [p for group in self.polygons_by_region.values() for p in group]

    def describe(self) -> PreviousRunInfo:
        """What report.json / report.html say about the run compared against."""
        return PreviousRunInfo(
            run_id=self.run_id,
            run_date=self.run_date,
            report=self.report_key,
            changes=self.changes_key,
            polygon_count=sum(len(g) for g in self.polygons_by_region.values()),
            regions_compared=sorted(self.ok_regions) if self.ok_regions is not None else None,
        )


def _geometry(polygon: ChangePolygon) -> BaseGeometry:
    geom = shape(polygon.geometry)
    # Polygons from rasters are valid, but a hand-edited or reprojected file may not be;
    # an invalid geometry would make intersects() unreliable.
    return geom if geom.is_valid else shapely.make_valid(geom)


def label_changes(
    polygons: list[ChangePolygon], previous: list[ChangePolygon] | None, run_date: date
) -> tuple[list[ChangePolygon], dict[str, float]]:
    """Label each polygon ``new`` or ``persisting`` against the previous run's polygons.

    ``previous`` is ``None`` on the first run (or when the previous run is missing):
    then everything is new. Returns the labelled copies, in input order, and the new
    hectares per class (every class present, 0.0 when nothing is new).
    """
    trees: dict[str, tuple[shapely.STRtree, list[ChangePolygon]]] = {}
    for change_class in CLASSES:
        same_class = [p for p in previous or [] if p.change_class == change_class]
        if same_class:
            trees[change_class] = (shapely.STRtree([_geometry(p) for p in same_class]), same_class)

    labelled: list[ChangePolygon] = []
    new_area_ha = dict.fromkeys(CLASSES, 0.0)
    for polygon in polygons:
        matches: list[ChangePolygon] = []
        if polygon.change_class in trees:
            tree, candidates = trees[polygon.change_class]
            hits = tree.query(_geometry(polygon), predicate="intersects")
            matches = [candidates[int(i)] for i in hits]
        if matches:
            earlier = [m.first_detected for m in matches if m.first_detected is not None]
            first = min(earlier) if earlier else polygon.first_detected
            labelled.append(polygon.model_copy(update={"change": "persisting", "first_detected": first}))
        else:
            labelled.append(polygon.model_copy(update={"change": "new", "first_detected": run_date}))
            new_area_ha[polygon.change_class] += polygon.area_ha
    return labelled, {c: round(v, 4) for c, v in new_area_ha.items()}


def polygons_from_geojson(document: Any) -> list[ChangePolygon]:
    """Parse a ``changes.geojson`` FeatureCollection back into polygons."""
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise ValueError("not a GeoJSON FeatureCollection")
    polygons: list[ChangePolygon] = []
    for feature in document.get("features") or []:
        props = dict(feature.get("properties") or {})
        if props.get("centroid") is None:
            point = shape(feature["geometry"]).centroid
            props["centroid"] = (point.x, point.y)
        polygons.append(ChangePolygon.model_validate({**props, "geometry": feature["geometry"]}))
    return polygons


def _read_json(store: Store, key: str) -> Any:
    data = store.read_bytes(key)
    if data is None:
        raise FileNotFoundError(key)
    return json.loads(data)


def _ok_regions(report: Any) -> frozenset[str]:
    """Names of the regions ``ok`` in a report.json (docs/design/report.md)."""
    return frozenset(r["name"] for r in report["regions"] if r.get("status") == "ok")


def _pointer_date(pointer: Any) -> date | None:
    if not isinstance(pointer, dict) or not pointer.get("run_date"):
        return None
    return date.fromisoformat(str(pointer["run_date"]))


def _scan_for_run(store: Store, before: date) -> dict[str, Any] | None:
    """The newest published run dated before ``before``, found by listing ``weekly/``.

    Used when ``latest.json`` names a later week (a backfill): a run counts when its
    report.json says it published regions (``succeeded`` or ``partial``), the same rule
    that lets a run move ``latest.json``. Run ids sort by time within a date.
    """
    runs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key in store.list_keys("weekly/"):
        parts = key.split("/")
        if len(parts) == 4:
            runs[(parts[1], parts[2])].add(parts[3])
    for (day, run_id), files in sorted(runs.items(), reverse=True):
        try:
            run_date = date.fromisoformat(day)
        except ValueError:
            continue
        if run_date >= before or not {"report.json", "changes.geojson"} <= files:
            continue
        prefix = run_prefix(run_date, run_id)
        try:
            status = _read_json(store, f"{prefix}/report.json").get("status")
        except (FileNotFoundError, ValueError, AttributeError):
            continue
        if status in ("succeeded", "partial"):
            return {
                "run_id": run_id,
                "run_date": day,
                "report": f"{prefix}/report.json",
                "changes": f"{prefix}/changes.geojson",
            }
    return None


def _choose_pointer(store: Store, before: date | None) -> dict[str, Any] | None:
    """``latest.json``, or the earlier run it remembers, or a listed run: the newest before ``before``."""
    raw = store.read_bytes(LATEST_KEY)
    if raw is None:
        log.info("no previous run", key=LATEST_KEY)
        return None
    latest = json.loads(raw)
    if not isinstance(latest, dict):
        raise ValueError("latest.json is not an object")
    for pointer in (latest, latest.get("previous")):
        run_date = _pointer_date(pointer)
        if isinstance(pointer, dict) and run_date is not None and (before is None or run_date < before):
            return pointer
    return _scan_for_run(store, before) if before is not None else None


def load_previous_run(store: Store, *, before: date | None = None) -> PreviousRun | None:
    """The newest published run dated before ``before`` (default: whatever ``latest.json`` names).

    Found through ``weekly/latest.json``: its own run, else the earlier run it remembers
    as ``previous`` (a rerun of the same week), else, for a backfill, the newest
    published run listed under ``weekly/``. Returns ``None`` on a first run, and also,
    with a warning logged, when the pointer or a file it names is missing or unreadable:
    week over week then counts every polygon as new, and the report says there was no
    previous run. A store that cannot be read at all (:class:`StoreError`) propagates.
    """
    try:
        pointer = _choose_pointer(store, before)
        if pointer is None:
            return None
        changes_key = str(pointer["changes"])
        report_key = str(pointer["report"]) if pointer.get("report") else None
        run_id = str(pointer["run_id"])
        run_date = date.fromisoformat(str(pointer["run_date"]))
        polygons = polygons_from_geojson(_read_json(store, changes_key))
        ok_regions = _ok_regions(_read_json(store, report_key)) if report_key else None
    except StoreError:
        raise
    except FileNotFoundError as exc:
        log.warning("previous run missing", key=LATEST_KEY, missing=str(exc))
        return None
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
        log.warning("previous run unreadable", key=LATEST_KEY, error=f"{type(exc).__name__}: {exc}")
        return None
    by_region: dict[str, list[ChangePolygon]] = defaultdict(list)
    for polygon in polygons:
        by_region[polygon.region].append(polygon)
    return PreviousRun(
        run_id=run_id,
        run_date=run_date,
        report_key=report_key,
        changes_key=changes_key,
        polygons_by_region=dict(by_region),
        ok_regions=ok_regions,
    )
