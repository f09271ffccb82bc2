"""The fan-out state machine, merged like fan_out.tf merges it, executed in moto with a scripted container.

The scripted shards write real region results through :class:`FanOutStore`; the scripted
assemble step reads them with the worker's own :func:`collect_results`, so the failed
regions named in the notification are the ones whose shard did not deliver.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ccapi_monitor.fanout import FanOutStore, Shard, collect_results, missing_result
from ccapi_monitor.regions import Region, box
from ccapi_monitor.runner import exit_code_for
from ccapi_monitor.storage import LocalStore
from tests.asl_validator import validate_asl
from tests.terraform.asl_support import (
    TEMPLATE_VARIABLES,
    TERRAFORM_DIR,
    ContainerRun,
    load_definition,
    render_template,
    shorten,
    template_placeholders,
)
from tests.terraform.test_state_machine import (  # noqa: F401  (stack: the moto stack fixture, used by name)
    HOLIDAY_INPUT,
    SKIPPED,
    Stack,
    stack,
)

FAN_OUT_TEMPLATE = TERRAFORM_DIR / "state_machine_fan_out.asl.json"
#: The single variant's state the fan-out head replaces (as fan_out.tf does).
REPLACED = frozenset({"RunWeeklyMonitoring"})
RUN_DATE = date(2026, 11, 23)
RUN_ID = "20261123T060000Z-fan001"
AREA = {"vegetation_clearing": 1.0, "built_up": 0.5}
REGIONS = [
    Region(f"r{i}", "p", "urban", 1, 1, box(106 + i / 10, -6.3, 106.1 + i / 10, -6.2)) for i in range(7)
]


def fan_out_definition(variables: dict[str, str]) -> dict[str, Any]:
    """The deployed fan-out definition: the single variant's tail with the fan-out head over it."""
    single = load_definition(variables)
    head = json.loads(render_template(FAN_OUT_TEMPLATE.read_text(encoding="utf-8"), variables))
    states = {k: v for k, v in single["States"].items() if k not in REPLACED}
    # The skip calendar is the single variant's; an ordinary week goes on to the Map.
    states["CheckSkipCalendar"] = {**states["CheckSkipCalendar"], "Default": "RunShards"}
    return {**single, "Comment": head["Comment"], "States": {**states, **head["States"]}}


def _short(definition: dict[str, Any], heartbeat_s: int) -> dict[str, Any]:
    short = shorten(definition, heartbeat_s=heartbeat_s, task_timeout_s=30, execution_timeout_s=90)
    processor = short["States"]["RunShards"]["ItemProcessor"]
    inner = shorten(processor, heartbeat_s=heartbeat_s, task_timeout_s=30, execution_timeout_s=90)
    inner.pop("TimeoutSeconds")
    short["States"]["RunShards"]["ItemProcessor"] = inner
    return short


def test_fan_out_template_uses_only_terraform_variables_and_shares_the_tail() -> None:
    text = FAN_OUT_TEMPLATE.read_text(encoding="utf-8")
    assert template_placeholders(text) <= TEMPLATE_VARIABLES | {"shard_size"}
    variables = {name: f"<{name}>" for name in TEMPLATE_VARIABLES | {"shard_size"}}
    definition = fan_out_definition(variables)
    states = definition["States"]
    assert "RunWeeklyMonitoring" not in states
    assert states["Assemble"]["Next"] == "ReadResult"
    # The tail is the single variant's, not a copy.
    single = load_definition(variables)["States"]
    for name in (
        "ReadResult",
        "CheckExecutionStatus",
        "NotifySuccess",
        "NotifyPartialFailure",
        "NotifyFailure",
    ):
        assert states[name] == single[name]
    targets = {s.get("Next") for s in states.values()} | {
        c["Next"] for s in states.values() for c in s.get("Catch", [])
    }
    assert targets - {None} <= set(states)
    mode = states["RunShards"]["ItemProcessor"]["ProcessorConfig"]["Mode"]
    assert mode == "INLINE"


# --- executions ------------------------------------------------------------------------------


class ScriptedWorker:
    """Plays every task the execution starts: preflight with a plan, shards, assemble."""

    def __init__(
        self, aws: Stack, store: LocalStore, behaviour: dict[str, str], max_concurrency: int
    ) -> None:
        self.stack = aws
        self.store = FanOutStore(store, RUN_DATE, RUN_ID)
        self.behaviour = behaviour  # shard label -> "ok" | "fail" | "silent"
        self.max_concurrency = max_concurrency
        self.shards = [Shard(k, 3) for k in (1, 2, 3)]
        self.running: set[str] = set()
        self.peak = 0
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def plan(self) -> dict[str, Any]:
        return {
            "run_id": RUN_ID,
            "run_date": RUN_DATE.isoformat(),
            "shards": [{"shard": s.label, "regions": len(s.select(REGIONS))} for s in self.shards],
            "max_concurrency": self.max_concurrency,
        }

    def _shard(self, run: ContainerRun) -> None:
        label = run.environment["CCAPI_SHARD"]
        container = self.stack.container
        with self.lock:
            self.running.add(run.task_arn)
            self.peak = max(self.peak, len(self.running))
        try:
            container.wait_listening(run)
            behaviour = self.behaviour.get(label, "ok")
            if behaviour == "silent":
                return  # never calls back and never heartbeats again
            time.sleep(0.5)  # work long enough for the Map to start the others
            if behaviour == "fail":
                container.fail(run, "CCAPI.Failed", f"shard {label}: Earth Engine quota")
                return
            names = []
            for region in Shard.parse(label).select(REGIONS):
                ok = missing_result(region, RUN_ID).model_copy(
                    update={"status": "ok", "error": None, "observed_fraction": 0.9, "area_ha": AREA}
                )
                self.store.write_region(ok)
                names.append(region.name)
            summary = {"total": len(names), "succeeded": len(names), "failed": 0, "insufficient": 0}
            container.succeed(
                run, {"shard": label, "status": "succeeded", "regions": summary, "failed_regions": []}
            )
        finally:
            with self.lock:
                self.running.discard(run.task_arn)

    def _assemble(self, run: ContainerRun) -> None:
        assert run.environment["CCAPI_RUN_ID"] == RUN_ID
        assert run.environment["CCAPI_RUN_DATE"] == RUN_DATE.isoformat()
        results, _missing = collect_results(REGIONS, self.store, RUN_ID)
        code, status = exit_code_for(results)
        failed = [r.name for r in results if r.status == "failed"]
        if status == "failed":
            self.stack.container.fail(run, "CCAPI.Failed", "no region succeeded")
            return
        base = f"s3://ccapi-reports/weekly/{RUN_DATE}/{RUN_ID}"
        self.stack.container.succeed(
            run,
            {
                "status": status,
                "exit_code": int(code),
                "run_id": RUN_ID,
                "run_date": RUN_DATE.isoformat(),
                "duration_s": 12.5,
                "regions": {
                    "total": len(results),
                    "succeeded": len(results) - len(failed),
                    "failed": len(failed),
                    "insufficient": 0,
                },
                "failed_regions": failed,
                "hectares": AREA,
                "report": {k: f"{base}/{f}" for k, f in (("json", "report.json"), ("html", "report.html"))},
            },
        )

    def play(self, expected_tasks: int) -> list[ContainerRun]:
        container = self.stack.container
        preflight = container.next_run()
        assert preflight.command == ["ccapi-monitor", "preflight", "--plan-shards"]
        assert preflight.environment["CCAPI_SHARD_SIZE"] == "3"
        container.succeed(preflight, {"status": "succeeded", "exit_code": 0, "plan": self.plan()})
        for _ in range(expected_tasks - 1):
            run = container.next_run(timeout_s=30)
            if run.command == ["ccapi-monitor", "assemble"]:
                self._assemble(run)
                continue
            assert run.command == ["ccapi-monitor", "run", "--auto-confirm"]
            assert run.environment["CCAPI_RUN_ID"] == RUN_ID
            thread = threading.Thread(target=self._shard, args=(run,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return container.runs


def _start(aws: Stack, execution_input: dict[str, Any], *, heartbeat_s: int) -> str:
    """Create the shortened fan-out machine (shard size 3) and start one execution of it."""
    definition = _short(fan_out_definition({**aws.variables, "shard_size": "3"}), heartbeat_s)
    machine = aws.sfn.create_state_machine(
        name="ccapi-fan-out",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/ccapi-monitor-test-sfn",
    )["stateMachineArn"]
    name = f"weekly-{execution_input['run_date']}"
    started = aws.sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(execution_input))
    return str(started["executionArn"])


def _execute(
    aws: Stack, tmp_path: Path, behaviour: dict[str, str], *, tasks: int, heartbeat_s: int = 5
) -> tuple[dict[str, Any], ScriptedWorker]:
    execution = _start(aws, {"run_date": "2026-11-23"}, heartbeat_s=heartbeat_s)
    worker = ScriptedWorker(aws, LocalStore(tmp_path / "cache"), behaviour, max_concurrency=2)
    worker.play(tasks)
    final = aws.finish(execution)
    for thread in worker.threads:
        thread.join(timeout=5)
    return final, worker


def _shard_regions(label: str) -> list[str]:
    return [r.name for r in Shard.parse(label).select(REGIONS)]


@pytest.mark.slow
def test_all_shards_succeed(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    final, worker = _execute(stack, tmp_path, {}, tasks=5)
    assert final["status"] == "SUCCEEDED"
    assert worker.peak == 2  # shards run in parallel, at most MaxConcurrency (from the plan) at once
    [note] = stack.messages(stack.success_queue)
    assert note["Message"]["regions"] == {"total": 7, "succeeded": 7, "failed": 0, "insufficient": 0}
    # This scripted assemble answers without top_regions (an older worker): ReadResult defaults it.
    assert note["Message"]["top_regions"] == []
    assert stack.metric_values("WeeklyMonitoringSuccess") == [1.0]


@pytest.mark.slow
def test_holiday_skips_the_map_and_notifies(stack: Stack) -> None:  # noqa: F811
    execution = _start(stack, HOLIDAY_INPUT, heartbeat_s=5)
    preflight = stack.container.next_run()
    assert preflight.command == ["ccapi-monitor", "preflight", "--plan-shards"]
    stack.container.succeed(preflight, SKIPPED)  # a skip-calendar week has no plan

    assert stack.finish(execution)["status"] == "SUCCEEDED"
    assert len(stack.container.runs) == 1, "no shard and no assemble task on a skipped week"
    [note] = stack.messages(stack.success_queue)
    assert (note["Message"]["status"], note["Message"]["skip"]) == ("skipped", SKIPPED["skip"])
    assert stack.metric_values("WeeklyMonitoringSkipped") == [1.0]
    assert stack.messages(stack.failure_queue) == []


@pytest.mark.slow
def test_one_failed_shard_is_a_partial_run_naming_its_regions(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    final, _ = _execute(stack, tmp_path, {"2/3": "fail"}, tasks=5)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.PartialFailure")
    [note] = stack.messages(stack.failure_queue)
    assert note["Message"]["failed_regions"] == _shard_regions("2/3") == ["r1", "r4"]
    assert note["Message"]["regions"]["failed"] == 2
    assert stack.messages(stack.success_queue) == []


@pytest.mark.slow
def test_all_shards_failing_fails_the_run(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    behaviour = {"1/3": "fail", "2/3": "fail", "3/3": "fail"}
    final, _ = _execute(stack, tmp_path, behaviour, tasks=5)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.Failed")
    [note] = stack.messages(stack.failure_queue)
    assert note["Message"]["error"]["Error"] == "CCAPI.Failed"
    assert "no region succeeded" in note["Message"]["error"]["Cause"]


@pytest.mark.slow
def test_silent_shard_times_out_is_retried_once_then_its_regions_fail(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    # Preflight, three shards, the silent shard's one retry, assemble.
    final, worker = _execute(stack, tmp_path, {"3/3": "silent"}, tasks=6, heartbeat_s=2)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.PartialFailure")
    silent = [r for r in worker.stack.container.runs if r.environment.get("CCAPI_SHARD") == "3/3"]
    assert len(silent) == 2
    [note] = stack.messages(stack.failure_queue)
    assert note["Message"]["failed_regions"] == _shard_regions("3/3") == ["r2", "r5"]


def test_fan_out_definition_passes_asl_validator() -> None:
    variables = {name: f"<{name}>" for name in TEMPLATE_VARIABLES}
    variables.update(
        ecs_cluster_arn="arn:aws:ecs:ap-southeast-3:123456789012:cluster/ccapi",
        task_definition_arn="arn:aws:ecs:ap-southeast-3:123456789012:task-definition/ccapi:1",
        success_topic_arn="arn:aws:sns:ap-southeast-3:123456789012:ok",
        failure_topic_arn="arn:aws:sns:ap-southeast-3:123456789012:failed",
        shard_size="25",
    )
    verdict = validate_asl(fan_out_definition(variables))
    assert verdict.valid, verdict.output
