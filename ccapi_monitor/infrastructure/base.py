"""The OpenStreetMap infrastructure interface: one region in, one :class:`InfrastructureResult` out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.regions import Region


class InfrastructureSource(ABC):
    """Enrichment: ``fetch`` raises :class:`~ccapi_monitor.errors.InfrastructureError` on
    failure and the runner records it on the region without failing the region."""

    name: ClassVar[str]

    @abstractmethod
    def fetch(self, region: Region) -> InfrastructureResult:
        """Infrastructure features, nearest distances and score around ``region``."""

    def preflight(self) -> list[str]:
        """Problems that would stop the source working, one line each."""
        return []
