"""Preflight: one line per failed check; probes are written, read back and removed."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest

from ccapi_monitor.detection.base import ImageryBackend
from ccapi_monitor.infrastructure.base import InfrastructureSource
from ccapi_monitor.models import DetectionResult, InfrastructureResult
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.preflight import run_preflight
from ccapi_monitor.regions import Region
from ccapi_monitor.settings import Settings
from tests.aws.conftest import MotoServer


class FakeBackend(ImageryBackend):
    name = "fake"

    def __init__(self, problems: list[str] | Exception) -> None:
        super().__init__(DetectionParams())
        self.problems = problems

    def preflight(self) -> list[str]:
        if isinstance(self.problems, Exception):
            raise self.problems
        return list(self.problems)

    def detect(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        raise NotImplementedError


class FakeInfrastructure(InfrastructureSource):
    name = "fake"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def preflight(self) -> list[str]:
        return list(self.problems)

    def fetch(self, region: Region) -> InfrastructureResult:
        raise NotImplementedError


def _run(
    settings: Settings, backend: list[str] | Exception | None = None, infra: list[str] | None = None
) -> list[str]:
    return run_preflight(
        settings, backend=FakeBackend(backend or []), infrastructure=FakeInfrastructure(infra or [])
    )


def test_all_good_with_s3_reports_and_local_cache(
    bucket: str, moto_server: MotoServer, tmp_path: Path
) -> None:
    settings = Settings(imagery="demo", output=f"s3://{bucket}/reports", cache=str(tmp_path / "cache"))
    assert _run(settings) == []
    # The probes were removed again.
    assert moto_server.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_missing_bucket_and_unwritable_folder_are_reported(moto_server: MotoServer, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = Settings(
        imagery="demo", output="s3://no-such-bucket-xyz/reports", cache=str(blocker / "cache")
    )
    problems = _run(settings)
    assert len(problems) == 2
    assert problems[0].startswith("reports store s3://no-such-bucket-xyz/reports is not writable")
    assert "NoSuchBucket" in problems[0]
    assert problems[1].startswith(f"cache store {blocker / 'cache'} is not writable")


def test_backend_and_infrastructure_lines_are_passed_through(tmp_path: Path) -> None:
    settings = Settings(imagery="earthengine", output=str(tmp_path / "r"), cache=str(tmp_path / "c"))
    problems = _run(
        settings, backend=["earthengine: GEE_PROJECT is not set"], infra=["overpass: unreachable"]
    )
    assert problems == ["earthengine: GEE_PROJECT is not set", "overpass: unreachable"]


def test_a_crashing_check_is_a_failed_check(tmp_path: Path) -> None:
    settings = Settings(
        imagery="stac",
        stac_items="https://stac.invalid/v1",
        output=str(tmp_path / "r"),
        cache=str(tmp_path / "c"),
    )
    problems = _run(settings, backend=RuntimeError("STAC API answered 500"))
    assert problems == ["imagery (stac): STAC API answered 500"]


def test_invalid_regions_file_is_reported(tmp_path: Path) -> None:
    regions = tmp_path / "regions.geojson"
    regions.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature"}]}))
    settings = Settings(output=str(tmp_path / "r"), cache=str(tmp_path / "c"), regions_file=regions)
    problems = _run(settings)
    assert len(problems) == 1
    assert problems[0].startswith("regions file:")


def test_cloudwatch_metrics_without_credentials_fail_preflight(tmp_path: Path) -> None:
    settings = Settings(output=str(tmp_path / "r"), cache=str(tmp_path / "c"), metrics="cloudwatch")
    assert _run(settings) == ["metrics: --metrics cloudwatch but no AWS credentials found in the boto3 chain"]


@pytest.mark.parametrize("metrics", ["auto", "log"])
def test_other_metric_modes_need_no_credentials(tmp_path: Path, metrics: str) -> None:
    settings = Settings(output=str(tmp_path / "r"), cache=str(tmp_path / "c"), metrics=metrics)
    assert _run(settings) == []
