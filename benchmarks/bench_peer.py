"""Benchmark: our detector against the same rules written the xarray way (odc-stac + dask).

The peer is what a competent user without this project would write: ``odc.stac.load``
onto the region's grid (same-day items fused by ``groupby="solar_day"``, dask chunks),
scale and offset from ``raster:bands``, the SCL mask and indices as xarray expressions,
``DataArray.quantile`` for the baseline percentiles, reductions for the current and
persistence windows, one ``dask.compute``. Steps 6-8 (minimum mapping unit, areas,
polygons) are the same function for both, so the comparison is about reading and the
per-pixel statistics, where the time goes.

Each side runs in a fresh process (its own peak RSS), alternating (ours, peer, ours,
peer); each keeps its fastest run, the least disturbed on a shared machine. Reported:
``ratio_peer_to_ours`` (target >= 1.5) and the share of region pixels both classify
the same way, before and after the minimum mapping unit (target >= 99.9 %).

    .venv/bin/python -m benchmarks.bench_peer --archive /tmp/bench-archive   # 20 x 20 km
    .venv/bin/python -m benchmarks.bench_peer --quick                         # 5 x 5 km

Needs the ``bench`` extra (``make bench`` installs it): odc-stac, xarray, dask.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.bench_detection import (
    COMPRESS,
    RUN_DATE,
    bench_region,
    child,
    config,
    machine,
    peak_rss_mib,
    phase_generate,
    write_result,
)
from ccapi_monitor.detection.arrays import measure_region, remove_small_components
from ccapi_monitor.detection.demo import DemoBackend
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.detection.stac import REQUIRED_ASSETS, SCL_ASSET, BandScaling, StacBackend, check_offset
from ccapi_monitor.params import CLASS_VALUES, DetectionParams
from ccapi_monitor.regions import Region

#: Spatial chunk of the peer's dask arrays: 512 x 512 pixels, a common choice that keeps
#: a year of one chunk (85 x 512 x 512 float32, 85 MB) well within memory.
PEER_CHUNK = 512


@dataclass
class ClassRaster:
    """Step-5 classes (before the minimum mapping unit) and the observed mask of a region."""

    classes: NDArray[np.uint8]
    observed: NDArray[np.bool_]


def items_file(archive: Path, region: Region) -> Path:
    demo = DemoBackend(DetectionParams(), archive, config())
    return demo.archive.items_path(region.name, RUN_DATE)


def peer_classify(items_path: Path, region: Region, params: DetectionParams, run_date: date) -> ClassRaster:
    """docs/design/detection.md steps 1-5 with odc-stac + xarray + dask, the way the user guides show."""
    import dask
    import odc.stac
    import pystac
    import xarray as xr
    from odc.geo.geobox import GeoBox
    from shapely.geometry import shape

    windows = params.windows(run_date)
    grid = RegionGrid.for_region(region, params.scale_m)
    items = [
        item
        for item in pystac.ItemCollection.from_file(str(items_path))
        if item.datetime is not None
        and windows.span.contains(item.datetime.date())
        and shape(item.geometry).intersects(region.geometry)
    ]
    base = items_path.resolve().parent
    for item in items:  # the archive's hrefs are relative to the items file
        for asset in item.assets.values():
            asset.href = str((base / asset.href).resolve())
    ds = odc.stac.load(
        items,
        bands=list(REQUIRED_ASSETS),
        geobox=GeoBox((grid.height, grid.width), grid.transform, f"EPSG:{grid.epsg}"),
        groupby="solar_day",
        resampling="nearest",
        chunks={"x": PEER_CHUNK, "y": PEER_CHUNK},
    )
    days = [np.datetime64(t, "D").astype(object) for t in ds.time.values]
    by_day = {item.datetime.date(): item for item in items if item.datetime is not None}
    bands = [key for key in REQUIRED_ASSETS if key != SCL_ASSET]
    declared = {day: BandScaling.of(by_day[day].assets["red"]) for day in days}
    # docs/design/detection.md step 1: check each item's declared offset against its pixels. Like the
    # stac backend, judge on the region's first 512 rows (one small extra compute).
    sample = ds.isel(y=slice(0, 512))
    sample_np = dict(
        zip(sample.data_vars, dask.compute(*[sample[k].data for k in sample.data_vars]), strict=True)
    )
    shifts = []
    for i, day in enumerate(days):
        dns = {k: sample_np[k][i] for k in bands}
        scl = np.where(np.all([dn != 0 for dn in dns.values()], axis=0), sample_np[SCL_ASSET][i], 0)
        verdict = check_offset(
            by_day[day], dns, scl.astype(np.uint8), declared[day], params.offset_check_share
        )
        offset = declared[day].offset if verdict is None else verdict[0]
        shifts.append(offset / declared[day].scale)
    shift = xr.DataArray(np.asarray(shifts, dtype=np.float32), dims="time", coords={"time": ds.time})

    dn = {key: ds[key] for key in bands}
    refl = {key: band.astype(np.float32) + shift for key, band in dn.items()}
    green, red, nir = refl["green"], refl["red"], refl["nir"]
    # Clear: kept SCL class, every band read holds data and is above 0 after scaling.
    clear = ds[SCL_ASSET].isin(list(params.scl_clear))
    for key, band in dn.items():
        clear = clear & (band != 0) & (refl[key] > 0)
    ndvi = ((nir - red) / (nir + red)).where(clear)
    ndwi = ((green - nir) / (green + nir)).where(clear)

    def in_window(window: Any) -> list[int]:
        return [i for i, day in enumerate(days) if window.contains(day)]

    baseline = ndvi.isel(time=in_window(windows.baseline)).chunk(time=-1)
    percentiles = baseline.quantile([0.10, 0.90], dim="time", skipna=True)
    baseline_count = clear.isel(time=in_window(windows.baseline)).sum("time")
    # NDVI_now: mean of the latest ``recent_obs`` clear observations in the current window.
    current = ndvi.isel(time=in_window(windows.current)[::-1])
    rank = current.notnull().cumsum("time")
    ndvi_now = current.where(rank <= params.recent_obs).mean("time")
    current_count = clear.isel(time=in_window(windows.current)).sum("time")

    def bare_and_dry(window: Any) -> Any:
        """Every clear observation of the window below the built-up NDVI and NDWI limits, >= 2 of them."""
        index = in_window(window)
        return (
            (ndvi.isel(time=index).max("time") < params.built_max_ndvi)
            & (ndwi.isel(time=index).max("time") < params.built_max_ndwi)
            & (clear.isel(time=index).sum("time") >= params.built_min_obs)
        )

    # Seasonal-bare guard: bare and dry through one of last year's same-season spans.
    seasonal_bare = xr.zeros_like(clear.isel(time=0), dtype=bool)
    for span in windows.fallow:
        seasonal_bare = seasonal_bare | bare_and_dry(span)

    p10 = percentiles.sel(quantile=0.10)
    p90 = percentiles.sel(quantile=0.90)
    observed = (baseline_count >= params.min_baseline_obs) & (current_count >= 1)
    clearing = (
        (p10 >= params.stable_veg_p10)
        & (ndvi_now < p10 - params.clearing_drop)
        & (ndvi_now < params.cleared_ndvi)
    )
    built = (p90 >= params.green_p90) & bare_and_dry(windows.persistence) & ~seasonal_bare
    classes = xr.where(
        clearing & observed,
        CLASS_VALUES["vegetation_clearing"],
        xr.where(built & observed, CLASS_VALUES["built_up"], 0),
    ).astype(np.uint8)
    with dask.config.set(scheduler="threads", num_workers=os.cpu_count() or 2):
        classes_np, observed_np = dask.compute(classes.data, observed.data)
    return ClassRaster(np.asarray(classes_np, dtype=np.uint8), np.asarray(observed_np, dtype=bool))


def timed(km: float, out: Path, classify: Callable[[Region, DetectionParams], ClassRaster]) -> dict[str, Any]:
    """Steps 1-5 by ``classify``, then the shared steps 6-8; time, peak RSS, and the raster kept in ``out``."""
    region = bench_region(km)
    params = DetectionParams()
    start = time.perf_counter()
    raster = classify(region, params)
    grid = RegionGrid.for_region(region, params.scale_m)
    measure = measure_region(
        raster.classes, raster.observed, grid.mask(region.geometry), grid, params, region.name
    )
    seconds = time.perf_counter() - start
    np.savez_compressed(out, classes=raster.classes, observed=raster.observed)
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "area_ha": measure.area_ha}


def phase_ours(archive: Path, km: float, threads: int, out: Path) -> dict[str, Any]:
    def ours(region: Region, params: DetectionParams) -> ClassRaster:
        backend = StacBackend(params, str(items_file(archive, bench_region(20.0))), io_threads=threads)
        scenes = backend.scenes(region, params.windows(RUN_DATE))
        raster = backend.classify_region(region, RUN_DATE, scenes)
        return ClassRaster(raster.classes, raster.observed)

    return timed(km, out, ours)


def phase_peer(archive: Path, km: float, out: Path) -> dict[str, Any]:
    path = items_file(archive, bench_region(20.0))
    return timed(km, out, lambda region, params: peer_classify(path, region, params, RUN_DATE))


def agreement(ours: Path, peer: Path, km: float) -> dict[str, Any]:
    """Share of region pixels with the same class (and the same observed flag)."""
    region = bench_region(km)
    params = DetectionParams()
    grid = RegionGrid.for_region(region, params.scale_m)
    inside = grid.mask(region.geometry)
    a, b = np.load(ours), np.load(peer)
    n = int(inside.sum())

    def after_mmu(classes: NDArray[np.uint8]) -> NDArray[np.uint8]:
        clipped = np.where(inside, classes, 0).astype(np.uint8)
        labels, _ = remove_small_components(clipped, params.mmu_pixels)
        return np.where(labels > 0, clipped, 0).astype(np.uint8)

    same = (a["classes"] == b["classes"]) & inside
    changed = inside & ((a["classes"] > 0) | (b["classes"] > 0))
    return {
        "pixels": n,
        "class_agreement": round(float(same.sum()) / n, 6),
        "class_agreement_after_mmu": round(
            float(((after_mmu(a["classes"]) == after_mmu(b["classes"])) & inside).sum()) / n, 6
        ),
        "observed_agreement": round(float(((a["observed"] == b["observed"]) & inside).sum()) / n, 6),
        "changed_pixels_ours": int(((a["classes"] > 0) & inside).sum()),
        "changed_pixels_peer": int(((b["classes"] > 0) & inside).sum()),
        "changed_pixels_disagreeing": int((changed & ~same).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 x 5 km inside the 20 km archive")
    parser.add_argument("--threads", type=int, default=2, help="our reader threads")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side (fastest kept)")
    parser.add_argument("--archive", type=Path, default=None, help="reuse/keep the 20 km archive here")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--km", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    km = args.km or (5.0 if args.quick else 20.0)

    if args.phase:  # inside a child process
        phases = {
            "ours": lambda: phase_ours(args.dir, km, args.threads, args.out),
            "peer": lambda: phase_peer(args.dir, km, args.out),
            "generate": lambda: phase_generate(args.dir, 20.0),
        }
        print(json.dumps(phases[args.phase]()))
        return

    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        archive = args.archive or Path(tmp) / "archive"
        if not items_file(archive, bench_region(20.0)).exists():
            child("generate", "--dir", str(archive), script=__file__)
        common = ["--dir", str(archive), "--km", str(km), "--threads", str(args.threads)]
        ours_runs, peer_runs = [], []
        for i in range(args.repeat):
            ours_runs.append(child("ours", *common, "--out", f"{tmp}/ours{i}.npz", script=__file__))
            peer_runs.append(child("peer", *common, "--out", f"{tmp}/peer{i}.npz", script=__file__))
        ours = min(ours_runs, key=lambda r: float(r["seconds"]))
        peer = min(peer_runs, key=lambda r: float(r["seconds"]))
        agree = agreement(Path(f"{tmp}/ours0.npz"), Path(f"{tmp}/peer0.npz"), km)
    summary = {
        "benchmark": "peer-odc-stac-xarray-dask",
        "region_km": km,
        "run_date": RUN_DATE.isoformat(),
        "compression": COMPRESS,
        "ours_s": round(ours["seconds"], 2),
        "peer_s": round(peer["seconds"], 2),
        "runs_ours_s": [round(r["seconds"], 2) for r in ours_runs],
        "runs_peer_s": [round(r["seconds"], 2) for r in peer_runs],
        "ratio_peer_to_ours": round(peer["seconds"] / ours["seconds"], 3),
        "ratio_target": 1.5,
        "ours_peak_rss_mib": round(max(r["peak_rss_mib"] for r in ours_runs), 1),
        "peer_peak_rss_mib": round(max(r["peak_rss_mib"] for r in peer_runs), 1),
        "area_ha": {"ours": ours["area_ha"], "peer": peer["area_ha"]},
        "agreement": agree,
        "agreement_target": 0.999,
        **machine(),
    }
    write_result(f"bench_peer_{km:g}km.json", summary)


if __name__ == "__main__":
    main()
