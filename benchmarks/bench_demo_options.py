"""Benchmark: what a smaller ``make demo`` would save, and what it would change in the demo.

``make demo`` is two runs (last week, then this week) over a synthetic archive of 29
regions. This benchmark runs the same two commands (``DEMO_ARGS`` and
``DEMO_PREVIOUS_ARGS``, read from the Makefile) from an empty cache for the shipped demo
and for smaller ones, one after another in the same run:

- ``shipped``: what ``make demo`` runs, the baseline of every ratio;
- ``one_week``: this week's run only (a first run, so every change counts as new);
- ``monthly_baseline``: one baseline scene in 30 days instead of 15 (``baseline_step=6``);
- ``no_overlap``: no region covered by two overlapping granules a day;
- ``smallest``: the three together.

The variants change ``DemoConfig`` fields in the child process (a hook of this benchmark:
the CLI has no option for them). Each row has wall and CPU seconds, their ratio to
``shipped``, and what this week's report shows (hectares of each class and of new
changes, the score labels), so the price of a variant in content is next to its time.

Run: ``.venv/bin/python -m benchmarks.bench_demo_options`` (prints JSON; about four
minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.bench_demo import REPO, RUN_DATE, children_cpu

#: name -> (weeks run, DemoConfig fields changed)
VARIANTS: dict[str, tuple[int, dict[str, int]]] = {
    "shipped": (2, {}),
    "one_week": (1, {}),
    "monthly_baseline": (2, {"baseline_step": 6}),
    "no_overlap": (2, {"overlap_every": 1_000_000}),
    "smallest": (1, {"baseline_step": 6, "overlap_every": 1_000_000}),
}


def make_variable(name: str, **overrides: str) -> list[str]:
    """A Makefile variable's words, as ``make`` expands them with ``overrides``."""
    out = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-C",
            str(REPO),
            "--eval",
            "print-%: ; @echo $($*)",
            f"print-{name}",
            *(f"{key}={value}" for key, value in overrides.items()),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return shlex.split(out.stdout)


def run_variant(root: Path, weeks: int, fields: dict[str, int]) -> dict[str, Any]:
    overrides = {
        "DEMO_DATE": RUN_DATE,
        "DEMO_OUTPUT": str(root / "reports"),
        "DEMO_CACHE": str(root / "cache"),
    }
    demo_args = make_variable("DEMO_ARGS", **overrides)
    commands = [[*demo_args, "--run-date", RUN_DATE]]
    if weeks == 2:
        commands.insert(0, [*demo_args, *make_variable("DEMO_PREVIOUS_ARGS", **overrides)])
    child = [sys.executable, "-m", "benchmarks.bench_demo_options", "--child", json.dumps(fields), "--"]
    cpu0, started = children_cpu(), time.perf_counter()
    for command in commands:
        # exit 2 (partial) still publishes; anything else is a broken variant
        proc = subprocess.run([*child, "run", *command], cwd=REPO, capture_output=True, text=True)
        if proc.returncode not in (0, 2):
            raise SystemExit(f"{command}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    figures: dict[str, Any] = {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(children_cpu() - cpu0, 2),
    }
    (report,) = (root / "reports" / "weekly" / RUN_DATE).glob("*/report.json")
    document = json.loads(report.read_text(encoding="utf-8"))
    totals = document["totals"]
    figures["area_ha"] = {k: round(v) for k, v in totals["area_ha"].items()}
    figures["new_area_ha"] = {k: round(v) for k, v in totals["new_area_ha"].items()}
    figures["labels"] = dict(Counter(str((r.get("score") or {}).get("label")) for r in document["regions"]))
    return figures


def child(fields: dict[str, Any], cli_args: list[str]) -> None:
    """The CLI, with every demo backend built on ``DemoConfig(**fields)``."""
    from ccapi_monitor.cli import main as cli
    from ccapi_monitor.detection import demo

    if fields:
        original = demo.DemoBackend.__init__

        def init(self: demo.DemoBackend, params: Any, archive_dir: Path, config: Any = None) -> None:
            original(self, params, archive_dir, config or demo.DemoConfig(**fields))

        demo.DemoBackend.__init__ = init  # type: ignore[method-assign]
    cli(cli_args, prog_name="ccapi-monitor")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="run only these variants")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(json.loads(args.child), [a for a in args.rest if a != "--"])
        return {}
    load_before = os.getloadavg()
    rows: dict[str, Any] = {}
    for name, (weeks, fields) in VARIANTS.items():
        if args.only and name not in args.only and name != "shipped":
            continue
        with tempfile.TemporaryDirectory(prefix=f"ccapi-bench-{name}-") as tmp:
            rows[name] = {"weeks": weeks, "demo_config": fields, **run_variant(Path(tmp), weeks, fields)}
    base = rows["shipped"]
    for row in rows.values():
        row["wall_ratio"] = round(row["wall_s"] / base["wall_s"], 3)
        row["cpu_ratio"] = round(row["cpu_s"] / base["cpu_s"], 3)
    result = {
        "run_date": RUN_DATE,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "variants": rows,
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
