"""report.html structure: every region present, text escaped, self-contained, labels from the JSON names."""

from __future__ import annotations

import base64
import io
import random
import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

import pytest
from markupsafe import escape
from PIL import Image
from shapely.geometry import box, mapping

from ccapi_monitor.models import (
    ChangePolygon,
    ImageryInfo,
    InfrastructureResult,
    PreviousRunInfo,
    RegionResult,
    RunSummary,
)
from ccapi_monitor.params import CLASSES, DetectionParams
from ccapi_monitor.regions import load_regions
from ccapi_monitor.reports.chips import Chip, SiteChips, top_sites
from ccapi_monitor.reports.html import render_html
from ccapi_monitor.runner import aggregate
from ccapi_monitor.scoring import CLASS_LABELS, load_land_prices, rank_order, score_region

RUN_DATE = date(2026, 11, 23)
FAILED = {"jember_southern_coast": "DetectionError: computeValue deadline exceeded after 3 retries"}
INSUFFICIENT = {"bogor_puncak_highland", "anyer_carita_coastal", "malang_south_highland"}


def _polygons(
    name: str, bounds: tuple[float, float, float, float], rng: random.Random
) -> list[ChangePolygon]:
    west, south, east, north = bounds
    polygons = []
    for i in range(rng.randint(0, 12)):
        side = rng.choice([0.0005, 0.002, 0.008])  # ~0.3 ha to ~80 ha
        x = rng.uniform(west, east - side)
        y = rng.uniform(south, north - side)
        geom = box(x, y, x + side, y + side)
        polygons.append(
            ChangePolygon(
                region=name,
                change_class=CLASSES[i % 2],
                area_ha=round((side * 111_000) ** 2 / 10_000, 3),
                centroid=(geom.centroid.x, geom.centroid.y),
                geometry=mapping(geom),
                change="new" if rng.random() < 0.6 else "persisting",
                first_detected=RUN_DATE,
            )
        )
    return polygons


def build_summary(source: str = "demo") -> tuple[RunSummary, dict[str, dict[str, Any]]]:
    """A 29-region run with failed, insufficient, infrastructure-error and off regions."""
    rng = random.Random(7)
    prices = load_land_prices()
    results = []
    geometries: dict[str, dict[str, Any]] = {}
    for index, region in enumerate(load_regions()):
        geometries[region.name] = mapping(region.geometry)
        infra: InfrastructureResult | None
        if index % 7 == 3:
            infra = InfrastructureResult(
                source="overpass", status="error", error="Overpass remark: runtime error"
            )
        elif index % 5 == 4:
            infra = InfrastructureResult(source="off", status="off")
        else:
            infra = InfrastructureResult(
                source="pbf",
                status="ok",
                features={"major_roads_km": rng.uniform(10, 400), "airports": rng.randint(0, 2)},
                nearest_km={"motorway": rng.uniform(0, 60), "airport": None},
                score=rng.uniform(5, 95),
                confidence="high",
            )
        polygons: list[ChangePolygon]
        if region.name in FAILED:
            status, polygons, area, new = "failed", [], None, None
        elif region.name in INSUFFICIENT:
            status, polygons, area, new = "insufficient_observations", [], None, None
        else:
            status = "ok"
            polygons = _polygons(region.name, region.bounds, rng)
            area = {c: sum(p.area_ha for p in polygons if p.change_class == c) for c in CLASSES}
            new = {
                c: sum(p.area_ha for p in polygons if p.change_class == c and p.change == "new")
                for c in CLASSES
            }
        results.append(
            RegionResult(
                name=region.name,
                province=region.province,
                focus=region.focus,
                priority=region.priority,
                tier=region.tier,
                area_km2=region.area_km2,
                status=status,
                error=FAILED.get(region.name),
                observed_fraction=None if status == "failed" else (0.31 if status != "ok" else 0.92),
                area_ha=area,
                new_area_ha=new,
                polygon_count=len(polygons),
                polygons=polygons,
                infrastructure=infra,
                score=score_region(
                    new_area_ha=new,
                    area_km2=region.area_km2,
                    infrastructure=infra,
                    tier=region.tier,
                    prices=prices,
                ),
            )
        )
    summary = RunSummary(
        run_id="20261123T060000Z-ab12cd",
        run_date=RUN_DATE,
        status="partial",
        exit_code=2,
        environment="test",
        duration_s=812.4,
        regions=results,
        totals=aggregate(results, {r.name: r.geometry for r in load_regions()}),
        imagery=ImageryInfo(source=source),
        windows=DetectionParams().windows(RUN_DATE),
        parameters=DetectionParams(),
        previous_run=PreviousRunInfo(run_id="20261116T060000Z-ffee00", run_date=date(2026, 11, 16)),
    )
    return summary, geometries


def without_maps(summary: RunSummary) -> RunSummary:
    """The same run with no polygons: rendered without geometries, the page draws no map (fast)."""
    return summary.model_copy(
        update={"regions": [r.model_copy(update={"polygons": []}) for r in summary.regions]}
    )


class _Collector(HTMLParser):
    """Every tag with its attributes, and every URL-bearing attribute value."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    return collector


@pytest.fixture(scope="module")
def built() -> tuple[RunSummary, dict[str, dict[str, Any]], str]:
    summary, geometries = build_summary()
    return summary, geometries, render_html(summary, region_geometries=geometries)


def test_every_region_has_a_row_and_a_section(built):
    summary, _, page = built
    tags = _parse(page).tags
    rows = [str(a["data-region"]) for t, a in tags if t == "tr" and "data-region" in a]
    sections = [str(a["data-region"]) for t, a in tags if t == "section" and "data-region" in a]
    names = sorted(r.name for r in summary.regions)
    assert sorted(rows) == names
    assert sorted(sections) == names
    assert len(names) == 29


def test_rows_are_ranked_by_score_then_unscored(built):
    summary, _, page = built
    by_name = {r.name: r for r in summary.regions}
    order = re.findall(r'<tr class="[a-z_]+" data-region="([a-z0-9_]+)">', page)
    values = [by_name[n].score.value if by_name[n].score else None for n in order]
    scored = [v for v in values if v is not None]
    assert scored == sorted(scored, reverse=True)
    assert values[: len(scored)] == scored  # unscored regions all come last
    assert by_name[order[-1]].status == "failed"


def test_page_is_self_contained(built):
    _, _, page = built
    collector = _parse(page)
    urls = [
        value
        for _, attrs in collector.tags
        for name, value in attrs.items()
        if name in ("src", "href", "srcset", "action", "data") and value is not None
    ]
    assert urls, "the page should carry images"
    assert all(u.startswith(("data:", "#")) for u in urls), [
        u for u in urls if not u.startswith(("data:", "#"))
    ]
    assert not any(t == "script" for t, _ in collector.tags)
    assert "@import" not in page
    assert "url(" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_maps_are_valid_pngs_one_per_region_plus_overview(built):
    summary, _, page = built
    images = [a["src"] for t, a in _parse(page).tags if t == "img"]
    assert len(images) == len(summary.regions) + 1
    for src in images:
        assert src is not None
        png = base64.b64decode(src.removeprefix("data:image/png;base64,"))
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG"
            assert image.width > 100


def test_demo_is_visible_and_absent_for_real_imagery(built):
    summary, geometries, page = built
    assert 'id="demo-banner"' in page
    assert 'id="demo-note"' in page
    assert "Every figure on this page is synthetic" in page
    assert page.count(">DEMO</span>") == len(summary.regions)
    real, _ = build_summary(source="earthengine")
    real_page = render_html(real, region_geometries=geometries)
    assert "DEMO" not in real_page


def test_headline_figures(built):
    summary, _, page = built
    counts = summary.counts()
    assert f"{counts['succeeded']} ok / 29" in page
    assert f"{counts['failed']} failed, {counts['insufficient']} insufficient observations" in page
    # The page shows the run's Java-wide figures as computed, overlapping regions counted once.
    assert f"{summary.totals.union_new_area_ha['built_up']:,.1f} ha" in page
    assert f"{summary.totals.union_area_ha['built_up']:,.1f} ha detected in total" in page


def test_headline_shows_the_runs_deduplicated_totals():
    summary, _ = build_summary()
    summary = without_maps(summary)
    union = summary.totals.model_copy(
        update={
            "union_area_ha": {"vegetation_clearing": 1234.5, "built_up": 0.0},
            "union_new_area_ha": {"vegetation_clearing": 321.0, "built_up": 0.0},
        }
    )
    page = render_html(summary.model_copy(update={"totals": union}))
    assert "321.0 ha" in page
    assert "1,234.5 ha detected in total" in page
    assert "counted once" in page


def test_class_labels_come_from_the_single_label_map(built):
    _, _, page = built
    for change_class in CLASSES:
        title = CLASS_LABELS[change_class][:1].upper() + CLASS_LABELS[change_class][1:]
        assert f"{title} new ha" in page
        assert f"new {CLASS_LABELS[change_class]}" in page  # legend
    assert "Clearing (ha)" not in page


def test_failed_and_insufficient_regions_are_explained(built):
    _, _, page = built
    problems = page[page.index('id="problems"') :]
    problems = problems[: problems.index("</ul>")]
    assert "jember_southern_coast</b>: failed: DetectionError: computeValue deadline exceeded" in problems
    for name in INSUFFICIENT:
        assert f"{name}</b>: insufficient clear observations (31% of the region observed)" in problems
    assert "infrastructure failed (overpass): Overpass remark: runtime error" in problems


def test_rationale_and_infrastructure_shown(built):
    summary, _, page = built
    for r in summary.regions:
        assert r.score is not None
        assert str(escape(r.score.rationale)) in page


def test_previous_run_stated_or_missing():
    summary, _ = build_summary()
    summary = without_maps(summary)
    page = render_html(summary)
    assert "Compared with the previous run 20261116T060000Z-ffee00 of 2026-11-16" in page
    assert "no result for this region last week" not in page
    first = summary.model_copy(update={"previous_run": PreviousRunInfo()})
    page = render_html(first)
    assert "No previous run to compare with (first run, or the previous run is missing)" in page
    page = render_html(first, previous_run=PreviousRunInfo(note="latest.json names a missing file"))
    assert "(latest.json names a missing file): every change polygon counts as new" in page


def test_regions_missing_from_the_previous_run_are_flagged():
    summary, _ = build_summary()
    summary = without_maps(summary)
    ok = sorted(r.name for r in summary.regions if r.status == "ok")
    previous = PreviousRunInfo(run_id="r0", run_date=date(2026, 11, 16), regions_compared=ok[1:])
    page = render_html(summary, previous_run=previous)
    section = page[page.index(f'id="region-{ok[0]}"') :]
    section = section[: section.index("</section>")]
    assert "no result for this region last week" in section
    assert page.count("no result for this region last week") == 1


def test_all_text_is_escaped():
    summary, _ = build_summary()
    summary = without_maps(summary)
    hostile = "<script>alert('x')</script>"
    regions = list(summary.regions)
    regions[0] = regions[0].model_copy(update={"status": "failed", "error": hostile, "province": hostile})
    summary = summary.model_copy(
        update={"regions": regions, "environment": hostile, "run_id": '"><img src=x>'}
    )
    page = render_html(summary)
    assert "<script" not in page
    assert "<img src=x>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_page_renders_without_geometries():
    summary, _ = build_summary()
    page = render_html(summary)
    tags = _parse(page).tags
    assert len([a for t, a in tags if t == "tr" and "data-region" in a]) == 29
    # Regions with polygons still get a map framed on their polygons; others say there is nothing to map.
    assert "No outline or polygons to map." in page


def _jpeg(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def sample_chips(summary: RunSummary) -> dict[str, list[SiteChips]]:
    """Chips for the first region with new polygons: one site complete, one with a missing 'before'."""
    region = next(r for r in rank_order(summary.regions) if any(p.change == "new" for p in r.polygons))
    first, *rest = top_sites(region.polygons)
    sites = [
        SiteChips(
            first,
            Chip("before", _jpeg("#2d6a2d"), day=date(2025, 12, 1), style="true"),
            Chip("after", _jpeg("#b08560"), day=date(2026, 11, 18), style="false"),
        )
    ]
    sites += [
        SiteChips(
            p,
            Chip("before", missing="no clear acquisition over the site"),
            Chip("after", _jpeg("#b08560"), day=date(2026, 11, 18), style="true"),
        )
        for p in rest
    ]
    return {region.name: sites}


def test_chips_are_embedded_and_missing_ones_explained():
    summary, _ = build_summary()
    chips = sample_chips(summary)
    ((name, sites),) = chips.items()
    page = render_html(summary, chips=chips)
    section = page[page.index(f'id="region-{name}"') :]
    section = section[: section.index("</section>")]
    images = [
        a
        for t, a in _parse(section).tags
        if t == "img" and str(a.get("src", "")).startswith("data:image/jpeg")
    ]
    assert len(images) == 1 + len(sites)  # before + after of the first site, after of the others
    assert "before: 2025-12-01, true colour" in section
    assert "after: 2026-11-18, false colour (NIR, red, green)" in section
    assert (
        section.count('aria-label="before: no image (no clear acquisition over the site)"') == len(sites) - 1
    )
    assert f"{sites[0].polygon.area_ha:,.1f} ha at" in section
