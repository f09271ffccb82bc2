"""The real worker as a subprocess against moto on 127.0.0.1 (through a fault-injecting proxy).

Each test runs ``python -m ccapi_monitor run --imagery demo`` with ``--output`` and
``--cache`` on S3, ``AWS_ENDPOINT_URL`` pointing at the proxy, and (where it matters) a
task token taken from a real moto Step Functions execution. The demo archive lives in a
session temp folder, so only the first run pays for writing it.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ccapi_monitor.reports.layout import report_keys
from tests.aws.conftest import MotoServer, start_waiting_execution, wait_for_execution
from tests.aws.faults import FaultProxy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "ccapi-e2e"
RUN_DATE = "2026-11-23"
GEE_KEY_MATERIAL = "FAKEGEEKEYMATERIAL9c41d2"
GEE_KEY = json.dumps(
    {
        "type": "service_account",
        "client_email": "ccapi@example-project.iam.gserviceaccount.com",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{GEE_KEY_MATERIAL}\n-----END PRIVATE KEY-----\n",
    }
)


class Worker:
    """A running worker: output collected line by line, so a test can act mid-run."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def wait_for_event(self, event: str, timeout: float = 120.0) -> dict[str, Any]:
        """Block until a JSON log line with ``event`` appears."""
        deadline = time.monotonic() + timeout
        index = 0
        with self._seen:
            while True:
                for line in self.lines[index:]:
                    record = _json_or_none(line)
                    if record is not None and record.get("event") == event:
                        return record
                index = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {event!r} in worker output:\n{self.output[-4000:]}")
                self._seen.wait(min(remaining, 0.5))

    def finish(self, timeout: float = 180.0) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in map(_json_or_none, self.lines) if r is not None and r.get("event") == event]


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


@dataclass
class E2E:
    server: MotoServer
    proxy: FaultProxy
    env: dict[str, str]
    command: list[str]
    cwd: Path
    secrets: list[str] = field(default_factory=list)

    def start(
        self, *extra: str, token: str | None = None, env: dict[str, str] | None = None, command: str = "run"
    ) -> Worker:
        args = [
            command, "--imagery", "demo", "--run-date", RUN_DATE,
            "--output", f"s3://{BUCKET}/reports", "--cache", f"s3://{BUCKET}/cache",
            "--environment", "e2e", *(["--auto-confirm"] if command == "run" else []), *extra,
        ]  # fmt: skip
        full_env = {**self.env, **(env or {})}
        if token:
            full_env["CCAPI_TASK_TOKEN"] = token
            self.secrets.append(token)
        return Worker([*self.command, *args], full_env, self.cwd)

    def run(
        self, *extra: str, token: str | None = None, env: dict[str, str] | None = None, command: str = "run"
    ) -> Worker:
        worker = self.start(*extra, token=token, env=env, command=command)
        worker.finish()
        return worker

    def keys(self, prefix: str) -> list[str]:
        listed = self.server.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(obj["Key"] for obj in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        body: bytes = self.server.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def assert_no_secrets(self, worker: Worker) -> None:
        texts = [worker.output] + [self.read(k).decode("utf-8", "replace") for k in self.keys("reports/")]
        for secret in [*self.secrets, GEE_KEY_MATERIAL, self.env["AWS_SECRET_ACCESS_KEY"]]:
            assert all(secret not in text for text in texts), "a secret reached the logs or a report"


@pytest.fixture(scope="module")
def _proxy(_moto_server_session: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(_moto_server_session.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def _demo_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TMPDIR for the workers: with an S3 cache the demo archive goes there, shared by all runs."""
    return tmp_path_factory.mktemp("e2e-tmp")


@pytest.fixture
def e2e(
    moto_server: MotoServer,
    _proxy: FaultProxy,
    _demo_tmp: Path,
    worker_env: dict[str, str],
    ccapi_command: list[str],
    tmp_path: Path,
) -> E2E:
    _proxy.reset()
    moto_server.client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto_server.env()["AWS_REGION"]}
    )
    env = {
        **worker_env,
        **moto_server.env(),
        "AWS_ENDPOINT_URL": _proxy.url,
        "AWS_MAX_ATTEMPTS": "4",
        "TMPDIR": str(_demo_tmp),
        "GEE_SERVICE_ACCOUNT_KEY": GEE_KEY,
        "CCAPI_HEARTBEAT_SECONDS": "1",
    }
    return E2E(moto_server, _proxy, env, ccapi_command, tmp_path)


def _report_keys(e2e: E2E) -> list[str]:
    return e2e.keys(f"reports/weekly/{RUN_DATE}/")


#: The run's own files, by name, as the publisher lays them out (footprints and history go elsewhere).
RUN_FILES = sorted(key.rsplit("/", 1)[1] for key in report_keys(date(2000, 1, 1), "x").values())


def test_demo_run_publishes_to_s3_with_metrics_and_succeeds_the_execution(e2e: E2E) -> None:
    execution = start_waiting_execution(e2e.server)

    worker = e2e.run("--regions-count", "3", token=execution.token)

    assert worker.process.returncode == 0, worker.output[-4000:]
    files = sorted(k.rsplit("/", 1)[1] for k in _report_keys(e2e))
    assert files == RUN_FILES
    report_puts = e2e.proxy.successful_puts(f"^/{BUCKET}/reports/")
    assert {p.rsplit("/", 1)[1] for p in report_puts} >= set(RUN_FILES)
    assert report_puts[-1] == f"/{BUCKET}/reports/weekly/latest.json"  # the pointer moves last
    assert report_puts.count(f"/{BUCKET}/reports/weekly/latest.json") == 1
    latest = json.loads(e2e.read("reports/weekly/latest.json"))
    report = json.loads(e2e.read(f"reports/{latest['report']}"))
    assert report["run_id"] == latest["run_id"]
    s3 = e2e.server.client("s3")
    html_key = next(k for k in _report_keys(e2e) if k.endswith("report.html"))
    assert s3.head_object(Bucket=BUCKET, Key=html_key)["ContentType"].startswith("text/html")
    assert e2e.keys("cache/checkpoints/"), "region checkpoints go to the S3 cache"

    described = wait_for_execution(e2e.server, execution.execution_arn)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["status"] == "succeeded"
    assert output["exit_code"] == 0
    assert output["run_id"] == latest["run_id"]
    assert output["run_date"] == RUN_DATE
    assert output["regions"] == {"total": 3, "succeeded": 3, "failed": 0, "insufficient": 0}
    assert output["failed_regions"] == []
    assert set(output["hectares"]) == {"vegetation_clearing", "built_up"}
    assert output["report"]["json"] == f"s3://{BUCKET}/reports/{latest['report']}"
    assert output["duration_s"] > 0
    assert len(e2e.proxy.targets("SendTaskHeartbeat")) >= 1

    metrics = e2e.server.client("cloudwatch").list_metrics(Namespace="CloudClearingAPI")["Metrics"]
    assert {m["MetricName"] for m in metrics} >= {"RegionsSucceeded", "RegionsFailed", "WorkerDuration"}
    assert all(m["Dimensions"] == [{"Name": "Environment", "Value": "e2e"}] for m in metrics)
    e2e.assert_no_secrets(worker)


def test_s3_slowdown_and_500_on_some_puts_still_publish_a_complete_report(e2e: E2E) -> None:
    # Every report file and the pointer get SlowDown, 500, SlowDown before a PUT gets through
    # (AWS_MAX_ATTEMPTS=4 in the worker).
    e2e.proxy.fail_puts(f"^/{BUCKET}/reports/", 503, 500, 503)

    worker = e2e.run("--regions-count", "1")

    assert worker.process.returncode == 0, worker.output[-4000:]
    # three faults before each successful PUT: every object under reports/ went through them
    assert e2e.proxy.injected == 3 * len(e2e.proxy.successful_puts(f"^/{BUCKET}/reports/"))
    files = sorted(k.rsplit("/", 1)[1] for k in _report_keys(e2e))
    assert files == RUN_FILES
    assert e2e.proxy.successful_puts(f"^/{BUCKET}/reports/")[-1].endswith("/weekly/latest.json")
    latest = json.loads(e2e.read("reports/weekly/latest.json"))
    assert json.loads(e2e.read(f"reports/{latest['report']}"))["run_id"] == latest["run_id"]


def test_persistent_s3_errors_never_half_publish_a_week(e2e: E2E) -> None:
    execution = start_waiting_execution(e2e.server)
    e2e.proxy.fail_puts(f"^/{BUCKET}/reports/.*report\\.html", 503, forever=True)

    worker = e2e.run("--regions-count", "1", token=execution.token)

    assert worker.process.returncode == 1, worker.output[-4000:]
    assert "reports/weekly/latest.json" not in e2e.keys("reports/"), (
        "latest.json moved for an incomplete week"
    )
    assert wait_for_execution(e2e.server, execution.execution_arn)["status"] == "FAILED"
    failures = e2e.proxy.targets("SendTaskFailure")
    assert [f["error"] for f in failures] == ["CCAPI.Failed"]
    assert "SlowDown" in json.loads(failures[0]["cause"])["message"]
    e2e.assert_no_secrets(worker)


def test_sigterm_mid_run_aborts_then_a_retry_resumes_from_checkpoints(e2e: E2E) -> None:
    execution = start_waiting_execution(e2e.server)
    worker = e2e.start("--regions-count", "4", "--max-concurrency", "1", token=execution.token)
    worker.wait_for_event("region_done")

    signalled = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.finish(timeout=60)

    assert code == 143, worker.output[-4000:]
    assert time.monotonic() - signalled < 20, "ECS kills 30 s after SIGTERM; the worker must be out by 20 s"
    assert "reports/weekly/latest.json" not in e2e.keys("reports/")
    assert wait_for_execution(e2e.server, execution.execution_arn)["status"] == "FAILED"
    failures = e2e.proxy.targets("SendTaskFailure")
    assert [f["error"] for f in failures] == ["CCAPI.Aborted"]
    cause = json.loads(failures[0]["cause"])
    assert cause["exit_code"] == 143
    assert cause["status"] == "aborted"
    checkpoints = e2e.keys(f"cache/checkpoints/{RUN_DATE}/")
    assert checkpoints, "finished regions keep their checkpoints"
    e2e.assert_no_secrets(worker)

    # Step Functions retries the task: the same week resumes instead of starting over.
    retry = e2e.run("--regions-count", "4", "--max-concurrency", "1")
    assert retry.process.returncode == 0, retry.output[-4000:]
    assert len(retry.events("region_reused")) >= len(checkpoints) >= 1
    assert "reports/weekly/latest.json" in e2e.keys("reports/")


def test_execution_stopped_mid_run_makes_the_worker_exit_143_without_publishing(e2e: E2E) -> None:
    execution = start_waiting_execution(e2e.server)
    worker = e2e.start("--regions-count", "4", "--max-concurrency", "1", token=execution.token)
    worker.wait_for_event("region_done")

    e2e.server.client("stepfunctions").stop_execution(executionArn=execution.execution_arn, error="Operator")
    code = worker.finish(timeout=60)

    assert code == 143, worker.output[-4000:]
    assert _report_keys(e2e) == []
    assert "reports/weekly/latest.json" not in e2e.keys("reports/")
    assert e2e.proxy.targets("SendTaskSuccess") == []
    # AWS says ABORTED; moto ends a stopped callback wait as a task time-out (FAILED). Either
    # way the worker sent nothing: no success, no failure.
    assert [t for t, _ in e2e.proxy.calls if not t.endswith("SendTaskHeartbeat")] == []
    status = wait_for_execution(e2e.server, execution.execution_arn)["status"]
    assert status in ("ABORTED", "FAILED")
    e2e.assert_no_secrets(worker)


def test_preflight_probes_the_buckets_and_calls_back(e2e: E2E) -> None:
    execution = start_waiting_execution(e2e.server, name="preflight-ok")
    ok = e2e.run(token=execution.token, command="preflight")
    assert ok.process.returncode == 0, ok.output[-4000:]
    assert wait_for_execution(e2e.server, execution.execution_arn)["status"] == "SUCCEEDED"
    assert e2e.keys("") == [], "probe objects are deleted again"
    assert any(p.endswith(".probe") for p in e2e.proxy.successful_puts(f"^/{BUCKET}/reports/"))

    execution = start_waiting_execution(e2e.server, name="preflight-bad")
    bad = e2e.run("--output", "s3://ccapi-missing-bucket/reports", token=execution.token, command="preflight")
    assert bad.process.returncode == 4, bad.output[-4000:]
    assert "s3://ccapi-missing-bucket/reports is not writable" in bad.output
    assert wait_for_execution(e2e.server, execution.execution_arn)["status"] == "FAILED"
    assert [f["error"] for f in e2e.proxy.targets("SendTaskFailure")] == ["CCAPI.PreflightFailed"]
    e2e.assert_no_secrets(bad)


def test_partial_run_succeeds_the_execution_with_status_partial(e2e: E2E) -> None:
    """One region's checkpoint PUT keeps failing (503 SlowDown): that region fails, the rest publish."""
    execution = start_waiting_execution(e2e.server)
    failing = _first_region_names(3)[1]
    e2e.proxy.fail_puts(f"^/{BUCKET}/cache/checkpoints/{RUN_DATE}/{failing}-", 503, forever=True)

    worker = e2e.run("--regions-count", "3", token=execution.token)

    assert worker.process.returncode == 2, worker.output[-4000:]
    output = json.loads(wait_for_execution(e2e.server, execution.execution_arn)["output"])
    assert output["status"] == "partial"
    assert output["exit_code"] == 2
    assert output["failed_regions"] == [failing]
    assert output["regions"] == {"total": 3, "succeeded": 2, "failed": 1, "insufficient": 0}
    latest = json.loads(e2e.read("reports/weekly/latest.json"))
    assert latest["status"] == "partial"
    report = json.loads(e2e.read(f"reports/{latest['report']}"))
    failed = next(r for r in report["regions"] if r["name"] == failing)
    assert failed["status"] == "failed"
    assert "SlowDown" in failed["error"]
    e2e.assert_no_secrets(worker)


def _first_region_names(count: int) -> list[str]:
    """The regions ``--regions-count`` picks (first by priority, then name)."""
    from ccapi_monitor.regions import load_regions, order_by_priority

    return [r.name for r in order_by_priority(load_regions())[:count]]


def test_xray_segments_reach_the_daemon_address(e2e: E2E) -> None:
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(0.5)
    try:
        address = f"127.0.0.1:{daemon.getsockname()[1]}"
        worker = e2e.run("--regions-count", "2", "--xray", env={"AWS_XRAY_DAEMON_ADDRESS": address})
        assert worker.process.returncode == 0, worker.output[-4000:]
        documents = []
        while True:
            try:
                documents.append(json.loads(daemon.recv(65535).partition(b"\n")[2]))
            except TimeoutError:
                break
    finally:
        daemon.close()

    segments = [d for d in documents if d.get("type") != "subsegment"]
    assert len(segments) == 1
    run_id = json.loads(e2e.read("reports/weekly/latest.json"))["run_id"]
    assert segments[0]["annotations"]["run_id"] == run_id
    subsegments = [d for d in documents if d.get("type") == "subsegment"]
    assert all(d["trace_id"] == segments[0]["trace_id"] for d in subsegments)
    s3_calls = [d for d in subsegments if d["name"] == "S3"]
    assert {d["annotations"]["operation"] for d in s3_calls} >= {"PutObject", "GetObject"}
    region_subsegments = [d for d in subsegments if d["namespace"] == "local"]
    assert len({d["annotations"]["region"] for d in region_subsegments}) == 2
    assert {d["annotations"]["status"] for d in region_subsegments} == {"ok"}
    assert all(d["parent_id"] == segments[0]["id"] for d in region_subsegments)
