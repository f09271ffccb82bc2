"""The command line contract (docs/design/cli.md and docs/design/exit-codes.md)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ccapi_monitor.cli import main

REPO = Path(__file__).resolve().parents[1]


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ccapi-monitor: error:")]


def test_without_a_terminal_and_without_auto_confirm_exits_3_at_once(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    out = tmp_path / "reports"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_weekly_java_monitor.py"),
            "--imagery",
            "demo",
            "--output",
            str(out),
            "--cache",
            str(tmp_path / "c"),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=worker_env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr  # timeout=30 above: it never waits for an answer
    (line,) = _error_lines(proc.stderr)
    assert "--auto-confirm" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--regions", "jakarta_north_sprawl,atlantis"], "unknown region name 'atlantis'"),
        (["--regions", "jakarta_nort_sprawl"], "did you mean 'jakarta_north_sprawl'"),
        (["--run-date", "2026-13-01"], "invalid --run-date: must be YYYY-MM-DD"),
        (["--run-date", "2099-01-01"], "in the future"),
        (["--regions-count", "0"], "invalid --regions-count: Input should be greater than or equal to 1"),
        (["--regions-count", "30"], "regions_count must be between 1 and 29"),
        (["--input-json", "{not json"], "--input-json is not valid JSON"),
        (["--input-json", "[1, 2]"], "must be a JSON object"),
        (["--input-json", '{"regions_count": "three"}'], "invalid execution input regions_count"),
        (["--input-json", '{"run_date": "yesterday"}'], "execution input run_date: must be YYYY-MM-DD"),
        (["--input-json", '{"force_refresh": "maybe"}'], "invalid execution input force_refresh"),
        (["--input-json", '{"regions": ["a", ""]}'], "execution input regions: contains an empty name"),
        (
            ["--regions", "jakarta_north_sprawl", "--regions-count", "2"],
            "either --regions or --regions-count",
        ),
        (["--imagery", "stac"], "--imagery stac needs --stac-items"),
        (["--infrastructure", "pbf"], "--infrastructure pbf needs --osm-pbf"),
        (["--max-concurrency", "0"], "invalid --max-concurrency"),
    ],
)
def test_invalid_input_exits_3_with_one_line_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out, cache = tmp_path / "reports", tmp_path / "cache"
    code, _, stderr = _invoke(
        "run", "--imagery", "demo", "--auto-confirm", "--output", str(out), "--cache", str(cache), *args
    )
    assert code == 3
    (line,) = _error_lines(stderr)
    assert message in line
    assert not out.exists()
    assert not cache.exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CCAPI_METRICS", "sometimes", "invalid CCAPI_METRICS: Input should be 'auto', 'cloudwatch'"),
        ("CCAPI_REGION_TIMEOUT_SECONDS", "soon", "invalid CCAPI_REGION_TIMEOUT_SECONDS"),
        ("CCAPI_HEARTBEAT_SECONDS", "0", "invalid CCAPI_HEARTBEAT_SECONDS: Input should be greater than 0"),
        ("CCAPI_INFRASTRUCTURE", "pbf", "--infrastructure pbf needs --osm-pbf (or CCAPI_OSM_PBF)"),
    ],
)
def test_a_bad_environment_variable_exits_3_naming_it(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    """Click never sees the environment, so a bad value is exit 3 like a bad flag (not click's 2)."""
    out = tmp_path / "reports"
    code, _, stderr = _invoke(
        "run", "--imagery", "demo", "--auto-confirm", "--output", str(out), env={variable: value}
    )
    assert code == 3
    (line,) = _error_lines(stderr)
    assert message in line
    assert not out.exists()


def test_malformed_regions_file_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "regions.geojson"
    bad.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {"name": "x"}, "geometry": None}],
            }
        )
    )
    code, _, stderr = _invoke(
        "run",
        "--imagery",
        "demo",
        "--auto-confirm",
        "--regions-file",
        str(bad),
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 3
    (line,) = _error_lines(stderr)
    assert "feature #0 ('x')" in line
    assert "missing required properties" in line
    assert not (tmp_path / "o").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    code, stdout, _ = _invoke(
        "run",
        "--imagery",
        "demo",
        "--dry-run",
        "--regions-count",
        "2",
        "--run-date",
        "2026-11-23",
        "--output",
        str(out),
        "--cache",
        str(tmp_path / "c"),
    )
    assert code == 0
    assert "run date 2026-11-23" in stdout
    assert "regions (2): bandung_east_tech_corridor, bandung_north_expansion" in stdout
    assert "current window:     2026-10-24 .. 2026-11-23" in stdout
    assert "baseline window:    2025-09-24 .. 2026-09-24" in stdout
    assert '"source": "demo"' in stdout
    assert "infrastructure:     off" in stdout  # demo runs offline by default
    assert not out.exists()


def test_execution_input_overrides_environment_but_not_flags(tmp_path: Path) -> None:
    env = {
        "CCAPI_RUN_DATE": "2026-11-02",
        "CCAPI_EXECUTION_INPUT": json.dumps(
            {"run_date": "2026-11-16", "regions_count": 1, "scheduler": "eventbridge"}
        ),
    }
    code, stdout, stderr = _invoke(
        "run", "--imagery", "demo", "--dry-run", "--output", str(tmp_path / "o"), env=env
    )
    assert code == 0, stderr
    assert "run date 2026-11-16" in stdout
    assert "regions (1):" in stdout
    assert "ignoring unknown fields scheduler" in stderr
    code, stdout, _ = _invoke(
        "run",
        "--imagery",
        "demo",
        "--dry-run",
        "--run-date",
        "2026-11-09",
        "--output",
        str(tmp_path / "o"),
        env=env,
    )
    assert "run date 2026-11-09" in stdout


def test_scheduler_timestamps_are_accepted_as_run_date(tmp_path: Path) -> None:
    code, stdout, _ = _invoke(
        "run",
        "--imagery",
        "demo",
        "--dry-run",
        "--input-json",
        '{"run_date": "2026-11-23T06:00:00Z", "regions": ["merak_port_corridor"]}',
        "--output",
        str(tmp_path),
    )
    assert code == 0
    assert "run date 2026-11-23" in stdout
    assert "regions (1): merak_port_corridor" in stdout


def test_regions_command_lists_and_validates(tmp_path: Path) -> None:
    code, stdout, _ = _invoke("regions")
    assert code == 0
    assert stdout.strip().endswith("29 regions, valid")
    code, stdout, _ = _invoke("regions", "--json")
    rows = json.loads(stdout)
    assert {r["utm_epsg"] for r in rows} == {32748, 32749, 32750}
    bad = tmp_path / "bad.geojson"
    bad.write_text("[]")
    code, _, stderr = _invoke("regions", "--regions-file", str(bad))
    assert code == 3
    assert _error_lines(stderr) == ["ccapi-monitor: error: regions file: not a GeoJSON FeatureCollection"]


def test_entry_points_agree(worker_env: dict[str, str]) -> None:
    shim = subprocess.run(
        [sys.executable, str(REPO / "run_weekly_java_monitor.py"), "--help"],
        capture_output=True,
        text=True,
        env=worker_env,
        check=True,
    )
    module = subprocess.run(
        [sys.executable, "-m", "ccapi_monitor", "run", "--help"],
        capture_output=True,
        text=True,
        env=worker_env,
        check=True,
    )
    # Same command, same options: only the program name in the usage line differs.
    assert shim.stdout.splitlines()[1:] == module.stdout.splitlines()[1:]
    assert "--auto-confirm" in shim.stdout


def _run_on_a_terminal(
    args: list[str], answer: bytes, env: dict[str, str], timeout: float = 60
) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout, answer its prompt, return (code, screen)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the worker, attached to the terminal
        os.execve(sys.executable, [sys.executable, str(REPO / "run_weekly_java_monitor.py"), *args], env)
    screen = b""
    answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
        if not answered and b"Run this plan?" in screen:
            os.write(fd, answer)
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace")


def test_a_terminal_shows_the_plan_and_asks_first(tmp_path: Path, worker_env: dict[str, str]) -> None:
    out = tmp_path / "reports"
    args = [
        "--imagery",
        "demo",
        "--regions-count",
        "1",
        "--run-date",
        "2026-11-23",
        "--output",
        str(out),
        "--cache",
        str(tmp_path / "c"),
    ]
    code, screen = _run_on_a_terminal(args, b"n\n", worker_env)
    assert code == 0, screen
    assert "ccapi-monitor plan for run date 2026-11-23" in screen
    assert "Run this plan? [y/N]" in screen
    assert "nothing run: the plan was not confirmed" in screen
    assert not out.exists()


@pytest.mark.slow
def test_a_terminal_run_ends_with_the_top_regions_and_the_report_path(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    out = tmp_path / "reports"
    regions = "semarang_port_expansion,jakarta_north_sprawl"
    args = [f"--regions={regions}", "--imagery=demo", "--run-date=2026-11-23", "--metrics=off"]
    args += [f"--output={out}", f"--cache={tmp_path / 'c'}"]
    code, screen = _run_on_a_terminal(args, b"y\n", worker_env, timeout=300)
    assert code == 0, screen[-3000:]
    lines = [line.rstrip("\r") for line in screen.splitlines()]
    header = next(i for i, line in enumerate(lines) if line.startswith("#  region"))
    ranked = [line.split()[1] for line in lines[header + 1 : header + 3]]
    assert sorted(ranked) == ["jakarta_north_sprawl", "semarang_port_expansion"]
    pointer = json.loads((out / "weekly" / "latest.json").read_text())
    assert lines[-1] == f"report: {out / pointer['html']}"
