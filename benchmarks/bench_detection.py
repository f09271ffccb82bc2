"""Benchmark: array change detection of one region at 10 m over a year of scenes.

Generates a local archive with the demo generator (same COG/STAC layout as Earth
Search, every 5-day scene, 10 m bands, 20 m SWIR/SCL), then measures, each in a fresh
process so peak RSS is the phase's own:

- ``floor``: reading exactly the pixels detection reads (same windows, same reader,
  same threads), nothing else: the time no detector on these files can beat;
- ``detect``: the full stac code path (steps 2-8);

and reports ``ratio = detect / floor`` (target <= 1.2), detection peak RSS (<= 1 GiB) and
whether its class and observed rasters equal those of the code before the optimisations
(``reference_digests.json``, per archive version).
The phases alternate (floor, detect, floor, detect) and each keeps its fastest run:
on a shared machine the minimum is the least disturbed measurement of each.

``--demo29`` instead times what ``make demo`` does: archive generation for the 29 Java
regions plus detection with 3 regions in flight.

    .venv/bin/python benchmarks/bench_detection.py            # 20 x 20 km at 10 m
    .venv/bin/python benchmarks/bench_detection.py --quick    # 5 x 5 km, for a smoke run
    .venv/bin/python benchmarks/bench_detection.py --demo29
    BENCH_COMPRESS=zstd .venv/bin/python benchmarks/bench_detection.py   # the demo's codec

Results are printed as JSON and written to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import rasterio

from ccapi_monitor.detection.demo import DemoBackend, DemoConfig
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.detection.stac import (
    GDAL_OPTIONS,
    REQUIRED_ASSETS,
    RegionClasses,
    Scene,
    StacBackend,
    asset_href,
    read_on_grid,
)
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region, box, load_regions

RUN_DATE = date(2025, 8, 13)
COMPRESS = os.environ.get("BENCH_COMPRESS", "deflate")
RESULTS = Path(__file__).resolve().parent / "results"
#: Digests of the step-5 rasters that the code before the optimisations of issue 13 gave,
#: per archive version and region: the optimised code must give the same pixels.
REFERENCE_DIGESTS = Path(__file__).resolve().parent / "reference_digests.json"


def bench_region(km: float) -> Region:
    """A square region of ``km`` x ``km`` near Karawang (UTM 48S)."""
    west, south = 107.30, -6.45
    deg = km / 111.0
    return Region(
        name=f"bench{km:g}km",
        province="bench",
        focus="urban",
        priority=1,
        tier=1,
        geometry=box(west, south, west + deg, south + deg),
    )


def config() -> DemoConfig:
    """10 m, every 5-day scene, deflate COGs as Earth Search serves them."""
    return DemoConfig(scale_m=10.0, baseline_step=1, compress=COMPRESS)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def phase_generate(archive: Path, km: float) -> dict[str, Any]:
    backend = DemoBackend(DetectionParams(), archive, config())
    start = time.perf_counter()
    backend.prepare([bench_region(km)], RUN_DATE)
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib()}


class RecordingBackend(StacBackend):
    """The stac backend, keeping the step-5 rasters of its last region for the pixel check."""

    last: RegionClasses | None = None

    def classify_region(self, *args: Any, **kwargs: Any) -> RegionClasses:
        self.last = super().classify_region(*args, **kwargs)
        return self.last


def raster_digest(raster: RegionClasses) -> str:
    """SHA-256 of the class and observed rasters: equal digests, equal pixels."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(raster.classes).tobytes())
    digest.update(np.ascontiguousarray(raster.observed).tobytes())
    return digest.hexdigest()


def phase_detect(archive: Path, km: float, threads: int) -> dict[str, Any]:
    region = bench_region(km)
    demo = DemoBackend(DetectionParams(), archive, config())
    items = demo.archive.items_path(region.name, RUN_DATE)
    backend = RecordingBackend(demo.params, str(items), io_threads=threads)
    start = time.perf_counter()
    result = backend.detect(region, RUN_DATE)
    seconds = time.perf_counter() - start
    digest = raster_digest(cast(RegionClasses, backend.last))
    reference = json.loads(REFERENCE_DIGESTS.read_text()).get(f"{items.parent.parent.name}/{region.name}")
    return {
        "pixels_digest": digest,
        "pixels_equal_to_reference": None if reference is None else digest == reference,
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "status": result.status,
        "observed_fraction": result.observed_fraction,
        "area_ha": result.area_ha,
        "polygon_count": result.polygon_count,
        "scenes": result.scenes,
        "grid": result.details["grid"],
    }


def phase_floor(archive: Path, km: float, threads: int) -> dict[str, Any]:
    """Decode every window detection decodes (same windows, same threads), nothing else.

    Only ``read_on_grid`` per asset: no DN scaling, no mosaic, no indices.
    """
    region = bench_region(km)
    demo = DemoBackend(DetectionParams(), archive, config())
    backend = StacBackend(
        demo.params, str(demo.archive.items_path(region.name, RUN_DATE)), io_threads=threads
    )
    scenes = backend.scenes(region, demo.params.windows(RUN_DATE))
    grid = RegionGrid.for_region(region, demo.params.scale_m)
    inside = grid.mask(region.geometry)
    base = backend._base

    def read(scene: Scene, rows: tuple[int, int]) -> int:
        total = 0
        with rasterio.Env(**GDAL_OPTIONS):
            for item in scene.items:
                for key in REQUIRED_ASSETS:
                    total += read_on_grid(asset_href(item.assets[key], base), grid, rows, 0).shape[0]
        return total

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for rows in grid.strips(backend.strip_rows):
            if inside[rows[0] : rows[1]].any():
                list(pool.map(lambda s, rows=rows: read(s, rows), scenes))
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib(), "scenes": len(scenes)}


def phase_demo29(archive: Path) -> dict[str, Any]:
    regions = load_regions()
    backend = DemoBackend(DetectionParams(), archive)
    load_before = os.getloadavg()
    cpu0 = time.process_time()
    start = time.perf_counter()
    backend.prepare(regions, RUN_DATE)
    generated = time.perf_counter() - start
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda r: backend.detect(r, RUN_DATE), regions))
    total = time.perf_counter() - start
    return {
        "regions": len(regions),
        "generate_s": round(generated, 2),
        "detect_s": round(total - generated, 2),
        "total_s": round(total, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "statuses": sorted({r.status for r in results}),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def machine() -> dict[str, Any]:
    """How busy the machine was: figures from a shared 2-core machine are only comparable as ratios."""
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}


def write_result(name: str, summary: dict[str, Any]) -> None:
    """Print the summary as JSON and keep it in ``benchmarks/results/name``."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


def child(phase: str, *args: str, script: str = __file__) -> dict[str, Any]:
    """Run one phase of ``script`` in a fresh interpreter (its own peak RSS) and return its JSON."""
    module = f"benchmarks.{Path(script).stem}"
    out = subprocess.run(
        [sys.executable, "-m", module, "--phase", phase, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 x 5 km instead of 20 x 20 km")
    parser.add_argument("--km", type=float, default=None, help="region side in km")
    parser.add_argument("--threads", type=int, default=2, help="reader threads")
    parser.add_argument("--archive", type=Path, default=None, help="reuse/keep the archive here")
    parser.add_argument(
        "--demo29", action="store_true", help="time make-demo: 29 regions, generation + detection"
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    km = args.km or (5.0 if args.quick else 20.0)

    if args.phase:  # inside a child process
        phases = {
            "generate": lambda: phase_generate(args.dir, km),
            "detect": lambda: phase_detect(args.dir, km, args.threads),
            "floor": lambda: phase_floor(args.dir, km, args.threads),
            "demo29": lambda: phase_demo29(args.dir),
        }
        print(json.dumps(phases[args.phase]()))
        return

    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        archive = args.archive or Path(tmp)
        if args.demo29:
            summary: dict[str, Any] = {
                "benchmark": "make-demo-29-regions",
                **child("demo29", "--dir", str(archive)),
            }
        else:
            common = ["--dir", str(archive), "--km", str(km), "--threads", str(args.threads)]
            generated = child("generate", *common)
            floors, detects = [], []
            for _ in range(2):
                floors.append(child("floor", *common))
                detects.append(child("detect", *common))
            floor = min(f["seconds"] for f in floors)
            detect = min(detects, key=lambda d: float(d["seconds"]))
            summary = {
                "benchmark": "detection-10m-one-region",
                "region_km": km,
                "run_date": RUN_DATE.isoformat(),
                "scenes": floors[0]["scenes"],
                "grid": detect["grid"],
                "reader_threads": args.threads,
                "compression": COMPRESS,
                "generate_s": round(generated["seconds"], 2),
                "detect_s": round(detect["seconds"], 2),
                "read_floor_s": round(floor, 2),
                "runs_detect_s": [round(d["seconds"], 2) for d in detects],
                "runs_read_floor_s": [round(f["seconds"], 2) for f in floors],
                "ratio_detect_to_floor": round(detect["seconds"] / floor, 3),
                "ratio_target": 1.2,
                "detect_peak_rss_mib": round(max(d["peak_rss_mib"] for d in detects), 1),
                "pixels_equal_to_reference": detect["pixels_equal_to_reference"],
                "pixels_digest": detect["pixels_digest"],
                "rss_limit_mib": 1024,
                "result": {
                    k: detect[k]
                    for k in ("status", "observed_fraction", "area_ha", "polygon_count", "scenes")
                },
                **machine(),
            }
    write_result(
        "bench_detection_demo29.json"
        if args.demo29
        else f"bench_detection_{km:g}km_{COMPRESS}_{args.threads}t.json",
        summary,
    )


if __name__ == "__main__":
    main()
