"""The plan of a run: which regions, which windows, which backends, where outputs go.

Printed by ``--dry-run`` and shown before the confirmation prompt; built without
credentials or network so it is safe anywhere.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.models import ImageryInfo
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region, order_by_priority
from ccapi_monitor.settings import Settings


def select_regions(regions: list[Region], names: tuple[str, ...], count: int | None) -> list[Region]:
    """The subset asked for: by name (in file order), or the first ``count`` by priority then name."""
    if names:
        known = {r.name: r for r in regions}
        unknown = [n for n in names if n not in known]
        if unknown:
            hints = difflib.get_close_matches(unknown[0], list(known), n=1)
            hint = f" (did you mean {hints[0]!r}?)" if hints else ""
            raise InvalidInputError(f"unknown region name {unknown[0]!r}{hint}")
        wanted = set(names)
        return [r for r in regions if r.name in wanted]
    if count is not None:
        if not 1 <= count <= len(regions):
            raise InvalidInputError(f"regions_count must be between 1 and {len(regions)}, got {count}")
        return order_by_priority(regions)[:count]
    return list(regions)


@dataclass(frozen=True)
class Plan:
    settings: Settings
    regions: list[Region]
    params: DetectionParams
    imagery: ImageryInfo

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "run_date": s.run_date.isoformat(),
            "regions": [r.name for r in self.regions],
            "windows": self.params.windows(s.run_date).model_dump(mode="json"),
            "imagery": self.imagery.model_dump(mode="json"),
            "infrastructure": {
                "source": s.infrastructure,
                "osm_pbf": str(s.osm_pbf) if s.osm_pbf else None,
                "buffer_km": s.infrastructure_buffer_km,
            },
            "market": {"source": s.market, "enable_scraping": s.enable_scraping},
            "outputs": {"reports": s.output, "cache": s.cache},
            "environment": s.environment,
            "max_concurrency": s.regions_in_flight,
            "force_refresh": s.force_refresh,
            "parameters": self.params.model_dump(mode="json"),
        }

    def render(self) -> str:
        """A readable plan for people; ``as_dict`` is the machine form."""
        d = self.as_dict()
        w = d["windows"]
        lines = [
            f"ccapi-monitor plan for run date {d['run_date']} ({d['environment']})",
            f"  regions ({len(d['regions'])}): {', '.join(d['regions'])}",
            f"  current window:     {w['current']['start']} .. {w['current']['end']} (end exclusive)",
            f"  persistence window: {w['persistence']['start']} .. {w['persistence']['end']}",
            f"  baseline window:    {w['baseline']['start']} .. {w['baseline']['end']}",
            f"  imagery:            {json.dumps(d['imagery'], default=str)}",
            f"  infrastructure:     {d['infrastructure']['source']}"
            + (f" ({d['infrastructure']['osm_pbf']})" if d["infrastructure"]["osm_pbf"] else ""),
            f"  market:             {d['market']['source']}; network: "
            + ("on" if d["market"]["enable_scraping"] else "off (cached or static only)"),
            f"  reports:            {d['outputs']['reports']}",
            f"  cache:              {d['outputs']['cache']}",
            f"  concurrency:        {d['max_concurrency']} regions; force refresh: {d['force_refresh']}",
            f"  parameters:         {json.dumps(d['parameters'])}",
        ]
        return "\n".join(lines)


def build_plan(
    settings: Settings, regions: list[Region], params: DetectionParams, imagery: ImageryInfo
) -> Plan:
    return Plan(settings=settings, regions=regions, params=params, imagery=imagery)
