"""Typed data at the boundaries between the parts of a run.

Backends return :class:`DetectionResult`, infrastructure sources return
:class:`InfrastructureResult`, scoring returns :class:`InvestmentScore`, and the
runner assembles them into :class:`RegionResult` (also the checkpoint format) and
:class:`RunSummary`. Reports and the Step Functions payload are built from these.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ChangeClass = Literal["vegetation_clearing", "built_up"]
RegionStatus = Literal["ok", "insufficient_observations", "failed"]
RunStatus = Literal["succeeded", "partial", "failed", "invalid_input", "preflight_failed", "aborted"]
ChangeKind = Literal["new", "persisting"]


class ChangePolygon(BaseModel):
    """One connected change component, geometry as GeoJSON in EPSG:4326."""

    model_config = ConfigDict(populate_by_name=True)

    region: str
    change_class: ChangeClass = Field(alias="class")
    area_ha: float
    centroid: tuple[float, float]  # lon, lat
    geometry: dict[str, Any]
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
    #: Components found before the per-region polygon cap.
    polygon_count: int = 0
    #: Clear-scene counts per window, e.g. {"baseline": 61, "persistence": 9, "current": 4}.
    scenes: dict[str, int] = Field(default_factory=dict)
    source: str
    details: dict[str, Any] = Field(default_factory=dict)


class InfrastructureResult(BaseModel):
    """OSM infrastructure around one region (enrichment: failure never fails the region)."""

    source: Literal["overpass", "pbf", "off"]
    status: Literal["ok", "stale", "error", "off"]
    features: dict[str, float] | None = None
    nearest_km: dict[str, float | None] | None = None
    score: float | None = None
    confidence: Literal["high", "medium", "low", "none"] = "none"
    error: str | None = None
    fetched_at: str | None = None


class InvestmentScore(BaseModel):
    value: float | None  # 0..100, None when the region has no detection result
    label: Literal["BUY", "WATCH", "PASS"] | None
    rationale: str
    components: dict[str, float] = Field(default_factory=dict)
    infrastructure_used: bool = False


class RegionResult(BaseModel):
    """A region's complete result; also what is checkpointed to the cache store."""

    name: str
    province: str
    focus: str
    priority: int
    tier: int
    area_km2: float
    status: RegionStatus
    error: str | None = None
    observed_fraction: float | None = None
    area_ha: dict[str, float] | None = None
    new_area_ha: dict[str, float] | None = None
    polygon_count: int = 0
    polygons: list[ChangePolygon] = Field(default_factory=list)
    scenes: dict[str, int] = Field(default_factory=dict)
    infrastructure: InfrastructureResult | None = None
    score: InvestmentScore | None = None
    duration_s: float = 0.0
    from_checkpoint: bool = False


class RunSummary(BaseModel):
    """The outcome of one run: what reports, metrics and the callback are built from."""

    run_id: str
    run_date: date
    status: RunStatus
    exit_code: int
    environment: str
    duration_s: float
    regions: list[RegionResult]
    totals: dict[str, Any]
    imagery: dict[str, Any]
    windows: dict[str, Any]
    parameters: dict[str, Any]
    previous_run: dict[str, Any] | None = None
    report_uris: dict[str, str] = Field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        by_status = [r.status for r in self.regions]
        return {
            "total": len(by_status),
            "succeeded": by_status.count("ok"),
            "failed": by_status.count("failed"),
            "insufficient": by_status.count("insufficient_observations"),
        }
