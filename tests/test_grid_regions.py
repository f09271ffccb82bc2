"""The packaged Java outline and the wall-to-wall grid built on it."""

from __future__ import annotations

import json
from pathlib import Path

import pyproj
import pytest
import shapely
from shapely.ops import nearest_points

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.grid_regions import GridSpec, grid_collection, java_land, java_land_path
from ccapi_monitor.regions import load_regions

GEOD = pyproj.Geod(ellps="WGS84")


def _km(a: shapely.Point, b: shapely.Point) -> float:
    return float(GEOD.inv(a.x, a.y, b.x, b.y)[2]) / 1000.0


def _area_km2(geometry: shapely.Geometry) -> float:
    return abs(float(GEOD.geometry_area_perimeter(geometry)[0])) / 1e6


def test_java_land_is_java_and_madura() -> None:
    land = java_land()
    assert land.is_valid
    # Java with Madura is about 132,000 km2 (Java 128,300 + Madura 4,080 less what 1:10m smooths away).
    assert 125_000 < _area_km2(land) < 136_000
    west, south, east, north = land.bounds
    assert 105.0 < west < 105.3
    assert 114.4 < east < 114.7
    assert -8.9 < south < -8.6
    assert -6.0 < north < -5.8
    parts = sorted(shapely.get_parts(land), key=lambda p: -p.area)
    assert parts[0].contains(shapely.Point(110.37, -7.80))  # Yogyakarta on Java
    assert parts[1].contains(shapely.Point(113.3, -7.05))  # Madura
    assert not land.contains(shapely.Point(115.2, -8.65))  # Denpasar, Bali
    assert not land.contains(shapely.Point(105.42, -6.10))  # Krakatau


def test_java_land_names_its_origin_licence_and_scale() -> None:
    props = json.loads(java_land_path().read_text())["features"][0]["properties"]
    assert "Natural Earth" in props["source"]
    assert props["scale"] == "1:10m"
    assert props["licence"].startswith("public domain")


def test_every_monitored_region_lies_on_java() -> None:
    land = java_land()
    regions = load_regions()
    assert len(regions) == 29
    for region in regions:
        centre = region.geometry.centroid
        on_land = nearest_points(land, centre)[0]
        # Port and coastal boxes straddle the shore: their centres may sit just offshore.
        assert _km(centre, on_land) < 10.0, region.name
        assert region.geometry.intersection(land).area / region.geometry.area > 0.1, region.name


def test_twenty_km_grid_covers_java_with_land_cells(tmp_path: Path) -> None:
    spec = GridSpec(cell_km=20)
    document = grid_collection(spec)
    path = tmp_path / "grid.geojson"
    path.write_text(json.dumps(document))
    regions = load_regions(path)
    assert 300 <= len(regions) <= 360
    assert len({r.name for r in regions}) == len(regions)
    land = java_land()
    cells = shapely.union_all([r.geometry for r in regions])
    for region in regions:
        assert 380 < region.area_km2 < 402, region.name  # 20 x 20 km, UTM scale error < 0.5 %
        assert region.geometry.intersection(land).area / region.geometry.area >= 0.45, region.name
    # Dropping the mostly-sea cells loses a thin coastal strip only.
    assert _area_km2(cells.intersection(land)) / _area_km2(land) > 0.9
    for city in [(106.85, -6.2), (110.37, -7.8), (112.75, -7.25), (113.3, -7.05)]:
        assert cells.contains(shapely.Point(*city)), city


def test_grid_is_reproducible_and_threshold_drops_sea_cells() -> None:
    strict = grid_collection(GridSpec(cell_km=20, min_land_fraction=0.9))["features"]
    default = grid_collection(GridSpec(cell_km=20))["features"]
    assert grid_collection(GridSpec(cell_km=20))["features"] == default
    assert {f["properties"]["name"] for f in strict} < {f["properties"]["name"] for f in default}
    assert all(f["properties"]["land_fraction"] >= 0.9 for f in strict)
    lowest = min(f["properties"]["land_fraction"] for f in default)
    assert 0.5 <= lowest < 0.9


@pytest.mark.parametrize(("cell_km", "fraction"), [(0.5, 0.5), (80.0, 0.5), (float("nan"), 0.5), (20.0, 0.0)])
def test_bad_grid_spec_is_invalid_input(cell_km: float, fraction: float) -> None:
    with pytest.raises(InvalidInputError):
        GridSpec(cell_km=cell_km, min_land_fraction=fraction)
