"""Fixtures for the array detection tests: small synthetic regions and a cached demo archive."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from numpy.typing import NDArray
from rasterio.features import rasterize
from shapely.geometry import shape

from ccapi_monitor.detection.demo import PADDY, DemoBackend, DemoConfig
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.models import DetectionResult
from ccapi_monitor.params import CLASSES, DetectionParams
from ccapi_monitor.regions import Region, box

#: Dry-season run date: a date in the middle of the archive's event calendar.
RUN_DATE = date(2025, 8, 13)
#: A finer grid and denser events than ``make demo``: the accuracy is measured on many
#: events at a pixel size where the smallest (4 ha) is dozens of pixels.
TEST_CONFIG = DemoConfig(
    scale_m=40.0, baseline_step=2, event_every_days=0.5, event_ha=(2.0, 12.0), all_assets=True
)


def make_region(name: str, west: float, south: float, size_deg: float = 0.06, **kw: Any) -> Region:
    geometry = kw.pop("geometry", None) or box(west, south, west + size_deg, south + size_deg)
    return Region(
        name=name, province="test", focus=kw.pop("focus", "urban"), priority=1, tier=1, geometry=geometry
    )


#: Two ordinary regions near Bandung/Karawang (UTM 48S).
REGION_A = make_region("alpha", 107.30, -6.40)
REGION_B = make_region("bravo", 107.50, -6.60, focus="agriculture")


@dataclass
class DemoArchiveFixture:
    backend: DemoBackend
    run_date: date
    regions: list[Region]
    results: dict[str, DetectionResult]


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchiveFixture:
    """The archive generated once per session, and each region's detection result."""
    backend = DemoBackend(DetectionParams(max_polygons=100_000), tmp_path_factory.mktemp("demo"), TEST_CONFIG)
    regions = [REGION_A, REGION_B]
    backend.prepare(regions, RUN_DATE)
    results = {r.name: backend.detect(r, RUN_DATE) for r in regions}
    return DemoArchiveFixture(backend, RUN_DATE, regions, results)


def polygons_mask(features: list[dict[str, Any]], grid: RegionGrid) -> NDArray[np.bool_]:
    """Pixels of ``grid`` whose centre lies in any of the lon/lat GeoJSON geometries."""
    shapes = [grid.project(shape(f.get("geometry", f))) for f in features]
    if not shapes:
        return np.zeros(grid.shape, dtype=bool)
    return np.asarray(rasterize(shapes, out_shape=grid.shape, transform=grid.transform), dtype=bool)


def accuracy(result: DetectionResult, truth_path: Path, region: Region, scale_m: float) -> dict[str, Any]:
    """Area-based user's and producer's accuracy per class against the planted footprints.

    Footprints whose expected class is ``transition`` (being cleared right now, or
    drifting into the baseline) are left out of both measures.
    """
    grid = RegionGrid.for_region(region, scale_m)
    inside = grid.mask(region.geometry)
    truth = json.loads(truth_path.read_text())["features"]
    transition = polygons_mask([f for f in truth if f["properties"]["class"] == "transition"], grid)
    transition &= ~polygons_mask([f for f in truth if f["properties"]["class"] in CLASSES], grid)
    out: dict[str, Any] = {}
    for name in CLASSES:
        expected = polygons_mask([f for f in truth if f["properties"]["class"] == name], grid) & inside
        detected = polygons_mask([p.geometry for p in result.polygons if p.change_class == name], grid)
        detected &= ~transition
        hit = np.count_nonzero(detected & expected)
        out[name] = {
            "truth_px": int(expected.sum()),
            "detected_px": int(detected.sum()),
            "users": hit / detected.sum() if detected.any() else None,
            "producers": hit / expected.sum() if expected.any() else None,
        }
    return out


def paddy_false_share(
    result: DetectionResult,
    backend: DemoBackend,
    region: Region,
    truth_path: Path,
    landcover_code: int = PADDY,
) -> float:
    """Share of the (event-free) paddy area, or of another land cover, reported as any change."""
    scale = backend.params.scale_m
    grid = RegionGrid.for_region(region, scale)
    with rasterio.open(backend.landcover_path(region.name)) as src:
        world = RegionGrid.for_geometry(region.geometry, region.utm_epsg, scale, margin_px=2)
        off_r = round((world.north - grid.north) / scale)
        off_c = round((grid.west - world.west) / scale)
        landcover = src.read(1)[off_r : off_r + grid.height, off_c : off_c + grid.width]
    events = polygons_mask(json.loads(truth_path.read_text())["features"], grid)
    paddy = (landcover == landcover_code) & ~events & grid.mask(region.geometry)
    detected = polygons_mask([p.geometry for p in result.polygons], grid)
    return float(np.count_nonzero(detected & paddy)) / float(np.count_nonzero(paddy))
