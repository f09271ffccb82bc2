"""Slack notifier: Block Kit bodies (golden files), delivery to a local webhook, the secret, the package.

Set ``UPDATE_GOLDEN=1`` to rewrite the golden files after an intended change; review the diff.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ccapi_monitor import slack_notifier
from tests.slack_receiver import slack_receiver
from tests.terraform.asl_support import TOP_REGIONS

GOLDEN = Path(__file__).parent / "golden" / "slack"
SECRET_ARN_ENV = "SLACK_WEBHOOK_SECRET_ARN"
DASHBOARD = "https://ap-southeast-3.console.aws.amazon.com/cloudwatch/home?region=ap-southeast-3#dashboards/dashboard/ccapi-monitor-prod"

LINKS = {
    "report": "https://s3.console.aws.amazon.com/s3/object/ccapi-reports?region=ap-southeast-3&prefix=weekly-java/weekly/2026-11-23/20261123T060000Z-abc123/report.html",
    "logs": "https://ap-southeast-3.console.aws.amazon.com/cloudwatch/home?region=ap-southeast-3#logsV2:log-groups/log-group/ccapi-monitor-prod-worker",
    "execution": "https://ap-southeast-3.console.aws.amazon.com/states/home?region=ap-southeast-3#/v2/executions/details/arn:aws:states:ap-southeast-3:123456789012:execution:ccapi-monitor-prod:weekly-2026-11-23",
}
RUN = {
    "environment": "prod",
    "execution": "weekly-2026-11-23",
    "run_id": "20261123T060000Z-abc123",
    "run_date": "2026-11-23",
    "duration_s": 1834.5,
    "regions": {"total": 29, "succeeded": 27, "failed": 1, "insufficient": 1},
    "hectares": {"vegetation_clearing": 412.7, "built_up": 88.1},
    "links": LINKS,
}
MESSAGES: dict[str, dict[str, Any]] = {
    "succeeded": {
        **RUN,
        "status": "succeeded",
        "regions": {"total": 29, "succeeded": 28, "failed": 0, "insufficient": 1},
        "failed_regions": [],
        "top_regions": TOP_REGIONS,
    },
    "partial": {**RUN, "status": "partial", "failed_regions": ["bogor_puncak_corridor"]},
    "failed": {
        "status": "failed",
        "environment": "prod",
        "execution": "weekly-2026-11-23",
        "error": {
            "Error": "CCAPI.PreflightFailed",
            "Cause": "reports store s3://ccapi-reports is not writable",
        },
        "links": {k: v for k, v in LINKS.items() if k != "report"},
    },
    "skipped": {
        "status": "skipped",
        "environment": "prod",
        "execution": "weekly-2026-08-17",
        "run_date": "2026-08-17",
        "skip": {"reason": "public holiday in ID: Independence Day", "source": "public_holiday"},
        "links": {k: v for k, v in LINKS.items() if k != "report"},
    },
}
ALARM = {
    "AlarmName": "ccapi-monitor-prod-no-completed-run",
    "AlarmDescription": "No weekly run completed (succeeded, partial or skipped) for 7 days.",
    "NewStateValue": "INSUFFICIENT_DATA",
    "NewStateReason": "Insufficient Data: 7 datapoints were unknown.",
}


def _golden(name: str, body: dict[str, Any]) -> dict[str, Any]:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return expected


@pytest.mark.parametrize("status", sorted(MESSAGES))
def test_run_messages_match_golden_block_kit(status: str) -> None:
    body = slack_notifier.render(json.dumps(MESSAGES[status]), dashboard_url=DASHBOARD)
    assert body == _golden(status, body)


def test_alarm_message_matches_golden() -> None:
    body = slack_notifier.render(json.dumps(ALARM), dashboard_url=DASHBOARD)
    assert body == _golden("alarm", body)


def _texts(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


def test_bodies_carry_what_people_need() -> None:
    success = slack_notifier.render_run(MESSAGES["succeeded"], dashboard_url=DASHBOARD)
    assert success["text"].startswith("✅ ccapi-monitor prod: weekly run 2026-11-23 succeeded")
    assert "1. *bekasi_industrial_belt*: BUY 82, 120.3 ha cleared, 31.0 ha built" in _texts(success)
    assert "412.7 ha" in _texts(success)
    buttons = [e["url"] for b in success["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [LINKS["report"], LINKS["logs"], LINKS["execution"], DASHBOARD]

    partial = _texts(slack_notifier.render_run(MESSAGES["partial"]))
    assert "`bogor_puncak_corridor`" in partial
    assert "Action required" in partial

    failed = _texts(slack_notifier.render_run(MESSAGES["failed"]))
    assert "CCAPI.PreflightFailed" in failed
    assert slack_notifier.ACTIONS["CCAPI.PreflightFailed"] in failed

    skipped = _texts(slack_notifier.render_run(MESSAGES["skipped"]))
    assert "Independence Day" in skipped
    assert '\\"force\\": true' in skipped


def test_block_kit_limits_hold_for_long_causes() -> None:
    long = {**MESSAGES["failed"], "error": {"Error": "CCAPI.Failed", "Cause": "x" * 10_000}}
    body = slack_notifier.render_run(long)
    header = body["blocks"][0]["text"]["text"]
    assert len(header) <= 150
    for block in body["blocks"]:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= 3000


def _sns_event(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(m)}} for m in messages]}


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Secrets Manager secret in moto; the handler reads the webhook URL from it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    slack_notifier.forget_webhook()
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="ap-southeast-3")
        yield client
    slack_notifier.forget_webhook()


def test_handler_posts_each_record_to_the_webhook_from_the_secret(
    secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with slack_receiver() as receiver:
        arn = secret.create_secret(Name="ccapi/slack-webhook", SecretString=receiver.url + "\n")["ARN"]
        monkeypatch.setenv(SECRET_ARN_ENV, arn)
        monkeypatch.setenv("CCAPI_DASHBOARD_URL", DASHBOARD)
        result = slack_notifier.handler(_sns_event(MESSAGES["succeeded"], ALARM))
    assert result == {"posted": 2}
    assert receiver.bodies == [
        slack_notifier.render(json.dumps(MESSAGES["succeeded"]), dashboard_url=DASHBOARD),
        slack_notifier.render(json.dumps(ALARM), dashboard_url=DASHBOARD),
    ]
    assert all(ct.startswith("application/json") for ct in receiver.content_types)


def test_slack_error_raises_without_the_webhook_url(secret: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with slack_receiver() as receiver:
        receiver.status = 400
        arn = secret.create_secret(Name="ccapi/slack-webhook", SecretString=receiver.url)["ARN"]
        monkeypatch.setenv(SECRET_ARN_ENV, arn)
        with pytest.raises(RuntimeError, match="Slack answered HTTP 400") as raised:
            slack_notifier.handler(_sns_event(MESSAGES["failed"]))
    assert receiver.url not in str(raised.value)


def test_a_secret_that_is_not_a_url_is_refused_without_echoing_it(
    secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = secret.create_secret(Name="ccapi/slack-webhook", SecretString="xoxb-not-a-webhook")["ARN"]
    monkeypatch.setenv(SECRET_ARN_ENV, arn)
    with pytest.raises(ValueError, match="does not hold an http") as raised:
        slack_notifier.handler(_sns_event(MESSAGES["failed"]))
    assert "xoxb" not in str(raised.value)


def test_package_is_one_stdlib_module_with_a_stable_hash(tmp_path: Path) -> None:
    first = slack_notifier.build_package(tmp_path / "a" / "slack_notifier.zip")
    second = slack_notifier.build_package(tmp_path / "b" / "slack_notifier.zip")
    assert first.read_bytes() == second.read_bytes(), "the zip must not change between builds"
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["slack_notifier.py"]
        archive.extractall(tmp_path / "unpacked")
    # Importable on its own, as Lambda imports the handler: no ccapi_monitor package needed.
    spec = importlib.util.spec_from_file_location(
        "slack_notifier", tmp_path / "unpacked" / "slack_notifier.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.handler)
    imported = {
        line.split()[1].split(".")[0]
        for line in (tmp_path / "unpacked" / "slack_notifier.py").read_text().splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported <= {
        "__future__",
        "json",
        "os",
        "sys",
        "urllib",
        "zipfile",
        "collections",
        "pathlib",
        "typing",
    }


def test_build_command_usage_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert slack_notifier.main(["build", str(tmp_path / "p.zip")]) == 0
    assert (tmp_path / "p.zip").is_file()
    assert slack_notifier.main([]) == 3
    assert "usage:" in capsys.readouterr().err
