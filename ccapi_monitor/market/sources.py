"""Choosing the run's market source and loading it once, before the regions run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from pydantic import SecretStr

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.market.base import MarketData, MarketSource
from ccapi_monitor.market.feed import FeedSource
from ccapi_monitor.market.listings import ListingsSource, parse_listing_pages
from ccapi_monitor.market.models import MarketSourceName
from ccapi_monitor.market.sample import sample_feed_path
from ccapi_monitor.market.static import StaticSource
from ccapi_monitor.regions import Region
from ccapi_monitor.storage import Store

log = logging.getLogger(__name__)


def build_source(
    kind: MarketSourceName,
    *,
    cache: Store | None,
    allow_network: bool,
    feed: str | None = None,
    feed_token: SecretStr | None = None,
    listings: Sequence[str] = (),
    sample_feed: bool = False,
) -> MarketSource:
    """The source ``--market`` names; ``sample_feed`` reads the packaged synthetic feed (the demo)."""
    if kind == "feed":
        if feed is None and not sample_feed:
            raise InvalidInputError("--market feed needs --market-feed URI (env CCAPI_MARKET_FEED)")
        if feed is None:
            return FeedSource(
                str(sample_feed_path()), cache=None, allow_network=allow_network, synthetic=True
            )
        return FeedSource(feed, cache=cache, allow_network=allow_network, token=feed_token)
    if kind == "listings":
        if not listings:
            raise InvalidInputError(
                "--market listings needs --market-listings URL (env CCAPI_MARKET_LISTINGS)"
            )
        return ListingsSource(parse_listing_pages(listings), cache=cache, allow_network=allow_network)
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
