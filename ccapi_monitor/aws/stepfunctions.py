"""Step Functions callback: heartbeats while the run works, then one success or failure.

The state machine starts the task with ``ecs:runTask.waitForTaskToken`` and passes
``$$.Task.Token`` as ``CCAPI_TASK_TOKEN``. Without heartbeats a dead task is noticed only
at the task timeout; with them Step Functions gives up after ``HeartbeatSeconds``. When a
heartbeat is answered ``TaskTimedOut`` or ``InvalidToken`` the execution has already given
up on us (timed out, stopped), so :attr:`TaskCallback.aborted` is set and the run must stop
and publish nothing as complete (exit 143).

The token is a bearer credential for the execution: it is never logged, and any error
text that might echo it is redacted.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from botocore.exceptions import ClientError

from ccapi_monitor.aws.clients import make_client
from ccapi_monitor.errors import FAILURE_ERROR_NAMES, SUCCESS_CALLBACK_CODES, ExitCode
from ccapi_monitor.models import RunSummary
from ccapi_monitor.params import CLASSES
from ccapi_monitor.scoring import rank_order
from ccapi_monitor.settings import Settings, sources
from ccapi_monitor.tracing import get_tracer

log = structlog.get_logger(__name__)

#: SendTaskSuccess accepts 256 KiB of output; we stay far below so the ASL can add to it.
OUTPUT_LIMIT_BYTES = 256 * 1024
OUTPUT_BUDGET_BYTES = 64 * 1024
#: SendTaskFailure limits: cause 32768 characters, error 256.
CAUSE_LIMIT_CHARS = 32_768
ERROR_LIMIT_CHARS = 256
MAX_REGION_NAME_CHARS = 200
#: Regions the notifications list (Slack's "Top regions"), in the report's order.
TOP_REGIONS = 5
DEFAULT_HEARTBEAT_SECONDS: float = Settings.model_fields["heartbeat_seconds"].default
#: Heartbeat answers meaning the execution no longer waits for this task.
_GAVE_UP = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
_STATUS_BY_EXIT: dict[int, str] = {
    ExitCode.FAILED: "failed",
    ExitCode.INVALID_INPUT: "invalid_input",
    ExitCode.PREFLIGHT_FAILED: "preflight_failed",
    ExitCode.SIGINT: "aborted",
    ExitCode.SIGTERM: "aborted",
}


def _dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), default=str)


def _size(document: dict[str, Any]) -> int:
    """Bytes, as the SendTaskSuccess output limit counts them."""
    return len(_dumps(document).encode())


def _chars(document: dict[str, Any]) -> int:
    """Characters, as the SendTaskFailure cause limit counts them."""
    return len(_dumps(document))


def _fit(
    document: dict[str, Any], limit: int, measure: Callable[[dict[str, Any]], int] = _size
) -> dict[str, Any]:
    """Shrink ``failed_regions`` (then ``message``) until ``measure(document) <= limit``.

    A truncated list keeps its first names and says how many were left out, so the
    payload stays under the limit however many regions fail.
    """
    if measure(document) <= limit:
        return document
    names: list[str] = list(document.get("failed_regions") or [])
    if names:
        total = len(names) + int(document.get("failed_regions_omitted", 0))
        low, high = 0, len(names)
        while low < high:  # largest kept count that fits
            mid = (low + high + 1) // 2
            trial = {**document, "failed_regions": names[:mid], "failed_regions_omitted": total - mid}
            if measure(trial) <= limit:
                low = mid
            else:
                high = mid - 1
        document = {**document, "failed_regions": names[:low], "failed_regions_omitted": total - low}
    message = document.get("message")
    if isinstance(message, str) and measure(document) > limit:
        overflow = measure(document) - limit
        document = {**document, "message": message[: max(0, len(message) - overflow - 20)] + " [truncated]"}
    return document


def _failed_names(summary: RunSummary) -> list[str]:
    return [name[:MAX_REGION_NAME_CHARS] for name in summary.failed_names()]


def top_regions(summary: RunSummary, count: int = TOP_REGIONS) -> list[dict[str, Any]]:
    """The ``count`` best-scored regions in the report's order, for the notifications."""
    return [
        {
            "name": r.name[:MAX_REGION_NAME_CHARS],
            "label": r.score.label,
            "score": round(r.score.value, 1),
            **{
                f"{c}_ha": None if r.new_area_ha is None else round(r.new_area_ha.get(c, 0.0), 2)
                for c in CLASSES
            },
        }
        for r in rank_order(summary.regions)[:count]
        if r.score is not None and r.score.value is not None
    ]


def success_payload(summary: RunSummary) -> dict[str, Any]:
    """SendTaskSuccess output (docs/design/callback.md), under 64 KiB."""
    payload: dict[str, Any] = {
        "status": summary.status,
        "exit_code": summary.exit_code,
        "run_id": summary.run_id,
        "run_date": summary.run_date.isoformat(),
        "duration_s": round(summary.duration_s, 3),
        "environment": summary.environment,
        "regions": summary.counts(),
        "failed_regions": _failed_names(summary),
        "hectares": {
            c: None if (ha := summary.totals.hectares(c)) is None else round(ha, 2) for c in CLASSES
        },
        "report": {kind: summary.report_uris.get(kind) for kind in ("json", "html", "geojson")},
        "top_regions": top_regions(summary),
    }
    if summary.quality is not None:  # the ASL's quality_failed route reads quality.message
        payload["quality"] = summary.quality.callback_fields()
    return _fit(payload, OUTPUT_BUDGET_BYTES)


def failure_cause(exit_code: int, message: str, summary: RunSummary | None) -> dict[str, Any]:
    """SendTaskFailure cause as a JSON object; serialised it stays under 32768 characters."""
    cause: dict[str, Any] = {
        "exit_code": int(exit_code),
        "status": _STATUS_BY_EXIT.get(int(exit_code), "failed"),
        "message": message,
    }
    if summary is not None:
        cause.update(
            run_id=summary.run_id,
            run_date=summary.run_date.isoformat(),
            duration_s=round(summary.duration_s, 3),
            regions=summary.counts(),
            failed_regions=_failed_names(summary),
        )
    return _fit(cause, CAUSE_LIMIT_CHARS, _chars)


#: Waits on ``event`` for at most ``seconds``; True when the event was set. Tests pass a fake
#: that returns at once, so heartbeat timing is tested without sleeping.
Wait = Callable[[threading.Event, float], bool]


def _wait(event: threading.Event, seconds: float) -> bool:
    return event.wait(seconds)


class TaskCallback:
    """Heartbeats and the final callback for one Step Functions task token (no-op without one).

    A run reports its end through :meth:`report_exit` only (docs/design/callback.md).
    """

    def __init__(
        self,
        token: str | None,
        *,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
        client: Any = None,
        on_abort: Callable[[str], None] | None = None,
        wait: Wait = _wait,
    ) -> None:
        self._token = token or None
        self._wait = wait
        self.heartbeat_seconds = heartbeat_seconds
        self._client = client
        self._on_abort = on_abort
        self.aborted = threading.Event()
        self.abort_reason: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set on stop and on a new interval
        self._done = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TaskCallback:
        """From the task token alone, so that even invalid settings get their failure callback.

        The heartbeat interval comes from :class:`~ccapi_monitor.settings.Settings` once they
        are valid (:meth:`use_heartbeat_seconds`); until then the default applies.
        """
        variable = sources()["task_token"].env or ""
        return cls(environ.get(variable, "").strip() or None)

    def __repr__(self) -> str:  # never the token
        return f"TaskCallback(enabled={self.enabled}, heartbeat_seconds={self.heartbeat_seconds})"

    @property
    def enabled(self) -> bool:
        return self._token is not None

    # -- heartbeats --------------------------------------------------------------------

    def start(self) -> None:
        """First heartbeat now (so a bad token is known at once), then one every interval."""
        if not self.enabled or self._thread is not None:
            return
        self._heartbeat()
        if self.aborted.is_set():
            return
        self._thread = threading.Thread(target=self._beat_forever, name="sfn-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop heartbeating (before the callback, or when the run ends without one)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def use_heartbeat_seconds(self, seconds: float) -> None:
        """Heartbeat every ``seconds`` from now on (the settings' ``heartbeat_seconds``)."""
        self.heartbeat_seconds = seconds
        self._wake.set()

    def _beat_forever(self) -> None:
        while True:
            retuned = self._wait(self._wake, self.heartbeat_seconds)
            if self._stop.is_set():
                return
            if retuned:  # a new interval: wait it out from now
                self._wake.clear()
                continue
            self._heartbeat()
            if self.aborted.is_set():
                return

    def _heartbeat(self) -> None:
        try:
            with get_tracer().call("StepFunctions", operation="SendTaskHeartbeat"):
                self._sfn().send_task_heartbeat(taskToken=self._token)
            log.debug("heartbeat_sent")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _GAVE_UP:
                self._abort(f"Step Functions answered {code} to a heartbeat: the execution no longer waits")
            else:
                log.warning("heartbeat_failed", error=self._redact(exc))
        except Exception as exc:  # network trouble: the next heartbeat may get through
            log.warning("heartbeat_failed", error=self._redact(exc))

    def _abort(self, reason: str) -> None:
        if self.aborted.is_set():
            return
        self.abort_reason = reason
        self.aborted.set()
        self._stop.set()
        log.error("task_token_invalid", reason=reason)
        if self._on_abort is not None:
            try:
                self._on_abort(reason)
            except Exception:  # the event is set; a failing hook must not kill the heartbeat thread
                log.exception("abort_hook_failed")

    # -- final callback ----------------------------------------------------------------

    def succeed(self, payload: dict[str, Any]) -> None:
        """SendTaskSuccess with ``payload`` as output (shrunk if it would pass the limit)."""
        output = _fit(payload, OUTPUT_LIMIT_BYTES - 1024)
        self._finish("SendTaskSuccess", output=_dumps(output))

    def fail(self, error: str, cause: dict[str, Any] | str) -> None:
        """SendTaskFailure with an error name and a JSON (or text) cause within the API limits."""
        text = _dumps(_fit(cause, CAUSE_LIMIT_CHARS, _chars)) if isinstance(cause, dict) else cause
        self._finish("SendTaskFailure", error=error[:ERROR_LIMIT_CHARS], cause=text[:CAUSE_LIMIT_CHARS])

    def report_exit(
        self,
        exit_code: int,
        summary: RunSummary | None = None,
        message: str = "",
        *,
        output: dict[str, Any] | None = None,
    ) -> None:
        """The one final callback for an exit code: success for 0/2/5, failure otherwise.

        Success carries ``output``, else the payload built from ``summary``; a success with
        neither (a dry run, a declined prompt) sends nothing, as no task waits on it.
        """
        if exit_code in SUCCESS_CALLBACK_CODES:
            payload = output if output is not None else success_payload(summary) if summary else None
            if payload is not None:
                self.succeed(payload)
            return
        code = ExitCode(exit_code) if exit_code in ExitCode._value2member_map_ else ExitCode.FAILED
        error = FAILURE_ERROR_NAMES.get(code, FAILURE_ERROR_NAMES[ExitCode.FAILED])
        self.fail(error, failure_cause(exit_code, message, summary))

    def _finish(self, operation: str, **fields: str) -> None:
        """Send the one final callback; a token that is no longer valid makes it a no-op."""
        self.stop()
        with self._lock:
            if not self.enabled or self._done:
                return
            self._done = True
        if self.aborted.is_set():
            log.info("callback_skipped", operation=operation, reason="task token no longer valid")
            return
        method = "send_task_success" if operation == "SendTaskSuccess" else "send_task_failure"
        try:
            with get_tracer().call("StepFunctions", operation=operation):
                getattr(self._sfn(), method)(taskToken=self._token, **fields)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _GAVE_UP:
                log.info("callback_skipped", operation=operation, reason=f"{code}: token no longer valid")
            else:
                log.error("callback_failed", operation=operation, error=self._redact(exc))
            return
        except Exception as exc:  # network trouble: the exit code still tells ECS what happened
            log.error("callback_failed", operation=operation, error=self._redact(exc))
            return
        log.info("callback_sent", operation=operation, error=fields.get("error"))

    # -- helpers -----------------------------------------------------------------------

    def _sfn(self) -> Any:
        if self._client is None:
            # Short timeouts: after SIGTERM the final callback has to fit in ECS's stop timeout.
            self._client = make_client("stepfunctions", read_timeout=10.0, connect_timeout=5.0)
        return self._client

    def _redact(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(self._token, "***") if self._token else text
