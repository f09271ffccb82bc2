"""Instrumented stand-ins for the runner's collaborators.

Used only where a test is about the runner itself (concurrency, isolation, deadlines,
resume): the detection backends have their own tests on real COG/STAC archives.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date

from shapely.geometry import box, mapping

from ccapi_monitor.detection.base import ImageryBackend
from ccapi_monitor.errors import AbortedError, DetectionError
from ccapi_monitor.models import ChangePolygon, DetectionResult
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region


class CountingBackend(ImageryBackend):
    """Puts one clearing polygon in each region's south-west corner and counts calls."""

    name = "demo"

    def __init__(
        self,
        params: DetectionParams | None = None,
        *,
        fail: set[str] | None = None,
        delay_s: float = 0.0,
        hang: set[str] | None = None,
        insufficient: set[str] | None = None,
    ) -> None:
        super().__init__(params or DetectionParams())
        self.fail = fail or set()
        self.hang = hang or set()
        self.insufficient = insufficient or set()
        self.delay_s = delay_s
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.started = threading.Event()

    def detect(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        with self._lock:
            self.calls[region.name] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started.set()
        try:
            deadline = time.monotonic() + (3600 if region.name in self.hang else self.delay_s)
            while time.monotonic() < deadline:
                if cancel is not None and cancel.is_set():
                    raise AbortedError("cancelled")
                time.sleep(0.01)
            if region.name in self.fail:
                raise DetectionError(f"asset unreadable for {region.name}")
            if region.name in self.insufficient:
                return DetectionResult(
                    status="insufficient_observations", observed_fraction=0.2, area_ha=None, source="demo"
                )
            west, south, _, _ = region.bounds
            geom = box(west, south, west + 0.01, south + 0.01)
            polygon = ChangePolygon(
                region=region.name,
                change_class="vegetation_clearing",
                area_ha=120.0,
                centroid=(geom.centroid.x, geom.centroid.y),
                geometry=mapping(geom),
            )
            return DetectionResult(
                status="ok",
                observed_fraction=0.9,
                area_ha={"vegetation_clearing": 120.0, "built_up": 0.0},
                polygons=[polygon],
                polygon_count=1,
                scenes={"baseline": 40, "persistence": 8, "current": 4},
                source="demo",
            )
        finally:
            with self._lock:
                self.in_flight -= 1
