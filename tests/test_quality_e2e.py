"""The quality gate end to end: a doubled-area week is stopped before ``latest.json`` moves.

The real worker runs on the demo archive as a subprocess. Its history is eight earlier
weeks made from a real run of the same regions with every hectare halved, as if the
imagery backend had just started reporting twice the area. The gate must keep
``latest.json`` on the last good week, exit 5, write the run's reports for review, and
publish once an operator accepts the run with ``--accept-quality``.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.worker import demo_args, run_worker

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = date(2026, 11, 23)
REGIONS = ("banyuwangi_ferry_corridor", "jember_southern_coast", "semarang_port_expansion")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _halved(figures: dict[str, float] | None) -> dict[str, float] | None:
    return None if figures is None else {k: round(v / 2, 4) for k, v in figures.items()}


def _seed_history(real: dict[str, Any], out: Path, weeks: int = 8) -> bytes:
    """Earlier published weeks with half of this week's hectares; returns latest.json's bytes."""
    pointer: dict[str, Any] = {}
    for w in range(weeks, 0, -1):
        day = RUN_DATE - timedelta(weeks=w)
        run_id = f"{day:%Y%m%d}T060000Z-hist{w:02d}"
        prefix = f"weekly/{day.isoformat()}/{run_id}"
        report = json.loads(json.dumps(real))
        report.update(run_id=run_id, run_date=day.isoformat(), quality=None)
        for region in report["regions"]:
            region["area_ha"] = _halved(region["area_ha"])
            region["new_area_ha"] = _halved(region["new_area_ha"])
        report["totals"] = {k: _halved(v) if isinstance(v, dict) else v for k, v in report["totals"].items()}
        (out / prefix).mkdir(parents=True)
        (out / prefix / "report.json").write_text(json.dumps(report))
        (out / prefix / "changes.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": []})
        )
        previous = {k: v for k, v in pointer.items() if k != "previous"} or None
        pointer = {
            "run_id": run_id,
            "run_date": day.isoformat(),
            "status": "succeeded",
            "report": f"{prefix}/report.json",
            "changes": f"{prefix}/changes.geojson",
            "html": f"{prefix}/report.html",
            "written_at": f"{day.isoformat()}T07:00:00+00:00",
            "previous": previous,
        }
    latest = (json.dumps(pointer, indent=1) + "\n").encode()
    (out / "weekly" / "latest.json").write_bytes(latest)
    return latest


def _events(stderr: str, name: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == name]


def _this_weeks_reports(out: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text())
        for p in sorted((out / "weekly" / RUN_DATE.isoformat()).glob("*/report.json"))
    ]


def test_a_doubled_area_week_is_stopped_before_latest_moves(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    cache = tmp_path / "cache"
    seed_out = tmp_path / "seed"
    seed = run_worker(demo_args(seed_out, cache, RUN_DATE.isoformat(), REGIONS), worker_env)
    assert seed.returncode == 0, seed.stderr[-3000:]
    [real] = _this_weeks_reports(seed_out)
    assert real["quality"]["status"] in ("passed", "warnings")  # the demo's offset fixes may warn
    assert real["quality"]["skipped"]["java_area_jump"] == "0 earlier published week(s), 4 needed"

    out = tmp_path / "reports"
    latest_before = _seed_history(real, out)
    doubled = run_worker(demo_args(out, cache, RUN_DATE.isoformat(), REGIONS), worker_env)

    assert doubled.returncode == 5, doubled.stderr[-3000:]
    assert (out / "weekly" / "latest.json").read_bytes() == latest_before, "latest.json moved"
    assert "ccapi-monitor: error: data quality failed:" in doubled.stderr
    [report] = _this_weeks_reports(out)
    assert (report["status"], report["exit_code"], report["quality"]["status"]) == (
        "quality_failed",
        5,
        "failed",
    )
    jumps = [f for f in report["quality"]["findings"] if f["name"] == "java_area_jump"]
    assert jumps
    assert all(f["severity"] == "critical" for f in jumps)
    for jump in jumps:  # twice history, against a limit of 1.8x history
        assert jump["value"] / jump["limit"] == pytest.approx(2 / 1.8, rel=0.01)
    assert report["quality"]["history_weeks"] == 8
    schema = json.loads((REPO / "docs" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(report)
    run_dir = out / "weekly" / RUN_DATE.isoformat() / report["run_id"]
    assert (run_dir / "changes.geojson").exists()
    assert (run_dir / "report.html").exists()
    severities = [f["severity"] for f in report["quality"]["findings"]]
    [metrics] = _events(doubled.stderr, "run_metrics")
    assert (metrics["DataQualityFailures"], metrics["DataQualityWarnings"]) == (
        severities.count("critical"),
        severities.count("warn"),
    )
    assert {f["name"] for f in report["quality"]["findings"] if f["severity"] == "critical"} == {
        "java_area_jump"
    }

    accepted = run_worker(
        [*demo_args(out, cache, RUN_DATE.isoformat(), REGIONS), "--accept-quality"], worker_env
    )
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    latest = json.loads((out / "weekly" / "latest.json").read_text())
    assert latest["run_date"] == RUN_DATE.isoformat()
    published = json.loads((out / latest["report"]).read_text())
    assert (published["status"], published["quality"]["status"], published["quality"]["accepted"]) == (
        "succeeded",
        "accepted",
        True,
    )
    assert latest["previous"]["run_id"] == f"{RUN_DATE - timedelta(weeks=1):%Y%m%d}T060000Z-hist01"
