"""Infrastructure from a local ``.osm.pbf`` extract (pyosmium), so Java runs offline.

The file is read once per source, on the first region, and its features kept in
memory behind an STR-tree; regions running concurrently in threads wait for that one
read and then only query the tree. Reading filters objects in C++ (osmium tag and id
filters) so that only wanted objects reach Python:

1. relations, to find multipolygon aerodromes/ports and their outer member ways;
2. nodes and ways with a location index (``flex_mem``), giving tagged nodes and ways
   their coordinates;
3. only if step 1 found relations: their member ways, for the outer rings.

Rings are assembled by the same code as for Overpass answers, so both sources agree.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import osmium
import shapely
import structlog
from shapely.strtree import STRtree

from ccapi_monitor.errors import InfrastructureError
from ccapi_monitor.infrastructure.base import InfrastructureSource, MapLine, map_lines
from ccapi_monitor.infrastructure.features import (
    AREA_RELATION_TYPES,
    TAG_PAIRS,
    Coord,
    OsmFeature,
    assemble_rings,
    classify,
    node_feature,
    relation_feature,
    way_feature,
)
from ccapi_monitor.infrastructure.measure import build_result, search_area
from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.regions import Region

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Relation:
    osm_id: int
    tags: dict[str, str]
    outer_way_ids: tuple[int, ...]


@dataclass(frozen=True)
class _FeatureIndex:
    features: list[OsmFeature]
    tree: STRtree
    read_at: datetime
    data_timestamp: datetime | None

    def within(self, bounds: tuple[float, float, float, float]) -> list[OsmFeature]:
        hits = self.tree.query(shapely.box(*bounds))
        return [self.features[i] for i in sorted(hits)]


def _way_coords(way: osmium.osm.Way) -> list[Coord]:
    return [(n.lon, n.lat) for n in way.nodes if n.location.valid()]


def _tags(obj: osmium.osm.Node | osmium.osm.Way | osmium.osm.Relation) -> dict[str, str]:
    return {tag.k: tag.v for tag in obj.tags}


def _data_timestamp(path: Path) -> datetime | None:
    """The extract's replication timestamp (Geofabrik sets it), if the header has one."""
    header = osmium.io.Reader(str(path), osmium.osm.NOTHING).header()
    stamp = header.get("osmosis_replication_timestamp") or header.get("timestamp")
    if not stamp:
        return None
    try:
        value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_features(path: Path, node_locations: str = "flex_mem") -> list[OsmFeature]:
    """Every infrastructure feature in the file (three filtered passes, see module doc).

    ``node_locations`` is the osmium location index; ``flex_mem`` suits extracts the
    size of Java, ``sparse_file_array,PATH`` keeps the index on disk for larger ones.
    """
    relations: list[_Relation] = []
    for obj in osmium.FileProcessor(str(path), osmium.osm.RELATION).with_filter(
        osmium.filter.TagFilter(*TAG_PAIRS)
    ):
        if not isinstance(obj, osmium.osm.Relation):
            continue
        tags = _tags(obj)
        if tags.get("type") in AREA_RELATION_TYPES and classify(tags) is not None:
            outer = tuple(m.ref for m in obj.members if m.type == "w" and m.role in ("outer", ""))
            relations.append(_Relation(obj.id, tags, outer))

    features: list[OsmFeature] = []
    entities = osmium.osm.NODE | osmium.osm.WAY
    for obj in (
        osmium.FileProcessor(str(path), entities)
        .with_locations(node_locations)
        .with_filter(osmium.filter.TagFilter(*TAG_PAIRS))
    ):
        feature: OsmFeature | None = None
        if isinstance(obj, osmium.osm.Node) and obj.location.valid():
            feature = node_feature(obj.id, _tags(obj), obj.location.lon, obj.location.lat)
        elif isinstance(obj, osmium.osm.Way):
            feature = way_feature(obj.id, _tags(obj), _way_coords(obj))
        if feature is not None:
            features.append(feature)

    member_ids = {way_id for rel in relations for way_id in rel.outer_way_ids}
    if member_ids:
        member_coords: dict[int, list[Coord]] = {}
        for way in (
            osmium.FileProcessor(str(path), entities)
            .with_locations(node_locations)
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.IdFilter(member_ids))
        ):
            if isinstance(way, osmium.osm.Way):
                member_coords[way.id] = _way_coords(way)
        for rel in relations:
            lines = [member_coords[i] for i in rel.outer_way_ids if i in member_coords]
            feature = relation_feature(rel.osm_id, rel.tags, assemble_rings(lines))
            if feature is not None:
                features.append(feature)
    return features


class PbfSource(InfrastructureSource):
    """Infrastructure from one local ``.osm.pbf`` file, read once and shared by all regions."""

    name = "pbf"

    def __init__(self, path: Path, *, buffer_km: float = 25.0, node_locations: str = "flex_mem") -> None:
        self.path = Path(path)
        self.buffer_km = buffer_km
        self.node_locations = node_locations
        self._lock = threading.Lock()
        self._index: _FeatureIndex | None = None
        self._failure: str | None = None

    def preflight(self) -> list[str]:
        problem = self._file_problem()
        if problem is None:
            try:
                _data_timestamp(self.path)
            except (RuntimeError, OSError, ValueError) as exc:
                problem = f"OSM extract {self.path} is not a readable OSM file: {exc}"
        return [problem] if problem else []

    def fetch(self, region: Region) -> InfrastructureResult:
        index = self._load()
        now = datetime.now(UTC)
        age = None if index.data_timestamp is None else (now - index.data_timestamp).total_seconds() / 86400.0
        return build_result(
            region,
            index.within(search_area(region, self.buffer_km).bounds),
            source="pbf",
            buffer_km=self.buffer_km,
            fetched_at=index.read_at,
            data_age_days=age,
        )

    def map_lines(self, region: Region) -> list[MapLine]:
        """The extract's lines in the region's box, if the extract was read (see :meth:`fetch`)."""
        with self._lock:
            index = self._index
        return [] if index is None else map_lines(region, index.within(region.geometry.bounds))

    def _file_problem(self) -> str | None:
        if not self.path.is_file():
            return f"OSM extract not found: {self.path}"
        try:
            with self.path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            return f"OSM extract {self.path} is not readable: {exc.strerror or exc}"
        return None

    def _load(self) -> _FeatureIndex:
        """The parsed file; the first caller reads it while the others wait on the lock."""
        with self._lock:
            if self._index is not None:
                return self._index
            if self._failure is not None:
                raise InfrastructureError(self._failure)
            problem = self._file_problem()
            if problem is None:
                try:
                    started = datetime.now(UTC)
                    features = read_features(self.path, self.node_locations)
                    stamp = _data_timestamp(self.path)
                except (RuntimeError, OSError, ValueError) as exc:  # osmium reports bad files as RuntimeError
                    problem = f"cannot read OSM extract {self.path}: {exc}"
            if problem is not None:
                self._failure = problem
                raise InfrastructureError(problem)
            geometries: Sequence[object] = [f.geometry for f in features]
            self._index = _FeatureIndex(features, STRtree(geometries), started, stamp)
            log.info(
                "osm_extract_read",
                path=str(self.path),
                features=len(features),
                seconds=round((datetime.now(UTC) - started).total_seconds(), 1),
            )
            return self._index
