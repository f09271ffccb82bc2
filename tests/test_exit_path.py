"""Every outcome of ``run`` and ``preflight`` leaves through one path: one stderr line, one callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ccapi_monitor.aws.stepfunctions import TaskCallback
from ccapi_monitor.errors import ExitCode, InvalidInputError
from ccapi_monitor.job import preflight_job, run_job
from ccapi_monitor.settings import Settings


class RecordingCallback(TaskCallback):
    """A callback without a token that records the final calls the job makes through it."""

    def __init__(self) -> None:
        super().__init__(None)
        self.calls: list[tuple[str, Any]] = []

    def succeed(self, payload: dict[str, Any]) -> None:
        self.calls.append(("success", payload))

    def fail(self, error: str, cause: dict[str, Any] | str) -> None:
        self.calls.append((error, cause))


def _failing(error: Exception) -> Callable[[], Settings]:
    def factory() -> Settings:
        raise error

    return factory


@pytest.mark.parametrize(
    ("error", "code", "message", "error_name"),
    [
        (
            InvalidInputError("--regions-count must be at least 1"),
            ExitCode.INVALID_INPUT,
            "--regions-count must be at least 1",
            "CCAPI.InvalidInput",
        ),
        (RuntimeError("library bug"), ExitCode.FAILED, "RuntimeError: library bug", "CCAPI.Failed"),
    ],
)
@pytest.mark.parametrize("job", [run_job, preflight_job])
def test_every_failure_is_one_line_and_one_callback(
    job: Callable[..., ExitCode],
    error: Exception,
    code: ExitCode,
    message: str,
    error_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    callback = RecordingCallback()
    assert job(_failing(error), callback=callback) == code
    [(name, cause)] = callback.calls
    assert name == error_name
    assert isinstance(cause, dict)
    assert (cause["exit_code"], cause["message"]) == (int(code), message)
    assert capsys.readouterr().err.splitlines() == [f"ccapi-monitor: error: {message}"]


def test_a_dry_run_reports_success_without_a_payload(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(imagery="demo", dry_run=True, regions_count=1, output=str(tmp_path / "r"))
    callback = RecordingCallback()
    assert run_job(lambda: settings, callback=callback) == ExitCode.OK
    assert callback.calls == []  # no task waits on a dry run
    assert "ccapi-monitor plan" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()
