"""Region and overview maps: polygons land where they are, in their colours, and tiny ones stay visible."""

from __future__ import annotations

import base64
import io
import math
from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageColor
from shapely.geometry import Polygon, box, mapping, shape

from ccapi_monitor.infrastructure.pbf import PbfSource
from ccapi_monitor.models import ChangePolygon
from ccapi_monitor.regions import load_regions
from ccapi_monitor.reports.maps import (
    CHANGE_COLOURS,
    LABEL_COLOURS,
    LAND_FILL,
    LINE_STYLES,
    REGION_FILL,
    MapLine,
    data_uri,
    java_land,
    render_overview_map,
    render_region_map,
)

OUTLINE = mapping(box(107.0, -6.4, 107.2, -6.2))


def change(geom: Polygon, kind: str, cls: str = "built_up") -> ChangePolygon:
    return ChangePolygon(
        region="r",
        change_class=cls,
        area_ha=1.0,
        centroid=(geom.centroid.x, geom.centroid.y),
        geometry=mapping(geom),
        change=kind,
        first_detected=date(2026, 11, 23),
    )


def pixel_at(png: bytes, lon: float, lat: float, bounds=(107.0, -6.4, 107.2, -6.2)) -> tuple[int, int, int]:
    """Colour at a lon/lat, by the map's documented layout: equirectangular, 6 % margin."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    west, south, east, north = bounds
    kx = math.cos(math.radians((south + north) / 2))
    span_x, span_y = (east - west) * kx, north - south
    pad = 0.06 * max(span_x, span_y)
    fx = ((lon - west) * kx + pad) / (span_x + 2 * pad)
    fy = (north + pad - lat) / (span_y + 2 * pad)
    xy = (round(fx * (image.width - 1)), round(fy * (image.height - 1)))
    colour: tuple[int, int, int] = image.getpixel(xy)  # type: ignore[assignment]
    return colour


def close_to(actual: tuple[int, int, int], hex_colour: str, tolerance: int = 12) -> bool:
    expected = ImageColor.getrgb(hex_colour)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def test_new_and_persisting_polygons_are_drawn_in_their_colours_where_they_are():
    new = box(107.02, -6.38, 107.07, -6.33)
    persisting = box(107.12, -6.27, 107.17, -6.22)
    png = render_region_map(OUTLINE, [change(new, "new"), change(persisting, "persisting")])
    assert png is not None
    assert close_to(pixel_at(png, 107.045, -6.355), CHANGE_COLOURS[("new", "built_up")])
    assert close_to(pixel_at(png, 107.145, -6.245), CHANGE_COLOURS[("persisting", "built_up")])
    assert close_to(pixel_at(png, 107.1, -6.3), REGION_FILL)  # inside the region, no change


def test_a_polygon_of_a_pixel_is_drawn_as_a_visible_marker():
    tiny = box(107.1, -6.3, 107.1004, -6.2996)  # ~0.2 ha: well under a pixel at this scale
    png = render_region_map(OUTLINE, [change(tiny, "new", "vegetation_clearing")])
    assert png is not None
    assert close_to(pixel_at(png, 107.1002, -6.2998), CHANGE_COLOURS[("new", "vegetation_clearing")], 40)


def test_multipolygon_with_a_hole():
    ring = Polygon(
        box(107.02, -6.38, 107.1, -6.3).exterior, [box(107.05, -6.35, 107.07, -6.33).exterior.coords]
    )
    multi = {"type": "MultiPolygon", "coordinates": [mapping(ring)["coordinates"]]}
    png = render_region_map(OUTLINE, [change(ring, "new").model_copy(update={"geometry": multi})])
    assert png is not None
    assert close_to(pixel_at(png, 107.03, -6.37), CHANGE_COLOURS[("new", "built_up")])
    assert close_to(pixel_at(png, 107.06, -6.34), REGION_FILL)  # the hole shows the region beneath


def test_nothing_to_draw_is_none_and_polygons_alone_frame_the_map():
    assert render_region_map(None, []) is None
    only = render_region_map(None, [change(box(107.0, -6.3, 107.01, -6.29), "new")])
    assert only is not None
    assert max(Image.open(io.BytesIO(only)).size) == 520


def test_overview_fills_regions_by_label():
    outlines = {"a": mapping(box(106.0, -7.0, 106.2, -6.8)), "b": mapping(box(110.0, -7.0, 110.2, -6.8))}
    png = render_overview_map(outlines, {"a": "BUY", "b": None}, {"a": 1, "b": 2})
    assert png is not None
    # 'a' sits at the left edge: sample inside it, off its rank number.
    assert close_to(pixel_at(png, 106.03, -6.97, bounds=(106.0, -7.0, 110.2, -6.8)), LABEL_COLOURS["BUY"], 40)
    assert render_overview_map({}, {}, {}) is None


def test_data_uri_round_trips():
    uri = data_uri(b"\x89PNG...")
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == b"\x89PNG..."


@pytest.mark.parametrize("width", [200, 800])
def test_size_fits_the_box_and_keeps_the_aspect(width: int):
    png = render_region_map(OUTLINE, [], width=width)
    assert png is not None
    w, h = Image.open(io.BytesIO(png)).size
    assert h == width  # a square in lon/lat is taller than wide at Java's latitude ...
    assert w / h == pytest.approx(math.cos(math.radians(6.3)), abs=0.01)  # ... by cos(latitude)


def test_overview_is_capped_in_height():
    outlines = {"a": mapping(box(106.0, -7.0, 106.2, -6.8)), "b": mapping(box(106.1, -6.9, 106.3, -6.7))}
    png = render_overview_map(outlines, {"a": "BUY", "b": "PASS"}, {"a": 1, "b": 2})
    assert png is not None
    assert Image.open(io.BytesIO(png)).size[1] == 460


def test_overview_draws_java_under_the_regions():
    """Land inside Java but outside every region is land-coloured; the Java Sea stays white."""
    outlines = {"a": mapping(box(106.7, -6.3, 106.9, -6.1)), "b": mapping(box(112.6, -7.4, 112.8, -7.2))}
    land = java_land()
    png = render_overview_map(outlines, {"a": "BUY", "b": "PASS"}, {"a": 1, "b": 2}, land=land)
    assert png is not None
    bounds = shape(land["features"][0]["geometry"]).bounds  # the frame covers the island
    assert close_to(pixel_at(png, 110.0, -7.4, bounds=bounds), LAND_FILL, 10)  # central Java, no region
    assert close_to(pixel_at(png, 110.0, -6.0, bounds=bounds), "#ffffff", 4)  # Java Sea
    assert close_to(pixel_at(png, 106.75, -6.25, bounds=bounds), LABEL_COLOURS["BUY"], 40)
    assert render_overview_map({}, {}, {}, land=land) is None  # no region: no map, even with land


def test_region_map_draws_roads_and_railways_under_the_polygons():
    road = MapLine("major_road", ((107.0, -6.3), (107.2, -6.3)))
    rail = MapLine("railway", ((107.1, -6.4), (107.1, -6.2)))
    site = box(107.15, -6.32, 107.19, -6.28)  # on the road: the polygon stays on top
    png = render_region_map(OUTLINE, [change(site, "new")], lines=[road, rail], width=800)
    assert png is not None
    assert close_to(pixel_at(png, 107.05, -6.3), LINE_STYLES["major_road"][0], 40)
    assert close_to(pixel_at(png, 107.1, -6.35), LINE_STYLES["railway"][0], 40)
    assert close_to(pixel_at(png, 107.17, -6.3), CHANGE_COLOURS[("new", "built_up")], 20)
    assert close_to(pixel_at(png, 107.05, -6.25), REGION_FILL)


DEMO_OSM = Path(__file__).resolve().parents[2] / "ccapi_monitor" / "data" / "demo_java.osm.pbf"


def test_region_maps_get_the_lines_the_pbf_source_read():
    """The bundled synthetic extract through the real PBF reader: lines only once read, clipped to the box."""
    regions = {r.name: r for r in load_regions()}
    source = PbfSource(DEMO_OSM)
    coastal = regions[
        "semarang_port_expansion"
    ]  # the north toll road, the railway and a primary road cross it
    assert source.map_lines(coastal) == []  # nothing read yet: nothing drawn, nothing fetched
    source.fetch(coastal)
    lines = source.map_lines(coastal)
    assert {line.kind for line in lines} == {"major_road", "railway"}
    west, south, east, north = coastal.geometry.bounds
    for line in lines:
        assert all(
            west - 1e-9 <= x <= east + 1e-9 and south - 1e-9 <= y <= north + 1e-9 for x, y in line.coordinates
        )
    assert source.map_lines(regions["jember_southern_coast"]) == []  # nothing crosses the south coast
    png = render_region_map(mapping(coastal.geometry), [], lines=lines, width=520)
    assert png is not None
    pixels = Image.open(io.BytesIO(png)).convert("RGB").get_flattened_data()
    assert any(close_to(tuple(c), LINE_STYLES["major_road"][0], 30) for c in pixels)  # type: ignore[arg-type]


def test_demo_extract_spreads_the_infrastructure_scores():
    """Synthetic, but shaped like Java: north-coast regions score far above the south coast."""
    source = PbfSource(DEMO_OSM)
    scores = {r.name: source.fetch(r).score or 0.0 for r in load_regions()}
    assert scores["semarang_port_expansion"] > 50 > 5 > scores["jember_southern_coast"]
    assert len({round(s, -1) for s in scores.values()}) >= 5
