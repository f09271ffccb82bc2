"""Slack notifier: an SNS-subscribed Lambda that posts run results and alarms as Block Kit.

The state machine publishes one JSON document per outcome (``succeeded``, ``partial``,
``failed``, ``skipped``) to the success or failure topic; CloudWatch alarms publish theirs to
the failure topic. This module renders either as a Slack message and posts it to an incoming
webhook whose URL it reads from Secrets Manager (``SLACK_WEBHOOK_SECRET_ARN``) on first use.
The URL is never logged. Why a Lambda and not Chatbot or an HTTP task: docs/decisions.md.

Standard library plus boto3 only (both are in the Lambda Python runtime): the deployment
package is this one file, built by ``python -m ccapi_monitor.slack_notifier build PATH``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Header emoji by outcome; the same ones the e-mail subjects use.
STATUS_EMOJI = {"succeeded": "✅", "partial": "⚠️", "failed": "❌", "skipped": "⏭️", "ALARM": "🚨", "OK": "✅"}

#: What to do about a failure, by error name; docs/runbook.md has a row for each (a test checks).
ACTIONS = {
    "CCAPI.PreflightFailed": "Fix the check named in the cause (credentials, bucket, endpoint, regions file), "
    "then start a manual run for the same run_date.",
    "CCAPI.InvalidInput": "Correct the execution input or configuration named in the cause; nothing was written. "
    "Start a manual run with corrected input.",
    "CCAPI.Failed": "No region succeeded or the run crashed: read the cause and the worker logs, fix, and re-run the "
    "week (the worker resumes from its checkpoints).",
    "CCAPI.PartialFailure": "Some regions failed; the others were published. Read each failed region's error in "
    "the report and the logs, then re-run the week to retry them (finished regions come from checkpoints).",
    "CCAPI.Aborted": "The task was stopped (SIGTERM, StopTask or a deploy). Re-run the week if nobody meant to stop it.",
    "CCAPI.UnexpectedStatus": "The worker answered with a status the state machine does not know: the image and the "
    "state machine disagree. Deploy matching versions, then re-run.",
    "States.HeartbeatTimeout": "The task stopped without calling back (image pull, ENI, secret or out of memory): "
    "read the ECS stopped reason, fix it, then re-run.",
    "States.Timeout": "A task ran past its timeout without calling back: read the ECS stopped reason and the logs, "
    "then re-run.",
    "ECS.AmazonECSException": "ECS refused to start the task after three attempts (capacity or throttling): "
    "re-run later or in another subnet / Availability Zone.",
}
DEFAULT_ACTION = "Read the cause and the logs (links below), fix the problem, then re-run the week."

_HEADER_MAX = 150  # Block Kit limits: header text 150, section text 3000, button text 75
_TEXT_MAX = 2900


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(seconds: Any) -> str:
    try:
        total = round(float(seconds))
    except (TypeError, ValueError):
        return "n/a"
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _hectares(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):,.1f} ha"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, _TEXT_MAX)}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, _HEADER_MAX), "emoji": True}}


def _buttons(links: Mapping[str, Any]) -> list[dict[str, Any]]:
    labels = (("report", "Report"), ("logs", "Logs"), ("execution", "Execution"), ("dashboard", "Dashboard"))
    elements = [
        {"type": "button", "text": {"type": "plain_text", "text": label}, "url": str(links[key])}
        for key, label in labels
        if links.get(key)
    ]
    return [{"type": "actions", "elements": elements}] if elements else []


def _top_regions(regions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not regions:
        return []
    lines = [
        f"{i}. *{r['name']}*: {r.get('label') or 'score'} {float(r.get('score') or 0):.0f}, "
        f"{_hectares(r.get('vegetation_clearing_ha'))} cleared, {_hectares(r.get('built_up_ha'))} built"
        for i, r in enumerate(regions[:5], start=1)
    ]
    return [{"type": "section", "text": _mrkdwn("*Top regions*\n" + "\n".join(lines))}]


def render_run(message: Mapping[str, Any], *, dashboard_url: str | None = None) -> dict[str, Any]:
    """Block Kit for one state machine notification (the JSON the ASL publishes)."""
    status = str(message.get("status", "failed"))
    env = message.get("environment", "?")
    run_date = message.get("run_date") or "?"
    links = {**dict(message.get("links") or {}), **({"dashboard": dashboard_url} if dashboard_url else {})}
    emoji = STATUS_EMOJI.get(status, "❓")
    blocks: list[dict[str, Any]]

    if status == "skipped":
        skip = message.get("skip") or {}
        title = f"{emoji} ccapi-monitor {env}: weekly run {run_date} skipped"
        blocks = [
            _header(title),
            {"type": "section", "text": _mrkdwn(f"*Reason*: {skip.get('reason', 'on the skip calendar')}")},
            {
                "type": "context",
                "elements": [_mrkdwn('Start an execution with `"force": true` to run anyway.')],
            },
        ]
    elif status in ("succeeded", "partial"):
        regions = message.get("regions") or {}
        hectares = message.get("hectares") or {}
        verb = "succeeded" if status == "succeeded" else "partially failed"
        title = f"{emoji} ccapi-monitor {env}: weekly run {run_date} {verb}"
        fields = [
            _mrkdwn(
                f"*Regions*\n{regions.get('succeeded', '?')} of {regions.get('total', '?')} ok, "
                f"{regions.get('failed', 0)} failed, {regions.get('insufficient', 0)} insufficient"
            ),
            _mrkdwn(f"*Duration*\n{_duration(message.get('duration_s'))}"),
            _mrkdwn(f"*Vegetation cleared*\n{_hectares(hectares.get('vegetation_clearing'))}"),
            _mrkdwn(f"*Built up*\n{_hectares(hectares.get('built_up'))}"),
        ]
        blocks = [_header(title), {"type": "section", "fields": fields}]
        blocks += _top_regions(message.get("top_regions") or [])
        if status == "partial":
            failed = ", ".join(f"`{name}`" for name in message.get("failed_regions") or [])
            blocks.append({"type": "section", "text": _mrkdwn(f"*Failed regions*: {failed}")})
            blocks.append(
                {"type": "section", "text": _mrkdwn(f"*Action required*: {ACTIONS['CCAPI.PartialFailure']}")}
            )
    else:
        error = message.get("error") or {}
        name = str(error.get("Error", "unknown")) if isinstance(error, Mapping) else str(error)
        cause = str(error.get("Cause") or "") if isinstance(error, Mapping) else str(message.get("cause", ""))
        title = f"{emoji} ccapi-monitor {env}: weekly run FAILED ({name})"
        blocks = [
            _header(title),
            {
                "type": "section",
                "text": _mrkdwn(f"*Error*: `{name}`\n```{_clip(cause, 1500) or 'no cause given'}```"),
            },
            {"type": "section", "text": _mrkdwn(f"*Action required*: {ACTIONS.get(name, DEFAULT_ACTION)}")},
        ]

    blocks += _buttons(links)
    execution = message.get("execution", "?")
    blocks.append(
        {"type": "context", "elements": [_mrkdwn(f"Environment `{env}` · execution `{execution}`")]}
    )
    return {"text": title, "blocks": blocks}


def render_alarm(alarm: Mapping[str, Any], *, dashboard_url: str | None = None) -> dict[str, Any]:
    """Block Kit for a CloudWatch alarm state change delivered through SNS."""
    state = str(alarm.get("NewStateValue", "?"))
    emoji = STATUS_EMOJI.get(state, "⚠️")
    title = f"{emoji} {alarm.get('AlarmName', 'alarm')} is {state}"
    blocks: list[dict[str, Any]] = [_header(title)]
    if alarm.get("AlarmDescription"):
        blocks.append({"type": "section", "text": _mrkdwn(str(alarm["AlarmDescription"]))})
    if alarm.get("NewStateReason"):
        blocks.append({"type": "context", "elements": [_mrkdwn(str(alarm["NewStateReason"]))]})
    blocks += _buttons({"dashboard": dashboard_url})
    return {"text": title, "blocks": blocks}


def render(message_text: str, *, dashboard_url: str | None = None) -> dict[str, Any]:
    """Block Kit for an SNS message body: an alarm or a run notification (anything else as text)."""
    try:
        message = json.loads(message_text)
    except json.JSONDecodeError:
        return {"text": _clip(message_text, _TEXT_MAX)}
    if isinstance(message, dict) and "AlarmName" in message:
        return render_alarm(message, dashboard_url=dashboard_url)
    if isinstance(message, dict):
        return render_run(message, dashboard_url=dashboard_url)
    return {"text": _clip(message_text, _TEXT_MAX)}


# --- delivery --------------------------------------------------------------------------------

_webhook_cache: dict[str, str] = {}


def forget_webhook() -> None:
    """Drop the cached URL (after rotating the secret in a warm container, and between tests)."""
    _webhook_cache.clear()


def webhook_url(secret_arn: str, client: Any = None) -> str:
    """The webhook URL from Secrets Manager (cached for the container's life); must be http(s)."""
    if secret_arn not in _webhook_cache:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        value = str(client.get_secret_value(SecretId=secret_arn)["SecretString"]).strip()
        scheme = urllib.parse.urlsplit(value).scheme
        if scheme not in ("https", "http"):
            # Never echo the value: it is the secret.
            raise ValueError(f"secret {secret_arn} does not hold an http(s) webhook URL")
        _webhook_cache[secret_arn] = value
    return _webhook_cache[secret_arn]


def post(url: str, body: Mapping[str, Any], *, timeout_s: float = 10.0) -> None:
    """POST the message; raise on anything but 2xx so Lambda retries and then dead-letters it."""
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ValueError("the Slack webhook must be an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (scheme checked above)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"Slack answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise RuntimeError(f"Slack webhook unreachable: {exc.reason}") from None
    if not 200 <= status < 300:
        raise RuntimeError(f"Slack answered HTTP {status}")


def handler(event: Mapping[str, Any], context: Any = None, *, secrets_client: Any = None) -> dict[str, int]:
    """Lambda entry point for SNS events: one Slack message per record."""
    url = webhook_url(os.environ["SLACK_WEBHOOK_SECRET_ARN"], secrets_client)
    dashboard = os.environ.get("CCAPI_DASHBOARD_URL") or None
    records = event.get("Records") or []
    for record in records:
        post(url, render(record["Sns"]["Message"], dashboard_url=dashboard))
    return {"posted": len(records)}


def build_package(path: Path) -> Path:
    """Write the Lambda package: this file as ``slack_notifier.py``, fixed timestamp, so the hash is stable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = zipfile.ZipInfo("slack_notifier.py", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, Path(__file__).read_bytes())
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "build":
        print("usage: python -m ccapi_monitor.slack_notifier build PATH.zip", file=sys.stderr)
        return 3
    print(build_package(Path(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
