"""report.html for the wall-to-wall Java grid (331 cells of 20 km) loads in Chromium without error.

The page is rendered from a run over the real grid (``ccapi-monitor grid --cell-km 20``):
every cell a region with a change polygon, some failed, some insufficiently observed.
Its size is written to ``test-artifacts/report-grid.size`` for docs/scaling.md.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import mapping

from ccapi_monitor.fanout import missing_result
from ccapi_monitor.grid_regions import GridSpec, grid_regions
from ccapi_monitor.models import ChangePolygon, ImageryInfo, PreviousRunInfo, RegionResult, RunSummary
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.runner import build_summary
from ccapi_monitor.scoring import load_land_prices, score_region
from ccapi_monitor.settings import Settings
from tests.reports.test_html_browser import ARTIFACTS, Chromium, browser, problems  # noqa: F401  (fixture)

RUN_DATE = date(2026, 11, 23)


def _grid_summary() -> tuple[RunSummary, dict[str, dict[str, Any]]]:
    regions = grid_regions(GridSpec(cell_km=20))
    prices = load_land_prices()
    results: list[RegionResult] = []
    for index, region in enumerate(regions):
        base = missing_result(region, "grid-page")
        if index % 37 == 5:
            results.append(base.model_copy(update={"error": "Earth Engine: computation timed out"}))
            continue
        if index % 23 == 7:
            results.append(
                base.model_copy(
                    update={"status": "insufficient_observations", "error": None, "observed_fraction": 0.2}
                )
            )
            continue
        centre = region.geometry.centroid
        blob = centre.buffer(0.002 + (index % 5) * 0.001)  # ~4 to ~36 ha
        change_class = "vegetation_clearing" if index % 3 else "built_up"
        hectares = round(blob.area * 111_000**2 / 10_000, 3)
        polygon = ChangePolygon(
            region=region.name,
            change_class=change_class,
            area_ha=hectares,
            centroid=(centre.x, centre.y),
            geometry=mapping(blob),
            change="new",
        )
        area = {"vegetation_clearing": 0.0, "built_up": 0.0, change_class: hectares}
        results.append(
            base.model_copy(
                update={
                    "status": "ok",
                    "error": None,
                    "observed_fraction": 0.9,
                    "area_ha": area,
                    "new_area_ha": area,
                    "polygon_count": 1,
                    "polygons": [polygon],
                    "score": score_region(
                        new_area_ha=area,
                        area_km2=region.area_km2,
                        infrastructure=None,
                        tier=region.tier,
                        prices=prices,
                    ),
                }
            )
        )
    geometries = {r.name: r.geometry for r in regions}
    params = DetectionParams()
    summary = build_summary(
        Settings(run_date=RUN_DATE, environment="test"),
        regions,
        results,
        run_id="20261123T060000Z-grid01",
        duration_s=640.0,
        imagery=ImageryInfo(source="demo"),
        windows=params.windows(RUN_DATE),
        params=params,
        previous_run=PreviousRunInfo(note="first run"),
    )
    return summary, {name: mapping(geometry) for name, geometry in geometries.items()}


@pytest.mark.slow
def test_grid_report_loads_in_chromium(browser: Chromium, tmp_path: Path) -> None:  # noqa: F811
    from ccapi_monitor.reports.html import render_html

    summary, geometries = _grid_summary()
    assert len(summary.regions) > 300
    page = tmp_path / "report.html"
    page.write_text(render_html(summary, region_geometries=geometries), encoding="utf-8")
    size = page.stat().st_size
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-grid.size").write_text(f"{size}\n", encoding="utf-8")

    session = browser.open_page(page.as_uri())
    assert problems(browser.events, session, page.as_uri()) == {"requests": [], "errors": []}
    rows = browser.evaluate(
        session, "[...document.querySelectorAll('#ranking tbody tr')].map(r => r.dataset.region)"
    )
    assert sorted(rows) == sorted(r.name for r in summary.regions)
    assert browser.evaluate(session, "document.querySelectorAll('section.region').length") == len(rows)
    broken = browser.evaluate(
        session, "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
    )
    assert broken == []
