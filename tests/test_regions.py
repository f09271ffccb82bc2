from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ccapi_monitor.errors import RegionsFileError
from ccapi_monitor.regions import default_regions_path, load_regions, order_by_priority, parse_regions

REPO = Path(__file__).resolve().parents[1]
CSV = REPO.parent / "shared" / "data" / "java_regions.csv"


def _feature(name: str = "a", coords: list[list[float]] | None = None, **props: object) -> dict[str, object]:
    ring = coords or [[106.7, -6.15], [106.9, -6.15], [106.9, -5.95], [106.7, -5.95], [106.7, -6.15]]
    properties: dict[str, object] = {
        "name": name,
        "province": "p",
        "focus": "urban",
        "priority": 1,
        "tier": 1,
    }
    properties.update(props)
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def _collection(*features: dict[str, object]) -> dict[str, object]:
    return {"type": "FeatureCollection", "features": list(features)}


def test_the_repository_regions_file_is_the_packaged_one() -> None:
    """One file to edit: regions/java.geojson is a link to the file the package ships."""
    linked = REPO / "regions" / "java.geojson"
    assert linked.is_symlink()
    assert linked.resolve() == (REPO / "ccapi_monitor" / "data" / "java.geojson").resolve()
    assert default_regions_path().read_bytes() == linked.read_bytes()


@pytest.mark.skipif(not CSV.exists(), reason="shared/data/java_regions.csv not beside the repository")
def test_java_regions_match_the_design_csv() -> None:
    rows = {r["name"]: r for r in csv.DictReader(CSV.open())}
    regions = load_regions()
    assert len(regions) == 29
    assert {r.name for r in regions} == set(rows)
    for region in regions:
        row = rows[region.name]
        assert region.bounds == pytest.approx(
            tuple(float(row[k]) for k in ("west", "south", "east", "north"))
        )
        assert (region.province, region.focus, region.priority, region.tier) == (
            row["province"],
            row["focus"],
            int(row["priority"]),
            int(row["tier"]),
        )


def test_java_regions_are_in_utm_zones_48_to_50_south() -> None:
    zones = {r.utm_epsg for r in load_regions()}
    assert zones <= {32748, 32749, 32750}
    assert len(zones) == 3


def test_area_is_geodesic() -> None:
    (region,) = parse_regions(_collection(_feature()))
    # 0.2 x 0.2 degrees at 6 degrees south: about 22.1 km x 22.0 km.
    assert region.area_km2 == pytest.approx(489.7, rel=0.005)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"type": "Feature"}, "not a GeoJSON FeatureCollection"),
        (_collection(), "has no features"),
        (_collection(_feature(province="")), "missing required properties: province"),
        (_collection(_feature(priority="high")), "priority must be a positive integer"),
        (_collection(_feature("x y")), "name must be"),
        (_collection(_feature("a"), _feature("a")), "duplicate region name 'a'"),
        (
            _collection(
                _feature(coords=[[106.7, -6.2], [106.9, -6.0], [106.9, -6.2], [106.7, -6.0], [106.7, -6.2]])
            ),
            "geometry is invalid",
        ),
        (
            _collection(
                _feature(coords=[[206.7, -6.2], [206.9, -6.2], [206.9, -6.0], [206.7, -6.0], [206.7, -6.2]])
            ),
            "out of lon/lat range",
        ),
        (
            _collection(
                _feature(
                    coords=[[106.7, -6.2], [106.701, -6.2], [106.701, -6.199], [106.7, -6.199], [106.7, -6.2]]
                )
            ),
            "outside 1..5000 km2",
        ),
        (
            _collection(
                _feature(coords=[[100.0, -9.0], [110.0, -9.0], [110.0, -5.0], [100.0, -5.0], [100.0, -9.0]])
            ),
            "outside 1..5000 km2",
        ),
    ],
)
def test_validation_names_the_feature_and_problem(document: dict[str, object], message: str) -> None:
    with pytest.raises(RegionsFileError, match=message) as info:
        parse_regions(document)
    assert "\n" not in str(info.value)


def test_error_names_the_feature() -> None:
    with pytest.raises(RegionsFileError, match=r"feature #1 \('b'\)"):
        parse_regions(_collection(_feature("a"), _feature("b", tier=0)))


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(RegionsFileError, match="cannot read"):
        load_regions(tmp_path / "missing.geojson")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(RegionsFileError, match="not valid JSON"):
        load_regions(bad)


def test_non_rectangular_and_multipolygon_regions_are_accepted(tmp_path: Path) -> None:
    triangle = _feature("tri", coords=[[110.0, -7.0], [110.2, -7.0], [110.1, -6.8], [110.0, -7.0]])
    path = tmp_path / "r.geojson"
    path.write_text(json.dumps(_collection(triangle)))
    (region,) = load_regions(path)
    assert region.geometry.geom_type == "Polygon"
    assert region.area_km2 == pytest.approx(244.6, rel=0.01)


def test_order_by_priority_then_name() -> None:
    regions = parse_regions(
        _collection(_feature("b", priority=2), _feature("c", priority=1), _feature("a", priority=1))
    )
    assert [r.name for r in order_by_priority(regions)] == ["a", "c", "b"]
