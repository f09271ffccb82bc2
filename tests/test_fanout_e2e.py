"""Fan-out end to end on the demo backend: shards + assemble publish what single mode publishes.

Real subprocesses, as the Map runs them: each shard and the assemble step is its own
``ccapi-monitor`` process sharing only the cache store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ccapi_monitor.fanout import Shard
from ccapi_monitor.plan import select_regions
from ccapi_monitor.regions import load_regions
from tests.worker import run_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN_DATE = "2026-11-23"
COUNT = 6  # the first six regions by priority: overlapping boxes, so totals' overlap logic runs too
SHARDS = 3
#: What legitimately differs between two runs of the same week: ids, clocks (the market
#: figures' fetch time too) and file locations.
VOLATILE = frozenset(
    {
        "run_id",
        "duration_s",
        "generated_at",
        "written_at",
        "report_uris",
        "from_checkpoint",
        "archive",
        "fetched_at",
    }
)


def _args(out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "--imagery", "demo", "--auto-confirm", "--run-date", RUN_DATE, "--regions-count", str(COUNT),
        "--output", str(out), "--cache", str(cache), "--metrics", "log", *extra,
    ]  # fmt: skip


def _assemble_args(out: Path, cache: Path, run_id: str) -> list[str]:
    return [
        "assemble", "--imagery", "demo", "--run-date", RUN_DATE, "--regions-count", str(COUNT),
        "--output", str(out), "--cache", str(cache), "--metrics", "log", "--run-id", run_id,
    ]  # fmt: skip


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m ccapi_monitor ARGS`` (assemble has no entry script of its own)."""
    return subprocess.run(
        [sys.executable, "-m", "ccapi_monitor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _published(out: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    latest = json.loads((out / "weekly" / "latest.json").read_text())
    report = json.loads((out / latest["report"]).read_text())
    changes = json.loads((out / latest["changes"]).read_text())
    return latest, report, changes


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo archive shared by every cache in this module (the generator reuses it)."""
    return tmp_path_factory.mktemp("demo-archive-cache")


def _cache(archive: Path, path: Path) -> Path:
    path.mkdir(parents=True)
    (archive / "demo-archive").mkdir(exist_ok=True)
    (path / "demo-archive").symlink_to(archive / "demo-archive", target_is_directory=True)
    return path


def _run_shards(out: Path, cache: Path, run_id: str, env: dict[str, str], which: range) -> None:
    for k in which:
        proc = run_worker([*_args(out, cache, "--shard", f"{k}/{SHARDS}", "--run-id", run_id)], env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["shard"] == f"{k}/{SHARDS}"
        assert summary["status"] == "succeeded"
    assert not (out / "weekly").exists(), "a shard must publish nothing"


def test_shards_plus_assemble_equal_single_mode_and_rerun_is_idempotent(
    tmp_path: Path, archive: Path, worker_env: dict[str, str]
) -> None:
    single_out = tmp_path / "single" / "reports"
    proc = run_worker([*_args(single_out, _cache(archive, tmp_path / "single" / "cache"))], worker_env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out, cache = tmp_path / "fan" / "reports", _cache(archive, tmp_path / "fan" / "cache")
    _run_shards(out, cache, "fan-equal", worker_env, range(1, SHARDS + 1))
    proc = _cli(_assemble_args(out, cache, "fan-equal"), worker_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"event": "run_metrics"' in proc.stderr  # assemble publishes the metrics

    _, single_report, single_changes = _published(single_out)
    latest, report, changes = _published(out)
    assert report["run_id"] == latest["run_id"] == "fan-equal"
    assert _stable(report) == _stable(single_report)
    assert changes == single_changes
    assert [r["name"] for r in report["regions"]] == [r["name"] for r in single_report["regions"]]

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    again = _cli(_assemble_args(out, cache, "fan-equal"), worker_env)
    assert again.returncode == 0, again.stderr[-3000:]
    latest_again, report_again, changes_again = _published(out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == files
    assert _stable(report_again) == _stable(report)
    assert changes_again == changes
    assert latest_again["run_id"] == "fan-equal"


def test_missing_shard_reports_its_regions_failed_never_zero(
    tmp_path: Path, archive: Path, worker_env: dict[str, str]
) -> None:
    out, cache = tmp_path / "reports", _cache(archive, tmp_path / "cache")
    _run_shards(out, cache, "fan-missing", worker_env, range(1, SHARDS))  # shard 3 never reports
    proc = _cli(_assemble_args(out, cache, "fan-missing"), worker_env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    _, report, changes = _published(out)
    selected = select_regions(load_regions(), (), COUNT)
    lost = {r.name for r in Shard(SHARDS, SHARDS).select(selected)}
    failed = {r["name"] for r in report["regions"] if r["status"] == "failed"}
    assert failed == lost
    for region in report["regions"]:
        if region["name"] in lost:
            assert region["area_ha"] is None
            assert "no result from its shard" in region["error"]
    assert not {f["properties"]["region"] for f in changes["features"]} & lost
    assert report["status"] == "partial"
