"""The OpenStreetMap infrastructure interface: one region in, one :class:`InfrastructureResult` out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Final

import shapely

from ccapi_monitor.infrastructure.features import OsmFeature
from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.regions import Region

#: OSM line categories drawn on region maps for context.
MAP_LINE_CATEGORIES: Final = ("major_road", "road_construction", "railway")
#: Simplification for drawing (about 30 m): a region map has ~40 m pixels.
MAP_SIMPLIFY_DEG: Final = 0.0003


@dataclass(frozen=True)
class MapLine:
    """An OSM line for a region map: its category and lon/lat vertices, clipped to the region's box."""

    kind: str
    coordinates: tuple[tuple[float, float], ...]


def map_lines(region: Region, features: Iterable[OsmFeature]) -> list[MapLine]:
    """The major roads, roads under construction and railways of ``features`` crossing ``region``'s box.

    Lines are clipped to the box and simplified, so a page carries a few hundred
    vertices a region.
    """
    frame = shapely.box(*region.geometry.bounds)
    out = []
    for feature in features:
        if feature.category not in MAP_LINE_CATEGORIES:
            continue
        clipped = shapely.intersection(feature.geometry, frame)
        for part in shapely.get_parts(clipped.simplify(MAP_SIMPLIFY_DEG)):
            if part.geom_type == "LineString" and len(part.coords) >= 2:
                out.append(MapLine(feature.category, tuple((float(x), float(y)) for x, y, *_ in part.coords)))
    return out


class InfrastructureSource(ABC):
    """Enrichment: ``fetch`` raises :class:`~ccapi_monitor.errors.InfrastructureError` on
    failure and the runner records it on the region without failing the region."""

    name: ClassVar[str]

    @abstractmethod
    def fetch(self, region: Region) -> InfrastructureResult:
        """Infrastructure features, nearest distances and score around ``region``."""

    def preflight(self) -> list[str]:
        """Problems that would stop the source working, one line each."""
        return []

    def map_lines(self, region: Region) -> list[MapLine]:
        """Lines to draw on the region's map from what this run already read (none by default).

        Never fetches anything new and never raises: the map is context, not a result.
        """
        return []
