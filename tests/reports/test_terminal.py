"""The end-of-run table: top regions in the page's order, every column aligned, the report's path."""

from __future__ import annotations

from ccapi_monitor.reports.terminal import summary_table
from ccapi_monitor.scoring import rank_order
from tests.reports.test_html import build_summary


def test_top_regions_in_rank_order_with_the_report_path():
    summary, _ = build_summary()
    summary = summary.model_copy(update={"report_uris": {"html": "/tmp/reports/weekly/x/report.html"}})
    text = summary_table(summary, top=5)
    lines = text.splitlines()
    ranked = rank_order(summary.regions)
    assert lines[0].startswith(f"run {summary.run_id} (2026-11-23): partial, ")
    assert "of 29 regions" in lines[0]
    body = lines[2:7]
    assert [line.split()[1] for line in body] == [r.name for r in ranked[:5]]
    top = ranked[0]
    assert top.score is not None
    assert top.score.value is not None
    assert body[0].split()[2] == f"{top.score.value:.0f}"
    assert len({len(line) for line in lines[1:7]}) <= 2  # aligned columns (trailing blanks trimmed)
    assert "... and 24 more regions in the report" in lines
    labels = [r.score.label for r in summary.regions if r.score and r.score.label]
    assert (
        f"labels: {labels.count('BUY')} BUY, {labels.count('WATCH')} WATCH, {labels.count('PASS')} PASS"
        in lines
    )
    assert (
        "insufficient observations: anyer_carita_coastal, bogor_puncak_highland, malang_south_highland"
        in lines
    )
    assert "failed: jember_southern_coast" in lines
    assert lines[-1] == "report: /tmp/reports/weekly/x/report.html"


def test_unpublished_and_unscored_regions_read_as_such():
    summary, _ = build_summary()
    failed = [r for r in summary.regions if r.status == "failed"]
    text = summary_table(summary.model_copy(update={"regions": failed}), top=5)
    assert text.splitlines()[-1] == "report: not published"
    assert "failed" in text.splitlines()[2]
    assert " - " in text.splitlines()[2]  # no score, no hectares: dashes, never zeros
