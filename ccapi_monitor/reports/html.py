"""report.html: the page a person reads on Monday morning.

One self-contained file: inline CSS, maps as ``data:`` PNGs, site chips as ``data:``
JPEGs, no script, no font or image from any other host (a Content-Security-Policy says
so to the browser too), so it opens the same from S3, an e-mail attachment or a laptop
offline. The page is a Jinja2 template (``templates/report.html.j2``, autoescaped, so
no region name or error message can inject markup); this module turns a
:class:`RunSummary` into the template's plain values. Every figure comes from the
summary that report.json is built from, and class names come from
:data:`ccapi_monitor.scoring.CLASS_LABELS`, so the page and the JSON agree.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import jinja2
from markupsafe import Markup

from ccapi_monitor.market.models import MarketFigures
from ccapi_monitor.models import InfrastructureResult, PreviousRunInfo, RegionResult, RunSummary
from ccapi_monitor.params import CLASSES
from ccapi_monitor.reports.maps import (
    CHANGE_COLOURS,
    LABEL_COLOURS,
    MapLine,
    data_uri,
    java_land,
    render_overview_map,
    render_region_map,
)
from ccapi_monitor.scoring import CLASS_LABELS, rank_order

if TYPE_CHECKING:  # chips read imagery (rasterio, STAC): loaded only where chips are made
    from ccapi_monitor.reports.chips import Chip, SiteChips

STATUS_LABELS: Final[dict[str, str]] = {
    "ok": "ok",
    "insufficient_observations": "insufficient observations",
    "failed": "failed",
}
INFRA_LABELS: Final[dict[str, str]] = {
    "major_roads_km": "major roads (km)",
    "roads_under_construction_km": "roads under construction (km)",
    "railway_km": "railway (km)",
    "airports": "airports",
    "ports": "ports",
}
_DASH: Final = "\u2014"
_CSP: Final = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)
TEMPLATE: Final = "report.html.j2"


@functools.cache
def _environment() -> jinja2.Environment:
    """Templates ship as package data; autoescape is on for every template, whatever its name."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ccapi_monitor.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@functools.cache
def _css() -> Markup:
    """The stylesheet, inlined; it is our own file, so it is marked safe (``<style>`` is raw text)."""
    text = (resources.files("ccapi_monitor.reports") / "templates" / "report.css").read_text("utf-8")
    return Markup(text)  # noqa: S704 - packaged, not user input


def _num(value: float | None, digits: int = 1) -> str:
    return _DASH if value is None else f"{value:,.{digits}f}"


def _class_title(change_class: str) -> str:
    label = CLASS_LABELS[change_class]
    return label[:1].upper() + label[1:]


def _previous(previous: PreviousRunInfo) -> dict[str, Any]:
    if previous.run_id is None:
        return {"run_id": None, "note": previous.note or "first run, or the previous run is missing"}
    return {
        "run_id": previous.run_id,
        "run_date": previous.run_date.isoformat() if previous.run_date else "?",
    }


def _cards(summary: RunSummary) -> list[dict[str, str]]:
    """The headline: the run's own Java-wide figures, overlapping regions counted once."""
    counts = summary.counts()
    total, new = summary.totals.union_area_ha, summary.totals.union_new_area_ha
    source = summary.imagery.source

    def card(key: str, value: str, note: str = "") -> dict[str, str]:
        return {"key": key, "value": value, "note": note}

    return [
        card("Run date", summary.run_date.isoformat()),
        card("Status", summary.status, f"exit code {summary.exit_code}"),
        card(
            "Regions",
            f"{counts['succeeded']} ok / {counts['total']}",
            f"{counts['failed']} failed, {counts['insufficient']} insufficient observations",
        ),
        *(
            card(
                f"{_class_title(c)}, new",
                f"{_num(new.get(c, 0.0))} ha",
                f"{_num(total.get(c, 0.0))} ha detected in total",
            )
            for c in CLASSES
        ),
        card("Imagery", source, "synthetic demo archive" if source == "demo" else ""),
        card("Environment", summary.environment, f"run took {summary.duration_s:,.0f} s"),
    ]


def _label(r: RegionResult) -> str | None:
    return r.score.label if r.score else None


def _row(rank: int, r: RegionResult) -> dict[str, Any]:
    infra = r.infrastructure
    return {
        "rank": rank,
        "name": r.name,
        "province": r.province,
        "tier": r.tier,
        "status": r.status,
        "status_label": STATUS_LABELS[r.status],
        "score": _num(r.score.value if r.score else None, 0),
        "label": _label(r),
        "new": [_num((r.new_area_ha or {}).get(c)) for c in CLASSES],
        "total": [_num((r.area_ha or {}).get(c)) for c in CLASSES],
        "infra": _DASH if infra is None or infra.score is None else _num(infra.score, 0),
        **_market_cells(r.market),
    }


def _market_cells(market: MarketFigures | None) -> dict[str, str]:
    """Price, trend, listings and source columns of the ranking table."""
    if market is None:
        return {"price": _DASH, "trend": _DASH, "listings": _DASH, "market_source": _DASH}
    return {
        "price": f"{market.median_idr_per_m2:,.0f}",
        "trend": _DASH if market.trend is None else f"{market.trend.pct_per_week:+.1f}",
        "listings": str(market.listing_count) if market.source != "static" else _DASH,
        "market_source": market.label,
    }


def _market_facts(market: MarketFigures | None) -> list[tuple[str, str]]:
    """The region section's market lines: price and spread, trend, and where they came from."""
    if market is None:
        return []
    if market.source == "static":
        why = f"; {market.requested} not used: {market.fallback_reason}" if market.fallback_reason else ""
        return [
            (
                "Land price",
                f"IDR {market.median_idr_per_m2:,.0f}/m², tier {market.tier} of the static table{why}",
            )
        ]
    spread = (
        f", middle half {market.q1_idr_per_m2:,.0f} to {market.q3_idr_per_m2:,.0f}"
        if market.q1_idr_per_m2
        else ""
    )
    facts = [
        (
            "Land price",
            f"median IDR {market.median_idr_per_m2:,.0f}/m²{spread} from {market.listing_count} listings "
            f"({market.outliers_removed} removed as outliers; tier table {market.static_idr_per_m2:,.0f})",
        )
    ]
    if market.trend is not None:
        t = market.trend
        facts.append(
            (
                "Price trend",
                f"{t.pct_per_week:+.2f} %/week over {t.weeks} weeks "
                f"({t.confidence:.0%} interval {t.low_pct_per_week:+.2f} to {t.high_pct_per_week:+.2f})",
            )
        )
    elif market.trend_note:
        facts.append(("Price trend", market.trend_note))
    fetched = f", fetched {market.fetched_at}" if market.fetched_at else ""
    facts.append(("Market source", f"{market.label}: {market.origin}{fetched}"))
    return facts


def _problems(regions: list[RegionResult]) -> list[dict[str, str]]:
    items = []
    for r in sorted(regions, key=lambda r: r.name):
        if r.status == "failed":
            items.append({"name": r.name, "text": f"failed: {r.error or 'no error recorded'}"})
        elif r.status == "insufficient_observations":
            observed = f"{r.observed_fraction:.0%}" if r.observed_fraction is not None else "unknown share"
            reason = f": {r.error}" if r.error else ""
            items.append(
                {
                    "name": r.name,
                    "text": f"insufficient clear observations ({observed} of the region observed){reason}; "
                    "no hectares are reported for it",
                }
            )
        if r.infrastructure is not None and r.infrastructure.status in ("error", "stale"):
            what = "infrastructure failed" if r.infrastructure.status == "error" else "infrastructure stale"
            detail = r.infrastructure.error or r.infrastructure.fetched_at or ""
            items.append(
                {
                    "name": r.name,
                    "text": f"{what} ({r.infrastructure.source}){': ' + detail if detail else ''}; "
                    "the score says whether it was used",
                }
            )
    return items


def _infra_facts(infra: InfrastructureResult | None) -> list[tuple[str, str]]:
    if infra is None:
        return [("Infrastructure", "not computed")]
    facts = [("Infrastructure", f"{infra.source}, {infra.status}, confidence {infra.confidence}")]
    if infra.score is not None:
        facts.append(("Infrastructure score", f"{infra.score:.0f}/100"))
    if infra.features:
        facts.append(
            (
                "Within region + buffer",
                "; ".join(
                    f"{INFRA_LABELS.get(k, k.replace('_', ' '))}: {_num(v, 1 if k.endswith('_km') else 0)}"
                    for k, v in infra.features.items()
                ),
            )
        )
    if infra.nearest_km:
        facts.append(("Nearest (km)", "; ".join(f"{k}: {_num(v)}" for k, v in infra.nearest_km.items())))
    if infra.error:
        facts.append(("Infrastructure error", infra.error))
    return facts


def _facts(r: RegionResult, compared: bool) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = [
        ("Status", STATUS_LABELS[r.status] + (f": {r.error}" if r.error else "")),
        ("Province / focus / tier", f"{r.province} / {r.focus} / {r.tier}"),
        ("Area", f"{r.area_km2:,.0f} km²"),
        ("Observed", _DASH if r.observed_fraction is None else f"{r.observed_fraction:.0%} of the region"),
    ]
    for c in CLASSES:
        new = (r.new_area_ha or {}).get(c)
        total = (r.area_ha or {}).get(c)
        facts.append((_class_title(c), f"{_num(new)} ha new, {_num(total)} ha in total"))
    if r.status == "ok" and not compared:
        facts.append(("Week over week", "no result for this region last week: all its polygons count as new"))
    facts.extend(_infra_facts(r.infrastructure))
    facts.extend(_market_facts(r.market))
    if r.score is not None:
        facts.append(("Score", f"{_num(r.score.value, 0)}/100 {r.score.label or ''}".strip()))
        facts.append(("Why", r.score.rationale))
    return facts


def _chip(chip: Chip) -> dict[str, Any]:
    uri = Markup(data_uri(chip.image, chip.mime)) if chip.image else None  # noqa: S704 - base64 we built
    return {"uri": uri, "when": chip.when, "caption": chip.caption()}


def _sites(sites: Sequence[SiteChips]) -> list[dict[str, Any]]:
    return [
        {
            "before": _chip(s.before),
            "after": _chip(s.after),
            "text": f"{CLASS_LABELS[s.polygon.change_class]}, {s.polygon.area_ha:,.1f} ha at "
            f"{s.polygon.centroid[1]:.4f}, {s.polygon.centroid[0]:.4f}",
        }
        for s in sites
    ]


def _section(
    rank: int,
    r: RegionResult,
    geometry: Mapping[str, Any] | None,
    sites: Sequence[SiteChips],
    compared: bool,
    lines: Sequence[MapLine],
) -> dict[str, Any]:
    png = render_region_map(geometry, r.polygons, lines=lines)
    new_count = sum(1 for p in r.polygons if p.change == "new")
    shown = f"{len(r.polygons)} of {r.polygon_count}" if r.polygon_count > len(r.polygons) else ""
    context = " with major roads and railways from OpenStreetMap" if lines else ""
    return {
        "rank": rank,
        "name": r.name,
        "status": r.status,
        "status_label": STATUS_LABELS[r.status],
        "label": _label(r),
        "map_uri": Markup(data_uri(png)) if png is not None else None,  # noqa: S704 - base64 we built
        "map_alt": f"Map of {r.name}: {new_count} new and {len(r.polygons) - new_count} persisting change polygons",
        "map_caption": f"Region outline and change polygons{f' (largest {shown} shown)' if shown else ''}{context}.",
        "facts": _facts(r, compared),
        "sites": _sites(sites),
    }


def render_html(
    summary: RunSummary,
    *,
    previous_run: PreviousRunInfo | None = None,
    region_geometries: Mapping[str, Mapping[str, Any]] | None = None,
    chips: Mapping[str, Sequence[SiteChips]] | None = None,
    land: Mapping[str, Any] | None = None,
    region_lines: Mapping[str, Sequence[MapLine]] | None = None,
) -> str:
    """The complete report.html for one run.

    ``previous_run`` describes the run compared against (default ``summary.previous_run``;
    no ``run_id``: the page says there was none). ``region_geometries`` maps
    region name to its GeoJSON outline for the maps; ``chips`` maps region name to the
    before/after chips of its top sites (see :mod:`ccapi_monitor.reports.chips`); ``land``
    is the coastline drawn under the overview (GeoJSON; default Java's, ``{}`` for none); ``region_lines`` are the major
    roads and railways drawn on each region's map where the infrastructure source ran.
    """
    previous = previous_run if previous_run is not None else summary.previous_run
    geometries = region_geometries or {}
    source = summary.imagery.source
    demo = source == "demo"
    ranked = rank_order(summary.regions)
    ranks = {r.name: i for i, r in enumerate(ranked, start=1)}
    overview_png = render_overview_map(
        {n: g for n, g in geometries.items() if n in ranks},
        {r.name: _label(r) for r in ranked},
        ranks,
        land=java_land() if land is None else land,
    )
    cards = _cards(summary)
    title = f"Java land-change monitor, week of {summary.run_date.isoformat()}"
    context = {
        "csp": _CSP,
        "css": _css(),
        "dash": _DASH,
        "title": title,
        "demo": demo,
        "run_id": summary.run_id,
        "run_date": summary.run_date.isoformat(),
        "source": source,
        "environment": summary.environment,
        "cards": cards,
        "hectare_note": "where regions overlap, land is counted once",
        "previous": _previous(previous),
        "windows": [
            (name, f"{window.start.isoformat()} to {window.end.isoformat()} (end exclusive)")
            for name, window in (
                ("current", summary.windows.current),
                ("persistence", summary.windows.persistence),
                ("baseline", summary.windows.baseline),
            )
        ],
        "class_titles": [_class_title(c) for c in CLASSES],
        "class_names": ", ".join(CLASSES),
        "label_colours": LABEL_COLOURS,
        "rows": [_row(ranks[r.name], r) for r in ranked],
        "overview_uri": Markup(data_uri(overview_png)) if overview_png else None,  # noqa: S704
        "overview_legend": [(colour, label or "not scored") for label, colour in LABEL_COLOURS.items()],
        "change_legend": [
            (colour, f"{kind} {CLASS_LABELS[cls]}") for (kind, cls), colour in CHANGE_COLOURS.items()
        ],
        "problems": _problems(summary.regions),
        "quality": summary.quality,
        "sections": [
            _section(
                ranks[r.name],
                r,
                geometries.get(r.name),
                (chips or {}).get(r.name, ()),
                previous.compared(r.name),
                (region_lines or {}).get(r.name, ()),
            )
            for r in ranked
        ],
    }
    return _environment().get_template(TEMPLATE).render(context)
