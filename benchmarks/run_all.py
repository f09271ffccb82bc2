"""Run every benchmark and keep their JSON figures in ``benchmarks/results/``.

Each benchmark reports ratios against a baseline measured in the same run (see its
docstring); nothing here asserts timings.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("bench_detection", "bench_earthengine", "bench_demo")


def main() -> int:
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed += 1
            sys.stderr.write(proc.stderr[-4000:])
            continue
        (results / f"{name}-{stamp}.json").write_text(proc.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
