"""The analysis grid of one region: its UTM zone at ``scale_m``, spatial strips, areas.

Every array backend computes on this grid, so equal-area hectares, the region mask
and the polygons' coordinates all come from one place (docs/design/detection.md, steps 7-8).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyproj
import shapely
from affine import Affine
from numpy.typing import NDArray
from rasterio.features import geometry_mask
from shapely.geometry.base import BaseGeometry

from ccapi_monitor.regions import Region


@functools.lru_cache(maxsize=64)
def _transformer(src_epsg: int, dst_epsg: int) -> pyproj.Transformer:
    """One transformer per pair of zones: creating one costs more than projecting a polygon, and
    polygonizing a region projects hundreds (pyproj >= 3.1 transformers are thread-safe)."""
    return pyproj.Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)


def reproject_geometry(geometry: BaseGeometry, src_epsg: int, dst_epsg: int) -> BaseGeometry:
    """A shapely geometry from one CRS to another (x/y = lon/lat for EPSG:4326)."""
    transform = _transformer(src_epsg, dst_epsg).transform
    return shapely.transform(geometry, lambda x, y: transform(x, y), interleaved=False)


@dataclass(frozen=True)
class RegionGrid:
    """A north-up grid in a UTM zone; origin snapped to ``2 * scale_m`` so 20 m bands align."""

    epsg: int
    scale_m: float
    west: float
    north: float
    width: int
    height: int

    @classmethod
    def for_geometry(
        cls, geometry: BaseGeometry, epsg: int, scale_m: float, margin_px: int = 0
    ) -> RegionGrid:
        """Smallest snapped grid covering ``geometry`` (lon/lat) in ``epsg``, plus a margin."""
        projected = reproject_geometry(geometry, 4326, epsg)
        west, south, east, north = projected.bounds
        snap = 2.0 * scale_m
        pad = margin_px * scale_m
        west = math.floor((west - pad) / snap) * snap
        south = math.floor((south - pad) / snap) * snap
        east = math.ceil((east + pad) / snap) * snap
        north = math.ceil((north + pad) / snap) * snap
        return cls(
            epsg=epsg,
            scale_m=scale_m,
            west=west,
            north=north,
            width=round((east - west) / scale_m),
            height=round((north - south) / scale_m),
        )

    @classmethod
    def for_region(cls, region: Region, scale_m: float) -> RegionGrid:
        return cls.for_geometry(region.geometry, region.utm_epsg, scale_m)

    def coarsened(self, factor: int) -> RegionGrid:
        """The same extent at ``factor`` times the pixel size (the 20 m grid of a 10 m grid)."""
        return RegionGrid(
            epsg=self.epsg,
            scale_m=self.scale_m * factor,
            west=self.west,
            north=self.north,
            width=self.width // factor,
            height=self.height // factor,
        )

    @property
    def transform(self) -> Affine:
        return Affine(self.scale_m, 0.0, self.west, 0.0, -self.scale_m, self.north)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (
            self.west,
            self.north - self.height * self.scale_m,
            self.west + self.width * self.scale_m,
            self.north,
        )

    def strips(self, rows: int) -> Iterator[tuple[int, int]]:
        """Row ranges ``(start, stop)`` of at most ``rows`` rows: the spatial tiles of a run."""
        for start in range(0, self.height, rows):
            yield start, min(self.height, start + rows)

    def project(self, geometry: BaseGeometry) -> BaseGeometry:
        """Lon/lat geometry to this grid's CRS."""
        return reproject_geometry(geometry, 4326, self.epsg)

    def unproject(self, geometry: BaseGeometry) -> BaseGeometry:
        """Geometry in this grid's CRS to lon/lat."""
        return reproject_geometry(geometry, self.epsg, 4326)

    def mask(self, geometry: BaseGeometry) -> NDArray[np.bool_]:
        """True for pixels whose centre lies inside the lon/lat ``geometry``."""
        return np.asarray(
            geometry_mask(
                [self.project(geometry)], out_shape=self.shape, transform=self.transform, invert=True
            )
        )

    @cached_property
    def pixel_area_ha(self) -> float:
        """True (ellipsoidal) area of one pixel near the grid centre, in hectares.

        UTM is conformal, not equal-area: 3 degrees from the central meridian a map
        square metre is 0.2 % larger than on the ground, so the map area is divided by
        the projection's areal scale at the grid centre.
        """
        west, south, east, north = self.bounds
        lon, lat = _transformer(self.epsg, 4326).transform((west + east) / 2, (south + north) / 2)
        areal_scale = pyproj.Proj(f"EPSG:{self.epsg}").get_factors(lon, lat).areal_scale
        return self.scale_m * self.scale_m / 10_000.0 / float(areal_scale)
