"""Week over week (docs/design/detection.md step 9): which change polygons are new this week.

Detection compares the present with the past year, so a clearing stays visible for
weeks. A polygon that intersects a polygon of the same class in the previous
published run is ``persisting`` (it keeps its original ``first_detected``); any other
is ``new``. ``new_area_ha`` sums the new ones, and is what the score counts.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import pyproj
import shapely
import structlog
from pydantic import ValidationError
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from ccapi_monitor.errors import StoreError
from ccapi_monitor.models import ChangePolygon, PreviousRunInfo
from ccapi_monitor.params import CLASSES
from ccapi_monitor.reports.history import published_runs
from ccapi_monitor.reports.layout import LATEST_KEY, run_prefix
from ccapi_monitor.storage import Store

log = structlog.get_logger(__name__)
_GEOD = pyproj.Geod(ellps="WGS84")


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


def _geodesic_ha(geometry: BaseGeometry) -> float:
    area_m2, _ = _GEOD.geometry_area_perimeter(geometry)
    return abs(area_m2) / 10_000.0


def _parts(geometry: BaseGeometry) -> list[BaseGeometry]:
    """The polygons of a (multi)polygon or collection; empty for anything without area."""
    if geometry.is_empty:
        return []
    if isinstance(geometry, Polygon):
        return [geometry]
    if isinstance(geometry, MultiPolygon | GeometryCollection):
        return [p for g in geometry.geoms for p in _parts(g)]
    return []


def label_changes(
    polygons: list[ChangePolygon],
    previous: list[ChangePolygon] | None,
    run_date: date,
    *,
    mmu_ha: float = 0.0,
) -> tuple[list[ChangePolygon], dict[str, float]]:
    """Label each polygon ``new`` or ``persisting`` against the previous footprint.

    ``polygons`` should be this run's complete footprint (every component) and
    ``previous`` the complete footprint of the region's last ``ok`` run, or ``None`` on
    a first run: then everything is new. A polygon intersecting a previous one of its
    class persists (keeping the earliest ``first_detected``). New hectares per class are
    this footprint outside the previous one, counted in parts of at least ``mmu_ha``
    (geodesic areas): a site that grew adds its growth, not its whole area. Returns the
    labelled copies, in input order, and the new hectares (every class, 0.0 when none).
    """
    trees: dict[str, tuple[shapely.STRtree, list[ChangePolygon], list[BaseGeometry]]] = {}
    for change_class in CLASSES:
        same_class = [p for p in previous or [] if p.change_class == change_class]
        if same_class:
            shapes = [_geometry(p) for p in same_class]
            trees[change_class] = (shapely.STRtree(shapes), same_class, shapes)

    labelled: list[ChangePolygon] = []
    new_area_ha = dict.fromkeys(CLASSES, 0.0)
    for polygon in polygons:
        hits: list[int] = []
        if polygon.change_class in trees:
            tree, _, _ = trees[polygon.change_class]
            hits = [int(i) for i in tree.query(_geometry(polygon), predicate="intersects")]
        if not hits:
            labelled.append(polygon.model_copy(update={"change": "new", "first_detected": run_date}))
            new_area_ha[polygon.change_class] += polygon.area_ha
            continue
        _, candidates, shapes = trees[polygon.change_class]
        earlier = [d for i in hits if (d := candidates[i].first_detected) is not None]
        first = min(earlier) if earlier else polygon.first_detected
        labelled.append(polygon.model_copy(update={"change": "persisting", "first_detected": first}))
        growth = _geometry(polygon).difference(shapely.union_all([shapes[i] for i in hits]))
        new_area_ha[polygon.change_class] += sum(
            ha for ha in (_geodesic_ha(part) for part in _parts(growth)) if ha >= mmu_ha
        )
    return labelled, {c: round(v, 4) for c, v in new_area_ha.items()}


#: Where a region's complete change footprint of one run is kept (reports store, gzip GeoJSON).
FOOTPRINT_PREFIX: Final = "footprints"


def footprint_key(region: str, run_date: date, run_id: str) -> str:
    return f"{FOOTPRINT_PREFIX}/{region}/{run_date.isoformat()}/{run_id}.geojson.gz"


@dataclass(frozen=True)
class PreviousFootprint:
    """A region's complete footprint from its most recent earlier ``ok`` run."""

    run_id: str
    run_date: date
    polygons: list[ChangePolygon]


class FootprintStore:
    """Every component of each ``ok`` region of each run, kept beside the published reports.

    Week over week compares against the region's most recent earlier run in which it was
    ``ok`` and that run was published (``succeeded``/``partial``): a week lost to cloud
    (``insufficient_observations`` writes no footprint) does not make old sites new, and
    sites beyond the 500 listed polygons are still known. A run that never published
    (crashed, aborted) is never compared against.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._published: dict[date, str] | None = None
        self._lock = threading.Lock()

    def save(self, region: str, run_date: date, run_id: str, polygons: list[ChangePolygon]) -> str:
        document = {"type": "FeatureCollection", "features": [p.to_feature() for p in polygons]}
        data = gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)
        return self.store.write_bytes(footprint_key(region, run_date, run_id), data, "application/gzip")

    def _published_runs(self) -> dict[date, str]:
        with self._lock:
            if self._published is None:
                self._published = published_runs(self.store)
            return self._published

    def previous(self, region: str, before: date) -> PreviousFootprint | None:
        """The newest footprint of ``region`` from a published run dated before ``before``."""
        published = self._published_runs()
        for key in sorted(self.store.list_keys(f"{FOOTPRINT_PREFIX}/{region}/"), reverse=True):
            parts = key.split("/")
            if len(parts) != 4 or not parts[3].endswith(".geojson.gz"):
                continue
            try:
                run_date = date.fromisoformat(parts[2])
            except ValueError:
                continue
            run_id = parts[3].removesuffix(".geojson.gz")
            if run_date >= before or published.get(run_date) != run_id:
                continue
            raw = self.store.read_bytes(key)
            if raw is None:
                continue
            try:
                polygons = polygons_from_geojson(json.loads(gzip.decompress(raw)))
            except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
                log.warning("footprint unreadable", key=key, error=f"{type(exc).__name__}: {exc}")
                continue
            return PreviousFootprint(run_id=run_id, run_date=run_date, polygons=polygons)
        return None


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
