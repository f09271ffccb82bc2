"""Fan-out: shards compute regions into the cache store, one assemble step publishes the run.

A Step Functions Map runs one worker per shard (``run --shard K/N --run-id ID``); each
writes every region's result, failed ones included, under ``fanout/{run_date}/{run_id}/``
in the cache store, plus a shard record saying when it ran and on what imagery. Nothing
is published by a shard. ``assemble`` then reads one result per selected region: a region
without a result (its shard crashed, timed out or never started) is *failed*, never zero.
Results travel through the store (S3 in production); the state machine only carries small
summaries, since Step Functions payloads are capped at 256 KiB. See docs/scaling.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import structlog
from pydantic import BaseModel, Field

from ccapi_monitor.detection.ee_quota import PROJECT_QUOTA
from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.models import ImageryCorrection, ImageryInfo, PreviousRunInfo, RegionResult, RunSummary
from ccapi_monitor.params import DetectionParams, Windows
from ccapi_monitor.regions import Region
from ccapi_monitor.runner import region_identity
from ccapi_monitor.storage import Store

log = structlog.get_logger(__name__)

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
#: Upper bound on N in ``--shard K/N`` (a sanity limit: the Map's items ride in the execution's payload).
MAX_SHARDS = 1000
#: An INLINE Map runs at most 40 iterations at once (docs/scaling.md).
INLINE_MAP_CONCURRENCY = 40


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as written on the command line: ``--shard 2/12``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD.match(text)
        if match is None:
            raise InvalidInputError(f"--shard must look like K/N (e.g. 2/12), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= count <= MAX_SHARDS or not 1 <= index <= count:
            raise InvalidInputError(f"--shard {text}: need 1 <= K <= N <= {MAX_SHARDS}")
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, regions: list[Region]) -> list[Region]:
        """Every ``count``-th region from ``index``: shards get a mix of priorities and sizes."""
        return regions[self.index - 1 :: self.count]


def validate_run_id(run_id: str) -> str:
    """Run ids become store keys and report paths: letters, digits, ``._-`` only."""
    if not _RUN_ID.match(run_id):
        raise InvalidInputError(f"--run-id must be 1-80 letters, digits, '.', '_' or '-', got {run_id!r}")
    return run_id


def shard_count(region_count: int, shard_size: int) -> int:
    """How many shards of at most ``shard_size`` regions cover ``region_count`` regions."""
    if shard_size < 1:
        raise InvalidInputError(f"shard size must be at least 1, got {shard_size}")
    return max(1, min(MAX_SHARDS, math.ceil(region_count / shard_size)))


def map_max_concurrency(shards: int, *, imagery: str, ee_max_concurrency: int) -> int:
    """Shard tasks at once: Earth Engine's project quota is shared by every task, so
    tasks x per-task requests in flight stays within it; other backends are CPU-bound
    and scale with tasks up to the INLINE Map's limit."""
    limit = INLINE_MAP_CONCURRENCY
    if imagery == "earthengine":
        limit = min(limit, max(1, PROJECT_QUOTA // ee_max_concurrency))
    return max(1, min(shards, limit))


def plan_shards(
    regions: list[Region],
    *,
    shard_size: int,
    run_id: str,
    run_date: date,
    imagery: str,
    ee_max_concurrency: int,
) -> dict[str, Any]:
    """The plan ValidateInputs returns: the Map's items (label and region count, no geometry)
    and its concurrency. Small by design: it travels in the execution's 256 KiB payload."""
    count = shard_count(len(regions), shard_size)
    shards = [Shard(k, count) for k in range(1, count + 1)]
    return {
        "run_id": validate_run_id(run_id),
        "run_date": run_date.isoformat(),
        "regions": len(regions),
        "shards": [{"shard": s.label, "regions": len(s.select(regions))} for s in shards],
        "max_concurrency": map_max_concurrency(count, imagery=imagery, ee_max_concurrency=ee_max_concurrency),
    }


class ShardRecord(BaseModel):
    """What a shard ran: the assemble step takes the run's imagery and windows from these."""

    shard: str
    regions: list[str]
    failed_regions: list[str] = Field(default_factory=list)
    started_at: datetime
    finished_at: datetime
    imagery: ImageryInfo
    windows: Windows
    parameters: DetectionParams
    previous_run: PreviousRunInfo


class FanOutStore:
    """The keys of one fan-out run in the cache store."""

    def __init__(self, cache: Store, run_date: date, run_id: str) -> None:
        self.cache = cache
        self.prefix = f"fanout/{run_date.isoformat()}/{validate_run_id(run_id)}"

    def _region_key(self, name: str) -> str:
        return f"{self.prefix}/regions/{name}.json"

    def write_region(self, result: RegionResult) -> None:
        self.cache.write_bytes(
            self._region_key(result.name), result.model_dump_json().encode(), "application/json"
        )

    def read_region(self, name: str) -> RegionResult | None:
        raw = self.cache.read_bytes(self._region_key(name))
        if raw is None:
            return None
        try:
            return RegionResult.model_validate_json(raw)
        except ValueError:
            log.warning("shard_result_unreadable", region=name)
            return None

    def write_shard(self, record: ShardRecord) -> None:
        key = f"{self.prefix}/shards/{record.shard.replace('/', '-of-')}.json"
        self.cache.write_bytes(key, record.model_dump_json().encode(), "application/json")

    def shard_records(self) -> list[ShardRecord]:
        records = []
        for key in self.cache.list_keys(f"{self.prefix}/shards/"):
            raw = self.cache.read_bytes(key)
            if raw is None:
                continue
            try:
                records.append(ShardRecord.model_validate_json(raw))
            except ValueError:
                log.warning("shard_record_unreadable", key=key)
        return sorted(records, key=lambda r: Shard.parse(r.shard))


def missing_result(region: Region, run_id: str) -> RegionResult:
    """A region no shard reported: failed, with no figures (never a silent zero)."""
    return RegionResult(
        **region_identity(region),
        status="failed",
        error=f"no result from its shard in fan-out run {run_id} (the shard failed, timed out or never ran)",
    )


def collect_results(
    regions: list[Region], store: FanOutStore, run_id: str
) -> tuple[list[RegionResult], list[str]]:
    """One result per region, in the selection's order (the order single mode reports in),
    and the names of the regions no shard reported."""
    results: list[RegionResult] = []
    missing: list[str] = []
    for region in regions:
        found = store.read_region(region.name)
        if found is None:
            missing.append(region.name)
            found = missing_result(region, run_id)
        results.append(found)
    if missing:
        log.warning("fanout_regions_missing", count=len(missing), regions=missing[:20])
    return results, missing


def merged_imagery(records: list[ShardRecord]) -> ImageryInfo | None:
    """The first shard's imagery description with every shard's item corrections, once each.

    ``items_read`` (what the quality gate takes the corrections' share of) is the sum of the
    shards' counts: exact when shards read disjoint items; an item that two shards both read
    counts twice, so the share is then understated by at most the shards' item overlap.
    """
    if not records:
        return None
    corrections: dict[str, ImageryCorrection] = {}
    for record in records:
        for correction in record.imagery.corrections:
            corrections.setdefault(correction.model_dump_json(), correction)
    # by item id, as each backend lists them, so single and fan-out reports read alike
    update: dict[str, object] = {"corrections": sorted(corrections.values(), key=lambda c: c.item_id)}
    counts = [r.imagery.model_extra.get("items_read") for r in records if r.imagery.model_extra]
    if counts and len(counts) == len(records) and all(isinstance(n, int) for n in counts):
        update["items_read"] = sum(n for n in counts if isinstance(n, int))
    return records[0].imagery.model_copy(update=update)


def fan_out_duration_s(records: list[ShardRecord], assembled_at: datetime | None = None) -> float | None:
    """Wall time of the whole fan-out: first shard's start to the assemble step."""
    if not records:
        return None
    start = min(r.started_at for r in records)
    end = assembled_at or datetime.now(UTC)
    return round((end - start).total_seconds(), 3)


def record_shard(store: FanOutStore, shard: Shard, summary: RunSummary, started_at: datetime) -> None:
    """Write a shard's region results, then its record (the record last: it says the shard finished)."""
    for result in summary.regions:
        store.write_region(result)
    store.write_shard(
        ShardRecord(
            shard=shard.label,
            regions=[r.name for r in summary.regions],
            failed_regions=summary.failed_names(),
            started_at=started_at,
            finished_at=datetime.now(UTC),
            imagery=summary.imagery,
            windows=summary.windows,
            parameters=summary.parameters,
            previous_run=summary.previous_run,
        )
    )


def shard_payload(shard: Shard, summary: RunSummary) -> dict[str, Any]:
    """The shard's callback (and stdout line): a few hundred bytes, whatever the shard's size."""
    return {
        "shard": shard.label,
        "status": summary.status,
        "exit_code": summary.exit_code,
        "run_id": summary.run_id,
        "run_date": summary.run_date.isoformat(),
        "regions": summary.counts(),
        "failed_regions": summary.failed_names(),
    }
