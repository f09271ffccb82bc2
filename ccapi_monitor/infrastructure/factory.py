"""Choosing the infrastructure source for a run (``--infrastructure overpass|pbf|off``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.infrastructure.base import InfrastructureSource
from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.regions import Region
from ccapi_monitor.storage import Store


class OffSource(InfrastructureSource):
    """No enrichment (``--infrastructure off``, the demo default): the score is computed without it."""

    name = "off"

    def fetch(self, region: Region) -> InfrastructureResult:
        return InfrastructureResult(source="off", status="off")


def create_infrastructure_source(
    kind: str,
    *,
    cache: Store,
    endpoints: Sequence[str],
    osm_pbf: Path | None,
    buffer_km: float,
) -> InfrastructureSource:
    """The source named by ``kind``; heavy imports (osmium, requests) only for the one used."""
    if kind == "off":
        return OffSource()
    if kind == "overpass":
        from ccapi_monitor.infrastructure.overpass import OverpassSource

        return OverpassSource(cache, endpoints, buffer_km=buffer_km)
    if kind == "pbf":
        if osm_pbf is None:
            raise InvalidInputError("--infrastructure pbf needs --osm-pbf PATH")
        from ccapi_monitor.infrastructure.pbf import PbfSource

        return PbfSource(osm_pbf, buffer_km=buffer_km)
    raise InvalidInputError(f"unknown infrastructure source {kind!r} (overpass, pbf or off)")
