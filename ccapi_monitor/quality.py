"""The data-quality gate: checks a run's documents before ``latest.json`` may move.

A wrong week that reaches ``latest.json`` and a success e-mail is worse than a failed
run, because people act on it. Every check here reads the documents the run is about
to publish (``report.json``, ``changes.geojson``, the metric values) and, for history,
the ``report.json`` of earlier published weeks from the reports store. Each finding
has a name, a severity and a message; a ``critical`` finding stops publication
(exit 5) unless an operator accepted the run (``--accept-quality``). The checks, their
thresholds and the reasons for each are documented in ``docs/quality.md``.

This module imports nothing from the run model, so ``models.py`` can import
:class:`QualityReport` without a cycle: the checks work on the JSON documents, which
also makes the current run and the history read from the store the same shape.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import shapely
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from ccapi_monitor.storage import Store

if TYPE_CHECKING:
    from ccapi_monitor.models import RunSummary

log = structlog.get_logger(__name__)

Severity = Literal["warn", "critical"]
QualityStatus = Literal["passed", "warnings", "failed", "accepted"]

#: Report statuses that mean "published as a complete week": only these count as history.
PUBLISHED_STATUSES = frozenset({"succeeded", "partial"})
#: The classes the checks sum over (kept in step with ``params.CLASSES`` by a test).
CHANGE_CLASSES = ("vegetation_clearing", "built_up")
#: Metric name -> the report count / total it must equal.
_COUNT_METRICS = {
    "RegionsSucceeded": "succeeded",
    "RegionsFailed": "failed",
    "RegionsInsufficientData": "insufficient",
}
#: Every check's name, as findings and ``quality.checks`` carry it (documented in docs/quality.md).
INVARIANT_CHECKS = (
    "hectares_negative",
    "new_exceeds_total",
    "hectares_exceed_observed_area",
    "observed_fraction_range",
    "regions_accounted",
    "polygon_validity",
    "polygon_crs",
    "counts_consistent",
    "imagery_corrections",
)
HISTORY_CHECKS = ("region_new_area_spike", "java_area_jump", "java_new_area_jump", "observed_fraction_drop")
#: Longest summary line: it travels in the callback payload and the SNS notification.
_LINE_LIMIT = 500
_HECTARE_METRICS = {"HectaresCleared": "vegetation_clearing", "HectaresBuilt": "built_up"}
#: GeoJSON ``crs`` names that mean lon/lat WGS 84 (RFC 7946 drops the member; older writers add one).
_WGS84_NAMES = frozenset(
    {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326"}
)


class QualityThresholds(BaseModel):
    """Every number the checks use, in one place; ``docs/quality.md`` gives the reason for each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    area_tolerance: float = Field(
        0.01, description="relative slack on 'hectares <= observed area' (edge pixels vs geodesic area)"
    )
    hectare_tolerance_ha: float = Field(
        0.05, description="absolute slack on sums of rounded hectares (4 decimals, up to 500 polygons)"
    )
    bounds_margin_deg: float = Field(
        0.01, description="how far (degrees, ~1 km) a change polygon may reach outside its region's box"
    )
    history_weeks: int = Field(8, description="earlier ok weeks a region's median is taken over")
    history_lookback_weeks: int = Field(26, description="published weeks read at most to find them")
    min_history_weeks: int = Field(4, description="fewer earlier ok weeks than this: history not judged")
    region_spike_factor: float = Field(5.0, description="region new ha above this x its median: warn")
    region_spike_floor_ha: float = Field(25.0, description="... and above this many new hectares")
    java_area_factor: float = Field(
        1.8, description="Java-wide detected ha above this x history (same regions): critical"
    )
    java_area_floor_ha: float = Field(100.0, description="... and at least this many hectares more")
    java_new_factor: float = Field(10.0, description="Java-wide new ha above this x history: critical")
    java_new_floor_ha: float = Field(200.0, description="... and above this many new hectares")
    observed_drop: float = Field(0.3, description="observed fraction this far below a region's median")
    observed_drop_share: float = Field(0.5, description="... in at least this share of regions: warn")
    observed_drop_min_regions: int = Field(3, description="... and in at least this many regions")
    corrections_warn_share: float = Field(0.1, description="imagery items corrected above this share: warn")
    corrections_critical_share: float = Field(0.25, description="... above this share: critical")


DEFAULT_THRESHOLDS = QualityThresholds()


class QualityFinding(BaseModel):
    """One thing a check found: what, how bad, where, and the figure against its limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="the check that found it, e.g. 'region_new_area_spike'")
    severity: Severity
    message: str
    region: str | None = None
    value: float | None = Field(None, description="the measured figure")
    limit: float | None = Field(None, description="the threshold it crossed")


class QualityReport(BaseModel):
    """The gate's verdict for one run, as it appears in ``report.json['quality']``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: QualityStatus
    accepted: bool = Field(False, description="an operator published the run despite critical findings")
    checks: list[str] = Field(description="the checks that ran")
    skipped: dict[str, str] = Field(default_factory=dict, description="checks not run, with the reason")
    history_weeks: int = Field(0, description="earlier published weeks read from the reports store")
    findings: list[QualityFinding] = Field(default_factory=list)
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warn" for f in self.findings)

    @property
    def failures(self) -> int:
        return sum(f.severity == "critical" for f in self.findings)

    @property
    def blocks_publication(self) -> bool:
        """Critical findings and nobody accepted them: reports for inspection, ``latest.json`` stays."""
        return self.status == "failed"

    def summary_line(self) -> str:
        """One line for stderr, the callback and the notification (at most 500 characters)."""
        critical = [f for f in self.findings if f.severity == "critical"]
        head = f"data quality {self.status}: {self.failures} critical, {self.warnings} warning(s)"
        if not critical:
            return head
        first = critical[0]
        where = f" [{first.region}]" if first.region else ""
        line = f"{head}; first: {first.name}{where}: {first.message}"
        return line if len(line) <= _LINE_LIMIT else line[: _LINE_LIMIT - 3] + "..."

    def callback_fields(self) -> dict[str, Any]:
        """What the Step Functions payload carries: small, whatever the number of findings."""
        return {
            "status": self.status,
            "warnings": self.warnings,
            "failures": self.failures,
            "message": self.summary_line(),
        }


# --- the documents, as far as the checks read them --------------------------------------------


class RegionFigures(BaseModel):
    """A region entry of report.json (current run or history)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    status: str
    area_km2: float = 0.0
    observed_fraction: float | None = None
    area_ha: dict[str, float] | None = None
    new_area_ha: dict[str, float] | None = None
    polygon_count: int = 0


class PublishedReport(BaseModel):
    """The parts of report.json the checks read."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    run_date: date
    status: str
    counts: dict[str, int] = Field(default_factory=dict)
    regions: list[RegionFigures]
    totals: dict[str, Any] = Field(default_factory=dict)
    imagery: dict[str, Any] = Field(default_factory=dict)

    def ok(self) -> dict[str, RegionFigures]:
        return {r.name: r for r in self.regions if r.status == "ok"}


def _finding(name: str, severity: Severity, message: str, **extra: Any) -> QualityFinding:
    return QualityFinding(name=name, severity=severity, message=message, **extra)


def _sum_classes(figures: Mapping[str, float] | None) -> float:
    return sum(float((figures or {}).get(c, 0.0)) for c in CHANGE_CLASSES)


# --- invariants ------------------------------------------------------------------------------------


def check_hectares(report: PublishedReport, t: QualityThresholds) -> list[QualityFinding]:
    """Hectares are >= 0, new <= total per class, and the classes fit in the region's observed area."""
    found: list[QualityFinding] = []
    for region in report.regions:
        for kind, figures in (("area_ha", region.area_ha), ("new_area_ha", region.new_area_ha)):
            for change_class, value in (figures or {}).items():
                if not math.isfinite(value) or value < 0:
                    found.append(
                        _finding(
                            "hectares_negative",
                            "critical",
                            f"{kind}.{change_class} is {value}",
                            region=region.name,
                            value=value,
                            limit=0.0,
                        )
                    )
        for change_class in CHANGE_CLASSES:
            total = (region.area_ha or {}).get(change_class)
            new = (region.new_area_ha or {}).get(change_class)
            if total is not None and new is not None and new > total + t.hectare_tolerance_ha:
                found.append(
                    _finding(
                        "new_exceeds_total",
                        "critical",
                        f"new {change_class} {new:.2f} ha exceeds the detected {total:.2f} ha",
                        region=region.name,
                        value=new,
                        limit=total,
                    )
                )
        if region.area_ha is None or region.observed_fraction is None:
            continue
        fraction = min(max(region.observed_fraction, 0.0), 1.0)
        observed_ha = region.area_km2 * 100.0 * fraction
        detected = _sum_classes(region.area_ha)
        limit = observed_ha * (1.0 + t.area_tolerance) + t.hectare_tolerance_ha
        if detected > limit:
            found.append(
                _finding(
                    "hectares_exceed_observed_area",
                    "critical",
                    f"{detected:.1f} ha of change in a region with {observed_ha:.1f} ha observed",
                    region=region.name,
                    value=detected,
                    limit=observed_ha,
                )
            )
    return found


def check_observed_fraction(report: PublishedReport, t: QualityThresholds) -> list[QualityFinding]:
    """Observed fractions are shares: 0..1, and present wherever a region has hectares."""
    found: list[QualityFinding] = []
    for region in report.regions:
        fraction = region.observed_fraction
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            found.append(
                _finding(
                    "observed_fraction_range",
                    "critical",
                    f"observed fraction {fraction} is outside 0..1",
                    region=region.name,
                    value=fraction,
                )
            )
        elif fraction is None and region.status != "failed":
            found.append(
                _finding(
                    "observed_fraction_range",
                    "critical",
                    f"a region with status {region.status} has no observed fraction",
                    region=region.name,
                )
            )
    return found


def check_regions_accounted(report: PublishedReport, planned: Iterable[str]) -> list[QualityFinding]:
    """Each planned region appears exactly once, and no other region does."""
    names = [r.name for r in report.regions]
    expected = set(planned)
    found = [
        _finding("regions_accounted", "critical", "the region is in the plan but not in the report", region=n)
        for n in sorted(expected - set(names))
    ]
    found += [
        _finding("regions_accounted", "critical", "the region is in the report but not in the plan", region=n)
        for n in sorted(set(names) - expected)
    ]
    found += [
        _finding("regions_accounted", "critical", f"the region appears {names.count(n)} times", region=n)
        for n in sorted({n for n in names if names.count(n) > 1})
    ]
    return found


def _declared_crs(changes: Mapping[str, Any]) -> str | None:
    crs = changes.get("crs")
    if not isinstance(crs, Mapping):
        return None
    return str((crs.get("properties") or {}).get("name"))


def check_polygons(
    changes: Mapping[str, Any], regions: Mapping[str, BaseGeometry], t: QualityThresholds
) -> list[QualityFinding]:
    """Change polygons are valid, in lon/lat (EPSG:4326) and inside the region they are filed under.

    A polygon far outside its region's box is what a CRS mix-up (metres read as
    degrees) or a georeferencing slip produces, so both are critical.
    """
    found: list[QualityFinding] = []
    declared = _declared_crs(changes)
    if declared is not None and declared not in _WGS84_NAMES:
        found.append(_finding("polygon_crs", "critical", f"changes.geojson declares CRS {declared}"))
    lonlat = box(-180.0, -90.0, 180.0, 90.0)
    boxes = {name: box(*g.bounds).buffer(t.bounds_margin_deg) for name, g in regions.items()}
    invalid: dict[str, int] = defaultdict(int)
    outside: dict[str, int] = defaultdict(int)
    for index, feature in enumerate(changes.get("features") or []):
        name = str((feature.get("properties") or {}).get("region"))
        try:
            geom = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
            found.append(
                _finding("polygon_validity", "critical", f"feature {index} has no readable geometry: {exc}")
            )
            continue
        if geom.is_empty or not geom.is_valid or geom.geom_type not in ("Polygon", "MultiPolygon"):
            invalid[name] += 1
        allowed = boxes.get(name, lonlat)
        if not (lonlat.contains(geom) and allowed.contains(geom)):
            outside[name] += 1
    found += [
        _finding(
            "polygon_validity",
            "critical",
            f"{n} change polygon(s) are empty, invalid or not polygons",
            region=name,
            value=n,
        )
        for name, n in sorted(invalid.items())
    ]
    found += [
        _finding(
            "polygon_crs",
            "critical",
            f"{n} change polygon(s) lie outside the region (not lon/lat, or misplaced)",
            region=name,
            value=n,
        )
        for name, n in sorted(outside.items())
    ]
    return found


def _close(a: float, b: float, t: QualityThresholds) -> bool:
    return abs(a - b) <= t.hectare_tolerance_ha


def check_consistency(
    report: PublishedReport, changes: Mapping[str, Any], metrics: Mapping[str, float], t: QualityThresholds
) -> list[QualityFinding]:
    """report.json, changes.geojson and the metrics tell the same story.

    Counts in ``counts`` match the region list; each region's listed polygons are no
    more than its ``polygon_count`` and its new ones sum to its ``new_area_ha``; only
    ``ok`` regions have polygons; the metrics equal the report's counts and totals.
    """
    found: list[QualityFinding] = []
    statuses = [r.status for r in report.regions]
    tallies = {
        "total": len(statuses),
        "succeeded": statuses.count("ok"),
        "failed": statuses.count("failed"),
        "insufficient": statuses.count("insufficient_observations"),
    }
    for key, value in tallies.items():
        if key in report.counts and report.counts[key] != value:
            found.append(
                _finding(
                    "counts_consistent",
                    "critical",
                    f"report counts.{key} is {report.counts[key]} but the region list has {value}",
                    value=report.counts[key],
                    limit=value,
                )
            )
    listed: dict[str, int] = defaultdict(int)
    new_ha: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(CHANGE_CLASSES, 0.0))
    persisting_ha: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(CHANGE_CLASSES, 0.0))
    for feature in changes.get("features") or []:
        props = feature.get("properties") or {}
        name = str(props.get("region"))
        listed[name] += 1
        if props.get("change") == "new" and props.get("class") in CHANGE_CLASSES:
            new_ha[name][props["class"]] += float(props.get("area_ha") or 0.0)
        elif props.get("change") == "persisting" and props.get("class") in CHANGE_CLASSES:
            persisting_ha[name][props["class"]] += float(props.get("area_ha") or 0.0)
    by_name = {r.name: r for r in report.regions}
    for name in sorted(set(listed) - set(by_name)):
        found.append(
            _finding(
                "counts_consistent",
                "critical",
                "changes.geojson has polygons of a region not in the report",
                region=name,
            )
        )
    for region in report.regions:
        n = listed.get(region.name, 0)
        if region.status != "ok" and n:
            found.append(
                _finding(
                    "counts_consistent",
                    "critical",
                    f"a {region.status} region has {n} polygon(s) in changes.geojson",
                    region=region.name,
                    value=n,
                )
            )
        elif n > region.polygon_count:
            found.append(
                _finding(
                    "counts_consistent",
                    "critical",
                    f"changes.geojson lists {n} polygons, the report counts {region.polygon_count}",
                    region=region.name,
                    value=n,
                    limit=region.polygon_count,
                )
            )
        if region.status == "ok" and region.new_area_ha is not None:
            for change_class in CHANGE_CLASSES:
                # New hectares are this footprint outside the last one (docs/detection.md,
                # step 9): at least the new polygons, at most those plus the growth of
                # persisting ones (bounded by their area) when every component is listed.
                reported = float(region.new_area_ha.get(change_class, 0.0))
                summed = new_ha[region.name][change_class]
                ceiling = summed + persisting_ha[region.name][change_class]
                too_low = reported < summed - t.hectare_tolerance_ha
                too_high = n >= region.polygon_count and reported > ceiling + t.hectare_tolerance_ha
                if too_low or too_high:
                    found.append(
                        _finding(
                            "counts_consistent",
                            "critical",
                            f"new {change_class}: report {reported:.2f} ha, new polygons sum to {summed:.2f} ha",
                            region=region.name,
                            value=summed,
                            limit=reported,
                        )
                    )
    for metric, key in _COUNT_METRICS.items():
        if metric in metrics and float(metrics[metric]) != tallies[key]:
            found.append(
                _finding(
                    "counts_consistent",
                    "critical",
                    f"metric {metric} is {metrics[metric]:g}, the report has {tallies[key]}",
                    value=float(metrics[metric]),
                    limit=tallies[key],
                )
            )
    union = report.totals.get("union_area_ha") or report.totals.get("area_ha") or {}
    for metric, change_class in _HECTARE_METRICS.items():
        if (
            metric in metrics
            and change_class in union
            and not _close(float(metrics[metric]), union[change_class], t)
        ):
            found.append(
                _finding(
                    "counts_consistent",
                    "critical",
                    f"metric {metric} is {metrics[metric]:.2f}, the report total is {union[change_class]:.2f}",
                    value=float(metrics[metric]),
                    limit=float(union[change_class]),
                )
            )
    return found


# --- history ---------------------------------------------------------------------------------------


def _region_history(
    name: str, history: Sequence[PublishedReport], field: str, t: QualityThresholds
) -> list[Any]:
    """The region's figures in its last ``history_weeks`` earlier ``ok`` weeks, newest first."""
    values = []
    for week in history:
        region = week.ok().get(name)
        if region is not None and getattr(region, field) is not None:
            values.append(getattr(region, field))
        if len(values) == t.history_weeks:
            break
    return values


def check_region_spikes(
    report: PublishedReport, history: Sequence[PublishedReport], t: QualityThresholds
) -> tuple[list[QualityFinding], int]:
    """A region's new hectares far above its own recent history (warn: a real event can do this).

    Returns the findings and how many regions had enough history to be judged.
    """
    found: list[QualityFinding] = []
    judged = 0
    for name, region in report.ok().items():
        past = _region_history(name, history, "new_area_ha", t)
        if region.new_area_ha is None or len(past) < t.min_history_weeks:
            continue
        judged += 1
        for change_class in CHANGE_CLASSES:
            value = float(region.new_area_ha.get(change_class, 0.0))
            median = statistics.median(float(p.get(change_class, 0.0)) for p in past)
            if value > t.region_spike_factor * median and value > t.region_spike_floor_ha:
                found.append(
                    _finding(
                        "region_new_area_spike",
                        "warn",
                        f"{value:.1f} new ha of {change_class}; the median of its last {len(past)} ok "
                        f"weeks is {median:.1f} ha",
                        region=name,
                        value=value,
                        limit=max(t.region_spike_factor * median, t.region_spike_floor_ha),
                    )
                )
    return found, judged


def _java_pairs(
    report: PublishedReport, history: Sequence[PublishedReport], field: str, change_class: str
) -> list[tuple[float, float]]:
    """(this run, that week) Java-wide sums over the regions ok in both, per earlier week."""
    current = report.ok()
    pairs = []
    for week in history:
        common = current.keys() & week.ok().keys()
        if not common:
            continue
        now = sum(float((getattr(current[n], field) or {}).get(change_class, 0.0)) for n in common)
        then = sum(float((getattr(week.ok()[n], field) or {}).get(change_class, 0.0)) for n in common)
        pairs.append((now, then))
    return pairs


def check_java_totals(
    report: PublishedReport, history: Sequence[PublishedReport], t: QualityThresholds
) -> list[QualityFinding]:
    """Java-wide hectares far above history: critical, since a backend or offset error hits every region.

    Each earlier week is compared over the regions ``ok`` in both runs, so a week in
    which half the regions were clouded out does not make the next look like a jump.
    Detected area (new and persisting) moves slowly from week to week, so a modest
    factor catches a doubling; new area is spiky, so its factor is large.
    """
    found: list[QualityFinding] = []
    limits = (
        ("java_area_jump", "area_ha", t.java_area_factor, t.java_area_floor_ha, "detected"),
        ("java_new_area_jump", "new_area_ha", t.java_new_factor, t.java_new_floor_ha, "new"),
    )
    for name, field, factor, floor, label in limits:
        for change_class in CHANGE_CLASSES:
            pairs = _java_pairs(report, history, field, change_class)[: t.history_weeks]
            if len(pairs) < t.min_history_weeks:
                continue
            now = statistics.median(p[0] for p in pairs)
            then = statistics.median(p[1] for p in pairs)
            if now > factor * then and now - then > floor:
                ratio = now / then if then > 0 else math.inf
                found.append(
                    _finding(
                        name,
                        "critical",
                        f"Java-wide {label} {change_class} is {now:.1f} ha against a median of {then:.1f} ha "
                        f"over the same regions in the last {len(pairs)} weeks ({ratio:.1f}x)",
                        value=now,
                        limit=factor * then,
                    )
                )
    return found


def check_observed_drop(
    report: PublishedReport, history: Sequence[PublishedReport], t: QualityThresholds
) -> list[QualityFinding]:
    """Observed fraction suddenly far below its median in many regions at once (warn).

    One cloudy region is weather; most regions at once points at the cloud mask or the
    imagery source. Regions below the observation floor are already reported as
    ``insufficient_observations``, so this is a warning, not a stop.
    """
    compared: list[str] = []
    dropped: list[str] = []
    for region in report.regions:
        if region.observed_fraction is None:
            continue
        past = [
            week_region.observed_fraction
            for week in history
            for week_region in week.regions
            if week_region.name == region.name and week_region.observed_fraction is not None
        ][: t.history_weeks]
        if len(past) < t.min_history_weeks:
            continue
        compared.append(region.name)
        if statistics.median(past) - region.observed_fraction >= t.observed_drop:
            dropped.append(region.name)
    needed = max(t.observed_drop_min_regions, math.ceil(t.observed_drop_share * len(compared)))
    if not compared or len(dropped) < needed:
        return []
    return [
        _finding(
            "observed_fraction_drop",
            "warn",
            f"observed fraction fell by {t.observed_drop:g} or more below the regional median in "
            f"{len(dropped)} of {len(compared)} regions: {', '.join(dropped)}",
            value=len(dropped) / len(compared),
            limit=t.observed_drop_share,
        )
    ]


# --- provenance ------------------------------------------------------------------------------------


def check_corrections(imagery: Mapping[str, Any], t: QualityThresholds) -> list[QualityFinding]:
    """Imagery items whose declared offset had to be corrected, as a share of the items read.

    A few mislabelled items are a known catalogue fault the reader fixes; a large share
    means the catalogue (or our reading of it) changed, and every figure may be off.
    """
    corrections = imagery.get("corrections") or []
    items = imagery.get("items_read")
    if not corrections:
        return []
    if not isinstance(items, int) or items <= 0:
        return [
            _finding(
                "imagery_corrections",
                "warn",
                f"{len(corrections)} imagery item(s) corrected; the number of items read is unknown",
                value=len(corrections),
            )
        ]
    share = len(corrections) / items
    severity: Severity | None = (
        "critical"
        if share > t.corrections_critical_share
        else "warn"
        if share > t.corrections_warn_share
        else None
    )
    if severity is None:
        return []
    return [
        _finding(
            "imagery_corrections",
            severity,
            f"{len(corrections)} of {items} imagery items ({share:.0%}) needed an offset correction",
            value=share,
            limit=t.corrections_critical_share if severity == "critical" else t.corrections_warn_share,
        )
    ]


# --- reading history from the reports store --------------------------------------------------------


def parse_report(document: Any) -> PublishedReport:
    """A report.json document as the checks read it; raises ``ValueError`` when it is not one."""
    try:
        return PublishedReport.model_validate(document)
    except ValidationError as exc:
        raise ValueError(
            f"not a report.json: {exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
        ) from None


def load_history(
    store: Store, *, before: date, t: QualityThresholds = DEFAULT_THRESHOLDS
) -> list[PublishedReport]:
    """Earlier published weeks from the reports store, newest first, one run per week.

    Read from ``weekly/{date}/{run_id}/report.json``; per date the newest run whose
    status is ``succeeded`` or ``partial`` counts (a quality-failed run is not history
    until an operator accepts it). At most ``history_lookback_weeks`` dates are read;
    an unreadable report is skipped with a warning.
    """
    runs: dict[str, list[str]] = defaultdict(list)
    for key in store.list_keys("weekly/"):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] == "report.json":
            runs[parts[1]].append(key)
    history: list[PublishedReport] = []
    for day in sorted(runs, reverse=True):
        try:
            if date.fromisoformat(day) >= before:
                continue
        except ValueError:
            continue
        for key in sorted(runs[day], reverse=True):  # run ids sort by time within a date
            raw = store.read_bytes(key)
            try:
                report = parse_report(json.loads(raw or b"null"))
            except ValueError as exc:
                log.warning("quality_history_unreadable", key=key, error=str(exc))
                continue
            if report.status in PUBLISHED_STATUSES:
                history.append(report)
                break
        if len(history) >= t.history_lookback_weeks:
            break
    return history


# --- the gate --------------------------------------------------------------------------------------


def evaluate(
    report: Mapping[str, Any],
    changes: Mapping[str, Any],
    metrics: Mapping[str, float],
    *,
    regions: Mapping[str, BaseGeometry],
    history: Sequence[PublishedReport],
    accept: bool = False,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> QualityReport:
    """Run every check on the documents a run is about to publish.

    ``regions`` are the planned regions' geometries (EPSG:4326); ``history`` comes from
    :func:`load_history`. ``accept`` records that an operator reviewed the run: critical
    findings stay in the report, but the status is ``accepted`` and publication goes on.
    """
    t = thresholds
    current = parse_report(report)
    findings = [
        *check_hectares(current, t),
        *check_observed_fraction(current, t),
        *check_regions_accounted(current, regions.keys()),
        *check_polygons(changes, regions, t),
        *check_consistency(current, changes, metrics, t),
        *check_corrections(current.imagery, t),
    ]
    checks = list(INVARIANT_CHECKS)
    skipped: dict[str, str] = {}
    history = [h for h in history if h.run_date < current.run_date]
    if len(history) >= t.min_history_weeks:
        spikes, judged = check_region_spikes(current, history, t)
        findings += [
            *spikes,
            *check_java_totals(current, history, t),
            *check_observed_drop(current, history, t),
        ]
        checks += HISTORY_CHECKS
        if judged < len(current.ok()):
            skipped["region_new_area_spike"] = (
                f"{len(current.ok()) - judged} region(s) have fewer than {t.min_history_weeks} earlier ok weeks"
            )
    else:
        reason = f"{len(history)} earlier published week(s), {t.min_history_weeks} needed"
        skipped.update(dict.fromkeys(HISTORY_CHECKS, reason))
    critical = any(f.severity == "critical" for f in findings)
    status: QualityStatus = (
        ("accepted" if accept else "failed") if critical else ("warnings" if findings else "passed")
    )
    quality = QualityReport(
        status=status,
        accepted=accept and critical,
        checks=checks,
        skipped=skipped,
        history_weeks=len(history),
        findings=findings,
        thresholds=t,
    )
    for finding in findings:
        log.warning("quality_finding", **finding.model_dump(exclude_none=True))
    log.info("quality_checked", status=status, critical=quality.failures, warnings=quality.warnings)
    return quality


def gate_run(
    summary: RunSummary,
    *,
    regions: Mapping[str, BaseGeometry],
    reports: Store,
    accept: bool = False,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> RunSummary:
    """The run with its ``quality`` verdict, and exit 5 / ``quality_failed`` when it must not publish.

    Checks the documents exactly as they will be published, against history read from
    ``reports``. Only a run that would publish (exit 0 or 2) becomes ``quality_failed``:
    a run in which no region succeeded keeps exit 1 and publishes nothing anyway.
    """
    # Imported here: models.py imports this module for QualityReport, and these import models.
    from ccapi_monitor.aws.metrics import run_metric_values
    from ccapi_monitor.errors import ExitCode
    from ccapi_monitor.reports.json_report import build_changes, build_report

    metrics = {name: value for name, (value, _unit) in run_metric_values(summary).items()}
    quality = evaluate(
        build_report(summary),
        build_changes(summary),
        metrics,
        regions=regions,
        history=load_history(reports, before=summary.run_date, t=thresholds),
        accept=accept,
        thresholds=thresholds,
    )
    update: dict[str, Any] = {"quality": quality}
    if quality.blocks_publication and summary.exit_code in (ExitCode.OK, ExitCode.PARTIAL):
        update.update(status="quality_failed", exit_code=int(ExitCode.QUALITY_FAILED))
    return summary.model_copy(update=update)
