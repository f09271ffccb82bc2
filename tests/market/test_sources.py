"""Choosing the run's source: the demo's synthetic sample, missing URIs as invalid input."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.market.base import region_figures
from ccapi_monitor.market.feed import FeedSource
from ccapi_monitor.market.listings import ListingsSource
from ccapi_monitor.market.sources import build_source, load_market
from ccapi_monitor.market.static import StaticSource
from ccapi_monitor.regions import load_regions
from ccapi_monitor.scoring import load_land_prices
from ccapi_monitor.storage import LocalStore


def test_static_is_the_default_choice(tmp_path: Path) -> None:
    assert isinstance(build_source("static", cache=LocalStore(tmp_path), allow_network=True), StaticSource)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("feed", "--market feed needs --market-feed URI (env CCAPI_MARKET_FEED)"),
        ("listings", "--market listings needs --market-listings URL (env CCAPI_MARKET_LISTINGS)"),
    ],
)
def test_a_source_without_its_address_is_invalid_input(kind: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_source(kind, cache=None, allow_network=True)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_listings_urls_are_validated_up_front() -> None:
    with pytest.raises(InvalidInputError, match="must be http"):
        build_source("listings", cache=None, allow_network=True, listings=["file:///etc/passwd"])
    source = build_source("listings", cache=None, allow_network=False, listings=["a=https://h.test/x"])
    assert isinstance(source, ListingsSource)


def test_the_demo_sample_feed_is_marked_synthetic_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ccapi_monitor")
    source = build_source("feed", cache=None, allow_network=False, sample_feed=True)
    assert isinstance(source, FeedSource)
    regions = load_regions()
    run = date(2026, 11, 23)
    data = load_market(source, regions, run)
    figures = [region_figures(r, data, run, load_land_prices()) for r in regions]
    assert all(f.source == "feed" and f.synthetic for f in figures)
    assert all(f.label == "feed (synthetic)" for f in figures)
    assert all(f.trend is not None and f.trend.weeks == 12 for f in figures)
    assert all(f.listing_count >= 5 for f in figures)
    assert any(
        "market data: feed from" in r.getMessage() and "4524 prices" in r.getMessage() for r in caplog.records
    )
