"""A moto server on 127.0.0.1 for the AWS tests, reset between tests.

One ``ThreadedMotoServer`` per session (port chosen by the OS). Every test that asks for
``moto_server`` gets a clean server, Step Functions execution enabled, and this process's
environment pointed at it through ``AWS_ENDPOINT_URL`` (the same way the worker
subprocess is pointed at it in the end-to-end tests).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import boto3
import pytest
import requests

from ccapi_monitor.models import ImageryInfo, RegionResult, RunSummary, Totals
from ccapi_monitor.params import DetectionParams
from tests.moto_patches import moto_fixes

REGION = "ap-southeast-3"
ACCESS_KEY = "testing"
#: Distinct from anything else in the output so the secret grep can look for it.
SECRET_KEY = "moto-secret-key-5f3c9e7a1b"
CONTAINER = "worker"


@pytest.fixture(scope="session")
def _moto_sfn_casing_fix() -> Iterator[None]:
    """moto's Step Functions parser needs the patches in tests/moto_patches.py in this process,
    where the threaded server runs."""
    with moto_fixes():
        yield


@dataclass
class MotoServer:
    url: str

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        # Execution of state machines is opt-in in moto; the config outlives resets, set it anyway.
        requests.post(
            f"{self.url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
        ).raise_for_status()

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this server as if it were AWS."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@pytest.fixture(scope="session")
def _moto_server_session(_moto_sfn_casing_fix: None) -> Iterator[MotoServer]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # The SFN parser calls ECS through HTTP on localhost:$MOTO_PORT (moto.settings.moto_server_port).
    previous_port = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(port)
    try:
        yield MotoServer(f"http://{host}:{port}")
    finally:
        server.stop()
        if previous_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = previous_port


@pytest.fixture
def moto_server(_moto_server_session: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """A clean moto server, and this process's boto3 pointed at it."""
    _moto_server_session.reset()
    for name, value in _moto_server_session.env().items():
        monkeypatch.setenv(name, value)
    return _moto_server_session


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    name = "ccapi-test-bucket"
    moto_server.client("s3").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return name


# -- Step Functions: a real moto execution waiting on an ECS task token ------------------


@dataclass
class WaitingExecution:
    execution_arn: str
    token: str
    state_machine_arn: str


def start_waiting_execution(
    server: MotoServer, *, heartbeat_seconds: int = 60, name: str = "ccapi-weekly"
) -> WaitingExecution:
    """Start ``ecs:runTask.waitForTaskToken`` and read the token from the task's env overrides.

    That is where ECS would hand it to the container (as ``CCAPI_TASK_TOKEN``). Two moto
    quirks shape this: a heartbeat is accepted only when the state sets ``HeartbeatSeconds``
    (our ASL always does), and only once the task's heartbeat endpoint exists, a moment
    after the ECS task is visible; so the token is returned once one heartbeat got through.
    """
    ec2, ecs, sfn = server.client("ec2"), server.client("ecs"), server.client("stepfunctions")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto's Fargate ENI needs DNS hostnames on the VPC to build the task attachment.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"{name}-sg", Description="worker", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=name)
    task_definition = ecs.register_task_definition(
        family=name,
        containerDefinitions=[{"name": CONTAINER, "image": "ccapi-monitor:test", "memory": 512}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::ecs:runTask.waitForTaskToken",
        "Parameters": {
            "Cluster": name,
            "TaskDefinition": task_definition,
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": [subnet], "SecurityGroups": [group]}},
            "Overrides": {
                "ContainerOverrides": [
                    {
                        "Name": CONTAINER,
                        "Environment": [{"Name": "CCAPI_TASK_TOKEN", "Value.$": "$$.Task.Token"}],
                    }
                ]
            },
        },
        "TimeoutSeconds": 600,
        "HeartbeatSeconds": heartbeat_seconds,
        "End": True,
    }
    definition = {"StartAt": "RunWorker", "States": {"RunWorker": task}}
    state_machine = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/ccapi-sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=state_machine, input="{}")["executionArn"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        arns = ecs.list_tasks(cluster=name)["taskArns"]
        if arns:
            described = ecs.describe_tasks(cluster=name, tasks=arns)["tasks"][0]
            env = described["overrides"]["containerOverrides"][0]["environment"]
            token = next(item["value"] for item in env if item["name"] == "CCAPI_TASK_TOKEN")
            if _heartbeat_accepted(sfn, token):
                return WaitingExecution(execution, token, state_machine)
        status = sfn.describe_execution(executionArn=execution)["status"]
        if status != "RUNNING":
            raise AssertionError(f"execution ended before the task started: {status}")
        time.sleep(0.05)
    raise AssertionError("the ECS task never started")


def _heartbeat_accepted(sfn: Any, token: str) -> bool:
    try:
        sfn.send_task_heartbeat(taskToken=token)
    except sfn.exceptions.InvalidToken:
        return False
    return True


def wait_for_execution(server: MotoServer, execution_arn: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll until the execution leaves RUNNING; return describe_execution."""
    sfn = server.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def failure_event(server: MotoServer, execution_arn: str) -> dict[str, Any]:
    """The TaskFailed event details (error and cause sent with SendTaskFailure)."""
    events = server.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    for event in events:
        if event["type"] == "TaskFailed":
            details: dict[str, Any] = event["taskFailedEventDetails"]
            return details
    raise AssertionError(f"no TaskFailed event in {[e['type'] for e in events]}")


# -- run summaries -----------------------------------------------------------------------


def make_summary(
    *, ok: int = 2, failed: int = 0, insufficient: int = 0, environment: str = "test", name_length: int = 12
) -> RunSummary:
    """A RunSummary with the given region outcomes (names padded to ``name_length``)."""
    regions: list[RegionResult] = []
    outcomes = ["ok"] * ok + ["failed"] * failed + ["insufficient_observations"] * insufficient
    for i, status in enumerate(outcomes):
        regions.append(
            RegionResult(
                name=f"region_{i:05d}".ljust(name_length, "x"),
                province="Jawa Barat",
                focus="industrial",
                priority=1,
                tier=1,
                area_km2=100.0,
                status=status,
                error="imagery backend timed out" if status == "failed" else None,
                area_ha={"vegetation_clearing": 10.0, "built_up": 2.5} if status == "ok" else None,
            )
        )
    failed_total = failed and not ok and not insufficient
    return RunSummary(
        run_id="20261123T020000Z-abc123",
        run_date="2026-11-23",
        status="failed" if failed_total else ("partial" if failed else "succeeded"),
        exit_code=1 if failed_total else (2 if failed else 0),
        environment=environment,
        duration_s=123.456,
        regions=regions,
        totals=Totals(
            area_ha={"vegetation_clearing": 10.0 * ok, "built_up": 2.5 * ok},
            new_area_ha={"vegetation_clearing": 10.0 * ok, "built_up": 2.5 * ok},
            union_area_ha={"vegetation_clearing": 8.0 * ok, "built_up": 2.0 * ok},
            union_new_area_ha={"vegetation_clearing": 8.0 * ok, "built_up": 2.0 * ok},
            polygon_count=0,
            regions_measured=ok,
        ),
        imagery=ImageryInfo(source="demo"),
        windows=DetectionParams().windows(date(2026, 11, 23)),
        parameters=DetectionParams(),
        report_uris={
            "json": "s3://b/reports/weekly/2026-11-23/r/report.json",
            "html": "s3://b/reports/weekly/2026-11-23/r/report.html",
            "geojson": "s3://b/reports/weekly/2026-11-23/r/changes.geojson",
        },
    )
