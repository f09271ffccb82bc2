"""The weekly job end to end, as a scheduler runs it: real subprocesses on the demo archive."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from shapely.geometry import box, shape

from ccapi_monitor.regions import load_regions
from tests.worker import demo_args, run_worker

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())
RUN_DATE = "2026-11-23"
#: Regions whose boxes overlap no other region: breaking one's imagery touches no other.
ISOLATED = ("banyuwangi_ferry_corridor", "jember_southern_coast", "semarang_port_expansion")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


_run = run_worker


def _events(stderr: str) -> list[dict[str, Any]]:
    lines = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _latest(out: Path) -> dict[str, Any]:
    pointer: dict[str, Any] = json.loads((out / "weekly" / "latest.json").read_text())
    return pointer


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo archive for the module's runs (the generator caches and reuses it)."""
    return tmp_path_factory.mktemp("demo-cache")


def _cache_with_archive(archive: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    (archive / "demo-archive").mkdir(exist_ok=True)
    (cache / "demo-archive").symlink_to(archive / "demo-archive", target_is_directory=True)
    return cache


def _demo_args(out: Path, cache: Path, regions: tuple[str, ...]) -> list[str]:
    return demo_args(out, cache, RUN_DATE, regions)


def _items_file(cache: Path) -> Path:
    """The ItemCollection the demo archive was written with (Earth Search layout)."""
    for path in sorted((cache / "demo-archive").rglob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        if doc.get("type") == "FeatureCollection" and doc.get("features") and "assets" in doc["features"][0]:
            return path
    raise AssertionError("the demo archive has no STAC ItemCollection")


def _break_items(items: Path, region_bbox: tuple[float, float, float, float], dest: Path) -> list[str]:
    """A copy of the collection whose items over one region point at a missing asset."""
    doc = json.loads(items.read_text())
    broken = []
    for item in doc["features"]:
        if box(*item["bbox"]).intersects(box(*region_bbox)):
            item["assets"]["nir"]["href"] = str(items.parent / "missing" / f"{item['id']}_B08.tif")
            broken.append(item["id"])
    for item in doc["features"]:  # relative hrefs stay valid from the copy's folder
        for asset in item["assets"].values():
            href = asset["href"]
            if "://" not in href and not os.path.isabs(href):
                asset["href"] = str((items.parent / href).resolve())
    dest.write_text(json.dumps(doc))
    return broken


def test_demo_run_publishes_a_valid_report_set(
    tmp_path: Path, archive: Path, worker_env: dict[str, str]
) -> None:
    out = tmp_path / "reports"
    cache = _cache_with_archive(archive, tmp_path)
    proc = _run(_demo_args(out, cache, ISOLATED), worker_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    latest = _latest(out)
    report = json.loads((out / latest["report"]).read_text())
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(report)
    assert report["imagery"]["source"] == "demo"
    assert {r["name"] for r in report["regions"]} == set(ISOLATED)
    assert report["status"] == "succeeded"
    changes = json.loads((out / latest["changes"]).read_text())
    assert changes["type"] == "FeatureCollection"
    for feature in changes["features"]:
        assert feature["properties"]["change"] == "new"  # first run: nothing persists
        assert shape(feature["geometry"]).is_valid
    html = (out / latest["html"]).read_text()
    assert "demo" in html
    for name in ISOLATED:
        assert name in html
    events = _events(proc.stderr)
    assert all("run_id" in e for e in events if e.get("logger") is None and e["event"].startswith("region_"))
    metrics = [e for e in events if e["event"] == "run_metrics"]
    assert len(metrics) == 1


def test_partial_and_total_failure(tmp_path: Path, archive: Path, worker_env: dict[str, str]) -> None:
    out = tmp_path / "reports"
    cache = _cache_with_archive(archive, tmp_path)
    assert _run(_demo_args(out, cache, ISOLATED[:2]), worker_env).returncode == 0
    latest_before = (out / "weekly" / "latest.json").read_bytes()
    items = _items_file(cache)
    bad_region = ISOLATED[0]
    regions = {
        f["properties"]["name"]: shape(f["geometry"])
        for f in json.loads((REPO / "regions" / "java.geojson").read_text())["features"]
    }
    broken_items = tmp_path / "broken.json"
    broken = _break_items(items, regions[bad_region].bounds, broken_items)
    assert broken
    stac = [
        "--imagery",
        "stac",
        "--stac-items",
        str(broken_items),
        "--auto-confirm",
        "--run-date",
        RUN_DATE,
        "--output",
        str(out),
        "--cache",
        str(tmp_path / "stac-cache"),
        "--metrics",
        "log",
    ]

    partial = _run([*stac, "--regions", ",".join(ISOLATED[:2])], worker_env)
    assert partial.returncode == 2, partial.stderr[-3000:]
    report = json.loads((out / _latest(out)["report"]).read_text())
    assert report["status"] == "partial"
    by_name = {r["name"]: r for r in report["regions"]}
    assert by_name[bad_region]["status"] == "failed"
    assert any(item_id in by_name[bad_region]["error"] for item_id in broken)
    assert by_name[ISOLATED[1]]["status"] in ("ok", "insufficient_observations")

    latest_partial = (out / "weekly" / "latest.json").read_bytes()
    assert latest_partial != latest_before
    failed = _run([*stac, "--regions", bad_region], worker_env)
    assert failed.returncode == 1
    assert "no region succeeded" in failed.stderr
    assert (out / "weekly" / "latest.json").read_bytes() == latest_partial


def test_sigterm_mid_run_exits_143_and_the_rerun_resumes(
    tmp_path: Path, archive: Path, worker_env: dict[str, str]
) -> None:
    out = tmp_path / "reports"
    cache = _cache_with_archive(archive, tmp_path)
    regions = ISOLATED
    # Make sure the archive exists, so the timing below is about detection only.
    assert (
        _run([*_demo_args(tmp_path / "warm", cache, regions), "--force-refresh"], worker_env).returncode == 0
    )
    shutil.rmtree(cache / "checkpoints")
    (out / "weekly").mkdir(parents=True)
    pointer = b'{"run_id": "earlier", "run_date": "2026-11-16", "report": "x", "changes": "y"}\n'
    (out / "weekly" / "latest.json").write_bytes(pointer)

    args = [*_demo_args(out, cache, regions), "--max-concurrency", "1"]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_weekly_java_monitor.py"), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=worker_env,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if '"region_done"' in line:
            break
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 143, "".join(seen) + rest
    assert time.monotonic() - signalled < 20
    assert (out / "weekly" / "latest.json").read_bytes() == pointer
    done_before = sum('"region_done"' in line for line in [*seen, *rest.splitlines()])
    assert 1 <= done_before < len(regions)

    rerun = _run(args, worker_env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    events = [e["event"] for e in _events(rerun.stderr)]
    assert events.count("region_reused") == done_before
    assert events.count("region_done") == len(regions) - done_before
    assert _latest(out)["run_date"] == RUN_DATE


def test_sigterm_while_the_demo_archive_is_written_exits_at_once_with_no_worker_left(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    """The archive's forked writers inherit the job's signal handlers; unless they drop them,
    terminating the pool waits for them, past ECS's stop timeout (30 s before SIGKILL)."""
    out, cache = tmp_path / "reports", tmp_path / "cache"  # an empty cache: the archive is written
    every = tuple(r.name for r in load_regions())  # tens of seconds of writing: longer than we wait
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_weekly_java_monitor.py"), *_demo_args(out, cache, every)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=worker_env,
        start_new_session=True,  # its own process group, to find any worker it leaves behind
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if '"run_started"' in line:
            break
    time.sleep(1.0)  # the writers are forked and working
    proc.send_signal(signal.SIGTERM)
    try:
        _, rest = proc.communicate(timeout=10)  # EOF on stderr: no forked writer holds it open
    finally:
        left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True, check=False)
        if proc.poll() is None or left.stdout.strip():
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, rest[-3000:]
    assert left.stdout.strip() == "", "forked archive writers outlived the job"
    assert not (out / "weekly" / "latest.json").exists()
