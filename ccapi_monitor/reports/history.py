"""GeoParquet for analysts: ``changes.parquet`` per run and the curated history of every week.

Layout under the reports root (see docs/history.md for queries and the Athena DDL)::

    weekly/{run_date}/{run_id}/changes.parquet      the run's polygons (same rows as changes.geojson)
    history/changes/run_date={date}/part-0.parquet  polygons of the week's published run
    history/regions/run_date={date}/part-0.parquet  one row per region of that run, outline as geometry

The history is Hive-partitioned by ``run_date`` (DuckDB's ``hive_partitioning`` and
Athena's partition projection read the date from the path, so the files do not repeat
it). Each published run writes its week's two partitions, replacing whatever a previous
run of the same week wrote: a rerun replaces, two weeks append. :func:`rebuild_history`
makes the same files again from the runs under ``weekly/`` alone, so it is idempotent
and repairs a history lost or written by an older version.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Final

import structlog
from shapely.geometry import shape

from ccapi_monitor.models import ChangePolygon, RunSummary
from ccapi_monitor.reports.layout import run_prefix
from ccapi_monitor.storage import Store

if TYPE_CHECKING:  # geopandas, pandas and pyarrow load only when a run publishes
    import geopandas as gpd

log = structlog.get_logger(__name__)

HISTORY_TABLES: Final = ("changes", "regions")
PART: Final = "part-0.parquet"
PARQUET_TYPE: Final = "application/vnd.apache.parquet"
#: Statuses of a run whose results are published (the rule that moves ``latest.json``).
PUBLISHED: Final = ("succeeded", "partial")
CRS: Final = "EPSG:4326"

CHANGE_COLUMNS: Final = (
    "run_id",
    "run_date",
    "region",
    "class",
    "change",
    "area_ha",
    "first_detected",
    "centroid_lon",
    "centroid_lat",
)
REGION_COLUMNS: Final = (
    "run_id",
    "run_date",
    "region",
    "province",
    "focus",
    "tier",
    "status",
    "observed_fraction",
    "area_ha_vegetation_clearing",
    "area_ha_built_up",
    "new_area_ha_vegetation_clearing",
    "new_area_ha_built_up",
    "polygon_count",
    "score",
    "label",
    "infrastructure_score",
    "error",
)


def partition_key(table: str, run_date: date) -> str:
    return f"history/{table}/run_date={run_date.isoformat()}/{PART}"


@functools.cache
def _types() -> dict[str, Any]:
    """Arrow types of the columns, so a column that is empty or all null in one week still
    has the type Athena's DDL declares (pandas would write Parquet's "null" type)."""
    import pyarrow as pa

    return {
        "run_id": pa.string(),
        "run_date": pa.date32(),
        "region": pa.string(),
        "class": pa.string(),
        "change": pa.string(),
        "area_ha": pa.float64(),
        "first_detected": pa.date32(),
        "centroid_lon": pa.float64(),
        "centroid_lat": pa.float64(),
        "province": pa.string(),
        "focus": pa.string(),
        "tier": pa.int64(),
        "status": pa.string(),
        "observed_fraction": pa.float64(),
        "area_ha_vegetation_clearing": pa.float64(),
        "area_ha_built_up": pa.float64(),
        "new_area_ha_vegetation_clearing": pa.float64(),
        "new_area_ha_built_up": pa.float64(),
        "polygon_count": pa.int64(),
        "score": pa.float64(),
        "label": pa.string(),
        "infrastructure_score": pa.float64(),
        "error": pa.string(),
    }


def _frame(rows: list[dict[str, Any]], geometries: list[Any], columns: Sequence[str]) -> gpd.GeoDataFrame:
    import geopandas as gpd
    import pandas as pd

    types = _types()
    data = {c: pd.array([row[c] for row in rows], dtype=pd.ArrowDtype(types[c])) for c in columns}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometries, crs=CRS), crs=CRS)


def changes_frame(run_id: str, run_date: date, polygons: Iterable[ChangePolygon]) -> gpd.GeoDataFrame:
    """One row per change polygon: the changes.geojson properties, centroid split in two columns."""
    rows, geometries = [], []
    for p in polygons:
        rows.append(
            {
                "run_id": run_id,
                "run_date": run_date,
                "region": p.region,
                "class": p.change_class,
                "change": p.change,
                "area_ha": float(p.area_ha),
                "first_detected": p.first_detected,
                "centroid_lon": float(p.centroid[0]),
                "centroid_lat": float(p.centroid[1]),
            }
        )
        geometries.append(shape(p.geometry))
    return _frame(rows, geometries, CHANGE_COLUMNS)


def _region_row(run_id: str, run_date: date, region: Mapping[str, Any]) -> dict[str, Any]:
    """A region of report.json (``RegionResult`` dumped as JSON) as a flat row."""
    area = region.get("area_ha") or {}
    new = region.get("new_area_ha") or {}
    score = region.get("score") or {}
    infra = region.get("infrastructure") or {}
    return {
        "run_id": run_id,
        "run_date": run_date,
        "region": region["name"],
        "province": region.get("province"),
        "focus": region.get("focus"),
        "tier": region.get("tier"),
        "status": region.get("status"),
        "observed_fraction": region.get("observed_fraction"),
        "area_ha_vegetation_clearing": area.get("vegetation_clearing"),
        "area_ha_built_up": area.get("built_up"),
        "new_area_ha_vegetation_clearing": new.get("vegetation_clearing"),
        "new_area_ha_built_up": new.get("built_up"),
        "polygon_count": region.get("polygon_count", 0),
        "score": score.get("value"),
        "label": score.get("label"),
        "infrastructure_score": infra.get("score"),
        "error": region.get("error"),
    }


def regions_frame(
    run_id: str,
    run_date: date,
    regions: Iterable[Mapping[str, Any]],
    outlines: Mapping[str, Mapping[str, Any]],
) -> gpd.GeoDataFrame:
    """One row per region; ``outlines`` (region name to GeoJSON geometry) give the geometry, else null."""
    rows, geometries = [], []
    for region in regions:
        rows.append(_region_row(run_id, run_date, region))
        outline = outlines.get(region["name"])
        geometries.append(shape(outline) if outline else None)
    return _frame(rows, geometries, REGION_COLUMNS)


def to_parquet_bytes(frame: gpd.GeoDataFrame) -> bytes:
    """GeoParquet (geometry as WKB, ``geo`` metadata with the CRS), zstd-compressed."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def changes_parquet(summary: RunSummary) -> bytes:
    """The run's ``changes.parquet``: the rows of ``changes.geojson``, with the run's id and date."""
    polygons = [p for r in summary.regions for p in r.polygons]
    return to_parquet_bytes(changes_frame(summary.run_id, summary.run_date, polygons))


def _write_partition(store: Store, table: str, run_date: date, frame: gpd.GeoDataFrame) -> str:
    """Replace the week's partition: the new file first, then anything else left in the folder."""
    key = partition_key(table, run_date)
    uri = store.write_bytes(key, to_parquet_bytes(frame.drop(columns=["run_date"])), PARQUET_TYPE)
    folder = key.rsplit("/", 1)[0] + "/"
    for stale in store.list_keys(folder):
        if stale != key:
            store.delete(stale)
    return uri


def write_history(
    store: Store,
    run_id: str,
    run_date: date,
    report: Mapping[str, Any],
    polygons: Sequence[ChangePolygon],
    outlines: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """The week's partitions of both tables from one published run's report and polygons."""
    uris = {
        "changes": _write_partition(store, "changes", run_date, changes_frame(run_id, run_date, polygons)),
        "regions": _write_partition(
            store, "regions", run_date, regions_frame(run_id, run_date, report.get("regions") or [], outlines)
        ),
    }
    log.info("history.written", run_id=run_id, run_date=run_date.isoformat(), **uris)
    return uris


def published_runs(store: Store) -> dict[date, str]:
    """For each week under ``weekly/``, the newest run whose report says it published regions.

    Run ids sort by start time within a date, so the newest published run of a week is
    the one a rerun left as that week's answer.
    """
    runs: dict[tuple[str, str], set[str]] = {}
    for key in store.list_keys("weekly/"):
        parts = key.split("/")
        if len(parts) == 4:
            runs.setdefault((parts[1], parts[2]), set()).add(parts[3])
    chosen: dict[date, str] = {}
    for (day, run_id), files in sorted(runs.items()):
        try:
            run_date = date.fromisoformat(day)
        except ValueError:
            continue
        if not {"report.json", "changes.geojson"} <= files:
            continue
        report = _read_json(store, f"{run_prefix(run_date, run_id)}/report.json")
        if isinstance(report, dict) and report.get("status") in PUBLISHED:
            chosen[run_date] = run_id  # sorted: a later run of the same date wins
    return chosen


def _read_json(store: Store, key: str) -> Any:
    raw = store.read_bytes(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.warning("history.unreadable", key=key)
        return None


def rebuild_history(store: Store, outlines: Mapping[str, Mapping[str, Any]]) -> dict[date, str]:
    """Write every week's partitions again from the published runs; drop partitions of no such week.

    Running it twice gives the same tables. Returns the run chosen for each week.
    """
    from ccapi_monitor.changes import polygons_from_geojson

    chosen = published_runs(store)
    for run_date, run_id in sorted(chosen.items()):
        prefix = run_prefix(run_date, run_id)
        report = _read_json(store, f"{prefix}/report.json")
        polygons = polygons_from_geojson(_read_json(store, f"{prefix}/changes.geojson"))
        write_history(store, run_id, run_date, report, polygons, outlines)
    weeks = {f"run_date={d.isoformat()}" for d in chosen}
    for table in HISTORY_TABLES:
        for key in store.list_keys(f"history/{table}/"):
            if key.split("/")[2] not in weeks:
                store.delete(key)
    log.info("history.rebuilt", weeks=len(chosen))
    return chosen
