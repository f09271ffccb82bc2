"""Benchmark: the weekly job on all 29 regions with demo imagery, as ``make demo`` runs it.

Figures, all from the same run:
- ``fresh_s``: a cold run (the demo archive is generated, then every region detected);
- ``cached_s``: a second run that reuses the archive but recomputes every region;
- ``sequential_s``: the same with one region at a time (the old system's way);
- ``concurrency_speedup``: ``sequential_s / cached_s``;
- ``generation_share``: ``(fresh_s - cached_s) / fresh_s``, the archive's part of a cold run.

Run: ``.venv/bin/python -m benchmarks.bench_demo`` (prints JSON; a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN_DATE = "2026-11-23"


def _run(out: Path, cache: Path, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ccapi_monitor",
            "run",
            "--imagery",
            "demo",
            "--auto-confirm",
            "--run-date",
            RUN_DATE,
            "--output",
            str(out),
            "--cache",
            str(cache),
            "--metrics",
            "log",
            *extra,
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions-count", type=int, default=29)
    args = parser.parse_args(argv)
    subset = ["--regions-count", str(args.regions_count)]
    with tempfile.TemporaryDirectory(prefix="ccapi-bench-demo-") as tmp:
        root = Path(tmp)
        fresh = _run(root / "r1", root / "cache", *subset)
        cached = _run(root / "r2", root / "cache", *subset, "--force-refresh")
        sequential = _run(root / "r3", root / "cache", *subset, "--force-refresh", "--max-concurrency", "1")
    result: dict[str, float | int] = {
        "regions": args.regions_count,
        "fresh_s": round(fresh, 2),
        "cached_s": round(cached, 2),
        "sequential_s": round(sequential, 2),
        "concurrency_speedup": round(sequential / cached, 2),
        "generation_share": round((fresh - cached) / fresh, 3),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
