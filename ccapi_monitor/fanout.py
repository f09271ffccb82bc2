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

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import structlog
from pydantic import BaseModel, Field

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.models import RegionResult
from ccapi_monitor.regions import Region
from ccapi_monitor.storage import Store

log = structlog.get_logger(__name__)

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
#: The ASL's Map passes at most this many shards; more would need a Distributed Map (docs/scaling.md).
MAX_SHARDS = 1000


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


def plan_shards(regions: list[Region], shard_size: int) -> list[dict[str, Any]]:
    """The Map's items: one small object per shard (its label and region count, not geometry)."""
    count = shard_count(len(regions), shard_size)
    shards = [Shard(k, count) for k in range(1, count + 1)]
    return [{"shard": s.label, "regions": len(s.select(regions))} for s in shards]


class ShardRecord(BaseModel):
    """What a shard ran: the assemble step takes the run's imagery and windows from these."""

    shard: str
    regions: list[str]
    failed_regions: list[str] = Field(default_factory=list)
    started_at: datetime
    finished_at: datetime
    imagery: dict[str, Any] = Field(default_factory=dict)
    windows: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    previous_run: dict[str, Any] | None = None


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
        name=region.name,
        province=region.province,
        focus=region.focus,
        priority=region.priority,
        tier=region.tier,
        area_km2=round(region.area_km2, 3),
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


def merged_imagery(records: list[ShardRecord]) -> dict[str, Any]:
    """The first shard's imagery description, with every shard's item corrections (deduplicated)."""
    if not records:
        return {}
    imagery = dict(records[0].imagery)
    corrections: list[Any] = []
    seen: set[str] = set()
    for record in records:
        for item in record.imagery.get("corrections") or []:
            key = json.dumps(item, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                corrections.append(item)
    if "corrections" in imagery:
        imagery["corrections"] = corrections
    return imagery


def fan_out_duration_s(records: list[ShardRecord], assembled_at: datetime | None = None) -> float | None:
    """Wall time of the whole fan-out: first shard's start to the assemble step."""
    if not records:
        return None
    start = min(r.started_at for r in records)
    end = assembled_at or datetime.now(UTC)
    return round((end - start).total_seconds(), 3)
