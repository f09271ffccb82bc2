"""Infrastructure figures, nearest distances, score and confidence for one region.

Every source hands its parsed :class:`~ccapi_monitor.infrastructure.features.OsmFeature`
list to :func:`build_result`; nothing here knows where the features came from, so
the Overpass and PBF sources give the same figures for the same OSM data.

Geometry rules (docs/infrastructure.md):

* the search area is the region polygon buffered by ``buffer_km`` in the region's UTM
  zone (scale error < 0.1 %), back in lon/lat;
* lengths are geodesic (WGS84, :class:`pyproj.Geod`) of the parts of lines inside the
  search area;
* a nearest distance is the geodesic distance between the region polygon and the
  nearest point of a feature's geometry (0 when they touch or overlap); the pair of
  nearest points is found in UTM metres, then measured on the ellipsoid. Only
  features reaching into the search area count, so a distance is at most
  ``buffer_km`` or ``None``;
* airports and ports are counted as *sites*: features closer than
  :data:`SITE_MERGE_M` to each other (a ``landuse=port`` outline and the ferry
  terminals inside it) are one site.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray
from pyproj.exceptions import ProjError
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from ccapi_monitor.errors import InfrastructureError
from ccapi_monitor.infrastructure.features import Category, OsmFeature
from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.regions import Region

GEOD = pyproj.Geod(ellps="WGS84")
#: Airport/port features closer than this to each other are counted as one site.
SITE_MERGE_M = 1_000.0

Confidence = Literal["high", "medium", "low"]
SourceName = Literal["overpass", "pbf"]

#: Proximity terms of the score: (points, decay distance d0 in km). A term is
#: ``points * exp(-d / d0)``, so an item at the region edge gives full points and one
#: ``d0`` away about 37 %; none within the search area gives 0.
PROXIMITY_TERMS: dict[str, tuple[float, float]] = {
    "motorway": (25.0, 10.0),
    "airport": (15.0, 30.0),
    "port": (10.0, 30.0),
    "railway": (10.0, 10.0),
}
#: Density terms: (points, reference). A term is ``points * min(1, value / reference)``.
#: Road and railway density are km per km^2 of the search area; construction is km.
DENSITY_TERMS: dict[str, tuple[float, float]] = {
    "major_roads_density": (20.0, 0.6),
    "railway_density": (5.0, 0.1),
    "roads_under_construction_km": (15.0, 20.0),
}
#: Data older than this (PBF extract timestamp) lowers confidence to medium.
STALE_DATA_DAYS = 90.0


@dataclass(frozen=True)
class SearchArea:
    """The region buffered by ``buffer_km``: where features are looked for and measured."""

    region: Region
    buffer_km: float
    polygon: BaseGeometry
    area_km2: float

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the buffered region, for bbox queries."""
        west, south, east, north = self.polygon.bounds
        return (west, south, east, north)


@dataclass(frozen=True)
class Measurement:
    """Figures of one region, before scoring."""

    features: dict[str, float]
    nearest_km: dict[str, float | None]
    search_area_km2: float


@lru_cache(maxsize=16)
def _transformers(epsg: int) -> tuple[pyproj.Transformer, pyproj.Transformer]:
    forward = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    inverse = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    return forward, inverse


def _reproject(geometries: NDArray[np.object_], transformer: pyproj.Transformer) -> NDArray[np.object_]:
    def apply(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    out: NDArray[np.object_] = shapely.transform(geometries, apply)
    return out


def _as_array(geometries: Sequence[BaseGeometry]) -> NDArray[np.object_]:
    array = np.empty(len(geometries), dtype=object)
    array[:] = list(geometries)
    return array


@lru_cache(maxsize=256)
def _buffered(wkb: bytes, epsg: int, buffer_km: float) -> tuple[BaseGeometry, float]:
    forward, inverse = _transformers(epsg)
    projected = _reproject(_as_array([shapely.from_wkb(wkb)]), forward)[0]
    buffered = projected.buffer(buffer_km * 1000.0, quad_segs=16) if buffer_km > 0 else projected
    polygon = _reproject(_as_array([buffered]), inverse)[0]
    area_m2, _ = GEOD.geometry_area_perimeter(polygon)
    return polygon, abs(area_m2) / 1e6


def search_area(region: Region, buffer_km: float) -> SearchArea:
    """The region polygon buffered by ``buffer_km`` (metres in the region's UTM zone).

    Cached by geometry, not by region name: regions compare equal without their geometry.
    """
    polygon, area_km2 = _buffered(region.geometry.wkb, region.utm_epsg, float(buffer_km))
    return SearchArea(region, buffer_km, polygon, area_km2)


def _line_length_km(geometry: BaseGeometry) -> float:
    lines = [g for g in shapely.get_parts(geometry) if g.geom_type in ("LineString", "LinearRing")]
    return sum(GEOD.geometry_length(line) for line in lines) / 1000.0


def clipped_length_km(area: SearchArea, geometries: Sequence[BaseGeometry]) -> float:
    """Geodesic length of the parts of ``geometries`` inside the search area."""
    if not geometries:
        return 0.0
    clipped = shapely.intersection(_as_array(geometries), area.polygon)
    return float(sum(_line_length_km(g) for g in clipped if not g.is_empty))


def nearest_km(area: SearchArea, geometries: Sequence[BaseGeometry]) -> float | None:
    """Geodesic km from the region polygon to the nearest point of any geometry.

    0 when one touches the region; ``None`` when there is none. Candidates are ranked
    by planar UTM distance and the few tied within 1 % + 50 m measured on the ellipsoid.
    """
    if not geometries:
        return None
    region = area.region.geometry
    array = _as_array(geometries)
    if bool(shapely.intersects(array, region).any()):
        return 0.0
    forward, inverse = _transformers(area.region.utm_epsg)
    region_m = _reproject(_as_array([region]), forward)[0]
    array_m = _reproject(array, forward)
    planar = shapely.distance(region_m, array_m)
    cutoff = float(planar.min()) * 1.01 + 50.0
    best = math.inf
    for geometry_m in array_m[planar <= cutoff]:
        on_region, on_feature = nearest_points(region_m, geometry_m)
        (lon1, lon2), (lat1, lat2) = inverse.transform(
            [on_region.x, on_feature.x], [on_region.y, on_feature.y]
        )
        _, _, metres = GEOD.inv(lon1, lat1, lon2, lat2)
        best = min(best, float(metres))
    return best / 1000.0


def count_sites(area: SearchArea, geometries: Sequence[BaseGeometry]) -> int:
    """Number of distinct sites: geometries within :data:`SITE_MERGE_M` of each other merge."""
    if not geometries:
        return 0
    forward, _ = _transformers(area.region.utm_epsg)
    grown = shapely.buffer(_reproject(_as_array(geometries), forward), SITE_MERGE_M / 2.0)
    return len(shapely.get_parts(shapely.union_all(grown)))


def _select(
    features: Sequence[OsmFeature], category: Category, where: Callable[[OsmFeature], bool] | None = None
) -> list[BaseGeometry]:
    return [f.geometry for f in features if f.category == category and (where is None or where(f))]


def measure(region: Region, features: Sequence[OsmFeature], buffer_km: float) -> Measurement:
    """Lengths, site counts and nearest distances of ``features`` around ``region``."""
    area = search_area(region, buffer_km)
    unique = list({f.osm_id: f for f in features}.values())
    if unique:
        inside = shapely.intersects(_as_array([f.geometry for f in unique]), area.polygon)
        unique = [f for f, keep in zip(unique, inside, strict=True) if keep]
    roads = _select(unique, "major_road")
    railways = _select(unique, "railway")
    airports = _select(unique, "airport")
    ports = _select(unique, "port")
    figures = {
        "major_roads_km": round(clipped_length_km(area, roads), 3),
        "roads_under_construction_km": round(
            clipped_length_km(area, _select(unique, "road_construction")), 3
        ),
        "railway_km": round(clipped_length_km(area, railways), 3),
        "airports": float(count_sites(area, airports)),
        "ports": float(count_sites(area, ports)),
    }
    nearest = {
        "motorway": nearest_km(area, _select(unique, "major_road", lambda f: f.is_motorway)),
        "airport": nearest_km(area, airports),
        "port": nearest_km(area, ports),
        "railway": nearest_km(area, railways),
    }
    rounded = {k: (None if v is None else round(v, 3)) for k, v in nearest.items()}
    return Measurement(figures, rounded, area.area_km2)


def infrastructure_score(
    features: Mapping[str, float], nearest: Mapping[str, float | None], search_area_km2: float
) -> float:
    """0..100: proximity terms ``w * exp(-d / d0)`` plus capped density terms.

    Weights sum to 100, every term is non-decreasing in its figure (non-increasing in
    its distance) and a missing item contributes 0, so more or closer infrastructure
    never lowers the score. Constants: :data:`PROXIMITY_TERMS`, :data:`DENSITY_TERMS`.
    """
    total = 0.0
    for key, (points, d0_km) in PROXIMITY_TERMS.items():
        distance = nearest.get(key)
        if distance is not None:
            total += points * math.exp(-max(distance, 0.0) / d0_km)
    area = max(search_area_km2, 1e-9)
    values = {
        "major_roads_density": features.get("major_roads_km", 0.0) / area,
        "railway_density": features.get("railway_km", 0.0) / area,
        "roads_under_construction_km": features.get("roads_under_construction_km", 0.0),
    }
    for key, (points, reference) in DENSITY_TERMS.items():
        total += points * min(1.0, max(values[key], 0.0) / reference)
    return round(min(100.0, max(0.0, total)), 1)


def confidence(measurement: Measurement, *, stale: bool, data_age_days: float | None) -> Confidence:
    """``low`` when no major road was found (every settled part of Java has one within a
    few km, so the data is incomplete or the query missed), ``medium`` for a stale cache
    answer or an extract older than :data:`STALE_DATA_DAYS`, else ``high``."""
    if measurement.features["major_roads_km"] <= 0.0:
        return "low"
    if stale or (data_age_days is not None and data_age_days > STALE_DATA_DAYS):
        return "medium"
    return "high"


def build_result(
    region: Region,
    features: Sequence[OsmFeature],
    *,
    source: SourceName,
    buffer_km: float,
    fetched_at: datetime,
    stale: bool = False,
    data_age_days: float | None = None,
) -> InfrastructureResult:
    """The :class:`InfrastructureResult` every source returns for ``region``.

    A geometry the libraries cannot handle is an :class:`InfrastructureError`, so that
    bad OSM data costs the region its enrichment, never its result.
    """
    try:
        measurement = measure(region, features, buffer_km)
    except (GEOSException, ProjError, ValueError) as exc:
        raise InfrastructureError(f"measuring OSM features around {region.name} failed: {exc}") from None
    return InfrastructureResult(
        source=source,
        status="stale" if stale else "ok",
        features=measurement.features,
        nearest_km=measurement.nearest_km,
        score=infrastructure_score(measurement.features, measurement.nearest_km, measurement.search_area_km2),
        confidence=confidence(measurement, stale=stale, data_age_days=data_age_days),
        fetched_at=fetched_at.isoformat(timespec="seconds"),
    )
