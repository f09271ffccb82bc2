"""The production ASL, rendered like templatefile() and executed in moto with the container played.

Each case ends in the final state, SNS message and metrics an operator would see in AWS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.infra.asl_support import (
    ASL_TEMPLATE,
    TEMPLATE_VARIABLES,
    Container,
    TemplateError,
    callback_payload,
    load_definition,
    moto_fixes,
    render_template,
    shorten,
    template_placeholders,
    wait_for,
    worst_case_seconds,
)

REGION = "ap-southeast-3"
ENVIRONMENT = "test"
NAMESPACE = "CloudClearingAPI"
LOG_GROUP = "ccapi-monitor-test-worker"
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

    def start(self, *, heartbeat_s: int = 3, execution_input: dict[str, Any] | None = None) -> str:
        definition = shorten(
            load_definition(self.variables),
            heartbeat_s=heartbeat_s,
            task_timeout_s=30,
            execution_timeout_s=60,
        )
        machine = self.sfn.create_state_machine(
            name=f"ccapi-{len(self.container.runs)}",
            definition=json.dumps(definition),
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


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config=MOTO_CONFIG), moto_fixes():
        ec2 = boto3.client("ec2", region_name=REGION)
        ecs = boto3.client("ecs", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # moto's awsvpc task attachment reads the ENI's private DNS name, which needs DNS hostnames.
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)
        ]
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
        sfn = boto3.client("stepfunctions", region_name=REGION)
        yield Stack(
            sfn=sfn,
            sqs=sqs,
            cloudwatch=boto3.client("cloudwatch", region_name=REGION),
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
            },
            success_queue=success_queue,
            failure_queue=failure_queue,
        )


def _pass_preflight(stack: Stack) -> None:
    preflight = stack.container.next_run()
    assert preflight.command == ["ccapi-monitor", "preflight"]
    stack.container.succeed(preflight, {"status": "ok"})


def _assert_operator_fields(message: dict[str, Any], execution_arn: str) -> None:
    assert message["environment"] == ENVIRONMENT
    assert message["execution"] == "weekly-2026-11-23"
    assert message["execution_arn"] == execution_arn
    assert message["logs"] == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
        f"#logsV2:log-groups/log-group/{LOG_GROUP}"
    )
    assert message["execution_console"].endswith(f"#/v2/executions/details/{execution_arn}")


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
    assert note["Subject"] == f"[ccapi-monitor {ENVIRONMENT}] weekly run 2026-11-23 succeeded"
    message = note["Message"]
    _assert_operator_fields(message, execution)
    assert {k: message[k] for k in ("run_date", "duration_s", "regions", "failed_regions", "report")} == {
        k: payload[k] for k in ("run_date", "duration_s", "regions", "failed_regions", "report")
    }
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
    stack.container.succeed(stack.container.next_run(), callback_payload("partial", ("Bekasi", "Bogor")))

    final = stack.finish(execution)
    assert (final["status"], final["error"]) == ("FAILED", "CCAPI.PartialFailure")
    assert final["cause"] == '2 of 29 regions failed: ["Bekasi","Bogor"]'
    [note] = stack.messages(stack.failure_queue)
    assert (
        note["Subject"]
        == f"[ccapi-monitor {ENVIRONMENT}] weekly run 2026-11-23 PARTIAL: 2 of 29 regions failed"
    )
    message = note["Message"]
    _assert_operator_fields(message, execution)
    assert message["failed_regions"] == ["Bekasi", "Bogor"]
    assert message["error"] == "CCAPI.PartialFailure"
    assert message["report"]["html"].endswith("/report.html")
    assert stack.messages(stack.success_queue) == []
    assert stack.metric_values("WeeklyMonitoringSuccess") == []


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
    assert note["Subject"] == f"[ccapi-monitor {ENVIRONMENT}] weekly run FAILED: CCAPI.Failed"
    message = note["Message"]
    _assert_operator_fields(message, execution)
    assert message["error"] == {"Error": "CCAPI.Failed", "Cause": "no region succeeded: Earth Engine quota"}
    assert message["input"] == EXECUTION_INPUT
    assert stack.metric_values("WeeklyMonitoringSuccess") == []
    assert len(stack.container.runs) == 2  # a worker failure is not retried


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
def test_metrics_failure_keeps_the_success(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.cloudwatch.exceptions import InvalidParameterValue
    from moto.cloudwatch.models import CloudWatchBackend

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise InvalidParameterValue("metrics are down")

    monkeypatch.setattr(CloudWatchBackend, "put_metric_data", refuse)
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
