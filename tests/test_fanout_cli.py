"""The fan-out and grid commands at the command line: plans, files, and bad input (exit 3, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ccapi_monitor.cli import main
from ccapi_monitor.regions import load_regions


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_grid_writes_a_valid_regions_file(tmp_path: Path) -> None:
    out = tmp_path / "grid.geojson"
    result = _invoke("grid", "--cell-km", "20", "--output", str(out))
    assert result.exit_code == 0, result.output
    regions = load_regions(out)
    assert 300 <= len(regions) <= 360
    assert f"{len(regions)} cells of 20 km written to {out}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("grid", "--cell-km", "0.2"), "--cell-km must be between"),
        (("grid", "--min-land-fraction", "1.5"), "--min-land-fraction must be in (0, 1]"),
    ],
)
def test_bad_grid_is_one_line_exit_3(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    out = tmp_path / "grid.geojson"
    result = _invoke(*args, "--output", str(out))
    assert result.exit_code == 3
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--shard", "4/3", "--run-id", "w1"), "--shard 4/3: need 1 <= K <= N"),
        (("run", "--shard", "1/3"), "--shard needs --run-id"),
        (("run", "--shard", "1/3", "--run-id", "../x"), "--run-id must be"),
        (("assemble",), "assemble needs --run-id"),
    ],
)
def test_bad_fan_out_input_is_one_line_exit_3(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    out, cache = tmp_path / "reports", tmp_path / "cache"
    result = _invoke(
        *args, "--imagery", "demo", "--auto-confirm" if args[0] == "run" else "--metrics=log",
        "--output", str(out), "--cache", str(cache),
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert message in result.output
    assert not out.exists()


def test_preflight_plans_the_shards(tmp_path: Path) -> None:
    args = [
        "preflight", "--plan-shards", "--shard-size", "10", "--regions-count", "25", "--imagery", "demo",
        "--output", str(tmp_path / "reports"), "--cache", str(tmp_path / "cache"), "--run-id", "w48",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["run_id"] == "w48"
    assert [s["shard"] for s in plan["shards"]] == ["1/3", "2/3", "3/3"]
    assert [s["regions"] for s in plan["shards"]] == [9, 8, 8]
    assert plan["max_concurrency"] == 3  # demo is CPU-bound: every shard at once
