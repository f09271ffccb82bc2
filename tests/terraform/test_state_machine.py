"""The production ASL, rendered like templatefile() and executed in moto with the container played.

Each case ends in the final state, SNS message and metrics an operator would see in AWS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import requests
from moto import mock_aws

from ccapi_monitor import slack_notifier
from ccapi_monitor.quality import QualityFinding, QualityReport
from tests.asl_validator import validate_asl
from tests.moto_patches import cloudwatch_refuses_metrics, moto_fixes
from tests.slack_receiver import slack_receiver
from tests.terraform.asl_support import (
    ASL_TEMPLATE,
    TEMPLATE_VARIABLES,
    Container,
    ContainerRun,
    TemplateError,
    callback_payload,
    load_definition,
    render_template,
    shorten,
    template_placeholders,
    wait_for,
    worst_case_seconds,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-southeast-3"
ENVIRONMENT = "test"
NAMESPACE = "CloudClearingAPI"
LOG_GROUP = "ccapi-monitor-test-worker"
DASHBOARD_URL = f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards/dashboard/ccapi-monitor-test"
EXECUTION_INPUT = {"run_date": "2026-11-23", "trigger": "schedule"}
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}}


def _variables(**overrides: str) -> dict[str, str]:
    values = {name: f"<{name}>" for name in TEMPLATE_VARIABLES}
    values.update(overrides)
    return values


# --- the template itself ---------------------------------------------------------------------


def test_template_is_json_with_exactly_the_terraform_placeholders() -> None:
    text = ASL_TEMPLATE.read_text(encoding="utf-8")
    json.loads(text)  # valid before rendering: placeholders live inside JSON strings only
    assert template_placeholders(text) == TEMPLATE_VARIABLES


def test_render_rejects_unknown_names_like_templatefile() -> None:
    with pytest.raises(TemplateError, match="does not contain key 'missing'"):
        render_template('{"a": "${missing}"}', {})
    assert render_template('{"a": "$${kept} ${x}"}', {"x": "1"}) == '{"a": "${kept} 1"}'


def test_production_definition_passes_asl_validator() -> None:
    variables = _variables(
        ecs_cluster_arn="arn:aws:ecs:ap-southeast-3:123456789012:cluster/ccapi",
        task_definition_arn="arn:aws:ecs:ap-southeast-3:123456789012:task-definition/ccapi:1",
        success_topic_arn="arn:aws:sns:ap-southeast-3:123456789012:ok",
        failure_topic_arn="arn:aws:sns:ap-southeast-3:123456789012:failed",
        environment="prod",
        metric_namespace=NAMESPACE,
        aws_region=REGION,
    )
    verdict = validate_asl(load_definition(variables))
    assert verdict.valid, verdict.output


def test_execution_timeout_exceeds_worst_case_of_all_task_states() -> None:
    definition = load_definition(_variables())
    tasks = [s for s in definition["States"].values() if s["Type"] == "Task"]
    assert all("TimeoutSeconds" in s for s in tasks), "every Task needs an explicit timeout"
    worst = sum(worst_case_seconds(s) for s in tasks)
    assert definition["TimeoutSeconds"] > worst


def test_run_state_keeps_production_heartbeat_and_timeout() -> None:
    run = load_definition(_variables())["States"]["RunWeeklyMonitoring"]
    assert (run["HeartbeatSeconds"], run["TimeoutSeconds"]) == (300, 7200)
    retried = {name for retrier in run["Retry"] for name in retrier["ErrorEquals"]}
    assert {"States.HeartbeatTimeout", "States.Timeout"} <= retried
    assert "States.ALL" not in retried


# --- executions in moto -------------------------------------------------------------------------


@dataclass
class Stack:
    """The AWS side of one test: ECS, topics with queues subscribed, metrics, the state machine."""

    sfn: Any
    sqs: Any
    cloudwatch: Any
    container: Container
    variables: dict[str, str]
    success_queue: str
    failure_queue: str
    secrets: Any

    def start(
        self,
        *,
        heartbeat_s: int = 3,
        execution_input: dict[str, Any] | None = None,
        real_worker: bool = False,
    ) -> str:
        """Create and start the shortened machine; a real worker process gets minutes, not seconds."""
        definition = shorten(
            load_definition(self.variables),
            heartbeat_s=heartbeat_s,
            task_timeout_s=300 if real_worker else 30,
            execution_timeout_s=900 if real_worker else 60,
        )
        machine = self.sfn.create_state_machine(
            name=f"ccapi-{len(self.container.runs)}",
            definition=json.dumps(definition, ensure_ascii=False),  # moto reads \uXXXX escapes as text
            roleArn="arn:aws:iam::123456789012:role/ccapi-monitor-test-sfn",
        )["stateMachineArn"]
        started = self.sfn.start_execution(
            stateMachineArn=machine,
            name="weekly-2026-11-23",
            input=json.dumps(execution_input or EXECUTION_INPUT),
        )
        return str(started["executionArn"])

    def finish(self, execution_arn: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            return None if described["status"] == "RUNNING" else described

        return wait_for(done, timeout_s=30, what="the execution to finish")

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        """SNS notifications delivered to a queue: the envelope with Message parsed."""
        received = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        envelopes = [json.loads(m["Body"]) for m in received.get("Messages", [])]
        return [{"Subject": e.get("Subject"), "Message": json.loads(e["Message"])} for e in envelopes]

    def published(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every SNS Publish the execution scheduled: Subject and the MessageStructure=json document."""
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        found = []
        for event in events:
            details = event.get("taskScheduledEventDetails")
            if details and details["resourceType"] == "sns":
                parameters = json.loads(details["parameters"])
                assert parameters["MessageStructure"] == "json"
                found.append({"Subject": parameters["Subject"], "Message": json.loads(parameters["Message"])})
        return found

    def metric_values(self, name: str) -> list[float]:
        now = datetime.now(UTC)
        result = self.cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": name,
                            "Dimensions": [{"Name": "Environment", "Value": ENVIRONMENT}],
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                }
            ],
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=1),
        )
        return [float(v) for v in result["MetricDataResults"][0]["Values"]]


def _topic_with_queue(sns: Any, sqs: Any, name: str) -> tuple[str, str]:
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


ClientFactory = Callable[[str], Any]


def _client(service: str, **kwargs: str) -> Any:
    return boto3.client(service, region_name=REGION, **kwargs)  # type: ignore[call-overload]


def build_stack(client: ClientFactory) -> Stack:
    """Network, cluster, task definition, topics with an SQS inbox each, through ``client``."""
    ec2, ecs, sns, sqs = client("ec2"), client("ecs"), client("sns"), client("sqs")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto's awsvpc task attachment reads the ENI's private DNS name, which needs DNS hostnames.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName="ccapi-task", Description="worker", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName="ccapi")["cluster"]["clusterArn"]
    task_definition = ecs.register_task_definition(
        family="ccapi-monitor-test",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="2048",
        memory="8192",
        # moto sums container-level memory to place tasks; Terraform sets it at task level only.
        containerDefinitions=[{"name": "worker", "image": "ccapi-monitor:test", "memory": 8192}],
    )["taskDefinition"]["taskDefinitionArn"]
    success_topic, success_queue = _topic_with_queue(sns, sqs, "ccapi-success")
    failure_topic, failure_queue = _topic_with_queue(sns, sqs, "ccapi-failure")
    sfn = client("stepfunctions")
    return Stack(
        sfn=sfn,
        sqs=sqs,
        cloudwatch=client("cloudwatch"),
        container=Container(ecs, sfn, cluster),
        variables={
            "ecs_cluster_arn": cluster,
            "task_definition_arn": task_definition,
            "container_name": "worker",
            "subnet_ids_csv": ",".join(subnets),
            "security_group_ids_csv": group,
            "success_topic_arn": success_topic,
            "failure_topic_arn": failure_topic,
            "environment": ENVIRONMENT,
            "metric_namespace": NAMESPACE,
            "log_group_name": LOG_GROUP,
            "aws_region": REGION,
            "dashboard_url": DASHBOARD_URL,
            "reports_bucket": "ccapi-reports",
            "reports_key_prefix": "weekly-java/",
        },
        success_queue=success_queue,
        failure_queue=failure_queue,
        secrets=client("secretsmanager"),
    )


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """In-process moto with state machine execution enabled."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config=MOTO_CONFIG), moto_fixes():
        yield build_stack(lambda service: _client(service))


def _pass_preflight(stack: Stack) -> None:
    preflight = stack.container.next_run()
    assert preflight.command == ["ccapi-monitor", "preflight"]
    stack.container.succeed(preflight, {"status": "ok"})


LOGS_URL = f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logsV2:log-groups/log-group/{LOG_GROUP}"
REPORT_URL = (
    f"https://s3.console.aws.amazon.com/s3/object/ccapi-reports?region={REGION}"
    "&prefix=weekly-java/weekly/2026-11-23/20261123T060000Z-abc123/report.html"
)


def _assert_operator_fields(message: dict[str, Any], execution_arn: str) -> None:
    assert message["environment"] == ENVIRONMENT
    assert message["execution"] == "weekly-2026-11-23"
    assert message["execution_arn"] == execution_arn
    links = message["links"]
    assert links["logs"] == LOGS_URL
    assert links["execution"].endswith(f"#/v2/executions/details/{execution_arn}")
    assert links["dashboard"] == DASHBOARD_URL


def _email_and_slack(stack: Stack, execution_arn: str, note: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What an e-mail subscriber reads and what Slack receives for the one SNS message ``note``.

    The e-mail text is the ``email`` key of the published MessageStructure=json document (from
    the execution history, as SNS would pick it); the Slack body is what the notifier Lambda
    posts to a local webhook, fed the SNS message the queue received, as SNS feeds the Lambda.
    """
    published = stack.published(execution_arn)
    [structured] = [p for p in published if p["Subject"] == note["Subject"]]
    assert json.loads(structured["Message"]["default"]) == note["Message"], "machines get the same JSON"
    email = structured["Message"]["email"]
    text, marker, machine = email.partition("-- machine-readable (JSON) --\n")
    assert marker, "the e-mail carries the JSON after the text"
    assert json.loads(machine) == note["Message"]
    for line in (f"Environment: {ENVIRONMENT}", "Execution: weekly-2026-11-23", f"Logs: {LOGS_URL}"):
        assert line in text, line
    assert f"Dashboard: {DASHBOARD_URL}" in text
    with slack_receiver() as receiver:
        secret = stack.secrets.create_secret(Name="slack-webhook", SecretString=receiver.url)
        slack_notifier.forget_webhook()
        environ = {"SLACK_WEBHOOK_SECRET_ARN": secret["ARN"], "CCAPI_DASHBOARD_URL": DASHBOARD_URL}
        with mock.patch.dict("os.environ", environ):
            slack_notifier.handler({"Records": [{"Sns": {"Message": json.dumps(note["Message"])}}]})
        slack_notifier.forget_webhook()
    [body] = receiver.bodies
    return email, body


def _buttons(body: dict[str, Any]) -> dict[str, str]:
    return {
        e["text"]["text"]: e["url"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]
    }


@pytest.mark.slow
def test_success_publishes_metrics_and_notifies(stack: Stack) -> None:
    execution = stack.start()
    _pass_preflight(stack)
    run = stack.container.next_run()
    assert run.command == ["python", "run_weekly_java_monitor.py", "--auto-confirm"]
    assert json.loads(run.environment["CCAPI_EXECUTION_INPUT"]) == EXECUTION_INPUT
    assert run.environment["CCAPI_EXECUTION_ARN"] == execution
    payload = callback_payload("succeeded")
    stack.container.succeed(run, payload)

    assert stack.finish(execution)["status"] == "SUCCEEDED"
    [note] = stack.messages(stack.success_queue)
    assert note["Subject"] == f"[ccapi-monitor {ENVIRONMENT}] ✅ weekly run 2026-11-23 succeeded"
    message = note["Message"]
    _assert_operator_fields(message, execution)
    assert message["links"]["report"] == REPORT_URL
    email, slack = _email_and_slack(stack, execution, note)
    assert email.startswith(f"✅ ccapi-monitor {ENVIRONMENT}: weekly run 2026-11-23 succeeded\n")
    for line in (
        "Duration: 1834.5 s",
        "Regions: 28 of 29 succeeded, 0 failed, 1 with insufficient observations",
        f"Report: {REPORT_URL}",
    ):
        assert line in email, line
    assert "ACTION REQUIRED" not in email
    assert slack["text"] == f"✅ ccapi-monitor {ENVIRONMENT}: weekly run 2026-11-23 succeeded"
    assert _buttons(slack) == {
        "Report": REPORT_URL,
        "Logs": LOGS_URL,
        "Execution": message["links"]["execution"],
        "Dashboard": DASHBOARD_URL,
    }
    fields = ("run_date", "duration_s", "regions", "failed_regions", "report", "top_regions")
    assert {k: message[k] for k in fields} == {k: payload[k] for k in fields}
    assert "1. *bekasi_industrial_belt*: BUY 82, 120.3 ha cleared" in json.dumps(slack, ensure_ascii=False)
    regions = payload["regions"]
    assert (
        f"{regions['succeeded']} of {regions['total']} regions succeeded, 1 with insufficient"
        in message["summary"]
    )
    assert stack.messages(stack.failure_queue) == []
    assert stack.metric_values("WeeklyMonitoringSuccess") == [1.0]
    assert stack.metric_values("ExecutionDuration") == [payload["duration_s"]]


@pytest.mark.slow
def test_partial_failure_notifies_failed_regions_and_fails(stack: Stack) -> None:
    execution = stack.start()
    _pass_preflight(stack)
    failed = ("bekasi_industrial_belt", "cikarang_mega_industrial")
    stack.container.succeed(stack.container.next_run(), callback_payload("partial", failed))

    final = stack.finish(execution)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.PartialFailure")
    assert final["cause"] == '2 of 29 regions failed: ["bekasi_industrial_belt","cikarang_mega_industrial"]'
    [note] = stack.messages(stack.failure_queue)
    assert (
        note["Subject"]
        == f"[ccapi-monitor {ENVIRONMENT}] ⚠️ weekly run 2026-11-23 PARTIAL: 2 of 29 regions failed"
    )
    message = note["Message"]
    _assert_operator_fields(message, execution)
    assert message["failed_regions"] == list(failed)
    assert message["error"] == "CCAPI.PartialFailure"
    assert message["report"]["html"].endswith("/report.html")
    assert message["links"]["report"] == REPORT_URL
    email, slack = _email_and_slack(stack, execution, note)
    assert 'Failed regions: ["bekasi_industrial_belt","cikarang_mega_industrial"]' in email
    assert "ACTION REQUIRED: read the error of each failed region" in email
    assert "`bekasi_industrial_belt`, `cikarang_mega_industrial`" in json.dumps(slack, ensure_ascii=False)
    assert slack_notifier.ACTIONS["CCAPI.PartialFailure"] in json.dumps(slack, ensure_ascii=False)
    assert stack.messages(stack.success_queue) == []
    assert stack.metric_values("WeeklyMonitoringSuccess") == []
    assert stack.metric_values("WeeklyRunCompleted") == [1.0], "a partial week counts as completed"


@pytest.mark.slow
def test_worker_failure_notifies_error_and_cause(stack: Stack) -> None:
    execution = stack.start()
    _pass_preflight(stack)
    stack.container.fail(
        stack.container.next_run(), "CCAPI.Failed", "no region succeeded: Earth Engine quota"
    )

    final = stack.finish(execution)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.Failed")
    assert json.loads(final["cause"]) == {
        "Error": "CCAPI.Failed",
        "Cause": "no region succeeded: Earth Engine quota",
    }
    [note] = stack.messages(stack.failure_queue)
    assert note["Subject"] == f"[ccapi-monitor {ENVIRONMENT}] ❌ weekly run FAILED: CCAPI.Failed"
    message = note["Message"]
    _assert_operator_fields(message, execution)
    assert message["error"] == {"Error": "CCAPI.Failed", "Cause": "no region succeeded: Earth Engine quota"}
    assert message["input"] == EXECUTION_INPUT
    email, slack = _email_and_slack(stack, execution, note)
    assert "Cause: no region succeeded: Earth Engine quota" in email
    assert "ACTION REQUIRED: find CCAPI.Failed in docs/runbook.md" in email
    assert slack["text"] == f"❌ ccapi-monitor {ENVIRONMENT}: weekly run FAILED (CCAPI.Failed)"
    assert slack_notifier.ACTIONS["CCAPI.Failed"] in json.dumps(slack, ensure_ascii=False)
    assert stack.metric_values("WeeklyMonitoringSuccess") == []
    assert stack.metric_values("WeeklyRunCompleted") == []
    assert len(stack.container.runs) == 2  # a worker failure is not retried


HOLIDAY_INPUT = {"run_date": "2026-08-17", "trigger": "schedule"}
SKIPPED = {
    "status": "skipped",
    "exit_code": 0,
    "run_date": "2026-08-17",
    "skip": {"reason": "public holiday in ID: Independence Day", "source": "public_holiday"},
}


@pytest.mark.slow
def test_holiday_succeeds_skipped_without_the_monitoring_task(stack: Stack) -> None:
    execution = stack.start(execution_input=HOLIDAY_INPUT)
    preflight = stack.container.next_run()
    assert preflight.command == ["ccapi-monitor", "preflight"]
    stack.container.succeed(preflight, SKIPPED)  # what ValidateInputs answers on a skip-calendar date

    assert stack.finish(execution)["status"] == "SUCCEEDED"
    assert len(stack.container.runs) == 1, "no RunWeeklyMonitoring task on a skipped week"
    assert "RunWeeklyMonitoring" not in {
        e.get("stateEnteredEventDetails", {}).get("name")
        for e in stack.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    }
    [note] = stack.messages(stack.success_queue)
    assert note["Subject"] == f"[ccapi-monitor {ENVIRONMENT}] ⏭️ weekly run 2026-08-17 skipped"
    message = note["Message"]
    assert (message["status"], message["run_date"], message["skip"]) == (
        "skipped",
        "2026-08-17",
        SKIPPED["skip"],
    )
    assert "force" in message["summary"]
    email, slack = _email_and_slack(stack, execution, note)
    assert "Reason: public holiday in ID: Independence Day" in email
    assert "No action needed" in email
    assert slack["text"] == f"⏭️ ccapi-monitor {ENVIRONMENT}: weekly run 2026-08-17 skipped"
    assert stack.messages(stack.failure_queue) == []
    assert stack.metric_values("WeeklyMonitoringSkipped") == [1.0]
    assert stack.metric_values("WeeklyRunCompleted") == [1.0]
    assert stack.metric_values("WeeklyMonitoringSuccess") == []


@pytest.mark.slow
def test_forced_run_on_a_holiday_runs_the_week(stack: Stack) -> None:
    forced = {**HOLIDAY_INPUT, "force": True}
    execution = stack.start(execution_input=forced)
    preflight = stack.container.next_run()
    # The execution input reaches ValidateInputs, which ignores the calendar when force is set.
    assert json.loads(preflight.environment["CCAPI_EXECUTION_INPUT"])["force"] is True
    stack.container.succeed(preflight, {"status": "succeeded", "exit_code": 0, "run_date": "2026-08-17"})
    run = stack.container.next_run()
    assert run.command == ["python", "run_weekly_java_monitor.py", "--auto-confirm"]
    stack.container.succeed(run, callback_payload("succeeded"))

    assert stack.finish(execution)["status"] == "SUCCEEDED"
    [note] = stack.messages(stack.success_queue)
    assert note["Message"]["status"] == "succeeded"
    assert stack.metric_values("WeeklyMonitoringSkipped") == []


@pytest.mark.slow
def test_preflight_failure_skips_the_run(stack: Stack) -> None:
    execution = stack.start()
    preflight = stack.container.next_run()
    stack.container.fail(preflight, "CCAPI.PreflightFailed", "bucket ccapi-reports: AccessDenied")

    final = stack.finish(execution)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.Failed")
    [note] = stack.messages(stack.failure_queue)
    assert note["Message"]["error"]["Error"] == "CCAPI.PreflightFailed"
    assert "AccessDenied" in note["Message"]["error"]["Cause"]
    assert len(stack.container.runs) == 1, "RunWeeklyMonitoring must not start after a failed preflight"


@pytest.mark.slow
def test_silent_container_is_retried_once_then_reported(stack: Stack) -> None:
    execution = stack.start(heartbeat_s=2)
    _pass_preflight(stack)
    first = stack.container.next_run()
    second = stack.container.next_run()  # heartbeat timeout -> one retry, a fresh task
    assert first.task_arn != second.task_arn

    final = stack.finish(execution)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.Failed")
    [note] = stack.messages(stack.failure_queue)
    # moto names a heartbeat timeout States.Timeout; AWS names it States.HeartbeatTimeout.
    assert note["Message"]["error"]["Error"] in {"States.Timeout", "States.HeartbeatTimeout"}
    assert len(stack.container.runs) == 3


@pytest.mark.slow
def test_heartbeats_keep_a_long_run_alive(stack: Stack) -> None:
    execution = stack.start(heartbeat_s=2)
    _pass_preflight(stack)
    run = stack.container.next_run()
    for _ in range(6):  # 3 s of work, longer than the 2 s heartbeat window
        stack.container.heartbeat(run)
        time.sleep(0.5)
    stack.container.succeed(run, callback_payload("succeeded"))
    assert stack.finish(execution)["status"] == "SUCCEEDED"
    assert len(stack.container.runs) == 2


@pytest.mark.slow
def test_metrics_failure_keeps_the_success(stack: Stack) -> None:
    with cloudwatch_refuses_metrics("metrics are down"):
        execution = stack.start()
        _pass_preflight(stack)
        stack.container.succeed(stack.container.next_run(), callback_payload("succeeded"))
        assert stack.finish(execution)["status"] == "SUCCEEDED"
    [note] = stack.messages(stack.success_queue)
    assert note["Message"]["status"] == "succeeded"


@pytest.mark.slow
def test_unexpected_status_is_a_failure(stack: Stack) -> None:
    execution = stack.start()
    _pass_preflight(stack)
    stack.container.succeed(stack.container.next_run(), {"status": "weird"})

    final = stack.finish(execution)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.Failed")
    [note] = stack.messages(stack.failure_queue)
    assert note["Message"]["error"]["Error"] == "CCAPI.UnexpectedStatus"


@pytest.mark.slow
def test_quality_failed_run_notifies_with_the_report_and_fails_data_quality(stack: Stack) -> None:
    """Exit 5: the worker answers success with status quality_failed; the execution must not succeed."""
    quality = QualityReport(
        status="failed",
        checks=["java_area_jump"],
        findings=[
            QualityFinding(
                name="java_area_jump",
                severity="critical",
                message="Java-wide detected built_up is 2801.9 ha against a median of 1401.0 ha (2.0x)",
                value=2801.9,
                limit=2521.8,
            )
        ],
    )
    payload = {
        **callback_payload("succeeded"),
        "status": "quality_failed",
        "exit_code": 5,
        "quality": quality.callback_fields(),
    }
    message = quality.summary_line()
    execution = stack.start()
    _pass_preflight(stack)
    run = stack.container.next_run()
    stack.container.wait_listening(run)  # under load moto takes a moment to accept the token
    stack.container.succeed(run, payload)

    final = stack.finish(execution)
    assert (final["status"], final["error"], final["cause"]) == ("FAILED", "CCAPI.DataQualityFailed", message)
    [note] = stack.messages(stack.failure_queue)
    assert (
        note["Subject"]
        == f"[ccapi-monitor {ENVIRONMENT}] weekly run 2026-11-23 QUALITY FAILED: not published"
    )
    body = note["Message"]
    _assert_operator_fields(body, execution)
    assert (body["error"], body["cause"], body["status"]) == (
        "CCAPI.DataQualityFailed",
        message,
        "quality_failed",
    )
    assert body["report"] == payload["report"]
    assert body["quality"] == payload["quality"]
    assert message in body["summary"]
    assert "accept_quality" in body["summary"]
    email, slack = _email_and_slack(stack, execution, note)
    for line in (
        "Quality: 1 critical finding(s), 0 warning(s). First: " + message,
        "execution input accept_quality: true",
        f"Report: {REPORT_URL}",
    ):
        assert line in email, line
    assert slack["text"].endswith("weekly run FAILED (CCAPI.DataQualityFailed)")
    assert message in json.dumps(slack, ensure_ascii=False)
    assert stack.messages(stack.success_queue) == []
    assert stack.metric_values("WeeklyMonitoringSuccess") == []
    assert len(stack.container.runs) == 2  # a quality failure is not retried


# --- the real worker as the container ---------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server_url() -> Iterator[str]:
    """A moto server on loopback for the worker subprocess; this process runs its state machines."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def server_stack(moto_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    requests.post(f"{moto_server_url}/moto-api/reset", timeout=10).raise_for_status()
    requests.post(f"{moto_server_url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
    # The state machine interpreter calls ECS/SNS/CloudWatch over HTTP on localhost:$MOTO_PORT.
    monkeypatch.setenv("MOTO_PORT", moto_server_url.rsplit(":", 1)[1])
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    with moto_fixes():
        yield build_stack(lambda service: _client(service, endpoint_url=moto_server_url, **credentials))


def _in_this_interpreter(command: list[str]) -> list[str]:
    """The container's command, run with this venv's Python from the repository root (the image's workdir)."""
    if command[0] == "ccapi-monitor":
        return [sys.executable, "-m", "ccapi_monitor", *command[1:]]
    assert command[0] == "python", command
    return [sys.executable, *command[1:]]


@pytest.mark.slow
@pytest.mark.e2e
def test_real_worker_runs_inside_the_state_machine(
    server_stack: Stack, moto_server_url: str, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """Demo imagery, one region: preflight and the weekly run are the real CLI, called back for real."""
    stack = server_stack

    s3 = _client(
        "s3", endpoint_url=moto_server_url, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    s3.create_bucket(Bucket="ccapi-e2e", CreateBucketConfiguration={"LocationConstraint": REGION})
    # What the task definition (ecs.tf) sets, pointed at moto and the offline demo archive.
    task_env = {
        **worker_env,
        "AWS_ENDPOINT_URL": moto_server_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CCAPI_ENVIRONMENT": ENVIRONMENT,
        "CCAPI_REPORTS_URI": "s3://ccapi-e2e/reports",
        "CCAPI_CACHE_URI": "s3://ccapi-e2e/cache",
        "CCAPI_IMAGERY": "demo",
        "CCAPI_INFRASTRUCTURE": "off",
        "CCAPI_METRICS": "cloudwatch",
        "CCAPI_HEARTBEAT_SECONDS": "1",
        "TMPDIR": str(tmp_path),
    }
    execution = stack.start(
        heartbeat_s=30, execution_input={"run_date": "2026-11-23", "regions_count": 1}, real_worker=True
    )

    for expected in (
        ["ccapi-monitor", "preflight"],
        ["python", "run_weekly_java_monitor.py", "--auto-confirm"],
    ):
        run = stack.container.next_run()
        assert run.command == expected
        stack.container.wait_listening(run)
        worker = subprocess.run(
            _in_this_interpreter(run.command),
            cwd=REPO_ROOT,
            env={**task_env, **run.environment},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
        assert run.token not in worker.stdout + worker.stderr, "the task token reached the logs"

    assert stack.finish(execution)["status"] == "SUCCEEDED"
    [note] = stack.messages(stack.success_queue)
    message = note["Message"]
    assert message["regions"] == {"total": 1, "succeeded": 1, "failed": 0, "insufficient": 0}
    assert message["report"]["json"].startswith("s3://ccapi-e2e/reports/weekly/2026-11-23/")
    assert stack.metric_values("WeeklyMonitoringSuccess") == [1.0]
    assert stack.metric_values("ExecutionDuration") == [message["duration_s"]]


def _run_container(run: ContainerRun, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _in_this_interpreter(run.command),
        cwd=REPO_ROOT,
        env={**env, **run.environment},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("force", [False, True], ids=["holiday-skipped", "holiday-forced"])
def test_real_preflight_decides_a_holiday(
    server_stack: Stack, moto_server_url: str, worker_env: dict[str, str], tmp_path: Path, force: bool
) -> None:
    """The real `ccapi-monitor preflight` with the calendar Terraform renders: skip, or run when forced."""
    stack = server_stack
    calendar = {"public_holidays_country": "ID", "dates": {}, "windows": []}
    task_env = {
        **worker_env,
        "AWS_ENDPOINT_URL": moto_server_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CCAPI_ENVIRONMENT": ENVIRONMENT,
        # Nowhere writable: a skipped week must not even probe the stores.
        "CCAPI_REPORTS_URI": "s3://no-such-bucket/reports",
        "CCAPI_CACHE_URI": "s3://no-such-bucket/cache",
        "CCAPI_IMAGERY": "demo",
        "CCAPI_INFRASTRUCTURE": "off",
        "CCAPI_SKIP_CALENDAR": json.dumps(calendar),
        "CCAPI_HEARTBEAT_SECONDS": "1",
        "TMPDIR": str(tmp_path),
    }
    execution_input = {**HOLIDAY_INPUT, **({"force": True} if force else {})}
    execution = stack.start(heartbeat_s=30, execution_input=execution_input, real_worker=True)
    preflight = stack.container.next_run()
    stack.container.wait_listening(preflight)
    worker = _run_container(preflight, task_env)
    if not force:
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert (
            "skipped: 2026-08-17 is on the skip calendar (public holiday in ID: Independence Day)"
            in worker.stdout
        )
        assert stack.finish(execution)["status"] == "SUCCEEDED"
        assert len(stack.container.runs) == 1, "no RunWeeklyMonitoring task on a holiday"
        [note] = stack.messages(stack.success_queue)
        assert note["Message"]["skip"] == SKIPPED["skip"]
        return
    # Forced: the calendar is ignored and the real checks run (and fail on the missing bucket).
    assert worker.returncode == 4, worker.stdout + worker.stderr
    assert "no-such-bucket" in worker.stderr
    final = stack.finish(execution)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.Failed")
    [note] = stack.messages(stack.failure_queue)
    assert note["Message"]["error"]["Error"] == "CCAPI.PreflightFailed"
