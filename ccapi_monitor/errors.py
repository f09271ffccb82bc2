"""Errors and the exit codes they map to (docs/design/exit-codes.md).

Every error the job raises on purpose derives from :class:`CCAPIError`, so the CLI
can turn it into one line on stderr and the documented exit code without a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    PARTIAL = 2
    INVALID_INPUT = 3
    PREFLIGHT_FAILED = 4
    #: A critical data-quality finding: reports written for review, latest.json not moved.
    QUALITY_FAILED = 5
    SIGINT = 130
    SIGTERM = 143


#: Exit codes answered with SendTaskSuccess; the state machine branches on the payload's status.
SUCCESS_CALLBACK_CODES = frozenset({ExitCode.OK, ExitCode.PARTIAL, ExitCode.QUALITY_FAILED})

#: Step Functions error names sent with SendTaskFailure, by exit code.
FAILURE_ERROR_NAMES: dict[ExitCode, str] = {
    ExitCode.FAILED: "CCAPI.Failed",
    ExitCode.INVALID_INPUT: "CCAPI.InvalidInput",
    ExitCode.PREFLIGHT_FAILED: "CCAPI.PreflightFailed",
    ExitCode.SIGINT: "CCAPI.Aborted",
    ExitCode.SIGTERM: "CCAPI.Aborted",
}


class CCAPIError(Exception):
    """Base class; ``exit_code`` says how the process ends when this escapes."""

    exit_code: ExitCode = ExitCode.FAILED


class InvalidInputError(CCAPIError):
    """Flags, environment, execution input or a regions file are not acceptable."""

    exit_code = ExitCode.INVALID_INPUT


class RegionsFileError(InvalidInputError):
    """A regions file failed validation; the message names the feature."""


class PreflightError(CCAPIError):
    """Credentials, buckets or endpoints are not usable."""

    exit_code = ExitCode.PREFLIGHT_FAILED


class CredentialsError(PreflightError):
    """Imagery or cloud credentials are missing or invalid."""


class AbortedError(CCAPIError):
    """The run was interrupted: a signal, or Step Functions gave up on the task."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.SIGTERM) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RegionError(CCAPIError):
    """One region could not be processed; the region is ``failed``, the run goes on."""


class DetectionError(RegionError):
    """The imagery backend could not produce a result for a region."""


class RegionTimeoutError(RegionError):
    """A region exceeded its deadline."""


class InfrastructureError(CCAPIError):
    """The OSM source failed; infrastructure is enrichment, so the region keeps its status."""


class StoreError(CCAPIError):
    """Reading or writing a report or cache object failed."""
