"""One description of OSM test data, written both as an ``.osm.pbf`` and as an Overpass answer.

Tests describe nodes, ways and relations once (lon/lat around Java); :class:`OsmData`
writes the same objects with pyosmium and renders the equivalent ``out geom`` JSON,
so both sources can be checked against each other and against geodesic expectations.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import osmium
import shapely

from ccapi_monitor.regions import Region

#: Replication timestamp of the test data: a day old, so confidence is not lowered for age.
DATA_TIMESTAMP = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class OsmNode:
    id: int
    lon: float
    lat: float
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class OsmWay:
    id: int
    coords: list[tuple[float, float]]
    tags: dict[str, str] = field(default_factory=dict)
    closed: bool = False  # last node repeats the first node's id


@dataclass
class OsmRelation:
    id: int
    outer_way_ids: list[int]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class OsmData:
    nodes: list[OsmNode] = field(default_factory=list)
    ways: list[OsmWay] = field(default_factory=list)
    relations: list[OsmRelation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)

    def node(self, lon: float, lat: float, **tags: str) -> OsmNode:
        node = OsmNode(900_000 + next(self._ids), lon, lat, tags)
        self.nodes.append(node)
        return node

    def way(self, coords: list[tuple[float, float]], **tags: str) -> OsmWay:
        closed = len(coords) >= 4 and coords[0] == coords[-1]
        way = OsmWay(next(self._ids), coords, tags, closed)
        self.ways.append(way)
        return way

    def line(
        self, start: tuple[float, float], end: tuple[float, float], steps: int = 10, **tags: str
    ) -> OsmWay:
        """A straight line in lon/lat with ``steps`` segments."""
        (x0, y0), (x1, y1) = start, end
        coords = [(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(steps + 1)]
        return self.way(coords, **tags)

    def box_way(self, west: float, south: float, east: float, north: float, **tags: str) -> OsmWay:
        return self.way([(west, south), (east, south), (east, north), (west, north), (west, south)], **tags)

    def relation(self, outer: list[OsmWay], **tags: str) -> OsmRelation:
        relation = OsmRelation(next(self._ids), [w.id for w in outer], tags)
        self.relations.append(relation)
        return relation

    # -- way node ids: one node per coordinate, the ring's last repeats the first ----

    def _way_node_ids(self, way: OsmWay) -> list[int]:
        ids = [way.id * 1000 + i for i in range(len(way.coords))]
        if way.closed:
            ids[-1] = ids[0]
        return ids

    def write_pbf(self, path: Path, timestamp: str = DATA_TIMESTAMP) -> Path:
        header = osmium.io.Header()
        header.set("osmosis_replication_timestamp", timestamp)
        nodes: dict[int, tuple[tuple[float, float], dict[str, str]]] = {
            n.id: ((n.lon, n.lat), n.tags) for n in self.nodes
        }
        for way in self.ways:
            for node_id, coord in zip(self._way_node_ids(way), way.coords, strict=True):
                nodes.setdefault(node_id, (coord, {}))
        writer = osmium.SimpleWriter(str(path), header=header, overwrite=True)
        try:
            for node_id in sorted(nodes):
                location, tags = nodes[node_id]
                writer.add_node(osmium.osm.mutable.Node(id=node_id, location=location, tags=tags, version=1))
            for way in sorted(self.ways, key=lambda w: w.id):
                writer.add_way(
                    osmium.osm.mutable.Way(id=way.id, nodes=self._way_node_ids(way), tags=way.tags, version=1)
                )
            for rel in sorted(self.relations, key=lambda r: r.id):
                members = [("w", way_id, "outer") for way_id in rel.outer_way_ids]
                writer.add_relation(
                    osmium.osm.mutable.Relation(id=rel.id, members=members, tags=rel.tags, version=1)
                )
        finally:
            writer.close()
        return path

    def overpass_answer(self, bounds: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
        """The ``[out:json] ... out geom;`` answer a server holding this data would give.

        ``bounds`` (west, south, east, north) keeps only objects touching the box, as the
        server's bbox filter does; ``None`` returns everything.
        """
        box = shapely.box(*bounds) if bounds else None

        def keep(geometry: Any) -> bool:
            return box is None or bool(shapely.intersects(box, geometry))

        def geom(coords: list[tuple[float, float]]) -> list[dict[str, float]]:
            return [{"lat": round(lat, 7), "lon": round(lon, 7)} for lon, lat in coords]

        def way_bounds(coords: list[tuple[float, float]]) -> dict[str, float]:
            lons, lats = zip(*coords, strict=True)
            return {"minlat": min(lats), "minlon": min(lons), "maxlat": max(lats), "maxlon": max(lons)}

        elements: list[dict[str, Any]] = []
        for n in self.nodes:
            if n.tags and keep(shapely.Point(n.lon, n.lat)):
                elements.append({"type": "node", "id": n.id, "lat": n.lat, "lon": n.lon, "tags": n.tags})
        ways_by_id = {w.id: w for w in self.ways}
        for w in self.ways:
            if w.tags and keep(shapely.LineString(w.coords)):
                elements.append(
                    {
                        "type": "way",
                        "id": w.id,
                        "bounds": way_bounds(w.coords),
                        "nodes": self._way_node_ids(w),
                        "geometry": geom(w.coords),
                        "tags": w.tags,
                    }
                )
        for r in self.relations:
            members = [ways_by_id[i] for i in r.outer_way_ids]
            if keep(shapely.MultiLineString([m.coords for m in members])):
                elements.append(
                    {
                        "type": "relation",
                        "id": r.id,
                        "bounds": way_bounds([c for m in members for c in m.coords]),
                        "members": [
                            {"type": "way", "ref": m.id, "role": "outer", "geometry": geom(m.coords)}
                            for m in members
                        ],
                        "tags": r.tags,
                    }
                )
        return {
            "version": 0.6,
            "generator": "Overpass API 0.7.62.1 084b4234",
            "osm3s": {
                "timestamp_osm_base": DATA_TIMESTAMP,
                "copyright": "The data included in this document is from www.openstreetmap.org. "
                "The data is made available under ODbL.",
            },
            "elements": elements,
        }


def region(name: str, west: float, south: float, east: float, north: float) -> Region:
    return Region(name, "west_java", "urban", 1, 1, shapely.box(west, south, east, north))


# -- the shared scenario around lat -6.2 (east of Jakarta) -------------------------------------

#: The motorway runs east-west along this latitude from MOTORWAY_WEST to MOTORWAY_EAST.
MOTORWAY_LAT = -6.2
MOTORWAY_WEST, MOTORWAY_EAST = 106.5, 107.5
#: Region crossed by the motorway; REGION_SOUTH lies 0.1 deg south of it.
ACROSS = (106.9, -6.3, 107.1, -6.1)
SOUTH = (106.9, -6.5, 107.1, -6.3)
AIRPORT_NODE = (107.2, -6.4)  # 0.1 deg east of SOUTH's east edge
PORT_BOX = (106.95, -6.13, 106.97, -6.11)
FERRY_NODE = (106.96, -6.12)  # inside PORT_BOX: same site
HARBOUR_NODE = (107.0, -6.08)  # ~3.5 km from PORT_BOX: its own site
RAIL_LON = 107.3  # light rail running north-south from -6.9 to -5.9
CONSTRUCTION = ((106.95, -6.45), (107.05, -6.45))  # inside SOUTH


def java_scenario() -> OsmData:
    """Motorway, link, construction, rail, aerodromes (node, way, relation) and ports."""
    data = OsmData()
    data.line(
        (MOTORWAY_WEST, MOTORWAY_LAT), (MOTORWAY_EAST, MOTORWAY_LAT), steps=20, highway="motorway", ref="Tol"
    )
    data.line((107.0, MOTORWAY_LAT), (107.0, -6.21), steps=1, highway="motorway_link")
    data.line((106.8, -6.6), (107.2, -6.6), steps=4, highway="residential")  # not wanted
    data.line(*CONSTRUCTION, steps=5, highway="construction", construction="motorway")
    data.line((106.95, -6.4), (107.05, -6.4), steps=2, highway="construction", construction="residential")
    data.line((RAIL_LON, -6.9), (RAIL_LON, -5.9), steps=20, railway="light_rail")
    data.line((106.6, -6.0), (106.6, -5.9), steps=2, railway="abandoned")  # not wanted
    data.node(*AIRPORT_NODE, aeroway="aerodrome", name="Lapangan Terbang")
    data.box_way(108.5, -7.0, 108.6, -6.9, aeroway="aerodrome")  # far outside every search area
    data.box_way(*PORT_BOX, landuse="port")
    data.node(*FERRY_NODE, amenity="ferry_terminal")
    data.node(*HARBOUR_NODE, harbour="yes")
    # A multipolygon aerodrome split into two outer ways, west of ACROSS.
    three_sides = data.way([(106.70, -6.25), (106.75, -6.25), (106.75, -6.20), (106.70, -6.20)])
    closing_side = data.way([(106.70, -6.20), (106.70, -6.25)])
    data.relation([three_sides, closing_side], type="multipolygon", aeroway="aerodrome", name="Halim test")
    return data
