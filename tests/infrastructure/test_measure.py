"""Geodesic figures, nearest distances, sites, score and confidence (shared by all sources)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from ccapi_monitor.errors import InfrastructureError
from ccapi_monitor.infrastructure.features import OsmFeature
from ccapi_monitor.infrastructure.measure import (
    DENSITY_TERMS,
    GEOD,
    PROXIMITY_TERMS,
    Measurement,
    build_result,
    clipped_length_km,
    confidence,
    count_sites,
    infrastructure_score,
    measure,
    nearest_km,
    search_area,
)
from tests.infrastructure.osmdata import ACROSS, SOUTH, region

LAT = -6.2


def geodesic_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2]) / 1000.0


def motorway(lat: float = LAT, west: float = 106.0, east: float = 108.0) -> OsmFeature:
    return OsmFeature("major_road", "motorway", "w1", shapely.LineString([(west, lat), (east, lat)]))


def test_length_of_a_motorway_crossing_the_region_is_clipped_to_region_plus_buffer() -> None:
    area = search_area(region("across", *ACROSS), 25.0)
    width = geodesic_km(ACROSS[0], LAT, ACROSS[2], LAT)

    length = clipped_length_km(area, [motorway().geometry])

    assert length == pytest.approx(width + 2 * 25.0, rel=0.02)


def test_length_of_a_motorway_beside_the_region_follows_the_rounded_buffer() -> None:
    area = search_area(region("south", *SOUTH), 25.0)
    gap = geodesic_km(107.0, SOUTH[3], 107.0, LAT)
    width = geodesic_km(SOUTH[0], SOUTH[3], SOUTH[2], SOUTH[3])

    length = clipped_length_km(area, [motorway().geometry])

    assert length == pytest.approx(width + 2 * math.sqrt(25.0**2 - gap**2), rel=0.02)


def test_nearest_distance_to_a_line_north_of_the_region_is_geodesic() -> None:
    area = search_area(region("south", *SOUTH), 25.0)
    expected = geodesic_km(107.0, SOUTH[3], 107.0, LAT)  # ~11.06 km, not 0.1 "degrees"

    assert nearest_km(area, [motorway().geometry]) == pytest.approx(expected, rel=0.02)
    assert expected == pytest.approx(11.06, abs=0.05)


def test_nearest_distance_is_to_the_nearest_point_of_a_polygon_not_its_centre() -> None:
    area = search_area(region("south", *SOUTH), 25.0)
    airfield = shapely.box(107.2, -6.2, 107.4, -6.0)  # north-east of the region's NE corner
    expected = geodesic_km(SOUTH[2], SOUTH[3], 107.2, -6.2)

    assert nearest_km(area, [airfield]) == pytest.approx(expected, rel=0.02)


def test_nearest_distance_is_zero_inside_and_none_without_geometry() -> None:
    area = search_area(region("across", *ACROSS), 25.0)

    assert nearest_km(area, [shapely.Point(107.0, -6.2)]) == 0.0
    assert nearest_km(area, [motorway().geometry]) == 0.0
    assert nearest_km(area, []) is None


def test_features_beyond_the_search_area_are_not_counted_or_measured() -> None:
    far = OsmFeature("airport", "aerodrome", "n9", shapely.Point(107.0, -7.0))  # ~55 km south
    near = OsmFeature("airport", "aerodrome", "n8", shapely.Point(107.0, -6.4))

    far_only = measure(region("across", *ACROSS), [far], 25.0)
    both = measure(region("across", *ACROSS), [far, near], 25.0)

    assert far_only.features["airports"] == 0
    assert far_only.nearest_km["airport"] is None
    assert both.features["airports"] == 1
    assert both.nearest_km["airport"] == pytest.approx(geodesic_km(107.0, -6.3, 107.0, -6.4), rel=0.02)


def test_features_close_together_count_as_one_site() -> None:
    area = search_area(region("across", *ACROSS), 25.0)
    port = shapely.box(106.95, -6.13, 106.97, -6.11)
    terminal_inside = shapely.Point(106.96, -6.12)
    terminal_600m_away = shapely.Point(106.9755, -6.12)
    other_harbour = shapely.Point(107.05, -6.05)

    assert count_sites(area, [port, terminal_inside, terminal_600m_away]) == 1
    assert count_sites(area, [port, terminal_inside, other_harbour]) == 2
    assert count_sites(area, []) == 0


def test_search_area_is_the_region_grown_by_the_buffer() -> None:
    reg = region("across", *ACROSS)
    area = search_area(reg, 25.0)
    _, perimeter_m = GEOD.geometry_area_perimeter(reg.geometry)
    expected = reg.area_km2 + abs(perimeter_m) / 1000.0 * 25.0 + math.pi * 25.0**2

    assert area.area_km2 == pytest.approx(expected, rel=0.01)
    assert search_area(reg, 0.0).area_km2 == pytest.approx(reg.area_km2, rel=1e-3)


def test_search_area_depends_on_geometry_not_only_on_the_region_name() -> None:
    small = search_area(region("same", 107.0, -6.3, 107.05, -6.25), 5.0)
    large = search_area(region("same", 107.0, -6.3, 107.3, -6.0), 5.0)

    assert large.area_km2 > 2 * small.area_km2


def test_duplicate_osm_ids_are_measured_once() -> None:
    once = measure(region("across", *ACROSS), [motorway()], 25.0)
    twice = measure(region("across", *ACROSS), [motorway(), motorway()], 25.0)

    assert twice.features == once.features


# -- score ---------------------------------------------------------------------------------

FEATURE_KEYS = ("major_roads_km", "roads_under_construction_km", "railway_km", "airports", "ports")
features_st = st.fixed_dictionaries({k: st.floats(0, 5000, allow_nan=False) for k in FEATURE_KEYS})
nearest_st = st.fixed_dictionaries(
    {k: st.one_of(st.none(), st.floats(0, 200, allow_nan=False)) for k in PROXIMITY_TERMS}
)
area_st = st.floats(50, 20_000, allow_nan=False)


@given(features_st, nearest_st, area_st, st.sampled_from(FEATURE_KEYS), st.floats(0, 1000))
def test_more_infrastructure_never_lowers_the_score(
    features: dict[str, float], nearest: dict[str, float | None], area: float, key: str, extra: float
) -> None:
    more = {**features, key: features[key] + extra}

    assert infrastructure_score(more, nearest, area) >= infrastructure_score(features, nearest, area)


@given(features_st, nearest_st, area_st, st.sampled_from(sorted(PROXIMITY_TERMS)), st.floats(0, 1))
def test_closer_infrastructure_never_lowers_the_score(
    features: dict[str, float], nearest: dict[str, float | None], area: float, key: str, factor: float
) -> None:
    current = nearest[key]
    closer = {**nearest, key: 200.0 * factor if current is None else current * factor}

    assert infrastructure_score(features, closer, area) >= infrastructure_score(features, nearest, area)


@given(features_st, nearest_st, area_st)
def test_score_stays_within_0_and_100(
    features: dict[str, float], nearest: dict[str, float | None], area: float
) -> None:
    assert 0.0 <= infrastructure_score(features, nearest, area) <= 100.0


def test_score_weights_span_0_to_100() -> None:
    nothing = dict.fromkeys(FEATURE_KEYS, 0.0)
    everything = {**nothing, "major_roads_km": 1e6, "railway_km": 1e6, "roads_under_construction_km": 1e6}

    assert sum(p for p, _ in PROXIMITY_TERMS.values()) + sum(p for p, _ in DENSITY_TERMS.values()) == 100
    assert infrastructure_score(nothing, dict.fromkeys(PROXIMITY_TERMS), 1000.0) == 0.0
    assert infrastructure_score(everything, dict.fromkeys(PROXIMITY_TERMS, 0.0), 1000.0) == 100.0


def test_motorway_term_decays_with_distance_as_documented() -> None:
    nothing = dict.fromkeys(FEATURE_KEYS, 0.0)
    points, d0 = PROXIMITY_TERMS["motorway"]
    nearest = {**dict.fromkeys(PROXIMITY_TERMS), "motorway": d0}

    assert infrastructure_score(nothing, nearest, 1000.0) == pytest.approx(points / math.e, abs=0.05)


# -- confidence and result -------------------------------------------------------------------


def _measurement(roads_km: float) -> Measurement:
    return Measurement({**dict.fromkeys(FEATURE_KEYS, 0.0), "major_roads_km": roads_km}, {}, 1000.0)


@pytest.mark.parametrize(
    ("roads_km", "stale", "age_days", "expected"),
    [
        (120.0, False, 1.0, "high"),
        (120.0, False, None, "high"),
        (120.0, True, 1.0, "medium"),
        (120.0, False, 400.0, "medium"),
        (0.0, False, 1.0, "low"),
        (0.0, True, 1.0, "low"),
    ],
)
def test_confidence_by_staleness_age_and_completeness(
    roads_km: float, stale: bool, age_days: float | None, expected: str
) -> None:
    assert confidence(_measurement(roads_km), stale=stale, data_age_days=age_days) == expected


def test_build_result_marks_stale_answers_and_keeps_the_fetch_time() -> None:
    fetched = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)

    result = build_result(
        region("across", *ACROSS),
        [motorway()],
        source="overpass",
        buffer_km=25.0,
        fetched_at=fetched,
        stale=True,
    )

    assert result.status == "stale"
    assert result.confidence == "medium"
    assert result.fetched_at == "2026-11-20T06:00:00+00:00"
    assert result.nearest_km == {"motorway": 0.0, "airport": None, "port": None, "railway": None}
    assert result.score is not None
    assert result.score > 0


def test_a_geometry_that_cannot_be_measured_is_an_infrastructure_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ccapi_monitor.infrastructure import measure as module

    def broken(*_: object) -> float:
        raise shapely.errors.GEOSException("TopologyException: side location conflict")

    monkeypatch.setattr(module, "clipped_length_km", broken)

    with pytest.raises(InfrastructureError, match="side location conflict"):
        build_result(
            region("across", *ACROSS),
            [motorway()],
            source="pbf",
            buffer_km=25.0,
            fetched_at=datetime.now(UTC),
        )
