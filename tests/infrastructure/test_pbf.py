"""The PBF source on extracts written with pyosmium around Java, and its agreement with Overpass."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ccapi_monitor.errors import InfrastructureError
from ccapi_monitor.infrastructure import pbf
from ccapi_monitor.infrastructure.features import OsmFeature
from ccapi_monitor.infrastructure.measure import GEOD, search_area
from ccapi_monitor.infrastructure.overpass import OverpassSource
from ccapi_monitor.infrastructure.pbf import PbfSource
from ccapi_monitor.storage import LocalStore
from tests.infrastructure.conftest import OverpassStub, Reply
from tests.infrastructure.osmdata import (
    ACROSS,
    AIRPORT_NODE,
    CONSTRUCTION,
    MOTORWAY_LAT,
    PORT_BOX,
    RAIL_LON,
    SOUTH,
    OsmData,
    region,
)


def geodesic_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2]) / 1000.0


def test_lengths_across_the_motorway_are_geodesic_within_2_percent(scenario_pbf: Path) -> None:
    result = PbfSource(scenario_pbf).fetch(region("across", *ACROSS))
    west, _, east, _ = ACROSS
    motorway_km = geodesic_km(west, MOTORWAY_LAT, east, MOTORWAY_LAT) + 2 * 25.0
    link_km = geodesic_km(107.0, MOTORWAY_LAT, 107.0, -6.21)

    assert result.source == "pbf"
    assert result.status == "ok"
    assert result.confidence == "high"
    assert result.features is not None
    assert result.nearest_km is not None
    assert result.features["major_roads_km"] == pytest.approx(motorway_km + link_km, rel=0.02)
    assert result.nearest_km["motorway"] == 0.0
    assert result.features["airports"] == 2
    assert result.nearest_km["airport"] == pytest.approx(
        geodesic_km(ACROSS[2], ACROSS[1], *AIRPORT_NODE), rel=0.02
    )


def test_distances_from_the_region_edge_are_geodesic_within_2_percent(scenario_pbf: Path) -> None:
    result = PbfSource(scenario_pbf).fetch(region("south", *SOUTH))
    _west, south, east, north = SOUTH
    rail_gap = geodesic_km(east, -6.4, RAIL_LON, -6.4)
    height = geodesic_km(107.0, south, 107.0, north)

    assert result.features is not None
    assert result.nearest_km is not None
    # nearest motorway is the end of the link ramp at -6.21
    assert result.nearest_km["motorway"] == pytest.approx(geodesic_km(107.0, north, 107.0, -6.21), rel=0.02)
    assert result.nearest_km["airport"] == pytest.approx(
        geodesic_km(east, AIRPORT_NODE[1], *AIRPORT_NODE), rel=0.02
    )
    assert result.nearest_km["airport"] == pytest.approx(11.06, abs=0.05)
    assert result.nearest_km["port"] == pytest.approx(
        geodesic_km(106.96, north, 106.96, PORT_BOX[1]), rel=0.02
    )
    assert result.nearest_km["railway"] == pytest.approx(rail_gap, rel=0.02)
    assert result.features["roads_under_construction_km"] == pytest.approx(
        geodesic_km(*CONSTRUCTION[0], *CONSTRUCTION[1]), rel=0.02
    )
    assert result.features["railway_km"] == pytest.approx(
        height + 2 * math.sqrt(25.0**2 - rail_gap**2), rel=0.02
    )
    assert result.features["ports"] == 2


def test_unwanted_tags_are_ignored(tmp_path: Path) -> None:
    data = OsmData()
    data.line((106.9, -6.2), (107.1, -6.2), highway="residential")
    data.line((106.9, -6.21), (107.1, -6.21), highway="construction", construction="residential")
    data.line((106.9, -6.22), (107.1, -6.22), railway="abandoned")
    data.node(107.0, -6.2, aeroway="helipad")

    result = PbfSource(data.write_pbf(tmp_path / "noise.osm.pbf")).fetch(region("across", *ACROSS))

    assert result.features == {
        "major_roads_km": 0.0,
        "roads_under_construction_km": 0.0,
        "railway_km": 0.0,
        "airports": 0.0,
        "ports": 0.0,
    }
    assert result.nearest_km == {"motorway": None, "airport": None, "port": None, "railway": None}
    assert result.score == 0.0
    assert result.confidence == "low"


def test_old_extract_lowers_confidence(tmp_path: Path, scenario: OsmData) -> None:
    path = scenario.write_pbf(tmp_path / "old.osm.pbf", timestamp="2024-01-01T00:00:00Z")

    assert PbfSource(path).fetch(region("across", *ACROSS)).confidence == "medium"


def test_missing_file_is_an_infrastructure_error_and_a_preflight_problem(tmp_path: Path) -> None:
    source = PbfSource(tmp_path / "java-latest.osm.pbf")

    [problem] = source.preflight()
    assert "not found" in problem
    with pytest.raises(InfrastructureError, match="not found"):
        source.fetch(region("across", *ACROSS))


def test_corrupt_file_is_an_infrastructure_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.osm.pbf"
    path.write_bytes(b"\x00\x00\x00\x0dthis is not a pbf file" * 50)
    source = PbfSource(path)

    assert len(source.preflight()) == 1
    with pytest.raises(InfrastructureError, match="cannot read"):
        source.fetch(region("across", *ACROSS))
    with pytest.raises(InfrastructureError):  # the failure is remembered, not re-read
        source.fetch(region("south", *SOUTH))


def test_file_is_read_once_for_concurrent_regions(
    scenario_pbf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = pbf.read_features

    def counting(path: Path, node_locations: str) -> list[OsmFeature]:
        calls.append(path)
        return real(path, node_locations)

    monkeypatch.setattr(pbf, "read_features", counting)
    source = PbfSource(scenario_pbf)
    regions = [region(f"r{i}", 106.9 + 0.01 * i, -6.3, 107.1, -6.1) for i in range(6)]
    start = threading.Barrier(len(regions))

    def fetch(i: int) -> float | None:
        start.wait()
        return source.fetch(regions[i]).score

    with ThreadPoolExecutor(len(regions)) as pool:
        scores = list(pool.map(fetch, range(len(regions))))

    assert calls == [scenario_pbf]
    assert all(s is not None and s > 0 for s in scores)
    assert source.preflight() == []


@pytest.mark.parametrize("bounds", [ACROSS, SOUTH, (106.6, -6.3, 106.8, -6.1)])
def test_pbf_and_overpass_give_the_same_figures_for_the_same_data(
    bounds: tuple[float, float, float, float],
    scenario: OsmData,
    scenario_pbf: Path,
    overpass_server: OverpassStub,
    cache: LocalStore,
) -> None:
    reg = region("same", *bounds)
    overpass_server.queue(Reply(body=scenario.overpass_answer(search_area(reg, 25.0).bounds)))

    from_pbf = PbfSource(scenario_pbf).fetch(reg)
    from_overpass = OverpassSource(cache, [overpass_server.url]).fetch(reg)

    assert from_pbf.features == from_overpass.features
    assert from_pbf.nearest_km == from_overpass.nearest_km
    assert from_pbf.score == from_overpass.score
    assert from_pbf.confidence == from_overpass.confidence == "high"


def test_an_on_disk_style_location_index_gives_the_same_figures(scenario_pbf: Path) -> None:
    south = region("south", *SOUTH)

    default = PbfSource(scenario_pbf).fetch(south)
    sparse = PbfSource(scenario_pbf, node_locations="sparse_mem_array").fetch(south)

    assert sparse.features == default.features
    assert sparse.nearest_km == default.nearest_km
