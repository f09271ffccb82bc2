"""The imagery backend interface: one region in, one :class:`DetectionResult` out."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from datetime import date
from typing import Any, ClassVar

from ccapi_monitor.models import ChangePolygon, DetectionResult, ImageryCorrection
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region


class ImageryBackend(ABC):
    """Implements docs/design/detection.md for one imagery source.

    ``detect`` is called concurrently from several threads (one region each), so
    implementations keep per-region state local. It raises
    :class:`~ccapi_monitor.errors.DetectionError` with a message a person can act on;
    it never returns zeros for a region it could not measure.
    """

    name: ClassVar[str]

    def __init__(self, params: DetectionParams) -> None:
        self.params = params

    def describe(self, run_date: date) -> dict[str, Any]:
        """What the plan and ``report.json['imagery']`` say about this source (no credentials needed)."""
        return {"source": self.name}

    def prepare(self, regions: list[Region], run_date: date) -> None:  # noqa: B027 - optional hook
        """Run once before regions start (e.g. the demo backend writes its archive)."""

    def corrections(self) -> list[ImageryCorrection]:
        """Items whose metadata disagreed with their pixels and were read corrected, this process."""
        return []

    def items_read(self) -> int | None:
        """Imagery items read in this process (``None``: the backend does not read items)."""
        return None

    def preflight(self) -> list[str]:
        """Problems that would stop a run, one line each; empty when usable."""
        return []

    @abstractmethod
    def detect(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        """Change detection for one region; checks ``cancel`` between units of work."""


def region_result(
    params: DetectionParams,
    *,
    source: str,
    observed_fraction: float,
    area_ha: dict[str, float],
    polygons: list[ChangePolygon],
    polygon_count: int,
    scenes: dict[str, int],
    details: dict[str, Any],
) -> DetectionResult:
    """The one rule every backend applies: below ``min_observed_fraction`` a region is
    ``insufficient_observations`` with no hectares and no polygons, never "0 ha".

    ``polygons`` are every component, largest first: all are kept as the footprint, the
    first ``max_polygons`` are listed."""
    if observed_fraction < params.min_observed_fraction:
        return DetectionResult(
            status="insufficient_observations",
            observed_fraction=observed_fraction,
            area_ha=None,
            scenes=scenes,
            source=source,
            details=details,
        )
    return DetectionResult(
        status="ok",
        observed_fraction=observed_fraction,
        area_ha=area_ha,
        polygons=polygons[: params.max_polygons],
        footprint=polygons,
        polygon_count=polygon_count,
        scenes=scenes,
        source=source,
        details=details,
    )
