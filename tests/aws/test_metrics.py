"""Run metrics: one CloudWatch batch with the Environment dimension, or one log line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from ccapi_monitor.aws.clients import make_client
from ccapi_monitor.aws.metrics import publish_run_metrics, run_metric_values
from tests.aws.conftest import MotoServer, make_summary

EXPECTED = {
    "RegionsSucceeded",
    "RegionsFailed",
    "RegionsInsufficientData",
    "HectaresCleared",
    "HectaresBuilt",
    "WorkerDuration",
}


def _statistic(cloudwatch: Any, name: str, environment: str) -> float:
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="CloudClearingAPI",
        MetricName=name,
        Dimensions=[{"Name": "Environment", "Value": environment}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=3600,
        Statistics=["Sum", "SampleCount"],
    )["Datapoints"]
    assert len(points) == 1, points
    assert points[0]["SampleCount"] == 1  # published exactly once
    return float(points[0]["Sum"])


def test_one_batch_lands_in_cloudwatch_with_the_environment_dimension(moto_server: MotoServer) -> None:
    summary = make_summary(ok=3, failed=1, insufficient=2, environment="prod")

    assert publish_run_metrics(summary) == "cloudwatch"  # auto: credentials present

    cloudwatch = moto_server.client("cloudwatch")
    listed = cloudwatch.list_metrics(Namespace="CloudClearingAPI")["Metrics"]
    assert {m["MetricName"] for m in listed} == EXPECTED
    assert all(m["Dimensions"] == [{"Name": "Environment", "Value": "prod"}] for m in listed)
    assert _statistic(cloudwatch, "RegionsSucceeded", "prod") == 3
    assert _statistic(cloudwatch, "RegionsFailed", "prod") == 1
    assert _statistic(cloudwatch, "RegionsInsufficientData", "prod") == 2
    # union_area_ha (Java-wide, overlaps counted once) wins over the per-region sum.
    assert _statistic(cloudwatch, "HectaresCleared", "prod") == pytest.approx(24.0)
    assert _statistic(cloudwatch, "HectaresBuilt", "prod") == pytest.approx(6.0)
    assert _statistic(cloudwatch, "WorkerDuration", "prod") == pytest.approx(123.456)


def test_units_follow_the_architecture() -> None:
    units = {name: unit for name, (_value, unit) in run_metric_values(make_summary()).items()}
    assert units == {
        "RegionsSucceeded": "Count",
        "RegionsFailed": "Count",
        "RegionsInsufficientData": "Count",
        "HectaresCleared": "None",
        "HectaresBuilt": "None",
        "WorkerDuration": "Seconds",
    }


def test_unknown_hectares_are_left_out_not_zero() -> None:
    summary = make_summary(ok=0, failed=3)
    assert summary.totals.regions_measured == 0
    values = run_metric_values(summary)
    assert "HectaresCleared" not in values
    assert "HectaresBuilt" not in values
    assert values["RegionsFailed"] == (3.0, "Count")


def test_without_credentials_auto_writes_one_log_line() -> None:
    # tests/conftest.py removes every AWS credential from the environment.
    with capture_logs() as logs:
        assert publish_run_metrics(make_summary(ok=3, failed=1, environment="local")) == "log"
    lines = [entry for entry in logs if entry["event"] == "run_metrics"]
    assert len(lines) == 1
    assert lines[0]["environment"] == "local"
    assert lines[0]["RegionsSucceeded"] == 3
    assert lines[0]["RegionsFailed"] == 1
    assert lines[0]["HectaresCleared"] == pytest.approx(24.0)


def test_log_mode_never_calls_cloudwatch(moto_server: MotoServer) -> None:
    with capture_logs() as logs:
        assert publish_run_metrics(make_summary(), mode="log") == "log"
    assert [e["event"] for e in logs].count("run_metrics") == 1
    assert moto_server.client("cloudwatch").list_metrics(Namespace="CloudClearingAPI")["Metrics"] == []


def test_off_mode_does_nothing(moto_server: MotoServer) -> None:
    with capture_logs() as logs:
        assert publish_run_metrics(make_summary(), mode="off") == "off"
    assert logs == []


def test_a_cloudwatch_failure_is_logged_and_never_raises(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    client = make_client("cloudwatch")

    def refuse(**_kwargs: Any) -> None:
        raise ConnectionError("CloudWatch unreachable")

    monkeypatch.setattr(client, "put_metric_data", refuse)
    with capture_logs() as logs:
        assert publish_run_metrics(make_summary(), mode="cloudwatch", client=client) == "log"
    events = [e["event"] for e in logs]
    assert "metrics_publish_failed" in events
    assert events.count("run_metrics") == 1  # the figures still reach the logs
