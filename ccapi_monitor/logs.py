"""Structured logging: one JSON object a line on stderr, secrets scrubbed.

Every line carries ``run_id`` (and ``region`` inside region work, and the execution
ARN when known) through structlog's context variables. Secret values (GEE key
material, AWS secret keys, the task token) are registered once and replaced in
every rendered line, so no code path can leak them by accident.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_MIN_SECRET_LEN = 8  # shorter strings would scrub ordinary words
_SECRET_ENV = (
    "GEE_SERVICE_ACCOUNT_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "CCAPI_TASK_TOKEN",
    "CCAPI_MARKET_FEED_TOKEN",
)


def register_secret(value: str | None) -> None:
    """Never print ``value`` (nor, for JSON key material, its private key) in a log line."""
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _SECRETS_LOCK:
        _SECRETS.add(value)
        # A JSON key is also logged piecewise if anything prints its fields.
        for marker in ('"private_key": "', '"private_key_id": "'):
            start = value.find(marker)
            if start >= 0:
                end = value.find('"', start + len(marker))
                piece = value[start + len(marker) : end]
                if len(piece) >= _MIN_SECRET_LEN:
                    _SECRETS.add(piece)
                    _SECRETS.add(piece.replace("\\n", "\n"))


def register_env_secrets(environ: MutableMapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    for name in _SECRET_ENV:
        register_secret(env.get(name))


def scrub(text: str) -> str:
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _scrub_rendered(_: Any, __: str, event: Any) -> Any:
    return scrub(event) if isinstance(event, str) else event


def configure_logging(
    *, json_output: bool | None = None, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """JSON lines on stderr (console rendering on a TTY unless ``json_output``)."""
    out = stream or sys.stderr
    if json_output is None:
        json_output = not out.isatty()
    register_env_secrets()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if json_output
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, renderer, _scrub_rendered],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries that use the standard logging module go through the same renderer and scrubber.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
                _scrub_rendered,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ccapi_monitor").setLevel(level)
    # At DEBUG these log request bodies, and a Step Functions request body carries the task token.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "googleapiclient", "google.auth"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
