"""Imagery backends implementing docs/design/detection.md: ``earthengine``, ``stac`` and ``demo``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ccapi_monitor.detection.base import ImageryBackend
from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.settings import Settings

__all__ = ["ImageryBackend", "create_backend", "demo_archive_dir"]


def demo_archive_dir(settings: Settings) -> Path:
    """The demo archive sits beside the checkpoints when the cache is local, else in the temp dir."""
    if settings.cache.startswith("s3://"):
        return Path(tempfile.gettempdir()) / "ccapi-demo-archive"
    return Path(settings.cache).expanduser() / "demo-archive"


def create_backend(settings: Settings) -> ImageryBackend:
    """The backend named by ``--imagery``; never falls back to another one."""
    params = settings.detection
    if settings.imagery == "demo":
        from ccapi_monitor.detection.demo import DemoBackend

        return DemoBackend(params, demo_archive_dir(settings))
    if settings.imagery == "stac":
        if not settings.stac_items:
            raise InvalidInputError("--imagery stac needs --stac-items PATH_OR_URL (or CCAPI_STAC_ITEMS)")
        from ccapi_monitor.detection.stac import StacBackend

        return StacBackend(params, settings.stac_items, collection=settings.stac_collection)
    from ccapi_monitor.detection.earthengine import EarthEngineBackend

    key = settings.gee_service_account_key
    return EarthEngineBackend(
        params,
        project=settings.gee_project,
        key_json=key.get_secret_value() if key else None,
        key_file=settings.gee_service_account_key_file,
        max_concurrency=settings.ee_max_concurrency,
        deadline_s=settings.ee_deadline_s,
    )
