"""Running the real worker as a subprocess, the way a scheduler or a person does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = str(REPO / "run_weekly_java_monitor.py")


def demo_args(out: Path, cache: Path, run_date: str, regions: Sequence[str]) -> list[str]:
    """``run`` arguments for an unattended demo run of ``regions`` with local stores."""
    return [
        "--imagery", "demo", "--auto-confirm", "--run-date", run_date, "--regions", ",".join(regions),
        "--output", str(out), "--cache", str(cache), "--metrics", "log",
    ]  # fmt: skip


def run_worker(
    args: Sequence[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python run_weekly_java_monitor.py ARGS`` with no terminal on stdin."""
    return subprocess.run(
        [sys.executable, ENTRY, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
