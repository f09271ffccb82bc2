"""The few lines a person at a terminal sees when a run ends: top regions and where the report is."""

from __future__ import annotations

from typing import Final

from ccapi_monitor.models import RunSummary
from ccapi_monitor.params import CLASSES
from ccapi_monitor.reports.html import STATUS_LABELS
from ccapi_monitor.scoring import rank_order

TOP: Final = 5
LABELS: Final = ("BUY", "WATCH", "PASS")
_DASH: Final = "-"


def summary_table(summary: RunSummary, *, top: int = TOP) -> str:
    """A plain-text table of the ``top`` ranked regions, the other regions counted, and the report path.

    Plain ASCII columns (no colour codes), so it reads the same in a terminal, a CI log
    or an e-mail; the ranking is the page's (:func:`ccapi_monitor.scoring.rank_order`).
    """
    ranked = rank_order(summary.regions)
    header = ("#", "region", "score", "label", *(f"new {c} ha" for c in CLASSES), "status")
    rows = []
    for rank, r in enumerate(ranked[:top], start=1):
        score = r.score.value if r.score else None
        rows.append(
            (
                str(rank),
                r.name,
                _DASH if score is None else f"{score:.0f}",
                (r.score.label if r.score else None) or _DASH,
                *(_DASH if r.new_area_ha is None else f"{r.new_area_ha.get(c, 0.0):,.1f}" for c in CLASSES),
                STATUS_LABELS[r.status],
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = {0, 2, *range(4, 4 + len(CLASSES))}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    counts = summary.counts()
    out = [
        f"run {summary.run_id} ({summary.run_date.isoformat()}): {summary.status}, "
        f"{counts['succeeded']} ok, {counts['insufficient']} insufficient, {counts['failed']} failed "
        f"of {counts['total']} regions",
        line(header),
        *(line(row) for row in rows),
    ]
    if len(ranked) > top:
        out.append(f"... and {len(ranked) - top} more regions in the report")
    labels = [r.score.label for r in ranked if r.score and r.score.label]
    out.append("labels: " + (", ".join(f"{labels.count(x)} {x}" for x in LABELS) if labels else "none"))
    for status in ("insufficient_observations", "failed"):
        names = [r.name for r in ranked if r.status == status]
        if names:
            out.append(f"{STATUS_LABELS[status]}: {', '.join(sorted(names))}")
    report = summary.report_uris.get("html")
    out.append(f"report: {report}" if report else "report: not published")
    return "\n".join(out)
