"""report.html: the page a person reads on Monday morning.

One self-contained file: inline CSS, maps as ``data:`` PNGs, no script, no font or
image from any other host (a Content-Security-Policy says so to the browser too), so
it opens the same from S3, an e-mail attachment or a laptop offline. Every figure
comes from the :class:`RunSummary` that report.json is built from, and class names
come from :data:`ccapi_monitor.scoring.CLASS_LABELS`, so the page and the JSON agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any, Final

from ccapi_monitor.models import InfrastructureResult, PreviousRunInfo, RegionResult, RunSummary
from ccapi_monitor.params import CLASSES
from ccapi_monitor.reports.maps import (
    CHANGE_COLOURS,
    LABEL_COLOURS,
    data_uri,
    render_overview_map,
    render_region_map,
)
from ccapi_monitor.scoring import CLASS_LABELS

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

_CSS: Final = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#ffffff;--panel:#f6f8fa;--warn:#9a6700;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:12px 16px 40px}
h1{font-size:1.5rem;margin:.4em 0 .2em}h2{font-size:1.2rem;margin:1.6em 0 .5em;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:0 0 .4em}
.sub{color:var(--muted);margin:0 0 1em}
.demo-banner{background:#fff3cd;border-bottom:2px solid #d4a72c;color:#5c4400;font-weight:700;text-align:center;
padding:6px 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:10px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .k{color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:1.25rem;font-weight:650;overflow-wrap:anywhere}
.card .n{font-size:.85rem;color:var(--muted)}
.note{background:var(--panel);border-left:4px solid var(--line);padding:8px 12px;margin:10px 0}
.note.warn{border-left-color:var(--warn)}
.table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--panel);position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.failed td{color:var(--bad)}tr.insufficient_observations td{color:var(--warn)}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-weight:700;font-size:.8rem;color:#000}
.st-failed{color:var(--bad);font-weight:650}.st-insufficient_observations{color:var(--warn);font-weight:650}
.overview img,figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
section.region{border:1px solid var(--line);border-radius:8px;padding:12px;margin:14px 0;
display:grid;grid-template-columns:minmax(0,520px) minmax(0,1fr);gap:16px}
section.region>header{grid-column:1/-1}
figure{margin:0}figcaption{font-size:.85rem;color:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem;margin:6px 0;padding:0;list-style:none}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #0006;vertical-align:-1px;margin-right:4px}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 12px;margin:0;align-content:start}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.chips{display:flex;gap:8px;flex-wrap:wrap}.chips figure{flex:1 1 200px}
footer{color:var(--muted);font-size:.85rem;margin-top:2em;border-top:1px solid var(--line);padding-top:8px}
@media (max-width:700px){
 body{font-size:14px}main{padding:8px 10px 30px}
 section.region{grid-template-columns:minmax(0,1fr)}
 .opt{display:none}
}
@media print{.demo-banner{position:fixed;top:0;left:0;right:0}main{padding-top:40px}
 section.region{break-inside:avoid}}
"""

_CSP: Final = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: float | None, digits: int = 1) -> str:
    return _DASH if value is None else f"{value:,.{digits}f}"


def _class_title(change_class: str) -> str:
    label = CLASS_LABELS[change_class]
    return label[:1].upper() + label[1:]


def _rank_order(regions: Iterable[RegionResult]) -> list[RegionResult]:
    """Scored regions by score (highest first), then unscored ok, insufficient, failed."""
    status_order = {"ok": 0, "insufficient_observations": 1, "failed": 2}

    def key(r: RegionResult) -> tuple[int, float, str]:
        value = r.score.value if r.score is not None else None
        if value is not None:
            return (0, -value, r.name)
        return (1 + status_order[r.status], 0.0, r.name)

    return sorted(regions, key=key)


def _card(key: str, value: str, note: str = "") -> str:
    extra = f'<div class="n">{_e(note)}</div>' if note else ""
    return f'<div class="card"><div class="k">{_e(key)}</div><div class="v">{_e(value)}</div>{extra}</div>'


def _previous_note(previous: PreviousRunInfo) -> str:
    if previous.run_id is None:
        note = previous.note or "first run, or the previous run is missing"
        return (
            f'<p class="note warn" id="previous-run">No previous run to compare with ({_e(note)}): '
            "every change polygon counts as new this week.</p>"
        )
    run_date = previous.run_date.isoformat() if previous.run_date else "?"
    return (
        f'<p class="note" id="previous-run">Compared with the previous run '
        f"{_e(previous.run_id)} of {_e(run_date)}: a polygon that overlaps "
        "one of the same class in that run is persisting, any other is new.</p>"
    )


def _headline(summary: RunSummary, previous: PreviousRunInfo) -> str:
    counts = summary.counts()
    totals = summary.totals
    total, new = totals.union_area_ha, totals.union_new_area_ha
    source = summary.imagery.source
    cards = [
        _card("Run date", summary.run_date.isoformat()),
        _card("Status", summary.status, f"exit code {summary.exit_code}"),
        _card(
            "Regions",
            f"{counts['succeeded']} ok / {counts['total']}",
            f"{counts['failed']} failed, {counts['insufficient']} insufficient observations",
        ),
        *(
            _card(
                f"{_class_title(c)}, new",
                f"{_num(new.get(c, 0.0))} ha",
                f"{_num(total.get(c, 0.0))} ha detected in total",
            )
            for c in CLASSES
        ),
        _card("Imagery", source, "synthetic demo archive" if source == "demo" else ""),
        _card("Environment", summary.environment, f"run took {summary.duration_s:,.0f} s"),
    ]
    windows = "".join(
        f"<li>{_e(name)}: {_e(window.start.isoformat())} to {_e(window.end.isoformat())} (end exclusive)</li>"
        for name, window in (
            ("current", summary.windows.current),
            ("persistence", summary.windows.persistence),
            ("baseline", summary.windows.baseline),
        )
    )
    parts = [
        f'<div class="cards" id="headline">{"".join(cards)}</div>',
        '<p class="sub">Hectares: where regions overlap, land is counted once.</p>',
        _previous_note(previous),
        f'<p class="sub">Date windows:</p><ul class="sub">{windows}</ul>',
    ]
    return "\n".join(parts)


def _label_badge(label: str | None) -> str:
    if label is None:
        return _DASH
    return f'<span class="badge" style="background:{LABEL_COLOURS[label]}">{_e(label)}</span>'


def _infra_score(infra: InfrastructureResult | None) -> str:
    if infra is None or infra.score is None:
        return _DASH
    return _num(infra.score, 0)


def _table(ranked: list[RegionResult]) -> str:
    head = (
        "<tr><th class='num'>#</th><th>Region</th><th class='opt'>Province</th><th class='num opt'>Tier</th>"
        "<th>Status</th><th class='num'>Score</th><th>Label</th>"
        + "".join(f"<th class='num'>{_e(_class_title(c))} new ha</th>" for c in CLASSES)
        + "".join(f"<th class='num opt'>{_e(_class_title(c))} total ha</th>" for c in CLASSES)
        + "<th class='num opt'>Infra.</th></tr>"
    )
    rows = []
    for rank, r in enumerate(ranked, start=1):
        value = r.score.value if r.score else None
        cells = [
            f"<td class='num'>{rank}</td>",
            f"<td><a href='#region-{_e(r.name)}'>{_e(r.name)}</a></td>",
            f"<td class='opt'>{_e(r.province)}</td>",
            f"<td class='num opt'>{r.tier}</td>",
            f"<td>{_e(STATUS_LABELS[r.status])}</td>",
            f"<td class='num'>{_num(value, 0)}</td>",
            f"<td>{_label_badge(r.score.label if r.score else None)}</td>",
            *(f"<td class='num'>{_num((r.new_area_ha or {}).get(c))}</td>" for c in CLASSES),
            *(f"<td class='num opt'>{_num((r.area_ha or {}).get(c))}</td>" for c in CLASSES),
            f"<td class='num opt'>{_infra_score(r.infrastructure)}</td>",
        ]
        rows.append(f"<tr class='{_e(r.status)}' data-region='{_e(r.name)}'>{''.join(cells)}</tr>")
    return (
        f'<div class="table-wrap"><table id="ranking"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _problems(regions: list[RegionResult]) -> str:
    items = []
    for r in sorted(regions, key=lambda r: r.name):
        if r.status == "failed":
            items.append(f"<li><b>{_e(r.name)}</b>: failed: {_e(r.error or 'no error recorded')}</li>")
        elif r.status == "insufficient_observations":
            observed = f"{r.observed_fraction:.0%}" if r.observed_fraction is not None else "unknown share"
            reason = f": {r.error}" if r.error else ""
            items.append(
                f"<li><b>{_e(r.name)}</b>: insufficient clear observations ({_e(observed)} of the region "
                f"observed){_e(reason)}; no hectares are reported for it</li>"
            )
        if r.infrastructure is not None and r.infrastructure.status in ("error", "stale"):
            what = "infrastructure failed" if r.infrastructure.status == "error" else "infrastructure stale"
            detail = r.infrastructure.error or r.infrastructure.fetched_at or ""
            items.append(
                f"<li><b>{_e(r.name)}</b>: {what} ({_e(r.infrastructure.source)})"
                f"{': ' + _e(detail) if detail else ''}; the score says whether it was used</li>"
            )
    if not items:
        return '<p id="problems">Every region produced a result.</p>'
    return f'<ul id="problems">{"".join(items)}</ul>'


def _legend() -> str:
    items = "".join(
        f'<li><span class="sw" style="background:{colour}"></span>{_e(kind)} {_e(CLASS_LABELS[cls])}</li>'
        for (kind, cls), colour in CHANGE_COLOURS.items()
    )
    return f'<ul class="legend">{items}</ul>'


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


def _region_section(
    rank: int,
    r: RegionResult,
    geometry: Mapping[str, Any] | None,
    chips: Mapping[str, bytes] | None,
    demo: bool,
    compared: bool,
) -> str:
    png = render_region_map(geometry, r.polygons)
    new_count = sum(1 for p in r.polygons if p.change == "new")
    if png is not None:
        alt = f"Map of {r.name}: {new_count} new and {len(r.polygons) - new_count} persisting change polygons"
        shown = f"{len(r.polygons)} of {r.polygon_count}" if r.polygon_count > len(r.polygons) else ""
        caption = f"Region outline and change polygons{f' (largest {shown} shown)' if shown else ''}."
        figure = (
            f'<figure><img src="{data_uri(png)}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption>{_legend()}</figure>"
        )
    else:
        figure = "<p>No outline or polygons to map.</p>"
    if chips:
        figure += (
            '<div class="chips">'
            + "".join(
                f'<figure><img src="{data_uri(png_bytes)}" alt="{_e(name)} false-colour image of {_e(r.name)}">'
                f"<figcaption>{_e(name)} (false colour)</figcaption></figure>"
                for name, png_bytes in chips.items()
            )
            + "</div>"
        )
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
    if r.score is not None:
        facts.append(("Score", f"{_num(r.score.value, 0)}/100 {r.score.label or ''}".strip()))
        facts.append(("Why", r.score.rationale))
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    status_class = f"st-{r.status}"
    badge = ' <span class="badge" style="background:#fff3cd">DEMO</span>' if demo else ""
    return (
        f'<section class="region" id="region-{_e(r.name)}" data-region="{_e(r.name)}">'
        f"<header><h3>{rank}. {_e(r.name)}{badge} <span class='{status_class}'>"
        f"{_e(STATUS_LABELS[r.status])}</span> {_label_badge(r.score.label if r.score else None)}</h3></header>"
        f"<div>{figure}</div><dl>{rows}</dl></section>"
    )


def render_html(
    summary: RunSummary,
    *,
    previous_run: PreviousRunInfo | None = None,
    region_geometries: Mapping[str, Mapping[str, Any]] | None = None,
    chips: Mapping[str, Mapping[str, bytes]] | None = None,
) -> str:
    """The complete report.html for one run.

    ``previous_run`` describes the run compared against (default ``summary.previous_run``;
    no ``run_id``: the page says there was none). ``region_geometries`` maps
    region name to its GeoJSON outline for the maps; ``chips`` maps region name to
    before/after false-colour PNGs where the imagery backend provides them.
    """
    previous = previous_run if previous_run is not None else summary.previous_run
    geometries = region_geometries or {}
    source = summary.imagery.source
    demo = source == "demo"
    ranked = _rank_order(summary.regions)
    ranks = {r.name: i for i, r in enumerate(ranked, start=1)}
    banner = (
        '<div class="demo-banner" id="demo-banner">DEMO: imagery source is the synthetic demo archive; '
        "these figures describe no real land.</div>"
        if demo
        else ""
    )
    overview = ""
    overview_png = render_overview_map(
        {n: g for n, g in geometries.items() if n in ranks},
        {r.name: (r.score.label if r.score else None) for r in ranked},
        ranks,
    )
    if overview_png is not None:
        legend = "".join(
            f'<li><span class="sw" style="background:{colour}"></span>{_e(label or "not scored")}</li>'
            for label, colour in LABEL_COLOURS.items()
        )
        overview = (
            f'<figure class="overview"><img src="{data_uri(overview_png)}" '
            'alt="Overview map of the regions, numbered by rank">'
            f'<figcaption>Regions numbered by rank, coloured by label.</figcaption><ul class="legend">{legend}</ul>'
            "</figure>"
        )
    sections = "\n".join(
        _region_section(
            ranks[r.name],
            r,
            geometries.get(r.name),
            (chips or {}).get(r.name),
            demo,
            previous.compared(r.name),
        )
        for r in ranked
    )
    title = f"Java land-change monitor, week of {summary.run_date.isoformat()}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<link rel="icon" href="data:,">
<title>{_e(title)}{" (DEMO)" if demo else ""}</title>
<style>{_CSS}</style>
</head>
<body>
{banner}
<main>
<h1>{_e(title)}</h1>
<p class="sub">Run {_e(summary.run_id)}: new vegetation clearing and construction measured from Sentinel-2
imagery, with OpenStreetMap infrastructure and a land-investment score per region.</p>
{_headline(summary, previous)}
<h2 id="ranking-title">Regions ranked by score</h2>
{_table(ranked)}
{overview}
<h2>Regions without a full result</h2>
{_problems(summary.regions)}
<h2>Regions</h2>
{sections}
<footer>Run {_e(summary.run_id)} on {_e(summary.run_date.isoformat())}, imagery {_e(source)},
environment {_e(summary.environment)}. Class names are those of report.json
({_e(", ".join(CLASSES))}). Scores are indicative, see docs/scoring.md.{" DEMO DATA." if demo else ""}</footer>
</main>
</body>
</html>
"""
