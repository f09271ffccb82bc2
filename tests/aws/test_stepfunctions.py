"""TaskCallback against real moto Step Functions executions, plus payload limits."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from structlog.testing import capture_logs

from ccapi_monitor.aws.clients import make_client
from ccapi_monitor.aws.stepfunctions import (
    CAUSE_LIMIT_CHARS,
    OUTPUT_BUDGET_BYTES,
    TaskCallback,
    failure_cause,
    success_payload,
)
from ccapi_monitor.errors import ExitCode
from ccapi_monitor.models import InvestmentScore
from ccapi_monitor.scoring import label_for
from ccapi_monitor.settings import Settings, resolve
from tests.aws.conftest import (
    MotoServer,
    failure_event,
    make_summary,
    start_waiting_execution,
    wait_for_execution,
)


def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- against a real execution -------------------------------------------------------------


@pytest.mark.slow
class ScriptedWait:
    """A fake for TaskCallback's ``wait``: no real time passes.

    Each call takes the next step of ``script``: ``"elapse"`` returns at once as if the
    interval had passed; ``"block"`` waits until the callback wakes the heartbeat thread (a new
    interval, or stop). After the script it blocks until stop and sets ``done``.
    """

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.intervals: list[float] = []
        self.done = threading.Event()

    def __call__(self, event: threading.Event, seconds: float) -> bool:
        self.intervals.append(seconds)
        step = self.script.pop(0) if self.script else None
        if step == "elapse":
            return event.is_set()
        if step is None:
            self.done.set()
        return event.wait()


def _record_calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call made with ``client``, in order."""
    calls: list[dict[str, Any]] = []
    client.meta.events.register(
        f"provide-client-params.states.{operation}", lambda params, **_: calls.append(params)
    )
    return calls


def test_heartbeats_reach_the_execution_and_success_becomes_the_output(moto_server: MotoServer) -> None:
    execution = start_waiting_execution(moto_server)
    client = make_client("stepfunctions")
    heartbeats = _record_calls(client, "SendTaskHeartbeat")
    wait = ScriptedWait("elapse", "elapse", "elapse")
    callback = TaskCallback(execution.token, heartbeat_seconds=30, client=client, wait=wait)
    callback.start()
    assert wait.done.wait(10)
    assert len(heartbeats) == 4  # one at start, one per elapsed interval
    assert wait.intervals == [30, 30, 30, 30]
    assert not callback.aborted.is_set()  # Step Functions accepted every one
    assert (
        moto_server.client("stepfunctions").describe_execution(executionArn=execution.execution_arn)["status"]
        == "RUNNING"
    )

    summary = make_summary(ok=3, failed=1)
    callback.report_exit(ExitCode.PARTIAL, summary)

    described = wait_for_execution(moto_server, execution.execution_arn)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["status"] == "partial"
    assert output["exit_code"] == 2
    assert output["regions"] == {"total": 4, "succeeded": 3, "failed": 1, "insufficient": 0}
    assert output["failed_regions"] == [summary.regions[3].name]
    assert output["report"]["json"].endswith("/report.json")
    assert output["hectares"] == {"vegetation_clearing": 24.0, "built_up": 6.0}


def test_the_settings_interval_replaces_the_default_at_once() -> None:
    """Settings are validated after the first heartbeat; their interval applies from then on."""
    client = make_client("stepfunctions")
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_response("send_task_heartbeat", {}, {"taskToken": "tok"})
        wait = ScriptedWait("block", "elapse")
        callback = TaskCallback("tok", client=client, wait=wait)
        callback.start()  # heartbeat 1, then waits the default interval
        settings = resolve({}, None, {"CCAPI_HEARTBEAT_SECONDS": "15"})
        callback.use_heartbeat_seconds(settings.heartbeat_seconds)
        assert wait.done.wait(10)
        callback.stop()
        stub.assert_no_pending_responses()  # heartbeat 2 came after the new interval
    assert wait.intervals == [Settings().heartbeat_seconds, 15.0, 15.0]


@pytest.mark.slow
def test_without_heartbeats_the_same_task_times_out(moto_server: MotoServer) -> None:
    """The control for the test above: moto enforces HeartbeatSeconds, so heartbeats matter."""
    execution = start_waiting_execution(moto_server, heartbeat_seconds=1)
    described = wait_for_execution(moto_server, execution.execution_arn, timeout=10)
    assert described["status"] == "FAILED"
    events = moto_server.client("stepfunctions").get_execution_history(executionArn=execution.execution_arn)
    assert "TaskTimedOut" in [e["type"] for e in events["events"]]


def test_stopped_execution_makes_the_next_heartbeat_abort(moto_server: MotoServer) -> None:
    execution = start_waiting_execution(moto_server)
    reasons: list[str] = []
    callback = TaskCallback(execution.token, heartbeat_seconds=0.2, on_abort=reasons.append)
    callback.start()
    assert not callback.aborted.is_set()

    moto_server.client("stepfunctions").stop_execution(executionArn=execution.execution_arn, error="Operator")

    assert callback.aborted.wait(5.0)
    assert callback.abort_reason is not None
    assert "InvalidToken" in callback.abort_reason
    assert _wait(lambda: reasons == [callback.abort_reason])  # on_abort runs right after the event
    with capture_logs() as logs:
        callback.succeed({"status": "succeeded"})  # token no longer valid: a no-op, never raises
    assert [e["event"] for e in logs] == ["callback_skipped"]


def test_failure_reaches_the_execution_with_error_name_and_json_cause(moto_server: MotoServer) -> None:
    execution = start_waiting_execution(moto_server)
    client = make_client("stepfunctions")
    calls = _record_calls(client, "SendTaskFailure")
    callback = TaskCallback(execution.token, client=client)
    callback.start()
    callback.report_exit(ExitCode.SIGTERM, make_summary(ok=1, failed=1), "interrupted: received SIGTERM")

    assert wait_for_execution(moto_server, execution.execution_arn)["status"] == "FAILED"
    assert failure_event(moto_server, execution.execution_arn)["error"] == "CCAPI.Aborted"
    # moto drops the cause on the floor (its SendTaskFailure handler reads only the error),
    # so the cause is checked as sent.
    cause = json.loads(calls[-1]["cause"])
    assert cause["exit_code"] == 143
    assert cause["status"] == "aborted"
    assert cause["message"] == "interrupted: received SIGTERM"
    assert cause["regions"]["failed"] == 1


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (ExitCode.FAILED, "CCAPI.Failed"),
        (ExitCode.INVALID_INPUT, "CCAPI.InvalidInput"),
        (ExitCode.PREFLIGHT_FAILED, "CCAPI.PreflightFailed"),
        (ExitCode.SIGINT, "CCAPI.Aborted"),
    ],
)
def test_report_exit_names_the_error(code: ExitCode, error: str) -> None:
    client = make_client("stepfunctions")
    with Stubber(client) as stub:
        stub.add_response("send_task_failure", {}, {"taskToken": "tok", "error": error, "cause": ANY})
        TaskCallback("tok", client=client).report_exit(code, None, "boom")
        stub.assert_no_pending_responses()


def test_report_exit_without_a_payload_sends_nothing() -> None:
    """A dry run or a declined prompt: no task waits on it, so no callback is made."""
    client = make_client("stepfunctions")
    successes, failures = _record_calls(client, "SendTaskSuccess"), _record_calls(client, "SendTaskFailure")
    with Stubber(client):  # nothing queued: a call could not reach anything
        TaskCallback("tok", client=client).report_exit(ExitCode.OK)
    assert successes == failures == []


def test_report_exit_succeeds_for_ok_and_partial() -> None:
    client = make_client("stepfunctions")
    with Stubber(client) as stub:
        stub.add_response("send_task_success", {}, {"taskToken": "tok", "output": ANY})
        TaskCallback("tok", client=client).report_exit(ExitCode.PARTIAL, make_summary(ok=1, failed=1))
        stub.assert_no_pending_responses()


# -- without a real execution (botocore Stubber) ------------------------------------------


def test_no_token_means_no_calls_at_all() -> None:
    callback = TaskCallback.from_env({})
    assert not callback.enabled
    callback.start()
    callback.succeed({"status": "succeeded"})
    callback.fail("CCAPI.Failed", "x")
    callback.stop()
    assert callback._client is None  # no client was even built


def test_from_env_reads_the_token_and_settings_set_the_interval() -> None:
    # The interval is not read from the environment here: Settings validates it (exit 3 when bad).
    callback = TaskCallback.from_env({"CCAPI_TASK_TOKEN": " tok ", "CCAPI_HEARTBEAT_SECONDS": "15"})
    assert callback.enabled
    assert callback.heartbeat_seconds == Settings().heartbeat_seconds
    settings = resolve({}, None, {"CCAPI_HEARTBEAT_SECONDS": "15"})
    callback.use_heartbeat_seconds(settings.heartbeat_seconds)
    assert callback.heartbeat_seconds == 15.0
    assert "tok" not in repr(callback)


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_first_heartbeat_rejected_aborts_without_a_thread(code: str) -> None:
    client = make_client("stepfunctions")
    with Stubber(client) as stub:
        stub.add_client_error("send_task_heartbeat", service_error_code=code, http_status_code=400)
        callback = TaskCallback("tok", client=client)
        callback.start()
    assert callback.aborted.is_set()
    assert code in (callback.abort_reason or "")
    assert callback._thread is None


def test_transient_heartbeat_errors_do_not_abort() -> None:
    client = make_client("stepfunctions")
    with Stubber(client) as stub:
        stub.add_client_error(
            "send_task_heartbeat", service_error_code="ThrottlingException", http_status_code=400
        )
        callback = TaskCallback("tok", client=client, heartbeat_seconds=3600)
        callback.start()
        callback.stop()
    assert not callback.aborted.is_set()


@pytest.mark.parametrize(
    ("code", "event"),
    [
        ("TaskTimedOut", "callback_skipped"),
        ("InvalidToken", "callback_skipped"),
        ("InternalFailure", "callback_failed"),
    ],
)
def test_callback_errors_never_raise(code: str, event: str) -> None:
    client = make_client("stepfunctions")
    with Stubber(client) as stub, capture_logs() as logs:
        stub.add_client_error("send_task_failure", service_error_code=code, http_status_code=400)
        TaskCallback("tok", client=client).fail("CCAPI.Failed", {"message": "x"})
        stub.assert_no_pending_responses()  # the call was made, and its error did not escape
    assert [e["event"] for e in logs] == [event]


def test_only_one_final_callback_is_sent() -> None:
    client = make_client("stepfunctions")
    with Stubber(client) as stub:
        stub.add_response("send_task_success", {}, {"taskToken": "tok", "output": ANY})
        callback = TaskCallback("tok", client=client)
        callback.succeed({"status": "succeeded"})
        callback.fail("CCAPI.Failed", "late")  # would raise in the Stubber if it were sent
        stub.assert_no_pending_responses()


# -- payload limits -----------------------------------------------------------------------


def test_success_payload_stays_small_with_5000_failed_regions() -> None:
    summary = make_summary(ok=10, failed=5000, name_length=120)
    payload = success_payload(summary)
    encoded = json.dumps(payload, separators=(",", ":")).encode()
    assert len(encoded) <= OUTPUT_BUDGET_BYTES < 256 * 1024
    kept = payload["failed_regions"]
    assert 0 < len(kept) < 5000
    assert len(kept) + payload["failed_regions_omitted"] == 5000
    assert kept == [r.name for r in summary.regions if r.status == "failed"][: len(kept)]
    assert payload["regions"]["failed"] == 5000


def test_success_payload_has_every_documented_field() -> None:
    payload = success_payload(make_summary(ok=2, insufficient=1))
    assert set(payload) >= {
        "status", "exit_code", "run_id", "run_date", "duration_s", "regions",
        "failed_regions", "hectares", "report",
    }  # fmt: skip
    assert payload["status"] == "succeeded"
    assert payload["failed_regions"] == []
    assert "failed_regions_omitted" not in payload
    assert set(payload["report"]) == {"json", "html", "geojson"}


def test_top_regions_are_the_best_scored_in_report_order() -> None:
    summary = make_summary(ok=7, failed=1, insufficient=1)
    scores = [12.0, 91.5, 40.0, 66.25, 5.0, 77.0, None]
    regions = [
        r.model_copy(
            update={
                "score": InvestmentScore(
                    value=v, label=None if v is None else label_for(v), rationale="test"
                ),
                "new_area_ha": {"vegetation_clearing": 10.0 * i, "built_up": 1.5},
            }
        )
        for i, (r, v) in enumerate(zip(summary.regions, scores, strict=False))
    ] + summary.regions[len(scores) :]
    payload = success_payload(summary.model_copy(update={"regions": regions}))
    top = payload["top_regions"]
    assert [t["score"] for t in top] == [91.5, 77.0, 66.2, 40.0, 12.0]
    assert top[0] == {
        "name": regions[1].name,
        "label": "BUY",
        "score": 91.5,
        "vegetation_clearing_ha": 10.0,
        "built_up_ha": 1.5,
    }
    # Unscored, failed and insufficient regions are never "top".
    assert {t["name"] for t in top} <= {r.name for r in regions[:6]}
    assert success_payload(make_summary(ok=0, failed=2))["top_regions"] == []


def test_failure_cause_fits_the_32768_character_limit() -> None:
    cause = failure_cause(1, "x" * 100_000, make_summary(ok=0, failed=5000, name_length=100))
    assert len(json.dumps(cause, separators=(",", ":"))) <= CAUSE_LIMIT_CHARS
    assert cause["message"].endswith("[truncated]")
    assert cause["failed_regions_omitted"] > 0


def test_fail_sends_a_cause_within_limits_even_for_huge_text() -> None:
    client = make_client("stepfunctions")
    calls = _record_calls(client, "SendTaskFailure")
    with Stubber(client) as stub:
        stub.add_response("send_task_failure", {}, None)
        TaskCallback("tok", client=client).fail("E" * 1000, "y" * 50_000)
    assert len(calls[-1]["cause"]) == CAUSE_LIMIT_CHARS
    assert len(calls[-1]["error"]) == 256


# -- secrets ------------------------------------------------------------------------------


def test_token_never_appears_in_logs(moto_server: MotoServer) -> None:
    execution = start_waiting_execution(moto_server)
    broken = make_client("stepfunctions")

    def leak(**_kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "InternalFailure", "Message": f"bad token {execution.token}"}},
            "SendTaskHeartbeat",
        )

    with capture_logs() as logs:
        callback = TaskCallback(execution.token, heartbeat_seconds=0.1)
        callback.start()
        moto_server.client("stepfunctions").stop_execution(executionArn=execution.execution_arn)
        assert _wait(callback.aborted.is_set)
        callback.fail("CCAPI.Failed", {"message": "x"})
        noisy = TaskCallback(execution.token, client=broken)
        broken.send_task_heartbeat = leak
        noisy.start()
        noisy.stop()
    assert logs, "expected log lines to search"
    assert "bad token ***" in json.dumps(logs, default=str)
    assert execution.token not in json.dumps(logs, default=str)
