"""Helpers to execute the production state machine in moto and play its container.

The template is rendered here the way Terraform's ``templatefile()`` renders it, so the
definition under test is the one Terraform deploys; only timeouts and retry delays are
shortened, after parsing, so executions take seconds.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "infra" / "terraform"
ASL_TEMPLATE = TERRAFORM_DIR / "state_machine.asl.json"

#: The names state_machine.tf passes to templatefile().
TEMPLATE_VARIABLES = frozenset(
    {
        "ecs_cluster_arn",
        "task_definition_arn",
        "container_name",
        "subnet_ids_csv",
        "security_group_ids_csv",
        "success_topic_arn",
        "failure_topic_arn",
        "environment",
        "metric_namespace",
        "log_group_name",
        "aws_region",
        "dashboard_url",
        "reports_bucket",
        "reports_key_prefix",
    }
)


# templatefile(): "$${" and "%%{" are escapes, "${name}" interpolates, "%{" opens a directive.
_TEMPLATE_TOKEN = re.compile(r"\$\$\{|%%\{|\$\{([^}]*)\}|%\{")
_IDENTIFIER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*$")


class TemplateError(ValueError):
    """The template uses something templatefile() would reject or that this renderer does not model."""


def template_placeholders(text: str) -> set[str]:
    """Names interpolated by the template (``${name}``), escapes excluded."""
    return {m.group(1).strip() for m in _TEMPLATE_TOKEN.finditer(text) if m.group(1) is not None}


def render_template(text: str, variables: Mapping[str, str]) -> str:
    """Render like ``templatefile()``: plain ``${name}`` substitution, escapes honoured, unknown names fail."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        if token == "%%{":
            return "%{"
        if token == "%{":
            raise TemplateError(f"template directive at offset {match.start()} is not supported")
        ident = _IDENTIFIER.match(match.group(1))
        if ident is None:
            raise TemplateError(f"only plain variable references are supported, got {token!r}")
        name = ident.group(1)
        if name not in variables:
            raise TemplateError(f"vars map does not contain key {name!r}")
        return variables[name]

    return _TEMPLATE_TOKEN.sub(substitute, text)


def load_definition(variables: Mapping[str, str]) -> dict[str, Any]:
    """The production definition, rendered and parsed."""
    rendered = render_template(ASL_TEMPLATE.read_text(encoding="utf-8"), variables)
    definition: dict[str, Any] = json.loads(rendered)
    return definition


def shorten(
    definition: Mapping[str, Any], *, heartbeat_s: int, task_timeout_s: int, execution_timeout_s: int
) -> dict[str, Any]:
    """A copy with short heartbeats, timeouts and 1 s retry delays; structure and error names unchanged."""
    short = copy.deepcopy(dict(definition))
    short["TimeoutSeconds"] = execution_timeout_s
    for state in short["States"].values():
        if "HeartbeatSeconds" in state:
            state["HeartbeatSeconds"] = heartbeat_s
        if "TimeoutSeconds" in state:
            state["TimeoutSeconds"] = min(state["TimeoutSeconds"], task_timeout_s)
        for retrier in state.get("Retry", []):
            retrier["IntervalSeconds"] = 1
            retrier["BackoffRate"] = 1
            retrier.pop("MaxDelaySeconds", None)
            retrier.pop("JitterStrategy", None)
    return short


def worst_case_seconds(state: Mapping[str, Any]) -> float:
    """Longest a Task state can take: every attempt runs into TimeoutSeconds, plus every retry delay."""
    timeout = float(state["TimeoutSeconds"])
    total = timeout
    for retrier in state.get("Retry", []):
        delay = float(retrier.get("IntervalSeconds", 1))
        cap = float(retrier.get("MaxDelaySeconds", float("inf")))
        for _ in range(int(retrier.get("MaxAttempts", 3))):
            total += min(delay, cap) + timeout
            delay *= float(retrier.get("BackoffRate", 2.0))
    return total


T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], *, timeout_s: float = 20.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something other than None."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


@dataclass(frozen=True)
class ContainerRun:
    """One ECS task the state machine started, as the container would see it."""

    task_arn: str
    command: list[str]
    environment: dict[str, str]

    @property
    def token(self) -> str:
        return self.environment["CCAPI_TASK_TOKEN"]


class Container:
    """Plays the worker container: finds the tasks the execution starts and calls back like the worker."""

    def __init__(self, ecs: Any, sfn: Any, cluster_arn: str) -> None:
        self._ecs = ecs
        self._sfn = sfn
        self._cluster = cluster_arn
        self.runs: list[ContainerRun] = []

    def _new_run(self) -> ContainerRun | None:
        arns = self._ecs.list_tasks(cluster=self._cluster)["taskArns"]
        seen = {run.task_arn for run in self.runs}
        new = [arn for arn in arns if arn not in seen]
        if not new:
            return None
        task = self._ecs.describe_tasks(cluster=self._cluster, tasks=new[:1])["tasks"][0]
        override = task["overrides"]["containerOverrides"][0]
        run = ContainerRun(
            task_arn=task["taskArn"],
            command=list(override["command"]),
            environment={e["name"]: e["value"] for e in override["environment"]},
        )
        self.runs.append(run)
        return run

    def next_run(self, timeout_s: float = 20.0) -> ContainerRun:
        """The next task the execution starts."""
        return wait_for(self._new_run, timeout_s=timeout_s, what="the state machine to start an ECS task")

    def wait_listening(self, run: ContainerRun) -> None:
        """Wait until the execution accepts heartbeats for this task.

        moto registers the heartbeat endpoint a moment after the ECS task is visible; a real
        worker heartbeats at once and would take the early rejection for an expired token.
        """

        def accepted() -> bool | None:
            try:
                self._sfn.send_task_heartbeat(taskToken=run.token)
            except self._sfn.exceptions.ClientError:
                return None
            return True

        wait_for(accepted, timeout_s=10, what="the execution to accept heartbeats")

    def succeed(self, run: ContainerRun, payload: Mapping[str, Any]) -> None:
        self.wait_listening(run)  # on a loaded machine moto may not accept the token yet
        self._sfn.send_task_success(taskToken=run.token, output=json.dumps(payload))

    def fail(self, run: ContainerRun, error: str, cause: str) -> None:
        self.wait_listening(run)
        self._sfn.send_task_failure(taskToken=run.token, error=error, cause=cause)

    def heartbeat(self, run: ContainerRun) -> None:
        self._sfn.send_task_heartbeat(taskToken=run.token)


#: The callback's ``top_regions`` (aws.stepfunctions.top_regions): what the notifications list.
TOP_REGIONS: list[dict[str, Any]] = [
    {
        "name": "bekasi_industrial_belt",
        "label": "BUY",
        "score": 82.4,
        "vegetation_clearing_ha": 120.3,
        "built_up_ha": 31.0,
    },
    {
        "name": "karawang_new_city",
        "label": "WATCH",
        "score": 47.0,
        "vegetation_clearing_ha": 96.4,
        "built_up_ha": 12.5,
    },
]


def callback_payload(status: str, failed_regions: tuple[str, ...] = (), total: int = 29) -> dict[str, Any]:
    """A worker result as docs/design/callback.md defines it."""
    run_id = "20261123T060000Z-abc123"
    base = f"s3://ccapi-reports/weekly/2026-11-23/{run_id}"
    return {
        "status": status,
        "exit_code": {"succeeded": 0, "partial": 2}.get(status, 1),
        "run_id": run_id,
        "run_date": "2026-11-23",
        "duration_s": 1834.5,
        "regions": {
            "total": total,
            "succeeded": total - len(failed_regions) - 1,
            "failed": len(failed_regions),
            "insufficient": 1,
        },
        "failed_regions": list(failed_regions),
        "hectares": {"vegetation_clearing": 412.7, "built_up": 88.1},
        "top_regions": TOP_REGIONS,
        "report": {
            "json": f"{base}/report.json",
            "html": f"{base}/report.html",
            "geojson": f"{base}/changes.geojson",
        },
    }
