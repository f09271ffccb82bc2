"""The one place that builds boto3 clients, so every AWS call shares retries, timeouts and region.

boto3 itself honours ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), which is how
tests point the worker at a local moto server; nothing here special-cases tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

#: Jakarta: the monitored regions are in Java. Used only when the boto3 chain names no region.
DEFAULT_REGION = "ap-southeast-3"
DEFAULT_RETRY_MODE = "standard"
#: Tries per request, the first included (``AWS_MAX_ATTEMPTS`` semantics).
DEFAULT_MAX_ATTEMPTS = 5
_RETRY_MODES = ("standard", "adaptive", "legacy")

# boto3 sessions are not thread-safe; region threads may build clients concurrently.
_session_lock = threading.Lock()


def retry_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """botocore retry settings: ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS`` win over our defaults.

    Standard mode retries throttling, 5xx and ``SlowDown`` with jittered backoff; adaptive
    adds client-side rate limiting for long runs against a throttled API.
    """
    mode = environ.get("AWS_RETRY_MODE", DEFAULT_RETRY_MODE)
    if mode not in _RETRY_MODES:
        mode = DEFAULT_RETRY_MODE
    try:
        attempts = max(1, int(environ.get("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)))
    except ValueError:
        attempts = DEFAULT_MAX_ATTEMPTS
    # botocore's "max_attempts" counts retries; "total_max_attempts" counts tries, like the env var.
    return {"mode": mode, "total_max_attempts": attempts}


def client_config(*, read_timeout: float = 60.0, connect_timeout: float = 10.0) -> Config:
    """Retries plus bounded timeouts, so a hung connection fails the call instead of hanging the run."""
    return Config(
        retries=retry_config(),  # type: ignore[arg-type]
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra="ccapi-monitor",
    )


def make_client(
    service: str, *, region: str | None = None, read_timeout: float = 60.0, connect_timeout: float = 10.0
) -> Any:
    """A new boto3 client for ``service`` with the project's retry and timeout settings."""
    with _session_lock:
        session = boto3.session.Session()
        return session.client(
            service,  # type: ignore[call-overload]
            region_name=region or session.region_name or DEFAULT_REGION,
            config=client_config(read_timeout=read_timeout, connect_timeout=connect_timeout),
        )


def has_credentials() -> bool:
    """Whether the boto3 chain finds credentials (used to choose CloudWatch or a log line)."""
    with _session_lock:
        session = boto3.session.Session()
    try:
        return session.get_credentials() is not None
    except Exception:  # a broken profile file means "no usable credentials", not a crash
        return False
