"""Detection parameters: the one place every threshold and window lives.

Both the Earth Engine graph and the array code read these values; change a
default here and both backends change with it (see docs/design/detection.md, "Parameters").
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

#: Classes in rule order (first match wins), with the raster value each gets.
CLASSES: Final[tuple[str, ...]] = ("vegetation_clearing", "built_up")
CLASS_VALUES: Final[dict[str, int]] = {name: i + 1 for i, name in enumerate(CLASSES)}


class DateWindow(BaseModel):
    """Half-open date window ``[start, end)``."""

    model_config = ConfigDict(frozen=True)

    start: date
    end: date

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end


class Windows(BaseModel):
    """The three windows of one run, all derived from the run date."""

    model_config = ConfigDict(frozen=True)

    current: DateWindow
    persistence: DateWindow
    baseline: DateWindow
    #: Seasonal-bare guard: spans of last year's same season (the baseline's first days).
    fallow: tuple[DateWindow, ...] = ()

    def in_fallow(self, day: date) -> bool:
        """Whether ``day`` falls in any seasonal-bare span."""
        return any(span.contains(day) for span in self.fallow)

    @property
    def span(self) -> DateWindow:
        """Everything any window needs: the scene search range."""
        return DateWindow(start=self.baseline.start, end=self.current.end)


class DetectionParams(BaseModel):
    """Every threshold and window of the change-detection algorithm (docs/design/detection.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    current_days: int = Field(30, ge=1, description="current window [run_date - N d, run_date)")
    recent_obs: int = Field(2, ge=1, description="NDVI_now: mean of the latest N clear observations")
    persist_days: int = Field(60, ge=1, description="persistence window [run_date - N d, run_date)")
    baseline_days: int = Field(365, ge=30, description="baseline: the N days before the persistence window")
    clear_threshold: float = Field(0.60, ge=0, le=1, description="Cloud Score+ cs_cdf at or above: clear")
    scl_clear: tuple[int, ...] = Field((2, 4, 5, 6, 7), description="SCL classes kept as clear (stac/demo)")
    min_baseline_obs: int = Field(4, ge=1, description="fewer clear baseline observations: unobserved")
    stable_veg_p10: float = Field(0.45, description="baseline NDVI p10 at or above: perennial vegetation")
    clearing_drop: float = Field(0.15, description="clearing: NDVI_now below p10 minus this")
    cleared_ndvi: float = Field(0.35, description="clearing: and NDVI_now below this")
    green_p90: float = Field(0.50, description="built-up: baseline NDVI p90 at or above")
    built_max_ndvi: float = Field(0.30, description="built-up: persistence max NDVI below")
    built_max_ndwi: float = Field(0.0, description="built-up: persistence max NDWI below")
    built_min_obs: int = Field(
        2, ge=1, description="built-up (and a seasonal-bare span): clear observations needed"
    )
    fallow_span_days: int = Field(60, ge=1, description="seasonal-bare guard: length of each span")
    fallow_lookback_days: int = Field(
        90, ge=0, description="seasonal-bare guard: spans lie within the baseline's first N days"
    )
    fallow_step_days: int = Field(15, ge=1, description="seasonal-bare guard: a span starts every N days")
    offset_check_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="stac/demo: share of clear SCL 4/5 pixels driven below 0 that proves an offset wrong",
    )
    mmu_ha: float = Field(0.2, ge=0, description="minimum mapping unit, 8-connected, per class")
    scale_m: float = Field(10.0, gt=0, description="analysis resolution in metres")
    min_observed_fraction: float = Field(
        0.5, ge=0, le=1, description="below: region is insufficient_observations"
    )
    max_polygons: int = Field(500, ge=1, description="polygons kept per region, largest first")

    def windows(self, run_date: date) -> Windows:
        persistence_start = run_date - timedelta(days=self.persist_days)
        baseline_start = persistence_start - timedelta(days=self.baseline_days)
        return Windows(
            current=DateWindow(start=run_date - timedelta(days=self.current_days), end=run_date),
            persistence=DateWindow(start=persistence_start, end=run_date),
            baseline=DateWindow(start=baseline_start, end=persistence_start),
            fallow=tuple(
                DateWindow(
                    start=baseline_start + timedelta(days=offset),
                    end=baseline_start + timedelta(days=offset + self.fallow_span_days),
                )
                for offset in self.fallow_offsets
            ),
        )

    @property
    def fallow_offsets(self) -> tuple[int, ...]:
        """Days after the baseline start at which a seasonal-bare span starts: 0, 15, 30 by default.

        A span lies wholly within the baseline's first ``fallow_lookback_days`` (the same
        season a year before the persistence window); none when the span does not fit.
        """
        last = min(self.fallow_lookback_days, self.baseline_days) - self.fallow_span_days
        return tuple(range(0, last + 1, self.fallow_step_days)) if last >= 0 else ()

    @property
    def mmu_pixels(self) -> int:
        """Smallest component kept, in pixels of ``scale_m``."""
        pixel_ha = self.scale_m * self.scale_m / 10_000.0
        # round() first: 0.2 / 0.01 is 20.000000000000004 in floating point, not 21 pixels.
        return max(1, math.ceil(round(self.mmu_ha / pixel_ha, 9)))

    def fingerprint(self) -> str:
        """Stable short hash: part of every checkpoint key, so new thresholds never reuse old results."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


DEFAULT_PARAMS: Final = DetectionParams()
