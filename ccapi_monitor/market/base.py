"""The one interface every market source implements, and the figures it leads to per region.

A source loads once per run (:meth:`MarketSource.load`) into :class:`MarketData`; the
runner then asks :func:`region_figures` for each region. A source never raises for a
network failure: it says so in ``MarketData.failure`` (or per page in ``problems``), and
every region gets the static tier price with that reason, so a report can never show a
silent zero. Only a feed that is not a feed at all is invalid input (exit 3).
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

from ccapi_monitor.errors import StoreError
from ccapi_monitor.market.figures import RECENT_DAYS, summarize, trend
from ccapi_monitor.market.models import MarketFigures, MarketSourceName, PricePoint
from ccapi_monitor.regions import Region
from ccapi_monitor.scoring import LandPrice
from ccapi_monitor.storage import Store

log = logging.getLogger(__name__)

#: Cache-store folder of everything market sources keep between runs.
CACHE_PREFIX: Final = "market"


@dataclass
class MarketData:
    """What a source loaded this run: current points, the history for the trend, and provenance."""

    source: MarketSourceName
    points: list[PricePoint] = field(default_factory=list)
    history: list[PricePoint] = field(default_factory=list)
    fetched_at: str | None = None
    from_cache: bool = False
    synthetic: bool = False
    origin: str = ""
    #: One line per rejected row or unreadable page; logged, and counted in the report.
    problems: list[str] = field(default_factory=list)
    #: Why the source gave nothing usable this run (every region falls back to static).
    failure: str | None = None


class MarketSource(ABC):
    """A market source chosen per run with ``--market``."""

    name: MarketSourceName

    @abstractmethod
    def load(self, regions: Sequence[Region], run_date: date) -> MarketData:
        """Read the source once for the run; network failures go into the result, not raised."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def cache_key(kind: str, identity: str) -> str:
    """A cache-store key for ``identity`` (a URL or URI) that reveals nothing of it."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24]
    return f"{CACHE_PREFIX}/{kind}/{digest}.json"


def read_cached(store: Store | None, key: str) -> dict[str, Any] | None:
    """A cached JSON document, or ``None`` when absent or unreadable (a cache is never fatal)."""
    if store is None:
        return None
    try:
        raw = store.read_bytes(key)
        document = json.loads(raw) if raw is not None else None
    except (StoreError, ValueError) as exc:
        log.warning("market cache %s unreadable, ignored: %s", key, exc)
        return None
    return document if isinstance(document, dict) else None


def write_cached(store: Store | None, key: str, document: Mapping[str, Any]) -> None:
    """Keep a document in the cache store; a failed write only costs a refetch next time."""
    if store is None:
        return
    try:
        store.write_bytes(key, json.dumps(document, default=str).encode("utf-8"), "application/json")
    except StoreError as exc:
        log.warning("market cache %s not written: %s", key, exc)


def region_figures(
    region: Region, data: MarketData, run_date: date, prices: Mapping[int, LandPrice]
) -> MarketFigures:
    """The region's figures from ``data``, or the static tier price and the reason why."""
    static = prices[region.tier].idr_per_m2
    common: dict[str, Any] = {
        "requested": data.source,
        "tier": region.tier,
        "static_idr_per_m2": static,
        "fetched_at": data.fetched_at,
        "from_cache": data.from_cache,
        "synthetic": data.synthetic,
        "origin": data.origin,
    }
    if data.source == "static":
        return MarketFigures(source="static", median_idr_per_m2=static, **common)
    reason = data.failure
    summary = None
    if reason is None:
        summary = summarize((p for p in data.points if p.region == region.name), run_date)
        if summary is None:
            reason = f"no {data.source} prices for this region in the {RECENT_DAYS} days to {run_date}"
    if summary is None:
        return MarketFigures(source="static", median_idr_per_m2=static, fallback_reason=reason, **common)
    slope, note = trend((p for p in data.history if p.region == region.name), run_date)
    return MarketFigures(
        source=data.source,
        median_idr_per_m2=round(summary.median, 2),
        q1_idr_per_m2=round(summary.q1, 2),
        q3_idr_per_m2=round(summary.q3, 2),
        listing_count=summary.listings,
        outliers_removed=summary.outliers_removed,
        trend=slope,
        trend_note=note,
        as_of=summary.as_of,
        **common,
    )
