"""Tag classification and geometry building shared by the Overpass and PBF sources."""

from __future__ import annotations

import pytest

from ccapi_monitor.infrastructure.features import (
    TAG_PAIRS,
    assemble_rings,
    classify,
    node_feature,
    relation_feature,
    way_feature,
)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"highway": "motorway"}, ("major_road", "motorway")),
        ({"highway": "trunk_link"}, ("major_road", "trunk_link")),
        ({"highway": "secondary"}, ("major_road", "secondary")),
        ({"highway": "tertiary"}, None),
        ({"highway": "residential"}, None),
        ({"highway": "construction", "construction": "motorway"}, ("road_construction", "motorway")),
        ({"highway": "construction", "construction": "primary_link"}, ("road_construction", "primary_link")),
        ({"highway": "construction", "construction": "residential"}, None),
        ({"highway": "construction"}, None),
        ({"railway": "rail"}, ("railway", "rail")),
        ({"railway": "light_rail"}, ("railway", "light_rail")),
        ({"railway": "construction", "construction": "rail"}, ("railway", "construction")),
        ({"railway": "abandoned"}, None),
        ({"aeroway": "aerodrome"}, ("airport", "aerodrome")),
        ({"aeroway": "helipad"}, None),
        ({"landuse": "port"}, ("port", "landuse_port")),
        ({"harbour": "yes"}, ("port", "harbour")),
        ({"amenity": "ferry_terminal"}, ("port", "ferry_terminal")),
        ({"building": "yes"}, None),
    ],
)
def test_classify(tags: dict[str, str], expected: tuple[str, str] | None) -> None:
    assert classify(tags) == expected


def test_every_wanted_tag_is_in_the_prefilter() -> None:
    """The PBF reader drops objects without one of TAG_PAIRS before classify sees them."""
    prefilter_keys = {k for k, _ in TAG_PAIRS}
    for key, value in TAG_PAIRS:
        assert key in prefilter_keys
        if key != "highway" or value != "construction":
            assert classify({key: value}) is not None


def test_closed_aerodrome_way_is_a_polygon_and_roads_stay_lines() -> None:
    ring = [(107.0, -6.2), (107.1, -6.2), (107.1, -6.1), (107.0, -6.2)]

    airport = way_feature(1, {"aeroway": "aerodrome"}, ring)
    roundabout = way_feature(2, {"highway": "primary"}, ring)

    assert airport is not None
    assert airport.geometry.geom_type == "Polygon"
    assert roundabout is not None
    assert roundabout.geometry.geom_type == "LineString"
    assert way_feature(3, {"highway": "primary"}, [(107.0, -6.2)]) is None
    assert way_feature(4, {"highway": "primary"}, [(107.0, -6.2), (107.0, -6.2)]) is None
    collapsed = way_feature(5, {"aeroway": "aerodrome"}, [(107.0, -6.2)] * 4)
    assert collapsed is not None
    assert collapsed.geometry.geom_type == "Point"


def test_nodes_only_make_point_features_for_airports_and_ports() -> None:
    assert node_feature(1, {"aeroway": "aerodrome"}, 107.0, -6.2) is not None
    assert node_feature(2, {"highway": "motorway"}, 107.0, -6.2) is None


def test_split_outer_ways_are_assembled_into_one_ring() -> None:
    three_sides = [(106.70, -6.25), (106.75, -6.25), (106.75, -6.20), (106.70, -6.20)]
    closing_side = [(106.70, -6.20), (106.70, -6.25)]

    rings = assemble_rings([three_sides, closing_side])
    feature = relation_feature(7, {"type": "multipolygon", "aeroway": "aerodrome"}, rings)

    assert len(rings) == 1
    assert feature is not None
    assert feature.osm_id == "r7"
    assert feature.geometry.area == pytest.approx(0.05 * 0.05)
    assert assemble_rings([three_sides]) == []  # an open ring is dropped, as osmium does
