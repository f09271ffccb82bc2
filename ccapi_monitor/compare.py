"""``ccapi-monitor compare``: two imagery backends on the same regions and run date.

For the operator's first week with real credentials: Earth Engine and the stac path
implement one algorithm (docs/detection.md), so their hectares and footprints should
agree. Per region and class this prints both backends' hectares, their difference and
the footprint IoU (geodesic areas), and fails above a tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pyproj
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ccapi_monitor.detection.base import ImageryBackend
from ccapi_monitor.errors import CCAPIError
from ccapi_monitor.models import ChangePolygon, DetectionResult
from ccapi_monitor.params import CLASSES
from ccapi_monitor.regions import Region

_GEOD = pyproj.Geod(ellps="WGS84")


def _ha(geometry: BaseGeometry) -> float:
    if geometry.is_empty:
        return 0.0
    area, _ = _GEOD.geometry_area_perimeter(geometry)
    return abs(area) / 10_000.0


def _footprint(result: DetectionResult, change_class: str) -> BaseGeometry:
    polygons: list[ChangePolygon] = result.footprint or result.polygons
    shapes = [shape(p.geometry) for p in polygons if p.change_class == change_class]
    shapes = [s if s.is_valid else shapely.make_valid(s) for s in shapes]
    return shapely.union_all(shapes) if shapes else shapely.Polygon()


@dataclass(frozen=True)
class ClassComparison:
    region: str
    change_class: str
    first_ha: float | None
    second_ha: float | None
    iou: float | None  # None: neither backend found any of the class

    @property
    def difference_ha(self) -> float | None:
        if self.first_ha is None or self.second_ha is None:
            return None
        return self.second_ha - self.first_ha

    def within(self, tolerance_ha: float, tolerance_share: float, min_iou: float) -> bool:
        """Hectares within ``tolerance_ha + tolerance_share x larger`` and IoU at least ``min_iou``."""
        if self.first_ha is None or self.second_ha is None:
            return self.first_ha is None and self.second_ha is None
        allowed = tolerance_ha + tolerance_share * max(self.first_ha, self.second_ha)
        return abs(self.second_ha - self.first_ha) <= allowed and (self.iou is None or self.iou >= min_iou)


def compare_results(region: str, first: DetectionResult, second: DetectionResult) -> list[ClassComparison]:
    """Per class: both hectares (``None`` when a backend could not measure the region) and IoU."""
    rows = []
    for change_class in CLASSES:
        a = first.area_ha.get(change_class, 0.0) if first.area_ha is not None else None
        b = second.area_ha.get(change_class, 0.0) if second.area_ha is not None else None
        iou = None
        if a is not None and b is not None:
            fa, fb = _footprint(first, change_class), _footprint(second, change_class)
            union = _ha(shapely.union(fa, fb))
            iou = _ha(shapely.intersection(fa, fb)) / union if union > 0 else None
        rows.append(ClassComparison(region, change_class, a, b, iou))
    return rows


def compare_backends(
    first: ImageryBackend, second: ImageryBackend, regions: Sequence[Region], run_date: date
) -> list[ClassComparison | tuple[str, str]]:
    """Detect every region with both backends; a region a backend cannot do is ``(region, error)``."""
    for backend in (first, second):
        backend.prepare(list(regions), run_date)
    rows: list[ClassComparison | tuple[str, str]] = []
    for region in regions:
        try:
            a = first.detect(region, run_date)
            b = second.detect(region, run_date)
        except CCAPIError as exc:
            rows.append((region.name, str(exc)))
            continue
        rows.extend(compare_results(region.name, a, b))
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(rows: Sequence[ClassComparison | tuple[str, str]], first: str, second: str) -> list[str]:
    """One line per region and class (plain text, fixed columns)."""
    lines = [
        f"{'region':34} {'class':20} {first + '_ha':>14} {second + '_ha':>14} {'diff_ha':>10} {'iou':>6}"
    ]
    for row in rows:
        if isinstance(row, tuple):
            lines.append(f"{row[0]:34} error: {row[1]}")
            continue
        lines.append(
            f"{row.region:34} {row.change_class:20} {_fmt(row.first_ha):>14} {_fmt(row.second_ha):>14} "
            f"{_fmt(row.difference_ha):>10} {_fmt(row.iou, 3):>6}"
        )
    return lines
