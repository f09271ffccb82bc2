"""changes.parquet and the curated history: GeoParquet that DuckDB reads, weeks append, reruns replace."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import geopandas as gpd
import pytest
from click.testing import CliRunner
from shapely.geometry import shape

from ccapi_monitor.cli import main
from ccapi_monitor.models import RunSummary
from ccapi_monitor.reports.history import changes_parquet, partition_key, rebuild_history
from ccapi_monitor.reports.json_report import build_changes, publish_reports
from ccapi_monitor.storage import LocalStore
from tests.reports.test_html import build_summary
from tests.worker import demo_args, run_worker

WEEK1 = date(2026, 11, 23)
WEEK2 = WEEK1 + timedelta(days=7)


def _duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never fetches an extension (tests run offline)."""
    return duckdb.connect(config={"autoinstall_known_extensions": False})


def _query(root: Path, sql: str) -> list[tuple[object, ...]]:
    """``sql`` with ``changes`` and ``regions`` as views over the history folder."""
    con = _duckdb()
    for table in ("changes", "regions"):
        # S608: fixed table names and the test's own folder, no outside input.
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet("  # noqa: S608
            f"'{root}/history/{table}/*/*.parquet', hive_partitioning = true)"
        )
    return con.execute(sql).fetchall()


def _week(summary: RunSummary, run_date: date, run_id: str, keep: int | None = None) -> RunSummary:
    """The test run moved to ``run_date``, optionally with only the first ``keep`` polygons a region."""
    regions = [
        r.model_copy(update={"polygons": r.polygons[:keep] if keep is not None else r.polygons})
        for r in summary.regions
    ]
    return summary.model_copy(update={"run_date": run_date, "run_id": run_id, "regions": regions})


@pytest.fixture(scope="module")
def base() -> tuple[RunSummary, dict[str, dict[str, object]]]:
    return build_summary()


def test_changes_parquet_holds_the_geojson_rows(base):
    summary, _ = base
    frame = gpd.read_parquet(io.BytesIO(changes_parquet(summary)))
    features = build_changes(summary)["features"]
    assert len(frame) == len(features) > 0
    assert frame.crs.to_epsg() == 4326
    for (_, row), feature in zip(frame.iterrows(), features, strict=True):
        props = feature["properties"]
        assert (row["region"], row["class"], row["change"]) == (
            props["region"],
            props["class"],
            props["change"],
        )
        assert row["area_ha"] == pytest.approx(props["area_ha"], abs=1e-4)
        assert row["geometry"].equals(shape(feature["geometry"]))
        assert row["run_date"] == summary.run_date


def test_weeks_append_a_rerun_replaces_and_a_failed_run_touches_nothing(tmp_path: Path, base):
    summary, outlines = base
    store = LocalStore(tmp_path)
    first = _week(summary, WEEK1, "20261123T060000Z-aaaaaa")
    second = _week(summary, WEEK2, "20261130T060000Z-bbbbbb")
    rerun = _week(summary, WEEK1, "20261123T090000Z-cccccc", keep=1)
    for run in (first, second):
        publish_reports(store, run, "<html></html>", region_geometries=outlines)
    counts = {row[0]: row[1] for row in _query(tmp_path, "SELECT run_date, count(*) FROM changes GROUP BY 1")}
    n_all = sum(len(r.polygons) for r in summary.regions)
    assert counts == {WEEK1: n_all, WEEK2: n_all}

    publish_reports(store, rerun, "<html></html>", region_geometries=outlines)
    failed = _week(summary, WEEK2, "20261130T120000Z-dddddd", keep=0).model_copy(
        update={"status": "failed", "exit_code": 1}
    )
    publish_reports(store, failed, "<html></html>", move_latest=False, region_geometries=outlines)

    rows = _query(
        tmp_path,
        "SELECT run_date, run_id, count(*), round(sum(area_ha), 3) FROM changes GROUP BY 1, 2 ORDER BY 1",
    )
    n_rerun = sum(min(1, len(r.polygons)) for r in summary.regions)
    area_rerun = round(sum(r.polygons[0].area_ha for r in summary.regions if r.polygons), 3)
    area_all = round(sum(p.area_ha for r in summary.regions for p in r.polygons), 3)
    assert rows == [
        (WEEK1, rerun.run_id, n_rerun, pytest.approx(area_rerun, abs=0.01)),
        (WEEK2, second.run_id, n_all, pytest.approx(area_all, abs=0.01)),
    ]
    regions = _query(
        tmp_path,
        "SELECT run_date, count(*), count(geometry), count(*) FILTER (WHERE status = 'failed') "
        "FROM regions GROUP BY 1 ORDER BY 1",
    )
    assert regions == [(WEEK1, 29, 29, 1), (WEEK2, 29, 29, 1)]
    best = _query(
        tmp_path,
        "SELECT region, score, label FROM regions WHERE run_date = DATE '2026-11-30' "
        "AND score IS NOT NULL ORDER BY score DESC LIMIT 1",
    )
    scored = [
        (r.score.value, r.name, r.score.label)
        for r in second.regions
        if r.score and r.score.value is not None
    ]
    value, name, label = max(scored)
    assert best == [(name, pytest.approx(value), label)]


def test_rebuild_is_idempotent_and_drops_weeks_without_a_published_run(tmp_path: Path, base):
    summary, outlines = base
    store = LocalStore(tmp_path)
    runs = [
        _week(summary, WEEK1, "20261123T060000Z-aaaaaa"),
        _week(summary, WEEK1, "20261123T090000Z-cccccc", keep=2),
        _week(summary, WEEK2, "20261130T060000Z-bbbbbb", keep=1),
    ]
    for run in runs:
        publish_reports(store, run, "<html></html>", region_geometries=outlines)
    expected = _query(tmp_path, "SELECT run_date, run_id, count(*) FROM changes GROUP BY 1, 2 ORDER BY 1")
    # A partition written by hand for a week that has no published run, and a lost week.
    stray = date(2026, 11, 16)
    (tmp_path / partition_key("changes", stray)).parent.mkdir(parents=True)
    (tmp_path / partition_key("changes", WEEK1)).replace(tmp_path / partition_key("changes", stray))
    chosen = rebuild_history(store, outlines)
    assert chosen == {WEEK1: runs[1].run_id, WEEK2: runs[2].run_id}
    first = {k: store.read_bytes(k) for k in store.list_keys("history/")}
    assert (
        _query(tmp_path, "SELECT run_date, run_id, count(*) FROM changes GROUP BY 1, 2 ORDER BY 1")
        == expected
    )
    rebuild_history(store, outlines)
    again = {k: store.read_bytes(k) for k in store.list_keys("history/")}
    assert sorted(again) == sorted(first)
    for key, data in again.items():
        assert data is not None
        assert gpd.read_parquet(io.BytesIO(data)).equals(
            gpd.read_parquet(io.BytesIO(first[key] or b"missing"))
        )


@pytest.mark.slow
@pytest.mark.e2e
def test_two_demo_weeks_and_a_rerun_through_the_worker(tmp_path: Path, worker_env: dict[str, str]):
    """The real worker on the demo archive: two weeks appended, the rerun of week one replaces it."""
    out, cache = tmp_path / "reports", tmp_path / "cache"
    region = ("semarang_port_expansion",)
    for day in (WEEK1, WEEK2, WEEK1):
        proc = run_worker(demo_args(out, cache, day.isoformat(), region), worker_env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p for p in (out / "weekly").glob("*/*") if p.is_dir())
    assert len(runs) == 3
    newest = {p.parent.name: p for p in runs}  # run ids sort by time: the rerun wins week one
    rows = _query(
        out, "SELECT run_date, run_id, count(*), round(sum(area_ha), 3) FROM changes GROUP BY 1, 2 ORDER BY 1"
    )
    expected = []
    for day in (WEEK1, WEEK2):
        run = newest[day.isoformat()]
        features = json.loads((run / "changes.geojson").read_text())["features"]
        area = round(sum(f["properties"]["area_ha"] for f in features), 3)
        expected.append((day, run.name, len(features), pytest.approx(area, abs=0.01)))
        parquet = gpd.read_parquet(run / "changes.parquet")
        assert len(parquet) == len(features)
    assert rows == expected
    regions = _query(out, "SELECT run_date, region, status FROM regions ORDER BY 1")
    assert regions == [(WEEK1, region[0], "ok"), (WEEK2, region[0], "ok")]
    # The page of each run carries the before/after chips of the region's top new sites.
    page = (newest[WEEK1.isoformat()] / "report.html").read_text()
    assert page.count('<li class="site">') == min(
        5,
        sum(
            1
            for f in json.loads((newest[WEEK1.isoformat()] / "changes.geojson").read_text())["features"]
            if f["properties"]["change"] == "new"
        ),
    )
    assert "data:image/jpeg;base64," in page


def test_rebuild_command(tmp_path: Path, base):
    summary, _outlines = base
    store = LocalStore(tmp_path)
    publish_reports(store, _week(summary, WEEK1, "20261123T060000Z-aaaaaa", keep=1), "<html></html>")
    (tmp_path / partition_key("changes", WEEK1)).unlink()  # a lost partition
    result = CliRunner().invoke(main, ["history", "rebuild", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == [
        "2026-11-23  20261123T060000Z-aaaaaa",
        "history rebuilt: 1 week",
    ]
    assert _query(tmp_path, "SELECT count(*) FROM changes") == [
        (sum(min(1, len(r.polygons)) for r in summary.regions),)
    ]
    assert _query(tmp_path, "SELECT count(geometry) FROM regions") == [
        (29,)
    ]  # outlines from the packaged regions
    empty = CliRunner().invoke(main, ["history", "rebuild", "--output", str(tmp_path / "typo")])
    assert empty.exit_code == 3
    assert "nothing to rebuild the history from" in empty.stderr
    assert not (tmp_path / "typo").exists()
