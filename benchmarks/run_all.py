"""Run every benchmark and keep their JSON figures in ``benchmarks/results/``.

Each benchmark reports ratios against a baseline measured in the same run (see its
docstring); nothing here asserts timings.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Benchmarks and whether they take the shared 20 km archive (generated once, ~2 minutes).
BENCHMARKS = (
    ("bench_detection", True),
    ("bench_peer", True),
    ("bench_remote", True),
    ("bench_earthengine", False),
    ("bench_demo", False),
    ("bench_demo_options", False),
    ("bench_market", False),
)


def main() -> int:
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as archive:
        return run(results, stamp, archive)


def run(results: Path, stamp: str, archive: str) -> int:
    failed = 0
    for name, shared_archive in BENCHMARKS:
        print(f"== {name}", flush=True)
        extra = ["--archive", archive] if shared_archive else []
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}", *extra],
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
