"""Imagery backends implementing DETECTION.md: ``earthengine``, ``stac`` and ``demo``."""

from __future__ import annotations

from ccapi_monitor.detection.base import ImageryBackend

__all__ = ["ImageryBackend"]
