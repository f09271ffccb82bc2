"""Run metrics: one CloudWatch ``PutMetricData`` batch at the end of a run, or one log line.

The worker is the only publisher of these metrics (the state machine publishes its own),
so nothing is counted twice. A metrics failure is logged and never changes the exit code.
"""

from __future__ import annotations

from typing import Any

import structlog

from ccapi_monitor.aws.clients import has_credentials, make_client
from ccapi_monitor.models import RunSummary
from ccapi_monitor.tracing import get_tracer

log = structlog.get_logger(__name__)

DEFAULT_NAMESPACE = "CloudClearingAPI"


def run_metric_values(summary: RunSummary) -> dict[str, tuple[float, str]]:
    """Metric name -> (value, unit). Hectares unknown (no region measured) are left out, not 0."""
    counts = summary.counts()
    values: dict[str, tuple[float, str]] = {
        "RegionsSucceeded": (float(counts["succeeded"]), "Count"),
        "RegionsFailed": (float(counts["failed"]), "Count"),
        "RegionsInsufficientData": (float(counts["insufficient"]), "Count"),
        "WorkerDuration": (float(summary.duration_s), "Seconds"),
    }
    for name, change_class in (("HectaresCleared", "vegetation_clearing"), ("HectaresBuilt", "built_up")):
        hectares = summary.totals.hectares(change_class)
        if hectares is not None:
            values[name] = (hectares, "None")
    if summary.quality is not None:  # findings by severity (docs/quality.md); 0 when none
        values["DataQualityWarnings"] = (float(summary.quality.warnings), "Count")
        values["DataQualityFailures"] = (float(summary.quality.failures), "Count")
    return values


def _log_line(summary: RunSummary, values: dict[str, tuple[float, str]], namespace: str) -> None:
    log.info(
        "run_metrics",
        namespace=namespace,
        environment=summary.environment,
        run_id=summary.run_id,
        **{name: value for name, (value, _unit) in values.items()},
    )


def publish_run_metrics(
    summary: RunSummary, *, mode: str = "auto", namespace: str = DEFAULT_NAMESPACE, client: Any = None
) -> str:
    """Publish the run's metrics and return what was done: ``"cloudwatch"``, ``"log"`` or ``"off"``.

    ``auto`` uses CloudWatch when the boto3 chain finds credentials (or a client is
    given), else the log line. If CloudWatch refuses, the figures still reach the log.
    """
    if mode == "off":
        return "off"
    values = run_metric_values(summary)
    if mode == "log" or (mode == "auto" and client is None and not has_credentials()):
        _log_line(summary, values, namespace)
        return "log"
    dimensions = [{"Name": "Environment", "Value": summary.environment}]
    metric_data = [
        {"MetricName": name, "Dimensions": dimensions, "Value": value, "Unit": unit}
        for name, (value, unit) in values.items()
    ]
    try:
        with get_tracer().call("CloudWatch", operation="PutMetricData"):
            cloudwatch = client if client is not None else make_client("cloudwatch", read_timeout=20.0)
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=metric_data)
    except Exception as exc:  # metrics are never worth failing a finished run
        log.warning("metrics_publish_failed", error=f"{type(exc).__name__}: {exc}")
        _log_line(summary, values, namespace)
        return "log"
    log.info(
        "metrics_published", namespace=namespace, environment=summary.environment, metrics=len(metric_data)
    )
    return "cloudwatch"
