"""Market data per region: land price, its trend, and how sure we are (docs/market.md).

Sources share one interface (:class:`ccapi_monitor.market.base.MarketSource`):
``static`` (the tier table), ``feed`` (an operator's price feed) and ``listings``
(schema.org structured data on listing pages). This package file stays import-light so
that ``ccapi_monitor.models`` can import :mod:`ccapi_monitor.market.models` cheaply.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_feed_path() -> Path:
    """The packaged synthetic sample feed the demo reads (``data/market_sample.parquet``)."""
    return Path(str(resources.files("ccapi_monitor") / "data" / "market_sample.parquet"))
