"""Regions: loading and validating a GeoJSON FeatureCollection of monitored areas."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import pyproj
import shapely
from shapely.geometry import Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from ccapi_monitor.errors import RegionsFileError

REQUIRED_PROPERTIES: tuple[str, ...] = ("name", "province", "focus", "priority", "tier")
#: Sane limits for one monitored region: a city block is too small to say anything
#: at 10 m, a province is too big for one weekly request.
MIN_AREA_KM2 = 1.0
MAX_AREA_KM2 = 5_000.0
_GEOD = pyproj.Geod(ellps="WGS84")


@dataclass(frozen=True)
class Region:
    """One monitored region, geometry in EPSG:4326 lon/lat."""

    name: str
    province: str
    focus: str
    priority: int
    tier: int
    geometry: BaseGeometry = field(compare=False)

    @cached_property
    def area_km2(self) -> float:
        """Geodesic area of the region polygon."""
        area_m2, _ = _GEOD.geometry_area_perimeter(self.geometry)
        return float(abs(area_m2)) / 1e6

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        west, south, east, north = self.geometry.bounds
        return (west, south, east, north)

    @cached_property
    def utm_epsg(self) -> int:
        """EPSG code of the UTM zone holding the region's centroid (327xx south, 326xx north)."""
        centroid = self.geometry.centroid
        zone = min(60, math.floor((float(centroid.x) + 180.0) / 6.0) + 1)
        return (32700 if centroid.y < 0 else 32600) + zone

    def to_feature(self) -> dict[str, Any]:
        return {
            "type": "Feature",
            "properties": {
                "name": self.name,
                "province": self.province,
                "focus": self.focus,
                "priority": self.priority,
                "tier": self.tier,
            },
            "geometry": mapping(self.geometry),
        }


def default_regions_path() -> Path:
    """The packaged Java regions file (``regions/java.geojson`` in the repository links to it, so there is one file to edit)."""
    return Path(str(resources.files("ccapi_monitor") / "data" / "java.geojson"))


def _fail(where: str, problem: str) -> RegionsFileError:
    return RegionsFileError(f"regions file: {where}: {problem}")


def _parse_feature(index: int, feature: Any) -> Region:
    where = f"feature #{index}"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise _fail(where, "is not a GeoJSON Feature")
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise _fail(where, "has no properties object")
    name = props.get("name")
    if isinstance(name, str) and name.strip():
        where = f"feature #{index} ({name!r})"
    missing = [key for key in REQUIRED_PROPERTIES if props.get(key) in (None, "")]
    if missing:
        raise _fail(where, f"missing required properties: {', '.join(missing)}")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise _fail(where, "name must be letters, digits, '_' or '-'")
    for key in ("priority", "tier"):
        value = props[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(where, f"{key} must be a positive integer, got {value!r}")
    try:
        geom = shape(feature.get("geometry") or {})
    except Exception as exc:  # shapely raises several types for malformed geometry
        raise _fail(where, f"geometry is malformed ({exc})") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise _fail(where, f"geometry must be a non-empty Polygon or MultiPolygon, got {geom.geom_type}")
    if not geom.is_valid:
        raise _fail(where, f"geometry is invalid ({shapely.is_valid_reason(geom)})")
    west, south, east, north = geom.bounds
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise _fail(where, f"coordinates out of lon/lat range: bounds {geom.bounds}")
    region = Region(
        name=name,
        province=str(props["province"]),
        focus=str(props["focus"]),
        priority=int(props["priority"]),
        tier=int(props["tier"]),
        geometry=geom,
    )
    if not MIN_AREA_KM2 <= region.area_km2 <= MAX_AREA_KM2:
        raise _fail(
            where,
            f"area {region.area_km2:.2f} km2 outside {MIN_AREA_KM2:g}..{MAX_AREA_KM2:g} km2",
        )
    return region


def parse_regions(document: Any) -> list[Region]:
    """Validate a parsed GeoJSON document; errors name the feature and the problem."""
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise RegionsFileError("regions file: not a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise RegionsFileError("regions file: FeatureCollection has no features")
    regions = [_parse_feature(i, f) for i, f in enumerate(features)]
    seen: set[str] = set()
    for region in regions:
        if region.name in seen:
            raise RegionsFileError(f"regions file: duplicate region name {region.name!r}")
        seen.add(region.name)
    return regions


def load_regions(path: Path | str | None = None) -> list[Region]:
    """Load and validate a regions file (default: the packaged Java regions)."""
    file = Path(path) if path is not None else default_regions_path()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegionsFileError(f"regions file: cannot read {file}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegionsFileError(
            f"regions file: {file} is not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    return parse_regions(document)


def order_by_priority(regions: list[Region]) -> list[Region]:
    """Priority first (1 is most important), then name: the order of ``--regions-count``."""
    return sorted(regions, key=lambda r: (r.priority, r.name))


def box(west: float, south: float, east: float, north: float) -> Polygon:
    return shapely.box(west, south, east, north)
