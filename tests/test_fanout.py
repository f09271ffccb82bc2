"""Fan-out building blocks: shard arithmetic, the plan, and results through a real store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.fanout import (
    FanOutStore,
    Shard,
    ShardRecord,
    collect_results,
    fan_out_duration_s,
    map_max_concurrency,
    merged_imagery,
    missing_result,
    plan_shards,
    validate_run_id,
)
from ccapi_monitor.models import ImageryCorrection, ImageryInfo, PreviousRunInfo
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region, box
from ccapi_monitor.settings import Settings
from ccapi_monitor.storage import LocalStore

RUN_DATE = date(2026, 11, 23)
REGIONS = [
    Region(f"r{i:02d}", "p", "urban", 1 + i % 3, 1, box(106 + i / 10, -6.3, 106.1 + i / 10, -6.2))
    for i in range(29)
]


@pytest.mark.parametrize(("text", "expected"), [("1/1", Shard(1, 1)), (" 3 / 12 ", Shard(3, 12))])
def test_shard_parses(text: str, expected: Shard) -> None:
    assert Shard.parse(text) == expected
    assert Shard.parse(expected.label) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "2", "1/1001", "-1/3"])
def test_bad_shard_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--shard"):
        Shard.parse(text)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 29, 40])
def test_shards_partition_the_regions(count: int) -> None:
    picked = [r.name for k in range(1, count + 1) for r in Shard(k, count).select(REGIONS)]
    assert sorted(picked) == sorted(r.name for r in REGIONS)
    sizes = [len(Shard(k, count).select(REGIONS)) for k in range(1, count + 1)]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("run_id", ["", "../etc", "a/b", "x" * 81, "-lead"])
def test_bad_run_id_is_invalid_input(run_id: str) -> None:
    with pytest.raises(InvalidInputError, match="--run-id"):
        validate_run_id(run_id)


def test_plan_is_small_and_respects_the_earth_engine_quota() -> None:
    regions = REGIONS * 12  # 348 entries; names repeat, which the plan does not look at
    plan = plan_shards(
        regions, shard_size=25, run_id="w48", run_date=RUN_DATE, imagery="earthengine", ee_max_concurrency=16
    )
    assert len(plan["shards"]) == 14
    assert sum(s["regions"] for s in plan["shards"]) == len(regions)
    assert plan["max_concurrency"] == 2  # 2 tasks x 16 requests <= 40
    assert plan["max_concurrency"] * 16 <= 40
    stac = plan_shards(
        regions, shard_size=25, run_id="w48", run_date=RUN_DATE, imagery="stac", ee_max_concurrency=16
    )
    assert stac["max_concurrency"] == 14  # CPU-bound: every shard at once


def test_map_concurrency_bounds() -> None:
    assert map_max_concurrency(100, imagery="stac", ee_max_concurrency=16) == 40  # INLINE Map limit
    assert map_max_concurrency(100, imagery="earthengine", ee_max_concurrency=40) == 1
    assert map_max_concurrency(100, imagery="earthengine", ee_max_concurrency=8) == 5
    assert map_max_concurrency(3, imagery="earthengine", ee_max_concurrency=4) == 3


def test_default_earth_engine_task_uses_the_whole_quota_so_the_map_runs_one_at_a_time() -> None:
    default = Settings().ee_max_concurrency
    assert default == 40
    assert map_max_concurrency(14, imagery="earthengine", ee_max_concurrency=default) == 1


def test_results_round_trip_and_missing_regions_fail(tmp_path: Path) -> None:
    store = FanOutStore(LocalStore(tmp_path), RUN_DATE, "w48")
    measured = missing_result(REGIONS[0], "w48").model_copy(
        update={"status": "ok", "error": None, "area_ha": {"vegetation_clearing": 2.5, "built_up": 0.0}}
    )
    store.write_region(measured)
    # A half-written or foreign object is no result either.
    (tmp_path / store.prefix / "regions" / "r02.json").write_text("{not json")
    results, missing = collect_results(REGIONS[:3], store, "w48")
    assert results[0] == measured
    assert missing == ["r01", "r02"]
    for result in results[1:]:
        assert result.status == "failed"
        assert result.area_ha is None  # never a silent zero
        assert "no result from its shard" in (result.error or "")


def test_shard_records_sorted_and_imagery_merged(tmp_path: Path) -> None:
    store = FanOutStore(LocalStore(tmp_path), RUN_DATE, "w48")
    start = datetime(2026, 11, 23, 6, tzinfo=UTC)
    fix = ImageryCorrection(item_id="S2A_1", reason="offset", declared_offset=0, applied_offset=-1000)
    params = DetectionParams()
    for k, corrections in ((10, [fix]), (2, [fix, fix.model_copy(update={"item_id": "S2B_2"})])):
        store.write_shard(
            ShardRecord(
                shard=f"{k}/10",
                regions=[f"r{k}"],
                started_at=start + timedelta(seconds=k),
                finished_at=start + timedelta(seconds=100),
                imagery=ImageryInfo(source="stac", corrections=corrections),
                windows=params.windows(RUN_DATE),
                parameters=params,
                previous_run=PreviousRunInfo(note="none"),
            )
        )
    records = store.shard_records()
    assert [r.shard for r in records] == ["2/10", "10/10"]
    imagery = merged_imagery(records)
    assert imagery is not None
    assert [c.item_id for c in imagery.corrections] == ["S2A_1", "S2B_2"]
    assert fan_out_duration_s(records, start + timedelta(seconds=302)) == 300.0
    assert merged_imagery([]) is None
    assert fan_out_duration_s([]) is None
