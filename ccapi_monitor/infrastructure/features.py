"""The OSM feature model and tag classification shared by every OSM source.

Both the Overpass and the PBF source turn raw OSM objects into :class:`OsmFeature`
through :func:`classify` and the geometry helpers here, so the same object gives
the same feature (and therefore the same figures) whichever source read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

Category = Literal["major_road", "road_construction", "railway", "airport", "port"]
Coord = tuple[float, float]  # lon, lat

#: Road classes that count as "major"; each also counts with its ``_link`` ramps.
MAJOR_ROAD_CLASSES: tuple[str, ...] = ("motorway", "trunk", "primary", "secondary")
RAILWAY_KINDS: tuple[str, ...] = ("rail", "light_rail", "construction")
#: Categories whose objects are areas when closed (roads and railways never are).
AREA_CATEGORIES: frozenset[Category] = frozenset({"airport", "port"})
#: Relation types whose outer rings make an area (what osmium's area builder accepts).
AREA_RELATION_TYPES: frozenset[str] = frozenset({"multipolygon", "boundary"})


def _road_class(value: str | None) -> str | None:
    if value is None:
        return None
    base = value.removesuffix("_link")
    return value if base in MAJOR_ROAD_CLASSES else None


@dataclass(frozen=True)
class OsmFeature:
    """One classified OSM object with its geometry in EPSG:4326 lon/lat."""

    category: Category
    #: Finer class: the road class (``motorway_link``...), railway kind, or port tag.
    kind: str
    #: ``n123`` / ``w123`` / ``r123``: unique across object types.
    osm_id: str
    geometry: BaseGeometry = field(compare=False)

    @property
    def is_motorway(self) -> bool:
        """Motorways and their ramps: in Java these are the toll roads (jalan tol)."""
        return self.category == "major_road" and self.kind.removesuffix("_link") == "motorway"


def classify(tags: Mapping[str, str]) -> tuple[Category, str] | None:
    """The category and kind of an object from its tags, or ``None`` when it is not wanted.

    Objects matching several rules take the first: roads, roads under construction,
    railways, aerodromes, ports.
    """
    highway = tags.get("highway")
    road = _road_class(highway)
    if road is not None:
        return "major_road", road
    if highway == "construction":
        planned = _road_class(tags.get("construction"))
        if planned is not None:
            return "road_construction", planned
    railway = tags.get("railway")
    if railway in RAILWAY_KINDS:
        return "railway", railway
    if tags.get("aeroway") == "aerodrome":
        return "airport", "aerodrome"
    if tags.get("landuse") == "port":
        return "port", "landuse_port"
    if tags.get("harbour") == "yes":
        return "port", "harbour"
    if tags.get("amenity") == "ferry_terminal":
        return "port", "ferry_terminal"
    return None


#: Exact (key, value) pairs that can make :func:`classify` return something; used to
#: pre-filter objects in C++ before they reach Python (PBF) and documented in the query.
TAG_PAIRS: tuple[tuple[str, str], ...] = (
    *(("highway", c) for c in MAJOR_ROAD_CLASSES),
    *(("highway", f"{c}_link") for c in MAJOR_ROAD_CLASSES),
    ("highway", "construction"),
    *(("railway", k) for k in RAILWAY_KINDS),
    ("aeroway", "aerodrome"),
    ("landuse", "port"),
    ("harbour", "yes"),
    ("amenity", "ferry_terminal"),
)


def node_feature(osm_id: int, tags: Mapping[str, str], lon: float, lat: float) -> OsmFeature | None:
    """A feature for a tagged node (aerodromes and ports mapped as points)."""
    found = classify(tags)
    if found is None or found[0] not in AREA_CATEGORIES:
        return None
    return OsmFeature(found[0], found[1], f"n{osm_id}", Point(lon, lat))


def way_feature(osm_id: int, tags: Mapping[str, str], coords: Sequence[Coord]) -> OsmFeature | None:
    """A feature for a way: a line, or a polygon for a closed aerodrome/port outline.

    ``coords`` are the way's node locations in order; nodes the source could not
    locate must already be left out. Lines with fewer than two distinct located nodes
    are dropped; an aerodrome/port way collapsed to one location becomes a point.
    """
    found = classify(tags)
    if found is None:
        return None
    category, kind = found
    points = [(float(x), float(y)) for x, y in coords]
    if len(points) < 2 or (len(set(points)) < 2 and category not in AREA_CATEGORIES):
        return None
    closed = len(points) >= 4 and points[0] == points[-1]
    geometry: BaseGeometry
    if category in AREA_CATEGORIES and closed:
        geometry = shapely.make_valid(Polygon(points))
    elif category in AREA_CATEGORIES and len(set(points)) == 1:
        geometry = Point(points[0])
    else:
        geometry = LineString(points)
    return OsmFeature(category, kind, f"w{osm_id}", geometry)


def relation_feature(
    osm_id: int, tags: Mapping[str, str], outer_rings: Iterable[Sequence[Coord]]
) -> OsmFeature | None:
    """A feature for a multipolygon relation (large aerodromes and ports), outer rings only.

    Both sources drop inner rings so that they agree exactly; a hole only matters for
    a region lying entirely inside an airport's hole, which does not happen.
    """
    found = classify(tags)
    if found is None or found[0] not in AREA_CATEGORIES:
        return None
    polygons = [Polygon(ring) for ring in outer_rings if len(ring) >= 4]
    if not polygons:
        return None
    geometry = shapely.make_valid(MultiPolygon(polygons) if len(polygons) > 1 else polygons[0])
    return OsmFeature(found[0], found[1], f"r{osm_id}", geometry)


def assemble_rings(lines: Iterable[Sequence[Coord]]) -> list[list[Coord]]:
    """Closed rings from the (possibly split) outer member ways of a multipolygon.

    Overpass returns member ways one by one; osmium assembles them itself. Rings that
    do not close are dropped, as osmium does.
    """
    segments = [LineString(line) for line in lines if len(line) >= 2]
    if not segments:
        return []
    faces = shapely.get_parts(shapely.polygonize(segments))
    return [[(float(x), float(y)) for x, y in face.exterior.coords] for face in faces]
