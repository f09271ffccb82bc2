"""Choosing the run's market source and loading it once, before the regions run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from ccapi_monitor.market import sample_feed_path
from ccapi_monitor.market.base import MarketData, MarketSource
from ccapi_monitor.market.static import StaticSource
from ccapi_monitor.regions import Region
from ccapi_monitor.settings import Settings
from ccapi_monitor.storage import Store

log = logging.getLogger(__name__)


def build_source(settings: Settings, cache: Store | None) -> MarketSource:
    """The source ``--market`` names (Settings has checked that it has its feed or pages).

    The packaged sample feed is marked synthetic and never cached: it is already local.
    """
    # Each source's libraries (pyarrow, extruct) load only when the run uses that source.
    network = settings.enable_scraping
    if settings.market == "feed" and settings.market_feed is not None:
        from ccapi_monitor.market.feed import FeedSource

        if Path(settings.market_feed) == sample_feed_path():
            return FeedSource(settings.market_feed, cache=None, allow_network=network, synthetic=True)
        return FeedSource(
            settings.market_feed, cache=cache, allow_network=network, token=settings.market_feed_token
        )
    if settings.market == "listings":
        from ccapi_monitor.market.listings import ListingsSource, parse_listing_pages

        return ListingsSource(
            parse_listing_pages(settings.market_listings), cache=cache, allow_network=network
        )
    return StaticSource()


def load_market(source: MarketSource, regions: Sequence[Region], run_date: date) -> MarketData:
    """Load the source once for the run and log one line saying what it gave."""
    data = source.load(regions, run_date)
    log.info(
        "market data: %s from %s, %d prices, %d rejected%s%s",
        data.source,
        data.origin,
        len(data.points),
        len(data.problems),
        f", fetched at {data.fetched_at}{' (cached)' if data.from_cache else ''}" if data.fetched_at else "",
        f"; unusable, every region falls back to static: {data.failure}" if data.failure else "",
    )
    return data
