"""``ccapi-monitor compare``: demo vs stac on the same archive, and Earth Engine offline."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ccapi_monitor.cli import main
from ccapi_monitor.compare import compare_backends, compare_results, render
from ccapi_monitor.detection.demo import DemoArchive, DemoBackend, DemoConfig
from ccapi_monitor.detection.earthengine import EarthEngineBackend
from ccapi_monitor.detection.ee_quota import AdaptiveLimiter, RetryPolicy
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import load_regions
from tests.detection.ee_support import FakeEarthEngine, default_answer, polygons_value, service_account_key

RUN_DATE = "2025-08-13"
REGION = "semarang_port_expansion"


def _archive_items(cache: Path) -> Path:
    """Where the demo backend (as the CLI builds it) writes the region's ItemCollection."""
    params = DemoBackend.demo_params(DetectionParams())
    archive = DemoArchive(cache / "demo-archive", DemoConfig(), params)
    return archive.items_path(REGION, date.fromisoformat(RUN_DATE))


def test_demo_and_stac_on_the_same_archive_are_identical(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["compare", "--first", "demo", "--second", "stac", "--run-date", RUN_DATE, "--regions", REGION]
    args += [
        "--cache",
        str(cache),
        "--stac-items",
        str(_archive_items(cache)),
        "--stac-collection",
        "sentinel-2-l2a",
    ]
    result = CliRunner().invoke(
        main, [*args, "--tolerance-ha", "0", "--tolerance-share", "0", "--min-iou", "1"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(REGION)]
    assert len(lines) == 2  # one per class
    for line in lines:
        _, _, first, second, diff, iou = line.split()
        assert first == second
        assert diff == "0.00"
        assert iou in ("1.000", "-")
    assert "rows within tolerance" in result.output
    assert any(float(line.split()[2]) > 0 for line in lines), "the demo plants changes: compare something"


def test_unknown_region_is_one_line_and_exit_3(tmp_path: Path) -> None:
    args = ["compare", "--first", "demo", "--second", "demo", "--run-date", RUN_DATE, "--regions", "atlantis"]
    result = CliRunner().invoke(main, [*args, "--cache", str(tmp_path)])
    assert result.exit_code == 3
    assert "atlantis" in result.output


def _ee(fake_ee: FakeEarthEngine) -> EarthEngineBackend:
    return EarthEngineBackend(
        DetectionParams(),
        project="ccapi-test",
        key_json=json.dumps(service_account_key(fake_ee.url + "/token")),
        key_file=None,
        url=fake_ee.url,
        limiter=AdaptiveLimiter(4),
        retry_policy=RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.002),
    )


def test_earth_engine_offline_against_itself_and_against_a_shifted_answer(fake_ee: FakeEarthEngine) -> None:
    region = next(r for r in load_regions() if r.name == REGION)
    backend = _ee(fake_ee)
    same = compare_backends(backend, backend, [region], date(2026, 11, 23))
    assert all(not isinstance(r, tuple) and r.within(0, 0, 1.0) for r in same)
    first = backend.detect(region, date(2026, 11, 23))

    def shifted(body: str) -> Any:
        if '"features"' in body:
            value = polygons_value()
            for feature in value["features"]["features"]:
                ring = feature["geometry"]["coordinates"][0]
                feature["geometry"]["coordinates"][0] = [[x + 0.0005, y] for x, y in ring]
            return 200, {"result": value}
        return default_answer(body)

    fake_ee.compute = shifted
    second = _ee(fake_ee).detect(region, date(2026, 11, 23))
    rows = compare_results(region.name, first, second)
    by_class = {r.change_class: r for r in rows}
    assert by_class["vegetation_clearing"].difference_ha == 0.0
    # Squares shifted by half their width: intersection 1/2, union 3/2.
    assert by_class["vegetation_clearing"].iou == pytest.approx(1 / 3, abs=0.01)
    assert not by_class["vegetation_clearing"].within(1.0, 0.05, 0.8)
    text = render(rows, "earthengine", "earthengine")
    assert len(text) == 3
