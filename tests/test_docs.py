"""The operator docs tell the truth.

- docs/configuration.md is exactly what ``tools.docsgen`` generates from the CLI and
  the Settings model (``make config-docs`` rewrites it).
- Every ``aws ...`` command in a shell block of docs/deployment.md and docs/runbook.md runs,
  as written, with the AWS CLI against a moto server on 127.0.0.1, with the doc's shell
  variables (``$STATE_MACHINE_ARN`` ...) bound to moto resources this test creates. A command
  moto cannot serve must sit in a block preceded by ``<!-- needs-real-account -->``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import boto3
import click
import pytest
from moto.server import ThreadedMotoServer
from pydantic import BaseModel, Field

from ccapi_monitor.settings import Source
from tools import docsgen

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DOC = ROOT / "docs" / "configuration.md"
AWS_DOCS = ("docs/deployment.md", "docs/runbook.md")
MARKER = "<!-- needs-real-account -->"
SHELL_FENCES = {"bash", "sh", "shell"}
AWS_CALL = re.compile(r"(?:^|[\s;&|(`])aws\s+[a-z0-9-]+\s")
REGION = "ap-southeast-3"
ACCOUNT = "123456789012"
RUN_DATE = "2026-11-23"
RUN_ID = "20261123T060012Z-1a2b3c"


# ------------------------------------------------------------------------ configuration.md


def test_configuration_reference_is_current() -> None:
    expected = docsgen.render()
    actual = CONFIG_DOC.read_text(encoding="utf-8") if CONFIG_DOC.exists() else ""
    assert actual == expected, "docs/configuration.md is stale: run `make config-docs` and commit it"


def test_configuration_reference_names_every_flag_and_variable() -> None:
    """Guards the generator itself: nothing the CLI accepts may be left out."""
    from ccapi_monitor.cli import main
    from ccapi_monitor.settings import sources

    text = docsgen.render()
    ctx = click.Context(main)
    commands: list[tuple[str, click.Command]] = []
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):  # a group is documented by its subcommands
            commands += [(f"{name} {sub}", command.commands[sub]) for sub in command.list_commands(ctx)]
        else:
            commands.append((name, command))
    for name, command in commands:
        assert f"`ccapi-monitor {name}`" in text
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and param.expose_value:
                assert f"`{param.opts[0]}`" in text, param.opts
            envvar = param.envvar if isinstance(param.envvar, str) else None
            if envvar:
                assert f"`{envvar}`" in text
    for source in sources().values():
        if source.env:
            assert f"`{source.env}`" in text


class _Nested(BaseModel):
    """Nested doc line.

    Second paragraph is not shown."""

    threshold: float = Field(0.5, ge=0, le=1, description="a | piped description")


class _Model(BaseModel):
    """A model."""

    when: Annotated[str | None, Source(env="X_WHEN", execution_input=True, show_default="today (UTC)")] = None
    count: Annotated[int, Source(env="X_COUNT")] = Field(4, ge=1, description="How many.")
    limit_s: float = Field(30.0, description="Seconds.")
    secret: Annotated[str | None, Source(env="X_SECRET", flag=False)] = None
    nested: _Nested = Field(default_factory=_Nested)


def test_generator_renders_types_defaults_sources_and_nested_models() -> None:
    @click.group()
    def cli() -> None:
        """Tool."""

    @cli.command()
    @click.option("--count", type=int)
    @click.option("--mode", type=click.Choice(["a", "b"]), default="a", envvar="X_MODE", help="Mode.")
    @click.option("--when")
    @click.option("--fast/--slow", default=False)
    @click.option("--token", hidden=True, envvar="X_TOKEN", help="never shown as a flag")
    def go(**_: object) -> None:
        """Go somewhere.

        Details not in the table."""

    text = docsgen.render(cli, _Model, prog="tool")
    assert "### `tool go`" in text
    assert "Go somewhere." in text
    assert "Details not in the table" not in text
    # A flag that sets a field takes its variable, default and description from the field.
    assert "| `--count` `INTEGER` | `X_COUNT` | `4` | How many. |" in text
    assert "| `--when` `TEXT` | `X_WHEN` | today (UTC) |" in text
    # Other options document themselves.
    assert "`--mode` `a\\|b` | `X_MODE` | `a` | Mode. |" in text
    assert "| `--fast` / `--slow` | — | off |" in text
    assert "--token" not in text  # hidden flag, but its variable is listed
    assert "| `X_TOKEN` | `tool go` | (environment only) | never shown as a flag |" in text
    assert "| `X_SECRET` | run, preflight | (environment only) | Settings `secret`. |" in text
    assert "| `X_COUNT` | run, preflight | `--count` | Settings `count`. How many. |" in text
    # The model section says what sets each field, nothing is guessed from names.
    assert "| `count` | integer | `4` | ≥ 1 | `--count` `X_COUNT` | How many. |" in text
    assert "| `limit_s` | number | `30.0` | — | — | Seconds. |" in text
    assert "| `when` | text (optional) | today (UTC) | — | `--when` `X_WHEN` execution input |" in text
    assert "| `secret` | text (optional) | — | — | `X_SECRET` |" in text
    assert "| `nested` | _Nested | see *_Nested* |" in text
    assert "### _Nested" in text
    assert "| `threshold` | number | `0.5` | ≥ 0, ≤ 1 | — | a \\| piped description |" in text
    assert text == docsgen.render(cli, _Model, prog="tool"), "not deterministic"


def test_write_and_module_entry_point(tmp_path: Path) -> None:
    target = docsgen.write(tmp_path / "configuration.md")
    result = subprocess.run(
        [sys.executable, "-m", "tools.docsgen"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout == target.read_text(encoding="utf-8")


# ------------------------------------------------------------------------ AWS CLI commands


@dataclass(frozen=True)
class ShellCommand:
    doc: str
    line: int
    text: str
    needs_real_account: bool

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def shell_commands(markdown: str, doc: str) -> list[ShellCommand]:
    """The commands of every shell block that call the AWS CLI, continuations joined.

    A block is exempt when the last non-blank line before its fence is the marker.
    """
    commands: list[ShellCommand] = []
    lines = markdown.splitlines()
    fence: str | None = None
    marked = False
    pending, start = "", 0
    previous = ""
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if fence is None:
            if stripped.startswith("```"):
                fence = stripped[3:].strip().split(" ")[0].lower()
                marked = previous == MARKER
            elif stripped:
                previous = stripped
            continue
        if stripped.startswith("```"):
            fence, previous = None, ""
            continue
        if fence not in SHELL_FENCES:
            continue
        if not pending:
            if not stripped or stripped.startswith("#"):
                continue
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = " ".join((pending + stripped).split())
        pending = ""
        if AWS_CALL.search(" " + text + " "):
            commands.append(ShellCommand(doc, start, text, marked))
    return commands


def _all_commands() -> list[ShellCommand]:
    found: list[ShellCommand] = []
    for doc in AWS_DOCS:
        path = ROOT / doc
        if path.exists():
            found += shell_commands(path.read_text(encoding="utf-8"), doc)
    return found


COMMANDS = _all_commands()
RUNNABLE = [c for c in COMMANDS if not c.needs_real_account]


def test_command_extraction_joins_continuations_and_honours_the_marker() -> None:
    sample = "\n".join(
        [
            "text mentioning aws s3 ls in prose is ignored",
            "```bash",
            "# a comment: aws s3 ls",
            "X=$(aws stepfunctions start-execution \\",
            '  --state-machine-arn "$ARN" \\',
            "  --query executionArn --output text)",
            "terraform apply",
            "```",
            "",
            MARKER,
            "",
            "```bash",
            "aws stepfunctions redrive-execution --execution-arn x",
            "```",
            "```json",
            '{"aws s3 ls": 1}',
            "```",
        ]
    )
    found = shell_commands(sample, "sample.md")
    assert [(c.line, c.needs_real_account) for c in found] == [(4, False), (13, True)]
    assert found[0].text == (
        'X=$(aws stepfunctions start-execution --state-machine-arn "$ARN" --query executionArn --output text)'
    )


def test_docs_contain_runnable_aws_commands() -> None:
    """Non-vacuous: the guides do show the CLI, and most of it is proven here."""
    for doc in AWS_DOCS:
        assert (ROOT / doc).exists(), doc
    assert len(RUNNABLE) >= 10, [str(c) for c in COMMANDS]
    marked = [str(c) for c in COMMANDS if c.needs_real_account]
    print("needs a real AWS account (not run):", *marked, sep="\n  ")
    assert len(RUNNABLE) > len(marked)


def _aws_cli() -> Path | None:
    for candidate in (ROOT / ".venv-tools" / "bin" / "aws", Path(sys.executable).parent / "aws"):
        if candidate.exists():
            return candidate
    found = shutil.which("aws")
    return Path(found) if found else None


@dataclass
class AwsWorld:
    """A moto server plus the shell variables the docs use, bound to resources in it."""

    endpoint: str
    variables: dict[str, str]
    workdir: Path
    aws: Path


def _seed(endpoint: str) -> dict[str, str]:
    """Create what a deployed stack and one finished run would leave behind."""

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    factory: Any = session.client  # one helper for many services: the stubs' overloads want literals

    def client(service: str) -> Any:
        return factory(service, endpoint_url=endpoint)

    reports_bucket, cache_bucket = "ccapi-reports-test", "ccapi-cache-test"
    s3 = client("s3")
    for bucket in (reports_bucket, cache_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    prefix = f"weekly/{RUN_DATE}/{RUN_ID}"
    latest = {
        "run_id": RUN_ID,
        "run_date": RUN_DATE,
        "status": "succeeded",
        "report": f"{prefix}/report.json",
    }
    objects = {
        "weekly/latest.json": latest,
        f"{prefix}/report.json": {"schema_version": "1.0", "run_id": RUN_ID, "status": "succeeded"},
        f"{prefix}/changes.geojson": {"type": "FeatureCollection", "features": []},
    }
    for key, body in objects.items():
        s3.put_object(Bucket=reports_bucket, Key=f"ccapi/{key}", Body=json.dumps(body).encode())
    s3.put_object(Bucket=reports_bucket, Key=f"ccapi/{prefix}/report.html", Body=b"<html></html>")
    s3.put_object(
        Bucket=cache_bucket,
        Key=f"ccapi/checkpoints/{RUN_DATE}/bekasi_industrial_belt-0123456789abcdef.json",
        Body=b"{}",
    )

    sns = client("sns")
    topics = {
        kind: sns.create_topic(Name=f"ccapi-monitor-test-{kind}")["TopicArn"]
        for kind in ("success", "failure")
    }
    sns.subscribe(TopicArn=topics["failure"], Protocol="email", Endpoint="ops@example.com")

    role = f"arn:aws:iam::{ACCOUNT}:role/ccapi-monitor-test-sfn"
    sfn = client("stepfunctions")
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(
        name="ccapi-monitor-test", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=machine, name=f"weekly-{RUN_DATE}", input=json.dumps({"run_date": RUN_DATE})
    )["executionArn"]

    logs = client("logs")
    log_group = "/ccapi-monitor/test/worker"
    logs.create_log_group(logGroupName=log_group)
    logs.create_log_stream(logGroupName=log_group, logStreamName="worker/worker/abc")
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    logs.put_log_events(
        logGroupName=log_group,
        logStreamName="worker/worker/abc",
        logEvents=[{"timestamp": now_ms, "message": json.dumps({"event": "run_failed", "level": "error"})}],
    )

    cloudwatch = client("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace="CloudClearingAPI",
        MetricData=[
            {
                "MetricName": "RegionsFailed",
                "Dimensions": [{"Name": "Environment", "Value": "test"}],
                "Value": 1,
            }
        ],
    )
    cluster = client("ecs").create_cluster(clusterName="ccapi-monitor-test")["cluster"]["clusterArn"]
    # moto 5.2 cannot run a Fargate task (its ENI lacks private_dns_name): describe-tasks then
    # answers with a MISSING failure, which still proves the command and its query parse.
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/ccapi-monitor-test/0123456789abcdef0123456789abcdef"
    # The deployment guide creates the secret itself; the runbook rotates an existing one.
    secret = client("secretsmanager").create_secret(Name="ccapi-monitor/test/existing-key", SecretString="{}")
    scheduler = client("scheduler")
    scheduler.create_schedule(
        Name="ccapi-monitor-test-weekly",
        ScheduleExpression="cron(0 6 ? * MON *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": machine, "RoleArn": role, "Input": "{}"},
    )
    client("sqs").create_queue(QueueName="ccapi-monitor-test-schedule-dlq")
    # The AWS CLI sends SQS calls to the host in the queue URL: make it moto's.
    dlq = f"{endpoint}/{ACCOUNT}/ccapi-monitor-test-schedule-dlq"
    return {
        "AWS_REGION": REGION,
        "SCHEDULE_DLQ_URL": dlq,
        "ENVIRONMENT": "test",
        "STATE_MACHINE_ARN": machine,
        "EXECUTION_ARN": execution,
        "RUN_DATE": RUN_DATE,
        "REPORT_KEY": f"{prefix}/report.json",
        "REPORTS_URI": f"s3://{reports_bucket}/ccapi",
        "CACHE_URI": f"s3://{cache_bucket}/ccapi",
        "SUCCESS_TOPIC_ARN": topics["success"],
        "FAILURE_TOPIC_ARN": topics["failure"],
        "LOG_GROUP": log_group,
        "CLUSTER_ARN": cluster,
        "TASK_ARN": task,
        "GEE_SECRET_ARN": secret["ARN"],
        "SCHEDULE_NAME": "ccapi-monitor-test-weekly",
    }


@pytest.fixture(scope="module")
def aws_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsWorld]:
    aws = _aws_cli()
    if aws is None:
        pytest.skip("AWS CLI not installed (`make tools`): doc commands NOT checked")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        workdir = tmp_path_factory.mktemp("docs-cli")
        # Files the guides create or read in the current directory.
        (workdir / "gee-key.json").write_text(json.dumps({"type": "service_account", "private_key": "x"}))
        yield AwsWorld(endpoint, _seed(endpoint), workdir, aws)
    finally:
        server.stop()


def _cli_env(world: AwsWorld) -> dict[str, str]:
    config = world.workdir / "aws-config"
    config.write_text(f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n")
    proxies = {"http_proxy", "https_proxy", "no_proxy"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in proxies}
    env.update(world.variables)
    env.update(
        {
            "PATH": f"{world.aws.parent}{os.pathsep}{env.get('PATH', '')}",
            "HOME": str(world.workdir),
            "AWS_ENDPOINT_URL": world.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(world.workdir / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            # Safety net: anything not sent to 127.0.0.1 goes to a closed local port instead.
            **dict.fromkeys(("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"), "http://127.0.0.1:9"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


@pytest.mark.e2e
@pytest.mark.parametrize("command", RUNNABLE, ids=[f"{c.doc}:{c.line}" for c in RUNNABLE])
def test_doc_command_runs_against_moto(command: ShellCommand, aws_world: AwsWorld) -> None:
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{command.text}"],
        env=_cli_env(aws_world),
        cwd=aws_world.workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"{command}\nexit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}\n"
        f"Fix the command, or if moto cannot serve it, put `{MARKER}` on the line before its block."
    )


# ------------------------------------------------------------------------ links between docs


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_links_between_docs_resolve() -> None:
    """A runbook whose links lead nowhere fails its reader on the worst morning."""
    checked = 0
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([\w./-]*\.md)?(?:#([\w-]+))?\)", text):
            if not target and not anchor:
                continue
            linked = (page.parent / target) if target else page
            assert linked.exists(), f"{page.name}: link to missing {target}"
            if anchor:
                headings = re.findall(r"^#{1,6} (.+)$", linked.read_text(encoding="utf-8"), re.MULTILINE)
                assert anchor in {_github_anchor(h) for h in headings}, (
                    f"{page.name}: no #{anchor} in {linked.name}"
                )
            checked += 1
    assert checked >= 10
