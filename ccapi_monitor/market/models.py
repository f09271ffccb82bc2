"""Typed market figures carried in ``RegionResult.market`` and report.json.

Kept free of other ccapi_monitor imports so ``ccapi_monitor.models`` can import it.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MarketSourceName = Literal["static", "feed", "listings"]
#: Published in report.json: the generated schema lists every field as always present.
_PUBLISHED = ConfigDict(json_schema_serialization_defaults_required=True)


class PricePoint(BaseModel):
    """One observed price: a listing (count 1) or a feed row (an aggregate of ``listings``)."""

    model_config = ConfigDict(frozen=True)

    region: str
    date: date
    idr_per_m2: float = Field(gt=0, allow_inf_nan=False)
    listings: int = Field(1, ge=1)
    source: str = ""
    url: str | None = None


class MarketTrend(BaseModel):
    """Robust (Theil-Sen) slope of the weekly median price, in percent per week."""

    model_config = _PUBLISHED

    pct_per_week: float
    low_pct_per_week: float
    high_pct_per_week: float
    confidence: float
    weeks: int
    first_week: date
    last_week: date


class MarketFigures(BaseModel):
    """A region's market figures and where they came from.

    ``source`` is what the score used: ``static`` whenever live figures were not usable,
    and then ``fallback_reason`` says why. Never a silent zero: ``median_idr_per_m2`` is
    the tier price for ``static``.
    """

    model_config = _PUBLISHED

    requested: MarketSourceName
    source: MarketSourceName
    median_idr_per_m2: float = Field(gt=0, allow_inf_nan=False)
    q1_idr_per_m2: float | None = None
    q3_idr_per_m2: float | None = None
    listing_count: int = Field(0, ge=0)
    outliers_removed: int = Field(0, ge=0)
    trend: MarketTrend | None = None
    trend_note: str | None = None
    static_idr_per_m2: float = Field(gt=0, allow_inf_nan=False)
    tier: int = Field(ge=1)
    fallback_reason: str | None = None
    from_cache: bool = False
    fetched_at: str | None = None
    as_of: date | None = None
    synthetic: bool = False
    origin: str = ""

    @property
    def label(self) -> str:
        """How a report names the figure's source, e.g. ``feed (synthetic)`` or ``static``."""
        parts: list[str] = [self.source]
        if self.synthetic:
            parts.append("synthetic")
        if self.from_cache:
            parts.append("cached")
        if self.fallback_reason:
            parts.append("fallback")
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"
