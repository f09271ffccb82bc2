"""Typed data at the boundaries between the parts of a run.

Backends return :class:`DetectionResult`, infrastructure sources return
:class:`InfrastructureResult`, scoring returns :class:`InvestmentScore`, and the
runner assembles them into :class:`RegionResult` (also the checkpoint format) and
:class:`RunSummary`. Reports, metrics and the Step Functions payload read the figures
from these models and never re-derive them; ``docs/report.schema.json`` is generated
from them (docs/design/report.md).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ccapi_monitor.market.models import MarketFigures
from ccapi_monitor.params import CLASSES, DetectionParams, Windows
from ccapi_monitor.quality import QualityReport

ChangeClass = Literal["vegetation_clearing", "built_up"]
RegionStatus = Literal["ok", "insufficient_observations", "failed"]
RunStatus = Literal[
    "succeeded", "partial", "failed", "quality_failed", "invalid_input", "preflight_failed", "aborted"
]
ChangeKind = Literal["new", "persisting"]

#: Models published in report.json: its schema lists every field the report always carries.
_PUBLISHED = ConfigDict(json_schema_serialization_defaults_required=True)

#: Hectares per change class; in report.json every class is present and none is negative.
Hectares = Annotated[
    dict[str, float],
    WithJsonSchema(
        {
            "type": "object",
            "required": list(CLASSES),
            "properties": {c: {"type": "number", "minimum": 0} for c in CLASSES},
            "additionalProperties": False,
        }
    ),
]

#: What report.json and report.html say when there was no run to compare against.
NO_PREVIOUS_RUN_NOTE = "no previous complete run: every change is new"


class ChangePolygon(BaseModel):
    """One connected change component, geometry as GeoJSON in EPSG:4326."""

    model_config = ConfigDict(populate_by_name=True)

    region: str
    change_class: ChangeClass = Field(alias="class")
    area_ha: float
    centroid: tuple[float, float]  # lon, lat
    geometry: dict[str, object]  # GeoJSON geometry; not JsonValue: validating coordinates is slow
    change: ChangeKind = "new"
    first_detected: date | None = None

    def to_feature(self) -> dict[str, Any]:
        return {
            "type": "Feature",
            "properties": {
                "region": self.region,
                "class": self.change_class,
                "area_ha": round(self.area_ha, 4),
                "change": self.change,
                "first_detected": self.first_detected.isoformat() if self.first_detected else None,
                "centroid": [round(self.centroid[0], 6), round(self.centroid[1], 6)],
            },
            "geometry": self.geometry,
        }


class DetectionResult(BaseModel):
    """What every imagery backend returns for one region (same shape for all backends)."""

    status: Literal["ok", "insufficient_observations"]
    observed_fraction: float
    #: Hectares per class; ``None`` when the region is insufficiently observed (never a fake 0).
    area_ha: dict[str, float] | None
    polygons: list[ChangePolygon] = Field(default_factory=list)
    #: Every component, largest first (``polygons`` is its first ``max_polygons``): the
    #: complete footprint week over week compares against. Empty: same as ``polygons``.
    footprint: list[ChangePolygon] = Field(default_factory=list)
    #: Components found before the per-region polygon cap.
    polygon_count: int = 0
    #: Clear-scene counts per window, e.g. {"baseline": 61, "persistence": 9, "current": 4}.
    scenes: dict[str, int] = Field(default_factory=dict)
    source: str
    details: dict[str, Any] = Field(default_factory=dict)


class InfrastructureResult(BaseModel):
    """OSM infrastructure around one region (enrichment: failure never fails the region)."""

    model_config = _PUBLISHED

    source: Literal["overpass", "pbf", "off"]
    status: Literal["ok", "stale", "error", "off"]
    features: dict[str, float] | None = None
    nearest_km: dict[str, float | None] | None = None
    score: float | None = None
    confidence: Literal["high", "medium", "low", "none"] = "none"
    error: str | None = None
    fetched_at: str | None = None


class InvestmentScore(BaseModel):
    model_config = _PUBLISHED

    value: float | None  # 0..100, None when the region has no detection result
    label: Literal["BUY", "WATCH", "PASS"] | None
    rationale: str
    components: dict[str, float] = Field(default_factory=dict)
    infrastructure_used: bool = False


class PreviousRunRef(BaseModel):
    """The run a region's week-over-week labels were compared against."""

    model_config = _PUBLISHED

    run_id: str
    run_date: date


#: report.json's per-status rules for a region (no hectares unless measured; a failure says why).
_REGION_STATUS_RULES: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"status": {"const": "ok"}}},
            "then": {"properties": {"area_ha": {"type": "object"}, "observed_fraction": {"type": "number"}}},
        },
        {
            "if": {"properties": {"status": {"const": "failed"}}},
            "then": {
                "properties": {"error": {"type": "string", "minLength": 1}, "area_ha": {"type": "null"}}
            },
        },
        {
            "if": {"properties": {"status": {"const": "insufficient_observations"}}},
            "then": {"properties": {"area_ha": {"type": "null"}, "observed_fraction": {"type": "number"}}},
        },
    ]
}


class RegionResult(BaseModel):
    """A region's complete result; also what is checkpointed to the cache store."""

    model_config = ConfigDict(json_schema_extra=_REGION_STATUS_RULES, **_PUBLISHED)

    name: str
    province: str
    focus: str
    priority: int
    tier: int
    area_km2: float
    status: RegionStatus
    error: str | None = None
    observed_fraction: float | None = Field(None, ge=0, le=1)
    #: ``None`` unless ``ok``: an unmeasured region never reports 0 ha.
    area_ha: Hectares | None = None
    new_area_ha: Hectares | None = None
    polygon_count: int = Field(0, ge=0)
    polygons: list[ChangePolygon] = Field(default_factory=list)
    scenes: dict[str, int] = Field(default_factory=dict)
    infrastructure: InfrastructureResult | None = None
    score: InvestmentScore | None = None
    #: The previous run this region's polygons were labelled against; ``None``: all are new.
    compared_against: PreviousRunRef | None = None
    #: Land price, trend, listing count and source (docs/market.md); ``None`` in results from before it.
    market: MarketFigures | None = None
    duration_s: float = 0.0
    from_checkpoint: bool = False


class Totals(BaseModel):
    """Java-wide hectares per class: summed over regions, and with overlaps counted once."""

    model_config = _PUBLISHED

    area_ha: Hectares
    new_area_ha: Hectares
    #: Like ``area_ha``, but land inside several region boxes is credited to one region only.
    union_area_ha: Hectares
    union_new_area_ha: Hectares
    polygon_count: int = Field(ge=0)
    regions_measured: int = Field(ge=0)

    def hectares(self, change_class: str) -> float | None:
        """Java-wide hectares of a class without double counting; ``None`` when no region was
        measured (an unknown figure is never reported as 0)."""
        if self.regions_measured == 0:
            return None
        return self.union_area_ha.get(change_class)


class ImageryCorrection(BaseModel):
    """A fix applied to one imagery item whose metadata disagreed with its pixels."""

    model_config = _PUBLISHED

    item_id: str
    reason: str
    #: The offset the item's metadata declares (``None``: it declares none).
    declared_offset: float | None = None
    #: The offset actually applied to the pixels.
    applied_offset: float


class ImageryInfo(BaseModel):
    """Where the imagery came from. Backends may add descriptive keys (endpoint, limiter,
    archive, ...); they are kept as given and shown in report.json."""

    model_config = ConfigDict(extra="allow", **_PUBLISHED)

    source: str
    collection: str | None = None
    corrections: list[ImageryCorrection] = Field(default_factory=list)


class PreviousRunInfo(BaseModel):
    """The run this week was compared against, or why there was none (``run_id`` is ``None``)."""

    model_config = _PUBLISHED

    run_id: str | None = None
    run_date: date | None = None
    report: str | None = None
    changes: str | None = None
    polygon_count: int = Field(0, ge=0)
    #: Regions ``ok`` in that run; ``None`` when unknown (then every region counts as compared).
    regions_compared: list[str] | None = None
    note: str | None = None

    def compared(self, region: str) -> bool:
        """Whether week over week had last week's result for ``region``."""
        if self.run_id is None:
            return False
        return self.regions_compared is None or region in self.regions_compared


class RunSummary(BaseModel):
    """The outcome of one run: what reports, metrics and the callback are built from."""

    run_id: str
    run_date: date
    status: RunStatus
    exit_code: int
    environment: str
    duration_s: float
    regions: list[RegionResult]
    totals: Totals
    imagery: ImageryInfo
    windows: Windows
    parameters: DetectionParams
    previous_run: PreviousRunInfo = Field(default_factory=lambda: PreviousRunInfo(note=NO_PREVIOUS_RUN_NOTE))
    report_uris: dict[str, str] = Field(default_factory=dict)
    #: The data-quality gate's verdict (docs/quality.md); ``None`` until the gate has run.
    quality: QualityReport | None = None

    def failed_names(self) -> list[str]:
        """The failed regions' names, in the run's order (callbacks and shard records list them)."""
        return [r.name for r in self.regions if r.status == "failed"]

    def counts(self) -> dict[str, int]:
        by_status = [r.status for r in self.regions]
        return {
            "total": len(by_status),
            "succeeded": by_status.count("ok"),
            "failed": by_status.count("failed"),
            "insufficient": by_status.count("insufficient_observations"),
        }
