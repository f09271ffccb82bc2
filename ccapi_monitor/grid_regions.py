"""Wall-to-wall regions over Java's land: square cells from a packaged Natural Earth outline.

The 29 hand-drawn regions cover the places someone already watches; a grid of equal cells
finds new clearing anywhere on the island. Cells are square in metres (in one UTM zone, so
every cell has the same area), written as lon/lat polygons the regions loader accepts.
The outline's origin, scale and licence are in ``ccapi_monitor/data/README.md`` and in the
GeoJSON's own properties.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyproj
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.regions import MAX_AREA_KM2, MIN_AREA_KM2, Region, parse_regions

#: UTM zone 49S (central meridian 111 E) holds most of Java; at the island's western end
#: (105 E) UTM's scale error reaches 0.5 %, so a 20 km cell there covers about 397 km2.
GRID_EPSG = 32749
#: A cell is kept when at least this share of it is land; below that it is mostly sea.
DEFAULT_MIN_LAND_FRACTION = 0.5


def java_land_path() -> Path:
    """The packaged outline of Java and Madura (Natural Earth 1:10m, public domain)."""
    return Path(str(resources.files("ccapi_monitor") / "data" / "java_land.geojson"))


@cache
def java_land() -> BaseGeometry:
    """Java's land as one (multi)polygon in EPSG:4326, read once per process."""
    document = json.loads(java_land_path().read_text())
    return shapely.union_all([shape(f["geometry"]) for f in document["features"]])


@dataclass(frozen=True)
class GridSpec:
    """How to cut the grid: cell edge in km and the land share a kept cell needs."""

    cell_km: float
    min_land_fraction: float = DEFAULT_MIN_LAND_FRACTION

    def __post_init__(self) -> None:
        area = self.cell_km * self.cell_km
        if not math.isfinite(self.cell_km) or not MIN_AREA_KM2 <= area <= MAX_AREA_KM2:
            low, high = math.sqrt(MIN_AREA_KM2), math.floor(math.sqrt(MAX_AREA_KM2))
            raise InvalidInputError(
                f"--cell-km must be between {low:g} and {high:g} (a region's size limits)"
            )
        if not 0.0 < self.min_land_fraction <= 1.0:
            raise InvalidInputError("--min-land-fraction must be in (0, 1]")


def grid_features(spec: GridSpec, land: BaseGeometry | None = None) -> list[dict[str, Any]]:
    """GeoJSON features of the cells over ``land`` (default: Java), west to east, north to south."""
    land = java_land() if land is None else land
    to_utm = pyproj.Transformer.from_crs(4326, GRID_EPSG, always_xy=True).transform
    to_lonlat = pyproj.Transformer.from_crs(GRID_EPSG, 4326, always_xy=True).transform
    land_m = shapely.transform(land, to_utm, interleaved=False)
    shapely.prepare(land_m)
    size = spec.cell_km * 1000.0
    west, south, east, north = land_m.bounds
    # Snap the origin to whole cells so the same cell keeps its name from one build to the next.
    x0, y0 = math.floor(west / size) * size, math.floor(south / size) * size
    columns, rows = math.ceil((east - x0) / size), math.ceil((north - y0) / size)
    features: list[dict[str, Any]] = []
    for row in range(rows - 1, -1, -1):
        for column in range(columns):
            cell = shapely.box(
                x0 + column * size, y0 + row * size, x0 + (column + 1) * size, y0 + (row + 1) * size
            )
            if not land_m.intersects(cell):
                continue
            fraction = land_m.intersection(cell).area / cell.area
            if fraction < spec.min_land_fraction:
                continue
            lonlat = shapely.transform(cell, to_lonlat, interleaved=False)
            centre = lonlat.centroid
            # A readable, stable name: the cell's size and its centre (south latitude, east longitude).
            name = f"grid{spec.cell_km:g}km_{-centre.y:.2f}s_{centre.x:.2f}e".replace(".", "p")
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "name": name,
                        "province": "java_grid",
                        "focus": "grid",
                        # Equal cells, equal priority: --regions-count then takes them by name.
                        "priority": 3,
                        "tier": 3,
                        "land_fraction": round(fraction, 3),
                    },
                    "geometry": mapping(shapely.set_precision(lonlat, 1e-6)),
                }
            )
    return features


def grid_collection(spec: GridSpec) -> dict[str, Any]:
    """The regions file: a FeatureCollection that ``load_regions`` accepts, with its recipe."""
    features = grid_features(spec)
    document: dict[str, Any] = {
        "type": "FeatureCollection",
        "name": f"java_grid_{spec.cell_km:g}km",
        "grid": {
            "cell_km": spec.cell_km,
            "crs_of_cells": f"EPSG:{GRID_EPSG}",
            "min_land_fraction": spec.min_land_fraction,
            "land": "Natural Earth 1:10m (public domain), ccapi_monitor/data/java_land.geojson",
        },
        "features": features,
    }
    return document


def grid_regions(spec: GridSpec) -> list[Region]:
    """The grid as validated regions (the same checks as any regions file)."""
    return parse_regions(grid_collection(spec))
