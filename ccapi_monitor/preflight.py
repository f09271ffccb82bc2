"""Preflight: everything a run needs from the outside world, checked before any region starts.

Each check that fails gives one line a person can act on; the CLI turns a non-empty list
into exit 4 (and ``CCAPI.PreflightFailed`` when a task token is set). The checks never
raise: a check that crashes is itself reported as a failed check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import structlog

from ccapi_monitor.aws.clients import has_credentials
from ccapi_monitor.detection.base import ImageryBackend
from ccapi_monitor.errors import RegionsFileError
from ccapi_monitor.infrastructure.base import InfrastructureSource
from ccapi_monitor.regions import load_regions
from ccapi_monitor.settings import Settings
from ccapi_monitor.storage import Store
from ccapi_monitor.store_factory import open_store

log = structlog.get_logger(__name__)

PROBE_PREFIX = ".ccapi-preflight"


def probe_store(store: Store) -> None:
    """Write, read back and delete a small object: proves the store is writable, not just listable."""
    key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}.probe"
    body = b"ccapi-monitor preflight probe\n"
    store.write_bytes(key, body, "text/plain")
    try:
        if store.read_bytes(key) != body:
            raise RuntimeError("probe object read back differs from what was written")
    finally:
        store.delete(key)


def _check(name: str, check: Callable[[], list[str] | None]) -> list[str]:
    """Run one check; an unexpected exception becomes its failure line."""
    try:
        return list(check() or [])
    except Exception as exc:
        return [f"{name}: {exc}"]


def _store_writable(label: str, uri: str, settings: Settings) -> list[str]:
    try:
        probe_store(open_store(uri, kms_key_id=settings.kms_key_id))
    except Exception as exc:
        return [f"{label} store {uri} is not writable: {exc}"]
    return []


def _regions_valid(settings: Settings) -> list[str]:
    try:
        load_regions(settings.regions_file)
    except RegionsFileError as exc:
        return [str(exc)]  # already says "regions file: <where>: <problem>"
    except Exception as exc:
        return [f"regions file: {exc}"]
    return []


def run_preflight(
    settings: Settings, *, backend: ImageryBackend, infrastructure: InfrastructureSource
) -> list[str]:
    """One line per failed check (empty: ready to run)."""
    problems: list[str] = []
    problems += _check(f"imagery ({settings.imagery})", backend.preflight)
    problems += _store_writable("reports", settings.output, settings)
    if settings.cache != settings.output:
        problems += _store_writable("cache", settings.cache, settings)
    problems += _check(f"infrastructure ({settings.infrastructure})", infrastructure.preflight)
    problems += _regions_valid(settings)
    if settings.metrics == "cloudwatch" and not has_credentials():
        problems.append("metrics: --metrics cloudwatch but no AWS credentials found in the boto3 chain")
    for line in problems:
        log.warning("preflight_failed_check", check=line)
    log.info("preflight_done", failed=len(problems))
    return problems
