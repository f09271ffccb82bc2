"""Publishing a finished run: report.html with its maps and chips, then the report set.

One function for every command that publishes (``run``, and ``assemble`` after a
fan-out), so the page always carries the same context whichever way the run was made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import structlog

from ccapi_monitor.infrastructure.base import InfrastructureSource, MapLine
from ccapi_monitor.models import RunSummary
from ccapi_monitor.regions import Region
from ccapi_monitor.reports.html import render_html
from ccapi_monitor.reports.json_report import publish_reports
from ccapi_monitor.scoring import rank_order
from ccapi_monitor.storage import Store

log = structlog.get_logger(__name__)

#: ``--report-chips`` values to chip styles (``off``: no chips).
CHIP_STYLES: dict[str, Literal["true", "false"]] = {"true-colour": "true", "false-colour": "false"}


def _lines(infrastructure: InfrastructureSource | None, region: Region) -> list[MapLine]:
    if infrastructure is None:
        return []
    try:
        return infrastructure.map_lines(region)
    except Exception as exc:  # map context never stops a publish, whatever the source raised
        log.warning("map_lines_unavailable", region=region.name, error=f"{type(exc).__name__}: {exc}")
        return []


def publish_run(
    store: Store,
    summary: RunSummary,
    regions: Sequence[Region],
    *,
    backend: Any,
    infrastructure: InfrastructureSource | None,
    chips: str = "true-colour",
    move_latest: bool = True,
) -> dict[str, str]:
    """Render report.html (maps, Java's outline, roads and railways, chips) and publish the run.

    ``backend`` is the imagery backend the run used (its chips come from the same
    imagery); ``chips`` is the ``--report-chips`` value. Returns the files' URIs by kind.
    """
    by_name = {r.name: r for r in regions}
    geometries = {r.name: r.to_feature()["geometry"] for r in regions}
    site_chips = {}
    if chips in CHIP_STYLES:
        from ccapi_monitor.reports.chips import chip_source_for, collect_chips  # reads imagery: only here

        ranked = [(by_name[r.name], r.polygons) for r in rank_order(summary.regions) if r.name in by_name]
        site_chips = collect_chips(
            chip_source_for(backend, style=CHIP_STYLES[chips]), ranked, summary.run_date
        )
    lines = {r.name: _lines(infrastructure, by_name[r.name]) for r in summary.regions if r.name in by_name}
    html = render_html(summary, region_geometries=geometries, chips=site_chips, region_lines=lines)
    log.info("report_html_rendered", bytes=len(html.encode("utf-8")))
    return publish_reports(store, summary, html, move_latest=move_latest, region_geometries=geometries)
