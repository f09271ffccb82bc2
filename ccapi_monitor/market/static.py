"""The ``static`` source: the tier table of ``data/land_prices.json``, no network, no history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from ccapi_monitor.market.base import MarketData, MarketSource
from ccapi_monitor.regions import Region


class StaticSource(MarketSource):
    """Every region gets its tier's benchmark price; reports label it ``static``."""

    name = "static"

    def __init__(self, origin: str = "land_prices.json tier table") -> None:
        self.origin = origin

    def load(self, regions: Sequence[Region], run_date: date) -> MarketData:
        return MarketData(source="static", origin=self.origin)
