"""Build ``ccapi_monitor/data/demo_java.osm.pbf``: a small SYNTHETIC infrastructure extract for the demo.

Not OpenStreetMap data: an invented network drawn from rough waypoints near Java's
cities, so ``make demo`` scores infrastructure offline and the scores are not tier-only.
It is shaped like the real pattern (a toll road and a railway along the north coast, a
southern railway, a few trunk and primary roads inland, airports and ports near the big
cities, one toll road under construction), so north-coast regions score high and the
south coast and highlands low. Every number derived from it is as synthetic as the
demo's imagery, and the report says so.

Run ``python tools/build_demo_osm.py`` to rebuild; output is deterministic.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import osmium

OUT = Path(__file__).resolve().parent.parent / "ccapi_monitor" / "data" / "demo_java.osm.pbf"
STEP_DEG = 0.02  # a node every ~2 km along each line
JITTER_DEG = 0.004

Line = tuple[dict[str, str], list[tuple[float, float]]]

#: (tags, waypoints lon/lat). Waypoints are rough; lines are densified and jittered.
LINES: list[Line] = [
    (  # north-coast toll road: Merak - Jakarta - Cikampek - Cirebon - Semarang
        {"highway": "motorway", "name": "Demo North Toll Road", "demo:synthetic": "yes"},
        [
            (106.0, -5.95),
            (106.4, -6.12),
            (106.7, -6.2),
            (106.85, -6.23),
            (107.05, -6.27),
            (107.35, -6.35),
            (107.75, -6.45),
            (108.2, -6.62),
            (108.6, -6.75),
            (109.1, -6.93),
            (109.7, -6.95),
            (110.4, -7.0),
        ],
    ),
    (  # toll road Semarang - Solo
        {"highway": "motorway", "name": "Demo Central Toll Road", "demo:synthetic": "yes"},
        [(110.4, -7.0), (110.45, -7.2), (110.6, -7.4), (110.8, -7.55)],
    ),
    (  # toll road Surabaya - Gresik - Sidoarjo
        {"highway": "motorway", "name": "Demo East Toll Road", "demo:synthetic": "yes"},
        [(112.65, -7.05), (112.72, -7.2), (112.73, -7.35), (112.72, -7.5)],
    ),
    (  # toll road under construction: Probolinggo - Banyuwangi
        {
            "highway": "construction",
            "construction": "motorway",
            "name": "Demo East Extension",
            "demo:synthetic": "yes",
        },
        [(113.2, -7.75), (113.6, -7.8), (114.0, -7.95), (114.35, -8.2)],
    ),
    (  # Jakarta - Bogor - Bandung trunk
        {"highway": "trunk", "name": "Demo Trunk West", "demo:synthetic": "yes"},
        [(106.85, -6.23), (106.82, -6.55), (107.1, -6.8), (107.6, -6.9), (107.75, -6.85)],
    ),
    (  # north-coast primary road Semarang - Surabaya
        {"highway": "primary", "name": "Demo Pantura", "demo:synthetic": "yes"},
        [(110.4, -7.0), (110.9, -6.8), (111.5, -6.85), (112.1, -6.9), (112.65, -7.1)],
    ),
    (  # Yogyakarta - Magelang - Semarang primary road
        {"highway": "primary", "name": "Demo Kedu Road", "demo:synthetic": "yes"},
        [(110.37, -7.8), (110.22, -7.48), (110.4, -7.15)],
    ),
    (  # Surabaya - Malang primary road
        {"highway": "primary", "name": "Demo Malang Road", "demo:synthetic": "yes"},
        [(112.72, -7.5), (112.65, -7.95)],
    ),
    (  # north-coast railway Jakarta - Cirebon - Semarang - Surabaya
        {"railway": "rail", "name": "Demo North Line", "demo:synthetic": "yes"},
        [
            (106.82, -6.13),
            (107.3, -6.3),
            (107.75, -6.5),
            (108.55, -6.72),
            (109.15, -6.87),
            (110.4, -6.97),
            (111.3, -6.95),
            (112.2, -7.1),
            (112.75, -7.25),
        ],
    ),
    (  # southern railway Bandung - Purwokerto - Yogyakarta - Solo
        {"railway": "rail", "name": "Demo South Line", "demo:synthetic": "yes"},
        [(107.6, -6.92), (108.4, -7.3), (109.25, -7.42), (109.9, -7.7), (110.37, -7.79), (110.82, -7.56)],
    ),
]
#: (tags, lon, lat) of point features.
POINTS: list[tuple[dict[str, str], float, float]] = [
    ({"aeroway": "aerodrome", "name": "Demo Airport West"}, 106.65, -6.13),
    ({"aeroway": "aerodrome", "name": "Demo Airport Bandung"}, 107.58, -6.9),
    ({"aeroway": "aerodrome", "name": "Demo Airport Semarang"}, 110.37, -6.97),
    ({"aeroway": "aerodrome", "name": "Demo Airport Kulon Progo"}, 110.06, -7.9),
    ({"aeroway": "aerodrome", "name": "Demo Airport Surabaya"}, 112.79, -7.38),
    ({"landuse": "port", "name": "Demo Port Jakarta"}, 106.89, -6.1),
    ({"landuse": "port", "name": "Demo Port Merak"}, 106.0, -5.93),
    ({"landuse": "port", "name": "Demo Port Semarang"}, 110.42, -6.95),
    ({"landuse": "port", "name": "Demo Port Surabaya"}, 112.73, -7.2),
    ({"amenity": "ferry_terminal", "name": "Demo Ferry Ketapang"}, 114.4, -8.14),
]


def densify(points: list[tuple[float, float]], rng: random.Random) -> list[tuple[float, float]]:
    out = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        steps = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / STEP_DEG))
        for i in range(1, steps + 1):
            t = i / steps
            jitter = JITTER_DEG if i < steps else 0.0
            out.append(
                (
                    round(x0 + t * (x1 - x0) + rng.uniform(-jitter, jitter), 6),
                    round(y0 + t * (y1 - y0) + rng.uniform(-jitter, jitter), 6),
                )
            )
    return out


def build(path: Path) -> None:
    rng = random.Random(17)
    path.unlink(missing_ok=True)
    writer = osmium.SimpleWriter(str(path))
    node_id = way_id = 0
    try:
        for tags, lon, lat in POINTS:
            node_id += 1
            writer.add_node(
                osmium.osm.mutable.Node(
                    id=node_id, location=(lon, lat), tags={**tags, "demo:synthetic": "yes"}
                )
            )
        for tags, waypoints in LINES:
            refs = []
            for lon, lat in densify(waypoints, rng):
                node_id += 1
                writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat)))
                refs.append(node_id)
            way_id += 1
            writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=refs, tags=tags))
    finally:
        writer.close()


if __name__ == "__main__":
    build(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
