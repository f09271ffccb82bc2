"""Benchmark: the stac path over HTTP, against the transfer floor of the bytes it needs.

The COGs of the detection benchmark's archive are served from 127.0.0.1 by
:mod:`benchmarks.remote_server` with an injected round trip (default 50 ms, as from a
task in another region than the bucket) and a bandwidth cap shared by all connections
(default 4 MB/s, low enough that the transfer, not this shared machine's CPUs, is what
is measured). The items file is rewritten to ``http://`` hrefs, so the reads go through
GDAL's ``/vsicurl/`` exactly as against Earth Search.

Floor, computed from the files: the bytes of every internal tile the region's windows
touch (headers not counted, so it is strict) / bandwidth + 2 round trips (open, read).
Each configuration runs in a fresh process with its GDAL settings (no cache survives
between runs) and is reported as ``ratio_to_floor`` with the requests
and bytes the server saw. ``default`` is what GDAL does with only the settings the stac
backend had before tuning; ``tuned`` is :data:`ccapi_monitor.detection.gdal_env.REMOTE_READ_OPTIONS`.

    .venv/bin/python -m benchmarks.bench_remote --archive /tmp/bench-archive
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pystac
import rasterio
from rasterio.windows import from_bounds

from benchmarks.bench_detection import RUN_DATE, bench_region, child, machine, peak_rss_mib, write_result
from benchmarks.bench_peer import items_file
from benchmarks.remote_server import RemoteServer
from ccapi_monitor.detection.gdal_env import REMOTE_READ_OPTIONS, remote_io_threads
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.detection.stac import REQUIRED_ASSETS, StacBackend
from ccapi_monitor.params import DetectionParams

#: The settings the stac backend used before this benchmark existed.
UNTUNED: dict[str, str] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "3"}


def remote_items(local: Path, url: str, out: Path) -> Path:
    """The items file with every asset href pointing at the server."""
    collection = pystac.ItemCollection.from_file(str(local))
    root = local.resolve().parent.parent  # the archive version directory the server serves
    for item in collection:
        for asset in item.assets.values():
            path = (local.resolve().parent / asset.href).resolve()
            asset.href = f"{url}/{path.relative_to(root).as_posix()}"
    out.write_text(json.dumps(collection.to_dict()))
    return out


def needed_bytes(local: Path, km: float) -> tuple[int, int]:
    """Bytes of the internal tiles the region's reads touch, and the number of files."""
    region = bench_region(km)
    params = DetectionParams()
    backend = StacBackend(params, str(local))
    grid = RegionGrid.for_region(region, params.scale_m)
    total, files = 0, 0
    base = local.resolve().parent
    for scene in backend.scenes(region, params.windows(RUN_DATE)):
        for item in scene.items:
            for key in REQUIRED_ASSETS:
                with rasterio.open(base / item.assets[key].href) as src:
                    window = from_bounds(*grid.bounds, transform=src.transform)
                    height, width = src.block_shapes[0]
                    r0 = max(0, math.floor(window.row_off) // height)
                    r1 = min(
                        math.ceil(src.height / height),
                        math.ceil(window.row_off + window.height) // height + 1,
                    )
                    c0 = max(0, math.floor(window.col_off) // width)
                    c1 = min(
                        math.ceil(src.width / width), math.ceil(window.col_off + window.width) // width + 1
                    )
                    total += sum(src.block_size(1, r, c) for r in range(r0, r1) for c in range(c0, c1))
                    files += 1
    return total, files


def phase_read(items: Path, km: float, threads: int, options: dict[str, str]) -> dict[str, Any]:
    backend = StacBackend(DetectionParams(), str(items), io_threads=threads, gdal_options=options)
    start = time.perf_counter()
    result = backend.detect(bench_region(km), RUN_DATE)
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
        "area_ha": result.area_ha,
    }


def configurations() -> list[tuple[str, dict[str, str], int]]:
    tuned_threads = remote_io_threads()
    return [
        ("default_2_threads", UNTUNED, 2),
        (f"default_{tuned_threads}_threads", UNTUNED, tuned_threads),
        ("tuned_2_threads", REMOTE_READ_OPTIONS, 2),
        (f"tuned_{tuned_threads}_threads", REMOTE_READ_OPTIONS, tuned_threads),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--km", type=float, default=5.0, help="region side in km (inside the 20 km archive)")
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--mb-per-s", type=float, default=4.0, help="bandwidth cap, MB/s")
    parser.add_argument("--archive", type=Path, default=None, help="reuse/keep the 20 km archive here")
    parser.add_argument("--only", nargs="*", help="configuration names to run")
    parser.add_argument(
        "--try",
        dest="trial",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="also run the tuned settings with these overrides (for tuning)",
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--items", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--gdal", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "read":
        print(json.dumps(phase_read(args.items, args.km, args.threads, json.loads(args.gdal))))
        return
    if args.phase == "generate":
        from benchmarks.bench_detection import phase_generate

        print(json.dumps(phase_generate(args.dir, 20.0)))
        return

    bandwidth = args.mb_per_s * 1e6
    rtt = args.rtt_ms / 1000.0
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        archive = args.archive or Path(tmp) / "archive"
        local = items_file(archive, bench_region(20.0))
        if not local.exists():
            child("generate", "--dir", str(archive), script=__file__)
        need, files = needed_bytes(local, args.km)
        floor = need / bandwidth + 2 * rtt
        runs = []
        # Bounded: the server stops by itself after an hour even if this process is killed.
        with RemoteServer(
            local.resolve().parent.parent, round_trip_s=rtt, bytes_per_s=bandwidth, lifetime_s=3600
        ) as server:
            items = remote_items(local, server.url, Path(tmp) / "remote-items.json")
            trial = dict(kv.split("=", 1) for kv in args.trial)
            extra = [("trial", {**REMOTE_READ_OPTIONS, **trial}, remote_io_threads())] if trial else []
            for name, options, threads in [*configurations(), *extra]:
                if args.only is not None and name not in args.only and name != "trial":
                    continue
                server.reset()
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.bench_remote",
                        "--phase",
                        "read",
                        "--items",
                        str(items),
                        "--km",
                        str(args.km),
                        "--threads",
                        str(threads),
                        "--gdal",
                        json.dumps(options),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                traffic = server.traffic
                runs.append(
                    {
                        "configuration": name,
                        "reader_threads": threads,
                        "gdal": options,
                        "seconds": round(result["seconds"], 2),
                        "ratio_to_floor": round(result["seconds"] / floor, 3),
                        "requests": traffic.requests,
                        "bytes_sent": traffic.bytes_sent,
                        "bytes_over_needed": round(traffic.bytes_sent / need, 3),
                        "peak_rss_mib": round(result["peak_rss_mib"], 1),
                        "area_ha": result["area_ha"],
                    }
                )
    summary = {
        "benchmark": "remote-reads",
        "region_km": args.km,
        "round_trip_ms": args.rtt_ms,
        "bandwidth_mb_per_s": args.mb_per_s,
        "files": files,
        "needed_bytes": need,
        "floor_s": round(floor, 2),
        "ratio_target": 1.3,
        "runs": runs,
        **machine(),
    }
    write_result(f"bench_remote_{args.km:g}km.json", summary)


if __name__ == "__main__":
    main()
