from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
from shapely.geometry import box, shape

from ccapi_monitor.errors import AbortedError, CredentialsError, ExitCode
from ccapi_monitor.infrastructure.factory import OffSource
from ccapi_monitor.models import DetectionResult, ImageryInfo
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.runner import RunDependencies, Runner, _geodesic_ha, aggregate, exit_code_for
from ccapi_monitor.scoring import load_land_prices
from ccapi_monitor.settings import Settings
from ccapi_monitor.storage import LocalStore
from tests.fakes import CountingBackend

RUN_DATE = date(2026, 11, 23)


def _runner(tmp_path: Path, backend: CountingBackend, regions: list[Region], **settings: object) -> Runner:
    s = Settings(
        run_date=RUN_DATE,
        imagery="demo",
        infrastructure="off",
        output=str(tmp_path / "r"),
        cache=str(tmp_path / "c"),
        **settings,
    )
    deps = RunDependencies(
        backend=backend,
        infrastructure=OffSource(),
        reports=LocalStore(tmp_path / "r"),
        cache=LocalStore(tmp_path / "c"),
        prices=load_land_prices(),
        params=backend.params,
        imagery_info=ImageryInfo(source="demo"),
    )
    return Runner(s, regions, deps)


@pytest.fixture(scope="module")
def java() -> list[Region]:
    return load_regions()


def test_regions_run_concurrently_up_to_the_limit(tmp_path: Path, java: list[Region]) -> None:
    backend = CountingBackend(delay_s=0.2)
    summary = _runner(tmp_path, backend, java[:8], max_concurrency=4).run()
    assert backend.max_in_flight == 4
    assert summary.exit_code == 0
    assert summary.status == "succeeded"
    assert [r.name for r in summary.regions] == [r.name for r in java[:8]]


def test_one_failing_region_does_not_stop_the_others(tmp_path: Path, java: list[Region]) -> None:
    bad = java[1].name
    summary = _runner(tmp_path, CountingBackend(fail={bad}), java[:4]).run()
    assert summary.exit_code == ExitCode.PARTIAL
    statuses = {r.name: r.status for r in summary.regions}
    assert statuses.pop(bad) == "failed"
    assert set(statuses.values()) == {"ok"}
    failed = next(r for r in summary.regions if r.name == bad)
    assert failed.error == f"asset unreadable for {bad}"
    assert failed.area_ha is None  # a failed region never reports zeros


def test_all_regions_failing_is_exit_1(tmp_path: Path, java: list[Region]) -> None:
    names = {r.name for r in java[:3]}
    summary = _runner(tmp_path, CountingBackend(fail=names), java[:3]).run()
    assert (summary.exit_code, summary.status) == (1, "failed")


def test_insufficient_observations_are_not_failures(tmp_path: Path, java: list[Region]) -> None:
    summary = _runner(tmp_path, CountingBackend(insufficient={java[0].name}), java[:2]).run()
    assert summary.exit_code == 0
    assert summary.counts() == {"total": 2, "succeeded": 1, "failed": 0, "insufficient": 1}
    assert summary.regions[0].area_ha is None


def test_region_deadline_marks_only_that_region_failed(tmp_path: Path, java: list[Region]) -> None:
    backend = CountingBackend(hang={java[0].name})
    summary = _runner(tmp_path, backend, java[:3], region_timeout=0.5).run()
    assert summary.regions[0].status == "failed"
    assert "deadline" in (summary.regions[0].error or "")
    assert [r.status for r in summary.regions[1:]] == ["ok", "ok"]


def test_rerun_reuses_checkpoints_and_force_refresh_ignores_them(tmp_path: Path, java: list[Region]) -> None:
    regions = java[:3]
    first = CountingBackend(fail={regions[2].name})
    _runner(tmp_path, first, regions).run()
    second = CountingBackend()
    summary = _runner(tmp_path, second, regions).run()
    # Finished regions come from checkpoints; the failed one is computed again.
    assert dict(second.calls) == {regions[2].name: 1}
    assert [r.from_checkpoint for r in summary.regions] == [True, True, False]
    third = CountingBackend()
    _runner(tmp_path, third, regions, force_refresh=True).run()
    assert sum(third.calls.values()) == 3


def test_checkpoint_key_changes_with_parameters(tmp_path: Path, java: list[Region]) -> None:
    a = _runner(tmp_path, CountingBackend(), java[:1]).checkpoint_key(java[0])
    b = _runner(tmp_path, CountingBackend(DetectionParams(clearing_drop=0.2)), java[:1]).checkpoint_key(
        java[0]
    )
    assert a != b
    assert a.startswith("checkpoints/2026-11-23/")


def test_abort_stops_starting_regions_and_keeps_finished_checkpoints(
    tmp_path: Path, java: list[Region]
) -> None:
    regions = java[:6]
    backend = CountingBackend(delay_s=0.3)
    runner = _runner(tmp_path, backend, regions, max_concurrency=2)
    stop = threading.Event()
    runner.abort_check = lambda: ExitCode.SIGTERM if stop.is_set() else None
    threading.Timer(0.45, stop.set).start()
    with pytest.raises(AbortedError) as info:
        runner.run()
    assert info.value.exit_code == ExitCode.SIGTERM
    assert sum(backend.calls.values()) < len(regions)
    checkpoints = LocalStore(tmp_path / "c").list_keys("checkpoints/")
    assert 1 <= len(checkpoints) < len(regions)
    # The rerun computes only what was not finished.
    rerun = CountingBackend()
    _runner(tmp_path, rerun, regions).run()
    assert sum(rerun.calls.values()) == len(regions) - len(checkpoints)


def test_exit_code_mapping() -> None:
    assert exit_code_for([]) == (ExitCode.OK, "succeeded")


def test_java_wide_total_counts_overlapping_regions_once(tmp_path: Path) -> None:
    left = Region("left", "p", "urban", 1, 1, box(110.0, -7.2, 110.2, -7.0))
    right = Region("right", "p", "urban", 1, 1, box(110.1, -7.2, 110.3, -7.0))
    backend = CountingBackend()
    summary = _runner(tmp_path, backend, [left, right]).run()
    # Both polygons sit in each region's south-west corner: 'right's lies inside 'left'.
    totals = summary.totals
    assert totals.area_ha["vegetation_clearing"] == pytest.approx(240.0)
    right_polygon_ha = aggregate(summary.regions[1:], {"right": right.geometry}).area_ha[
        "vegetation_clearing"
    ]
    assert right_polygon_ha == pytest.approx(120.0)
    overlap = totals.area_ha["vegetation_clearing"] - totals.union_area_ha["vegetation_clearing"]
    expected = _geodesic_ha(shape(summary.regions[1].polygons[0].geometry))
    assert overlap == pytest.approx(expected, rel=1e-6)


class _ExpiringCredentials(CountingBackend):
    def detect(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        if region.name == self.expire_at:
            raise CredentialsError("Earth Engine credentials expired: set GEE_SERVICE_ACCOUNT_KEY")
        return super().detect(region, run_date, cancel)

    expire_at = ""


def test_credentials_failing_mid_run_end_the_run_with_exit_4(tmp_path: Path, java: list[Region]) -> None:
    backend = _ExpiringCredentials(delay_s=0.05)
    backend.expire_at = java[2].name
    with pytest.raises(CredentialsError) as info:
        _runner(tmp_path, backend, java[:8], max_concurrency=2).run()
    assert info.value.exit_code == ExitCode.PREFLIGHT_FAILED
    assert sum(backend.calls.values()) < 8


def test_earthengine_keeps_more_regions_in_flight_than_the_limiter_has_slots() -> None:
    assert Settings(imagery="earthengine", ee_max_concurrency=16).regions_in_flight == 32
    assert Settings(imagery="earthengine", ee_max_concurrency=40).regions_in_flight == 64
    assert Settings(imagery="demo").regions_in_flight == 4
    assert Settings(imagery="earthengine", max_concurrency=3).regions_in_flight == 3
